/*
 * Packing format blobs into kernel layouts (pack.h, ir/klayout.h).
 *
 * Each format family has a row reader that turns one weight row of the
 * source blob into the layout's terms: one code (or dense value) per
 * element and the scale / min / zero field bits of each chunk. The
 * readers restate the source layouts of docs/formats.md independently of
 * the reference codecs, and resolve multi-level scales (K-quant d·sc,
 * double-quantized planar scales, nested bitsandbytes absmax) with the
 * reference's own f32 operations, so that the packed decode repeats the
 * reference bit for bit; verification checks exactly that.
 */
#include "formats/pack.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/context.h"
#include "formats/ref.h"
#include "core/spec_object.h"

#define PERM_ALIGN 64u

/* ------------------------------------------------------------ helpers */

/* Element k of a planar row: bits [k·bits, (k+1)·bits), LSB first. */
static uint32_t planar_bits(const uint8_t *row, int64_t k, int bits)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits, v = 0;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7);
    for (int i = 0; i * 8 < shift + bits; i++)
        v |= (uint64_t)row[byte + (size_t)i] << (8 * i);
    return (uint32_t)((v >> shift) & ((UINT64_C(1) << bits) - 1));
}

/* A 1-, 2- or 4-byte little-endian code. */
static uint32_t rd_code(const uint8_t *p, int bytes)
{
    return bytes == 1 ? p[0] : bytes == 2 ? qkc_rd16(p) : qkc_rd32(p);
}


/* AWQ: column n of packed row r sits in nibble REV[n % 8] of word n / 8. */
static uint32_t awq_nibble(const uint8_t *base, uint64_t words, uint64_t r, int64_t n)
{
    static const unsigned rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    return (qkc_rd32(base + (r * words + (uint64_t)n / 8) * 4) >> (4 * rev[n % 8])) & 15u;
}

static uint32_t f32_bits(float f)
{
    return qkc_f32_bits(f);
}

/* −m as stored min, so that x + min repeats the reference's x − m. For a
 * NaN m the NaN itself is stored: x − NaN and x + NaN then return the same
 * NaN, where x + (−NaN) would flip its sign bit. */
static uint32_t negated_min(float m)
{
    return isnan(m) ? f32_bits(m) : f32_bits(-m);
}

/* ---------------------------------------------------------------- job */

typedef struct pack_job {
    qkc_context *ctx;
    const qkc_format *f;
    const qkc_weight_layout *wl; /* source blob layout */
    const qkc_klayout *L;
    const uint8_t *src;
    int64_t n, k;
    /* One row in layout terms: code[] has chunks·chunk entries (codes, or
     * dense f16/bf16/f32 bits; 0 in the tail padding); scale/min field
     * bits and zero values per chunk. */
    uint32_t *code, *scale, *min;
    int32_t *zero;
    uint32_t *tidx; /* LUT: the table of each chunk */
    /* GPTQ act-order: g_idx (validated) and the packed → original column
     * map; nf4_bnb dq: the nested map and offset from the blob. */
    int32_t *gidx, *perm;
    float map[256], map_offset;
} pack_job;

typedef void (*row_reader)(pack_job *job, int64_t r);

static const char *format_name(const qkc_format *f)
{
    return f->preset ? qkc_preset_get(f->preset)->keyword : qkc_dtype_keyword(f->dtype);
}

/* ------------------------------------------------------------- planar */

