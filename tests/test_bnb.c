/*
 * bitsandbytes nf4 codec (formats/ref_bnb.c): packing and decoding of
 * hand-built blobs, nested quantization with a hand-made map, the dynamic
 * map's structure, quantize→dequantize error bounds, reproducibility.
 *
 * Random cases are named; the seed derives from the name, a failure prints
 * it, and QKC_CASE=<name> runs only that case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/format.h"
#include "formats/ref.h"
#include "util/testutil.h"

#define CHECK(name, cond, ...) QKC_CASE_CHECK("test_bnb", name, cond, __VA_ARGS__)

/* One nf4_bnb matrix: format, layout, reference handle, blob. */
typedef struct codec {
    qkc_context *ctx;
    qkc_format format;
    qkc_weight_layout layout;
    qkc_ref_weights rw;
    uint8_t *blob;
} codec;

static void codec_init(codec *c, int64_t group, unsigned flags, int64_t n, int64_t k)
{
    qkc_diag diag;
    memset(c, 0, sizeof *c);
    assert_int_equal(qkc_context_create(NULL, &c->ctx), QKC_OK);
    c->format = qkc_preset_format(QKC_PRESET_NF4_BNB);
    c->format.group = group;
    c->format.flags = flags;
    assert_int_equal(qkc_format_layout(&c->format, n, k, &c->layout, &diag), QKC_OK);
    c->rw.ctx = c->ctx;
    c->rw.format = &c->format;
    c->rw.layout = &c->layout;
    c->rw.n = n;
    c->rw.k = k;
    c->blob = calloc(1, (size_t)c->layout.total);
    assert_non_null(c->blob);
}

static void codec_fini(codec *c)
{
    free(c->blob);
    qkc_context_destroy(c->ctx);
}

static float nf4(unsigned code)
{
    return qkc_dtype_decode(QKC_DTYPE_NF4, code);
}

static float rd_f32(const uint8_t *p)
{
    return qkc_f32_from_bits(qkc_rd32(p));
}

/* Half the widest gap between adjacent entries of a sorted table. */
static double max_half_gap(const float *tab, int count)
{
    double m = 0;
    for (int i = 1; i < count; i++)
        if (((double)tab[i] - (double)tab[i - 1]) / 2 > m)
            m = ((double)tab[i] - (double)tab[i - 1]) / 2;
    return m;
}

/* ------------------------------------------------------------------ packing */

/* The quantizer puts element 2i in the HIGH nibble of byte i (§3.3). */
static void test_nf4_quantize_high_nibble_first(void **state)
{
    codec c;
    float w[64] = {0};
    (void)state;
    codec_init(&c, 64, 0, 1, 64);
    w[0] = 1.0f;  /* = absmax → code 15 (+1.0) */
    w[1] = -1.0f; /* code 0 (−1.0) */
    w[2] = 0.0f;  /* code 7 */
    w[3] = 0.5f;  /* between 12 (0.4407) and 13 (0.5626), midpoint 0.5017: code 12 */
    assert_int_equal(qkc_ref_bnb_quantize(&c.rw, w, 64, c.blob), QKC_OK);
    const uint8_t *data = c.blob + c.layout.offset[QKC_SECTION_DATA];
    assert_int_equal(data[0], 0xF0);
    assert_int_equal(data[1], 0x7C);
    for (int i = 2; i < 32; i++)
        assert_int_equal(data[i], 0x77);
    assert_int_equal(qkc_rd32(c.blob + c.layout.offset[QKC_SECTION_SCALES]), 0x3F800000u);
    codec_fini(&c);
}

