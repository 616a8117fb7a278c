/*
 * The reference matmul against independent computations: exact products
 * (one-hot activations select weight columns exactly), hand-worked compute
 * type cases (int8 blocks, bf16/f16/tf32 operand rounding), what each
 * compute type costs against compute=f32 on the presets that default to
 * int8 (the tolerance table's compute-type bounds), the epilogue, strides,
 * and output dtypes.
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
#include "ir/format.h"
#include "qkc/qkc.h"
#include "util/testutil.h"
#include "util/tolerance.h"

typedef struct fixture {
    qkc_context *ctx;
    qkc_spec *spec;
    size_t bytes;
    unsigned char *blob;
} fixture;

static void setup_spec(fixture *f, const char *text, const float *w, int64_t ldw)
{
    if (!f->ctx)
        assert_int_equal(qkc_context_create(NULL, &f->ctx), QKC_OK);
    if (qkc_spec_parse(f->ctx, text, &f->spec) != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(f->ctx));
    assert_int_equal(qkc_weights_bytes(f->ctx, f->spec, &f->bytes), QKC_OK);
    f->blob = malloc(f->bytes);
    assert_non_null(f->blob);
    if (qkc_quantize(f->ctx, f->spec, w, ldw, f->blob, f->bytes) != QKC_OK)
        fail_msg("%s: quantize: %s", text, qkc_context_last_error(f->ctx));
}

static void teardown_spec(fixture *f)
{
    qkc_spec_destroy(f->spec);
    free(f->blob);
    f->spec = NULL;
    f->blob = NULL;
}

/* C = A·Wᵀ with one-hot rows of A equals columns of dequant(W), exactly. */
static void test_one_hot_every_format(void **state)
{
    (void)state;
    /* compute=f32 for the presets that default to int8: operands exact */
    static const char *const specs[] = {
        "matmul n=19 k=256 w=q4_0 compute=f32", "matmul n=19 k=256 w=q4_1 compute=f32",
        "matmul n=19 k=256 w=q5_0 compute=f32", "matmul n=19 k=256 w=q5_1 compute=f32",
        "matmul n=19 k=256 w=q8_0 compute=f32", "matmul n=19 k=256 w=q4_k compute=f32",
        "matmul n=19 k=256 w=q5_k compute=f32", "matmul n=19 k=256 w=q6_k compute=f32",
        "matmul n=19 k=256 w=iq4_nl compute=f32", "matmul n=19 k=256 w=mxfp4 compute=f32",
        "matmul n=19 k=256 w=mxfp8", "matmul n=19 k=256 w=mxfp8:e5m2",
        "matmul n=19 k=256 w=nf4_bnb", "matmul n=19 k=256 w=nf4_bnb:dq", "matmul n=32 k=256 w=gptq group=64",
        "matmul n=32 k=256 w=gptq:3:actorder group=32", "matmul n=32 k=256 w=awq group=64",
        "matmul n=19 k=250 w=int4 group=32 scale=f16",  "matmul n=19 k=250 w=uint4 group=64 scale=bf16 zero=int",
        "matmul n=19 k=250 w=int3 group=channel",       "matmul n=19 k=250 w=uint8 group=tensor zero=float",
        "matmul n=19 k=250 w=int2 group=16 scale=int8:f32:4", "matmul n=19 k=250 w=nf4 group=64 scale=f16",
        "matmul n=19 k=250 w=fp4 group=32 scale=e8m0",  "matmul n=19 k=250 w=fp8e4m3 group=channel",
        "matmul n=19 k=250 w=fp8e5m2 group=128 scale=fp8e4m3:f32:2", "matmul n=19 k=250 w=int8 outliers=sparse:0.02",
        "matmul n=19 k=250 w=bf16",  "matmul n=19 k=250 w=f16",          "matmul n=19 k=250 w=tf32",
        "matmul n=19 k=250 w=f32",   "matmul n=19 k=250 w=iq4nl group=32 scale=f16",
        "matmul n=19 k=250 w=uint6 group=50 scale=f32 zero=int", "matmul n=19 k=250 w=int5 group=25 scale=e8m0",
    };
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fixture f = {0};
        qkc_spec_info info;
        qkc_rng r = qkc_rng_from_name(specs[s]);
        qkc_spec *probe;
        qkc_context *pctx;
        assert_int_equal(qkc_context_create(NULL, &pctx), QKC_OK);
        assert_int_equal(qkc_spec_parse(pctx, specs[s], &probe), QKC_OK);
        qkc_spec_query(probe, &info);
        int64_t n = info.n, k = info.k;
        float *w = malloc((size_t)(n * k) * sizeof *w), *wd = malloc((size_t)(n * k) * sizeof *wd);
        float *a = calloc((size_t)(k * k), sizeof *a), *c = malloc((size_t)(k * n) * sizeof *c);
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.1f;
        setup_spec(&f, specs[s], w, k);
        assert_int_equal(qkc_dequantize(f.ctx, f.spec, f.blob, f.bytes, wd, k), QKC_OK);
        for (int64_t i = 0; i < k; i++)
            a[i * k + i] = 1.0f; /* M = K rows: identity */
        qkc_matmul_args args = {a, k, f.blob, f.bytes, NULL, c, n, k};
        if (qkc_reference_matmul(f.ctx, f.spec, &args) != QKC_OK)
            fail_msg("%s: %s", specs[s], qkc_context_last_error(f.ctx));
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < n; j++)
                if (c[i * n + j] != wd[j * k + i])
                    fail_msg("%s: C[%lld][%lld] = %.9g but dequant(W)[%lld][%lld] = %.9g", specs[s], (long long)i,
                             (long long)j, c[i * n + j], (long long)j, (long long)i, wd[j * k + i]);
        teardown_spec(&f);
        qkc_context_destroy(f.ctx);
        qkc_spec_destroy(probe);
        qkc_context_destroy(pctx);
        free(w), free(wd), free(a), free(c);
    }
}

