/*
 * The GPTQ and AWQ families' codecs (formats/family.h): GPTQ (v1 checkpoint
 * format) and AWQ (gemm), formats.md §8, blob layouts in ir/fam_gptq.c; and
 * their packers. W is N×K here, so GPTQ's qweight [K·bits/32][N]
 * and AWQ's qweight [K][N/8] are the external tensors as stored, and W[n][k]
 * is their (k, n) element.
 *
 * Both quantizers are round-to-nearest min/max quantizers (no Hessian, no
 * activation-aware scaling search): they produce blobs in the exact
 * external layout, which is what the reference needs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "formats/family.h"
#include "formats/ref.h"

/* ------------------------------------------------------------ helpers */


/* OR a field into a zeroed stream (the quantizers clear the blob first). */
static void put_field(uint8_t *base, uint64_t stride, uint64_t pos, unsigned bits, uint32_t v)
{
    uint64_t r = pos / 32;
    unsigned sh = (unsigned)(pos % 32);
    uint8_t *p = base + r * stride;
    qkc_wr32(p, qkc_rd32(p) | v << sh);
    if (sh + bits > 32) {
        p = base + (r + 1) * stride;
        qkc_wr32(p, qkc_rd32(p) | v >> (32 - sh));
    }
}

/*
 * A scale rounded to f16 (the stored value the quantizer then uses). An
 * f16 underflow to 0 would make x/scale infinite and an overflow to Inf
 * would decode Inf·0 = NaN, so the smallest subnormal and the largest
 * finite f16 stand in for them.
 */
static uint16_t scale_to_f16(float s)
{
    uint16_t h = qkc_f32_to_f16(s);
    if ((h & 0x7FFFu) == 0)
        return 0x0001u;
    if ((h & 0x7C00u) == 0x7C00u)
        return 0x7BFFu;
    return h;
}

/* An already rounded value clamped to [lo, hi]; NaN gives lo. */
static int32_t clamp_int(double v, int32_t lo, int32_t hi)
{
    if (!(v >= (double)lo))
        return lo;
    if (v > (double)hi)
        return hi;
    return (int32_t)v;
}

/* Elements per group along K: `group`, or all of K for CHANNEL. */
static int64_t group_size(const qkc_format *f, int64_t k)
{
    if (f->granularity == QKC_GRAN_GROUP)
        return f->group;
    return f->granularity == QKC_GRAN_CHANNEL ? k : 0;
}

/* --------------------------------------------------------------- GPTQ */

typedef struct gptq_shape {
    unsigned bits;
    int32_t maxq;
    int64_t G, groups;
    uint64_t zero_words; /* qzeros words per group row: N·bits/32 */
    int actorder;
} gptq_shape;

static qkc_status gptq_check(const qkc_ref_weights *rw, int64_t ldw, const void *a, const void *b,
                             gptq_shape *s)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    uint64_t n = (uint64_t)rw->n, k = (uint64_t)rw->k;
    if (!f || !L || !a || !b || rw->n <= 0 || rw->k <= 0 || ldw < rw->k)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "gptq: invalid arguments");
    switch (f->dtype) {
    case QKC_DTYPE_UINT2: s->bits = 2; break;
    case QKC_DTYPE_UINT3: s->bits = 3; break;
    case QKC_DTYPE_UINT4: s->bits = 4; break;
    case QKC_DTYPE_UINT8: s->bits = 8; break;
    default: s->bits = 0; break;
    }
    s->G = group_size(f, rw->k);
    if (f->preset != QKC_PRESET_GPTQ || s->bits == 0 || s->G <= 0 || k * s->bits % 32 != 0 ||
        n * s->bits % 32 != 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "gptq: unsupported format for n=%lld k=%lld (bits 2/3/4/8, k·bits and "
                        "n·bits multiples of 32, group or channel granularity)",
                        (long long)rw->n, (long long)rw->k);
    s->maxq = (int32_t)((1u << s->bits) - 1u);
    s->groups = (rw->k + s->G - 1) / s->G;
    s->zero_words = n * s->bits / 32;
    s->actorder = (f->flags & QKC_FORMAT_ACTORDER) != 0;
    if (L->bytes[QKC_SECTION_DATA] < k * s->bits / 32 * n * 4 ||
        L->bytes[QKC_SECTION_ZEROS] < (uint64_t)s->groups * s->zero_words * 4 ||
        L->bytes[QKC_SECTION_SCALES] < (uint64_t)s->groups * n * 2 ||
        (s->actorder && L->bytes[QKC_SECTION_AUX] < k * 4))
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "gptq: the layout does not match the format");
    return QKC_OK;
}

