/*
 * GPTQ v1 and AWQ gemm codecs (formats/ref_gptq.c): the §8 packing
 * vectors, hand-built blobs (v1 zero − 1, 3-bit straddling fields, act-order
 * g_idx, AWQ interleave), quantize→dequantize bounds, reproducibility.
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

#define CHECK(name, cond, ...) QKC_CASE_CHECK("test_gptq_awq", name, cond, __VA_ARGS__)

/* One gptq/awq matrix: format, layout, reference handle, zeroed blob. */
typedef struct codec {
    qkc_context *ctx;
    qkc_format format;
    qkc_weight_layout layout;
    qkc_ref_weights rw;
    uint8_t *blob;
} codec;

/* group 0 means channel granularity (GPTQ group_size = −1). */
static void codec_init(codec *c, qkc_preset preset, qkc_dtype dtype, int64_t group, unsigned flags,
                       int64_t n, int64_t k)
{
    qkc_diag diag;
    memset(c, 0, sizeof *c);
    assert_int_equal(qkc_context_create(NULL, &c->ctx), QKC_OK);
    c->format = qkc_preset_format(preset);
    c->format.dtype = dtype;
    c->format.flags = flags;
    if (group > 0) {
        c->format.granularity = QKC_GRAN_GROUP;
        c->format.group = group;
    } else {
        c->format.granularity = QKC_GRAN_CHANNEL;
        c->format.group = 0;
    }
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

static uint8_t *section(codec *c, int s)
{
    return c->blob + c->layout.offset[s];
}

/* GPTQ: qweight word (r, n), qzeros word (g, c), scale (g, n), g_idx[k]. */
static uint32_t gptq_qweight(codec *c, int64_t r, int64_t n)
{
    return qkc_rd32(section(c, QKC_SECTION_DATA) + (r * c->rw.n + n) * 4);
}
static void gptq_set_qweight(codec *c, int64_t r, int64_t n, uint32_t v)
{
    qkc_wr32(section(c, QKC_SECTION_DATA) + (r * c->rw.n + n) * 4, v);
}
static void gptq_set_qzeros(codec *c, int bits, int64_t g, int64_t word, uint32_t v)
{
    qkc_wr32(section(c, QKC_SECTION_ZEROS) + (g * (c->rw.n * bits / 32) + word) * 4, v);
}
static uint16_t scale_bits(codec *c, int64_t g, int64_t n)
{
    return qkc_rd16(section(c, QKC_SECTION_SCALES) + (g * c->rw.n + n) * 2);
}
static void set_scale(codec *c, int64_t g, int64_t n, float s)
{
    qkc_wr16(section(c, QKC_SECTION_SCALES) + (g * c->rw.n + n) * 2, qkc_f32_to_f16(s));
}
static int32_t gidx(codec *c, int64_t k)
{
    return (int32_t)qkc_rd32(section(c, QKC_SECTION_AUX) + k * 4);
}

/* Bit-by-bit read of a little-endian stream of 32-bit words (word r at
 * base + r·stride): independent of the codec's word/shift arithmetic. */
static uint32_t stream_bits(const uint8_t *base, int64_t stride, int64_t pos, int bits)
{
    uint32_t v = 0;
    for (int i = 0; i < bits; i++) {
        int64_t p = pos + i;
        v |= ((qkc_rd32(base + p / 32 * stride) >> (p % 32)) & 1u) << i;
    }
    return v;
}

/* AWQ: nibble i of a word holds column 8c + ORDER[i] (§8.2). */
static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* AWQ: qweight word (k, c), qzeros word (g, c). */
static uint32_t awq_word(codec *c, int s, int64_t row, int64_t col)
{
    return qkc_rd32(section(c, s) + (row * (c->rw.n / 8) + col) * 4);
}

/* -------------------------------------------------------- packing vectors */

/*
 * §8 vector: eight consecutive K values 0..7 pack to GPTQ word 0x76543210.
 * Row 0 is x[k] = k − 1 over one group of 16: xmin = −1, xmax = 14, so the
 * scale is 15/15 = 1, zero = round(1/1) = 1 (stored 0) and q = round(x) + 1
 * = k: words 0x76543210 (k 0..7) and 0xFEDCBA98 (k 8..15). Rows 1 and 2
 * add ties, which round half to even.
 */
static void test_gptq_pack_vector(void **state)
{
    enum { N = 8, K = 16 };
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 16, 0, N, K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            w[n * K + k] = n == 2 ? (float)k - 2.5f : (float)(k - 1);
    w[1 * K + 4] = 2.5f; /* a tie: round half to even gives 2, q = 3 */
    assert_int_equal(qkc_ref_gptq_quantize(&c.rw, w, K, c.blob), QKC_OK);
    assert_int_equal(gptq_qweight(&c, 0, 0), 0x76543210u);
    assert_int_equal(gptq_qweight(&c, 1, 0), 0xFEDCBA98u);
    assert_int_equal(scale_bits(&c, 0, 0), 0x3C00);
    assert_int_equal(gptq_qweight(&c, 0, 1), 0x76533210u);
    /* Row 2: x = k − 2.5 spans [−2.5, 12.5]: scale 1, zero round(2.5) = 2
     * (stored 1), and every x is a tie: q = 0,0,2,2,4,4,… */
    assert_int_equal(gptq_qweight(&c, 0, 2), 0x66442200u);
    assert_int_equal(gptq_qweight(&c, 1, 2), 0xEECCAA88u);
    assert_int_equal(qkc_rd32(section(&c, QKC_SECTION_ZEROS)), 0x00000100u);
    codec_fini(&c);
}

/*
 * §8 vector: eight columns 0..7 pack to AWQ word 0x75316420. Column n has
 * W[n][0] = n, W[n][1] = 0, W[n][2] = 15 (min 0, max 15: scale 1, zero 0),
 * so q(k=0, n) = n and nibble i holds column ORDER[i] = 0,2,4,6,1,3,5,7.
 */
static void test_awq_pack_vector(void **state)
{
    enum { N = 8, K = 8 };
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_AWQ, QKC_DTYPE_UINT4, 8, 0, N, K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            w[n * K + k] = k == 0 ? (float)n : k == 1 ? 0.0f : k == 2 ? 15.0f : k == 3 ? 6.5f : 7.0f;
    assert_int_equal(qkc_ref_awq_quantize(&c.rw, w, K, c.blob), QKC_OK);
    assert_int_equal(awq_word(&c, QKC_SECTION_DATA, 0, 0), 0x75316420u);
    assert_int_equal(awq_word(&c, QKC_SECTION_DATA, 1, 0), 0x00000000u);
    assert_int_equal(awq_word(&c, QKC_SECTION_DATA, 2, 0), 0xFFFFFFFFu);
    assert_int_equal(awq_word(&c, QKC_SECTION_DATA, 3, 0), 0x66666666u); /* 6.5: tie to even */
    assert_int_equal(awq_word(&c, QKC_SECTION_DATA, 4, 0), 0x77777777u);
    assert_int_equal(awq_word(&c, QKC_SECTION_ZEROS, 0, 0), 0u);
    assert_int_equal(scale_bits(&c, 0, 0), 0x3C00);
    codec_fini(&c);
}

/*
 * v1 cannot store zero = 0 (zero − 1 would wrap to maxq + 1), so a group
 * with no negative value gets zero 1. Row 0 is x[k] = k over one group of
 * 16: xmin = 0, xmax = 15, scale 1, round(0/1) = 0 → zero 1 (stored 0);
 * q = k + 1 clamped to 15, so k = 0..14 decode exactly and 15 → 14.
 */
static void test_gptq_zero_clamped_to_one(void **state)
{
    enum { N = 8, K = 16 };
    codec c;
    float w[N * K], y[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 16, 0, N, K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            w[n * K + k] = (float)k;
    assert_int_equal(qkc_ref_gptq_quantize(&c.rw, w, K, c.blob), QKC_OK);
    assert_int_equal(qkc_rd32(section(&c, QKC_SECTION_ZEROS)), 0u);
    assert_int_equal(scale_bits(&c, 0, 0), 0x3C00);
    assert_int_equal(gptq_qweight(&c, 0, 0), 0x87654321u);
    assert_int_equal(gptq_qweight(&c, 1, 0), 0xFFEDCBA9u);
    assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, y, K), QKC_OK);
    for (int k = 0; k < K; k++)
        assert_true(y[k] == (k < 15 ? (float)k : 14.0f));
    codec_fini(&c);
}

