/*
 * The int8 activation quantization (formats/ref.h: qkc_ref_int8_quantize_row,
 * qkc_int8_code) against the semantics of ir/spec.h written the plain way:
 * amax by fmaxf, d = amax/127 in f32, x·(1/d) in f32, round half to even
 * in double, clamp to ±127, and 0 for a NaN. Codes and scales must agree
 * bit for bit on random rows of every length to 100, rows built around
 * exact ties (k + 1/2), values just past ±127.5, tiny and subnormal
 * scales, infinities and NaNs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/ref.h"
#include "ir/dtype.h"
#include "ir/spec.h"
#include "util/testutil.h"

#define MAXK 100

static int8_t oracle_code(float v)
{
    double r;
    if (v != v)
        return 0;
    r = qkc_round_even((double)v);
    return (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
}

static void oracle_row(const float *x, int64_t k, int8_t *q, float *d)
{
    for (int64_t b = 0, bi = 0; b < k; b += QKC_INT8_BLOCK, bi++) {
        int64_t len = b + QKC_INT8_BLOCK <= k ? QKC_INT8_BLOCK : k - b;
        float amax = 0.0f, scale, inv;
        for (int64_t i = 0; i < len; i++)
            amax = fmaxf(amax, fabsf(x[b + i]));
        scale = amax / 127.0f;
        inv = scale != 0.0f ? 1.0f / scale : 0.0f;
        d[bi] = scale;
        for (int64_t i = 0; i < len; i++)
            q[b + i] = oracle_code(x[b + i] * inv);
    }
}

static void check_row(const char *what, const float *x, int64_t k)
{
    int8_t q[MAXK], qo[MAXK];
    float d[MAXK / QKC_INT8_BLOCK + 1], dob[MAXK / QKC_INT8_BLOCK + 1];
    memset(q, 0x55, sizeof q);
    qkc_ref_int8_quantize_row(x, k, q, d);
    oracle_row(x, k, qo, dob);
    for (int64_t b = 0; b * QKC_INT8_BLOCK < k; b++)
        if (qkc_f32_bits(d[b]) != qkc_f32_bits(dob[b]))
            fail_msg("%s k=%lld: block %lld scale %a, the semantics give %a", what, (long long)k, (long long)b,
                     (double)d[b], (double)dob[b]);
    for (int64_t i = 0; i < k; i++)
        if (q[i] != qo[i])
            fail_msg("%s k=%lld: element %lld (x=%a) code %d, the semantics give %d", what, (long long)k,
                     (long long)i, (double)x[i], q[i], qo[i]);
}

static void test_random_rows(void **state)
{
    qkc_rng r = qkc_rng_from_name("act-quant-random");
    float x[MAXK];
    (void)state;
    for (int64_t k = 1; k <= MAXK; k++)
        for (int rep = 0; rep < 20; rep++) {
            float scale = ldexpf(1.0f, (int)qkc_rng_below(&r, 60) - 30);
            for (int64_t i = 0; i < k; i++)
                x[i] = qkc_rng_normal(&r) * scale;
            check_row("random", x, k);
        }
}

/* Every code as an exact tie: with amax = 127 the scale is 1, so x = c + 1/2
 * must round to the even neighbour; and values just past 127.5. */
static void test_ties_and_ends(void **state)
{
    float x[MAXK];
    (void)state;
    for (int c = -128; c < 127; c += 30) {
        for (int i = 0; i < 32; i++)
            x[i] = (float)(c + (i % 30)) + 0.5f;
        x[31] = 127.0f;
        check_row("ties", x, 32);
    }
    for (int i = 0; i < 32; i++)
        x[i] = i % 2 ? 127.0f : nextafterf(127.5f, i % 4 ? 200.0f : 0.0f);
    x[0] = 127.0f;
    check_row("around 127.5", x, 32);
    for (int i = 0; i < 32; i++)
        x[i] = -(float)i * 4.1f;
    check_row("negative", x, 32);
}

/* Scales at the bottom of f32: 1/d overflows to infinity or d underflows
 * to 0; and infinities and NaNs in a row (the spec leaves their codes to
 * the rule above: NaN gives 0, ±inf saturates or becomes NaN·0). */
static void test_extremes(void **state)
{
    float x[MAXK];
    static const float tiny[] = {1e-45f, 1e-43f, 1e-40f, 1e-38f, 1.5e-38f, 1e-36f};
    (void)state;
    for (size_t t = 0; t < sizeof tiny / sizeof tiny[0]; t++) {
        for (int i = 0; i < 64; i++)
            x[i] = tiny[t] * (float)(i - 31) / 31.0f;
        check_row("tiny", x, 64);
    }
    for (int i = 0; i < 64; i++)
        x[i] = (float)i - 20.0f;
    x[3] = INFINITY;
    x[40] = -INFINITY;
    x[5] = NAN;
    x[50] = NAN;
    check_row("inf and nan", x, 64);
    for (int i = 0; i < 32; i++)
        x[i] = NAN;
    check_row("all nan", x, 32);
    for (int i = 0; i < 32; i++)
        x[i] = i % 2 ? 0.0f : -0.0f;
    check_row("zeros", x, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_rows),
        cmocka_unit_test(test_ties_and_ends),
        cmocka_unit_test(test_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