static void read_planar(pack_job *job, int64_t r)
{
    const qkc_format *f = job->f;
    const qkc_weight_layout *wl = job->wl;
    const qkc_klayout *L = job->L;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    const uint8_t *drow = job->src + wl->offset[QKC_SECTION_DATA] + (uint64_t)r * wl->row_bytes;
    int64_t k = job->k;

    if (f->granularity == QKC_GRAN_NONE) {
        int eb = dd->bits / 8;
        for (int64_t i = 0; i < k; i++) {
            uint32_t raw = rd_code(drow + (uint64_t)i * (uint64_t)eb, eb);
            /* tf32 decodes with the low 13 bits cleared, whatever is stored */
            job->code[i] = f->dtype == QKC_DTYPE_TF32 ? raw & ~0x1FFFu : raw;
        }
        return;
    }

    /* Signed integers become offset binary: (q + 2^(b−1)) mod 2^b flips the
     * sign bit of the two's complement code. */
    uint32_t flip = dd->kind == QKC_KIND_INT && dd->is_signed ? 1u << (dd->bits - 1) : 0u;
    for (int64_t i = 0; i < k; i++)
        job->code[i] = planar_bits(drow, i, dd->bits) ^ flip;

    int64_t G = f->granularity == QKC_GRAN_GROUP ? f->group : k;
    int64_t groups = wl->groups_per_row;
    int sb = qkc_dtype_storage_bytes(f->scale_dtype);
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        int64_t g = c * L->chunk / G;
        uint64_t si = f->granularity == QKC_GRAN_TENSOR ? 0 : (uint64_t)r * (uint64_t)groups + (uint64_t)g;
        uint32_t raw = rd_code(job->src + wl->offset[QKC_SECTION_SCALES] + si * (uint64_t)sb, sb);
        if (f->scale2_dtype != QKC_DTYPE_INVALID) {
            int s2b = qkc_dtype_storage_bytes(f->scale2_dtype);
            uint64_t per_row = (uint64_t)((groups + f->super_group - 1) / f->super_group);
            uint64_t i2 = (uint64_t)r * per_row + (uint64_t)(g / f->super_group);
            float s = qkc_dtype_decode(f->scale_dtype, raw);
            float s2 = qkc_dtype_decode(f->scale2_dtype,
                                        rd_code(job->src + wl->offset[QKC_SECTION_SCALES2] + i2 * (uint64_t)s2b, s2b));
            s = s2 * s; /* the reference's operation, operands in its order */
            job->scale[c] = f32_bits(s);
        } else {
            job->scale[c] = f->scale_dtype == QKC_DTYPE_BF16 ? raw << 16 : raw;
        }
        if (f->zero == QKC_ZERO_INT) {
            job->zero[c] = (int32_t)qkc_dtype_decode(f->dtype, job->src[wl->offset[QKC_SECTION_ZEROS] + si]);
        } else if (f->zero == QKC_ZERO_FLOAT) {
            uint32_t m = rd_code(job->src + wl->offset[QKC_SECTION_ZEROS] + si * (uint64_t)sb, sb);
            job->min[c] = f->scale_dtype == QKC_DTYPE_BF16 ? m << 16 : m;
        }
    }
}

/* lut2/lut3/lut4: codes as they are, the table index of each chunk. */
static void read_lut(pack_job *job, int64_t r)
{
    const qkc_format *f = job->f;
    const qkc_klayout *L = job->L;
    int bits = qkc_dtype_get(f->dtype)->bits;
    const uint8_t *drow = job->src + job->wl->offset[QKC_SECTION_DATA] + (uint64_t)r * job->wl->row_bytes;
    int64_t groups = f->granularity == QKC_GRAN_GROUP ? (job->k + f->group - 1) / f->group : 1;
    for (int64_t i = 0; i < job->k; i++)
        job->code[i] = planar_bits(drow, i, bits);
    for (int64_t c = 0; c < L->chunks_per_row; c++)
        job->tidx[c] = f->granularity == QKC_GRAN_TENSOR    ? 0u
                       : f->granularity == QKC_GRAN_CHANNEL ? (uint32_t)r
                                                            : (uint32_t)(r * groups + c * L->chunk / f->group);
}

/* The tables, widened to f32 and padded to 16 entries with +0. */
static void emit_lut_tables(const pack_job *job, uint8_t *out)
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
            uint32_t bits = f->table_dtype == QKC_DTYPE_F16 ? f32_bits(qkc_f16_to_f32(qkc_rd16(p))) : qkc_rd32(p);
            qkc_wr32(out + L->table_offset + (uint64_t)t * 64u + (uint64_t)i * 4u, bits);
        }
}

/* --------------------------------------------------------------- GGUF */

static void kq_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* q4_k / q5_k super-block b: eight 32-element chunks with scale d·sc and
 * min −(dmin·m), computed as ggml's dequantizer computes d1 and m1. */
