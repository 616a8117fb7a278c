/*
 * Element dtypes: every decode table against the published values
 * (formats.md Appendix A, §3.1, §2.14, §5.2), the conversion test vectors
 * (§4.2, §6, §7), and the f16 conversion against the compiler's own
 * _Float16 (an independent implementation) where the compiler has it.
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

#include "fp8_tables.inc"

static int same_value(float got, double want)
{
    if (isnan(want))
        return isnan(got);
    return (double)got == want && !!signbit(got) == !!signbit(want);
}

static double table_value(const char *s)
{
    if (!strcmp(s, "NaN"))
        return NAN;
    if (!strcmp(s, "Inf"))
        return INFINITY;
    return strtod(s, NULL);
}

static void check_fp8_table(qkc_dtype dt, const char *const *table)
{
    int bad = 0;
    for (uint32_t c = 0; c < 256; c++) {
        double want = table_value(table[c & 0x7F]);
        if (c & 0x80)
            want = -want;
        float got = qkc_dtype_decode(dt, c);
        if (!same_value(got, want)) {
            print_error("%s code 0x%02X: got %.9g, want %.9g\n", qkc_dtype_keyword(dt), c, got, want);
            bad++;
        }
        /* Every non-NaN code encodes back to itself. */
        if (!isnan(want) && qkc_dtype_encode(dt, got, 0) != c) {
            print_error("%s code 0x%02X does not round-trip (encodes to 0x%02X)\n", qkc_dtype_keyword(dt), c,
                        qkc_dtype_encode(dt, got, 0));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_fp8_tables(void **state)
{
    (void)state;
    check_fp8_table(QKC_DTYPE_FP8E4M3, e4m3_table);
    check_fp8_table(QKC_DTYPE_FP8E5M2, e5m2_table);
}

static void test_fp8_vectors(void **state)
{
    (void)state;
    /* formats.md §4.2: input, non-saturating code, saturating code. */
    static const struct {
        float x;
        uint32_t nosat, sat;
    } e4m3[] = {
        {448.0f, 0x7E, 0x7E},   {464.0f, 0x7E, 0x7E},   {464.0001f, 0x7F, 0x7E}, {480.0f, 0x7F, 0x7E},
        {1e6f, 0x7F, 0x7E},     {-0.0f, 0x80, 0x80},    {0x1p-10f, 0x00, 0x00},  {1.5f * 0x1p-9f, 0x02, 0x02},
        {0.1f, 0x1D, 0x1D},     {1.0625f, 0x38, 0x38},  {1.1875f, 0x3A, 0x3A},   {-3.3f, 0xC5, 0xC5},
    }, e5m2[] = {
        {57344.0f, 0x7B, 0x7B}, {61439.0f, 0x7B, 0x7B}, {61440.0f, 0x7C, 0x7B},  {65504.0f, 0x7C, 0x7B},
        {0x1p-16f, 0x01, 0x01}, {0x1p-17f, 0x00, 0x00}, {7.63e-6f, 0x01, 0x01},  {0.1f, 0x2E, 0x2E},
    };
    for (size_t i = 0; i < sizeof e4m3 / sizeof e4m3[0]; i++) {
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E4M3, e4m3[i].x, 0), e4m3[i].nosat);
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E4M3, e4m3[i].x, 1), e4m3[i].sat);
    }
    for (size_t i = 0; i < sizeof e5m2 / sizeof e5m2[0]; i++) {
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E5M2, e5m2[i].x, 0), e5m2[i].nosat);
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E5M2, e5m2[i].x, 1), e5m2[i].sat);
    }
    /* NaN keeps its sign and gives the all-ones NaN code; ±Inf. */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E4M3, NAN, 0), 0x7F);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E4M3, -NAN, 0), 0xFF);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E5M2, -INFINITY, 0), 0xFC);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E5M2, INFINITY, 1), 0x7B);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP8E4M3, -INFINITY, 1), 0xFE);
}