/* Run a 1×K by K×1 product with w=f32 weights (exact), return C. */
static float dot_f32(const char *extra, const float *a, const float *w, int64_t k, const float *bias)
{
    char text[256];
    fixture f = {0};
    float c = NAN;
    snprintf(text, sizeof text, "matmul n=1 k=%lld %s", (long long)k, extra);
    setup_spec(&f, text, w, k);
    qkc_matmul_args args = {a, k, f.blob, f.bytes, bias, &c, 1, 1};
    if (qkc_reference_matmul(f.ctx, f.spec, &args) != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(f.ctx));
    teardown_spec(&f);
    qkc_context_destroy(f.ctx);
    return c;
}

static void test_int8_compute(void **state)
{
    (void)state;
    /* K = 40: one full block of 32 and a tail block of 8. */
    float a[40], w[40];
    for (int i = 0; i < 40; i++)
        a[i] = 0.0f, w[i] = 1.0f;
    a[0] = 127.0f; /* block 0: amax 127, d = 1 */
    a[1] = 2.5f;   /* rne -> 2 */
    a[2] = 3.5f;   /* rne -> 4 */
    a[3] = -2.5f;  /* rne -> -2 */
    a[32] = 0.5f;  /* block 1: amax 0.5, d = 0.5/127 */
    a[33] = -0.25f; /* x/d = -63.5 -> rne -64 */
    double d1 = (double)(0.5f / 127.0f);
    float inv = 1.0f / (0.5f / 127.0f);
    double q33 = -0.25f * inv < -63.75f ? -64 : (-0.25f * inv > -63.25f ? -63 : -64);
    double want = 127 + 2 + 4 - 2 + d1 * 127 + d1 * q33;
    assert_true(q33 == -64);
    float got = dot_f32("w=int8 group=tensor scale=e8m0 compute=int8", a, w, 40, NULL);
    assert_true(got == (float)want);
    /* The same product in f32 compute is exact. */
    assert_true(dot_f32("w=f32", a, w, 40, NULL) == 127.0f + 2.5f + 3.5f - 2.5f + 0.5f - 0.25f);
    /* An all-zero block gives zero, not NaN. */
    float z[40] = {0};
    assert_true(dot_f32("w=int8 group=tensor scale=e8m0 compute=int8", z, w, 40, NULL) == 0.0f);
}

/* What each compute type's operand rounding costs against compute=f32 on
 * the same weights (tests/util/tolerance.h, the compute-type bounds), for
 * every preset that computes in int8 by default: that default's error. */