static void read_kquant_header(pack_job *job, const uint8_t *p, int64_t chunk0)
{
    float d = qkc_f16_to_f32(qkc_rd16(p)), dmin = qkc_f16_to_f32(qkc_rd16(p + 2));
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        kq_scale_min(j, p + 4, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        job->scale[chunk0 + j] = f32_bits(d1);
        job->min[chunk0 + j] = negated_min(m1);
    }
}

static void read_gguf(pack_job *job, int64_t r)
{
    const qkc_preset_desc *pd = qkc_preset_get(job->f->preset);
    const uint8_t *row = job->src + job->wl->offset[QKC_SECTION_DATA] + (uint64_t)r * job->wl->row_bytes;
    int64_t blocks = job->k / pd->block_elems;
    uint32_t *code = job->code;

    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + b * pd->block_bytes;
        uint32_t *y = code + b * pd->block_elems;
        switch (job->f->preset) {
        case QKC_PRESET_Q8_0:
            job->scale[b] = qkc_rd16(p);
            for (int j = 0; j < 32; j++)
                y[j] = p[2 + j] ^ 0x80u; /* int8 → offset binary */
            break;
        case QKC_PRESET_Q5_0:
        case QKC_PRESET_Q5_1: {
            int q1 = job->f->preset == QKC_PRESET_Q5_1;
            const uint8_t *ql = p + (q1 ? 8 : 6);
            uint32_t qh = qkc_rd32(p + (q1 ? 4 : 2));
            job->scale[b] = qkc_rd16(p);
            if (q1)
                job->min[b] = qkc_rd16(p + 2);
            for (int j = 0; j < 16; j++) {
                y[j] = (ql[j] & 15u) | ((qh >> j) & 1u) << 4;
                y[j + 16] = (uint32_t)(ql[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4;
            }
            break;
        }
        case QKC_PRESET_Q4_K: {
            const uint8_t *q = p + 16;
            read_kquant_header(job, p, b * 8);
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++) {
                    y[64 * c + l] = q[32 * c + l] & 15u;
                    y[64 * c + 32 + l] = (uint32_t)q[32 * c + l] >> 4;
                }
            break;
        }
        case QKC_PRESET_Q5_K: {
            const uint8_t *qh = p + 16, *ql = p + 48;
            read_kquant_header(job, p, b * 8);
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++) {
                    y[64 * c + l] = (ql[32 * c + l] & 15u) | ((uint32_t)(qh[l] >> (2 * c)) & 1u) << 4;
                    y[64 * c + 32 + l] = (uint32_t)(ql[32 * c + l] >> 4) | ((uint32_t)(qh[l] >> (2 * c + 1)) & 1u) << 4;
                }
            break;
        }
        case QKC_PRESET_Q6_K: {
            /* 16 chunks of 16: scale = d·sc as ggml's (d·sc)·q evaluates it;
             * codes stay 0..63 under zero_const 32. */
            float d = qkc_f16_to_f32(qkc_rd16(p + 208));
            for (int j = 0; j < 16; j++) {
                int sc = p[192 + j] >= 128 ? (int)p[192 + j] - 256 : (int)p[192 + j];
                float s = d * (float)sc;
                job->scale[b * 16 + j] = f32_bits(s);
            }
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = p + 64 * h, *qh = p + 128 + 32 * h;
                uint32_t *yh = y + 128 * h;
                for (int l = 0; l < 32; l++) {
                    yh[l] = (ql[l] & 15u) | (uint32_t)(qh[l] & 3u) << 4;
                    yh[l + 32] = (ql[l + 32] & 15u) | (uint32_t)((qh[l] >> 2) & 3u) << 4;
                    yh[l + 64] = (uint32_t)(ql[l] >> 4) | (uint32_t)((qh[l] >> 4) & 3u) << 4;
                    yh[l + 96] = (uint32_t)(ql[l + 32] >> 4) | (uint32_t)((qh[l] >> 6) & 3u) << 4;
                }
            }
            break;
        }
        default: break; /* in-place presets are copied, not read */
        }
    }
}

/* ------------------------------------------------------------ nf4_bnb */