/*
 * AWQ clamps the zero to [0, 15]. Column 0: min −15, max 0 → scale 1,
 * zero 15, every value exact. Column 1: −20, −5, then −10: scale 1,
 * −round(−20) = 20 → zero 15, so −20 clips to −15. Other columns are all
 * zero: scale 1e-5/15, zero 0, decoded exactly 0.
 */
static void test_awq_zero_clamp(void **state)
{
    enum { N = 8, K = 8 };
    static const float col0[K] = {-15, 0, -1, -2, -3, -4, -5, -6};
    static const float col1[K] = {-20, -5, -10, -10, -10, -10, -10, -10};
    codec c;
    float w[N * K] = {0}, y[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_AWQ, QKC_DTYPE_UINT4, 8, 0, N, K);
    memcpy(w, col0, sizeof col0);
    memcpy(w + K, col1, sizeof col1);
    assert_int_equal(qkc_ref_awq_quantize(&c.rw, w, K, c.blob), QKC_OK);
    /* Zeros 15 (column 0, nibble 0) and 15 (column 1, nibble 4). */
    assert_int_equal(awq_word(&c, QKC_SECTION_ZEROS, 0, 0), 0x000F000Fu);
    assert_int_equal(qkc_ref_awq_dequantize(&c.rw, c.blob, y, K), QKC_OK);
    for (int k = 0; k < K; k++) {
        assert_true(y[k] == col0[k]);
        assert_true(y[K + k] == (k == 0 ? -15.0f : col1[k]));
        for (int n = 2; n < N; n++)
            assert_true(y[n * K + k] == 0.0f);
    }
    codec_fini(&c);
}