static void test_fp4_table(void **state)
{
    (void)state;
    static const float pos[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (uint32_t c = 0; c < 16; c++) {
        float want = c & 8 ? -pos[c & 7] : pos[c & 7];
        float got = qkc_dtype_decode(QKC_DTYPE_FP4, c);
        assert_true(got == want && !!signbit(got) == !!signbit(want));
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, got, 0), c);
    }
    /* Round to nearest even between neighbours; saturation at 6 always. */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 0.75f, 0), 2);  /* 0.5 | 1.0 -> 1.0 (even) */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 1.75f, 0), 4);  /* 1.5 | 2.0 -> 2.0 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 2.5f, 0), 4);   /* 2 | 3 -> 2 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 5.0f, 0), 6);   /* 4 | 6 -> 4 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 0.25f, 0), 0);  /* 0 | 0.5 -> 0 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, 7.0f, 0), 7);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_FP4, -100.0f, 0), 15);
}

static void test_nf4_iq4nl_tables(void **state)
{
    (void)state;
    /* NF4 fp32 bit patterns, formats.md §3.1. */
    static const uint32_t nf4_bits[16] = {
        0xBF800000u, 0xBF3239B1u, 0xBF066B30u, 0xBECA32A0u, 0xBE91A24Du, 0xBE3D353Fu, 0xBDBA7871u, 0x00000000u,
        0x3DA2FAFFu, 0x3E24CAE3u, 0x3E7C04DDu, 0x3EAD033Au, 0x3EE1A4B8u, 0x3F1007ABu, 0x3F3913B3u, 0x3F800000u,
    };
    static const int iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    for (uint32_t c = 0; c < 16; c++) {
        assert_int_equal(qkc_f32_bits(qkc_dtype_decode(QKC_DTYPE_NF4, c)), nf4_bits[c]);
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_NF4, qkc_f32_from_bits(nf4_bits[c]), 0), c);
        assert_true(qkc_dtype_decode(QKC_DTYPE_IQ4NL, c) == (float)iq4nl[c]);
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, (float)iq4nl[c], 0), c);
    }
    /* Ties at the midpoint: nf4 to the lower code, iq4nl to the higher. */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_NF4, 0.5f * qkc_f32_from_bits(nf4_bits[8]), 0), 7);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, -4.5f, 0), 8); /* midpoint of -10 and 1 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, -4.6f, 0), 7);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, 7.0f, 0), 9);      /* between 1 and 13 */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, -1000.0f, 0), 0);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_IQ4NL, 1000.0f, 0), 15);
}

static void test_e8m0(void **state)
{
    (void)state;
    assert_true(qkc_dtype_decode(QKC_DTYPE_E8M0, 0x00) == 0x1p-127f);
    assert_true(qkc_dtype_decode(QKC_DTYPE_E8M0, 0x7F) == 1.0f);
    assert_true(qkc_dtype_decode(QKC_DTYPE_E8M0, 0x80) == 2.0f);
    assert_true(qkc_dtype_decode(QKC_DTYPE_E8M0, 0xFE) == 0x1p127f);
    assert_true(isnan(qkc_dtype_decode(QKC_DTYPE_E8M0, 0xFF)));
    for (uint32_t c = 0; c < 255; c++) {
        assert_true(qkc_dtype_decode(QKC_DTYPE_E8M0, c) == ldexpf(1.0f, (int)c - 127));
        assert_int_equal(qkc_dtype_encode(QKC_DTYPE_E8M0, ldexpf(1.0f, (int)c - 127), 0), c);
    }
    /* Encode takes floor(log2 x). */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_E8M0, 3.9f, 0), 0x80);
}

