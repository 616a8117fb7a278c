/* The MIXED family's codec (formats/family.h): w=mixed (ir/mixed.h), each
 * row block through the planar codec at its offset in the blob, and each
 * packed in its own kernel layout at its offset in the packed blob (gaps
 * between blocks are zero). */
#include <string.h>

#include "core/context.h"
#include "core/spec_object.h"
#include "formats/family.h"
#include "formats/pack.h"
#include "formats/ref.h"
#include "ir/mixed.h"

typedef qkc_status (*block_fn)(const qkc_ref_weights *rw, int64_t r0, uint64_t off, void *arg);

static qkc_status each_block(const qkc_ref_weights *rw, block_fn fn, void *arg)
{
    const qkc_format *f = rw->format;
    for (int b = 0; b < f->mixed_blocks; b++) {
        qkc_format g = qkc_mixed_block_format(f, b);
        qkc_weight_layout wl;
        qkc_ref_weights sub = *rw;
        qkc_diag d;
        uint64_t off;
        qkc_status st = qkc_mixed_block_blob(f, rw->k, b, &wl, &off, &d);
        if (st != QKC_OK)
            return qkc_fail(rw->ctx, st, "w=mixed block %d: %s", b, d.message);
        sub.format = &g;
        sub.layout = &wl;
        sub.n = f->mixed_rows[b];
        if ((st = fn(&sub, qkc_mixed_row0(f, b), off, arg)) != QKC_OK)
            return st;
    }
    return QKC_OK;
}

typedef struct qargs {
    const float *w;
    int64_t ldw;
    uint8_t *blob;
} qargs;

static qkc_status quantize_block(const qkc_ref_weights *rw, int64_t r0, uint64_t off, void *arg)
{
    qargs *a = arg;
    return qkc_ref_planar_quantize(rw, a->w + r0 * a->ldw, a->ldw, a->blob + off);
}

qkc_status qkc_ref_mixed_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    qargs a = {w, ldw, blob};
    return each_block(rw, quantize_block, &a);
}

typedef struct dargs {
    const uint8_t *blob;
    float *w;
    int64_t ldw;
} dargs;

static qkc_status dequantize_block(const qkc_ref_weights *rw, int64_t r0, uint64_t off, void *arg)
{
    dargs *a = arg;
    return qkc_ref_planar_dequantize(rw, a->blob + off, a->w + r0 * a->ldw, a->ldw);
}

qkc_status qkc_ref_mixed_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    dargs a = {blob, w, ldw};
    return each_block(rw, dequantize_block, &a);
}

/* ------------------------------------------------------------ packing */

static qkc_status mixed_pack(qkc_context *ctx, const qkc_spec *spec, const qkc_klayout *L, const void *src,
                             size_t src_bytes, void *dst, size_t dst_bytes, int verify)
{
    const qkc_format *f = &spec->mm.w;
    qkc_klayout want;
    qkc_diag d;
    if (qkc_klayout_for(f, spec->mm.n, spec->mm.k, &want, &d) != QKC_OK)
        return qkc_fail_diag(ctx, &d);
    if (!want.mixed || want.total_bytes != L->total_bytes || L->mixed != want.mixed || L->mixed_k != want.mixed_k ||
        !qkc_format_equal(&L->mixed_format, f))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_pack_weights: the layout is not the one qkc_klayout_for gives for w=mixed n=%lld k=%lld (%s)",
                        (long long)spec->mm.n, (long long)spec->mm.k, want.description);
    if (src_bytes < spec->layout.total)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "qkc_pack_weights: src holds %zu bytes, the w=mixed blob needs %llu",
                        src_bytes, (unsigned long long)spec->layout.total);
    if (L->total_bytes > SIZE_MAX || dst_bytes < L->total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_pack_weights: dst holds %zu bytes, the packed w=mixed weights need %llu", dst_bytes,
                        (unsigned long long)L->total_bytes);
    memset(dst, 0, (size_t)L->total_bytes);
    for (int b = 0; b < f->mixed_blocks; b++) {
        qkc_spec sub;
        qkc_klayout BL;
        uint64_t src_off, dst_off;
        qkc_status st;
        memset(&sub, 0, sizeof sub);
        sub.ctx = spec->ctx;
        sub.mm = spec->mm;
        sub.mm.w = qkc_mixed_block_format(f, b);
        sub.mm.n = f->mixed_rows[b];
        if (qkc_mixed_block_blob(f, spec->mm.k, b, &sub.layout, &src_off, &d) != QKC_OK ||
            qkc_mixed_block_klayout(f, spec->mm.k, b, &BL, &dst_off, &d) != QKC_OK)
            return qkc_fail_diag(ctx, &d);
        st = qkc_pack_weights(ctx, &sub, &BL, (const uint8_t *)src + src_off, (size_t)(spec->layout.total - src_off),
                              (uint8_t *)dst + dst_off, (size_t)(L->total_bytes - dst_off), verify);
        if (st != QKC_OK)
            return st;
    }
    return QKC_OK;
}

const qkc_family_codec qkc_family_mixed_codec = {
    .name = "mixed",
    .quantize = qkc_ref_mixed_quantize,
    .dequantize = qkc_ref_mixed_dequantize,
    .pack_whole = mixed_pack,
};