typedef struct column_energy {
    double energy; /* Σ_n W[n][k]², NaN replaced by −1 so the order is total */
    int64_t k;
} column_energy;

/* Decreasing energy, ties to the lower k. */
static int cmp_energy(const void *a, const void *b)
{
    const column_energy *x = a, *y = b;
    if (x->energy != y->energy)
        return x->energy > y->energy ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

/* The k at position i of group order: i itself, or in act-order the
 * column at position i of the permutation. */
static int64_t group_member(const column_energy *order, int64_t i)
{
    return order ? order[i].k : i;
}

qkc_status qkc_ref_gptq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_weight_layout *L;
    column_energy *order = NULL;
    uint8_t *qweight, *qzeros, *scales;
    gptq_shape s;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = gptq_check(rw, ldw, w, blob, &s)) != QKC_OK)
        return st;
    L = rw->layout;
    memset(blob, 0, (size_t)L->total);
    qweight = blob + L->offset[QKC_SECTION_DATA];
    qzeros = blob + L->offset[QKC_SECTION_ZEROS];
    scales = blob + L->offset[QKC_SECTION_SCALES];

    if (s.actorder) {
        /* Act-order without calibration data: the column energy Σ_n W²
         * stands in for the Hessian diagonal GPTQ sorts by. Columns by
         * decreasing energy, g_idx[k] = (position of k) / group; qweight
         * keeps the original K order. */
        uint8_t *gidx = blob + L->offset[QKC_SECTION_AUX];
        if ((uint64_t)rw->k <= SIZE_MAX / sizeof *order)
            order = qkc_alloc(rw->ctx, (size_t)rw->k * sizeof *order);
        if (!order)
            return qkc_fail(rw->ctx, QKC_ERR_NO_MEMORY, "gptq: no memory for the act-order permutation");
        for (int64_t k = 0; k < rw->k; k++) {
            order[k].energy = 0.0;
            order[k].k = k;
        }
        for (int64_t n = 0; n < rw->n; n++)
            for (int64_t k = 0; k < rw->k; k++) {
                double x = (double)w[n * ldw + k];
                order[k].energy += x * x;
            }
        for (int64_t k = 0; k < rw->k; k++)
            if (isnan(order[k].energy))
                order[k].energy = -1.0;
        qkc_sort(order, (size_t)rw->k, sizeof *order, cmp_energy);
        for (int64_t pos = 0; pos < rw->k; pos++)
            qkc_wr32(gidx + order[pos].k * 4, (uint32_t)(int32_t)(pos / s.G));
    }

    for (int64_t n = 0; n < rw->n; n++) {
        const float *row = w + n * ldw;
        for (int64_t g = 0; g < s.groups; g++) {
            int64_t i0 = g * s.G, i1 = i0 + s.G < rw->k ? i0 + s.G : rw->k;
            float xmin = 0.0f, xmax = 0.0f, scale;
            uint16_t h;
            int32_t zero;
            for (int64_t i = i0; i < i1; i++) {
                float x = row[group_member(order, i)];
                if (x < xmin)
                    xmin = x;
                if (x > xmax)
                    xmax = x;
            }
            if (xmin == 0.0f && xmax == 0.0f) {
                xmin = -1.0f;
                xmax = 1.0f;
            }
            h = scale_to_f16((xmax - xmin) / (float)s.maxq);
            scale = qkc_f16_to_f32(h);
            /* v1 stores zero − 1 in an unsigned field, so zero = 0 would
             * wrap to maxq + 1 on load: the zero is clamped to [1, maxq]. */
            zero = clamp_int(qkc_round_even((double)(-xmin / scale)), 1, s.maxq);
            for (int64_t i = i0; i < i1; i++) {
                int64_t k = group_member(order, i);
                double r = qkc_round_even((double)(row[k] / scale)) + (double)zero;
                uint32_t q = (uint32_t)clamp_int(r, 0, s.maxq);
                put_field(qweight + n * 4, (uint64_t)rw->n * 4, (uint64_t)k * s.bits, s.bits, q);
            }
            put_field(qzeros + (uint64_t)g * s.zero_words * 4, 4, (uint64_t)n * s.bits, s.bits,
                      (uint32_t)(zero - 1));
            qkc_wr16(scales + ((uint64_t)g * (uint64_t)rw->n + (uint64_t)n) * 2, h);
        }
    }
    qkc_free(rw->ctx, order);
    return QKC_OK;
}

