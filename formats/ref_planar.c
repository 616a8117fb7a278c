/*
 * The PLANAR family's codec (formats/family.h): the reference codec of
 * qkc's planar layout (format.h gives the layout and the dequantization
 * formulas), and its packer. Quantization rules, per group of a row:
 *
 * - zero=none: s = amax / qmax, where qmax is the largest code magnitude
 *   (int_max for integers, 1 for nf4, 127 for iq4nl, 6 for fp4, 448/57344
 *   for fp8); code = encode(x / s) (integers clamp, fp8/fp4 saturate).
 * - zero=int:  range [min(0, xmin), max(0, xmax)] mapped onto the codes:
 *   s = range / (int_max − int_min), z = clamp(rne(int_min − lo / s)),
 *   q = clamp(rne(x / s) + z).
 * - zero=float: d = (xmax − xmin) / (int_max − int_min), m = xmin − d·int_min,
 *   q = clamp(rne((x − m) / d)); d and m are stored in the scale dtype.
 * - e8m0 scales are powers of two: for fp4/fp8 elements the OCP MX rule
 *   2^(floor(log2 amax) − emax_elem) (elements saturate); for integer and
 *   codebook elements 2^ceil(log2(s)) so nothing clips.
 * - Double quantization: the f32 group scales of a super-group are
 *   quantized with s2 = max(s) / qmax(scale dtype) (s2 rounded to its dtype
 *   first), code = encode(s / s2); elements are then quantized against the
 *   reconstructed scale s2 · decode(code).
 * - Elements are always quantized against the scale as stored (rounded), so
 *   dequantization reproduces the quantizer's own grid.
 * - Sparse outliers: per row the `cap` largest |x| (ties: lower k first) are
 *   kept as f16 values and zeroed in the dense part before it is quantized.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "formats/family.h"
#include "formats/ref.h"

/* ---------------------------------------------------------- bit access */

static uint32_t get_bits(const uint8_t *row, int64_t k, int bits)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits, v = 0;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7), need = shift + bits;
    for (int i = 0; i * 8 < need; i++)
        v |= (uint64_t)row[byte + (size_t)i] << (8 * i);
    return (uint32_t)((v >> shift) & ((UINT64_C(1) << bits) - 1));
}

static void set_bits(uint8_t *row, int64_t k, int bits, uint32_t code)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7);
    uint64_t mask = ((UINT64_C(1) << bits) - 1) << shift;
    uint64_t v = (uint64_t)(code & ((UINT64_C(1) << bits) - 1)) << shift;
    for (int i = 0; i * 8 < shift + bits; i++) {
        uint8_t m = (uint8_t)(mask >> (8 * i));
        row[byte + (size_t)i] = (uint8_t)((row[byte + (size_t)i] & ~m) | (uint8_t)(v >> (8 * i)));
    }
}

/* A scale/zero code of 1, 2 or 4 bytes (little-endian). */
static uint32_t rd_code(const uint8_t *p, int bytes)
{
    return bytes == 1 ? p[0] : bytes == 2 ? qkc_rd16(p) : qkc_rd32(p);
}

static void wr_code(uint8_t *p, int bytes, uint32_t v)
{
    if (bytes == 1)
        p[0] = (uint8_t)v;
    else if (bytes == 2)
        qkc_wr16(p, (uint16_t)v);
    else
        qkc_wr32(p, v);
}

/* ------------------------------------------------------------- helpers */

static int is_minifloat(qkc_dtype d)
{
    return qkc_dtype_get(d)->kind == QKC_KIND_MINIFLOAT;
}

static int emax_of(qkc_dtype d)
{
    int e;
    frexpf(qkc_dtype_max_finite(d), &e);
    return e - 1;
}

/* Round a positive f32 scale to what the scale dtype stores. */
static float store_scale(qkc_dtype sd, float s)
{
    if (!(s > 0.0f) || !isfinite(s))
        return s > 0.0f ? qkc_dtype_max_finite(sd) : 0.0f;
    if (sd == QKC_DTYPE_E8M0)
        return qkc_dtype_decode(sd, qkc_dtype_encode(sd, s, 1));
    if (s > qkc_dtype_max_finite(sd))
        s = qkc_dtype_max_finite(sd);
    return qkc_dtype_round(sd, s, 1);
}

