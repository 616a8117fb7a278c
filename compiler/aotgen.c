/*
 * Writing AOT products (qkc_aot_write): a static library of kernels with
 * its dispatch table, or the C header that declares them. Part of libqkc
 * (it generates code); programs that use the library need only qkc_rt
 * (runtime/aot.c reads the table).
 *
 * Kernel r of a library is spec r / T for target r % T (T targets, in the
 * order given, which is the order of preference), entry point
 * qkc_aot_<name>_<r>; the table is qkc_aot_<name>. The header computes the
 * same numbering without generating code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/aot_table.h"
#include "codegen/isa.h"
#include "core/context.h"
#include "core/io.h"
#include "compiler/jit.h"
#include "core/spec_object.h"

#define AOT_MAX_KERNELS QKC_AOT_TABLE_MAX_ROWS
#define AOT_MAX_NAME 48

typedef struct aot_job {
    const qkc_spec *const *specs;
    int nspecs, ntargets;
    const char *const *targets;
    const char *name;
    const qkc_schedule *schedule;
    char (*canon)[2048]; /* canonical text of each spec */
} aot_job;

static int is_identifier(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static qkc_status check_job(qkc_context *ctx, aot_job *j)
{
    qkc_diag diag;
    if (!is_identifier(j->name) || strlen(j->name) > AOT_MAX_NAME)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_aot_write: name '%s' must be a C identifier of at most %d characters",
                        j->name ? j->name : "(null)", AOT_MAX_NAME);
    if (j->nspecs < 1 || j->ntargets < 1 || (long)j->nspecs * j->ntargets > AOT_MAX_KERNELS)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "qkc_aot_write: %d specs x %d targets: a library holds 1 to %d kernels",
                        j->nspecs, j->ntargets, AOT_MAX_KERNELS);
    int arch = -1;
    for (int t = 0; t < j->ntargets; t++) {
        qkc_target tgt;
        if (qkc_target_resolve(j->targets[t], 0, &tgt, &diag))
            return qkc_fail_diag(ctx, &diag);
        if (qkc_isa_for(&tgt)->gpu)
            return qkc_fail(ctx, QKC_ERR_UNSUPPORTED,
                            "qkc_aot_write: target %s: AOT libraries hold CPU kernels; emit a GPU kernel's PTX "
                            "with --emit ptx",
                            tgt.name);
        /* one library is one object format: its table and kernels share
         * an architecture */
        if (t && tgt.arch != arch)
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                            "qkc_aot_write: targets %s (%s) and %s (%s) are of different architectures: one library "
                            "holds kernels of one architecture",
                            j->targets[0], qkc_target_arch_name(arch), j->targets[t], qkc_target_arch_name(tgt.arch));
        arch = tgt.arch;
        for (int u = 0; u < t; u++)
            if (!strcmp(j->targets[u], j->targets[t]))
                return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_write: target %s given twice", j->targets[t]);
    }
    for (int i = 0; i < j->nspecs; i++) {
        if (!j->specs[i])
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_write: spec %d is NULL", i);
        qkc_matmul_print(&j->specs[i]->mm, j->canon[i], sizeof j->canon[i]);
        for (int u = 0; u < i; u++)
            if (!strcmp(j->canon[u], j->canon[i]))
                return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_write: spec '%s' given twice", j->canon[i]);
    }
    return QKC_OK;
}

/* ------------------------------------------------------------- library */

/* A GNU ar archive with a symbol index ("/" member: big-endian count and
 * member offsets, then NUL-terminated names), which linkers require. */
typedef struct member {
    char name[16]; /* "k12.o/" */
    const char *symbol;
    const char *data;
    size_t len;
} member;

static size_t ar_header(char *p, const char *name, size_t size)
{
    char h[96]; /* 60 used: sizes stay below 10 digits (the library's size is checked) */
    snprintf(h, sizeof h, "%-16s%-12s%-6s%-6s%-8s%-10zu`\n", name, "0", "0", "0", "644", size);
    memcpy(p, h, 60);
    return 60;
}

static void put_be32(char *p, size_t v)
{
    p[0] = (char)(v >> 24), p[1] = (char)(v >> 16), p[2] = (char)(v >> 8), p[3] = (char)v;
}