qkc_status qkc_ref_gptq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_weight_layout *L;
    const uint8_t *qweight, *qzeros, *scales, *gidx = NULL;
    gptq_shape s;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = gptq_check(rw, ldw, blob, w, &s)) != QKC_OK)
        return st;
    L = rw->layout;
    qweight = blob + L->offset[QKC_SECTION_DATA];
    qzeros = blob + L->offset[QKC_SECTION_ZEROS];
    scales = blob + L->offset[QKC_SECTION_SCALES];
    if (s.actorder) {
        gidx = blob + L->offset[QKC_SECTION_AUX];
        for (int64_t k = 0; k < rw->k; k++) {
            int32_t g = (int32_t)qkc_rd32(gidx + k * 4);
            if (g < 0 || g >= s.groups)
                return qkc_fail(rw->ctx, QKC_ERR_CORRUPT_DATA,
                                "gptq: g_idx[%lld] = %d is outside [0, %lld)", (long long)k, (int)g,
                                (long long)s.groups);
        }
    }
    for (int64_t n = 0; n < rw->n; n++) {
        for (int64_t k = 0; k < rw->k; k++) {
            int64_t g = gidx ? (int64_t)(int32_t)qkc_rd32(gidx + k * 4) : k / s.G;
            int32_t q = (int32_t)qkc_stream_field(qweight + n * 4, (uint64_t)rw->n * 4, (uint64_t)k * s.bits, s.bits);
            int32_t z = (int32_t)qkc_stream_field(qzeros + (uint64_t)g * s.zero_words * 4, 4,
                                           (uint64_t)n * s.bits, s.bits) + 1;
            float scale = qkc_f16_to_f32(qkc_rd16(scales + ((uint64_t)g * (uint64_t)rw->n + (uint64_t)n) * 2));
            w[n * ldw + k] = scale * (float)(q - z);
        }
    }
    return QKC_OK;
}

/* ---------------------------------------------------------------- AWQ */

/* Nibble i of a word holds column 8c + ORDER[i]; column 8c + j sits in
 * nibble REV[j]. */
static const unsigned awq_rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};

typedef struct awq_shape {
    int64_t G, groups;
    uint64_t words; /* words per qweight/qzeros row: N/8 */
} awq_shape;

static qkc_status awq_check(const qkc_ref_weights *rw, int64_t ldw, const void *a, const void *b, awq_shape *s)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    if (!f || !L || !a || !b || rw->n <= 0 || rw->k <= 0 || ldw < rw->k)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "awq: invalid arguments");
    s->G = group_size(f, rw->k);
    if (f->preset != QKC_PRESET_AWQ || f->dtype != QKC_DTYPE_UINT4 || s->G <= 0 || rw->n % 8 != 0 ||
        rw->k % s->G != 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "awq: unsupported format for n=%lld k=%lld (uint4, n %% 8 == 0, k %% group == 0)",
                        (long long)rw->n, (long long)rw->k);
    s->groups = rw->k / s->G;
    s->words = (uint64_t)rw->n / 8;
    if (L->bytes[QKC_SECTION_DATA] < (uint64_t)rw->k * s->words * 4 ||
        L->bytes[QKC_SECTION_ZEROS] < (uint64_t)s->groups * s->words * 4 ||
        L->bytes[QKC_SECTION_SCALES] < (uint64_t)s->groups * (uint64_t)rw->n * 2)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "awq: the layout does not match the format");
    return QKC_OK;
}

/* Byte address of the word holding column n in row r, and its shift. */
static uint64_t awq_word(const awq_shape *s, uint64_t r, int64_t n, unsigned *shift)
{
    *shift = 4 * awq_rev[n % 8];
    return (r * s->words + (uint64_t)n / 8) * 4;
}

static void awq_put(uint8_t *base, const awq_shape *s, uint64_t r, int64_t n, uint32_t v)
{
    unsigned sh;
    uint8_t *p = base + awq_word(s, r, n, &sh);
    qkc_wr32(p, qkc_rd32(p) | v << sh);
}

static int32_t awq_get(const uint8_t *base, const awq_shape *s, uint64_t r, int64_t n)
{
    unsigned sh;
    const uint8_t *p = base + awq_word(s, r, n, &sh);
    return (int32_t)((qkc_rd32(p) >> sh) & 15u);
}

