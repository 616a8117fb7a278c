/*
 * Kernel layouts and weight packing (ir/klayout.c, formats/pack.c).
 *
 * For every format of the tolerance table and a list of odd shapes: quantize
 * random weights, pack with verification, then check independently of the
 * packer's own verification that every packed element decodes to the
 * reference dequantizer's bits, that the layout's sizes and offsets follow
 * klayout.h, that padding codes are zero, that packing writes exactly
 * total_bytes deterministic bytes, and that in-place layouts equal the
 * source rows. Also: the layout chosen per format, hand-built chunk records
 * decoded per klayout.h, NaN-carrying blobs, the error statuses, and the
 * format family tables (ir/family.h, formats/family.h) every preset and
 * dtype resolves through.
 *
 * Seeds derive from case names; QKC_CASE=<case name> reruns one case.
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

#include "ir/klayout.h"
#include "ir/mixed.h"
#include "formats/family.h"
#include "formats/pack.h"
#include "formats/ref.h"
#include "core/spec_object.h"
#include "util/testutil.h"
#include "util/tolerance.h"

#define CHECK(name, cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("case %s: ", (name));                                                      \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n  rerun: QKC_CASE='%s' ./test_pack\n", (name));                         \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

enum { GUARD = 64 };

/* A quantized matrix of one spec: weights from the case name, its blob. */
typedef struct pcase {
    const char *name;
    qkc_context *ctx;
    qkc_spec *spec;
    int64_t n, k;
    float *w;
    uint8_t *blob;
    size_t blob_bytes;
    qkc_klayout L;
} pcase;

/* Normal weights with an all-zero row (scale 0 paths) and a few large
 * values (wide groups), all derived from the case name. */
static void pcase_init(pcase *c, const char *text)
{
    qkc_diag diag;
    qkc_rng rng = qkc_rng_from_name(text);
    memset(c, 0, sizeof *c);
    c->name = text;
    assert_int_equal(qkc_context_create(NULL, &c->ctx), QKC_OK);
    if (qkc_spec_parse(c->ctx, text, &c->spec) != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(c->ctx));
    c->n = c->spec->mm.n;
    c->k = c->spec->mm.k;
    c->w = malloc((size_t)(c->n * c->k) * sizeof *c->w);
    assert_non_null(c->w);
    for (int64_t i = 0; i < c->n * c->k; i++) {
        float x = qkc_rng_normal(&rng);
        if (qkc_rng_below(&rng, 41) == 0)
            x *= 12.0f;
        c->w[i] = c->n > 2 && i / c->k == 1 ? 0.0f : x;
    }
    assert_int_equal(qkc_weights_bytes(c->ctx, c->spec, &c->blob_bytes), QKC_OK);
    c->blob = malloc(c->blob_bytes);
    assert_non_null(c->blob);
    if (qkc_quantize(c->ctx, c->spec, c->w, c->k, c->blob, c->blob_bytes) != QKC_OK)
        fail_msg("%s: quantize: %s", text, qkc_context_last_error(c->ctx));
    if (qkc_klayout_for(&c->spec->mm.w, c->n, c->k, &c->L, &diag) != QKC_OK)
        fail_msg("%s: klayout: %s", text, diag.message);
}

static void pcase_fini(pcase *c)
{
    free(c->w);
    free(c->blob);
    qkc_spec_destroy(c->spec);
    qkc_context_destroy(c->ctx);
}

static int field_size(qkc_kfield f)
{
    return f == QKC_KF_F16 || f == QKC_KF_I16 ? 2 : f == QKC_KF_F32 ? 4 : f == QKC_KF_E8M0 ? 1 : 0;
}

/* The raw code of packed element j, read as klayout.h describes it. */
static uint32_t raw_code(const qkc_klayout *L, const uint8_t *row, int64_t j)
{
    const uint8_t *codes = row + (j / L->chunk) * L->chunk_bytes + L->code_off;
    int64_t i = j % L->chunk, half = L->chunk / 2;
    switch (L->code_bits) {
    case 4: return i < half ? codes[i] & 15u : (uint32_t)codes[i - half] >> 4;
    case 8: return codes[i];
    case 16: return qkc_rd16(codes + 2 * i);
    default: return qkc_rd32(codes + 4 * i);
    }
}