static void test_f16(void **state)
{
    (void)state;
    /* Vectors: boundaries of §7. */
    assert_int_equal(qkc_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(qkc_f32_to_f16(65519.996f), 0x7BFF);
    assert_int_equal(qkc_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(qkc_f32_to_f16(-65520.0f), 0xFC00);
    assert_int_equal(qkc_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(qkc_f32_to_f16(0x1p-25f), 0x0000);      /* tie -> even (0) */
    assert_int_equal(qkc_f32_to_f16(0x1.8p-24f), 0x0002);    /* tie -> even (2) */
    assert_int_equal(qkc_f32_to_f16(0x1.ffcp-15f), 0x0400);  /* rounds up into the min normal */
    assert_int_equal(qkc_f32_to_f16(1.0f + 0x1p-11f), 0x3C00); /* tie -> even */
    assert_int_equal(qkc_f32_to_f16(1.0f + 0x3p-11f), 0x3C02);
    assert_int_equal(qkc_f32_to_f16(NAN), 0x7E00);
    assert_int_equal(qkc_f32_to_f16(-NAN), 0xFE00);
    /* Every f16 code decodes and re-encodes to itself (NaN: quiet form). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qkc_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        assert_int_equal(qkc_f32_to_f16(f), h);
    }
#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
    /* Against the compiler's _Float16, an independent implementation:
     * every f16 code, and f32 patterns stepping through the whole space. */
    __extension__ typedef _Float16 f16_t;
    for (uint32_t h = 0; h < 65536; h++) {
        f16_t v;
        memcpy(&v, &h, 2);
        if (!isnan((float)v))
            assert_true(qkc_f16_to_f32((uint16_t)h) == (float)v);
    }
    for (uint64_t u = 0; u < 0x100000000ull; u += 4093) {
        float f = qkc_f32_from_bits((uint32_t)u);
        f16_t v = (f16_t)f;
        uint16_t want;
        memcpy(&want, &v, 2);
        if (isnan(f))
            continue;
        if (qkc_f32_to_f16(f) != want)
            fail_msg("f32 0x%08X -> f16: got 0x%04X, _Float16 gives 0x%04X", (unsigned)u, qkc_f32_to_f16(f), want);
    }
#else
    print_message("note: no _Float16 in this compiler; f16 checked against vectors and round trips only\n");
#endif
}

static void test_bf16_tf32(void **state)
{
    (void)state;
    assert_int_equal(qkc_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0x3F808000u)), 0x3F80); /* tie -> even */
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0x3F818000u)), 0x3F82); /* tie -> even (up) */
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0x3F808001u)), 0x3F81);
    assert_int_equal(qkc_f32_to_bf16(3.4028235e38f), 0x7F80); /* FLT_MAX overflows to Inf */
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0x00000001u)), 0x0000); /* subnormals are kept, RNE */
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0x7F800001u)), 0x7FC0);  /* ggml NaN rule */
    assert_int_equal(qkc_f32_to_bf16(qkc_f32_from_bits(0xFF812345u)), 0xFFC1);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qkc_bf16_to_f32((uint16_t)h);
        assert_int_equal(qkc_f32_bits(f), h << 16);
        if (!isnan(f))
            assert_int_equal(qkc_f32_to_bf16(f), h);
    }
    assert_int_equal(qkc_f32_bits(qkc_tf32_round(qkc_f32_from_bits(0x3F801000u))), 0x3F800000u); /* tie, even */
    assert_int_equal(qkc_f32_bits(qkc_tf32_round(qkc_f32_from_bits(0x3F803000u))), 0x3F804000u); /* tie, odd */
    assert_int_equal(qkc_f32_bits(qkc_tf32_round(qkc_f32_from_bits(0x3F801001u))), 0x3F802000u);
    assert_int_equal(qkc_f32_bits(qkc_tf32_round(qkc_f32_from_bits(0x7F7FFFFFu))), 0x7F800000u); /* carry to Inf */
    assert_true(isinf(qkc_tf32_round(INFINITY)));
    assert_true(isnan(qkc_tf32_round(NAN)));
}

