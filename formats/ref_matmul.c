/*
 * The reference matmul (semantics in ir/spec.h): dequantize W exactly,
 * model the compute type's operand rounding, accumulate in double, apply
 * the epilogue, round to f32 and then to the output dtype.
 */
#include <math.h>
#include <string.h>

#include "core/context.h"
#include "formats/ref.h"
#include "core/spec_object.h"

static float load_elem(qkc_dtype dt, const void *base, int64_t idx)
{
    switch (dt) {
    case QKC_DTYPE_F16: return qkc_f16_to_f32(((const uint16_t *)base)[idx]);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32(((const uint16_t *)base)[idx]);
    default: return ((const float *)base)[idx];
    }
}

static void store_elem(qkc_dtype dt, void *base, int64_t idx, float v)
{
    switch (dt) {
    case QKC_DTYPE_F16: ((uint16_t *)base)[idx] = qkc_f32_to_f16(v); break;
    case QKC_DTYPE_BF16: ((uint16_t *)base)[idx] = qkc_f32_to_bf16(v); break;
    default: ((float *)base)[idx] = v; break;
    }
}

/* Operand rounding of the compute types that round (bf16, f16, tf32). */
static float round_operand(qkc_compute c, float x)
{
    switch (c) {
    case QKC_COMPUTE_BF16: return qkc_bf16_to_f32(qkc_f32_to_bf16(x));
    case QKC_COMPUTE_F16: return qkc_f16_to_f32(qkc_f32_to_f16(x));
    case QKC_COMPUTE_TF32: return qkc_tf32_round(x);
    default: return x;
    }
}

/* One block of len codes (1..QKC_INT8_BLOCK); len is a constant where the
 * caller's is, so full blocks compile to straight vector code. */
static inline float int8_block(const float *x, int64_t len, int8_t *q)
{
    float amax, scale, inv;
    uint32_t abits = 0;
    /* max of |x|, NaNs passed over (as fmaxf would), on the bit patterns:
     * for non-negative floats their order is the numbers' */
    for (int64_t i = 0; i < len; i++) {
        uint32_t a;
        memcpy(&a, &x[i], sizeof a);
        a &= 0x7FFFFFFFu;
        a &= 0u - (uint32_t)(a <= 0x7F800000u);
        abits = a > abits ? a : abits;
    }
    memcpy(&amax, &abits, sizeof amax);
    scale = amax / 127.0f;
    inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    for (int64_t i = 0; i < len; i++)
        q[i] = qkc_int8_code(x[i] * inv);
    return scale;
}