/* Round a signed f32 value (a zero=float minimum) to the scale dtype. */
static float store_signed(qkc_dtype sd, float v)
{
    float a = store_scale(sd, fabsf(v));
    return v < 0.0f ? -a : a;
}

/* The unrounded f32 scale of a group under zero=none / zero=int rules, and
 * for zero=float the step d (the minimum is handled by the caller). */
static float group_scale(const qkc_format *f, const float *x, int64_t len)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    float amax = 0.0f, lo = 0.0f, hi = 0.0f, xmin = INFINITY, xmax = -INFINITY;
    for (int64_t i = 0; i < len; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        xmin = x[i] < xmin ? x[i] : xmin;
        xmax = x[i] > xmax ? x[i] : xmax;
    }
    if (f->zero == QKC_ZERO_INT)
        return (hi - lo) / (float)(dd->int_max - dd->int_min);
    if (f->zero == QKC_ZERO_FLOAT)
        return (xmax - xmin) / (float)(dd->int_max - dd->int_min);
    if (f->scale_dtype == QKC_DTYPE_E8M0 && is_minifloat(f->dtype)) {
        int e;
        if (amax == 0.0f)
            return 0.0f;
        frexpf(amax, &e);
        return ldexpf(1.0f, e - 1 - emax_of(f->dtype));
    }
    return amax / qkc_dtype_max_finite(f->dtype);
}

/* e8m0 for integer/codebook elements rounds the scale up (no clipping). */
static float e8m0_round_up(float s)
{
    int e;
    float m;
    if (!(s > 0.0f))
        return 0.0f;
    m = frexpf(s, &e); /* s = m * 2^e, m in [0.5, 1) */
    return m == 0.5f ? s : ldexpf(1.0f, e);
}

static uint32_t encode_elem(qkc_dtype dt, float v)
{
    return qkc_dtype_encode(dt, v, 1);
}

/* ------------------------------------------------------------ quantize */

typedef struct outlier_cand {
    float mag;
    int64_t k;
} outlier_cand;

static int cand_cmp(const void *pa, const void *pb)
{
    const outlier_cand *a = pa, *b = pb;
    if (a->mag != b->mag)
        return a->mag > b->mag ? -1 : 1;
    return a->k < b->k ? -1 : a->k > b->k;
}

static int64_t sparse_row(const qkc_ref_weights *rw, float *row, outlier_cand *cand, uint8_t *blob, int64_t n,
                          uint32_t start)
{
    const qkc_weight_layout *L = rw->layout;
    int64_t cap = L->outlier_cap, k = rw->k;
    for (int64_t i = 0; i < k; i++) {
        cand[i].mag = fabsf(row[i]);
        cand[i].k = i;
    }
    qkc_sort(cand, (size_t)k, sizeof *cand, cand_cmp);
    for (int64_t j = 0; j < cap; j++) {
        int64_t col = cand[j].k;
        uint64_t e = (uint64_t)start + (uint64_t)j;
        qkc_wr32(blob + L->outlier_col_offset + e * 4, (uint32_t)col);
        qkc_wr16(blob + L->outlier_val_offset + e * 2, qkc_f32_to_f16(row[col]));
        row[col] = 0.0f;
    }
    (void)n;
    return cap;
}