/* A hand-built blob: 2×64, blocks of 32, absmax 2.5, 0, 0.75, 4. */
static void test_nf4_decode_hand_blob(void **state)
{
    codec c;
    float w[2 * 64];
    static const float absmax[4] = {2.5f, 0.0f, 0.75f, 4.0f};
    (void)state;
    codec_init(&c, 32, 0, 2, 64);
    uint8_t *data = c.blob + c.layout.offset[QKC_SECTION_DATA];
    memset(data, 0x77, 64);
    data[0] = 0xF0;  /* e0 = code 15, e1 = code 0          (block 0) */
    data[16] = 0xF0; /* e32, e33: absmax 0                  (block 1) */
    data[32] = 0x8F; /* row 1 k0 = code 8, k1 = code 15     (block 2) */
    data[48] = 0x70; /* row 1 k32 = code 7, k33 = code 0    (block 3) */
    for (int b = 0; b < 4; b++)
        qkc_wr32(c.blob + c.layout.offset[QKC_SECTION_SCALES] + 4 * b, qkc_f32_bits(absmax[b]));
    assert_int_equal(qkc_ref_bnb_dequantize(&c.rw, c.blob, w, 64), QKC_OK);

    /* NF4 code 8 is 0.07958029955625534 (fp32 0x3DA2FAFF); the product
     * with 0.75 is computed exactly in double and rounded once. */
    float code8 = qkc_f32_from_bits(0x3DA2FAFFu);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 64; k++) {
            float want = 0.0f;
            if (n == 0 && k == 0)
                want = 2.5f;
            else if (n == 0 && k == 1)
                want = -2.5f;
            else if (n == 1 && k == 0)
                want = (float)((double)code8 * 0.75);
            else if (n == 1 && k == 1)
                want = 0.75f;
            else if (n == 1 && k == 33)
                want = -4.0f;
            assert_true(w[n * 64 + k] == want);
        }
    codec_fini(&c);
}

/* A nested-quantized blob with a hand-made linear map (i − 128)/128, so a
 * decoder that regenerated the dynamic map would fail. 300 blocks: two
 * nested blocks with nested_absmax 2 and 8, offset 0.25. */
static void test_nf4_dq_decode_hand_map(void **state)
{
    enum { N = 300, K = 64 };
    codec c;
    float *w = malloc(sizeof(float) * N * K);
    (void)state;
    assert_non_null(w);
    codec_init(&c, 64, QKC_FORMAT_DQ, N, K);
    assert_int_equal(c.layout.bytes[QKC_SECTION_SCALES], N);
    assert_int_equal(c.layout.bytes[QKC_SECTION_SCALES2], 8);
    memset(c.blob + c.layout.offset[QKC_SECTION_DATA], 0xF0, N * K / 2); /* +1, −1, +1, ... */
    for (int b = 0; b < N; b++)
        c.blob[c.layout.offset[QKC_SECTION_SCALES] + b] = (uint8_t)((b * 37) % 256);
    qkc_wr32(c.blob + c.layout.offset[QKC_SECTION_SCALES2], qkc_f32_bits(2.0f));
    qkc_wr32(c.blob + c.layout.offset[QKC_SECTION_SCALES2] + 4, qkc_f32_bits(8.0f));
    for (int i = 0; i < 256; i++)
        qkc_wr32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 4 * i, qkc_f32_bits((float)(i - 128) / 128.0f));
    qkc_wr32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 1024, qkc_f32_bits(0.25f));
    assert_int_equal(qkc_ref_bnb_dequantize(&c.rw, c.blob, w, K), QKC_OK);
    for (int b = 0; b < N; b++) {
        int q = (b * 37) % 256;
        double na = b < 256 ? 2.0 : 8.0;
        double amax = (q - 128) / 128.0 * na + 0.25; /* exact dyadic */
        for (int k = 0; k < K; k++)
            assert_true(w[b * K + k] == (float)(k % 2 == 0 ? amax : -amax));
    }
    free(w);
    codec_fini(&c);
}

/* create_dynamic_map(signed=True, 7, 8), as stored by the quantizer. */
static void test_nf4_dq_dynamic_map(void **state)
{
    enum { N = 16, K = 64 };
    codec c;
    float w[N * K], map[256];
    qkc_rng r = qkc_rng_from_name("nf4_bnb/dynamic_map");
    (void)state;
    codec_init(&c, 64, QKC_FORMAT_DQ, N, K);
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r);
    assert_int_equal(qkc_ref_bnb_quantize(&c.rw, w, K, c.blob), QKC_OK);
    for (int i = 0; i < 256; i++)
        map[i] = rd_f32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 4 * i);
    for (int i = 1; i < 256; i++)
        assert_true(map[i - 1] < map[i]);
    assert_true(map[127] == 0.0f);
    assert_true(map[255] == 1.0f);
    /* The negative half mirrors the 127 means of the positive half. */
    for (int i = 0; i < 127; i++)
        assert_true(map[i] == -map[254 - i]);
    /* Exponent i contributes 2^i means inside (0.1, 1)·10^(i−6). */
    for (int i = 0; i < 7; i++) {
        double hi = pow(10.0, i - 6), lo = hi / 10;
        int count = 0;
        for (int j = 128; j < 255; j++)
            if (map[j] > lo * (1 + 1e-6) && map[j] < hi * (1 - 1e-6))
                count++;
        assert_int_equal(count, 1 << i);
    }
    /* Smallest: 1e-6·(0.1 + 1)/2; largest mean: (1 − 0.9/64 + 1)/2. */
    assert_true(fabs(map[128] - 0.55e-6) < 1e-12);
    assert_true(fabs(map[254] - 0.99296875) < 1e-6);

    /* The stored offset is the mean of the block absmax (double sum). */
    double sum = 0;
    for (int b = 0; b < N * K / 64; b++) {
        float amax = 0;
        for (int i = 0; i < 64; i++)
            amax = fmaxf(amax, fabsf(w[b * 64 + i]));
        sum += amax;
    }
    assert_true(rd_f32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 1024) == (float)(sum / (N * K / 64)));
    codec_fini(&c);
}