static void read_bnb(pack_job *job, int64_t r)
{
    const qkc_weight_layout *wl = job->wl;
    const uint8_t *data = job->src + wl->offset[QKC_SECTION_DATA];
    int64_t k = job->k, G = job->f->group;
    int dq = (job->f->flags & QKC_FORMAT_DQ) != 0;

    /* Element e of the flattened matrix: byte e/2, even e in the HIGH
     * nibble (bitsandbytes' order). */
    for (int64_t i = 0; i < k; i++) {
        uint64_t e = (uint64_t)r * (uint64_t)k + (uint64_t)i;
        uint8_t byte = data[e / 2];
        job->code[i] = e % 2 == 0 ? (uint32_t)byte >> 4 : byte & 15u;
    }
    for (int64_t c = 0; c < job->L->chunks_per_row; c++) {
        uint64_t b = ((uint64_t)r * (uint64_t)k + (uint64_t)(c * job->L->chunk)) / (uint64_t)G;
        float amax;
        if (dq) {
            uint8_t q = job->src[wl->offset[QKC_SECTION_SCALES] + b];
            float na = qkc_f32_from_bits(qkc_rd32(job->src + wl->offset[QKC_SECTION_SCALES2] + b / 256 * 4));
            float t = job->map[q] * na; /* the reference's two roundings */
            amax = t + job->map_offset;
        } else {
            amax = qkc_f32_from_bits(qkc_rd32(job->src + wl->offset[QKC_SECTION_SCALES] + b * 4));
        }
        job->scale[c] = f32_bits(amax);
    }
}

/* ----------------------------------------------------------- GPTQ/AWQ */

static unsigned gptq_bits(const qkc_format *f)
{
    return (unsigned)qkc_dtype_get(f->dtype)->bits;
}

static int64_t group_len(const qkc_format *f, int64_t k)
{
    return f->granularity == QKC_GRAN_GROUP ? f->group : k;
}

static void read_gptq(pack_job *job, int64_t r)
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

static void read_awq(pack_job *job, int64_t r)
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
static qkc_status prepare_gptq(pack_job *job)
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

/* nf4_bnb with dq: the nested map and offset are read from AUX, as the
 * reference decoder reads them. */
static void prepare_bnb(pack_job *job)
{
    const uint8_t *aux = job->src + job->wl->offset[QKC_SECTION_AUX];
    if (!(job->f->flags & QKC_FORMAT_DQ))
        return;
    for (int i = 0; i < 256; i++)
        job->map[i] = qkc_f32_from_bits(qkc_rd32(aux + i * 4));
    job->map_offset = qkc_f32_from_bits(qkc_rd32(aux + 256 * 4));
}

/* ---------------------------------------------------------- emission */

static void put_field(uint8_t *p, qkc_kfield kind, uint32_t v)
{
    switch (kind) {
    case QKC_KF_F16:
    case QKC_KF_I16: qkc_wr16(p, (uint16_t)v); break;
    case QKC_KF_F32:
    case QKC_KF_U32: qkc_wr32(p, v); break;
    case QKC_KF_E8M0: p[0] = (uint8_t)v; break;
    case QKC_KF_NONE: break;
    }
}

/* One packed row from the job's row buffers; every byte is written. */
static void emit_row(const pack_job *job, uint8_t *dst)
{
    const qkc_klayout *L = job->L;
    int half = L->chunk / 2;
    memset(dst, 0, (size_t)L->row_bytes);
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        uint8_t *rec = dst + (uint64_t)c * (uint64_t)L->chunk_bytes, *codes = rec + L->code_off;
        const uint32_t *cd = job->code + c * L->chunk;
        put_field(rec + L->scale_off, L->scale, L->scale != QKC_KF_NONE ? job->scale[c] : 0);
        put_field(rec + L->min_off, L->min, L->min != QKC_KF_NONE ? job->min[c] : 0);
        put_field(rec + L->zero_off, L->zero, L->zero != QKC_KF_NONE ? (uint32_t)job->zero[c] & 0xFFFFu : 0);
        put_field(rec + L->tidx_off, L->tidx, L->tidx != QKC_KF_NONE ? job->tidx[c] : 0);
        for (int i = 0; i < L->chunk; i++) {
            switch (L->code_bits) {
            case 4:
                if (i < half)
                    codes[i] = (uint8_t)((cd[i] & 15u) | (cd[i + half] & 15u) << 4);
                break;
            case 8: codes[i] = (uint8_t)cd[i]; break;
            case 16: qkc_wr16(codes + 2 * i, (uint16_t)cd[i]); break;
            default: qkc_wr32(codes + 4 * i, cd[i]); break;
            }
        }
    }
}

