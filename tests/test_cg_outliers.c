/*
 * Outliers fused into the kernel: sparse f16 weight outliers
 * (outliers=sparse:F) added after each tile's dense dot products on the
 * real chunk layout, and LLM.int8 activation outlier columns
 * (outliers=act:T) computed in f32 beside the int8 product. Kernels are
 * compared with the reference over M {1,2,3,7,8,33} × N × K on AVX2 and
 * AVX-512; the decomposition itself is checked against an exact product;
 * corrupt CSR arrays and misuse of the keys must fail with their status.
 * A failure prints QKC_CASE=<name> ./test_cg_outliers to rerun one case.
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

#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/testutil.h"

static int x86_targets(const char **out)
{
    uint32_t host = qkc_target_host_features();
    int n = 0;
    if (qkc_target_host_arch() != QKC_ARCH_X86_64) {
        out[n++] = "host";
        return n;
    }
    if (host & QKC_FEAT_AVX512_VNNI)
        out[n++] = "x86_64-avx512-vnni";
    else if (host & QKC_FEAT_AVX512BW)
        out[n++] = "x86_64-avx512";
    else
        print_message("skipped: AVX-512 kernels (this CPU has no AVX-512)\n");
    if (host & QKC_FEAT_AVX2)
        out[n++] = "x86_64-avx2";
    return n;
}

/* One kernel per (target, spec), run for every M; returns failures, adds
 * the cases run to *ran. A spec the shape does not allow is skipped. */
static int sweep_one(qkc_context *ctx, const char *target, const char *text, int *ran)
{
    static const int64_t ms[] = {1, 2, 3, 7, 8, 33};
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    char name[512], err[1024];
    int failed = 0, any = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)ms[i]);
        any |= qkc_case_selected(name);
    }
    if (!any || qkc_spec_parse(ctx, text, &spec) != QKC_OK)
        return 0;
    if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK) {
        print_error("%s|%s: compile failed: %s\n", target, text, qkc_context_last_error(ctx));
        qkc_spec_destroy(spec);
        return 1;
    }
    for (size_t i = 0; i < sizeof ms / sizeof ms[0] && !failed; i++) {
        snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)ms[i]);
        if (!qkc_case_selected(name))
            continue;
        (*ran)++;
        if (qkc_test_kernel_case(ctx, spec, kern, name, ms[i], 0, err, sizeof err)) {
            print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_outliers\n", err, name);
            failed = 1;
        }
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    return failed;
}

static void test_sweep(void **state)
{
    (void)state;
    static const char *const sparse[] = {
        "w=int4 group=32 outliers=sparse:0.01",
        "w=uint4 group=64 scale=f16 zero=int outliers=sparse:0.02",
        "w=nf4 group=64 outliers=sparse:0.01",
        "w=int8 outliers=sparse:0.005",
        "w=fp8e4m3 group=32 outliers=sparse:0.01",
    };
    static const char *const sparse_extra[] = {"", "compute=int8", "a=f16 compute=bf16 bias=f32 act=silu out=bf16"};
    static const char *const act[] = {
        "w=int4 group=32 outliers=act:2.5",
        "w=q4_0 outliers=act:2.5",
        "w=uint4 group=32 scale=f16 zero=float outliers=act:2",
        "w=iq4nl group=32 outliers=act:2.5",
        "w=int8 outliers=act:2.5",
    };
    static const char *const act_extra[] = {"compute=int8", "a=bf16 compute=int8 bias=f32 act=gelu out=f16",
                                            "compute=int8 rotate=hadamard:64"};
    /* (N, K) pairs: off every tile width and chunk, and a longer K */
    static const int64_t ns[] = {17, 100, 3}, ks[] = {250, 1024, 64};
    const char *tg[2];
    int ntg = x86_targets(tg), failures = 0, ran = 0;
    char text[512];
    qkc_context *ctx;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (int t = 0; t < ntg; t++)
        for (size_t ni = 0, ki = 0; ni < 3; ni++, ki++) {
            for (size_t f = 0; f < sizeof sparse / sizeof sparse[0]; f++)
                for (size_t e = 0; e < sizeof sparse_extra / sizeof sparse_extra[0]; e++) {
                    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s %s", (long long)ns[ni], (long long)ks[ki],
                             sparse[f], sparse_extra[e]);
                    failures += sweep_one(ctx, tg[t], text, &ran);
                }
            for (size_t f = 0; f < sizeof act / sizeof act[0]; f++)
                for (size_t e = 0; e < sizeof act_extra / sizeof act_extra[0]; e++) {
                    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s %s", (long long)ns[ni], (long long)ks[ki],
                             act[f], act_extra[e]);
                    failures += sweep_one(ctx, tg[t], text, &ran);
                }
        }
    print_message("%d outlier kernels compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_true(ran > 0 || getenv("QKC_CASE"));
    assert_int_equal(failures, 0);
}