/* Built three times on x86-64 with GCC (AVX-512, AVX2, baseline), the best
 * for the CPU chosen once at load: the same operations, so the same bits.
 * Clang 14 emits no dispatcher for a function only other files call, so
 * its builds keep the baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void qkc_ref_int8_quantize_row(const float *x, int64_t k, int8_t *q, float *d)
{
    int64_t b = 0, bi = 0;
    for (; b + QKC_INT8_BLOCK <= k; b += QKC_INT8_BLOCK, bi++)
        d[bi] = int8_block(x + b, QKC_INT8_BLOCK, q + b);
    if (b < k)
        d[bi] = int8_block(x + b, k - b, q + b);
}

void qkc_ref_hadamard_row(float *x, int64_t k, int block)
{
    float scale = (float)(1.0 / sqrt((double)block));
    for (int64_t b = 0; b + block <= k; b += block) {
        float *v = x + b;
        for (int h = 1; h < block; h *= 2)
            for (int i = 0; i < block; i += 2 * h)
                for (int j = i; j < i + h; j++) {
                    float p = v[j], q = v[j + h];
                    v[j] = p + q;
                    v[j + h] = p - q;
                }
        for (int i = 0; i < block; i++)
            v[i] *= scale;
    }
}

static double activation(qkc_act act, double x)
{
    switch (act) {
    case QKC_ACT_RELU: return x > 0.0 ? x : 0.0;
    case QKC_ACT_GELU: return 0.5 * x * (1.0 + erf(x / 1.4142135623730951));
    case QKC_ACT_SILU: return x / (1.0 + exp(-x));
    default: return x;
    }
}

static qkc_status reference(qkc_context *ctx, const qkc_spec *spec, const qkc_matmul_args *args,
                            const qkc_run_options *options)
{
    const qkc_lora *lora = NULL;
    const qkc_act_scales *scales = NULL;
    float *trow = NULL;
    const qkc_matmul *mm;
    int64_t m, n, k;
    float *wq = NULL, *arow = NULL, *dblk = NULL, *kept = NULL;
    int8_t *qrow = NULL;
    uint8_t *oflag = NULL;
    double *acol = NULL;
    qkc_status st;

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !args)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_reference_matmul: NULL argument");
    mm = &spec->mm;
    m = args->m, n = mm->n, k = mm->k;
    if (m < 1 || m > QKC_MAX_DIM)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_reference_matmul: m=%lld must be in 1..%lld", (long long)m,
                        (long long)QKC_MAX_DIM);
    if (mm->m && m != mm->m)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_reference_matmul: the spec fixes m=%lld, the call gives m=%lld",
                        (long long)mm->m, (long long)m);
    if (!args->a || !args->weights || !args->c)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_reference_matmul: a, weights and c are required");
    if (args->lda < k || args->ldc < n)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_reference_matmul: lda=%lld must be >= k=%lld and ldc=%lld >= n=%lld",
                        (long long)args->lda, (long long)k, (long long)args->ldc, (long long)n);
    if ((mm->bias == QKC_BIAS_F32) != (args->bias != NULL))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, mm->bias == QKC_BIAS_F32
                                                           ? "qkc_reference_matmul: the spec has bias=f32 but bias is NULL"
                                                           : "qkc_reference_matmul: bias given but the spec has no bias");
    if (args->weights_bytes < spec->layout.total)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_reference_matmul: weights hold %zu bytes, the spec needs %llu", args->weights_bytes,
                        (unsigned long long)spec->layout.total);
    if ((st = qkc_run_extras(ctx, "qkc_reference_matmul", mm, options, &lora, &scales)))
        return st;

    wq = qkc_calloc(ctx, (size_t)n, (size_t)k * sizeof *wq);
    arow = qkc_alloc(ctx, (size_t)k * sizeof *arow);
    qrow = qkc_alloc(ctx, (size_t)k);
    dblk = qkc_alloc(ctx, (size_t)(k / QKC_INT8_BLOCK + 1) * sizeof *dblk);
    acol = qkc_alloc(ctx, (size_t)k * sizeof *acol);
    if (mm->lora_rank)
        trow = qkc_alloc(ctx, (size_t)mm->lora_rank * sizeof *trow);
    if (!wq || !arow || !qrow || !dblk || !acol || (mm->lora_rank && !trow)) {
        st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_reference_matmul: out of memory for %lld x %lld weights",
                      (long long)n, (long long)k);
        goto done;
    }
    if ((st = qkc_dequantize(ctx, spec, args->weights, args->weights_bytes, wq, k)))
        goto done;
    if (mm->w.outliers == QKC_OUTLIERS_ACT) {
        /* LLM.int8: the call's outlier columns stay f32 (ir/spec.h) */
        oflag = qkc_alloc(ctx, (size_t)k);
        kept = qkc_alloc(ctx, (size_t)k * sizeof *kept);
        if (!oflag || !kept) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_reference_matmul: out of memory for k=%lld", (long long)k);
            goto done;
        }
        qkc_ref_act_outlier_columns(mm->a_dtype, mm->rotate, mm->w.act_threshold, args->a, args->lda, m, k, arow,
                                    oflag);
    }
    if (mm->compute == QKC_COMPUTE_BF16 || mm->compute == QKC_COMPUTE_F16 || mm->compute == QKC_COMPUTE_TF32)
        for (int64_t i = 0; i < n * k; i++)
            wq[i] = round_operand(mm->compute, wq[i]);

    for (int64_t r = 0; r < m; r++) {
        for (int64_t i = 0; i < k; i++)
            arow[i] = load_elem(mm->a_dtype, args->a, r * args->lda + i);
        if (mm->rotate)
            qkc_ref_hadamard_row(arow, k, mm->rotate);
        if (mm->compute == QKC_COMPUTE_INT8 && oflag) {
            qkc_ref_int8_quantize_split(arow, k, oflag, qrow, dblk, kept);
            for (int64_t i = 0; i < k; i++)
                acol[i] = oflag[i] ? (double)kept[i] : (double)dblk[i / QKC_INT8_BLOCK] * (double)qrow[i];
        } else if (mm->compute == QKC_COMPUTE_INT8) {
            qkc_ref_int8_quantize(mm, scales, arow, qrow, dblk);
            for (int64_t i = 0; i < k; i++)
                acol[i] = (double)dblk[i / QKC_INT8_BLOCK] * (double)qrow[i];
        } else {
            for (int64_t i = 0; i < k; i++)
                acol[i] = (double)round_operand(mm->compute, arow[i]);
        }
        if (lora)
            qkc_ref_lora_t(mm, (const uint8_t *)args->a + (size_t)(r * args->lda) * (mm->a_dtype == QKC_DTYPE_F32 ? 4 : 2),
                           args->lda, 1, lora->a, trow, mm->lora_rank);
        for (int64_t c = 0; c < n; c++) {
            const float *wr = wq + c * k;
            double acc = 0.0;
            for (int64_t i = 0; i < k; i++)
                acc += acol[i] * (double)wr[i];
            if (lora)
                acc += qkc_ref_lora_term(mm, trow, lora->b, c, lora->scale);
            if (args->bias)
                acc += (double)args->bias[c];
            acc = activation(mm->act, acc);
            store_elem(mm->out_dtype, args->c, r * args->ldc + c, (float)acc);
        }
    }
done:
    qkc_free(ctx, wq);
    qkc_free(ctx, arow);
    qkc_free(ctx, qrow);
    qkc_free(ctx, dblk);
    qkc_free(ctx, trow);
    qkc_free(ctx, acol);
    qkc_free(ctx, oflag);
    qkc_free(ctx, kept);
    return st;
}

qkc_status qkc_reference_matmul(qkc_context *ctx, const qkc_spec *spec, const qkc_matmul_args *args)
{
    return reference(ctx, spec, args, NULL);
}

qkc_status qkc_reference_matmul_with_options(qkc_context *ctx, const qkc_spec *spec, const qkc_matmul_args *args,
                                             const qkc_run_options *options)
{
    return reference(ctx, spec, args, options);
}