/* An all-zero GPTQ group uses the range [−1, 1] and decodes to exact 0. */
static void test_gptq_zero_matrix(void **state)
{
    enum { N = 32, K = 64 };
    static const qkc_dtype dtypes[4] = {QKC_DTYPE_UINT2, QKC_DTYPE_UINT3, QKC_DTYPE_UINT4, QKC_DTYPE_UINT8};
    float w[N * K] = {0}, y[N * K];
    (void)state;
    for (int i = 0; i < 4; i++) {
        codec c;
        codec_init(&c, QKC_PRESET_GPTQ, dtypes[i], 32, 0, N, K);
        int b = qkc_dtype_get(dtypes[i])->bits, maxq = (1 << b) - 1;
        assert_int_equal(qkc_ref_gptq_quantize(&c.rw, w, K, c.blob), QKC_OK);
        /* scale f16(2/maxq) (0.1333 → 0.13330078 for 4 bits); zero
         * round(1/scale) = (maxq + 1)/2, e.g. round(7.5018) = 8, stored 7. */
        for (int g = 0; g < K / 32; g++)
            for (int n = 0; n < N; n++) {
                assert_int_equal(scale_bits(&c, g, n), qkc_f32_to_f16(2.0f / (float)maxq));
                assert_int_equal(stream_bits(section(&c, QKC_SECTION_ZEROS) + g * (N * b / 32) * 4, 4, n * b, b),
                                 (maxq + 1) / 2 - 1);
            }
        assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, y, K), QKC_OK);
        for (int j = 0; j < N * K; j++)
            assert_true(y[j] == 0.0f);
        codec_fini(&c);
    }
}

/* ------------------------------------------------------- hand-built blobs */

/*
 * 4-bit, one group (channel). Column 0: q = 0..7, stored zero 2 (zero 3),
 * scale 0.5 → 0.5·(k − 3). Column 1: q = 8..15, stored zero 15 — the v1
 * field maxq means zero 16 — scale 0.25 → 0.25·(k − 8). Other columns:
 * q = 0, stored zero 0 (zero 1), scale 1 → −1.
 */
static void test_gptq_decode_4bit_v1_zero(void **state)
{
    enum { N = 8, K = 8 };
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 0, 0, N, K);
    gptq_set_qweight(&c, 0, 0, 0x76543210u);
    gptq_set_qweight(&c, 0, 1, 0xFEDCBA98u);
    gptq_set_qzeros(&c, 4, 0, 0, 0x000000F2u);
    for (int n = 0; n < N; n++)
        set_scale(&c, 0, n, n == 0 ? 0.5f : n == 1 ? 0.25f : 1.0f);
    assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, w, K), QKC_OK);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float want = n == 0 ? 0.5f * (float)(k - 3) : n == 1 ? 0.25f * (float)(k - 8) : -1.0f;
            assert_true(w[n * K + k] == want);
        }
    codec_fini(&c);
}