/* The dense part keeps its chunk layout (no dense-f32 fallback). */
static void test_layout_is_not_fallback(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_kernel_info info;
    size_t packed, plain_packed;
    qkc_spec_info si;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=1024 w=int4 group=32 scale=f16 outliers=sparse:0.01", &spec),
                     QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_kernel_query(kern, &info);
    assert_null(strstr(info.layout, "fallback"));
    assert_non_null(strstr(info.layout, "sparse outliers"));
    qkc_kernel_packed_bytes(kern, &packed);
    qkc_spec_query(spec, &si);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    /* the packed blob is the plain layout plus the CSR arrays: ~4.6 bits a weight, not 32 */
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=1024 w=int4 group=32 scale=f16", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_kernel_packed_bytes(kern, &plain_packed);
    assert_true(packed > plain_packed);
    assert_true(packed < plain_packed + 64 * 11 * 6 + 4 * 65 + 3 * 64);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* Corrupt CSR arrays are refused when packing: the kernel indexes with them. */
static void test_corrupt_outliers(void **state)
{
    (void)state;
    enum { N = 8, K = 256 };
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_spec_info si;
    size_t pbytes;
    float w[N * K];
    qkc_rng r = qkc_rng_from_name("corrupt_outliers");
    uint8_t *blob, *packed;
    uint64_t rp_off, col_off;
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=8 k=256 w=int4 group=32 outliers=sparse:0.02", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_spec_query(spec, &si);
    qkc_kernel_packed_bytes(kern, &pbytes);
    blob = malloc(si.weight_bytes);
    packed = malloc(pbytes);
    assert_non_null(blob);
    assert_non_null(packed);
    assert_int_equal(qkc_quantize(ctx, spec, w, K, blob, si.weight_bytes), QKC_OK);
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, si.weight_bytes, packed, pbytes), QKC_OK);
    /* sections: DATA 8·128, SCALES 8·8·4, then OUTLIERS (64-aligned):
     * row_ptr[9], col[8·6] (cap = ceil(0.02·256) = 6) */
    rp_off = (8 * 128 + 63) / 64 * 64 + 8 * 8 * 4;
    rp_off = (rp_off + 63) / 64 * 64;
    col_off = rp_off + 64;
    assert_int_equal(blob[rp_off + 4], 6); /* row 0 holds its 6 outliers */
    blob[col_off + 1] = 0x40;              /* column 0x4000 + x, outside k */
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, si.weight_bytes, packed, pbytes), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "outside k=256"));
    blob[col_off + 1] = 0;
    blob[rp_off + 4] = 7; /* row 1 would start past row 2 */
    blob[rp_off + 8] = 5;
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, si.weight_bytes, packed, pbytes), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "outlier row pointer"));
    free(blob);
    free(packed);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* Run `text` (compute=int8) on A with a few huge columns; return the
 * NMSE of the kernel against the exact f32 product of A and the
 * dequantized weights, and check the kernel against the reference. */