/* Sizes and offsets as klayout.h defines them. */
static void check_geometry(const pcase *c)
{
    const qkc_klayout *L = &c->L;
    int off = 0;
    uint64_t rows;
    if (L->mixed) {
        /* w=mixed: each row block in its own layout, back to back */
        uint64_t end = 0, boff = 0;
        for (int b = 0; b < L->mixed; b++) {
            pcase sub = *c;
            qkc_diag d;
            CHECK(c->name, qkc_mixed_block_klayout(&L->mixed_format, c->k, b, &sub.L, &boff, &d) == QKC_OK, "%s",
                  d.message);
            CHECK(c->name, boff % 64 == 0 && boff >= end && boff < end + 64, "block %d at %llu after %llu", b,
                  (unsigned long long)boff, (unsigned long long)end);
            sub.n = L->mixed_format.mixed_rows[b];
            check_geometry(&sub);
            end = boff + sub.L.total_bytes;
        }
        CHECK(c->name, L->total_bytes == end, "total %llu, expected %llu", (unsigned long long)L->total_bytes,
              (unsigned long long)end);
        return;
    }
    CHECK(c->name, L->chunk == 16 || L->chunk == 32, "chunk %d", L->chunk);
    CHECK(c->name, L->code_bits == 4 || L->code_bits == 8 || L->code_bits == 16 || L->code_bits == 32,
          "code_bits %d", L->code_bits);
    if (L->scale != QKC_KF_NONE) {
        CHECK(c->name, L->scale_off == off, "scale at %d, expected %d", L->scale_off, off);
        off += field_size(L->scale);
    }
    if (L->min != QKC_KF_NONE) {
        CHECK(c->name, L->min_off == off, "min at %d, expected %d", L->min_off, off);
        off += field_size(L->min);
    }
    if (L->zero != QKC_KF_NONE) {
        CHECK(c->name, L->zero_off == off, "zero at %d, expected %d", L->zero_off, off);
        off += field_size(L->zero);
    }
    if (L->tidx != QKC_KF_NONE) {
        CHECK(c->name, L->decode == QKC_KDEC_LUT && L->tidx == QKC_KF_U32 && L->tidx_off == off, "tidx at %d, expected %d",
              L->tidx_off, off);
        off += 4;
    }
    CHECK(c->name, L->code_off == off, "codes at %d, expected %d", L->code_off, off);
    CHECK(c->name,
          L->chunk_bytes == off + (L->decode == QKC_KDEC_VQ ? L->chunk / L->vq_dim * 2 : L->chunk * L->code_bits / 8),
          "chunk_bytes %d", L->chunk_bytes);
    CHECK(c->name, L->chunks_per_row == (c->k + L->chunk - 1) / L->chunk, "chunks_per_row %lld",
          (long long)L->chunks_per_row);
    CHECK(c->name, L->row_bytes == (uint64_t)L->chunks_per_row * (uint64_t)L->chunk_bytes, "row_bytes %llu",
          (unsigned long long)L->row_bytes);
    rows = L->row_bytes * (uint64_t)c->n;
    if (L->decode == QKC_KDEC_LUT) {
        CHECK(c->name, L->table_offset >= rows && L->table_offset % 64 == 0 && L->table_offset < rows + 64 &&
                           L->total_bytes == L->table_offset + (uint64_t)L->lut_tables * 64,
              "tables at %llu after %llu row bytes, total %llu", (unsigned long long)L->table_offset,
              (unsigned long long)rows, (unsigned long long)L->total_bytes);
    } else if (L->decode == QKC_KDEC_VQ) {
        CHECK(c->name, L->table_offset >= rows && L->table_offset % 64 == 0 && L->table_offset < rows + 64 &&
                           L->total_bytes == L->table_offset + (uint64_t)L->vq_entries * (uint64_t)L->vq_dim * 4,
              "codebook at %llu after %llu row bytes, total %llu", (unsigned long long)L->table_offset,
              (unsigned long long)rows, (unsigned long long)L->total_bytes);
    } else if (L->permute_k) {
        CHECK(c->name, L->perm_offset >= rows && L->perm_offset % 64 == 0 && L->perm_offset < rows + 64,
              "perm_offset %llu after %llu row bytes", (unsigned long long)L->perm_offset,
              (unsigned long long)rows);
        CHECK(c->name, L->total_bytes == L->perm_offset + (uint64_t)c->k * 4, "total %llu",
              (unsigned long long)L->total_bytes);
    } else if (L->outliers) {
        /* CSR arrays after the rows, each 64-byte aligned */
        uint64_t cap = (uint64_t)L->outlier_cap, end = L->outlier_val_offset + (uint64_t)c->n * cap * 2;
        CHECK(c->name, L->outlier_ptr_offset >= rows && L->outlier_ptr_offset % 64 == 0 &&
                           L->outlier_col_offset >= L->outlier_ptr_offset + ((uint64_t)c->n + 1) * 4 &&
                           L->outlier_col_offset % 64 == 0 &&
                           L->outlier_val_offset >= L->outlier_col_offset + (uint64_t)c->n * cap * 4 &&
                           L->outlier_val_offset % 64 == 0 && L->total_bytes == end && cap >= 1,
              "outlier arrays at %llu %llu %llu, total %llu", (unsigned long long)L->outlier_ptr_offset,
              (unsigned long long)L->outlier_col_offset, (unsigned long long)L->outlier_val_offset,
              (unsigned long long)L->total_bytes);
    } else {
        CHECK(c->name, L->perm_offset == 0 && L->total_bytes == rows, "total %llu, expected %llu",
              (unsigned long long)L->total_bytes, (unsigned long long)rows);
    }
    CHECK(c->name, L->description[0] != '\0' && strlen(L->description) + 1 < sizeof L->description,
          "description empty or truncated: '%s'", L->description);
    CHECK(c->name, !L->in_place == !strstr(L->description, "in place"), "in_place=%d but description '%s'",
          L->in_place, L->description);
    CHECK(c->name, !L->fallback || (L->decode == QKC_KDEC_F32 && L->code_bits == 32 && L->scale == QKC_KF_NONE &&
                                    strstr(L->description, "fallback")),
          "fallback layout is not plain dense f32: %s", L->description);
}

/* Pack with verification; then every check that does not trust the
 * packer: decode vs qkc_dequantize, padding, guard bytes, determinism,
 * in-place rows, the act-order permutation. */
static void check_case(const char *text)
{
    pcase c;
    uint8_t *a, *b;
    float *ref;
    size_t total;

    if (!qkc_case_selected(text))
        return;
    pcase_init(&c, text);
    check_geometry(&c);
    total = (size_t)c.L.total_bytes;
    a = malloc(total + GUARD);
    b = malloc(total + GUARD);
    ref = malloc((size_t)(c.n * c.k) * sizeof *ref);
    assert_true(a && b && ref);
    memset(a, 0xA5, total + GUARD);
    memset(b, 0x00, total + GUARD);

    CHECK(text, qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, a, total, 1) == QKC_OK,
          "pack (verify): %s", qkc_context_last_error(c.ctx));
    CHECK(text, qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, b, total + GUARD, 0) == QKC_OK,
          "pack: %s", qkc_context_last_error(c.ctx));
    CHECK(text, memcmp(a, b, total) == 0, "packing into 0xA5 and zero buffers differs: a byte is not written");
    for (size_t i = total; i < total + GUARD; i++)
        CHECK(text, a[i] == 0xA5 && b[i] == 0x00, "byte %zu past total_bytes=%zu was written", i, total);

    if (qkc_dequantize(c.ctx, c.spec, c.blob, c.blob_bytes, ref, c.k) != QKC_OK)
        fail_msg("%s: dequantize: %s", text, qkc_context_last_error(c.ctx));
    if (c.L.permute_k) {
        /* k_perm: a permutation of 0..K−1 listing columns by g_idx (stable). */
        const uint8_t *g_idx = c.blob + c.spec->layout.offset[QKC_SECTION_AUX];
        char *seen = calloc((size_t)c.k, 1);
        assert_non_null(seen);
        for (int64_t j = 0; j < c.k; j++) {
            int32_t col = (int32_t)qkc_rd32(a + c.L.perm_offset + j * 4);
            CHECK(text, col >= 0 && col < c.k && !seen[col], "k_perm[%lld] = %d repeats or leaves [0, k)",
                  (long long)j, (int)col);
            seen[col] = 1;
            if (j > 0) {
                int32_t prev = (int32_t)qkc_rd32(a + c.L.perm_offset + (j - 1) * 4);
                int32_t g0 = (int32_t)qkc_rd32(g_idx + prev * 4), g1 = (int32_t)qkc_rd32(g_idx + col * 4);
                CHECK(text, g0 < g1 || (g0 == g1 && prev < col), "k_perm is not a stable sort by g_idx at %lld",
                      (long long)j);
            }
        }
        free(seen);
        for (uint64_t i = c.L.row_bytes * (uint64_t)c.n; i < c.L.perm_offset; i++)
            CHECK(text, a[i] == 0, "alignment byte %llu before k_perm is not zero", (unsigned long long)i);
    }
    for (int64_t r = 0; r < c.n; r++) {
        const uint8_t *row = a + (uint64_t)r * c.L.row_bytes;
        for (int64_t j = 0; j < c.k; j++) {
            int64_t col = c.L.permute_k ? (int32_t)qkc_rd32(a + c.L.perm_offset + j * 4) : j;
            float got = qkc_klayout_decode_at(&c.L, a, r, j), want = ref[r * c.k + col];
            if (c.L.outliers) {
                /* the packed CSR entries of this element, added as the reference adds them */
                uint32_t e0 = qkc_rd32(a + c.L.outlier_ptr_offset + (uint64_t)r * 4);
                uint32_t e1 = qkc_rd32(a + c.L.outlier_ptr_offset + (uint64_t)r * 4 + 4);
                for (uint32_t e = e0; e < e1; e++)
                    if (qkc_rd32(a + c.L.outlier_col_offset + (uint64_t)e * 4) == (uint32_t)j)
                        got += qkc_f16_to_f32(qkc_rd16(a + c.L.outlier_val_offset + (uint64_t)e * 2));
            }
            CHECK(text, memcmp(&got, &want, sizeof got) == 0,
                  "row %lld column %lld: packed %.9g (0x%08x), reference %.9g (0x%08x) [%s]", (long long)r,
                  (long long)col, (double)got, (unsigned)qkc_f32_bits(got), (double)want,
                  (unsigned)qkc_f32_bits(want), c.L.description);
        }
        for (int64_t j = c.k; j < c.L.chunks_per_row * c.L.chunk; j++)
            CHECK(text, raw_code(&c.L, row, j) == 0, "row %lld: padding code %lld is not 0", (long long)r,
                  (long long)j);
    }
    if (c.L.in_place)
        CHECK(text,
              c.spec->layout.row_bytes == c.L.row_bytes &&
                  memcmp(a, c.blob + c.spec->layout.offset[QKC_SECTION_DATA], (size_t)(c.L.row_bytes * (uint64_t)c.n)) == 0,
              "in-place layout rows differ from the source blob rows");
    free(a);
    free(b);
    free(ref);
    pcase_fini(&c);
}

