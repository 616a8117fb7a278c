/*
 * The reference side of two optional spec features (semantics in
 * ir/spec.h): the LoRA side path's T = X·Aᵀ, and int8 quantization with
 * static (calibrated) activation scales. The kernels' pre-pass
 * (runtime/kernel.c) calls these same functions, so what a kernel receives
 * is bit-identical to what the reference uses. Also the checks of the
 * run-time operands both share, and qkc_quantize_smoothed.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/context.h"
#include "formats/ref.h"
#include "core/spec_object.h"

static float load_x(qkc_dtype dt, const void *base, int64_t idx)
{
    switch (dt) {
    case QKC_DTYPE_F16: return qkc_f16_to_f32(((const uint16_t *)base)[idx]);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32(((const uint16_t *)base)[idx]);
    default: return ((const float *)base)[idx];
    }
}

void qkc_ref_lora_t(const qkc_matmul *mm, const void *x, int64_t lda, int64_t m, const void *adapter_a, float *t,
                    int64_t ldt)
{
    int64_t k = mm->k, r = mm->lora_rank;
    for (int64_t row = 0; row < m; row++)
        for (int64_t j = 0; j < r; j++) {
            double acc = 0.0;
            for (int64_t i = 0; i < k; i++)
                acc += (double)load_x(mm->a_dtype, x, row * lda + i) * (double)load_x(mm->lora_dtype, adapter_a, j * k + i);
            t[row * ldt + j] = (float)acc;
        }
}

double qkc_ref_lora_term(const qkc_matmul *mm, const float *t_row, const void *adapter_b, int64_t n, float scale)
{
    double acc = 0.0;
    for (int64_t j = 0; j < mm->lora_rank; j++)
        acc += (double)t_row[j] * (double)load_x(mm->lora_dtype, adapter_b, n * mm->lora_rank + j);
    return (double)scale * acc;
}

void qkc_ref_int8_quantize_row_static(const float *x, int64_t k, const float *smooth, float alpha, int8_t *q,
                                      float *d)
{
    float inv = 1.0f / alpha;
    for (int64_t i = 0; i < k; i++) {
        float v = smooth ? x[i] / smooth[i] : x[i];
        q[i] = qkc_int8_code(v * inv);
    }
    for (int64_t b = 0; b * QKC_INT8_BLOCK < k; b++)
        d[b] = alpha;
}

void qkc_ref_int8_quantize(const qkc_matmul *mm, const qkc_act_scales *scales, const float *x, int8_t *q, float *d)
{
    if (mm->ascale == QKC_ASCALE_DYNAMIC || !scales)
        qkc_ref_int8_quantize_row(x, mm->k, q, d);
    else
        qkc_ref_int8_quantize_row_static(x, mm->k, mm->ascale == QKC_ASCALE_STATIC_CHANNEL ? scales->smooth : NULL,
                                         scales->alpha, q, d);
}

qkc_status qkc_run_extras(qkc_context *ctx, const char *fn, const qkc_matmul *mm, const qkc_run_options *options,
                          const qkc_lora **lora, const qkc_act_scales **scales)
{
    size_t size = options ? options->struct_size : 0;
    *lora = size >= offsetof(qkc_run_options, lora) + sizeof options->lora ? options->lora : NULL;
    *scales = size >= offsetof(qkc_run_options, act_scales) + sizeof options->act_scales ? options->act_scales : NULL;
    if (!mm->lora_rank && *lora)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: LoRA adapters given but the spec has no lora=", fn);
    if (mm->lora_rank) {
        if (!*lora || !(*lora)->a || !(*lora)->b)
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                            "%s: the spec has lora=%d:%s: options->lora with adapters a [%d][k] and b [n][%d] is required",
                            fn, (int)mm->lora_rank, qkc_dtype_keyword(mm->lora_dtype), (int)mm->lora_rank,
                            (int)mm->lora_rank);
        if (!isfinite((*lora)->scale))
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: the LoRA scale is not finite", fn);
    }
    if (mm->ascale == QKC_ASCALE_DYNAMIC && *scales)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "%s: static activation scales given but the spec has no ascale=static", fn);
    if (mm->ascale != QKC_ASCALE_DYNAMIC) {
        const qkc_act_scales *s = *scales;
        int channel = mm->ascale == QKC_ASCALE_STATIC_CHANNEL;
        if (!s)
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: the spec has ascale=%s: options->act_scales is required",
                            fn, channel ? "static:channel" : "static");
        if (!(s->alpha > 0.0f) || !isfinite(s->alpha) || !isfinite(1.0f / s->alpha))
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: the activation scale alpha=%g must be finite and > 0", fn,
                            (double)s->alpha);
        if (channel != (s->smooth != NULL))
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                            channel ? "%s: ascale=static:channel needs the smoothing vector act_scales->smooth"
                                    : "%s: a smoothing vector is given but the spec has ascale=static (use static:channel)",
                            fn);
        for (int64_t i = 0; channel && i < mm->k; i++)
            if (!(s->smooth[i] > 0.0f) || !isfinite(s->smooth[i]))
                return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: smoothing factor %lld is %g; factors are finite and > 0",
                                fn, (long long)i, (double)s->smooth[i]);
    }
    return QKC_OK;
}

qkc_status qkc_quantize_smoothed(qkc_context *ctx, const qkc_spec *spec, const float *w, int64_t ldw,
                                 const float *smooth, void *dst, size_t dst_bytes)
{
    int64_t n, k;
    float *ws;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !w || !smooth || !dst)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_quantize_smoothed: NULL argument");
    n = spec->mm.n, k = spec->mm.k;
    if (ldw < k)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_quantize_smoothed: ldw=%lld is less than k=%lld",
                        (long long)ldw, (long long)k);
    for (int64_t i = 0; i < k; i++)
        if (!(smooth[i] > 0.0f) || !isfinite(smooth[i]))
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                            "qkc_quantize_smoothed: smoothing factor %lld is %g; factors are finite and > 0",
                            (long long)i, (double)smooth[i]);
    if (!(ws = qkc_calloc(ctx, (size_t)n, (size_t)k * sizeof *ws)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_quantize_smoothed: out of memory for %lld x %lld weights",
                        (long long)n, (long long)k);
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < k; i++)
            ws[r * k + i] = w[r * ldw + i] * smooth[i];
    st = qkc_quantize(ctx, spec, ws, k, dst, dst_bytes);
    qkc_free(ctx, ws);
    return st;
}