static double int8_error(qkc_context *ctx, const char *text, double *vs_ref)
{
    enum { M = 4, N = 48, K = 512 };
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_spec_info si;
    size_t pbytes;
    static float w[N * K], a[M * K], wd[N * K], c[M * N], cr[M * N];
    qkc_rng r = qkc_rng_from_name("act_outliers");
    uint8_t *blob, *packed;
    double err = 0, ref = 0, e2 = 0;
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < M * K; i++)
        a[i] = qkc_rng_normal(&r);
    a[1 * K + 7] = 300.0f; /* LLM.int8-style outlier features */
    a[2 * K + 100] = -150.0f;
    a[3 * K + 101] = 90.0f;
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_spec_query(spec, &si);
    qkc_kernel_packed_bytes(kern, &pbytes);
    blob = malloc(si.weight_bytes);
    packed = malloc(pbytes);
    assert_non_null(blob);
    assert_non_null(packed);
    assert_int_equal(qkc_quantize(ctx, spec, w, K, blob, si.weight_bytes), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, si.weight_bytes, wd, K), QKC_OK);
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, si.weight_bytes, packed, pbytes), QKC_OK);
    {
        qkc_matmul_args ak = {a, K, packed, pbytes, NULL, c, N, M};
        qkc_matmul_args ar = {a, K, blob, si.weight_bytes, NULL, cr, N, M};
        assert_int_equal(qkc_kernel_run(ctx, kern, &ak, NULL), QKC_OK);
        assert_int_equal(qkc_reference_matmul(ctx, spec, &ar), QKC_OK);
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double exact = 0;
            for (int k = 0; k < K; k++)
                exact += (double)a[m * K + k] * (double)wd[n * K + k];
            err += (c[m * N + n] - exact) * (c[m * N + n] - exact);
            e2 += ((double)c[m * N + n] - cr[m * N + n]) * ((double)c[m * N + n] - cr[m * N + n]);
            ref += exact * exact;
        }
    *vs_ref = e2 / ref;
    free(blob);
    free(packed);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    return err / ref;
}

static void test_act_decomposition(void **state)
{
    (void)state;
    qkc_context *ctx;
    double vr_plain, vr_act, vr_q;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    double plain = int8_error(ctx, "matmul n=48 k=512 w=int4 group=32 scale=f16 compute=int8", &vr_plain);
    double act = int8_error(ctx, "matmul n=48 k=512 w=int4 group=32 scale=f16 compute=int8 outliers=act:6", &vr_act);
    double q40 = int8_error(ctx, "matmul n=48 k=512 w=q4_0 compute=int8 outliers=act:6", &vr_q);
    print_message("int8 vs exact f32 NMSE: plain %.3e, act:6 %.3e (q4_0 %.3e)\n", plain, act, q40);
    /* the outliers crush their rows' block scales without the split */
    assert_true(act * 20 < plain);
    assert_true(q40 * 20 < plain);
    assert_true(vr_plain < 1e-10 && vr_act < 1e-10 && vr_q < 1e-10);
    qkc_context_destroy(ctx);
}

static void test_spec_rules(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        qkc_status st;
        const char *msg;
    } cases[] = {
        {"matmul n=4 k=64 w=int4 outliers=act:6", QKC_ERR_INVALID_SPEC, "needs compute=int8"},
        {"matmul n=4 k=64 w=q4_0 compute=f32 outliers=act:6", QKC_ERR_INVALID_SPEC, "needs compute=int8"},
        {"matmul n=4 k=64 w=int4 compute=int8 outliers=act:0", QKC_ERR_INVALID_SPEC, "threshold must be in"},
        {"matmul n=4 k=64 w=int4 compute=int8 outliers=act:1e31", QKC_ERR_INVALID_SPEC, "threshold must be in"},
        {"matmul n=4 k=64 w=int4 compute=int8 outliers=act:", QKC_ERR_PARSE, "expected act:THRESHOLD"},
        {"matmul n=4 k=64 w=int4 compute=int8 outliers=act:-1", QKC_ERR_PARSE, "expected a threshold"},
        {"matmul n=4 k=64 w=int4 compute=int8 outliers=act:inf", QKC_ERR_PARSE, "expected a threshold"},
        {"matmul n=4 k=64 w=q4_0 outliers=sparse", QKC_ERR_INVALID_SPEC, "planar layout only"},
        {"matmul n=4 k=64 w=nf4 compute=int8 outliers=act:6", QKC_ERR_INVALID_SPEC, "not integers"},
    };
    qkc_context *ctx;
    qkc_spec *spec;
    char buf[256];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkc_status st = qkc_spec_parse(ctx, cases[i].text, &spec);
        if (st != cases[i].st || !strstr(qkc_context_last_error(ctx), cases[i].msg))
            fail_msg("%s: status %d, message '%s'", cases[i].text, (int)st, qkc_context_last_error(ctx));
    }
    /* canonical form round trip, presets included */
    if (qkc_test_canonical(ctx, "matmul n=4 k=64 compute=int8 outliers=act:6.5 w=q4_0",
                           "matmul n=4 k=64 a=f32 w=q4_0 outliers=act:6.5 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_rules),
        cmocka_unit_test(test_layout_is_not_fallback),
        cmocka_unit_test(test_corrupt_outliers),
        cmocka_unit_test(test_act_decomposition),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
