/*
 * Activation outliers (outliers=act:T, LLM.int8's decomposition; the
 * semantics are in ir/spec.h). The reference, the CPU pre-pass and the GPU
 * pre-pass all find the columns and split the rows with these functions,
 * so every path agrees on which columns leave the int8 product.
 */
#include <math.h>
#include <string.h>

#include "formats/ref.h"

static float widen(qkc_dtype dt, const void *base, int64_t idx)
{
    switch (dt) {
    case QKC_DTYPE_F16: return qkc_f16_to_f32(((const uint16_t *)base)[idx]);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32(((const uint16_t *)base)[idx]);
    default: return ((const float *)base)[idx];
    }
}

int64_t qkc_ref_act_outlier_columns(qkc_dtype a_dtype, int rotate, double threshold, const void *a, int64_t lda,
                                    int64_t m, int64_t k, float *row, uint8_t *flag)
{
    int64_t count = 0;
    memset(flag, 0, (size_t)k);
    for (int64_t r = 0; r < m; r++) {
        for (int64_t i = 0; i < k; i++)
            row[i] = widen(a_dtype, a, r * lda + i);
        if (rotate)
            qkc_ref_hadamard_row(row, k, rotate);
        for (int64_t i = 0; i < k; i++)
            if (!flag[i] && (double)fabsf(row[i]) > threshold) { /* NaN: never */
                flag[i] = 1;
                count++;
            }
    }
    return count;
}

void qkc_ref_int8_quantize_split(float *x, int64_t k, const uint8_t *flag, int8_t *q, float *d, float *kept)
{
    for (int64_t i = 0; i < k; i++)
        if (flag[i]) {
            if (kept)
                kept[i] = x[i];
            x[i] = 0.0f;
        }
    qkc_ref_int8_quantize_row(x, k, q, d);
}
