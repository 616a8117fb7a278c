/*
 * AOT libraries at run time: find the kernel for a spec in a library's
 * table (ir/kernel_abi.h) and the variant this CPU runs, and wrap it
 * in a qkc_kernel like a JIT kernel. No LLVM: part of qkc_rt.
 *
 * The table names each kernel's spec by its canonical text and stores what
 * the compiler decided (target, features, schedule, int8 path); the packed
 * layout is recomputed here by the same function the compiler used, which
 * is why a library only loads into the qkc version that wrote it.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/context.h"
#include "runtime/kernel.h"
#include "core/spec_object.h"
#include "targets/target.h"

static int valid(const qkc_aot_library *lib)
{
    return lib && lib->magic == QKC_AOT_MAGIC && lib->abi == QKC_AOT_ABI && lib->version == QKC_VERSION &&
           lib->count > 0 && lib->rows;
}

int qkc_aot_variant_count(const qkc_aot_library *lib)
{
    return valid(lib) ? lib->count : -1;
}

qkc_status qkc_aot_variant(const qkc_aot_library *lib, int index, qkc_aot_variant_info *out)
{
    const qkc_aot_row *r;
    if (!valid(lib) || !out || index < 0 || index >= lib->count)
        return QKC_ERR_INVALID_ARGUMENT;
    r = &lib->rows[index];
    out->spec = r->spec;
    out->target = r->target;
    out->features = r->features;
    out->symbol = r->symbol;
    out->schedule = r->schedule;
    return QKC_OK;
}

/* "x86_64-avx512-vnni, x86_64-avx2" for the rows of one spec. */
static void list_targets(const qkc_aot_library *lib, const char *spec, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < lib->count; i++)
        if (!strcmp(lib->rows[i].spec, spec)) {
            int w = snprintf(buf + n, n < size ? size - n : 0, "%s%s", n ? ", " : "", lib->rows[i].target);
            if (w > 0)
                n += (size_t)w;
        }
}

qkc_status qkc_aot_kernel(qkc_context *ctx, const qkc_aot_library *lib, const qkc_spec *spec,
                          const qkc_compile_options *options, qkc_kernel **out)
{
    const char *want = NULL;
    const qkc_aot_row *row = NULL;
    char canon[2048], have[512];
    uint32_t host = qkc_target_host_features();
    int spec_found = 0;
    qkc_compiled *code;
    qkc_diag diag;
    qkc_status st;

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!lib || !spec || !out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_kernel: NULL argument");
    *out = NULL;
    if (lib->magic != QKC_AOT_MAGIC || lib->abi != QKC_AOT_ABI)
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_aot_kernel: not a qkc AOT library table (or table format %u, "
                                                   "this runtime reads %u)",
                        lib->magic == QKC_AOT_MAGIC ? lib->abi : 0u, QKC_AOT_ABI);
    if (lib->version != QKC_VERSION)
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA,
                        "qkc_aot_kernel: library '%s' was made by qkc %d.%d.%d, this runtime is %s: regenerate it",
                        lib->name ? lib->name : "?", lib->version / 10000, lib->version / 100 % 100,
                        lib->version % 100, qkc_version_string());
    if (!valid(lib))
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_aot_kernel: library table has no kernels");
    if (options && options->struct_size >= offsetof(qkc_compile_options, target) + sizeof options->target)
        want = options->target;
    want = qkc_config_target(ctx, want);
    if (want && (!*want || !strcmp(want, "host")))
        want = NULL;
    qkc_matmul_print(&spec->mm, canon, sizeof canon);
    for (int i = 0; i < lib->count && !row; i++) {
        const qkc_aot_row *r = &lib->rows[i];
        if (strcmp(r->spec, canon))
            continue;
        spec_found = 1;
        if (want && strcmp(r->target, want))
            continue;
        if (r->arch != qkc_target_host_arch()) {
            if (want)
                return qkc_fail(ctx, QKC_ERR_NO_DEVICE, "qkc_aot_kernel: %s's %s kernel is %s code, which this machine "
                                                        "does not run",
                                lib->name, want, qkc_target_arch_name(r->arch));
            continue;
        }
        if (r->feature_bits & ~host) {
            if (want) {
                char missing[256];
                qkc_target_features_string(r->arch, r->feature_bits & ~host, missing, sizeof missing);
                return qkc_fail(ctx, QKC_ERR_NO_DEVICE, "qkc_aot_kernel: %s's %s kernel needs %s, which this CPU lacks",
                                lib->name, want, missing);
            }
            continue;
        }
        row = r;
    }
    if (!spec_found)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "qkc_aot_kernel: library '%s' has no kernel for '%s' (%d kernels; "
                                                  "list them with qkc_aot_variant)",
                        lib->name, canon, lib->count);
    list_targets(lib, canon, have, sizeof have);
    if (!row && want)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "qkc_aot_kernel: library '%s' has no %s kernel for '%s' (it has: %s)",
                        lib->name, want, canon, have);
    if (!row)
        return qkc_fail(ctx, QKC_ERR_NO_DEVICE,
                        "qkc_aot_kernel: this CPU runs none of library '%s''s kernels for '%s' (it has: %s)", lib->name,
                        canon, have);

    if (!(code = qkc_calloc(ctx, 1, sizeof *code)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_kernel: out of memory");
    code->mm = spec->mm;
    if (qkc_klayout_for(&spec->mm.w, spec->mm.n, spec->mm.k, &code->layout, &diag) ||
        (row->panel && qkc_klayout_set_panel(&code->layout, row->panel, spec->mm.n, &diag))) {
        qkc_free(ctx, code);
        return qkc_fail_diag(ctx, &diag);
    }
    code->schedule.tile_m = row->sched[0];
    code->schedule.tile_n = row->sched[1];
    code->schedule.k_unroll = row->sched[2];
    code->schedule.vector_bits = row->sched[3];
    code->schedule.prefetch = row->sched[4];
    code->schedule.n_block = row->sched[5];
    if (code->schedule.n_block < 1 || !row->fn) {
        qkc_free(ctx, code);
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_aot_kernel: library '%s' row %s is damaged", lib->name,
                        row->symbol);
    }
    code->fn = row->fn;
    code->int8_dot = row->int8_dot;
    code->ahead_of_time = 1;
    snprintf(code->target, sizeof code->target, "%s", row->target);
    snprintf(code->features, sizeof code->features, "%s", row->features);
    snprintf(code->schedule_text, sizeof code->schedule_text, "%s", row->schedule);
    snprintf(code->symbol, sizeof code->symbol, "%s", row->symbol);
    if ((st = qkc_kernel_wrap(ctx, code, 0, out))) {
        qkc_free(ctx, code);
        return st;
    }
    (*out)->owned = code;
    return QKC_OK;
}