/* Every format of the round-trip table, on a shape every preset accepts. */
static void test_pack_every_table_format(void **state)
{
    size_t count;
    const qkc_tol_roundtrip *tab = qkc_tol_roundtrip_table(&count);
    (void)state;
    for (size_t t = 0; t < count; t++) {
        char text[256];
        snprintf(text, sizeof text, "matmul n=32 k=512 %s", tab[t].weights);
        check_case(text);
    }
}

/* Tails, single rows, group=16, non-chunking groups, tensor scales,
 * outliers, act-order and channel GPTQ, and the other scale kinds. */
static void test_pack_odd_shapes(void **state)
{
    static const char *cases[] = {
        "matmul n=17 k=250 w=int4 group=32 scale=f16",
        "matmul n=1 k=250 w=int8",
        "matmul n=17 k=250 w=uint8 zero=int",
        "matmul n=17 k=250 w=uint4 group=32 scale=f16 zero=float",
        "matmul n=17 k=250 w=int4 group=32 scale=bf16 zero=float",
        "matmul n=17 k=250 w=int2 group=32 scale=f32 zero=float",
        "matmul n=17 k=250 w=int8 group=32 scale=bf16 zero=int",
        "matmul n=3 k=250 w=int3 group=32 zero=int",
        "matmul n=5 k=250 w=nf4 group=64",
        "matmul n=17 k=96 w=int4 group=16 scale=f16",
        "matmul n=17 k=100 w=int4 group=16",
        "matmul n=17 k=250 w=int4 group=48 scale=f16",
        "matmul n=17 k=250 w=int4 group=25 scale=f16",
        "matmul n=4 k=250 w=int4 group=tensor zero=int",
        "matmul n=4 k=250 w=uint5 group=tensor zero=float scale=f16",
        "matmul n=4 k=250 w=int4 group=32 outliers=sparse:0.01",
        "matmul n=17 k=250 w=fp4 group=32 scale=e8m0",
        "matmul n=17 k=250 w=fp4 group=32",
        "matmul n=17 k=250 w=iq4nl group=32 scale=f16",
        "matmul n=17 k=250 w=int4 group=32 scale=e8m0",
        "matmul n=17 k=250 w=fp8e4m3 group=32 scale=e8m0",
        "matmul n=17 k=250 w=fp8e5m2 group=128 scale=fp8e4m3:f32:2",
        "matmul n=17 k=250 w=int6 group=16 scale=int8:f16:16",
        "matmul n=17 k=250 w=int4 group=32 scale=uint6:bf16:3 zero=int",
        "matmul n=17 k=250 w=f16",
        "matmul n=17 k=250 w=bf16",
        "matmul n=17 k=250 w=tf32",
        "matmul n=17 k=250 w=f32",
        "matmul n=1 k=256 w=q4_k",
        "matmul n=17 k=512 w=q6_k",
        "matmul n=17 k=96 w=q8_0",
        "matmul n=17 k=96 w=q5_0",
        "matmul n=1 k=32 w=mxfp4",
        "matmul n=17 k=96 w=mxfp8:e5m2",
        "matmul n=3 k=96 w=nf4_bnb:dq group=32",
        "matmul n=32 k=256 w=gptq:3:actorder group=32",
        "matmul n=8 k=256 w=gptq:actorder group=64",
        "matmul n=4 k=128 w=gptq:8:actorder group=32",
        "matmul n=8 k=96 w=gptq:actorder group=96",
        "matmul n=8 k=136 w=gptq:actorder group=32",
        "matmul n=8 k=96 w=gptq group=channel",
        "matmul n=8 k=96 w=gptq:actorder group=channel",
        "matmul n=16 k=96 w=gptq:2 group=16",
        "matmul n=8 k=240 w=gptq group=48",
        "matmul n=8 k=240 w=gptq group=40",
        "matmul n=8 k=240 w=gptq:actorder group=40",
        "matmul n=8 k=96 w=awq group=32",
        "matmul n=8 k=128 w=awq group=64",
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(cases[i]);
}

/* The layout each format gets. */
typedef struct expect {
    const char *spec;
    int fallback, in_place, chunk, code_bits;
    qkc_kdecode decode;
    int zero_const;
    qkc_kfield scale, min, zero;
    int chunk_bytes, permute_k;
    const char *text; /* a part of the description */
} expect;

static void test_klayout_choices(void **state)
{
    static const expect ex[] = {
        {"w=q4_0", 0, 1, 32, 4, QKC_KDEC_AFFINE, 8, QKC_KF_F16, 0, 0, 18, 0, "q4_0 in place"},
        {"w=q4_1", 0, 1, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, QKC_KF_F16, 0, 20, 0, "q4_1 in place"},
        {"w=q5_0", 0, 0, 32, 8, QKC_KDEC_AFFINE, 16, QKC_KF_F16, 0, 0, 34, 0, "q5_0"},
        {"w=q5_1", 0, 0, 32, 8, QKC_KDEC_AFFINE, 0, QKC_KF_F16, QKC_KF_F16, 0, 36, 0, "q5_1"},
        {"w=q8_0", 0, 0, 32, 8, QKC_KDEC_AFFINE, 128, QKC_KF_F16, 0, 0, 34, 0, "q8_0"},
        {"w=q4_k", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F32, QKC_KF_F32, 0, 24, 0, "q4_k"},
        {"w=q5_k", 0, 0, 32, 8, QKC_KDEC_AFFINE, 0, QKC_KF_F32, QKC_KF_F32, 0, 40, 0, "q5_k"},
        {"w=q6_k", 0, 0, 16, 8, QKC_KDEC_AFFINE, 32, QKC_KF_F32, 0, 0, 20, 0, "q6_k"},
        {"w=iq4_nl", 0, 1, 32, 4, QKC_KDEC_TABLE, 0, QKC_KF_F16, 0, 0, 18, 0, "iq4_nl in place"},
        {"w=mxfp4", 0, 1, 32, 4, QKC_KDEC_TABLE, 0, QKC_KF_E8M0, 0, 0, 17, 0, "mxfp4 in place"},
        {"w=mxfp8", 0, 1, 32, 8, QKC_KDEC_FP8E4M3, 0, QKC_KF_E8M0, 0, 0, 33, 0, "mxfp8 in place"},
        {"w=mxfp8:e5m2", 0, 1, 32, 8, QKC_KDEC_FP8E5M2, 0, QKC_KF_E8M0, 0, 0, 33, 0, "mxfp8:e5m2"},
        {"w=nf4_bnb:dq", 0, 0, 32, 4, QKC_KDEC_TABLE, 0, QKC_KF_F32, 0, 0, 20, 0, "nf4_bnb:dq"},
        {"w=gptq", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 20, 0, "gptq 4-bit"},
        {"w=gptq:8", 0, 0, 32, 8, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 36, 0, "gptq 8-bit"},
        {"w=gptq:3:actorder group=32", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 20, 1,
         "act-order"},
        {"w=gptq:actorder group=channel", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 20, 0,
         "act-order"},
        {"w=gptq group=48", 0, 0, 16, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 12, 0, "per 16"},
        {"w=gptq:actorder group=40", 1, 0, 32, 32, QKC_KDEC_F32, 0, 0, 0, 0, 128, 0,
         "dense f32 fallback: group=40 is not a multiple of 16"},
        {"w=awq group=32", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, 0, QKC_KF_I16, 20, 0, "awq"},
        {"w=int8", 0, 0, 32, 8, QKC_KDEC_AFFINE, 128, QKC_KF_F32, 0, 0, 36, 0, "row scale repeated"},
        {"w=uint8 zero=int", 0, 0, 32, 8, QKC_KDEC_AFFINE, 0, QKC_KF_F32, 0, QKC_KF_I16, 38, 0, "uint8"},
        {"w=int4 group=32 scale=f16", 0, 0, 32, 4, QKC_KDEC_AFFINE, 8, QKC_KF_F16, 0, 0, 18, 0, "offset-binary"},
        {"w=int3 group=32 zero=int", 0, 0, 32, 4, QKC_KDEC_AFFINE, 4, QKC_KF_F32, 0, QKC_KF_I16, 22, 0, "int3"},
        {"w=uint4 group=32 scale=f16 zero=float", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F16, QKC_KF_F16, 0, 20, 0,
         "f16 min"},
        {"w=uint4 group=64 scale=bf16 zero=float", 0, 0, 32, 4, QKC_KDEC_AFFINE, 0, QKC_KF_F32, QKC_KF_F32, 0, 24,
         0, "f32 min"},
        {"w=int6 group=16 scale=int8:f16:16", 0, 0, 16, 8, QKC_KDEC_AFFINE, 32, QKC_KF_F32, 0, 0, 20, 0,
         "scales resolved"},
        {"w=nf4 group=64", 0, 0, 32, 4, QKC_KDEC_TABLE, 0, QKC_KF_F32, 0, 0, 20, 0, "nf4"},
        {"w=fp4 group=32 scale=e8m0", 0, 0, 32, 4, QKC_KDEC_TABLE, 0, QKC_KF_E8M0, 0, 0, 17, 0, "e8m0 scale"},
        {"w=fp8e5m2 group=32", 0, 0, 32, 8, QKC_KDEC_FP8E5M2, 0, QKC_KF_F32, 0, 0, 36, 0, "fp8e5m2"},
        {"w=int4 group=tensor", 0, 0, 32, 4, QKC_KDEC_AFFINE, 8, QKC_KF_F32, 0, 0, 20, 0, "tensor scale repeated"},
        {"w=int4 group=32 outliers=sparse:0.01", 0, 0, 32, 4, QKC_KDEC_AFFINE, 8, QKC_KF_F32, 0, 0, 20, 0,
         "+sparse outliers"},
        {"w=int4 group=25 scale=f16", 1, 0, 32, 32, QKC_KDEC_F32, 0, 0, 0, 0, 128, 0,
         "dense f32 fallback: group=25 is not a multiple of 16"},
        {"w=int4 group=16", 0, 0, 16, 4, QKC_KDEC_AFFINE, 8, QKC_KF_F32, 0, 0, 12, 0, "per 16"},
        {"w=f16", 0, 0, 32, 16, QKC_KDEC_F16, 0, 0, 0, 0, 64, 0, "dense f16"},
        {"w=bf16", 0, 0, 32, 16, QKC_KDEC_BF16, 0, 0, 0, 0, 64, 0, "dense bf16"},
        {"w=tf32", 0, 0, 32, 32, QKC_KDEC_F32, 0, 0, 0, 0, 128, 0, "tf32"},
    };
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        const expect *e = &ex[i];
        char text[160];
        qkc_spec *spec;
        qkc_klayout L;
        qkc_diag diag;
        snprintf(text, sizeof text, "matmul n=32 k=512 %s", e->spec);
        if (!qkc_case_selected(text))
            continue;
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
            fail_msg("%s: %s", text, qkc_context_last_error(ctx));
        CHECK(text, qkc_klayout_for(&spec->mm.w, 32, 512, &L, &diag) == QKC_OK, "%s", diag.message);
        CHECK(text,
              L.fallback == e->fallback && L.in_place == e->in_place && L.chunk == e->chunk &&
                  L.code_bits == e->code_bits && L.decode == e->decode && L.zero_const == e->zero_const &&
                  L.scale == e->scale && L.min == e->min && L.zero == e->zero && L.chunk_bytes == e->chunk_bytes &&
                  L.permute_k == e->permute_k,
              "got fallback=%d in_place=%d chunk=%d bits=%d decode=%d zc=%d scale=%d min=%d zero=%d bytes=%d "
              "permute=%d (%s)",
              L.fallback, L.in_place, L.chunk, L.code_bits, (int)L.decode, L.zero_const, (int)L.scale, (int)L.min,
              (int)L.zero, L.chunk_bytes, L.permute_k, L.description);
        CHECK(text, strstr(L.description, e->text) != NULL, "description '%s' lacks '%s'", L.description, e->text);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
}

/* Hand-built chunk records decoded per klayout.h: nibble order, zero_const,
 * i16 zero, min after the product, e8m0 variants, fp8, dense, tables. */
static void test_klayout_decode_by_hand(void **state)
{
    qkc_klayout L;
    uint8_t rec[2 * 40];
    float x;
    (void)state;

    /* 4-bit affine, f16 scale, zero_const 8: byte 0 = 0x3A holds element 0
     * (code 10) and element 16 (code 3); the second record starts at 18. */
    memset(&L, 0, sizeof L);
    L.chunk = 32, L.code_bits = 4, L.decode = QKC_KDEC_AFFINE, L.zero_const = 8, L.scale = QKC_KF_F16;
    L.code_off = 2, L.chunk_bytes = 18, L.chunks_per_row = 2;
    memset(rec, 0, sizeof rec);
    qkc_wr16(rec, qkc_f32_to_f16(1.5f));
    rec[2] = 0x3A;
    qkc_wr16(rec + 18, qkc_f32_to_f16(-2.0f));
    rec[18 + 2 + 15] = 0xF0; /* record 1: element 15 code 0, element 31 code 15 */
    assert_true(qkc_klayout_decode(&L, rec, 0) == 3.0f);
    assert_true(qkc_klayout_decode(&L, rec, 16) == -7.5f);
    assert_true(qkc_klayout_decode(&L, rec, 1) == -12.0f); /* code 0 */
    assert_true(qkc_klayout_decode(&L, rec, 32 + 15) == 16.0f);
    assert_true(qkc_klayout_decode(&L, rec, 32 + 31) == -14.0f);

    /* 8-bit affine, f32 scale, f32 min, i16 zero −3: v = code − 0 − (−3),
     * x = v·s + m with two roundings (1 + 2^-24 is not representable, so a
     * fused x would differ). */
    memset(&L, 0, sizeof L);
    L.chunk = 32, L.code_bits = 8, L.decode = QKC_KDEC_AFFINE, L.scale = QKC_KF_F32, L.min = QKC_KF_F32;
    L.zero = QKC_KF_I16, L.scale_off = 0, L.min_off = 4, L.zero_off = 8, L.code_off = 10, L.chunk_bytes = 42;
    memset(rec, 0, sizeof rec);
    qkc_wr32(rec, qkc_f32_bits(0.25f));
    qkc_wr32(rec + 4, qkc_f32_bits(-1.0f));
    qkc_wr16(rec + 8, (uint16_t)0xFFFDu);
    rec[10 + 5] = 5;
    rec[10 + 6] = 200;
    assert_true(qkc_klayout_decode(&L, rec, 5) == 1.0f);             /* (5+3)·0.25 − 1 */
    assert_true(qkc_klayout_decode(&L, rec, 6) == 50.75f - 1.0f);    /* 203·0.25 − 1 */
    qkc_wr32(rec, qkc_f32_bits(1.0f + 0x1p-23f));
    qkc_wr32(rec + 4, qkc_f32_bits(-0x1p-23f * 7.0f));
    rec[10 + 7] = 4; /* v = 7 */
    x = qkc_klayout_decode(&L, rec, 7);
    {
        volatile float t = 7.0f * (1.0f + 0x1p-23f);
        float want = t + (-0x1p-23f * 7.0f);
        assert_memory_equal(&x, &want, sizeof x);
    }

    /* TABLE with a half e8m0 scale (mxfp4): e = 0 is 2^-128, e = 0xFF is
     * 2^127 without NaN; with ff_is_nan a plain e8m0 0xFF is NaN. */
    memset(&L, 0, sizeof L);
    L.chunk = 32, L.code_bits = 4, L.decode = QKC_KDEC_TABLE, L.scale = QKC_KF_E8M0, L.e8m0_half = 1;
    L.code_off = 1, L.chunk_bytes = 17;
    for (int i = 0; i < 16; i++)
        L.table[i] = (float)(i < 8 ? i : 8 - i);
    memset(rec, 0, sizeof rec);
    rec[0] = 0;
    rec[1] = 0x21; /* element 0 code 1, element 16 code 2 */
    assert_true(qkc_klayout_decode(&L, rec, 0) == 0x1p-128f);
    assert_true(qkc_klayout_decode(&L, rec, 16) == 0x1p-127f);
    rec[0] = 1;
    assert_true(qkc_klayout_decode(&L, rec, 0) == 0x1p-127f);
    rec[0] = 0xFF;
    assert_true(qkc_klayout_decode(&L, rec, 0) == 0x1p127f);
    L.e8m0_half = 0;
    rec[0] = 0;
    assert_true(qkc_klayout_decode(&L, rec, 0) == 0x1p-127f);
    rec[0] = 130;
    assert_true(qkc_klayout_decode(&L, rec, 16) == 16.0f);
    rec[0] = 0xFF;
    assert_true(qkc_klayout_decode(&L, rec, 0) == 0x1p127f);
    L.e8m0_ff_is_nan = 1;
    assert_true(isnan(qkc_klayout_decode(&L, rec, 0)));

    /* fp8: 0x38 is 1.0 in e4m3 and 0.5 in e5m2 (0x38 = 0.01110.00). */
    memset(&L, 0, sizeof L);
    L.chunk = 32, L.code_bits = 8, L.decode = QKC_KDEC_FP8E4M3, L.scale = QKC_KF_E8M0, L.e8m0_ff_is_nan = 1;
    L.code_off = 1, L.chunk_bytes = 33;
    memset(rec, 0, sizeof rec);
    rec[0] = 128;
    rec[1 + 3] = 0x38;
    rec[1 + 4] = 0xC0; /* e4m3 −2 */
    assert_true(qkc_klayout_decode(&L, rec, 3) == 2.0f);
    assert_true(qkc_klayout_decode(&L, rec, 4) == -4.0f);
    L.decode = QKC_KDEC_FP8E5M2;
    assert_true(qkc_klayout_decode(&L, rec, 3) == 1.0f);

    /* Dense: f16, bf16 and f32 values, no scale; chunk 16 records. */
    memset(&L, 0, sizeof L);
    L.chunk = 16, L.code_bits = 16, L.decode = QKC_KDEC_F16, L.chunk_bytes = 32;
    memset(rec, 0, sizeof rec);
    qkc_wr16(rec + 32 + 2 * 3, 0xC500); /* element 19: f16 −5 */
    assert_true(qkc_klayout_decode(&L, rec, 19) == -5.0f);
    L.decode = QKC_KDEC_BF16;
    qkc_wr16(rec + 2, 0x3FC0); /* element 1: bf16 1.5 */
    assert_true(qkc_klayout_decode(&L, rec, 1) == 1.5f);
    L.code_bits = 32, L.decode = QKC_KDEC_F32, L.chunk_bytes = 64;
    qkc_wr32(rec + 64 + 4, qkc_f32_bits(-0.0f));
    x = qkc_klayout_decode(&L, rec, 17);
    assert_true(x == 0.0f && signbit(x));
}

/* The tables and scale flags of the table formats, as the reference
 * decodes them (mxfp4: +0 at code 8; planar fp4: −0 at code 8). */
static void test_klayout_tables(void **state)
{
    qkc_format f;
    qkc_klayout L;
    qkc_diag diag;
    (void)state;
    f = qkc_preset_format(QKC_PRESET_MXFP4);
    assert_int_equal(qkc_klayout_for(&f, 2, 64, &L, &diag), QKC_OK);
    assert_true(L.e8m0_half == 1 && L.e8m0_ff_is_nan == 0);
    assert_true(L.table[7] == 12.0f && L.table[15] == -12.0f && L.table[8] == 0.0f && !signbit(L.table[8]));
    f = qkc_preset_format(QKC_PRESET_IQ4_NL);
    assert_int_equal(qkc_klayout_for(&f, 2, 64, &L, &diag), QKC_OK);
    assert_true(L.table[0] == -127.0f && L.table[8] == 1.0f && L.table[15] == 113.0f);
    memset(&f, 0, sizeof f);
    f.dtype = QKC_DTYPE_FP4, f.granularity = QKC_GRAN_GROUP, f.group = 32, f.scale_dtype = QKC_DTYPE_E8M0;
    assert_int_equal(qkc_klayout_for(&f, 2, 64, &L, &diag), QKC_OK);
    assert_true(L.e8m0_half == 0 && L.e8m0_ff_is_nan == 1);
    assert_true(L.table[8] == 0.0f && signbit(L.table[8]) && L.table[7] == 6.0f && L.table[1] == 0.5f);
    f.dtype = QKC_DTYPE_NF4;
    assert_int_equal(qkc_klayout_for(&f, 2, 64, &L, &diag), QKC_OK);
    for (uint32_t i = 0; i < 16; i++)
        assert_true(L.table[i] == qkc_dtype_decode(QKC_DTYPE_NF4, i));
    /* Act-order permutes only with more than one group; k_perm follows the
     * rows, 64-byte aligned: 3 rows of 8·20 bytes end at 480, k_perm at 512. */
    f = qkc_preset_format(QKC_PRESET_GPTQ);
    f.flags = QKC_FORMAT_ACTORDER, f.group = 32;
    assert_int_equal(qkc_klayout_for(&f, 3, 256, &L, &diag), QKC_OK);
    assert_true(L.permute_k == 1 && L.row_bytes == 160 && L.perm_offset == 512 && L.total_bytes == 512 + 1024);
    assert_int_equal(qkc_klayout_for(&f, 3, 32, &L, &diag), QKC_OK);
    assert_true(L.permute_k == 0 && L.total_bytes == 3 * 20);
    assert_int_equal(qkc_klayout_for(&f, 0, 32, &L, &diag), QKC_ERR_INVALID_ARGUMENT);
}

/* Quantize and pack (no verification) one fixed case; 0 when QKC_CASE
 * selects another case. */
static int pack_fixed(pcase *c, const char *text, uint8_t **packed)
{
    if (!qkc_case_selected(text))
        return 0;
    pcase_init(c, text);
    *packed = malloc((size_t)c->L.total_bytes);
    assert_non_null(*packed);
    CHECK(text, qkc_pack_weights(c->ctx, c->spec, &c->L, c->blob, c->blob_bytes, *packed, (size_t)c->L.total_bytes,
                                 0) == QKC_OK,
          "pack: %s", qkc_context_last_error(c->ctx));
    return 1;
}

/* Packed bytes of the repacked presets, against the source bytes: q8_0
 * codes + 128, nf4_bnb high-nibble-first codes, GPTQ zero = field + 1. */
static void test_pack_repacked_bytes(void **state)
{
    pcase c;
    uint8_t *p;
    (void)state;

    if (pack_fixed(&c, "matmul n=3 k=64 w=q8_0", &p)) {
        for (int b = 0; b < 3 * 2; b++) {
            CHECK(c.name, memcmp(p + b * 34, c.blob + b * 34, 2) == 0, "block %d: scale bytes differ", b);
            for (int j = 0; j < 32; j++)
                CHECK(c.name, p[b * 34 + 2 + j] == (uint8_t)(c.blob[b * 34 + 2 + j] ^ 0x80),
                      "block %d code %d is not the int8 code + 128", b, j);
        }
        free(p);
        pcase_fini(&c);
    }
    if (pack_fixed(&c, "matmul n=2 k=64 w=nf4_bnb group=32", &p)) {
        for (int64_t e = 0; e < 2 * 64; e++) {
            uint8_t byte = c.blob[c.spec->layout.offset[QKC_SECTION_DATA] + (uint64_t)e / 2];
            uint32_t want = e % 2 == 0 ? (uint32_t)byte >> 4 : byte & 15u;
            CHECK(c.name, raw_code(&c.L, p + (e / 64) * c.L.row_bytes, e % 64) == want,
                  "element %lld: packed code differs from bitsandbytes' nibble", (long long)e);
        }
        for (int b = 0; b < 4; b++) /* absmax per block of 32 = per chunk; rows are contiguous */
            CHECK(c.name,
                  memcmp(p + b * c.L.chunk_bytes, c.blob + c.spec->layout.offset[QKC_SECTION_SCALES] + b * 4, 4) == 0,
                  "block %d: absmax differs", b);
        free(p);
        pcase_fini(&c);
    }
    if (pack_fixed(&c, "matmul n=8 k=64 w=gptq group=32", &p)) {
        for (int64_t g = 0; g < 2; g++)
            for (int64_t n = 0; n < 8; n++) {
                /* qzeros: one word per group (8 outputs × 4 bits), field = zero − 1 */
                uint32_t word = qkc_rd32(c.blob + c.spec->layout.offset[QKC_SECTION_ZEROS] + (uint64_t)g * 4);
                uint32_t field = (word >> (4 * n)) & 15u;
                const uint8_t *rec = p + (uint64_t)n * c.L.row_bytes + (uint64_t)g * (uint64_t)c.L.chunk_bytes;
                const uint8_t *scale =
                    c.blob + c.spec->layout.offset[QKC_SECTION_SCALES] + ((uint64_t)g * 8 + (uint64_t)n) * 2;
                CHECK(c.name, qkc_rd16(rec + c.L.zero_off) == field + 1, "group %lld row %lld: zero %u, field %u",
                      (long long)g, (long long)n, (unsigned)qkc_rd16(rec + c.L.zero_off), (unsigned)field);
                CHECK(c.name, memcmp(rec + c.L.scale_off, scale, 2) == 0, "group %lld row %lld: scale differs",
                      (long long)g, (long long)n);
            }
        free(p);
        pcase_fini(&c);
    }
}

/* Blobs carrying NaN scales and minima or unclean dense words (not what
 * qkc_quantize writes, but what a file may hold): packing still decodes to
 * the reference's exact bits, NaN payload and sign included. */
static void nan_case(const char *text, void (*poke)(pcase *c))
{
    pcase c;
    uint8_t *p;
    if (!qkc_case_selected(text))
        return;
    pcase_init(&c, text);
    poke(&c);
    p = malloc((size_t)c.L.total_bytes);
    assert_non_null(p);
    CHECK(text, qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, (size_t)c.L.total_bytes, 1) == QKC_OK,
          "%s", qkc_context_last_error(c.ctx));
    free(p);
    pcase_fini(&c);
}

