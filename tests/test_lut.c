/*
 * Arbitrary codebooks (w=lut2/lut3/lut4, table=f16|f32): the text form and
 * verifier messages; the blob layout (codes in DATA, tables in AUX) decoded
 * by hand; nf4 and fp4 as presets of lut4 (a lut4 blob whose tables are the
 * codebook times the group scale dequantizes bit for bit like the nf4/fp4
 * blob); the quantizer's contract (sorted entries rounded to the table
 * dtype, nearest-entry codes). Kernels are covered by test_cg_kernel through
 * the tolerance table's lut rows.
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

#include "ir/format.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "util/testutil.h"

static void test_text_and_verifier(void **state)
{
    (void)state;
    qkc_context *ctx;
    char buf[256];
    static const qkc_test_bad_spec bad[] = {
        {"matmul n=8 k=256 w=lut4 scale=f16", "1:31: w=lut4 takes no scale", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=lut3 zero=int", "1:30: w=lut3 has no zero point", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=lut4 compute=int8", "1:33: compute=int8 needs integer weight codes; w=lut4 decodes",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=lut2 table=bf16", "1:31: table=bf16: expected f16 or f32", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=int4 table=f16", "1:31: table= gives the codebook entries of w=lut2", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 table=f32", "1:31: table= gives the codebook entries", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=lut4 group=512", "1:31: group=512: a table group holds 1 to k=256", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=lut4 outliers=sparse", "w=lut4 does not take outliers", QKC_ERR_INVALID_SPEC},
    };
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_test_canonical(ctx, "matmul table=f32 k=512 n=8 w=lut4 group=128",
                           "matmul n=8 k=512 a=f32 w=lut4 group=128 table=f32 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    if (qkc_test_canonical(ctx, "matmul n=8 k=512 w=lut2",
                           "matmul n=8 k=512 a=f32 w=lut2 group=channel table=f16 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    {
        char msg[512];
        if (qkc_test_refused(ctx, bad, sizeof bad / sizeof bad[0], msg, sizeof msg))
            fail_msg("%s", msg);
    }
    qkc_context_destroy(ctx);
}

static qkc_weight_layout layout_of(const char *text, qkc_matmul *mm)
{
    qkc_diag d;
    qkc_weight_layout L;
    memset(&L, 0, sizeof L); /* cmocka's fail_msg is not declared noreturn */
    if (qkc_matmul_parse(text, mm, NULL, &d) != QKC_OK || qkc_format_layout(&mm->w, mm->n, mm->k, &L, &d) != QKC_OK)
        fail_msg("%s: %s", text, d.message);
    return L;
}

/* lut3 group=8 table=f16, n=2 k=16: 3-bit codes LSB first, tables in AUX
 * as 8 f16 entries per (row, group), x = table[t][code]. */
static void test_blob_by_hand(void **state)
{
    (void)state;
    const char *text = "matmul n=2 k=16 w=lut3 group=8 table=f16";
    qkc_matmul mm;
    qkc_weight_layout L = layout_of(text, &mm);
    qkc_context *ctx;
    qkc_spec *spec;
    uint8_t *blob;
    float w[32];
    assert_int_equal(L.row_bytes, 6);
    assert_int_equal(L.bytes[QKC_SECTION_DATA], 12);
    assert_int_equal(L.bytes[QKC_SECTION_SCALES], 0);
    assert_int_equal(L.bytes[QKC_SECTION_AUX], 4 * 8 * 2);
    assert_int_equal(L.offset[QKC_SECTION_AUX], 64);
    blob = calloc(1, (size_t)L.total);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 16; j++) {
            uint32_t code = (uint32_t)(r * 3 + j) % 8;
            uint64_t bit = (uint64_t)j * 3;
            uint8_t *row = blob + r * L.row_bytes;
            uint32_t v = code << (bit & 7);
            row[bit >> 3] |= (uint8_t)v;
            if ((bit & 7) + 3 > 8)
                row[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
        }
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 8; i++) {
            uint16_t h = qkc_f32_to_f16((float)(t * 10 + i) + 0.25f);
            blob[L.offset[QKC_SECTION_AUX] + (uint64_t)(t * 8 + i) * 2] = (uint8_t)h;
            blob[L.offset[QKC_SECTION_AUX] + (uint64_t)(t * 8 + i) * 2 + 1] = (uint8_t)(h >> 8);
        }
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, (size_t)L.total, w, 16), QKC_OK);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 16; j++) {
            int t = r * 2 + j / 8, code = (r * 3 + j) % 8;
            assert_true(w[r * 16 + j] == (float)(t * 10 + code) + 0.25f);
        }
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    free(blob);
}

/* A codebook dtype with an f32 scale per group is lut4 with the tables
 * table_g[i] = decode(i)·s_g (the same single f32 product): the lut blob
 * dequantizes bit for bit like the original. */