static void test_compute_error(void **state)
{
    (void)state;
    enum { M = 16, N = 64, K = 1024 };
    size_t count;
    const qkc_tol_compute *tab = qkc_tol_compute_table(&count);
    double worst[8] = {0};
    int presets = 0;
    float *w = malloc((size_t)N * K * sizeof *w), *a = malloc((size_t)M * K * sizeof *a);
    float *c32 = malloc((size_t)M * N * sizeof *c32), *c = malloc((size_t)M * N * sizeof *c);
    assert_true(w && a && c32 && c && count <= sizeof worst / sizeof worst[0]);
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        const qkc_preset_desc *pd = qkc_preset_get((qkc_preset)p);
        char text[128];
        fixture f = {0};
        qkc_spec_info info;
        qkc_rng r;
        if (!pd || !pd->vec_dot_type[0])
            continue;
        presets++;
        snprintf(text, sizeof text, "matmul n=%d k=%d w=%s", N, K, pd->keyword);
        r = qkc_rng_from_name(text);
        for (int64_t i = 0; i < (int64_t)N * K; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        for (int64_t i = 0; i < (int64_t)M * K; i++)
            a[i] = qkc_rng_normal(&r);
        setup_spec(&f, text, w, K);
        qkc_spec_query(f.spec, &info);
        assert_string_equal(info.compute_type, "int8"); /* the default measured here */
        qkc_spec_destroy(f.spec);
        snprintf(text, sizeof text, "matmul n=%d k=%d w=%s compute=f32", N, K, pd->keyword);
        assert_int_equal(qkc_spec_parse(f.ctx, text, &f.spec), QKC_OK);
        {
            qkc_matmul_args args = {a, K, f.blob, f.bytes, NULL, c32, N, M};
            assert_int_equal(qkc_reference_matmul(f.ctx, f.spec, &args), QKC_OK);
        }
        for (size_t t = 0; t < count; t++) {
            qkc_spec *spec;
            double err = 0, ref = 0;
            qkc_matmul_args args = {a, K, f.blob, f.bytes, NULL, c, N, M};
            snprintf(text, sizeof text, "matmul n=%d k=%d w=%s compute=%s", N, K, pd->keyword, tab[t].compute);
            assert_int_equal(qkc_spec_parse(f.ctx, text, &spec), QKC_OK);
            assert_int_equal(qkc_reference_matmul(f.ctx, spec, &args), QKC_OK);
            qkc_spec_destroy(spec);
            for (int64_t i = 0; i < (int64_t)M * N; i++) {
                err += ((double)c[i] - (double)c32[i]) * ((double)c[i] - (double)c32[i]);
                ref += (double)c32[i] * (double)c32[i];
            }
            if (err / ref > worst[t])
                worst[t] = err / ref;
            if (!(err / ref <= tab[t].max_nmse))
                fail_msg("%s: nmse %.3e against compute=f32 exceeds the bound %.2g (tests/util/tolerance.c)", text,
                         err / ref, tab[t].max_nmse);
        }
        teardown_spec(&f);
        qkc_context_destroy(f.ctx);
    }
    for (size_t t = 0; t < count; t++)
        print_message("compute=%s against compute=f32: nmse at most %.3e over %d presets (bound %.2g)\n",
                      tab[t].compute, worst[t], presets, tab[t].max_nmse);
    assert_true(presets > 0);
    free(w), free(a), free(c32), free(c);
}

static void test_rounding_compute_types(void **state)
{
    (void)state;
    float w[1] = {1.0f}, a[1];
    a[0] = 1.00390625f; /* bf16 tie: 1 + 2^-8 -> 1.0 */
    assert_true(dot_f32("w=f32 compute=bf16", a, w, 1, NULL) == 1.0f);
    assert_true(dot_f32("w=f32", a, w, 1, NULL) == 1.00390625f);
    a[0] = 1.0f + 0x1p-11f; /* f16 and tf32 tie -> 1.0 */
    assert_true(dot_f32("w=f32 compute=f16", a, w, 1, NULL) == 1.0f);
    assert_true(dot_f32("w=f32 compute=tf32", a, w, 1, NULL) == 1.0f);
    a[0] = 1.0f + 0x3p-11f; /* tie -> even above */
    assert_true(dot_f32("w=f32 compute=f16", a, w, 1, NULL) == 1.0f + 0x1p-9f);
    /* Weights are rounded too. */
    float w2[1] = {1.00390625f}, a1[1] = {1.0f};
    assert_true(dot_f32("w=f32 compute=bf16", a1, w2, 1, NULL) == 1.0f);
}