static void poke_q4_k(pcase *c)
{
    qkc_wr16(c->blob + 2, 0x7E00);       /* block 0: dmin NaN */
    qkc_wr16(c->blob + 144, 0xFE01);     /* block 1: d negative NaN */
    qkc_wr16(c->blob + 144 + 2, 0x7C01); /* and dmin a signalling-pattern NaN */
}

static void poke_q6_k(pcase *c)
{
    qkc_wr16(c->blob + 208, 0x7E00);
}

static void poke_mx(pcase *c)
{
    c->blob[0] = 0xFF;
    c->blob[c->spec->layout.row_bytes] = 0xFF;
}

static void poke_planar_scales(pcase *c)
{
    uint8_t *s = c->blob + c->spec->layout.offset[QKC_SECTION_SCALES];
    s[0] = 0xFF; /* e8m0 NaN / fp8 byte, or half an f16 NaN */
    s[1] = 0x7F;
}

/* tf32 words with the low 13 bits set (decoded with them cleared) and an
 * f32 signalling NaN (kept as is). */
static void poke_dense(pcase *c)
{
    uint8_t *d = c->blob + c->spec->layout.offset[QKC_SECTION_DATA];
    for (int i = 0; i < 8; i++)
        qkc_wr32(d + i * 4, qkc_rd32(d + i * 4) | (uint32_t)(0x1FFF - i));
    qkc_wr32(d + 40, 0x7F800001u);
}

