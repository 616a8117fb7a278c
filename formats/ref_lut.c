/*
 * The LUT family's codec (formats/family.h): the reference codec of the
 * arbitrary codebooks lut2/lut3/lut4 (planar layout with the tables in AUX;
 * format.h and docs/formats.md give the bytes), and its packer.
 *
 * Dequantize: x = table[t][code], f16 entries widened exactly.
 *
 * Quantize, per table group (the tensor, a row, or `group` weights of a
 * row), with E = 2^bits entries, deterministic:
 *   1. entries start at the quantiles of the group's values: entry i is the
 *      sorted value at index floor((i + 0.5)·len / E) (NaN counts as 0);
 *   2. LUT_ITERS Lloyd (k-means) iterations: each value goes to its nearest
 *      entry (ties: the lower code), each entry becomes the mean (in double)
 *      of its values, an entry with no values keeps its place;
 *   3. entries are sorted ascending and rounded to the table dtype (RNE);
 *   4. codes: the nearest rounded entry (ties: the lower code).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "formats/family.h"
#include "formats/ref.h"

#define LUT_ITERS 6

static float clean(float x)
{
    return isnan(x) ? 0.0f : x;
}

static int cmp_float(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

static uint32_t nearest(const float *t, int E, float x)
{
    uint32_t best = 0;
    double bd = fabs((double)x - (double)t[0]);
    for (int i = 1; i < E; i++) {
        double d = fabs((double)x - (double)t[i]);
        if (d < bd) {
            bd = d;
            best = (uint32_t)i;
        }
    }
    return best;
}

/* The table of one group: vals[len] (cleaned), scratch[len] for sorting.
 * Writes E rounded entries to table. */
static void fit_table(qkc_dtype tdt, const float *vals, float *scratch, int64_t len, int E, float *table)
{
    double sum[16], cnt[16];
    memcpy(scratch, vals, (size_t)len * sizeof *scratch);
    qkc_sort(scratch, (size_t)len, sizeof *scratch, cmp_float);
    for (int i = 0; i < E; i++)
        table[i] = scratch[(int64_t)(((double)i + 0.5) * (double)len / E)];
    for (int it = 0; it < LUT_ITERS; it++) {
        for (int i = 0; i < E; i++)
            sum[i] = cnt[i] = 0.0;
        for (int64_t j = 0; j < len; j++) {
            uint32_t c = nearest(table, E, vals[j]);
            sum[c] += vals[j];
            cnt[c] += 1.0;
        }
        for (int i = 0; i < E; i++)
            if (cnt[i] > 0.0)
                table[i] = (float)(sum[i] / cnt[i]);
    }
    qkc_sort(table, (size_t)E, sizeof *table, cmp_float);
    for (int i = 0; i < E; i++)
        table[i] = qkc_dtype_round(tdt, table[i], 0);
}

static void set_bits(uint8_t *row, int64_t k, int bits, uint32_t code)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7);
    uint32_t v = (code & ((1u << bits) - 1u)) << shift, mask = ((1u << bits) - 1u) << shift;
    row[byte] = (uint8_t)((row[byte] & ~mask) | v);
    if (shift + bits > 8)
        row[byte + 1] = (uint8_t)((row[byte + 1] & ~(mask >> 8)) | (v >> 8));
}

static uint32_t get_bits(const uint8_t *row, int64_t k, int bits)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7);
    uint32_t v = row[byte];
    if (shift + bits > 8)
        v |= (uint32_t)row[byte + 1] << 8;
    return (v >> shift) & ((1u << bits) - 1u);
}

static void put_entry(uint8_t *p, qkc_dtype tdt, float v)
{
    if (tdt == QKC_DTYPE_F16)
        qkc_wr16(p, qkc_f32_to_f16(v));
    else
        qkc_wr32(p, qkc_f32_bits(v));
}

static float get_entry(const uint8_t *p, qkc_dtype tdt)
{
    return tdt == QKC_DTYPE_F16 ? qkc_f16_to_f32(qkc_rd16(p)) : qkc_f32_from_bits(qkc_rd32(p));
}

/* Table group t covers rows [r0, r1) and columns [k0, k1). */
static void group_of(const qkc_format *f, int64_t n, int64_t k, int64_t t, int64_t *r0, int64_t *r1, int64_t *k0,
                     int64_t *k1)
{
    if (f->granularity == QKC_GRAN_TENSOR) {
        *r0 = 0, *r1 = n, *k0 = 0, *k1 = k;
    } else if (f->granularity == QKC_GRAN_CHANNEL) {
        *r0 = t, *r1 = t + 1, *k0 = 0, *k1 = k;
    } else {
        int64_t groups = (k + f->group - 1) / f->group;
        *r0 = t / groups, *r1 = *r0 + 1;
        *k0 = (t % groups) * f->group;
        *k1 = *k0 + f->group < k ? *k0 + f->group : k;
    }
}