/*
 * 3-bit, N = K = 32, one group. qweight column 0 holds q[10] = 5 (word 0
 * bits 30–31 = 01, word 1 bit 0 = 1), q[21] = 6 (word 1 bit 31 = 0, word 2
 * bits 0–1 = 11), q[31] = 7 (word 2 bits 29–31): words 0x40000000,
 * 0x00000001, 0xE0000003. Column 1: q[10] = 2 (word 0 bit 31), q[21] = 1
 * (word 1 bit 31): 0x80000000, 0x80000000, 0. qzeros (3 words along N):
 * stored 3 at n = 0 (zero 4), 5 at n = 10 (straddles words 0/1: zero 6),
 * 6 at n = 21 (straddles words 1/2: zero 7), 0 elsewhere (zero 1):
 * 0x40000003, 0x00000001, 0x00000003. Scales 1, except 0.5 at n = 10.
 */
static void test_gptq_decode_3bit_straddle(void **state)
{
    enum { N = 32, K = 32 };
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT3, 0, 0, N, K);
    gptq_set_qweight(&c, 0, 0, 0x40000000u);
    gptq_set_qweight(&c, 1, 0, 0x00000001u);
    gptq_set_qweight(&c, 2, 0, 0xE0000003u);
    gptq_set_qweight(&c, 0, 1, 0x80000000u);
    gptq_set_qweight(&c, 1, 1, 0x80000000u);
    gptq_set_qzeros(&c, 3, 0, 0, 0x40000003u);
    gptq_set_qzeros(&c, 3, 0, 1, 0x00000001u);
    gptq_set_qzeros(&c, 3, 0, 2, 0x00000003u);
    for (int n = 0; n < N; n++)
        set_scale(&c, 0, n, n == 10 ? 0.5f : 1.0f);
    assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, w, K), QKC_OK);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float want;
            if (n == 0)
                want = k == 10 ? 1.0f : k == 21 ? 2.0f : k == 31 ? 3.0f : -4.0f;
            else if (n == 1)
                want = k == 10 ? 1.0f : k == 21 ? 0.0f : -1.0f;
            else if (n == 10)
                want = -3.0f;
            else if (n == 21)
                want = -7.0f;
            else
                want = -1.0f;
            assert_true(w[n * K + k] == want);
        }
    codec_fini(&c);
}

/*
 * Act-order: K = 16 in two groups of 8 with g_idx alternating 1, 0, 1, 0.
 * Column 0 has q = 5 everywhere; group 0: scale 1, stored zero 0 (zero 1)
 * → 4; group 1: scale 2, stored zero 3 (zero 4) → 2. So W[0][k] = 2 for
 * even k and 4 for odd k; k / 8 grouping would give 4,…,4, 2,…,2.
 */
static void build_actorder_blob(codec *c)
{
    gptq_set_qweight(c, 0, 0, 0x55555555u);
    gptq_set_qweight(c, 1, 0, 0x55555555u);
    gptq_set_qzeros(c, 4, 0, 0, 0x00000000u);
    gptq_set_qzeros(c, 4, 1, 0, 0x00000003u);
    for (int n = 0; n < 8; n++) {
        set_scale(c, 0, n, 1.0f);
        set_scale(c, 1, n, n == 0 ? 2.0f : 1.0f);
    }
    for (int k = 0; k < 16; k++)
        qkc_wr32(section(c, QKC_SECTION_AUX) + k * 4, k % 2 == 0 ? 1u : 0u);
}

static void test_gptq_decode_actorder_gidx(void **state)
{
    enum { N = 8, K = 16 };
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 8, QKC_FORMAT_ACTORDER, N, K);
    assert_int_equal(c.layout.bytes[QKC_SECTION_AUX], K * 4);
    build_actorder_blob(&c);
    assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, w, K), QKC_OK);
    for (int k = 0; k < K; k++) {
        assert_true(w[k] == (k % 2 == 0 ? 2.0f : 4.0f));
        for (int n = 1; n < N; n++)
            assert_true(w[n * K + k] == -1.0f); /* q 0, zero 1 (group 1: stored 3 only at n 0) */
    }
    codec_fini(&c);
}