static void test_pack_nan_blobs(void **state)
{
    (void)state;
    nan_case("matmul n=2 k=512 w=q4_k", poke_q4_k);
    nan_case("matmul n=2 k=512 w=q5_k", poke_q4_k);
    nan_case("matmul n=2 k=256 w=q6_k", poke_q6_k);
    nan_case("matmul n=2 k=64 w=mxfp8", poke_mx);
    nan_case("matmul n=2 k=64 w=mxfp4", poke_mx);
    nan_case("matmul n=2 k=64 w=fp8e4m3 group=32 scale=e8m0", poke_planar_scales);
    nan_case("matmul n=2 k=64 w=int4 group=32 scale=f16", poke_planar_scales);
    nan_case("matmul n=2 k=64 w=int4 group=32 scale=fp8e4m3:f32:2", poke_planar_scales);
    nan_case("matmul n=2 k=64 w=tf32", poke_dense);
    nan_case("matmul n=2 k=64 w=f32", poke_dense);
}

/* Sizes, NULLs, a foreign layout, corrupt and unchunkable g_idx. */
static void test_pack_errors(void **state)
{
    pcase c;
    qkc_klayout bad;
    uint8_t *p;
    size_t total;
    (void)state;

    if (!qkc_case_selected("matmul n=8 k=128 w=gptq:actorder group=32"))
        return;
    pcase_init(&c, "matmul n=8 k=128 w=gptq:actorder group=32");
    total = (size_t)c.L.total_bytes;
    p = malloc(total);
    assert_non_null(p);
    assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, total - 1, 1),
                     QKC_ERR_BUFFER_TOO_SMALL);
    assert_non_null(strstr(qkc_context_last_error(c.ctx), "dst"));
    assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes - 1, p, total, 0),
                     QKC_ERR_BUFFER_TOO_SMALL);
    assert_non_null(strstr(qkc_context_last_error(c.ctx), "src"));
    assert_int_equal(qkc_pack_weights(c.ctx, NULL, &c.L, c.blob, c.blob_bytes, p, total, 1),
                     QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_pack_weights(NULL, c.spec, &c.L, c.blob, c.blob_bytes, p, total, 1),
                     QKC_ERR_INVALID_ARGUMENT);
    bad = c.L;
    bad.chunk_bytes += 2;
    assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &bad, c.blob, c.blob_bytes, p, total, 1),
                     QKC_ERR_INVALID_ARGUMENT);
    bad = c.L;
    bad.permute_k = 0;
    assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &bad, c.blob, c.blob_bytes, p, total, 1),
                     QKC_ERR_INVALID_ARGUMENT);

    /* g_idx[5] = 4 with 4 groups: corrupt, with and without verification. */
    {
        uint8_t *gidx = c.blob + c.spec->layout.offset[QKC_SECTION_AUX];
        uint32_t saved = qkc_rd32(gidx + 5 * 4);
        qkc_wr32(gidx + 5 * 4, 4);
        assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, total, 0),
                         QKC_ERR_CORRUPT_DATA);
        assert_non_null(strstr(qkc_context_last_error(c.ctx), "g_idx[5] = 4"));
        qkc_wr32(gidx + 5 * 4, 0xFFFFFFFFu);
        assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, total, 1),
                         QKC_ERR_CORRUPT_DATA);
        /* Valid but uneven groups (33 columns in group 0, 31 in group 1):
         * sorted, group 1 would start mid-chunk. */
        qkc_wr32(gidx + 5 * 4, saved);
        for (int64_t k = 0; k < 128; k++)
            qkc_wr32(gidx + k * 4, (uint32_t)(k < 33 ? 0 : k < 64 ? 1 : k / 32));
        assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, total, 1),
                         QKC_ERR_UNSUPPORTED);
        assert_non_null(strstr(qkc_context_last_error(c.ctx), "group 0 holds 33 columns"));
        /* Scattered whole-chunk groups, one of them empty: packs, verifies. */
        for (int64_t k = 0; k < 128; k++) {
            int64_t pos = (k * 7) % 128;
            qkc_wr32(gidx + k * 4, (uint32_t)(pos < 32 ? 2 : pos < 96 ? 3 : 0));
        }
        assert_int_equal(qkc_pack_weights(c.ctx, c.spec, &c.L, c.blob, c.blob_bytes, p, total, 1), QKC_OK);
        /* group 0 comes first; its lowest column is k = 14 (7·14 mod 128 = 98) */
        assert_int_equal(qkc_rd32(p + c.L.perm_offset), 14);
    }
    free(p);
    pcase_fini(&c);
}