/* An all-zero matrix: absmax 0, every code 7 (0x77), decodes to 0. */
static void test_nf4_zero_matrix(void **state)
{
    enum { N = 4, K = 128 };
    float w[N * K] = {0}, y[N * K];
    (void)state;
    for (int dq = 0; dq < 2; dq++) {
        codec c;
        codec_init(&c, 64, dq ? QKC_FORMAT_DQ : 0, N, K);
        assert_int_equal(qkc_ref_bnb_quantize(&c.rw, w, K, c.blob), QKC_OK);
        for (int i = 0; i < N * K / 2; i++)
            assert_int_equal(c.blob[c.layout.offset[QKC_SECTION_DATA] + i], 0x77);
        assert_int_equal(qkc_ref_bnb_dequantize(&c.rw, c.blob, y, K), QKC_OK);
        for (int i = 0; i < N * K; i++)
            assert_true(y[i] == 0.0f);
        codec_fini(&c);
    }
}

/* ---------------------------------------------------------------- roundtrip */

/*
 * Error bounds. Without dq the stored absmax is max|x| exactly and every
 * element is within half the widest NF4 gap of the block's absmax. With dq
 * the absmax itself is off by at most half the widest gap of the stored
 * map times the nested absmax, which adds to the element bound.
 */
static void roundtrip_case(int64_t group, int dq)
{
    enum { N = 96, K = 256 };
    char name[96];
    codec c;
    float *w, *y;
    float tab[16];
    double nf4_half_gap, map_half_gap = 0, err2 = 0, sig2 = 0;
    snprintf(name, sizeof name, "nf4_bnb/g%lld/dq%d/%dx%d", (long long)group, dq, N, K);
    if (!qkc_case_selected(name))
        return;
    qkc_rng r = qkc_rng_from_name(name);
    w = malloc(sizeof(float) * N * K);
    y = malloc(sizeof(float) * N * K);
    assert_non_null(w);
    assert_non_null(y);
    for (int n = 0; n < N; n++) {
        float row_scale = qkc_rng_uniform(&r, 0.01f, 10.0f);
        for (int k = 0; k < K; k++)
            w[n * K + k] = qkc_rng_normal(&r) * row_scale;
    }
    for (int k = 0; k < group; k++)
        w[5 * K + k] = 0.0f; /* one all-zero block */
    codec_init(&c, group, dq ? QKC_FORMAT_DQ : 0, N, K);
    CHECK(name, qkc_ref_bnb_quantize(&c.rw, w, K, c.blob) == QKC_OK, "quantize failed");
    CHECK(name, qkc_ref_bnb_dequantize(&c.rw, c.blob, y, K) == QKC_OK, "dequantize failed");

    for (int i = 0; i < 16; i++)
        tab[i] = nf4((unsigned)i);
    nf4_half_gap = max_half_gap(tab, 16);
    if (dq) {
        float map[256];
        for (int i = 0; i < 256; i++)
            map[i] = rd_f32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 4 * i);
        map_half_gap = max_half_gap(map, 256);
    }
    for (int64_t b = 0; b < N * K / group; b++) {
        float amax = 0, stored;
        double amax_err = 0;
        for (int64_t i = 0; i < group; i++)
            amax = fmaxf(amax, fabsf(w[b * group + i]));
        if (dq) {
            uint8_t q = c.blob[c.layout.offset[QKC_SECTION_SCALES] + b];
            float na = rd_f32(c.blob + c.layout.offset[QKC_SECTION_SCALES2] + b / 256 * 4);
            float offset = rd_f32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 1024);
            stored = (float)((double)rd_f32(c.blob + c.layout.offset[QKC_SECTION_AUX] + 4 * q) * na + offset);
            amax_err = map_half_gap * na * (1 + 1e-6) + 1e-6 * (amax + fabsf(stored));
            CHECK(name, fabs((double)stored - amax) <= amax_err,
                  "block %lld: nested absmax %.9g, true %.9g, allowed error %.3g", (long long)b, stored, amax,
                  amax_err);
        } else {
            stored = rd_f32(c.blob + c.layout.offset[QKC_SECTION_SCALES] + b * 4);
            CHECK(name, stored == amax, "block %lld: stored absmax %.9g, max|x| %.9g", (long long)b, stored, amax);
        }
        double bound = nf4_half_gap * amax * (1 + 1e-6) + amax_err;
        for (int64_t i = 0; i < group; i++) {
            int64_t e = b * group + i;
            double d = fabs((double)y[e] - (double)w[e]);
            CHECK(name, d <= bound, "element (%lld, %lld): x %.9g, decoded %.9g, error %.3g > bound %.3g",
                  (long long)(e / K), (long long)(e % K), w[e], y[e], d, bound);
            err2 += d * d;
            sig2 += (double)w[e] * w[e];
        }
    }
    /* NF4 on normal data keeps the NMSE near 0.01; 0.02 flags a systematic
     * error (wrong codes, swapped nibbles) that the bound alone may allow. */
    CHECK(name, err2 / sig2 < 0.02, "NMSE %.4g", err2 / sig2);
    free(w);
    free(y);
    codec_fini(&c);
}

