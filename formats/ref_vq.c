/*
 * The VQ family's codec (formats/family.h): the reference codec of the 2-D
 * vector codebooks (w=vq vq=V:B, ir/vq.h and docs/formats.md give the
 * bytes), and the packer of the VQ kernel layout.
 *
 * Dequantize: W[n, j·V + t] = codebook[idx[n, j]][t], f16 entries widened
 * exactly.
 *
 * Quantize (deterministic), with E = 2^B codewords and the tensor's
 * T = N·K/V vectors (row n, weights j·V .. j·V + V − 1; NaN taken as 0,
 * ±Inf as ±FLT_MAX):
 *   1. training set: all vectors if T ≤ VQ_TRAIN, else VQ_TRAIN vectors at
 *      floor(i·T / VQ_TRAIN);
 *   2. initial codewords: the training vectors ordered by component sum
 *      (ties: lower position), codeword e the one at floor((e + 0.5)·S / E);
 *   3. VQ_ITERS Lloyd iterations over the training set: nearest codeword by
 *      squared distance in double (ties: the lower index), each codeword the
 *      mean in double of its vectors, an empty codeword keeps its place;
 *   4. codewords rounded to the table dtype (RNE);
 *   5. every vector's index: the nearest rounded codeword (ties: lower).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "ir/klayout.h"
#include "ir/vq.h"
#include "formats/family.h"
#include "formats/ref.h"

#define VQ_ITERS 6
#define VQ_TRAIN 65536

static float clean(float x)
{
    if (isnan(x))
        return 0.0f;
    if (isinf(x))
        return x > 0 ? FLT_MAX : -FLT_MAX;
    return x;
}

static uint32_t get_bits(const uint8_t *row, uint64_t bit, int bits)
{
    uint32_t v = 0;
    for (int i = 0; i < bits; i++, bit++)
        v |= (uint32_t)((row[bit >> 3] >> (bit & 7)) & 1u) << i;
    return v;
}

static void set_bits(uint8_t *row, uint64_t bit, int bits, uint32_t v)
{
    for (int i = 0; i < bits; i++, bit++)
        if ((v >> i) & 1u)
            row[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

static float get_entry(const uint8_t *p, qkc_dtype tdt)
{
    return tdt == QKC_DTYPE_F16 ? qkc_f16_to_f32(qkc_rd16(p)) : qkc_f32_from_bits(qkc_rd32(p));
}

/* Nearest of E codewords (dim V) to x by squared distance; ties: lower. */
static uint32_t nearest(const float *cb, int64_t E, int V, const float *x)
{
    uint32_t best = 0;
    double bd = INFINITY;
    for (int64_t e = 0; e < E; e++) {
        double d = 0;
        for (int t = 0; t < V; t++) {
            double u = (double)x[t] - (double)cb[e * V + t];
            d += u * u;
        }
        if (d < bd) {
            bd = d;
            best = (uint32_t)e;
        }
    }
    return best;
}

typedef struct keyed {
    double sum;
    int64_t pos;
} keyed;

static int cmp_keyed(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->sum != b->sum)
        return a->sum < b->sum ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

qkc_status qkc_ref_vq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    int64_t E = qkc_vq_entries(f), n = rw->n, k = rw->k;
    int V = f->vq_dim, B = f->vq_bits, eb = qkc_dtype_storage_bytes(f->table_dtype);
    int64_t per_row = V > 0 ? k / V : 0, T = n * per_row, S;
    float *train = NULL, *cb = NULL, x[8];
    double *sum = NULL;
    int64_t *cnt = NULL;
    keyed *order = NULL;
    qkc_status st = QKC_OK;

    if (E <= 0 || (V != 2 && V != 4 && V != 8) || k % V != 0 || eb <= 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "vq quantize: not a valid vq format");
    S = T < VQ_TRAIN ? T : VQ_TRAIN;
    train = qkc_alloc(rw->ctx, (size_t)S * (size_t)V * sizeof *train);
    order = qkc_alloc(rw->ctx, (size_t)S * sizeof *order);
    cb = qkc_alloc(rw->ctx, (size_t)E * (size_t)V * sizeof *cb);
    sum = qkc_alloc(rw->ctx, (size_t)E * (size_t)V * sizeof *sum);
    cnt = qkc_alloc(rw->ctx, (size_t)E * sizeof *cnt);
    if (!train || !order || !cb || !sum || !cnt) {
        st = qkc_fail(rw->ctx, QKC_ERR_NO_MEMORY, "vq quantize: no memory for %lld training vectors", (long long)S);
        goto done;
    }
    for (int64_t i = 0; i < S; i++) {
        int64_t p = S == T ? i : (int64_t)((double)i * (double)T / (double)S);
        const float *src = w + (p / per_row) * ldw + (p % per_row) * V;
        double s = 0;
        for (int t = 0; t < V; t++) {
            train[i * V + t] = clean(src[t]);
            s += (double)train[i * V + t];
        }
        order[i].sum = s;
        order[i].pos = i;
    }
    qkc_sort(order, (size_t)S, sizeof *order, cmp_keyed);
    for (int64_t e = 0; e < E; e++) {
        int64_t at = (int64_t)(((double)e + 0.5) * (double)S / (double)E);
        if (at >= S)
            at = S - 1;
        memcpy(cb + e * V, train + order[at].pos * V, (size_t)V * sizeof *cb);
    }
    for (int it = 0; it < VQ_ITERS; it++) {
        memset(sum, 0, (size_t)E * (size_t)V * sizeof *sum);
        memset(cnt, 0, (size_t)E * sizeof *cnt);
        for (int64_t i = 0; i < S; i++) {
            uint32_t c = nearest(cb, E, V, train + i * V);
            cnt[c]++;
            for (int t = 0; t < V; t++)
                sum[c * V + t] += (double)train[i * V + t];
        }
        for (int64_t e = 0; e < E; e++)
            if (cnt[e])
                for (int t = 0; t < V; t++)
                    cb[e * V + t] = (float)(sum[e * V + t] / (double)cnt[e]);
    }
    memset(blob, 0, (size_t)L->total);
    for (int64_t e = 0; e < E * V; e++) {
        uint8_t *p = blob + L->offset[QKC_SECTION_AUX] + (uint64_t)e * (uint64_t)eb;
        if (f->table_dtype == QKC_DTYPE_F16)
            qkc_wr16(p, qkc_f32_to_f16(cb[e]));
        else
            qkc_wr32(p, qkc_f32_bits(cb[e]));
        cb[e] = get_entry(p, f->table_dtype);
    }
    for (int64_t r = 0; r < n; r++) {
        uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
        for (int64_t j = 0; j < per_row; j++) {
            for (int t = 0; t < V; t++)
                x[t] = clean(w[r * ldw + j * V + t]);
            set_bits(drow, (uint64_t)j * (uint64_t)B, B, nearest(cb, E, V, x));
        }
    }