qkc_status qkc_ref_lut_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    int64_t n = rw->n, k = rw->k, tables = qkc_format_lut_tables(f, n, k);
    int E = 1 << dd->bits, eb = qkc_dtype_storage_bytes(f->table_dtype);
    int64_t maxlen = f->granularity == QKC_GRAN_TENSOR ? n * k : k;
    float *vals, *scratch;

    if (tables <= 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "lut quantize: %s is not a lut format", dd->keyword);
    if ((uint64_t)maxlen > SIZE_MAX / (2 * sizeof(float)))
        return qkc_fail(rw->ctx, QKC_ERR_LIMIT, "lut quantize: %lld weights in one table group do not fit in memory",
                        (long long)maxlen);
    vals = qkc_alloc(rw->ctx, (size_t)maxlen * sizeof *vals);
    scratch = qkc_alloc(rw->ctx, (size_t)maxlen * sizeof *scratch);
    if (!vals || !scratch) {
        qkc_free(rw->ctx, vals);
        qkc_free(rw->ctx, scratch);
        return qkc_fail(rw->ctx, QKC_ERR_NO_MEMORY, "lut quantize: no memory for a table group of %lld weights",
                        (long long)maxlen);
    }
    memset(blob, 0, (size_t)L->total);
    for (int64_t t = 0; t < tables; t++) {
        int64_t r0, r1, k0, k1, len = 0;
        float table[16];
        group_of(f, n, k, t, &r0, &r1, &k0, &k1);
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = k0; j < k1; j++)
                vals[len++] = clean(w[r * ldw + j]);
        fit_table(f->table_dtype, vals, scratch, len, E, table);
        for (int i = 0; i < E; i++)
            put_entry(blob + L->offset[QKC_SECTION_AUX] + ((uint64_t)t * (uint64_t)E + (uint64_t)i) * (uint64_t)eb,
                      f->table_dtype, table[i]);
        len = 0;
        for (int64_t r = r0; r < r1; r++) {
            uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
            for (int64_t j = k0; j < k1; j++)
                set_bits(drow, j, dd->bits, nearest(table, E, vals[len++]));
        }
    }
    qkc_free(rw->ctx, vals);
    qkc_free(rw->ctx, scratch);
    return QKC_OK;
}

qkc_status qkc_ref_lut_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    int64_t n = rw->n, k = rw->k, groups = f->granularity == QKC_GRAN_GROUP ? (k + f->group - 1) / f->group : 1;
    int E = 1 << dd->bits, eb = qkc_dtype_storage_bytes(f->table_dtype);

    if (qkc_format_lut_tables(f, n, k) <= 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "lut dequantize: %s is not a lut format", dd->keyword);
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
        for (int64_t j = 0; j < k; j++) {
            uint64_t t = f->granularity == QKC_GRAN_TENSOR    ? 0
                         : f->granularity == QKC_GRAN_CHANNEL ? (uint64_t)r
                                                              : (uint64_t)(r * groups + j / f->group);
            uint32_t code = get_bits(drow, j, dd->bits);
            w[r * ldw + j] = get_entry(blob + L->offset[QKC_SECTION_AUX] + (t * (uint64_t)E + code) * (uint64_t)eb,
                                       f->table_dtype);
        }
    }
    return QKC_OK;
}

/* ------------------------------------------------------------ packing */

/* lut2/lut3/lut4: codes as they are, the table index of each chunk. */
static void read_lut(qkc_pack_job *job, int64_t r)
{
    const qkc_format *f = job->f;
    const qkc_klayout *L = job->L;
    int bits = qkc_dtype_get(f->dtype)->bits;
    const uint8_t *drow = job->src + job->wl->offset[QKC_SECTION_DATA] + (uint64_t)r * job->wl->row_bytes;
    int64_t groups = f->granularity == QKC_GRAN_GROUP ? (job->k + f->group - 1) / f->group : 1;
    for (int64_t i = 0; i < job->k; i++)
        job->code[i] = qkc_pack_planar_code(drow, i, bits);
    for (int64_t c = 0; c < L->chunks_per_row; c++)
        job->tidx[c] = f->granularity == QKC_GRAN_TENSOR    ? 0u
                       : f->granularity == QKC_GRAN_CHANNEL ? (uint32_t)r
                                                            : (uint32_t)(r * groups + c * L->chunk / f->group);
}

/* The tables, widened to f32 and padded to 16 entries with +0. */
static void emit_lut_tables(const qkc_pack_job *job, uint8_t *out)
{
    const qkc_format *f = job->f;
    const qkc_klayout *L = job->L;
    int E = 1 << qkc_dtype_get(f->dtype)->bits, eb = qkc_dtype_storage_bytes(f->table_dtype);
    const uint8_t *aux = job->src + job->wl->offset[QKC_SECTION_AUX];
    uint64_t rows = L->row_bytes * (uint64_t)job->n;
    memset(out + rows, 0, (size_t)(L->total_bytes - rows));
    for (int64_t t = 0; t < L->lut_tables; t++)
        for (int i = 0; i < E; i++) {
            const uint8_t *p = aux + ((uint64_t)t * (uint64_t)E + (uint64_t)i) * (uint64_t)eb;
            uint32_t bits = f->table_dtype == QKC_DTYPE_F16 ? qkc_f32_bits(qkc_f16_to_f32(qkc_rd16(p))) : qkc_rd32(p);
            qkc_wr32(out + L->table_offset + (uint64_t)t * 64u + (uint64_t)i * 4u, bits);
        }
}

static qkc_status lut_pack(qkc_pack_job *job, uint8_t *out)
{
    qkc_status st = qkc_pack_rows(job, out, read_lut);
    if (st == QKC_OK)
        emit_lut_tables(job, out);
    return st;
}

const qkc_family_codec qkc_family_lut_codec = {
    .name = "lut",
    .quantize = qkc_ref_lut_quantize,
    .dequantize = qkc_ref_lut_dequantize,
    .pack = lut_pack,
};