qkc_status qkc_ref_awq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_weight_layout *L;
    uint8_t *qweight, *qzeros, *scales;
    awq_shape s;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = awq_check(rw, ldw, w, blob, &s)) != QKC_OK)
        return st;
    L = rw->layout;
    memset(blob, 0, (size_t)L->total);
    qweight = blob + L->offset[QKC_SECTION_DATA];
    qzeros = blob + L->offset[QKC_SECTION_ZEROS];
    scales = blob + L->offset[QKC_SECTION_SCALES];

    for (int64_t n = 0; n < rw->n; n++) {
        const float *row = w + n * ldw;
        for (int64_t g = 0; g < s.groups; g++) {
            int64_t k0 = g * s.G, k1 = k0 + s.G;
            float mn = row[k0], mx = row[k0], scale;
            uint16_t h;
            int32_t zero;
            for (int64_t k = k0 + 1; k < k1; k++) {
                if (row[k] < mn)
                    mn = row[k];
                if (row[k] > mx)
                    mx = row[k];
            }
            /* AutoAWQ: (max − min).clamp(min=1e-5) / 15, here rounded to
             * the stored f16 before it is used. */
            h = scale_to_f16(fmaxf(mx - mn, 1e-5f) / 15.0f);
            scale = qkc_f16_to_f32(h);
            zero = clamp_int(-qkc_round_even((double)(mn / scale)), 0, 15);
            for (int64_t k = k0; k < k1; k++) {
                double r = qkc_round_even((double)(row[k] / scale)) + (double)zero;
                awq_put(qweight, &s, (uint64_t)k, n, (uint32_t)clamp_int(r, 0, 15));
            }
            awq_put(qzeros, &s, (uint64_t)g, n, (uint32_t)zero);
            qkc_wr16(scales + ((uint64_t)g * (uint64_t)rw->n + (uint64_t)n) * 2, h);
        }
    }
    return QKC_OK;
}

qkc_status qkc_ref_awq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_weight_layout *L;
    const uint8_t *qweight, *qzeros, *scales;
    awq_shape s;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = awq_check(rw, ldw, blob, w, &s)) != QKC_OK)
        return st;
    L = rw->layout;
    qweight = blob + L->offset[QKC_SECTION_DATA];
    qzeros = blob + L->offset[QKC_SECTION_ZEROS];
    scales = blob + L->offset[QKC_SECTION_SCALES];
    for (int64_t n = 0; n < rw->n; n++) {
        for (int64_t k = 0; k < rw->k; k++) {
            int64_t g = k / s.G;
            int32_t q = awq_get(qweight, &s, (uint64_t)k, n);
            int32_t z = awq_get(qzeros, &s, (uint64_t)g, n);
            float scale = qkc_f16_to_f32(qkc_rd16(scales + ((uint64_t)g * (uint64_t)rw->n + (uint64_t)n) * 2));
            w[n * ldw + k] = (float)(q - z) * scale;
        }
    }
    return QKC_OK;
}

/* ------------------------------------------------------------ packing */

/* AWQ: column n of packed row r sits in nibble REV[n % 8] of word n / 8. */
static uint32_t awq_nibble(const uint8_t *base, uint64_t words, uint64_t r, int64_t n)
{
    static const unsigned rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    return (qkc_rd32(base + (r * words + (uint64_t)n / 8) * 4) >> (4 * rev[n % 8])) & 15u;
}

static unsigned gptq_bits(const qkc_format *f)
{
    return (unsigned)qkc_dtype_get(f->dtype)->bits;
}

static int64_t group_len(const qkc_format *f, int64_t k)
{
    return f->granularity == QKC_GRAN_GROUP ? f->group : k;
}

static void read_gptq(qkc_pack_job *job, int64_t r)
{
    const qkc_weight_layout *wl = job->wl;
    unsigned bits = gptq_bits(job->f);
    uint64_t n = (uint64_t)job->n, zero_words = n * bits / 32;
    const uint8_t *qweight = job->src + wl->offset[QKC_SECTION_DATA];
    const uint8_t *qzeros = job->src + wl->offset[QKC_SECTION_ZEROS];
    const uint8_t *scales = job->src + wl->offset[QKC_SECTION_SCALES];
    int64_t G = group_len(job->f, job->k);

    /* qweight is [K·bits/32][N]: row r of W is the bit stream down column r. */
    for (int64_t j = 0; j < job->k; j++) {
        int64_t col = job->perm ? job->perm[j] : j;
        job->code[j] = qkc_stream_field(qweight + r * 4, n * 4, (uint64_t)col * bits, bits);
    }
    for (int64_t c = 0; c < job->L->chunks_per_row; c++) {
        int64_t col = c * job->L->chunk;
        int64_t g;
        if (job->perm)
            col = job->perm[col];
        g = job->gidx ? job->gidx[col] : col / G;
        job->zero[c] = (int32_t)qkc_stream_field(qzeros + (uint64_t)g * zero_words * 4, 4, (uint64_t)r * bits, bits) + 1;
        job->scale[c] = qkc_rd16(scales + ((uint64_t)g * n + (uint64_t)r) * 2);
    }
}