/* Every preset and every bare dtype resolves to a family whose two tables
 * are complete; presets.def's facts agree with each other (a GGUF type is
 * found again by its ggml id; block presets have a kernel layout of their
 * own, not the fallback). */
static void test_family_tables(void **state)
{
    (void)state;
    for (int fam = 1; fam < QKC_FAMILY_END_; fam++) {
        const qkc_family_ir *ir = qkc_family_ir_get((qkc_family)fam);
        const qkc_family_codec *codec = qkc_family_codec_get((qkc_family)fam);
        assert_non_null(ir);
        assert_non_null(codec);
        assert_string_equal(ir->name, codec->name);
        assert_non_null(ir->verify);
        assert_true((ir->sections && ir->kernel_layout && !ir->layout_whole && !ir->kernel_layout_whole) ||
                    (!ir->sections && !ir->kernel_layout && ir->layout_whole && ir->kernel_layout_whole));
        assert_true(codec->quantize && codec->dequantize && (!codec->pack != !codec->pack_whole));
    }
    assert_null(qkc_family_ir_get(QKC_FAMILY_NONE));
    assert_null(qkc_family_codec_get(QKC_FAMILY_END_));
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        const qkc_preset_desc *pd = qkc_preset_get((qkc_preset)p);
        qkc_format f = qkc_preset_format((qkc_preset)p);
        qkc_klayout L;
        qkc_diag diag;
        assert_non_null(pd);
        assert_int_equal(qkc_format_family(&f), pd->family);
        assert_non_null(qkc_family_ir_get(pd->family));
        assert_int_equal(pd->group_is_free, pd->block_elems == 0);
        assert_true((pd->block_elems == 0) == (pd->block_bytes == 0));
        if (pd->ggml_type >= 0) {
            assert_int_equal(pd->family, QKC_FAMILY_GGUF);
            assert_int_equal(qkc_preset_from_ggml_type(pd->ggml_type), p);
        }
        assert_non_null(pd->vec_dot_type);
        if (pd->vec_dot_type[0]) {
            /* llama.cpp's activation types: only ggml types have one */
            assert_true(pd->ggml_type >= 0);
            assert_true(!strcmp(pd->vec_dot_type, "q8_0") || !strcmp(pd->vec_dot_type, "q8_1") ||
                        !strcmp(pd->vec_dot_type, "q8_K"));
        }
        if (pd->block_elems > 0) {
            assert_int_equal(qkc_klayout_for(&f, 2, 2 * pd->block_elems, &L, &diag), QKC_OK);
            assert_false(L.fallback);
        }
    }
    assert_int_equal(qkc_preset_from_ggml_type(-1), QKC_PRESET_NONE);
    for (int d = 1; d < QKC_DTYPE_END_; d++) {
        const qkc_dtype_desc *dd = qkc_dtype_get((qkc_dtype)d);
        qkc_format f;
        memset(&f, 0, sizeof f);
        f.dtype = (qkc_dtype)d;
        if (!dd)
            continue;
        assert_int_equal(qkc_format_family(&f), dd->kind == QKC_KIND_VQ    ? QKC_FAMILY_VQ
                                                : dd->kind == QKC_KIND_LUT ? QKC_FAMILY_LUT
                                                                           : QKC_FAMILY_PLANAR);
        f.mixed_blocks = 1;
        assert_int_equal(qkc_format_family(&f), QKC_FAMILY_MIXED);
    }
}

