/*
 * GPU kernels against the reference on this CPU: the GPU suite's specs
 * (tests/gpu/specs.inc) x its M values, each kernel generated for
 * nvptx-sm80 exactly as for a GPU (the optimised module the PTX comes
 * from, qkc_kernel_emit "bc") and run by the warp emulator of
 * tests/gpu/warp_emu.c, with the runtime's own host side: weights packed
 * by qkc_weights_pack, activations by qkc_kernel_prepare_a, the grid of
 * qkc_gpu_warps. Both grid shapes run: GEMV for m < 16 and the tensor-core
 * (mma.sync) tiles for m >= 16. No GPU or driver is needed; test_cg_gpu
 * runs the same cases on a GPU where there is one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "codegen/lower_ptx.h"
#include "gpu/warp_emu.h"
#include "ir/klayout.h"
#include "qkc/qkc.h"
#include "runtime/kernel.h"
#include "core/spec_object.h"
#include "util/testutil.h"

#include "gpu/formats.inc"
#include "gpu/specs.inc"

typedef struct emu_case {
    qkc_warp_emu *emu;
    const qkc_compiled *code;
} emu_case;

/* qkc_kernel_run for a GPU kernel, on the emulator: the host half as the
 * runtime does it, the launch on the CPU. */
static int emu_run(qkc_context *ctx, const qkc_kernel *kern, const qkc_matmul_args *args,
                   const qkc_run_options *options, void *user, char *msg, size_t msg_size)
{
    emu_case *ec = user;
    qkc_kernel_args ka;
    size_t need = 0;
    int64_t ld = 0;
    float *prep;
    int rc;
    (void)options;
    if (qkc_kernel_prepare_a(ctx, kern, args->a, args->lda, args->m, args->weights, NULL, 0, &need, &ld)) {
        snprintf(msg, msg_size, "%s", qkc_context_last_error(ctx));
        return 1;
    }
    prep = aligned_alloc(16, (need + 15) / 16 * 16);
    if (!prep || qkc_kernel_prepare_a(ctx, kern, args->a, args->lda, args->m, args->weights, prep, need, NULL, &ld)) {
        snprintf(msg, msg_size, "%s", prep ? qkc_context_last_error(ctx) : "out of memory");
        free(prep);
        return 1;
    }
    if ((uintptr_t)args->weights % 16) {
        free(prep);
        snprintf(msg, msg_size, "packed weights not 16-byte aligned");
        return 1;
    }
    memset(&ka, 0, sizeof ka);
    ka.a = prep;
    ka.w = args->weights;
    ka.bias = args->bias;
    ka.c = args->c;
    ka.lda = ld;
    ka.ldc = args->ldc;
    ka.m = args->m;
    ka.n_begin = 0;
    ka.n_end = ec->code->mm.n;
    rc = qkc_warp_emu_launch(ec->emu, &ka, qkc_gpu_warps(ec->code, args->m, ec->code->mm.n), msg, msg_size);
    free(prep);
    return rc;
}

/* The kernel's bitcode and a handle for the host half (prepare_a, pack):
 * what a GPU compile makes, less the driver's module. */
static void emu_kernel(qkc_context *ctx, const qkc_spec *spec, qkc_compiled *code, qkc_kernel **kern,
                       qkc_warp_emu **emu)
{
    qkc_compile_options opt = {sizeof opt, "nvptx-sm80", NULL, 0};
    qkc_diag diag;
    size_t need = 0;
    char *bc, msg[512];
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "bc", NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
    bc = malloc(need + 1);
    assert_non_null(bc);
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "bc", bc, need + 1, &need), QKC_OK);
    if (qkc_warp_emu_load(bc, need, "qkc_kernel", emu, msg, sizeof msg))
        fail_msg("emulator: %s", msg);
    free(bc);
    memset(code, 0, sizeof *code);
    code->mm = spec->mm;
    if (qkc_klayout_for(&spec->mm.w, spec->mm.n, spec->mm.k, &code->layout, &diag))
        fail_msg("layout: %s", diag.message);
    code->gpu = 1;
    code->int8_dot = qkc_lower_ptx_int8(&spec->mm, &code->layout);
    code->gpu_mma = qkc_lower_ptx_mma(&spec->mm, &code->layout);
    snprintf(code->target, sizeof code->target, "nvptx-sm80");
    assert_int_equal(qkc_kernel_wrap(ctx, code, 0, kern), QKC_OK);
}