qkc_status qkc_ref_planar_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    int64_t n = rw->n, k = rw->k;
    int64_t G = f->granularity == QKC_GRAN_GROUP ? f->group : k;
    int64_t groups = L->groups_per_row;
    int sb = qkc_dtype_storage_bytes(f->scale_dtype);
    int s2b = f->scale2_dtype ? qkc_dtype_storage_bytes(f->scale2_dtype) : 0;
    float *row = NULL, *gscale = NULL;
    outlier_cand *cand = NULL;
    qkc_status st = QKC_OK;

    row = qkc_alloc(rw->ctx, (size_t)k * sizeof *row);
    gscale = qkc_alloc(rw->ctx, (size_t)groups * sizeof *gscale);
    if (f->outliers == QKC_OUTLIERS_SPARSE)
        cand = qkc_alloc(rw->ctx, (size_t)k * sizeof *cand);
    if (!row || !gscale || (f->outliers == QKC_OUTLIERS_SPARSE && !cand)) {
        st = qkc_fail(rw->ctx, QKC_ERR_NO_MEMORY, "quantize: out of memory for a %lld-weight row", (long long)k);
        goto done;
    }

    /* Dense float weights: a plain conversion. */
    if (f->granularity == QKC_GRAN_NONE) {
        int eb = dd->bits / 8;
        for (int64_t r = 0; r < n; r++)
            for (int64_t i = 0; i < k; i++)
                wr_code(blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes + (uint64_t)i * (uint64_t)eb,
                        eb, qkc_dtype_encode(f->dtype, w[r * ldw + i], 0));
        goto done;
    }

    /* Tensor granularity: one scale for the whole matrix, from all rows. */
    float tensor_scale = 0.0f, tensor_zero = 0.0f, tensor_lo = 0.0f;
    if (f->granularity == QKC_GRAN_TENSOR) {
        float lo = 0, hi = 0, amax = 0, xmin = INFINITY, xmax = -INFINITY;
        for (int64_t r = 0; r < n; r++)
            for (int64_t i = 0; i < k; i++) {
                float x = w[r * ldw + i];
                amax = fmaxf(amax, fabsf(x));
                lo = fminf(lo, x), hi = fmaxf(hi, x);
                xmin = fminf(xmin, x), xmax = fmaxf(xmax, x);
            }
        /* Reuse group_scale's rules on a two-point summary of the matrix. */
        float summary[2];
        if (f->zero == QKC_ZERO_FLOAT)
            summary[0] = xmin, summary[1] = xmax;
        else if (f->zero == QKC_ZERO_INT)
            summary[0] = lo, summary[1] = hi;
        else
            summary[0] = 0.0f, summary[1] = amax;
        tensor_scale = group_scale(f, summary, 2);
        tensor_zero = xmin;
        tensor_lo = lo;
    }

    uint32_t next_outlier = 0;
    for (int64_t r = 0; r < n; r++) {
        memcpy(row, w + r * ldw, (size_t)k * sizeof *row);
        if (f->outliers == QKC_OUTLIERS_SPARSE) {
            qkc_wr32(blob + L->offset[QKC_SECTION_OUTLIERS] + (uint64_t)r * 4, next_outlier);
            next_outlier += (uint32_t)sparse_row(rw, row, cand, blob, r, next_outlier);
            if (r == n - 1)
                qkc_wr32(blob + L->offset[QKC_SECTION_OUTLIERS] + (uint64_t)n * 4, next_outlier);
        }
        /* 1. unrounded f32 scales of every group of the row */
        for (int64_t g = 0; g < groups; g++) {
            int64_t k0 = g * G, len = (k0 + G <= k ? G : k - k0);
            gscale[g] = f->granularity == QKC_GRAN_TENSOR ? tensor_scale : group_scale(f, row + k0, len);
        }
        /* 2. stored scales (single level or double quantized) */
        if (f->scale2_dtype != QKC_DTYPE_INVALID) {
            int64_t S = f->super_group;
            float qmax = qkc_dtype_max_finite(f->scale_dtype);
            for (int64_t s0 = 0; s0 < groups; s0 += S) {
                int64_t s1 = s0 + S < groups ? s0 + S : groups;
                float smax = 0.0f, s2;
                for (int64_t g = s0; g < s1; g++)
                    smax = fmaxf(smax, gscale[g]);
                s2 = store_scale(f->scale2_dtype, smax / qmax);
                wr_code(blob + L->offset[QKC_SECTION_SCALES2] + ((uint64_t)r * (uint64_t)((groups + S - 1) / S) + (uint64_t)(s0 / S)) * (uint64_t)s2b,
                        s2b, qkc_dtype_encode(f->scale2_dtype, s2, 0));
                for (int64_t g = s0; g < s1; g++) {
                    uint32_t code = s2 > 0.0f ? qkc_dtype_encode(f->scale_dtype, gscale[g] / s2, 1)
                                              : qkc_dtype_encode(f->scale_dtype, 0.0f, 1);
                    wr_code(blob + L->offset[QKC_SECTION_SCALES] + ((uint64_t)r * (uint64_t)groups + (uint64_t)g) * (uint64_t)sb,
                            sb, code);
                    gscale[g] = s2 * qkc_dtype_decode(f->scale_dtype, code);
                }
            }
        } else {
            for (int64_t g = 0; g < groups; g++) {
                float s = gscale[g];
                if (f->scale_dtype == QKC_DTYPE_E8M0 && !is_minifloat(f->dtype))
                    s = e8m0_round_up(s);
                gscale[g] = store_scale(f->scale_dtype, s);
                uint64_t si = f->granularity == QKC_GRAN_TENSOR ? 0 : (uint64_t)r * (uint64_t)groups + (uint64_t)g;
                wr_code(blob + L->offset[QKC_SECTION_SCALES] + si * (uint64_t)sb, sb, qkc_dtype_encode(f->scale_dtype, gscale[g], 1));
            }
        }
        /* 3. zero points and element codes */
        uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
        for (int64_t g = 0; g < groups; g++) {
            int64_t k0 = g * G, len = (k0 + G <= k ? G : k - k0);
            float s = gscale[g];
            uint64_t zi = f->granularity == QKC_GRAN_TENSOR ? 0 : (uint64_t)r * (uint64_t)groups + (uint64_t)g;
            int write_zero = f->granularity != QKC_GRAN_TENSOR || r == 0;
            if (f->zero == QKC_ZERO_INT) {
                float lo = f->granularity == QKC_GRAN_TENSOR ? tensor_lo : 0.0f;
                int64_t z;
                if (f->granularity != QKC_GRAN_TENSOR)
                    for (int64_t i = 0; i < len; i++)
                        lo = fminf(lo, row[k0 + i]);
                z = s > 0.0f ? (int64_t)qkc_round_even((double)dd->int_min - (double)(lo / s)) : 0;
                z = z < dd->int_min ? dd->int_min : z > dd->int_max ? dd->int_max : z;
                if (write_zero)
                    blob[L->offset[QKC_SECTION_ZEROS] + zi] = (uint8_t)((uint64_t)z & ((UINT64_C(1) << dd->bits) - 1));
                for (int64_t i = 0; i < len; i++) {
                    int64_t q = s > 0.0f ? (int64_t)qkc_round_even((double)(row[k0 + i] / s)) + z : z;
                    q = q < dd->int_min ? dd->int_min : q > dd->int_max ? dd->int_max : q;
                    set_bits(drow, k0 + i, dd->bits, (uint32_t)((uint64_t)q & ((UINT64_C(1) << dd->bits) - 1)));
                }
            } else if (f->zero == QKC_ZERO_FLOAT) {
                float xmin;
                if (f->granularity == QKC_GRAN_TENSOR) {
                    xmin = tensor_zero;
                } else {
                    xmin = INFINITY;
                    for (int64_t i = 0; i < len; i++)
                        xmin = fminf(xmin, row[k0 + i]);
                }
                float m = store_signed(f->scale_dtype, xmin - s * (float)dd->int_min);
                if (write_zero)
                    wr_code(blob + L->offset[QKC_SECTION_ZEROS] + zi * (uint64_t)sb, sb,
                            qkc_dtype_encode(f->scale_dtype, m, 1));
                for (int64_t i = 0; i < len; i++) {
                    int64_t q = s > 0.0f ? (int64_t)qkc_round_even((double)((row[k0 + i] - m) / s)) : dd->int_min;
                    q = q < dd->int_min ? dd->int_min : q > dd->int_max ? dd->int_max : q;
                    set_bits(drow, k0 + i, dd->bits, (uint32_t)((uint64_t)q & ((UINT64_C(1) << dd->bits) - 1)));
                }
            } else {
                for (int64_t i = 0; i < len; i++)
                    set_bits(drow, k0 + i, dd->bits, encode_elem(f->dtype, s > 0.0f ? row[k0 + i] / s : 0.0f));
            }
        }
    }