/* ------------------------------------------------------------ checks */

/* L must be what qkc_klayout_for gives for the spec (compared field by
 * field: struct padding is not part of the value). */
static int same_layout(const qkc_klayout *a, const qkc_klayout *b)
{
    return a->chunk == b->chunk && a->code_bits == b->code_bits && a->decode == b->decode &&
           memcmp(a->table, b->table, sizeof a->table) == 0 && a->zero_const == b->zero_const &&
           a->scale == b->scale && a->e8m0_half == b->e8m0_half && a->e8m0_ff_is_nan == b->e8m0_ff_is_nan &&
           a->min == b->min && a->zero == b->zero && a->scale_off == b->scale_off && a->min_off == b->min_off &&
           a->zero_off == b->zero_off && a->code_off == b->code_off && a->chunk_bytes == b->chunk_bytes &&
           a->chunks_per_row == b->chunks_per_row && a->row_bytes == b->row_bytes &&
           a->perm_offset == b->perm_offset && a->permute_k == b->permute_k && a->total_bytes == b->total_bytes &&
           a->fallback == b->fallback && a->in_place == b->in_place && a->outliers == b->outliers &&
           a->outlier_cap == b->outlier_cap && a->outlier_ptr_offset == b->outlier_ptr_offset &&
           a->outlier_col_offset == b->outlier_col_offset && a->outlier_val_offset == b->outlier_val_offset &&
           a->tidx == b->tidx && a->tidx_off == b->tidx_off && a->lut_tables == b->lut_tables &&
           a->vq_dim == b->vq_dim && a->vq_entries == b->vq_entries &&
           a->table_offset == b->table_offset;
}

/* Every packed element against the reference dequantizer, bit for bit;
 * sparse outliers are added to their elements in CSR order, as the
 * reference does (the kernels add val·a instead: a difference of one
 * rounding per outlier, inside the kernel tolerance). */
static qkc_status verify_packed(pack_job *job, const qkc_spec *spec, const float *ref, const uint8_t *dst)
{
    const qkc_klayout *L = job->L;
    float *dec = qkc_alloc(job->ctx, (size_t)job->k * sizeof *dec);
    if (!dec)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack verify: no memory for a row of k=%lld", (long long)job->k);
    for (int64_t r = 0; r < job->n; r++) {
        for (int64_t j = 0; j < job->k; j++)
            dec[j] = qkc_klayout_decode_at(L, dst, r, j);
        if (L->outliers) {
            uint32_t e0 = qkc_rd32(dst + L->outlier_ptr_offset + (uint64_t)r * 4);
            uint32_t e1 = qkc_rd32(dst + L->outlier_ptr_offset + (uint64_t)r * 4 + 4);
            for (uint32_t e = e0; e < e1; e++)
                dec[qkc_rd32(dst + L->outlier_col_offset + (uint64_t)e * 4)] +=
                    qkc_f16_to_f32(qkc_rd16(dst + L->outlier_val_offset + (uint64_t)e * 2));
        }
        for (int64_t j = 0; j < job->k; j++) {
            int64_t col = job->perm ? job->perm[j] : j;
            float got = dec[j], want = ref[r * job->k + col];
            if (memcmp(&got, &want, sizeof got) != 0) {
                qkc_free(job->ctx, dec);
                return qkc_fail(job->ctx, QKC_ERR_INTERNAL,
                                "pack verify: %s (%s) row %lld column %lld%s: packed decode %.9g (0x%08x) != "
                                "reference %.9g (0x%08x)",
                                format_name(&spec->mm.w), L->description, (long long)r, (long long)col,
                                job->perm ? " (permuted)" : "", (double)got, (unsigned)qkc_f32_bits(got),
                                (double)want, (unsigned)qkc_f32_bits(want));
            }
        }
    }
    qkc_free(job->ctx, dec);
    return QKC_OK;
}