/* A g_idx outside [0, groups) is corrupt data, reported with a message. */
static void test_gptq_rejects_bad_gidx(void **state)
{
    enum { N = 8, K = 16 };
    static const int32_t bad[2] = {2, -1};
    float w[N * K];
    (void)state;
    for (int i = 0; i < 2; i++) {
        codec c;
        codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 8, QKC_FORMAT_ACTORDER, N, K);
        build_actorder_blob(&c);
        qkc_wr32(section(&c, QKC_SECTION_AUX) + 3 * 4, (uint32_t)bad[i]);
        assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, w, K), QKC_ERR_CORRUPT_DATA);
        assert_non_null(strstr(qkc_context_last_error(c.ctx), "g_idx"));
        codec_fini(&c);
    }
}

/*
 * AWQ, one group of 8. qweight word (k 0) = 0x75316420: column n has
 * q = n. qzeros word = 0x76543210: nibble i holds column ORDER[i] with
 * zero i, so column n has zero REV[n] = 0,4,1,5,2,6,3,7. Scale 0.5:
 * W[n][0] = (n − REV[n])/2, W[n][k > 0] = −REV[n]/2.
 */
static void test_awq_decode_interleave(void **state)
{
    enum { N = 8, K = 8 };
    static const float col0[8] = {0.0f, -1.5f, 0.5f, -1.0f, 1.0f, -0.5f, 1.5f, 0.0f};
    static const float rest[8] = {0.0f, -2.0f, -0.5f, -2.5f, -1.0f, -3.0f, -1.5f, -3.5f};
    codec c;
    float w[N * K];
    (void)state;
    codec_init(&c, QKC_PRESET_AWQ, QKC_DTYPE_UINT4, 8, 0, N, K);
    qkc_wr32(section(&c, QKC_SECTION_DATA), 0x75316420u);
    qkc_wr32(section(&c, QKC_SECTION_ZEROS), 0x76543210u);
    for (int n = 0; n < N; n++)
        set_scale(&c, 0, n, 0.5f);
    assert_int_equal(qkc_ref_awq_dequantize(&c.rw, c.blob, w, K), QKC_OK);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            assert_true(w[n * K + k] == (k == 0 ? col0[n] : rest[n]));
    codec_fini(&c);
}

/* ------------------------------------------------------------- roundtrips */

/* Random N×K weights with per-column magnitudes, so act-order matters. */
static float *random_weights(const char *name, int64_t n, int64_t k)
{
    qkc_rng r = qkc_rng_from_name(name);
    float *w = malloc(sizeof(float) * (size_t)(n * k));
    float *col = malloc(sizeof(float) * (size_t)k);
    assert_non_null(w);
    assert_non_null(col);
    for (int64_t j = 0; j < k; j++)
        col[j] = qkc_rng_uniform(&r, 0.05f, 2.0f);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++)
            w[i * k + j] = qkc_rng_normal(&r) * col[j];
    free(col);
    return w;
}

/*
 * Error bound of a min/max quantizer with an f16 scale s: within the
 * representable range every element is within s/2; the ends can lose up to
 * s/2 (zero rounding) plus maxq·s·2^−11 (scale rounding). The scale itself
 * must not exceed range/maxq by more than the f16 rounding, or the bound
 * would say nothing.
 */
static double element_bound(double s, int maxq)
{
    return s * (0.5 + maxq / 2048.0) * (1 + 1e-6);
}

/*
 * The decoded value must be the grid point s·(q − z), q in [0, maxq],
 * nearest to x for the stored s and z — i.e. the codes were chosen with the
 * stored (f16) scale. Brute force over q; the slack covers f32 division
 * at near-ties.
 */
static int is_nearest(double x, double y, double s, int z, int maxq)
{
    double best = INFINITY;
    for (int q = 0; q <= maxq; q++)
        best = fmin(best, fabs(s * (q - z) - x));
    return fabs(y - x) <= best + s * 1e-5 + fabs(x) * 1e-6;
}