static void test_integers(void **state)
{
    (void)state;
    static const struct {
        qkc_dtype dt;
        int lo, hi;
    } ints[] = {
        {QKC_DTYPE_INT8, -128, 127}, {QKC_DTYPE_UINT8, 0, 255}, {QKC_DTYPE_INT6, -32, 31}, {QKC_DTYPE_UINT6, 0, 63},
        {QKC_DTYPE_INT5, -16, 15},   {QKC_DTYPE_UINT5, 0, 31},  {QKC_DTYPE_INT4, -8, 7},   {QKC_DTYPE_UINT4, 0, 15},
        {QKC_DTYPE_INT3, -4, 3},     {QKC_DTYPE_UINT3, 0, 7},   {QKC_DTYPE_INT2, -2, 1},   {QKC_DTYPE_UINT2, 0, 3},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const qkc_dtype_desc *d = qkc_dtype_get(ints[i].dt);
        int seen_lo = 1000, seen_hi = -1000;
        assert_int_equal(d->int_min, ints[i].lo);
        assert_int_equal(d->int_max, ints[i].hi);
        for (uint32_t c = 0; c < (1u << d->bits); c++) {
            int v = (int)qkc_dtype_decode(ints[i].dt, c);
            seen_lo = v < seen_lo ? v : seen_lo;
            seen_hi = v > seen_hi ? v : seen_hi;
            assert_int_equal(qkc_dtype_encode(ints[i].dt, (float)v, 0), c);
        }
        assert_int_equal(seen_lo, ints[i].lo);
        assert_int_equal(seen_hi, ints[i].hi);
        /* clamping */
        assert_true(qkc_dtype_round(ints[i].dt, 1e9f, 0) == (float)ints[i].hi);
        assert_true(qkc_dtype_round(ints[i].dt, -1e9f, 0) == (float)ints[i].lo);
    }
    /* round half to even */
    assert_true(qkc_dtype_round(QKC_DTYPE_INT8, 2.5f, 0) == 2.0f);
    assert_true(qkc_dtype_round(QKC_DTYPE_INT8, 3.5f, 0) == 4.0f);
    assert_true(qkc_dtype_round(QKC_DTYPE_INT8, -2.5f, 0) == -2.0f);
    assert_true(qkc_dtype_round(QKC_DTYPE_INT8, 2.5000002f, 0) == 3.0f);
    /* two's complement codes */
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_INT4, -1.0f, 0), 0xF);
    assert_int_equal(qkc_dtype_encode(QKC_DTYPE_INT3, -4.0f, 0), 0x4);
    assert_true(qkc_round_even(0.49999999999999994) == 0.0);
    assert_true(qkc_round_even(-0.5) == 0.0);
    assert_true(qkc_round_even(1.5) == 2.0);
}

static void test_descriptor_table(void **state)
{
    (void)state;
    int count = 0;
    for (int d = 1; d < QKC_DTYPE_END_; d++) {
        const qkc_dtype_desc *dd = qkc_dtype_get((qkc_dtype)d);
        assert_non_null(dd);
        assert_int_equal(dd->dtype, d);
        assert_int_equal(qkc_dtype_from_keyword(dd->keyword, strlen(dd->keyword)), d);
        assert_true(dd->bits >= 2 && dd->bits <= 32);
        count++;
    }
    assert_true(count >= 15);
    assert_null(qkc_dtype_get(QKC_DTYPE_INVALID));
    assert_null(qkc_dtype_get(QKC_DTYPE_END_));
    assert_int_equal(qkc_dtype_from_keyword("f64", 3), QKC_DTYPE_INVALID);
    assert_int_equal(qkc_dtype_from_keyword("int", 3), QKC_DTYPE_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_tables), cmocka_unit_test(test_fp8_vectors),
        cmocka_unit_test(test_fp4_table),  cmocka_unit_test(test_nf4_iq4nl_tables),
        cmocka_unit_test(test_e8m0),       cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16_tf32),  cmocka_unit_test(test_integers),
        cmocka_unit_test(test_descriptor_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
