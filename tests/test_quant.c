/*
 * Quantize -> dequantize round trips for every format in the tolerance
 * table: error within bound, every blob byte deterministic (whatever the
 * destination held before), and every dtype and preset covered.
 *
 * Rerun one format: QKC_CASE='w=q4_k' ./test_quant
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

enum { N = 64, K = 1024 };

static void test_roundtrip_table(void **state)
{
    (void)state;
    size_t count;
    const qkc_tol_roundtrip *tab = qkc_tol_roundtrip_table(&count);
    const char *only = getenv("QKC_CASE");
    if (only && !*only)
        only = NULL;
    qkc_context *ctx;
    float *w = malloc(sizeof(float) * N * K), *wd = malloc(sizeof(float) * N * K);
    int failures = 0;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t t = 0; t < count; t++) {
        char text[256];
        qkc_spec *spec;
        size_t bytes;
        unsigned char *b1, *b2;
        double err = 0, ref = 0;
        if (only && strcmp(only, tab[t].weights))
            continue;
        snprintf(text, sizeof text, "matmul n=%d k=%d %s", N, K, tab[t].weights);
        qkc_rng r = qkc_rng_from_name(text);
        for (int i = 0; i < N * K; i++)
            w[i] = qkc_rng_normal(&r);
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
            fail_msg("%s: %s", text, qkc_context_last_error(ctx));
        assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
        b1 = malloc(bytes), b2 = malloc(bytes);
        memset(b1, 0x00, bytes);
        memset(b2, 0xA5, bytes);
        if (qkc_quantize(ctx, spec, w, K, b1, bytes) != QKC_OK || qkc_quantize(ctx, spec, w, K, b2, bytes) != QKC_OK)
            fail_msg("%s: quantize: %s", text, qkc_context_last_error(ctx));
        if (memcmp(b1, b2, bytes) != 0) {
            print_error("%s: quantizing twice gives different bytes (some byte is not written)\n", text);
            failures++;
        }
        if (qkc_dequantize(ctx, spec, b1, bytes, wd, K) != QKC_OK)
            fail_msg("%s: dequantize: %s", text, qkc_context_last_error(ctx));
        for (int i = 0; i < N * K; i++) {
            double d = (double)wd[i] - (double)w[i];
            err += d * d;
            ref += (double)w[i] * (double)w[i];
        }
        if (!(err / ref <= tab[t].max_nmse)) {
            print_error("%s: nmse %.4e exceeds the bound %.4e (rerun: QKC_CASE='%s' ./test_quant)\n", text,
                        err / ref, tab[t].max_nmse, tab[t].weights);
            failures++;
        }
        free(b1), free(b2);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    free(w), free(wd);
    assert_int_equal(failures, 0);
}

/* Every element dtype (but the scale-only e8m0) and every preset has a row. */
static void test_table_covers_every_format(void **state)
{
    (void)state;
    size_t count;
    const qkc_tol_roundtrip *tab = qkc_tol_roundtrip_table(&count);
    int missing = 0;
    for (int d = 1; d < QKC_DTYPE_END_; d++) {
        char want[32];
        int found = 0;
        if (d == QKC_DTYPE_E8M0)
            continue;
        snprintf(want, sizeof want, "w=%s", qkc_dtype_keyword((qkc_dtype)d));
        for (size_t t = 0; t < count; t++) {
            size_t l = strlen(want);
            if (!strncmp(tab[t].weights, want, l) && (tab[t].weights[l] == ' ' || tab[t].weights[l] == '\0'))
                found = 1;
        }
        if (!found) {
            print_error("no tolerance row for %s\n", want);
            missing++;
        }
    }
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        char want[32];
        int found = 0;
        snprintf(want, sizeof want, "w=%s", qkc_preset_get((qkc_preset)p)->keyword);
        for (size_t t = 0; t < count; t++)
            if (!strncmp(tab[t].weights, want, strlen(want)))
                found = 1;
        if (!found) {
            print_error("no tolerance row for %s\n", want);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

/* Formats that represent their inputs exactly round-trip bit for bit. */
static void test_exact_inputs(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    size_t bytes;
    float w[4 * 32], wd[4 * 32];
    unsigned char *b;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    /* Integers -7..7 with amax 7 per row: int4 per-channel scale is 1. */
    for (int i = 0; i < 4 * 32; i++)
        w[i] = (float)((i % 15) - 7);
    for (int r = 0; r < 4; r++)
        w[r * 32] = 7.0f;
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=4 k=32 w=int4 group=channel scale=f32", &spec), QKC_OK);
    assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
    b = malloc(bytes);
    assert_int_equal(qkc_quantize(ctx, spec, w, 32, b, bytes), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, b, bytes, wd, 32), QKC_OK);
    assert_memory_equal(w, wd, sizeof w);
    free(b);
    qkc_spec_destroy(spec);
    /* bf16-representable values through w=bf16. */
    for (int i = 0; i < 4 * 32; i++)
        w[i] = qkc_bf16_to_f32((uint16_t)(0x3F80 + i * 3));
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=4 k=32 w=bf16", &spec), QKC_OK);
    assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
    assert_int_equal(bytes, 4 * 32 * 2);
    b = malloc(bytes);
    assert_int_equal(qkc_quantize(ctx, spec, w, 32, b, bytes), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, b, bytes, wd, 32), QKC_OK);
    assert_memory_equal(w, wd, sizeof w);
    free(b);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_table),
        cmocka_unit_test(test_table_covers_every_format),
        cmocka_unit_test(test_exact_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
