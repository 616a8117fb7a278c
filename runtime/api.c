/* Public entry points for specs and weights: argument checks and dispatch
 * to the reference codecs. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formats/family.h"
#include "formats/ref.h"
#include "core/spec_object.h"

/* The spec object of a verified description. */
static qkc_status spec_new(qkc_context *ctx, const qkc_matmul *mm, qkc_spec **out)
{
    qkc_diag diag;
    qkc_weight_layout layout;
    qkc_spec *spec;
    qkc_status st;
    if ((st = qkc_format_layout(&mm->w, mm->n, mm->k, &layout, &diag)))
        return qkc_fail_diag(ctx, &diag);
    if (layout.total > SIZE_MAX)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "the weight blob (%llu bytes) does not fit in memory sizes",
                        (unsigned long long)layout.total);
    spec = qkc_alloc(ctx, sizeof *spec);
    if (!spec)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "spec: out of memory");
    spec->ctx = ctx;
    spec->mm = *mm;
    spec->layout = layout;
    *out = spec;
    return QKC_OK;
}

qkc_status qkc_spec_from_matmul(qkc_context *ctx, const qkc_matmul *mm, qkc_spec **out)
{
    qkc_diag diag;
    if (qkc_matmul_verify(mm, &diag, NULL))
        return qkc_fail_diag(ctx, &diag);
    return spec_new(ctx, mm, out);
}

qkc_status qkc_spec_parse(qkc_context *ctx, const char *text, qkc_spec **out)
{
    qkc_matmul mm;
    qkc_diag diag;
    if (!ctx || !out)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_spec_parse: out is NULL")
                   : QKC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!text)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_spec_parse: text is NULL");
    /* the parser verifies what it returns */
    if (qkc_matmul_parse(text, &mm, NULL, &diag))
        return qkc_fail(ctx, diag.status, "error: %s", diag.message);
    return spec_new(ctx, &mm, out);
}

void qkc_spec_destroy(qkc_spec *spec)
{
    if (spec)
        qkc_free(spec->ctx, spec);
}

qkc_status qkc_spec_print(const qkc_spec *spec, char *buf, size_t size, size_t *needed)
{
    size_t len;
    if (!spec || (!buf && size))
        return QKC_ERR_INVALID_ARGUMENT;
    len = qkc_matmul_print(&spec->mm, buf, size);
    if (needed)
        *needed = len;
    if (len >= size)
        return QKC_ERR_BUFFER_TOO_SMALL;
    return QKC_OK;
}

qkc_status qkc_spec_query(const qkc_spec *spec, qkc_spec_info *out)
{
    const qkc_matmul *mm;
    if (!spec || !out)
        return QKC_ERR_INVALID_ARGUMENT;
    mm = &spec->mm;
    memset(out, 0, sizeof *out);
    out->m = mm->m;
    out->n = mm->n;
    out->k = mm->k;
    out->a_type = qkc_dtype_keyword(mm->a_dtype);
    out->weight_format = mm->w.preset ? qkc_preset_get(mm->w.preset)->keyword : qkc_dtype_keyword(mm->w.dtype);
    out->compute_type = qkc_compute_keyword(mm->compute);
    out->out_type = qkc_dtype_keyword(mm->out_dtype);
    out->has_bias = mm->bias == QKC_BIAS_F32;
    out->activation = qkc_act_keyword(mm->act);
    out->weight_bytes = (size_t)spec->layout.total;
    out->bits_per_weight = (double)spec->layout.total * 8.0 / ((double)mm->n * (double)mm->k);
    out->lora_rank = (int)mm->lora_rank;
    out->lora_type = mm->lora_rank ? qkc_dtype_keyword(mm->lora_dtype) : "none";
    out->act_scales = mm->ascale == QKC_ASCALE_STATIC ? "static" : mm->ascale == QKC_ASCALE_STATIC_CHANNEL ? "static:channel" : "dynamic";
    return QKC_OK;
}

