/* Reference codec of w=mixed (ir/mixed.h): each row block through the
 * planar codec, at its offset in the blob. */
#include "core/context.h"
#include "ir/mixed.h"
#include "formats/ref.h"

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