static qkc_status write_archive(qkc_context *ctx, const char *path, const member *m, int n)
{
    size_t symtab = 4 + 4 * (size_t)n, total, off;
    char *buf, *p;
    qkc_status st;
    for (int i = 0; i < n; i++)
        symtab += strlen(m[i].symbol) + 1;
    symtab += symtab & 1;
    total = 8 + 60 + symtab;
    for (int i = 0; i < n; i++)
        total += 60 + m[i].len + (m[i].len & 1);
    if (total > 999999999u)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "qkc_aot_write: a %zu-byte library is larger than an archive holds", total);
    if (!(buf = qkc_alloc(ctx, total)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_write: out of memory for a %zu-byte library", total);
    memset(buf, '\n', total);
    memcpy(buf, "!<arch>\n", 8);
    p = buf + 8;
    p += ar_header(p, "/", symtab);
    put_be32(p, (size_t)n);
    off = 8 + 60 + symtab;
    for (int i = 0; i < n; i++) {
        put_be32(p + 4 + 4 * i, off);
        off += 60 + m[i].len + (m[i].len & 1);
    }
    p += 4 + 4 * (size_t)n;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(m[i].symbol) + 1;
        memcpy(p, m[i].symbol, l);
        p += l;
    }
    p = buf + 8 + 60 + symtab;
    for (int i = 0; i < n; i++) {
        p += ar_header(p, m[i].name, m[i].len);
        memcpy(p, m[i].data, m[i].len);
        p += m[i].len + (m[i].len & 1);
    }
    st = qkc_io_write_atomic(ctx, path, buf, total, 0644);
    qkc_free(ctx, buf);
    return st;
}

static qkc_status write_library(qkc_context *ctx, const aot_job *j, const char *path)
{
    int n = j->nspecs * j->ntargets;
    qkc_aot_row *rows = qkc_calloc(ctx, (size_t)n, sizeof *rows);
    member *mem = qkc_calloc(ctx, (size_t)n + 1, sizeof *mem);
    /* per kernel: symbol, feature and schedule text */
    char (*sym)[96] = qkc_calloc(ctx, (size_t)n + 1, sizeof *sym);
    char (*feat)[256] = qkc_calloc(ctx, (size_t)n, sizeof *feat);
    char (*sched)[96] = qkc_calloc(ctx, (size_t)n, sizeof *sched);
    char (*tname)[32] = qkc_calloc(ctx, (size_t)n, sizeof *tname);
    char *table = NULL;
    size_t table_len = 0;
    qkc_target first = {0};
    qkc_diag diag;
    qkc_status st = QKC_OK;
    if (!rows || !mem || !sym || !feat || !sched || !tname) {
        st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_write: out of memory");
        goto done;
    }
    for (int r = 0; r < n && !st; r++) {
        qkc_compile_options opt = {sizeof opt, j->targets[r % j->ntargets], j->schedule, 0};
        qkc_emit_info info;
        char *obj = NULL, item[2200];
        size_t len = 0;
        snprintf(item, sizeof item, "%s for %s", j->canon[r / j->ntargets], opt.target);
        qkc_report_progress(ctx, "aot", r, n, item);
        snprintf(sym[r], sizeof sym[r], "qkc_aot_%s_%d", j->name, r);
        if ((st = qkc_emit_code(ctx, j->specs[r / j->ntargets], &opt, "obj", sym[r], &obj, &len, &info))) {
            char msg[1024];
            qkc_context_copy_error(ctx, msg, sizeof msg);
            st = qkc_fail(ctx, st, "qkc_aot_write: %s for %s: %s", j->canon[r / j->ntargets], opt.target, msg);
            break;
        }
        qkc_target_features_string(info.target.arch, info.target.features, feat[r], sizeof feat[r]);
        qkc_schedule_print(&info.schedule, sched[r], sizeof sched[r]);
        snprintf(tname[r], sizeof tname[r], "%s", info.target.name);
        rows[r].spec = j->canon[r / j->ntargets];
        rows[r].target = tname[r];
        rows[r].features = feat[r];
        rows[r].symbol = sym[r];
        rows[r].schedule = sched[r];
        rows[r].feature_bits = info.target.features;
        rows[r].int8_dot = info.int8_dot;
        rows[r].panel = info.panel;
        rows[r].arch = info.target.arch;
        rows[r].sched[0] = info.schedule.tile_m;
        rows[r].sched[1] = info.schedule.tile_n;
        rows[r].sched[2] = info.schedule.k_unroll;
        rows[r].sched[3] = info.schedule.vector_bits;
        rows[r].sched[4] = info.schedule.prefetch;
        rows[r].sched[5] = info.schedule.n_block;
        snprintf(mem[r].name, sizeof mem[r].name, "k%d.o/", r);
        mem[r].symbol = sym[r];
        mem[r].data = obj;
        mem[r].len = len;
        if (r == 0)
            first = info.target;
        if (r == n - 1)
            qkc_report_progress(ctx, "aot", n, n, item);
    }
    if (st)
        goto done;
    snprintf(sym[n], sizeof sym[n], "qkc_aot_%s", j->name);
    if ((st = qkc_aot_table_object(qkc_context_allocator(ctx), &first, sym[n], j->name, rows, n, &table, &table_len, &diag))) {
        qkc_fail_diag(ctx, &diag);
        goto done;
    }
    snprintf(mem[n].name, sizeof mem[n].name, "table.o/");
    mem[n].symbol = sym[n];
    mem[n].data = table;
    mem[n].len = table_len;
    st = write_archive(ctx, path, mem, n + 1);
done:
    for (int r = 0; mem && r < n; r++)
        qkc_free(ctx, (char *)mem[r].data);
    qkc_free(ctx, table);
    qkc_free(ctx, rows);
    qkc_free(ctx, mem);
    qkc_free(ctx, sym);
    qkc_free(ctx, feat);
    qkc_free(ctx, sched);
    qkc_free(ctx, tname);
    return st;
}