done:
    qkc_free(rw->ctx, row);
    qkc_free(rw->ctx, gscale);
    qkc_free(rw->ctx, cand);
    return st;
}

/* ---------------------------------------------------------- dequantize */

qkc_status qkc_ref_planar_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    int64_t n = rw->n, k = rw->k;
    int64_t G = f->granularity == QKC_GRAN_GROUP ? f->group : k;
    int64_t groups = L->groups_per_row;
    int sb = qkc_dtype_storage_bytes(f->scale_dtype);
    int s2b = f->scale2_dtype ? qkc_dtype_storage_bytes(f->scale2_dtype) : 0;

    for (int64_t r = 0; r < n; r++) {
        const uint8_t *drow = blob + L->offset[QKC_SECTION_DATA] + (uint64_t)r * L->row_bytes;
        float *out = w + r * ldw;
        if (f->granularity == QKC_GRAN_NONE) {
            int eb = dd->bits / 8;
            for (int64_t i = 0; i < k; i++)
                out[i] = qkc_dtype_decode(f->dtype, rd_code(drow + (uint64_t)i * (uint64_t)eb, eb));
            continue;
        }
        for (int64_t g = 0; g < groups; g++) {
            int64_t k0 = g * G, len = (k0 + G <= k ? G : k - k0);
            uint64_t si = f->granularity == QKC_GRAN_TENSOR ? 0 : (uint64_t)r * (uint64_t)groups + (uint64_t)g;
            float s = qkc_dtype_decode(f->scale_dtype, rd_code(blob + L->offset[QKC_SECTION_SCALES] + si * (uint64_t)sb, sb));
            if (f->scale2_dtype != QKC_DTYPE_INVALID) {
                uint64_t per_row = (uint64_t)((groups + f->super_group - 1) / f->super_group);
                uint64_t i2 = (uint64_t)r * per_row + (uint64_t)(g / f->super_group);
                float s2 = qkc_dtype_decode(f->scale2_dtype,
                                            rd_code(blob + L->offset[QKC_SECTION_SCALES2] + i2 * (uint64_t)s2b, s2b));
                s = s2 * s;
            }
            if (f->zero == QKC_ZERO_INT) {
                int64_t z = (int64_t)qkc_dtype_decode(f->dtype, blob[L->offset[QKC_SECTION_ZEROS] + si]);
                for (int64_t i = 0; i < len; i++) {
                    int64_t q = (int64_t)qkc_dtype_decode(f->dtype, get_bits(drow, k0 + i, dd->bits));
                    out[k0 + i] = (float)(q - z) * s;
                }
            } else if (f->zero == QKC_ZERO_FLOAT) {
                float m = qkc_dtype_decode(f->scale_dtype, rd_code(blob + L->offset[QKC_SECTION_ZEROS] + si * (uint64_t)sb, sb));
                for (int64_t i = 0; i < len; i++) {
                    float q = qkc_dtype_decode(f->dtype, get_bits(drow, k0 + i, dd->bits));
                    float t = q * s;
                    out[k0 + i] = t + m;
                }
            } else {
                for (int64_t i = 0; i < len; i++)
                    out[k0 + i] = qkc_dtype_decode(f->dtype, get_bits(drow, k0 + i, dd->bits)) * s;
            }
        }
        if (f->outliers == QKC_OUTLIERS_SPARSE) {
            const uint8_t *rp = blob + L->offset[QKC_SECTION_OUTLIERS];
            uint32_t b = qkc_rd32(rp + (uint64_t)r * 4), e = qkc_rd32(rp + (uint64_t)(r + 1) * 4);
            uint64_t total = (uint64_t)n * (uint64_t)L->outlier_cap;
            if (b > e || e > total)
                return qkc_fail(rw->ctx, QKC_ERR_CORRUPT_DATA,
                                "dequantize: outlier row pointers of row %lld are out of range (%u..%u of %llu)",
                                (long long)r, b, e, (unsigned long long)total);
            for (uint32_t j = b; j < e; j++) {
                uint32_t col = qkc_rd32(blob + L->outlier_col_offset + (uint64_t)j * 4);
                if (col >= (uint64_t)k)
                    return qkc_fail(rw->ctx, QKC_ERR_CORRUPT_DATA,
                                    "dequantize: outlier column %u of row %lld is outside k=%lld", col, (long long)r,
                                    (long long)k);
                out[col] += qkc_f16_to_f32(qkc_rd16(blob + L->outlier_val_offset + (uint64_t)j * 2));
            }
        }
    }
    return QKC_OK;
}