/* g_idx must group the columns by decreasing Σ W² in runs of `group`. */
static void check_gidx(const char *name, codec *c, const float *w, int64_t G, int64_t groups)
{
    int64_t N = c->rw.n, K = c->rw.k;
    double *energy = calloc((size_t)K, sizeof *energy);
    double *emin = malloc(sizeof(double) * (size_t)groups), *emax = malloc(sizeof(double) * (size_t)groups);
    int64_t *count = calloc((size_t)groups, sizeof *count);
    int monotonic = 1;
    assert_non_null(energy);
    assert_non_null(emin);
    assert_non_null(emax);
    assert_non_null(count);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            energy[k] += (double)w[n * K + k] * w[n * K + k];
    for (int64_t g = 0; g < groups; g++) {
        emin[g] = INFINITY;
        emax[g] = -INFINITY;
    }
    for (int64_t k = 0; k < K; k++) {
        int32_t g = gidx(c, k);
        CHECK(name, g >= 0 && g < groups, "g_idx[%lld] = %d outside [0, %lld)", (long long)k, g, (long long)groups);
        count[g]++;
        emin[g] = fmin(emin[g], energy[k]);
        emax[g] = fmax(emax[g], energy[k]);
        if (k > 0 && gidx(c, k) < gidx(c, k - 1))
            monotonic = 0;
    }
    for (int64_t g = 0; g < groups; g++) {
        int64_t want = g + 1 < groups ? G : K - (groups - 1) * G;
        CHECK(name, count[g] == want, "group %lld has %lld columns, expected %lld", (long long)g,
              (long long)count[g], (long long)want);
        if (g > 0)
            CHECK(name, emax[g] <= emin[g - 1],
                  "group %lld holds a column with more energy (%.6g) than group %lld (%.6g)", (long long)g,
                  emax[g], (long long)(g - 1), emin[g - 1]);
    }
    if (groups > 1)
        CHECK(name, !monotonic, "g_idx is monotonic: act-order had no effect");
    free(energy);
    free(emin);
    free(emax);
    free(count);
}

/* Check the decoded matrix against the bound and the nearest-grid rule;
 * returns the number of elements outside them (report: fail on the first). */
static int64_t gptq_violations(const char *name, codec *c, const float *w, const float *y, int64_t G,
                               int bits, int actorder, int report)
{
    int64_t N = c->rw.n, K = c->rw.k, bad = 0;
    int maxq = (1 << bits) - 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = actorder ? gidx(c, k) : k / G;
            double s = qkc_f16_to_f32(scale_bits(c, g, n));
            const uint8_t *zrow = section(c, QKC_SECTION_ZEROS) + g * (N * bits / 32) * 4;
            int z = (int)stream_bits(zrow, 4, n * bits, bits) + 1;
            double x = w[n * K + k], v = y[n * K + k];
            double d = fabs(v - x);
            double bound = element_bound(s, maxq);
            if (!(d <= bound) || !is_nearest(x, v, s, z, maxq)) {
                if (report)
                    CHECK(name, 0,
                          "element (%lld, %lld): x %.9g, decoded %.9g (scale %.6g, zero %d): error %.3g, bound "
                          "%.3g, or not the nearest grid point",
                          (long long)n, (long long)k, x, v, s, z, d, bound);
                bad++;
            }
        }
    return bad;
}