static void test_gpu_kernels_on_the_emulator(void **state)
{
    qkc_context *ctx;
    int cases = 0, mma = 0, dp4a = 0;
    struct timespec t0, t1;
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof gpu_specs / sizeof gpu_specs[0]; i++) {
        qkc_spec *spec;
        qkc_kernel *k;
        qkc_compiled code;
        emu_case ec;
        if (!qkc_case_selected(gpu_specs[i]))
            continue;
        assert_int_equal(qkc_spec_parse(ctx, gpu_specs[i], &spec), QKC_OK);
        emu_kernel(ctx, spec, &code, &k, &ec.emu);
        ec.code = &code;
        for (size_t j = 0; j < sizeof gpu_ms / sizeof gpu_ms[0]; j++) {
            char name[600], msg[768];
            snprintf(name, sizeof name, "%s@nvptx-sm80(emulated):m=%lld", gpu_specs[i], (long long)gpu_ms[j]);
            if (qkc_test_kernel_case_run(ctx, spec, k, name, gpu_ms[j], emu_run, &ec, msg, sizeof msg))
                fail_msg("%s", msg);
            cases++;
            mma += code.gpu_mma && gpu_ms[j] >= QKC_GPU_MMA_MIN_M;
            dp4a += code.int8_dot && !(code.gpu_mma && gpu_ms[j] >= QKC_GPU_MMA_MIN_M);
        }
        qkc_kernel_destroy(k);
        qkc_warp_emu_destroy(ec.emu);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%d GPU kernel runs match the reference on the emulator (%d on the tensor-core path, %d GEMV with "
           "dp4a) in %.1f s\n",
           cases, mma, dp4a, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    assert_true(cases > 0 || getenv("QKC_CASE")); /* QKC_CASE may select none of these */
}

/* Every format x compute type test_cg_ptx assembles, run at m = 5 (GEMV)
 * and m = 33 (tensor cores where the kernel has them; rows off the tile). */
static void test_every_format_on_the_emulator(void **state)
{
    static const int64_t ms[] = {5, 33};
    qkc_context *ctx;
    int kernels = 0, skipped = 0;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
        for (size_t c = 0; c < sizeof computes / sizeof computes[0]; c++) {
            char text[512];
            qkc_spec *spec;
            qkc_kernel *k;
            qkc_compiled code;
            emu_case ec;
            qkc_status st;
            snprintf(text, sizeof text, "matmul n=40 k=256 a=%s %s %s%s", c == 2 ? "bf16" : c == 3 ? "f16" : "f32",
                     formats[f], computes[c], f % 2 ? " bias=f32 act=silu" : "");
            st = qkc_spec_parse(ctx, text, &spec);
            if (st == QKC_ERR_INVALID_SPEC && c > 0) {
                skipped++; /* compute=int8 or bf16 with weights that forbid it */
                continue;
            }
            if (st != QKC_OK)
                fail_msg("%s: %s", text, qkc_context_last_error(ctx));
            if (!qkc_case_selected(text)) {
                qkc_spec_destroy(spec);
                continue;
            }
            emu_kernel(ctx, spec, &code, &k, &ec.emu);
            ec.code = &code;
            for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
                char name[600], msg[768];
                snprintf(name, sizeof name, "%s@nvptx-sm80(emulated):m=%lld", text, (long long)ms[j]);
                if (qkc_test_kernel_case_run(ctx, spec, k, name, ms[j], emu_run, &ec, msg, sizeof msg))
                    fail_msg("%s", msg);
            }
            kernels++;
            qkc_kernel_destroy(k);
            qkc_warp_emu_destroy(ec.emu);
            qkc_spec_destroy(spec);
        }
    qkc_context_destroy(ctx);
    printf("%d format x compute kernels match the reference on the emulator at m = 5 and 33 (%d combinations the "
           "verifier rejects)\n", kernels, skipped);
    assert_true(kernels > 0 || getenv("QKC_CASE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gpu_kernels_on_the_emulator),
                                       cmocka_unit_test(test_every_format_on_the_emulator)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
