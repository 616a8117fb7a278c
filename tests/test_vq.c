/*
 * 2-D vector codebooks (w=vq vq=V:B table=f16|f32): the text form and the
 * verifier's messages with line:col; a blob decoded by hand (B-bit indices
 * LSB first in DATA, the codebook in AUX); the quantizer's determinism and
 * contract (every index the nearest codeword). Kernels: test_cg_vq and the
 * tolerance table's vq rows in test_cg_kernel.
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
        {"matmul n=8 k=256 w=vq", "1:20: w=vq needs vq=V:B", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=3:8", "1:26: vq=3:8: a codeword holds V = 2, 4 or 8 weights", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:13", "1:26: vq=4:13: an index has B = 4 .. 12 bits", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:3", "1:26: vq=4:3: an index has B = 4 .. 12 bits", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=250 w=vq vq=4:8", "1:14: k=250 is not a multiple of the vq vector length 4", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4", "1:26: vq=4: expected V:B", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=vq vq=4:x", "1:26: vq=4:x: expected V:B", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=int4 vq=4:8", "1:28: vq= gives the vector codebook of w=vq", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 group=32", "1:36: w=vq has one codebook per tensor", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 group=channel", "1:36: w=vq has one codebook per tensor", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 scale=f16", "1:36: w=vq takes no scale", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 zero=int", "1:35: w=vq has no zero point", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 compute=int8", "1:38: compute=int8 needs integer weight codes; w=vq",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=vq vq=4:8 table=bf16", "1:36: table=bf16: expected f16 or f32", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=vq vq=4:8 outliers=sparse", "w=vq does not take outliers", QKC_ERR_INVALID_SPEC},
    };
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_test_canonical(ctx, "matmul vq=4:8 table=f32 k=512 n=8 w=vq",
                           "matmul n=8 k=512 a=f32 w=vq group=tensor table=f32 vq=4:8 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    if (qkc_test_canonical(ctx, "matmul n=8 k=512 w=vq group=tensor vq=2:12",
                           "matmul n=8 k=512 a=f32 w=vq group=tensor table=f16 vq=2:12 out=f32", buf, sizeof buf))
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

static void put_bits(uint8_t *row, int64_t bit, int bits, uint32_t v)
{
    for (int i = 0; i < bits; i++, bit++)
        if ((v >> i) & 1u)
            row[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

/* vq=2:5 table=f16, n=2 k=12: 6 five-bit indices per row (30 bits, 4
 * bytes), 32 codewords of 2 f16 entries in AUX. */
static void test_blob_by_hand(void **state)
{
    (void)state;
    const char *text = "matmul n=2 k=12 w=vq vq=2:5 table=f16";
    qkc_matmul mm;
    qkc_weight_layout L = layout_of(text, &mm);
    qkc_context *ctx;
    qkc_spec *spec;
    uint8_t *blob;
    float w[24], want[24];
    uint32_t idx[2][6] = {{0, 31, 5, 17, 1, 30}, {12, 12, 3, 0, 31, 9}};

    assert_int_equal(L.row_bytes, 4);
    assert_int_equal(L.bytes[QKC_SECTION_DATA], 8);
    assert_int_equal(L.bytes[QKC_SECTION_AUX], 32 * 2 * 2);
    assert_int_equal(L.total, L.offset[QKC_SECTION_AUX] + 128);
    blob = calloc(1, (size_t)L.total);
    assert_non_null(blob);
    for (int e = 0; e < 32; e++)
        for (int t = 0; t < 2; t++) {
            /* codeword e = (e/4 − 3, −e/8 + t/16): exact in f16 */
            float v = t == 0 ? (float)e / 4.0f - 3.0f : -(float)e / 8.0f + 0.0625f;
            uint8_t *p = blob + L.offset[QKC_SECTION_AUX] + (size_t)(e * 2 + t) * 2;
            uint16_t h = qkc_f32_to_f16(v);
            p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
        }
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 6; j++) {
            put_bits(blob + L.offset[QKC_SECTION_DATA] + r * 4, j * 5, 5, idx[r][j]);
            want[r * 12 + j * 2] = (float)idx[r][j] / 4.0f - 3.0f;
            want[r * 12 + j * 2 + 1] = -(float)idx[r][j] / 8.0f + 0.0625f;
        }
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, (size_t)L.total, w, 12), QKC_OK);
    for (int i = 0; i < 24; i++)
        if (memcmp(&w[i], &want[i], sizeof w[i]) != 0)
            fail_msg("element %d: %g, expected %g", i, (double)w[i], (double)want[i]);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    free(blob);
}

