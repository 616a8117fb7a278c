/*
 * Regressions found by the fuzzers (tests/fuzz/README.md lists the
 * findings) that need the compiler: one test each, named after what broke.
 * Kernels are compared with the reference on the same weight blob by the
 * tolerance table's condition bound, on AVX2 and on the host.
 * A failure prints QKC_CASE=<name> ./test_cg_fuzz_regressions to rerun one case.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/testutil.h"
#include "util/tolerance.h"

#define PROG "test_cg_fuzz_regressions"

/* The targets this machine runs: the host, and AVX2 on an x86 host with it. */
static int targets(const char **out)
{
    int n = 0;
    out[n++] = "host";
    if (qkc_target_host_arch() == QKC_ARCH_X86_64 && (qkc_target_host_features() & QKC_FEAT_AVX2))
        out[n++] = "x86_64-avx2";
    return n;
}

/* Compile `text` for `target`, pack `blob`, run on M rows of `a` and
 * compare with the reference on the same blob; cmocka-fails the case. */
static void check_blob(qkc_context *ctx, const char *target, const char *text, const void *blob, size_t bytes,
                       const float *a, int64_t m)
{
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_spec_info info;
    qkc_compile_options opt = {.struct_size = sizeof opt, .target = target};
    size_t pbytes = 0;
    char name[512];
    snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)m);
    if (!qkc_case_selected(name))
        return;
    QKC_CASE_CHECK(PROG, name, qkc_spec_parse(ctx, text, &spec) == QKC_OK, "%s", qkc_context_last_error(ctx));
    qkc_spec_query(spec, &info);
    QKC_CASE_CHECK(PROG, name, qkc_kernel_compile(ctx, spec, &opt, &kern) == QKC_OK, "%s",
                   qkc_context_last_error(ctx));
    qkc_kernel_packed_bytes(kern, &pbytes);
    {
        int64_t n = info.n, k = info.k;
        float *w = malloc((size_t)(n * k) * sizeof *w), *c = calloc((size_t)(m * n), sizeof *c),
              *ref = calloc((size_t)(m * n), sizeof *ref);
        void *packed = malloc(pbytes ? pbytes : 1);
        const qkc_tol_kernel *tol = qkc_tol_kernel_for(info.compute_type, info.out_type);
        qkc_matmul_args ar = {a, k, blob, bytes, NULL, ref, n, m}, ak = {a, k, packed, pbytes, NULL, c, n, m};
        assert_non_null(w), assert_non_null(c), assert_non_null(ref), assert_non_null(packed);
        QKC_CASE_CHECK(PROG, name,
                       qkc_dequantize(ctx, spec, blob, bytes, w, k) == QKC_OK &&
                           qkc_weights_pack(ctx, kern, blob, bytes, packed, pbytes) == QKC_OK &&
                           qkc_reference_matmul(ctx, spec, &ar) == QKC_OK && qkc_kernel_run(ctx, kern, &ak, NULL) == QKC_OK,
                       "%s", qkc_context_last_error(ctx));
        for (int64_t row = 0; row < m; row++)
            for (int64_t col = 0; col < n; col++) {
                double cond = 0, x = c[row * n + col], y = ref[row * n + col];
                for (int64_t j = 0; j < k; j++)
                    cond += fabs((double)a[row * k + j] * (double)w[col * k + j]);
                QKC_CASE_CHECK(PROG, name, fabs(x - y) <= tol->cond_factor * sqrt((double)k) * 0x1p-24 * cond,
                               "element (%lld, %lld) is %.9g, the reference %.9g", (long long)row, (long long)col, x, y);
            }
        free(w), free(c), free(ref), free(packed);
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
}

/* fuzz_run, 2026-12-07: the AVX2 int8 path (vpmaddubsw over an unsigned
 * and a sign-adjusted operand) took the activations' magnitudes and gave
 * their signs to the weights; a q8_0 weight of -128 (valid in the format,
 * though ggml's quantizer never writes it) stays -128 when negated, so its
 * product with every negative activation had the wrong sign. */
static void test_regression_q8_0_int8_weight_minus_128(void **state)
{
    enum { N = 4, K = 64, BLOCK = 34 };
    static const char *const text = "matmul n=4 k=64 w=q8_0 compute=int8";
    const char *t[2];
    int nt = targets(t);
    uint8_t blob[N * (K / 32) * BLOCK];
    float a[3 * K];
    qkc_context *ctx = NULL;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .disk_cache = QKC_DISK_CACHE_OFF};
    (void)state;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    /* ggml's block_q8_0: an f16 scale, then 32 int8 codes. Row 0 is all
     * -128, row 1 alternates -128 and 127, rows 2 and 3 mix -128 in. */
    for (int r = 0; r < N; r++)
        for (int b = 0; b < K / 32; b++) {
            uint8_t *blk = blob + (r * (K / 32) + b) * BLOCK;
            uint16_t d = qkc_f32_to_f16(0.01f * (float)(r + 1));
            blk[0] = (uint8_t)d, blk[1] = (uint8_t)(d >> 8);
            for (int i = 0; i < 32; i++) {
                int v = r == 0 ? -128 : r == 1 ? (i % 2 ? 127 : -128) : (i % 3 == 0 ? -128 : (i * 37 + r) % 255 - 127);
                blk[2 + i] = (uint8_t)(int8_t)v;
            }
        }
    /* activations of both signs, the negative ones under the -128s */
    for (int i = 0; i < 3 * K; i++)
        a[i] = (float)((i % 5) + 1) * (i % 2 ? -0.25f : 0.5f) * (i % 7 == 0 ? -1.0f : 1.0f);
    for (int i = 0; i < nt; i++)
        for (int64_t m = 1; m <= 3; m++)
            check_blob(ctx, t[i], text, blob, sizeof blob, a, m);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_q8_0_int8_weight_minus_128),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