/* The whole matrix through qkc_dequantize (fallback packing, verify). */
static qkc_status dequantize_all(pack_job *job, const qkc_spec *spec, size_t src_bytes, float **out)
{
    uint64_t nk = (uint64_t)job->n * (uint64_t)job->k;
    *out = NULL;
    if (nk > SIZE_MAX / sizeof(float))
        return qkc_fail(job->ctx, QKC_ERR_LIMIT, "pack: %llu weights do not fit in memory sizes",
                        (unsigned long long)nk);
    *out = qkc_alloc(job->ctx, (size_t)nk * sizeof(float));
    if (!*out)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory to dequantize %llu weights",
                        (unsigned long long)nk);
    return qkc_dequantize(job->ctx, spec, job->src, src_bytes, *out, job->k);
}

/* Sparse outliers: the format's CSR arrays after the packed rows, checked
 * first (kernels index with them unchecked): row pointers non-decreasing
 * from 0 up to N·cap, columns inside k. Padding bytes are zero. */
static qkc_status copy_outliers(pack_job *job, uint8_t *out)
{
    const qkc_klayout *L = job->L;
    const qkc_weight_layout *wl = job->wl;
    const uint8_t *rp = job->src + wl->offset[QKC_SECTION_OUTLIERS];
    uint64_t entries = (uint64_t)job->n * (uint64_t)L->outlier_cap, start = L->row_bytes * (uint64_t)job->n;
    uint32_t prev = 0;
    if (L->permute_k)
        start = L->perm_offset + (uint64_t)job->k * 4;
    for (int64_t r = 0; r <= job->n; r++) {
        uint32_t p = qkc_rd32(rp + (uint64_t)r * 4);
        if (p < prev || p > entries || (r == 0 && p != 0))
            return qkc_fail(job->ctx, QKC_ERR_CORRUPT_DATA,
                            "pack: outlier row pointer %lld is %u (after %u; at most %llu entries)", (long long)r, p,
                            prev, (unsigned long long)entries);
        prev = p;
    }
    for (uint64_t e = 0; e < prev; e++) {
        uint32_t col = qkc_rd32(job->src + wl->outlier_col_offset + e * 4);
        if (col >= (uint64_t)job->k)
            return qkc_fail(job->ctx, QKC_ERR_CORRUPT_DATA, "pack: outlier %llu has column %u, outside k=%lld",
                            (unsigned long long)e, col, (long long)job->k);
    }
    memset(out + start, 0, (size_t)(L->total_bytes - start));
    memcpy(out + L->outlier_ptr_offset, rp, (size_t)((uint64_t)job->n + 1) * 4);
    memcpy(out + L->outlier_col_offset, job->src + wl->outlier_col_offset, (size_t)entries * 4);
    memcpy(out + L->outlier_val_offset, job->src + wl->outlier_val_offset, (size_t)entries * 2);
    return QKC_OK;
}

/* --------------------------------------------------------------- pack */

static row_reader reader_of(const qkc_format *f)
{
    switch (f->preset) {
    case QKC_PRESET_NONE: return qkc_dtype_get(f->dtype)->kind == QKC_KIND_LUT ? read_lut : read_planar;
    case QKC_PRESET_NF4_BNB: return read_bnb;
    case QKC_PRESET_GPTQ: return read_gptq;
    case QKC_PRESET_AWQ: return read_awq;
    default: return read_gguf;
    }
}