done:
    qkc_free(rw->ctx, train);
    qkc_free(rw->ctx, order);
    qkc_free(rw->ctx, cb);
    qkc_free(rw->ctx, sum);
    qkc_free(rw->ctx, cnt);
    return st;
}

qkc_status qkc_ref_vq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    int64_t E = qkc_vq_entries(f), n = rw->n, k = rw->k;
    int V = f->vq_dim, B = f->vq_bits, eb = qkc_dtype_storage_bytes(f->table_dtype);

    if (E <= 0 || (V != 2 && V != 4 && V != 8) || k % V != 0 || eb <= 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "vq dequantize: not a valid vq format");
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
        for (int64_t j = 0; j < k / V; j++) {
            uint64_t idx = get_bits(drow, (uint64_t)j * (uint64_t)B, B);
            for (int t = 0; t < V; t++)
                w[r * ldw + j * V + t] =
                    get_entry(blob + L->offset[QKC_SECTION_AUX] + (idx * (uint64_t)V + (uint64_t)t) * (uint64_t)eb,
                              f->table_dtype);
        }
    }
    return QKC_OK;
}

/* The VQ kernel layout (ir/klayout.h): u16 indices in chunk records, the
 * codebook widened to f32 after the rows. */
static qkc_status vq_pack(qkc_pack_job *job, uint8_t *out)
{
    const qkc_format *f = job->f;
    const qkc_weight_layout *wl = job->wl;
    const qkc_klayout *L = job->L;
    const uint8_t *src = job->src;
    int64_t n = job->n, k = job->k;
    int V = L->vq_dim, B = f->vq_bits, eb = qkc_dtype_storage_bytes(f->table_dtype);
    int64_t per_row = k / V, slots = L->chunk / V;
    uint64_t rows = L->row_bytes * (uint64_t)n;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *drow = src + wl->offset[QKC_SECTION_DATA] + (uint64_t)r * wl->row_bytes;
        uint8_t *orow = out + (uint64_t)r * L->row_bytes;
        memset(orow, 0, (size_t)L->row_bytes);
        for (int64_t c = 0; c < L->chunks_per_row; c++)
            for (int64_t i = 0; i < slots; i++) {
                int64_t j = c * slots + i;
                uint32_t idx = j < per_row ? get_bits(drow, (uint64_t)j * (uint64_t)B, B) : 0;
                qkc_wr16(orow + (uint64_t)c * (uint64_t)L->chunk_bytes + (uint64_t)L->code_off + (uint64_t)i * 2u,
                         (uint16_t)idx);
            }
    }
    memset(out + rows, 0, (size_t)(L->total_bytes - rows));
    for (int64_t e = 0; e < L->vq_entries * V; e++) {
        float v = get_entry(src + wl->offset[QKC_SECTION_AUX] + (uint64_t)e * (uint64_t)eb, f->table_dtype);
        qkc_wr32(out + L->table_offset + (uint64_t)e * 4u, qkc_f32_bits(v));
    }
    return QKC_OK;
}

const qkc_family_codec qkc_family_vq_codec = {
    .name = "vq",
    .quantize = qkc_ref_vq_quantize,
    .dequantize = qkc_ref_vq_dequantize,
    .pack = vq_pack,
};