static void check_preset_as_lut(qkc_context *ctx, const char *src_text, const char *lut_text, qkc_dtype dt)
{
    qkc_matmul ms, ml;
    qkc_weight_layout Ls = layout_of(src_text, &ms), Ll = layout_of(lut_text, &ml);
    qkc_spec *ss, *sl;
    int64_t n = ms.n, k = ms.k, G = ms.w.group, groups = k / G;
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *a = malloc(sizeof(float) * (size_t)(n * k)),
          *b = malloc(sizeof(float) * (size_t)(n * k));
    uint8_t *bs = calloc(1, (size_t)Ls.total), *bl = calloc(1, (size_t)Ll.total);
    qkc_rng r = qkc_rng_from_name(src_text);
    for (int64_t i = 0; i < n * k; i++)
        w[i] = qkc_rng_normal(&r);
    assert_int_equal(qkc_spec_parse(ctx, src_text, &ss), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, lut_text, &sl), QKC_OK);
    assert_int_equal(qkc_quantize(ctx, ss, w, k, bs, (size_t)Ls.total), QKC_OK);
    assert_int_equal(Ls.row_bytes, Ll.row_bytes);
    memcpy(bl + Ll.offset[QKC_SECTION_DATA], bs + Ls.offset[QKC_SECTION_DATA], (size_t)Ls.bytes[QKC_SECTION_DATA]);
    for (int64_t g = 0; g < n * groups; g++) {
        float s;
        memcpy(&s, bs + Ls.offset[QKC_SECTION_SCALES] + g * 4, 4);
        for (uint32_t i = 0; i < 16; i++) {
            float e = qkc_dtype_decode(dt, i) * s;
            memcpy(bl + Ll.offset[QKC_SECTION_AUX] + (uint64_t)(g * 16 + i) * 4, &e, 4);
        }
    }
    assert_int_equal(qkc_dequantize(ctx, ss, bs, (size_t)Ls.total, a, k), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, sl, bl, (size_t)Ll.total, b, k), QKC_OK);
    assert_memory_equal(a, b, sizeof(float) * (size_t)(n * k));
    qkc_spec_destroy(ss);
    qkc_spec_destroy(sl);
    free(w), free(a), free(b), free(bs), free(bl);
}

static void test_nf4_fp4_are_lut_presets(void **state)
{
    (void)state;
    qkc_context *ctx;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    check_preset_as_lut(ctx, "matmul n=16 k=256 w=nf4 group=64 scale=f32", "matmul n=16 k=256 w=lut4 group=64 table=f32",
                        QKC_DTYPE_NF4);
    check_preset_as_lut(ctx, "matmul n=16 k=256 w=fp4 group=32 scale=f32", "matmul n=16 k=256 w=lut4 group=32 table=f32",
                        QKC_DTYPE_FP4);
    check_preset_as_lut(ctx, "matmul n=16 k=256 w=iq4nl group=32 scale=f32",
                        "matmul n=16 k=256 w=lut4 group=32 table=f32", QKC_DTYPE_IQ4NL);
    qkc_context_destroy(ctx);
}

/* Entries sorted and representable in the table dtype; every code is the
 * nearest entry (ties: the lower code); one table for group=tensor. */
static void test_quantizer_contract(void **state)
{
    (void)state;
    static const char *const texts[] = {"matmul n=8 k=192 w=lut4 group=tensor table=f16",
                                        "matmul n=8 k=192 w=lut3 group=64 table=f32",
                                        "matmul n=8 k=192 w=lut2 group=channel table=f16"};
    qkc_context *ctx;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t c = 0; c < sizeof texts / sizeof texts[0]; c++) {
        qkc_matmul mm;
        qkc_weight_layout L = layout_of(texts[c], &mm);
        qkc_spec *spec;
        int bits = qkc_dtype_get(mm.w.dtype)->bits, E = 1 << bits, eb = mm.w.table_dtype == QKC_DTYPE_F16 ? 2 : 4;
        int64_t tables = qkc_format_lut_tables(&mm.w, mm.n, mm.k), n = mm.n, k = mm.k;
        float *w = malloc(sizeof(float) * (size_t)(n * k)), *d = malloc(sizeof(float) * (size_t)(n * k));
        uint8_t *blob = calloc(1, (size_t)L.total);
        qkc_rng r = qkc_rng_from_name(texts[c]);
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r);
        assert_int_equal(qkc_spec_parse(ctx, texts[c], &spec), QKC_OK);
        assert_int_equal(qkc_quantize(ctx, spec, w, k, blob, (size_t)L.total), QKC_OK);
        assert_int_equal(qkc_dequantize(ctx, spec, blob, (size_t)L.total, d, k), QKC_OK);
        assert_int_equal((int64_t)L.bytes[QKC_SECTION_AUX], tables * E * eb);
        for (int64_t t = 0; t < tables; t++) {
            float e[16];
            for (int i = 0; i < E; i++) {
                const uint8_t *p = blob + L.offset[QKC_SECTION_AUX] + (uint64_t)(t * E + i) * (uint64_t)eb;
                uint32_t u = eb == 2 ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
                e[i] = eb == 2 ? qkc_f16_to_f32((uint16_t)u) : qkc_f32_from_bits(u);
                if (i)
                    assert_true(e[i - 1] <= e[i]);
            }
            /* the values of table t: nearest entries */
            for (int64_t row = 0; row < n; row++)
                for (int64_t j = 0; j < k; j++) {
                    int64_t tt = mm.w.granularity == QKC_GRAN_TENSOR    ? 0
                                 : mm.w.granularity == QKC_GRAN_CHANNEL ? row
                                                                        : row * (k / mm.w.group) + j / mm.w.group;
                    if (tt != t)
                        continue;
                    double best = INFINITY;
                    for (int i = 0; i < E; i++)
                        best = fmin(best, fabs((double)w[row * k + j] - (double)e[i]));
                    if (fabs((double)w[row * k + j] - (double)d[row * k + j]) != best)
                        fail_msg("%s: w[%lld][%lld] = %g decodes to %g, not a nearest entry", texts[c], (long long)row,
                                 (long long)j, (double)w[row * k + j], (double)d[row * k + j]);
                }
        }
        qkc_spec_destroy(spec);
        free(w), free(d), free(blob);
    }
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_verifier),
        cmocka_unit_test(test_blob_by_hand),
        cmocka_unit_test(test_nf4_fp4_are_lut_presets),
        cmocka_unit_test(test_quantizer_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