qkc_status qkc_pack_weights(qkc_context *ctx, const qkc_spec *spec, const qkc_klayout *L, const void *src,
                            size_t src_bytes, void *dst, size_t dst_bytes, int verify)
{
    pack_job job;
    qkc_klayout want;
    qkc_diag diag;
    qkc_status st;
    float *ref = NULL;
    uint8_t *out = dst;

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !L || !src || !dst)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_pack_weights: NULL argument");
    if (L->mixed)
        return qkc_pack_mixed(ctx, spec, L, src, src_bytes, dst, dst_bytes, verify);
    memset(&job, 0, sizeof job);
    job.ctx = ctx;
    job.f = &spec->mm.w;
    job.wl = &spec->layout;
    job.L = L;
    job.src = src;
    job.n = spec->mm.n;
    job.k = spec->mm.k;

    if ((st = qkc_klayout_for(job.f, job.n, job.k, &want, &diag)) != QKC_OK)
        return qkc_fail_diag(ctx, &diag);
    if (!same_layout(L, &want))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_pack_weights: the layout is not the one qkc_klayout_for gives for %s n=%lld k=%lld (%s)",
                        format_name(job.f), (long long)job.n, (long long)job.k, want.description);
    if (src_bytes < spec->layout.total)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "qkc_pack_weights: src holds %zu bytes, the %s blob needs %llu",
                        src_bytes, format_name(job.f), (unsigned long long)spec->layout.total);
    if (L->total_bytes > SIZE_MAX || dst_bytes < L->total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_pack_weights: dst holds %zu bytes, the packed %s weights need %llu", dst_bytes,
                        format_name(job.f), (unsigned long long)L->total_bytes);

    if (L->fallback) {
        /* Dense f32: the reference's own floats, rows padded with +0. */
        if ((st = dequantize_all(&job, spec, src_bytes, &ref)) != QKC_OK)
            goto done;
        for (int64_t r = 0; r < job.n; r++) {
            uint8_t *row = out + (uint64_t)r * L->row_bytes;
            memset(row, 0, (size_t)L->row_bytes);
            for (int64_t i = 0; i < job.k; i++)
                qkc_wr32(row + L->code_off + i * 4, qkc_f32_bits(ref[r * job.k + i]));
        }
        if (verify)
            st = verify_packed(&job, spec, ref, out);
        goto done;
    }

    if (job.f->preset == QKC_PRESET_GPTQ && (st = prepare_gptq(&job)) != QKC_OK)
        goto done;
    if (job.f->preset == QKC_PRESET_NF4_BNB)
        prepare_bnb(&job);

    if (L->decode == QKC_KDEC_VQ) {
        qkc_pack_vq(job.f, job.wl, L, job.n, job.k, job.src, out);
    } else if (L->in_place) {
        /* The source rows already are chunk records. */
        if (spec->layout.row_bytes != L->row_bytes) {
            st = qkc_fail(ctx, QKC_ERR_INTERNAL, "pack: %s rows are %llu bytes, the in-place layout says %llu",
                          format_name(job.f), (unsigned long long)spec->layout.row_bytes,
                          (unsigned long long)L->row_bytes);
            goto done;
        }
        memcpy(out, job.src + spec->layout.offset[QKC_SECTION_DATA], (size_t)(L->row_bytes * (uint64_t)job.n));
    } else {
        size_t chunks = (size_t)L->chunks_per_row, padded = chunks * (size_t)L->chunk;
        row_reader read = reader_of(job.f);
        job.code = qkc_calloc(ctx, padded, sizeof *job.code);
        job.scale = qkc_calloc(ctx, chunks, sizeof *job.scale);
        job.min = qkc_calloc(ctx, chunks, sizeof *job.min);
        job.zero = qkc_calloc(ctx, chunks, sizeof *job.zero);
        job.tidx = qkc_calloc(ctx, chunks, sizeof *job.tidx);
        if (!job.code || !job.scale || !job.min || !job.zero || !job.tidx) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "pack: no memory for a row of k=%lld", (long long)job.k);
            goto done;
        }
        for (int64_t r = 0; r < job.n; r++) {
            read(&job, r);
            emit_row(&job, out + (uint64_t)r * L->row_bytes);
        }
    }
    if (L->decode == QKC_KDEC_LUT)
        emit_lut_tables(&job, out);
    if (L->permute_k) {
        uint64_t rows = L->row_bytes * (uint64_t)job.n;
        memset(out + rows, 0, (size_t)(L->perm_offset - rows));
        for (int64_t j = 0; j < job.k; j++)
            qkc_wr32(out + L->perm_offset + (uint64_t)j * 4, (uint32_t)job.perm[j]);
    }
    if (L->outliers && (st = copy_outliers(&job, out)) != QKC_OK)
        goto done;
    if (verify) {
        if ((st = dequantize_all(&job, spec, src_bytes, &ref)) != QKC_OK)
            goto done;
        st = verify_packed(&job, spec, ref, out);
    }
done:
    qkc_free(ctx, ref);
    qkc_free(ctx, job.code);
    qkc_free(ctx, job.scale);
    qkc_free(ctx, job.min);
    qkc_free(ctx, job.zero);
    qkc_free(ctx, job.tidx);
    qkc_free(ctx, job.gidx);
    qkc_free(ctx, job.perm);
    return st;
}