static void gptq_roundtrip_case(int bits, int64_t group, int actorder)
{
    enum { N = 64, K = 256 };
    static const qkc_dtype dtypes[9] = {0, 0, QKC_DTYPE_UINT2, QKC_DTYPE_UINT3, QKC_DTYPE_UINT4,
                                        0, 0, 0, QKC_DTYPE_UINT8};
    char name[96];
    codec c;
    int64_t G = group > 0 ? group : K, groups = (K + G - 1) / G;
    int maxq = (1 << bits) - 1;
    snprintf(name, sizeof name, "gptq/b%d/%s%lld/act%d/%dx%d", bits, group > 0 ? "g" : "channel",
             (long long)(group > 0 ? group : 0), actorder, N, K);
    if (!qkc_case_selected(name))
        return;
    float *w = random_weights(name, N, K), *y = malloc(sizeof(float) * N * K);
    assert_non_null(y);
    codec_init(&c, QKC_PRESET_GPTQ, dtypes[bits], group, actorder ? QKC_FORMAT_ACTORDER : 0, N, K);
    CHECK(name, (c.layout.bytes[QKC_SECTION_AUX] != 0) == (actorder != 0), "AUX section iff act-order");
    CHECK(name, qkc_ref_gptq_quantize(&c.rw, w, K, c.blob) == QKC_OK, "quantize failed");
    CHECK(name, qkc_ref_gptq_dequantize(&c.rw, c.blob, y, K) == QKC_OK, "dequantize failed");
    if (actorder)
        check_gidx(name, &c, w, G, groups);

    /* Scales are no larger than the group's range / maxq (+ f16 rounding). */
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            float xmin = 0, xmax = 0;
            for (int64_t k = 0; k < K; k++)
                if ((actorder ? gidx(&c, k) : k / G) == g) {
                    xmin = fminf(xmin, w[n * K + k]);
                    xmax = fmaxf(xmax, w[n * K + k]);
                }
            double s = qkc_f16_to_f32(scale_bits(&c, g, n));
            double lim = ((double)xmax - xmin) / maxq * (1 + 1.0 / 1024);
            CHECK(name, s > 0 && s <= lim, "scale (%lld, %lld) = %.6g, range/maxq = %.6g", (long long)g,
                  (long long)n, s, ((double)xmax - xmin) / maxq);
        }
    gptq_violations(name, &c, w, y, G, bits, actorder, 1);

    if (actorder && groups > 1) {
        /* Decoding honours g_idx: the same blob read with k / group is off. */
        for (int64_t k = 0; k < K; k++)
            qkc_wr32(section(&c, QKC_SECTION_AUX) + k * 4, (uint32_t)(k / G));
        CHECK(name, qkc_ref_gptq_dequantize(&c.rw, c.blob, y, K) == QKC_OK, "dequantize failed");
        CHECK(name, gptq_violations(name, &c, w, y, G, bits, 0, 0) > N * K / 100,
              "a monotonic g_idx decodes as well as the real one: g_idx is ignored");
    }
    free(w);
    free(y);
    codec_fini(&c);
}

static void test_gptq_roundtrip(void **state)
{
    static const int bits[4] = {2, 3, 4, 8};
    static const int64_t groups[3] = {32, 128, 0};
    (void)state;
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++)
            for (int act = 0; act < 2; act++)
                gptq_roundtrip_case(bits[b], groups[g], act);
}

static void awq_roundtrip_case(int64_t group)
{
    enum { N = 64, K = 256 };
    char name[64];
    codec c;
    snprintf(name, sizeof name, "awq/g%lld/%dx%d", (long long)group, N, K);
    if (!qkc_case_selected(name))
        return;
    float *w = random_weights(name, N, K), *y = malloc(sizeof(float) * N * K);
    assert_non_null(y);
    codec_init(&c, QKC_PRESET_AWQ, QKC_DTYPE_UINT4, group, 0, N, K);
    CHECK(name, qkc_ref_awq_quantize(&c.rw, w, K, c.blob) == QKC_OK, "quantize failed");
    CHECK(name, qkc_ref_awq_dequantize(&c.rw, c.blob, y, K) == QKC_OK, "dequantize failed");
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < K / group; g++) {
            float mn = INFINITY, mx = -INFINITY;
            for (int64_t k = g * group; k < (g + 1) * group; k++) {
                mn = fminf(mn, w[n * K + k]);
                mx = fmaxf(mx, w[n * K + k]);
            }
            double s = qkc_f16_to_f32(scale_bits(&c, g, n));
            double lim = fmax((double)mx - mn, 1e-5) / 15 * (1 + 1.0 / 1024);
            CHECK(name, s > 0 && s <= lim, "scale (%lld, %lld) = %.6g, range/15 = %.6g", (long long)g,
                  (long long)n, s, ((double)mx - mn) / 15);
            /* Column n sits in nibble i with ORDER[i] = n % 8. */
            int nib = 0;
            while (awq_order[nib] != n % 8)
                nib++;
            int z = (int)((awq_word(&c, QKC_SECTION_ZEROS, g, n / 8) >> (4 * nib)) & 15u);
            for (int64_t k = g * group; k < (g + 1) * group; k++) {
                double x = w[n * K + k], v = y[n * K + k];
                double d = fabs(v - x);
                double bound = element_bound(s, 15);
                CHECK(name, d <= bound && is_nearest(x, v, s, z, 15),
                      "element (%lld, %lld): x %.9g, decoded %.9g (scale %.6g, zero %d): error %.3g, bound %.3g, "
                      "or not the nearest grid point",
                      (long long)n, (long long)k, x, v, s, z, d, bound);
            }
        }
    free(w);
    free(y);
    codec_fini(&c);
}

static void test_awq_roundtrip(void **state)
{
    (void)state;
    awq_roundtrip_case(32);
    awq_roundtrip_case(128);
}