/* Panel layouts (klayout.h): every format that takes them packs, for P of
 * 4, 8 and 16 and N not a multiple of P, to a blob whose every element
 * decodes bit for bit to the reference's (qkc_pack_weights' verify), whose
 * padding rows decode to zero, and whose size is the row layout's rounded
 * up to whole panels (no larger than the file where the row layout is
 * not), or with compact panels exactly the file's bytes per row. */
static void test_pack_panels(void **state)
{
    static const char *const specs[] = {
        "w=q4_0", "w=q4_1", "w=q5_0", "w=q5_1", "w=q8_0", "w=q4_k", "w=q5_k", "w=q6_k", "w=iq4_nl", "w=iq4_xs",
        "w=mxfp4", "w=int4 group=32 scale=f16 zero=int", "w=int8 scale=f32", "w=gptq group=32 n=40",
        "w=awq group=64 n=40",
        "w=uint4 group=64 scale=f16 zero=float", "w=nf4_bnb compute=f32", "w=f32 compute=f32", "w=bf16 compute=f32",
        "w=f16 compute=f32",
    };
    static const int panels[] = {4, 8, 16};
    (void)state;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char text[160];
        pcase c;
        snprintf(text, sizeof text, "matmul k=256 %s%s%s", specs[i], strstr(specs[i], "n=") ? "" : " n=37",
                 strstr(specs[i], "compute=") ? "" : " compute=int8");
        if (!qkc_case_selected(text))
            continue;
        pcase_init(&c, text);
        CHECK(text, qkc_klayout_panel_ok(&c.L), "%s does not take panels", c.L.description);
        for (size_t j = 0; j < sizeof panels / sizeof panels[0]; j++) {
            qkc_klayout L = c.L;
            qkc_diag diag;
            int P = panels[j];
            uint8_t *packed;
            int64_t padded = (c.n + P - 1) / P * P;
            CHECK(text, qkc_klayout_set_panel(&L, P, c.n, &diag) == QKC_OK, "P=%d: %s", P, diag.message);
            if (L.hi_bits || L.sub != QKC_KSUB_NONE)
                /* compact panels: exactly the file's bytes per row */
                CHECK(text, L.total_bytes == (uint64_t)padded * (c.blob_bytes / (uint64_t)c.n) &&
                                L.panel_bytes == (uint64_t)P * L.row_bytes && L.code_bits == 4,
                      "P=%d: %llu bytes, %s", P, (unsigned long long)L.total_bytes, L.description);
            else
                CHECK(text,
                      L.total_bytes == (uint64_t)padded * c.L.row_bytes && L.panel_bytes == (uint64_t)P * L.row_bytes,
                      "P=%d: %llu bytes", P, (unsigned long long)L.total_bytes);
            CHECK(text, !L.in_place && strstr(L.description, "panels of") && !strstr(L.description, "in place"),
                  "P=%d: %s", P, L.description);
            if (c.L.row_bytes * (uint64_t)c.n <= c.blob_bytes)
                CHECK(text, L.total_bytes <= (uint64_t)c.blob_bytes / (uint64_t)c.n * (uint64_t)padded,
                      "P=%d: %llu packed bytes for a %zu-byte blob", P, (unsigned long long)L.total_bytes,
                      c.blob_bytes);
            packed = malloc((size_t)L.total_bytes);
            assert_non_null(packed);
            CHECK(text,
                  qkc_pack_weights(c.ctx, c.spec, &L, c.blob, c.blob_bytes, packed, (size_t)L.total_bytes, 1) == QKC_OK,
                  "P=%d: %s", P, qkc_context_last_error(c.ctx));
            for (int64_t r = c.n; r < padded; r++)
                for (int64_t kk = 0; kk < c.k; kk++)
                    CHECK(text, qkc_klayout_decode_at(&L, packed, r, kk) == 0.0f, "P=%d: padding row %lld", P,
                          (long long)r);
            /* a panel layout of another P is refused */
            L.panel = P == 4 ? 8 : 4;
            CHECK(text, qkc_pack_weights(c.ctx, c.spec, &L, c.blob, c.blob_bytes, packed, (size_t)L.total_bytes, 0) ==
                            QKC_ERR_INVALID_ARGUMENT,
                  "P=%d: a wrong panel width was accepted", P);
            free(packed);
        }
        {
            qkc_klayout L = c.L;
            qkc_diag diag;
            CHECK(text, qkc_klayout_set_panel(&L, 0, c.n, &diag) == QKC_ERR_INVALID_ARGUMENT, "P=0 accepted");
        }
        pcase_fini(&c);
    }
    {
        /* the layouts that do not take panels say so */
        static const char *const no[] = {"w=mxfp8", "w=gptq:4:actorder group=32"};
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
            char text[160];
            pcase c;
            qkc_diag diag;
            snprintf(text, sizeof text, "matmul n=8 k=256 %s", no[i]);
            pcase_init(&c, text);
            CHECK(text, !qkc_klayout_panel_ok(&c.L) && qkc_klayout_set_panel(&c.L, 8, c.n, &diag) != QKC_OK,
                  "%s took panels", c.L.description);
            pcase_fini(&c);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_klayout_choices),
        cmocka_unit_test(test_klayout_decode_by_hand),
        cmocka_unit_test(test_klayout_tables),
        cmocka_unit_test(test_pack_every_table_format),
        cmocka_unit_test(test_pack_odd_shapes),
        cmocka_unit_test(test_pack_repacked_bytes),
        cmocka_unit_test(test_pack_nan_blobs),
        cmocka_unit_test(test_pack_errors),
        cmocka_unit_test(test_pack_panels),
        cmocka_unit_test(test_family_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