static void read_awq(qkc_pack_job *job, int64_t r)
{
    const qkc_weight_layout *wl = job->wl;
    uint64_t n = (uint64_t)job->n, words = n / 8;
    const uint8_t *qweight = job->src + wl->offset[QKC_SECTION_DATA];
    const uint8_t *qzeros = job->src + wl->offset[QKC_SECTION_ZEROS];
    const uint8_t *scales = job->src + wl->offset[QKC_SECTION_SCALES];
    int64_t G = group_len(job->f, job->k);

    for (int64_t j = 0; j < job->k; j++)
        job->code[j] = awq_nibble(qweight, words, (uint64_t)j, r);
    for (int64_t c = 0; c < job->L->chunks_per_row; c++) {
        uint64_t g = (uint64_t)(c * job->L->chunk / G);
        job->zero[c] = (int32_t)awq_nibble(qzeros, words, g, r);
        job->scale[c] = qkc_rd16(scales + (g * n + (uint64_t)r) * 2);
    }
}

/*
 * GPTQ act-order: check g_idx and, when the layout permutes K, sort the
 * columns by group (stable, a counting sort), so every group is a run of
 * packed columns. A group that is not a whole number of chunks (other than
 * the last) would put two scales in one chunk: unsupported.
 */
static qkc_status prepare_gptq(qkc_pack_job *job)
{
    const qkc_weight_layout *wl = job->wl;
    int64_t k = job->k, groups = wl->groups_per_row, *count = NULL, last = -1;
    const uint8_t *g_idx = job->src + wl->offset[QKC_SECTION_AUX];
    qkc_status st = QKC_OK;

    if (!(job->f->flags & QKC_FORMAT_ACTORDER))
        return QKC_OK;
    job->gidx = qkc_alloc(job->ctx, (size_t)k * sizeof *job->gidx);
    if (!job->gidx)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory for g_idx of k=%lld", (long long)k);
    for (int64_t i = 0; i < k; i++) {
        int32_t g = (int32_t)qkc_rd32(g_idx + i * 4);
        if (g < 0 || g >= groups)
            return qkc_fail(job->ctx, QKC_ERR_CORRUPT_DATA, "pack gptq: g_idx[%lld] = %d is outside [0, %lld)",
                            (long long)i, (int)g, (long long)groups);
        job->gidx[i] = g;
    }
    if (!job->L->permute_k)
        return QKC_OK;

    job->perm = qkc_alloc(job->ctx, (size_t)k * sizeof *job->perm);
    count = qkc_calloc(job->ctx, (size_t)groups + 1, sizeof *count);
    if (!job->perm || !count) {
        st = qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory for the act-order permutation of k=%lld",
                      (long long)k);
        goto done;
    }
    for (int64_t i = 0; i < k; i++)
        count[job->gidx[i] + 1]++;
    for (int64_t g = 0; g < groups; g++)
        if (count[g + 1] > 0)
            last = g;
    for (int64_t g = 0; g < groups; g++) {
        if (g != last && count[g + 1] % job->L->chunk != 0) {
            st = qkc_fail(job->ctx, QKC_ERR_UNSUPPORTED,
                          "pack gptq act-order: group %lld holds %lld columns, not a multiple of the %d-column "
                          "chunk, so sorted by g_idx it would share a chunk with the next group",
                          (long long)g, (long long)count[g + 1], job->L->chunk);
            goto done;
        }
    }
    for (int64_t g = 0; g < groups; g++)
        count[g + 1] += count[g]; /* count[g] = first packed column of group g */
    for (int64_t i = 0; i < k; i++)
        job->perm[count[job->gidx[i]]++] = (int32_t)i;
done:
    qkc_free(job->ctx, count);
    return st;
}

static qkc_status gptq_pack(qkc_pack_job *job, uint8_t *out)
{
    qkc_status st = prepare_gptq(job);
    if (st != QKC_OK)
        return st;
    return qkc_pack_rows(job, out, read_gptq);
}

static qkc_status awq_pack(qkc_pack_job *job, uint8_t *out)
{
    return qkc_pack_rows(job, out, read_awq);
}

const qkc_family_codec qkc_family_gptq_codec = {
    .name = "gptq",
    .quantize = qkc_ref_gptq_quantize,
    .dequantize = qkc_ref_gptq_dequantize,
    .pack = gptq_pack,
};

const qkc_family_codec qkc_family_awq_codec = {
    .name = "awq",
    .quantize = qkc_ref_awq_quantize,
    .dequantize = qkc_ref_awq_dequantize,
    .pack = awq_pack,
};