/* Quantizing twice gives the same bytes; every index is the nearest
 * codeword of its vector (squared distance, ties to the lower index). */
static void test_quantizer_contract(void **state)
{
    (void)state;
    static const char *texts[] = {
        "matmul n=9 k=64 w=vq vq=4:6 table=f32",
        "matmul n=5 k=40 w=vq vq=8:4",
        "matmul n=300 k=512 w=vq vq=2:8 table=f32", /* more vectors than the training sample */
    };
    qkc_context *ctx;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t c = 0; c < sizeof texts / sizeof texts[0]; c++) {
        qkc_matmul mm;
        qkc_weight_layout L = layout_of(texts[c], &mm);
        qkc_spec *spec;
        size_t bytes;
        int64_t n = mm.n, k = mm.k, V = mm.w.vq_dim, E = (int64_t)1 << mm.w.vq_bits;
        float *w = malloc(sizeof(float) * (size_t)(n * k)), *wd = malloc(sizeof(float) * (size_t)(n * k));
        float *cb = malloc(sizeof(float) * (size_t)(E * V));
        uint8_t *b1 = malloc((size_t)L.total), *b2 = malloc((size_t)L.total);
        qkc_rng r = qkc_rng_from_name(texts[c]);
        assert_true(w && wd && cb && b1 && b2);
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r);
        memset(b1, 0x00, (size_t)L.total);
        memset(b2, 0x5A, (size_t)L.total);
        assert_int_equal(qkc_spec_parse(ctx, texts[c], &spec), QKC_OK);
        assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
        assert_int_equal(bytes, (size_t)L.total);
        if (qkc_quantize(ctx, spec, w, k, b1, bytes) != QKC_OK || qkc_quantize(ctx, spec, w, k, b2, bytes) != QKC_OK)
            fail_msg("%s: quantize: %s", texts[c], qkc_context_last_error(ctx));
        if (memcmp(b1, b2, (size_t)L.total) != 0)
            fail_msg("%s: quantizing twice gives different bytes", texts[c]);
        assert_int_equal(qkc_dequantize(ctx, spec, b1, (size_t)L.total, wd, k), QKC_OK);
        for (int64_t e = 0; e < E * V; e++) {
            const uint8_t *p = b1 + L.offset[QKC_SECTION_AUX];
            cb[e] = mm.w.table_dtype == QKC_DTYPE_F16 ? qkc_f16_to_f32((uint16_t)(p[2 * e] | p[2 * e + 1] << 8))
                                                      : qkc_f32_from_bits((uint32_t)p[4 * e] | (uint32_t)p[4 * e + 1] << 8 |
                                                                          (uint32_t)p[4 * e + 2] << 16 |
                                                                          (uint32_t)p[4 * e + 3] << 24);
        }
        for (int64_t v = 0; v < n * k / V; v++) {
            const float *x = w + v * V, *y = wd + v * V;
            double got = 0, best = INFINITY;
            int64_t first = -1;
            for (int t = 0; t < V; t++) {
                double xt = isnan(x[t]) ? 0.0 : (double)x[t];
                got += (xt - (double)y[t]) * (xt - (double)y[t]);
            }
            for (int64_t e = 0; e < E; e++) {
                double d = 0;
                for (int t = 0; t < V; t++) {
                    double xt = isnan(x[t]) ? 0.0 : (double)x[t], u = xt - (double)cb[e * V + t];
                    d += u * u;
                }
                if (d < best)
                    best = d, first = e;
            }
            if (got != best || memcmp(y, cb + first * V, sizeof(float) * (size_t)V) != 0)
                fail_msg("%s: vector %lld decodes at distance %g, the nearest codeword %lld is at %g", texts[c],
                         (long long)v, got, (long long)first, best);
        }
        qkc_spec_destroy(spec);
        free(w), free(wd), free(cb), free(b1), free(b2);
    }
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_verifier),
        cmocka_unit_test(test_blob_by_hand),
        cmocka_unit_test(test_quantizer_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