/* Quantizing twice gives the same bytes whatever the buffer held: every
 * byte, padding included, is written. */
static void deterministic_case(qkc_preset preset, qkc_dtype dtype, int64_t group, unsigned flags)
{
    enum { N = 64, K = 256 };
    char name[64];
    codec c;
    snprintf(name, sizeof name, "%s/deterministic/%s/g%lld/flags%u", preset == QKC_PRESET_GPTQ ? "gptq" : "awq",
             qkc_dtype_keyword(dtype), (long long)group, flags);
    if (!qkc_case_selected(name))
        return;
    float *w = random_weights(name, N, K);
    codec_init(&c, preset, dtype, group, flags, N, K);
    uint8_t *other = malloc((size_t)c.layout.total);
    assert_non_null(other);
    memset(c.blob, 0xAA, (size_t)c.layout.total);
    memset(other, 0x55, (size_t)c.layout.total);
    qkc_status (*quantize)(const qkc_ref_weights *, const float *, int64_t, uint8_t *) =
        preset == QKC_PRESET_GPTQ ? qkc_ref_gptq_quantize : qkc_ref_awq_quantize;
    CHECK(name, quantize(&c.rw, w, K, c.blob) == QKC_OK, "quantize failed");
    CHECK(name, quantize(&c.rw, w, K, other) == QKC_OK, "quantize failed");
    CHECK(name, memcmp(c.blob, other, (size_t)c.layout.total) == 0, "two quantizations differ");
    free(other);
    free(w);
    codec_fini(&c);
}

static void test_gptq_awq_deterministic(void **state)
{
    (void)state;
    deterministic_case(QKC_PRESET_GPTQ, QKC_DTYPE_UINT3, 32, QKC_FORMAT_ACTORDER);
    deterministic_case(QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 128, 0);
    deterministic_case(QKC_PRESET_AWQ, QKC_DTYPE_UINT4, 32, 0);
}

/* Formats outside the codecs' rules are refused with a message. */
static void test_gptq_awq_reject_bad_format(void **state)
{
    float w[16 * 64] = {0};
    codec c;
    (void)state;
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_INT4, 32, 0, 8, 64); /* signed: not a GPTQ width */
    assert_int_equal(qkc_ref_gptq_quantize(&c.rw, w, 64, c.blob), QKC_ERR_INVALID_ARGUMENT);
    assert_true(strlen(qkc_context_last_error(c.ctx)) > 0);
    codec_fini(&c);
    codec_init(&c, QKC_PRESET_GPTQ, QKC_DTYPE_UINT4, 32, QKC_FORMAT_ACTORDER, 8, 64);
    c.layout.bytes[QKC_SECTION_AUX] -= 4; /* a layout that does not fit the format */
    assert_int_equal(qkc_ref_gptq_dequantize(&c.rw, c.blob, w, 64), QKC_ERR_INVALID_ARGUMENT);
    assert_true(strlen(qkc_context_last_error(c.ctx)) > 0);
    codec_fini(&c);
    codec_init(&c, QKC_PRESET_AWQ, QKC_DTYPE_UINT4, 32, 0, 12, 64); /* N % 8 != 0 */
    assert_int_equal(qkc_ref_awq_quantize(&c.rw, w, 64, c.blob), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_ref_awq_dequantize(&c.rw, c.blob, w, 64), QKC_ERR_INVALID_ARGUMENT);
    assert_true(strlen(qkc_context_last_error(c.ctx)) > 0);
    codec_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_pack_vector),
        cmocka_unit_test(test_awq_pack_vector),
        cmocka_unit_test(test_gptq_zero_clamped_to_one),
        cmocka_unit_test(test_awq_zero_clamp),
        cmocka_unit_test(test_gptq_zero_matrix),
        cmocka_unit_test(test_gptq_decode_4bit_v1_zero),
        cmocka_unit_test(test_gptq_decode_3bit_straddle),
        cmocka_unit_test(test_gptq_decode_actorder_gidx),
        cmocka_unit_test(test_gptq_rejects_bad_gidx),
        cmocka_unit_test(test_awq_decode_interleave),
        cmocka_unit_test(test_gptq_roundtrip),
        cmocka_unit_test(test_awq_roundtrip),
        cmocka_unit_test(test_gptq_awq_deterministic),
        cmocka_unit_test(test_gptq_awq_reject_bad_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