/* ------------------------------------------------------------ packing */

/* One row in the kernel layout's terms: codes (signed ones as offset
 * binary) or dense bits, and each chunk's scale (double-quantized scales
 * resolved as the reference computes s2 · decode(code)), min or zero. */
static void read_planar(qkc_pack_job *job, int64_t r)
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
            uint32_t raw = qkc_pack_rd(drow + (uint64_t)i * (uint64_t)eb, eb);
            /* tf32 decodes with the low 13 bits cleared, whatever is stored */
            job->code[i] = f->dtype == QKC_DTYPE_TF32 ? raw & ~0x1FFFu : raw;
        }
        return;
    }

    /* Signed integers become offset binary: (q + 2^(b−1)) mod 2^b flips the
     * sign bit of the two's complement code. */
    uint32_t flip = dd->kind == QKC_KIND_INT && dd->is_signed ? 1u << (dd->bits - 1) : 0u;
    for (int64_t i = 0; i < k; i++)
        job->code[i] = qkc_pack_planar_code(drow, i, dd->bits) ^ flip;

    int64_t G = f->granularity == QKC_GRAN_GROUP ? f->group : k;
    int64_t groups = wl->groups_per_row;
    int sb = qkc_dtype_storage_bytes(f->scale_dtype);
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        int64_t g = c * L->chunk / G;
        uint64_t si = f->granularity == QKC_GRAN_TENSOR ? 0 : (uint64_t)r * (uint64_t)groups + (uint64_t)g;
        uint32_t raw = qkc_pack_rd(job->src + wl->offset[QKC_SECTION_SCALES] + si * (uint64_t)sb, sb);
        if (f->scale2_dtype != QKC_DTYPE_INVALID) {
            int s2b = qkc_dtype_storage_bytes(f->scale2_dtype);
            uint64_t per_row = (uint64_t)((groups + f->super_group - 1) / f->super_group);
            uint64_t i2 = (uint64_t)r * per_row + (uint64_t)(g / f->super_group);
            float s = qkc_dtype_decode(f->scale_dtype, raw);
            float s2 = qkc_dtype_decode(f->scale2_dtype,
                                        qkc_pack_rd(job->src + wl->offset[QKC_SECTION_SCALES2] + i2 * (uint64_t)s2b, s2b));
            s = s2 * s; /* the reference's operation, operands in its order */
            job->scale[c] = qkc_f32_bits(s);
        } else {
            job->scale[c] = f->scale_dtype == QKC_DTYPE_BF16 ? raw << 16 : raw;
        }
        if (f->zero == QKC_ZERO_INT) {
            job->zero[c] = (int32_t)qkc_dtype_decode(f->dtype, job->src[wl->offset[QKC_SECTION_ZEROS] + si]);
        } else if (f->zero == QKC_ZERO_FLOAT) {
            uint32_t m = qkc_pack_rd(job->src + wl->offset[QKC_SECTION_ZEROS] + si * (uint64_t)sb, sb);
            job->min[c] = f->scale_dtype == QKC_DTYPE_BF16 ? m << 16 : m;
        }
    }
}

static qkc_status planar_pack(qkc_pack_job *job, uint8_t *out)
{
    return qkc_pack_rows(job, out, read_planar);
}

const qkc_family_codec qkc_family_planar_codec = {
    .name = "planar",
    .quantize = qkc_ref_planar_quantize,
    .dequantize = qkc_ref_planar_dequantize,
    .pack = planar_pack,
};