static void test_epilogue(void **state)
{
    (void)state;
    float w[2] = {1.0f, 1.0f}, a[2] = {0.5f, 0.5f}, bias[1] = {-2.0f}, pos_bias[1] = {0.25f};
    assert_true(dot_f32("w=f32 bias=f32", a, w, 2, bias) == -1.0f);
    assert_true(dot_f32("w=f32 bias=f32 act=relu", a, w, 2, bias) == 0.0f);
    assert_true(dot_f32("w=f32 bias=f32 act=relu", a, w, 2, pos_bias) == 1.25f);
    assert_true(dot_f32("w=f32 act=gelu", a, w, 2, NULL) == (float)0.8413447460685429);    /* gelu(1) */
    assert_true(dot_f32("w=f32 bias=f32 act=silu", a, w, 2, bias) == (float)(-1.0 / (1.0 + exp(1.0))));
    assert_true(dot_f32("w=f32 act=silu", a, w, 2, NULL) == (float)(1.0 / (1.0 + exp(-1.0))));
}

static void test_dtypes_and_strides(void **state)
{
    (void)state;
    /* a=f16 and a=bf16 inputs, out=f16/bf16 outputs, lda/ldc padding. */
    enum { M = 3, N = 5, K = 7, LDA = 9, LDC = 6 };
    float w[N * K], wd[N * K];
    uint16_t a16[M * LDA], c16[M * LDC];
    float cf[M * LDC];
    qkc_rng r = qkc_rng_from_name("dtypes_and_strides");
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r);
    for (int pass = 0; pass < 4; pass++) {
        int a_is_bf16 = pass & 1, out_is_bf16 = pass >> 1;
        char text[128];
        fixture f = {0};
        snprintf(text, sizeof text, "matmul n=%d k=%d a=%s w=bf16 out=%s", N, K, a_is_bf16 ? "bf16" : "f16",
                 out_is_bf16 ? "bf16" : "f16");
        setup_spec(&f, text, w, K);
        assert_int_equal(qkc_dequantize(f.ctx, f.spec, f.blob, f.bytes, wd, K), QKC_OK);
        for (int i = 0; i < M * LDA; i++) /* padding holds NaN: reading it would show */
            a16[i] = a_is_bf16 ? qkc_f32_to_bf16(i % LDA < K ? qkc_rng_normal(&r) : NAN)
                               : qkc_f32_to_f16(i % LDA < K ? qkc_rng_normal(&r) : NAN);
        for (int i = 0; i < M * LDC; i++)
            c16[i] = 0xABCD;
        qkc_matmul_args args = {a16, LDA, f.blob, f.bytes, NULL, c16, LDC, M};
        assert_int_equal(qkc_reference_matmul(f.ctx, f.spec, &args), QKC_OK);
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int t = 0; t < K; t++) {
                    float av = a_is_bf16 ? qkc_bf16_to_f32(a16[i * LDA + t]) : qkc_f16_to_f32(a16[i * LDA + t]);
                    acc += (double)av * (double)wd[j * K + t];
                }
                uint16_t want = out_is_bf16 ? qkc_f32_to_bf16((float)acc) : qkc_f32_to_f16((float)acc);
                assert_int_equal(c16[i * LDC + j], want);
            }
            assert_int_equal(c16[i * LDC + N], 0xABCD); /* ldc padding untouched */
        }
        teardown_spec(&f);
        qkc_context_destroy(f.ctx);
    }
    (void)cf;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_hot_every_format), cmocka_unit_test(test_int8_compute),
        cmocka_unit_test(test_compute_error),
        cmocka_unit_test(test_rounding_compute_types), cmocka_unit_test(test_epilogue),
        cmocka_unit_test(test_dtypes_and_strides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