qkc_status qkc_weights_bytes(qkc_context *ctx, const qkc_spec *spec, size_t *bytes)
{
    if (!ctx || !spec || !bytes)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_weights_bytes: NULL argument")
                   : QKC_ERR_INVALID_ARGUMENT;
    *bytes = (size_t)spec->layout.total;
    return QKC_OK;
}

/* The checks qkc_quantize and qkc_dequantize share: pointers, the row
 * stride of the f32 matrix and the size of the blob buffer. */
static qkc_status check_weight_args(qkc_context *ctx, const char *fn, const char *blob_name, const qkc_spec *spec,
                                    const float *w, const void *blob, int64_t ldw, size_t blob_bytes)
{
    if (!spec || !w || !blob)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (ldw < spec->mm.k)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: ldw=%lld is less than k=%lld", fn, (long long)ldw,
                        (long long)spec->mm.k);
    if (blob_bytes < spec->layout.total)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "%s: %s holds %zu bytes, the weights need %llu", fn, blob_name,
                        blob_bytes, (unsigned long long)spec->layout.total);
    return QKC_OK;
}

/* The reference codec of a spec's format (its family's), and its handle. */
static qkc_status codec_for(qkc_context *ctx, const char *fn, const qkc_spec *spec, qkc_ref_weights *rw,
                            const qkc_family_codec **codec)
{
    rw->ctx = ctx;
    rw->format = &spec->mm.w;
    rw->layout = &spec->layout;
    rw->n = spec->mm.n;
    rw->k = spec->mm.k;
    *codec = qkc_family_codec_get(qkc_format_family(&spec->mm.w));
    if (!*codec)
        return qkc_fail(ctx, QKC_ERR_INTERNAL, "%s: the spec's weight format has no codec", fn);
    return QKC_OK;
}

qkc_status qkc_quantize(qkc_context *ctx, const qkc_spec *spec, const float *w, int64_t ldw, void *dst,
                        size_t dst_bytes)
{
    const qkc_matmul *mm;
    const qkc_family_codec *codec;
    qkc_ref_weights rw;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = check_weight_args(ctx, "qkc_quantize", "dst", spec, w, dst, ldw, dst_bytes)))
        return st;
    mm = &spec->mm;
    for (int64_t r = 0; r < mm->n; r++)
        for (int64_t i = 0; i < mm->k; i++)
            if (!isfinite(w[r * ldw + i]))
                return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                                "qkc_quantize: weight (%lld, %lld) is not finite; quantized formats hold finite values",
                                (long long)r, (long long)i);
    memset(dst, 0, (size_t)spec->layout.total);
    if ((st = codec_for(ctx, "qkc_quantize", spec, &rw, &codec)))
        return st;
    return codec->quantize(&rw, w, ldw, dst);
}

qkc_status qkc_dequantize(qkc_context *ctx, const qkc_spec *spec, const void *src, size_t src_bytes, float *w,
                          int64_t ldw)
{
    const qkc_family_codec *codec;
    qkc_ref_weights rw;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = check_weight_args(ctx, "qkc_dequantize", "src", spec, w, src, ldw, src_bytes)))
        return st;
    if ((st = codec_for(ctx, "qkc_dequantize", spec, &rw, &codec)))
        return st;
    return codec->dequantize(&rw, src, w, ldw);
}

qkc_status qkc_rotate_rows(qkc_context *ctx, const qkc_spec *spec, float *rows, int64_t count, int64_t ld)
{
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || (!rows && count))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_rotate_rows: NULL argument");
    if (!spec->mm.rotate)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_rotate_rows: the spec has no rotate=");
    if (count < 0 || ld < spec->mm.k)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_rotate_rows: count=%lld, ld=%lld (ld must be >= k=%lld)",
                        (long long)count, (long long)ld, (long long)spec->mm.k);
    for (int64_t r = 0; r < count; r++)
        qkc_ref_hadamard_row(rows + r * ld, spec->mm.k, spec->mm.rotate);
    return QKC_OK;
}