/* -------------------------------------------------------------- header */

typedef struct text {
    qkc_context *ctx;
    char *p;
    size_t len, cap;
    int failed;
} text;

static void say(text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void say(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (t->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        size_t cap = (t->cap + (size_t)n) * 2;
        char *q = qkc_alloc(t->ctx, cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        memcpy(q, t->p, t->len);
        qkc_free(t->ctx, t->p);
        t->p = q;
        t->cap = cap;
        va_start(ap, fmt);
        vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

/* One member of qkc_kernel_args in the header: its declaration and its
 * comment (ir/kernel_args.def), the comments aligned. */
static void say_member(text *t, const char *type, const char *name, const char *comment)
{
    char decl[64];
    size_t n = strlen(type);
    snprintf(decl, sizeof decl, "%s%s%s;", type, n && type[n - 1] == '*' ? "" : " ", name);
    say(t, "    %-22s /* %s */\n", decl, comment);
}

static qkc_status write_header(qkc_context *ctx, const aot_job *j, const char *path)
{
    text t = {ctx, NULL, 0, 0, 0};
    char upper[AOT_MAX_NAME + 1];
    qkc_status st;
    size_t i;
    for (i = 0; j->name[i]; i++)
        upper[i] = (j->name[i] >= 'a' && j->name[i] <= 'z') ? (char)(j->name[i] - 32) : j->name[i];
    upper[i] = '\0';
    if (!(t.p = qkc_alloc(ctx, t.cap = 4096)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_write: out of memory");
    say(&t, "/*\n * Kernels of the qkc AOT library \"%s\", generated by qkc %s (`qkc compile\n"
            " * --emit header`); the library comes from `qkc compile --emit lib` with the\n"
            " * same specs, targets and name. Do not edit.\n *\n"
            " * Use the kernels through the qkc runtime (qkc/qkc.h, libqkc_rt, no LLVM):\n"
            " *     qkc_spec_parse(ctx, QKC_AOT_%s_SPEC_0, &spec);\n"
            " *     qkc_aot_kernel(ctx, &qkc_aot_%s, spec, NULL, &kernel);\n"
            " * then qkc_weights_pack and qkc_kernel_run as with JIT kernels. The\n"
            " * runtime picks the first kernel of the spec, in the order below, whose\n"
            " * CPU features this machine has (QKC_TARGET=<target> picks one by name).\n"
            " * Calling an entry point directly skips what qkc_kernel_run prepares\n"
            " * (packed weights, rounded or int8-quantized activations): see\n"
            " * docs/aot.md.\n */\n",
        j->name, qkc_version_string(), upper, j->name);
    say(&t, "#ifndef QKC_AOT_%s_H\n#define QKC_AOT_%s_H\n\n#include <stdint.h>\n\n", upper, upper);
    say(&t, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    say(&t, "#ifndef QKC_KERNEL_ARGS_DEFINED\n#define QKC_KERNEL_ARGS_DEFINED\n"
            "/* The argument of every qkc kernel entry point: it computes outputs\n"
            " * [n_begin, n_end) for all m rows. */\n"
            "typedef struct qkc_kernel_args {\n");
#define QKC_KARG(NAME, field, c_type, kind, comment) say_member(&t, #c_type, #field, comment);
#include "ir/kernel_args.def"
#undef QKC_KARG
    say(&t, "} qkc_kernel_args;\n#endif\n\n");
    say(&t, "/* The library's table, for qkc_aot_kernel(). */\n"
            "extern const struct qkc_aot_library qkc_aot_%s;\n\n", j->name);
    say(&t, "#define QKC_AOT_%s_SPECS %d\n#define QKC_AOT_%s_KERNELS %d\n\n", upper, j->nspecs, upper,
        j->nspecs * j->ntargets);
    for (int s = 0; s < j->nspecs; s++) {
        say(&t, "#define QKC_AOT_%s_SPEC_%d \"%s\"\n", upper, s, j->canon[s]);
        for (int tg = 0; tg < j->ntargets; tg++) {
            qkc_target target;
            qkc_diag diag;
            char feats[256];
            qkc_target_resolve(j->targets[tg], 0, &target, &diag);
            qkc_target_features_string(target.arch, target.features, feats, sizeof feats);
            say(&t, "/* %s for %s (%s) */\nvoid qkc_aot_%s_%d(const qkc_kernel_args *args);\n", j->canon[s],
                target.name, feats, j->name, s * j->ntargets + tg);
        }
        say(&t, "\n");
    }
    say(&t, "/* Every entry point, by index (the index qkc_aot_variant takes). */\n#define QKC_AOT_%s_ENTRY_POINTS {", upper);
    for (int r = 0; r < j->nspecs * j->ntargets; r++)
        say(&t, "%s qkc_aot_%s_%d", r ? "," : "", j->name, r);
    say(&t, " }\n\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    st = t.failed ? qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_write: out of memory")
                  : qkc_io_write_atomic(ctx, path, t.p, t.len, 0644);
    qkc_free(ctx, t.p);
    return st;
}

qkc_status qkc_aot_write(qkc_context *ctx, const qkc_spec *const *specs, int spec_count,
                         const qkc_aot_options *options, const char *what, const char *path)
{
    static const char *const host[] = {"host"};
    aot_job j;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!specs || !options || options->struct_size < sizeof *options || !what || !path)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_write: NULL argument or bad struct_size");
    if (strcmp(what, "lib") && strcmp(what, "header"))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_aot_write: '%s': expected lib or header", what);
    memset(&j, 0, sizeof j);
    j.specs = specs;
    j.nspecs = spec_count;
    j.targets = options->targets && options->target_count ? options->targets : host;
    j.ntargets = options->targets && options->target_count ? options->target_count : 1;
    j.name = options->name;
    j.schedule = options->schedule;
    if (spec_count < 1 || spec_count > AOT_MAX_KERNELS)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "qkc_aot_write: %d specs: a library holds 1 to %d kernels", spec_count,
                        AOT_MAX_KERNELS);
    if (!(j.canon = qkc_calloc(ctx, (size_t)spec_count, sizeof *j.canon)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_aot_write: out of memory");
    if (!(st = check_job(ctx, &j)))
        st = !strcmp(what, "lib") ? write_library(ctx, &j, path) : write_header(ctx, &j, path);
    qkc_free(ctx, j.canon);
    return st;
}