static void test_nf4_roundtrip(void **state)
{
    (void)state;
    roundtrip_case(64, 0);
    roundtrip_case(128, 0);
    roundtrip_case(64, 1);
    roundtrip_case(128, 1);
}

/* Quantizing twice gives the same bytes, whatever the buffer held before:
 * every byte, padding included, is written. */
static void test_nf4_deterministic(void **state)
{
    enum { N = 40, K = 192 };
    (void)state;
    for (int dq = 0; dq < 2; dq++) {
        char name[64];
        codec c;
        float w[N * K];
        snprintf(name, sizeof name, "nf4_bnb/deterministic/dq%d", dq);
        if (!qkc_case_selected(name))
            continue;
        qkc_rng r = qkc_rng_from_name(name);
        for (int i = 0; i < N * K; i++)
            w[i] = qkc_rng_normal(&r);
        codec_init(&c, 64, dq ? QKC_FORMAT_DQ : 0, N, K);
        uint8_t *other = malloc((size_t)c.layout.total);
        assert_non_null(other);
        memset(c.blob, 0xAA, (size_t)c.layout.total);
        memset(other, 0x55, (size_t)c.layout.total);
        CHECK(name, qkc_ref_bnb_quantize(&c.rw, w, K, c.blob) == QKC_OK, "quantize failed");
        CHECK(name, qkc_ref_bnb_quantize(&c.rw, w, K, other) == QKC_OK, "quantize failed");
        CHECK(name, memcmp(c.blob, other, (size_t)c.layout.total) == 0, "two quantizations differ");
        free(other);
        codec_fini(&c);
    }
}

/* A block size that does not divide K is refused with a message. */
static void test_nf4_rejects_bad_block(void **state)
{
    codec c;
    float w[96] = {0};
    (void)state;
    codec_init(&c, 64, 0, 1, 96);
    assert_int_equal(qkc_ref_bnb_quantize(&c.rw, w, 96, c.blob), QKC_ERR_INVALID_ARGUMENT);
    assert_true(strlen(qkc_context_last_error(c.ctx)) > 0);
    assert_int_equal(qkc_ref_bnb_dequantize(&c.rw, c.blob, w, 96), QKC_ERR_INVALID_ARGUMENT);
    codec_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nf4_quantize_high_nibble_first),
        cmocka_unit_test(test_nf4_decode_hand_blob),
        cmocka_unit_test(test_nf4_dq_decode_hand_map),
        cmocka_unit_test(test_nf4_dq_dynamic_map),
        cmocka_unit_test(test_nf4_zero_matrix),
        cmocka_unit_test(test_nf4_roundtrip),
        cmocka_unit_test(test_nf4_deterministic),
        cmocka_unit_test(test_nf4_rejects_bad_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
