/*
 * The GGUF family's codec (formats/family.h): reference codecs of the GGUF
 * block presets (q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k iq4_nl iq4_xs mxfp4) and
 * of qkc's mxfp8 block layout, and the packer of their kernel layouts
 * (ir/fam_gguf.c) for the types not already in place.
 *
 * The dequantizers restate ggml's dequantize_row_* (formats.md §2) with the
 * same arithmetic order, so under -ffp-contract=off they are bit-identical
 * to ggml. The quantizers restate ggml's quantize_row_*_ref: the rounding
 * idioms (truncating casts, roundf, nearest_int's magic add), the scan
 * orders and the float expression trees are kept as ggml writes them,
 * because any change of evaluation order changes bytes. mxfp8 is qkc's own
 * layout and follows the OCP MX scale rule (formats.md §5.3).
 *
 * Where ggml relies on behaviour C leaves undefined (out-of-range float to
 * integer casts, which only non-finite or subnormal-scale inputs reach), the
 * helpers below give the result x86-64 gives, so finite inputs never hit
 * undefined behaviour and ordinary inputs produce ggml's bytes.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/context.h"
#include "formats/family.h"
#include "formats/ref.h"

#define QK 32     /* elements of a legacy / iq4_nl / mx block */
#define QK_K 256  /* elements of a K-quant super-block */
#define GROUP_MAX_EPS 1e-15f

/* ------------------------------------------------------------- helpers */

static float rd_f16(const uint8_t *p)
{
    return qkc_f16_to_f32(qkc_rd16(p));
}

static void wr_f16(uint8_t *p, float f)
{
    qkc_wr16(p, qkc_f32_to_f16(f));
}

static int8_t as_i8(uint8_t v)
{
    return (int8_t)(v >= 128 ? (int)v - 256 : (int)v);
}

/* C's (int8_t)f / (uint8_t)f on a float, as x86-64 evaluates it: truncate to
 * int32 (cvttss2si; out of range or NaN gives INT32_MIN) and keep the low
 * byte. In range this is plain truncation toward zero. */
static uint8_t trunc_byte(float f)
{
    if (!(f > -2147483648.0f && f < 2147483648.0f))
        return 0; /* low byte of INT32_MIN */
    return (uint8_t)(uint32_t)(int32_t)f;
}

static int trunc_i8(float f)
{
    return as_i8(trunc_byte(f));
}

/* ggml nearest_int: round half to even by adding 1.5·2^23 and reading the
 * mantissa. Exact for |f| <= 4194303; outside that it returns garbage, as
 * ggml does, but never invokes undefined behaviour. */
static int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Signed element of largest magnitude; the first one wins ties (strict <). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    float lo = 3.40282347e38f, hi = -3.40282347e38f;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo)
            lo = x[j];
        if (x[j] > hi)
            hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* ------------------------------------------------------ legacy formats */

static void quant_q4_0(const float *x, uint8_t *b)
{
    const float d = signed_absmax(x, QK) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < QK / 2; j++) {
        /* (int8_t)(v + 8.5f) truncates, i.e. rounds half up */
        uint8_t q0 = (uint8_t)imin(15, trunc_i8(x[j] * id + 8.5f));
        uint8_t q1 = (uint8_t)imin(15, trunc_i8(x[j + QK / 2] * id + 8.5f));
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q4_1(const float *x, uint8_t *b)
{
    float mn, mx;
    min_max(x, QK, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    for (int j = 0; j < QK / 2; j++) {
        uint8_t q0 = (uint8_t)imin(15, trunc_i8((x[j] - mn) * id + 0.5f));
        uint8_t q1 = (uint8_t)imin(15, trunc_i8((x[j + QK / 2] - mn) * id + 0.5f));
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q5_0(const float *x, uint8_t *b)
{
    const float d = signed_absmax(x, QK) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_f16(b, d);
    for (int j = 0; j < QK / 2; j++) {
        uint8_t q0 = (uint8_t)imin(31, trunc_i8(x[j] * id + 16.5f));
        uint8_t q1 = (uint8_t)imin(31, trunc_i8(x[j + QK / 2] * id + 16.5f));
        b[6 + j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
        qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + QK / 2);
    }
    qkc_wr32(b + 2, qh);
}

static void quant_q5_1(const float *x, uint8_t *b)
{
    float mn, mx;
    min_max(x, QK, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    for (int j = 0; j < QK / 2; j++) {
        /* no clamp here in ggml: (uint8_t)(v + 0.5f) */
        uint8_t q0 = trunc_byte((x[j] - mn) * id + 0.5f);
        uint8_t q1 = trunc_byte((x[j + QK / 2] - mn) * id + 0.5f);
        b[8 + j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
        qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + QK / 2);
    }
    qkc_wr32(b + 4, qh);
}

static void quant_q8_0(const float *x, uint8_t *b)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < QK; j++)
        b[2 + j] = trunc_byte(roundf(x[j] * id)); /* roundf: half away from zero */
}

static void dequant_q4_0(const uint8_t *b, float *y)
{
    const float d = rd_f16(b);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((b[2 + j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

static void dequant_q4_1(const uint8_t *b, float *y)
{
    const float d = rd_f16(b), m = rd_f16(b + 2);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)(b[4 + j] & 0x0F) * d + m;
        y[j + QK / 2] = (float)(b[4 + j] >> 4) * d + m;
    }
}

static void dequant_q5_0(const uint8_t *b, float *y)
{
    const float d = rd_f16(b);
    const uint32_t qh = qkc_rd32(b + 2);
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4, h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)(((b[6 + j] & 0x0F) | h0) - 16) * d;
        y[j + QK / 2] = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
    }
}

static void dequant_q5_1(const uint8_t *b, float *y)
{
    const float d = rd_f16(b), m = rd_f16(b + 2);
    const uint32_t qh = qkc_rd32(b + 4);
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4, h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)((b[8 + j] & 0x0F) | h0) * d + m;
        y[j + QK / 2] = (float)((b[8 + j] >> 4) | h1) * d + m;
    }
}

static void dequant_q8_0(const uint8_t *b, float *y)
{
    const float d = rd_f16(b);
    for (int j = 0; j < QK; j++)
        y[j] = (float)as_i8(b[2 + j]) * d;
}

/* ------------------------------------------------------------ K-quants */

/* ggml make_qkx2_quants with use_mad = false: an asymmetric nmax-level fit
 * of x (weights w) searching nstep+1 candidate scales around nmax/(max-min),
 * each refined by weighted least squares for (scale, min). Returns the
 * scale, stores -min (>= 0) in *the_min and the levels in L. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += w[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ggml make_qx_quants with rmse_type = 1 and no importance weights: a
 * symmetric fit to levels -nmax..nmax-1 (stored in L as l + nmax) weighted
 * by x², trying 19 scales around -nmax/max. Returns the scale. */
static float make_qx_quants_rmse1(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* 6-bit scale and min of sub-block j from the 12 packed bytes (§2.10). */
static void get_scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The part q4_k and q5_k share: fit each 32-element sub-block, quantize the
 * eight scales and mins to 6 bits under fp16 d and dmin (header bytes 0..15
 * of the block), then requantize every element against the rounded scales.
 * Sub-blocks whose rounded scale is 0 keep the levels of the first fit. */
static void quant_k_asym(const float *x, uint8_t *b, int nmax, float rmin, float rdelta, int nstep,
                         uint8_t L[QK_K])
{
    uint8_t Laux[32];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    uint8_t *s = b + 4;

    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] = make_qkx2_quants(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        /* ggml stores nearest_int into a uint8_t before clamping */
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0x0F) | ((lm & 0x0F) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    wr_f16(b, max_scale / 63.f);
    wr_f16(b + 2, max_min / 63.f);

    const float d_all = rd_f16(b), dmin_all = rd_f16(b + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, s, &sc, &m);
        const float d = d_all * sc;
        if (d == 0.0f)
            continue;
        const float dm = dmin_all * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quant_q4_k(const float *x, uint8_t *b)
{
    uint8_t L[QK_K];
    quant_k_asym(x, b, 15, -1.0f, 0.1f, 20, L);
    uint8_t *q = b + 16;
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

static void quant_q5_k(const float *x, uint8_t *b)
{
    uint8_t L[QK_K];
    quant_k_asym(x, b, 31, -0.5f, 0.1f, 15, L);
    uint8_t *qh = b + 16, *ql = b + 48;
    uint8_t m1 = 1, m2 = 2;
    memset(qh, 0, 32);
    for (int n = 0; n < QK_K; n += 64) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

static void quant_q6_k(const float *x, uint8_t *b)
{
    int8_t L[QK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    uint8_t *ql = b, *qh = b + 128, *sc = b + 192;

    for (int ib = 0; ib < 16; ib++) {
        const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
        scales[ib] = scale;
        if (fabsf(scale) > max_abs_scale) {
            max_abs_scale = fabsf(scale);
            max_scale = scale;
        }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        memset(b, 0, 210); /* includes d = fp16(0) */
        return;
    }
    const float iscale = -128.f / max_scale;
    wr_f16(b + 208, 1 / iscale);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (uint8_t)imin(127, nearest_int(iscale * scales[ib])); /* int8 two's complement */
    const float d_all = rd_f16(b + 208);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)as_i8(sc[j]);
        if (d == 0.0f)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = imax(-32, imin(31, nearest_int(x[16 * j + ii] / d)));
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            const int a = L[j + l], c = L[j + l + 32], e = L[j + l + 64], g = L[j + l + 96];
            ql[l] = (uint8_t)((a & 0xF) | ((e & 0xF) << 4));
            ql[l + 32] = (uint8_t)((c & 0xF) | ((g & 0xF) << 4));
            qh[l] = (uint8_t)((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((g >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

static void dequant_q4_k(const uint8_t *b, float *y)
{
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, m;
        get_scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++)
            y[64 * c + l] = d1 * (float)(q[32 * c + l] & 0x0F) - m1;
        for (int l = 0; l < 32; l++)
            y[64 * c + 32 + l] = d2 * (float)(q[32 * c + l] >> 4) - m2;
    }
}

static void dequant_q5_k(const uint8_t *b, float *y)
{
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *ql = b + 48;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, m;
        get_scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) {
            int q = (ql[32 * c + l] & 0x0F) + (((qh[l] >> (2 * c)) & 1) << 4);
            y[64 * c + l] = d1 * (float)q - m1;
        }
        for (int l = 0; l < 32; l++) {
            int q = (ql[32 * c + l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) << 4);
            y[64 * c + 32 + l] = d2 * (float)q - m2;
        }
    }
}

static void dequant_q6_k(const uint8_t *b, float *y)
{
    const float d = rd_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h, *sc = b + 192 + 8 * h;
        float *yh = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            yh[l] = d * (float)as_i8(sc[is]) * (float)q1;
            yh[l + 32] = d * (float)as_i8(sc[is + 2]) * (float)q2;
            yh[l + 64] = d * (float)as_i8(sc[is + 4]) * (float)q3;
            yh[l + 96] = d * (float)as_i8(sc[is + 6]) * (float)q4;
        }
    }
}

/* -------------------------------------------------------------- iq4_nl */

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

/* ggml best_index_int8: nearest table entry by bisection; an exact tie goes
 * to the higher index, values outside the table to its ends. */
static int best_index_int8(const int8_t *val, float x)
{
    if (x <= val[0])
        return 0;
    if (x >= val[15])
        return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* The scale of one 32-weight block as ggml's quantize_row_iq4_nl_impl
 * chooses it without an importance matrix (weights x²): codes from
 * d0 = max/-127 (ntry < 0) or -max/-127 (ntry > 0), a least-squares solve
 * for d, then, for itry = -ntry..ntry, the codes of the inverse scale
 * (itry - 127)/max and their solve, kept when it fits better. iq4_nl's
 * reference quantizer runs it with ntry = -1 (no search), iq4_xs's with
 * ntry = 7. L receives the codes of the first pass. 0 for a block whose
 * largest magnitude is below GROUP_MAX_EPS. */
static float iq4_block_scale(const float *x, uint8_t *L, int ntry)
{
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0;
    float d = ntry > 0 ? -max / kvalues_iq4nl[0] : max / kvalues_iq4nl[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < QK; j++) {
        int l = best_index_int8(kvalues_iq4nl, id * x[j]);
        L[j] = (uint8_t)l;
        const float q = kvalues_iq4nl[l];
        const float w = x[j] * x[j];
        sumqx += w * q * x[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (float)(itry + kvalues_iq4nl[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < QK; j++) {
            const float q = kvalues_iq4nl[best_index_int8(kvalues_iq4nl, id * x[j])];
            const float w = x[j] * x[j];
            sumqx += w * q * x[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* ggml quantize_row_iq4_nl_ref: one block, d = iq4_block_scale with
 * ntry = -1, the codes of its first pass. */
static void quant_iq4_nl(const float *x, uint8_t *b)
{
    uint8_t L[QK];
    float d = iq4_block_scale(x, L, -1);
    if (d == 0) {
        /* ggml writes d = 0 and packs whatever its level buffer held (stale
         * or uninitialised); qkc packs index 8 (value +1) so the block is
         * deterministic and decodes to +0. */
        wr_f16(b, 0.0f);
        memset(b + 2, 0x88, 16);
        return;
    }
    wr_f16(b, d);
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

static void dequant_iq4_nl(const uint8_t *b, float *y)
{
    const float d = rd_f16(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kvalues_iq4nl[b[2 + j] & 0x0F];
        y[j + 16] = d * (float)kvalues_iq4nl[b[2 + j] >> 4];
    }
}

/* -------------------------------------------------------------- iq4_xs */

/* IQ4_XS (formats.md §2.15): 256 weights, 136 bytes: d f16, scales_h
 * uint16, scales_l[4], qs[128]; eight 32-weight sub-blocks with 6-bit
 * scales ls, dl = d·(ls − 32), x = dl·kvalues_iq4nl[q]. */
static int iq4_xs_ls(const uint8_t *b, int ib)
{
    return ((b[4 + ib / 2] >> 4 * (ib % 2)) & 15) | (((qkc_rd16(b + 2) >> 2 * ib) & 3) << 4);
}

/* ggml quantize_row_iq4_xs_ref (quantize_iq4_xs without an importance
 * matrix: quantize_row_iq4_nl_impl over 256 with ntry = 7): each
 * sub-block's scale by iq4_block_scale; d = −max/32 for
 * the scale of largest magnitude; each 6-bit scale nearest_int(scale/d)
 * clamped to −32..31; the codes again from x / (d·l). */
/* ---------------------------------------------------------------- TQ2_0 */

/* lroundf(v) + 1 with its two low bits kept, as ggml makes a ternary code
 * (−1, 0, +1 → 0, 1, 2); NaN and values past a long as x86-64's lroundf
 * gives them (LONG_MIN: code 1). */
static uint32_t ternary_code(float v)
{
    long r = (isnan(v) || fabsf(v) >= 0x1p62f) ? LONG_MIN : lroundf(v);
    return (uint32_t)(((unsigned long)r + 1u) & 3u);
}

/* The ternary types' block scale: d = max |x| (NaN as ggml's MAX passes
 * it on), and the inverse the codes are rounded with. */
static float ternary_scale(const float *x, float *id)
{
    float amax = 0.0f;
    for (int j = 0; j < QK_K; j++)
        amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    *id = amax != 0.0f ? 1.0f / amax : 0.0f;
    return amax;
}

/* ggml quantize_row_tq2_0_ref: d = amax, codes round(x/d) + 1; byte m of
 * half h (32 bytes each) holds elements 128h + 32n + m at bits 2n; d (f16)
 * after the 64 code bytes. */
static void quant_tq2_0(const float *x, uint8_t *b)
{
    float id;
    const float d = ternary_scale(x, &id);
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 32; m++) {
            uint32_t q = 0;
            for (int n = 0; n < 4; n++)
                q += ternary_code(x[128 * h + 32 * n + m] * id) << (2 * n);
            b[32 * h + m] = (uint8_t)q;
        }
    wr_f16(b + 64, d);
}

static void dequant_tq2_0(const uint8_t *b, float *y)
{
    const float d = rd_f16(b + 64);
    for (int h = 0; h < 2; h++)
        for (int n = 0; n < 4; n++)
            for (int m = 0; m < 32; m++)
                y[128 * h + 32 * n + m] = (float)((int)((b[32 * h + m] >> (2 * n)) & 3) - 1) * d;
}


/* ---------------------------------------------------------------- TQ1_0 */

/* lroundf(v) + 1 as ggml's TQ1_0 quantizer adds it into a byte (no mask):
 * its low byte; NaN and values past a long as x86-64's lroundf gives them. */
static uint32_t ternary_raw(float v)
{
    long r = (isnan(v) || fabsf(v) >= 0x1p62f) ? LONG_MIN : lroundf(v);
    return (uint32_t)(((unsigned long)r + 1u) & 255u);
}

/* Five (or four) trits, first most significant, as a byte: ceil(q·256/243). */
static uint8_t trit_byte(const float *x, int stride, int count, float id)
{
    uint32_t q = 0;
    for (int n = 0; n < count; n++)
        q = (q * 3 + ternary_raw(x[n * stride] * id)) & 255u;
    if (count == 4)
        q = (q * 3) & 255u;
    return (uint8_t)((q * 256 + 242) / 243);
}

/* The trit of byte q at position n (0: most significant), as ggml reads
 * it: the byte times 3^n (mod 256), times 3, over 256. */
static int trit_at(uint8_t q, int n)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (int)(((uint32_t)(uint8_t)(q * pow3[n]) * 3) >> 8);
}

/* ggml quantize_row_tq1_0_ref: d = max |x|; 48 bytes of five trits
 * (elements 0..159 as qs[m] = trits of m + 32n, n = 0..4; 160..239 as
 * qs[32 + m] = trits of 160 + m + 16n), 4 bytes of four trits (240..255:
 * qh[j] = trits of 240 + j + 4n), then d (f16). */
static void quant_tq1_0(const float *x, uint8_t *b)
{
    float id;
    const float d = ternary_scale(x, &id);
    for (int m = 0; m < 32; m++)
        b[m] = trit_byte(x + m, 32, 5, id);
    for (int m = 0; m < 16; m++)
        b[32 + m] = trit_byte(x + 160 + m, 16, 5, id);
    for (int j = 0; j < 4; j++)
        b[48 + j] = trit_byte(x + 240 + j, 4, 4, id);
    wr_f16(b + 52, d);
}

/* The 256 codes (trits 0..2) of a TQ1_0 block, in element order. */
static void tq1_codes(const uint8_t *b, uint32_t *q)
{
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++)
            q[32 * n + m] = (uint32_t)trit_at(b[m], n);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++)
            q[160 + 16 * n + m] = (uint32_t)trit_at(b[32 + m], n);
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++)
            q[240 + 4 * n + j] = (uint32_t)trit_at(b[48 + j], n);
}

static void dequant_tq1_0(const uint8_t *b, float *y)
{
    uint32_t q[QK_K];
    const float d = rd_f16(b + 52);
    tq1_codes(b, q);
    for (int i = 0; i < QK_K; i++)
        y[i] = (float)((int)q[i] - 1) * d;
}


/* ----------------------------------------------------------------- Q3_K */

/* ggml's block_q3_K (110 bytes): hmask[32] at 0, qs[64] at 32, scales[12]
 * at 96, d (f16) at 108. Element e: half hh = e / 128, group j = (e % 128)
 * / 32, r = e % 32; low bits (qs[32·hh + r] >> 2j) & 3, minus 4 unless bit
 * 4·hh + j of hmask[r] is set; sub-block scale 8·hh + 2j + (r >= 16), a
 * 6-bit value (low 4 bits: scales[s] & 15 for s < 8, scales[s − 8] >> 4
 * after; high 2: scales[8 + s % 4] >> 2·(s / 4)) minus 32;
 * y = (d · (sc − 32)) · q, as ggml's dequantize_row_q3_K computes it. */
static int q3k_scale(const uint8_t *b, int s)
{
    const uint8_t *sc = b + 96;
    int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4, hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* The code of element e as 0..7 (q + 4). */
static int q3k_code(const uint8_t *b, int e)
{
    const int hh = e / 128, j = (e % 128) / 32, r = e % 32;
    return ((b[32 + 32 * hh + r] >> (2 * j)) & 3) | ((b[r] >> (4 * hh + j)) & 1) << 2;
}

static void dequant_q3_k(const uint8_t *b, float *y)
{
    const float d = rd_f16(b + 108);
    for (int e = 0; e < QK_K; e++) {
        const int s = 8 * (e / 128) + 2 * ((e % 128) / 32) + (e % 32 >= 16);
        y[e] = (d * (float)q3k_scale(b, s)) * (float)(q3k_code(b, e) - 4);
    }
}

/* Round to nearest, clamped to lo .. hi (NaN: 0). */
static int rtn_clamp(float v, int lo, int hi)
{
    float r = nearbyintf(v);
    return !(r == r) ? 0 : r < (float)lo ? lo : r > (float)hi ? hi : (int)r;
}

/* qkc's q3_k quantizer, round to nearest (ggml's searches its scales, so
 * its files differ; their bytes decode bit for bit here): per sub-block of
 * 16 the scale m / −4 for its value m of largest magnitude (m is the level
 * −4), d = the largest |scale| / 31 (stored as f16), each scale rounded to
 * d·(−32 .. 31), then every code the nearest level of d·(sc − 32) in
 * −4 .. 3. */
static void quant_q3_k(const float *x, uint8_t *b)
{
    float s[16], smax = 0.0f;
    memset(b, 0, 110);
    for (int j = 0; j < 16; j++) {
        float a = 0.0f, m = 0.0f;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * j + l]) > a)
                a = fabsf(x[16 * j + l]), m = x[16 * j + l];
        s[j] = m / -4.0f;
        smax = smax > a / 4.0f ? smax : a / 4.0f;
    }
    wr_f16(b + 108, smax / 31.0f);
    {
        const float d = rd_f16(b + 108), id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 16; j++) {
            /* sub-block j of the element order: half j / 8, group (j % 8) / 2 */
            const int sidx = j, v = rtn_clamp(s[j] * id, -32, 31) + 32;
            uint8_t *sc = b + 96;
            if (sidx < 8)
                sc[sidx] = (uint8_t)((sc[sidx] & 0xF0) | (v & 15));
            else
                sc[sidx - 8] = (uint8_t)((sc[sidx - 8] & 0x0F) | (v & 15) << 4);
            sc[8 + sidx % 4] = (uint8_t)(sc[8 + sidx % 4] | ((v >> 4) & 3) << (2 * (sidx / 4)));
        }
        for (int e = 0; e < QK_K; e++) {
            const int hh = e / 128, j = (e % 128) / 32, r = e % 32;
            const int sidx = 8 * hh + 2 * j + (r >= 16);
            const float dl = d * (float)q3k_scale(b, sidx);
            const int q = dl != 0.0f ? rtn_clamp(x[e] / dl, -4, 3) + 4 : 4;
            b[32 + 32 * hh + r] = (uint8_t)(b[32 + 32 * hh + r] | (q & 3) << (2 * j));
            b[r] = (uint8_t)(b[r] | ((q >> 2) & 1) << (4 * hh + j));
        }
    }
}


/* ----------------------------------------------------------------- Q2_K */

/* ggml's block_q2_K (84 bytes): scales[16] at 0 (low nibble sc, high m),
 * qs[64] at 16, d (f16) at 80, dmin (f16) at 82. Element e: half hh =
 * e / 128, group j = (e % 128) / 32, r = e % 32: q = (qs[32·hh + r] >> 2j)
 * & 3; sub-block s = e / 16: y = (d·sc)·q − dmin·m, as ggml's
 * dequantize_row_q2_K computes it (no fused multiply-add). */
static int q2k_code(const uint8_t *b, int e)
{
    return (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static void dequant_q2_k(const uint8_t *b, float *y)
{
    const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    for (int e = 0; e < QK_K; e++) {
        const int sc = b[e / 16];
        const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
        const float p = dl * (float)q2k_code(b, e);
        y[e] = p - ml;
    }
}

/* qkc's q2_k quantizer, round to nearest (ggml's searches its scales and
 * mins, so its files differ; their bytes decode bit for bit here): per
 * sub-block of 16, lo = min(0, min x), scale (max x − lo) / 3 and min −lo;
 * d and dmin the largest of each / 15 (stored as f16); each rounded to
 * d·(0 .. 15) and dmin·(0 .. 15); then every code the nearest of
 * dl·q − ml, q in 0 .. 3. */
static void quant_q2_k(const float *x, uint8_t *b)
{
    float sc[16], mn[16], smax = 0.0f, mmax = 0.0f;
    memset(b, 0, 84);
    for (int j = 0; j < 16; j++) {
        float lo = 0.0f, hi = 0.0f;
        for (int l = 0; l < 16; l++) {
            const float v = x[16 * j + l];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        sc[j] = (hi - lo) / 3.0f;
        mn[j] = -lo;
        smax = smax > sc[j] ? smax : sc[j];
        mmax = mmax > mn[j] ? mmax : mn[j];
    }
    wr_f16(b + 80, smax / 15.0f);
    wr_f16(b + 82, mmax / 15.0f);
    {
        const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
        const float id = d != 0.0f ? 1.0f / d : 0.0f, imin = dmin != 0.0f ? 1.0f / dmin : 0.0f;
        for (int j = 0; j < 16; j++)
            b[j] = (uint8_t)(rtn_clamp(sc[j] * id, 0, 15) | rtn_clamp(mn[j] * imin, 0, 15) << 4);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d * (float)(b[e / 16] & 15), ml = dmin * (float)(b[e / 16] >> 4);
            const int q = dl != 0.0f ? rtn_clamp((x[e] + ml) / dl, 0, 3) : 0;
            b[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
        }
    }
}


static void quant_iq4_xs(const float *x, uint8_t *b)
{
    float scales[8], max_scale = 0, amax_scale = 0, d, id;
    uint8_t L[256];
    uint16_t scales_h = 0;
    for (int ib = 0; ib < 8; ib++) {
        scales[ib] = iq4_block_scale(x + 32 * ib, L + 32 * ib, 7);
        if (fabsf(scales[ib]) > amax_scale) {
            amax_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    d = -max_scale / 32;
    wr_f16(b, d);
    id = d != 0 ? 1 / d : 0.f;
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        int l = imax(-32, imin(31, nearest_int(id * scales[ib])));
        const float dl = d * (float)l;
        const float idl = dl != 0 ? 1 / dl : 0.f;
        for (int j = 0; j < 32; j++)
            L[32 * ib + j] = (uint8_t)best_index_int8(kvalues_iq4nl, idl * x[32 * ib + j]);
        l += 32;
        b[4 + ib / 2] |= (uint8_t)((l & 15) << 4 * (ib % 2));
        scales_h |= (uint16_t)((l >> 4) << 2 * ib);
    }
    b[2] = (uint8_t)scales_h;
    b[3] = (uint8_t)(scales_h >> 8);
    for (int ib = 0; ib < 8; ib++)
        for (int j = 0; j < 16; j++)
            b[8 + 16 * ib + j] = (uint8_t)(L[32 * ib + j] | (L[32 * ib + 16 + j] << 4));
}

static void dequant_iq4_xs(const uint8_t *b, float *y)
{
    const float d = rd_f16(b);
    for (int ib = 0; ib < 8; ib++) {
        const float dl = d * (float)(iq4_xs_ls(b, ib) - 32);
        const uint8_t *qs = b + 8 + 16 * ib;
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = dl * (float)kvalues_iq4nl[qs[j] & 0x0F];
            y[32 * ib + 16 + j] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

/* --------------------------------------------------------------- mxfp4 */

/* E2M1 values doubled (ggml kvalues_mxfp4); paired with 2^(e-128). */
static const int8_t kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* ggml_e8m0_to_fp32_half: 2^(e-128) for every e, 0xFF included (2^127);
 * e = 0 and 1 are the fp32 subnormals 2^-128 and 2^-127. */
static float e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    return qkc_f32_from_bits(bits);
}

static void quant_mxfp4(const float *x, uint8_t *b)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j]))
            amax = fabsf(x[j]);
    uint8_t e = 0;
    if (amax > 0.0f) {
        /* ggml: (uint8_t)(floorf(log2f(amax)) - 2 + 127). Clamped so that
         * amax < 2^-125 (negative) and non-finite amax stay defined. */
        float f = floorf(log2f(amax)) - 2 + 127;
        e = f >= 0.0f ? (f <= 254.0f ? (uint8_t)f : 254) : 0;
    }
    const float d = e8m0_half(e);
    b[0] = e;
    for (int j = 0; j < QK / 2; j++) {
        uint8_t code[2];
        for (int h = 0; h < 2; h++) {
            const float v = x[j + 16 * h];
            int best = 0;
            float best_err = fabsf((float)kvalues_mxfp4[0] * d - v);
            for (int i = 1; i < 16; i++) { /* first minimum wins: ties toward zero */
                float err = fabsf((float)kvalues_mxfp4[i] * d - v);
                if (err < best_err) {
                    best = i;
                    best_err = err;
                }
            }
            code[h] = (uint8_t)best;
        }
        b[1 + j] = (uint8_t)(code[0] | (code[1] << 4));
    }
}

static void dequant_mxfp4(const uint8_t *b, float *y)
{
    const float d = e8m0_half(b[0]);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)kvalues_mxfp4[b[1 + j] & 0x0F] * d;
        y[j + 16] = (float)kvalues_mxfp4[b[1 + j] >> 4] * d;
    }
}

/* --------------------------------------------------------------- mxfp8 */

/* Largest unbiased exponent of a normal element (OCP MX emax_elem). */
static int mx_emax(qkc_dtype fp8)
{
    return fp8 == QKC_DTYPE_FP8E5M2 ? 15 : 8;
}

/* OCP MX §5.3: shared_exp = floor(log2 amax) - emax_elem clamped to
 * [-127, 127] (code = shared_exp + 127; amax = 0 gives code 0), elements =
 * saturating RNE fp8 of x / 2^shared_exp. floor(log2) is taken exactly from
 * the binary exponent, not from log2f. */
static void quant_mxfp8(qkc_dtype fp8, const float *x, uint8_t *b)
{
    float amax = 0.0f;
    int se = -127;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j]))
            amax = fabsf(x[j]);
    if (amax > 0.0f) {
        if (isinf(amax)) {
            se = 127;
        } else {
            int ex;
            frexpf(amax, &ex); /* amax = f·2^ex, f in [0.5, 1) */
            se = ex - 1 - mx_emax(fp8);
            se = se < -127 ? -127 : se > 127 ? 127 : se;
        }
    }
    b[0] = (uint8_t)(se + 127);
    for (int j = 0; j < QK; j++)
        b[1 + j] = (uint8_t)qkc_dtype_encode(fp8, ldexpf(x[j], -se), 1);
}

static void dequant_mxfp8(qkc_dtype fp8, const uint8_t *b, float *y)
{
    const float s = qkc_e8m0_to_f32(b[0]); /* 0xFF: NaN */
    for (int j = 0; j < QK; j++)
        y[j] = qkc_dtype_decode(fp8, b[1 + j]) * s;
}

/* ---------------------------------------------------- packing readers */

/* The packer reads the blocks on its own (kq_scale_min restates
 * get_scale_min_k4), so that verification compares two readings. */

/* −m as stored min, so that x + min repeats the reference's x − m. For a
 * NaN m the NaN itself is stored: x − NaN and x + NaN then return the same
 * NaN, where x + (−NaN) would flip its sign bit. */
static uint32_t negated_min(float m)
{
    return isnan(m) ? qkc_f32_bits(m) : qkc_f32_bits(-m);
}

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
static void read_kquant_header(qkc_pack_job *job, const uint8_t *p, int64_t chunk0)
{
    float d = qkc_f16_to_f32(qkc_rd16(p)), dmin = qkc_f16_to_f32(qkc_rd16(p + 2));
    int64_t b = chunk0 / 8;
    if (job->sup)
        job->sup[2 * b] = qkc_rd16(p), job->sup[2 * b + 1] = qkc_rd16(p + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        kq_scale_min(j, p + 4, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        job->scale[chunk0 + j] = qkc_f32_bits(d1);
        job->min[chunk0 + j] = negated_min(m1);
        if (job->sub)
            job->sub[16 * b + j] = sc, job->sub[16 * b + 8 + j] = m;
    }
}

/* Block readers: block b of a row (bytes p) into codes y[0 .. block) and
 * its chunks' fields. */
static void read_q8_0(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    job->scale[b] = qkc_rd16(p);
    for (int j = 0; j < 32; j++)
        y[j] = p[2 + j] ^ 0x80u; /* int8 → offset binary */
}

/* q5_0 / q5_1 (q1: with a min): the fifth bit from qh joins each nibble. */
static void read_q5(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b, int q1)
{
    const uint8_t *ql = p + (q1 ? 8 : 6);
    uint32_t qh = qkc_rd32(p + (q1 ? 4 : 2));
    job->scale[b] = qkc_rd16(p);
    if (q1)
        job->min[b] = qkc_rd16(p + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (ql[j] & 15u) | ((qh >> j) & 1u) << 4;
        y[j + 16] = (uint32_t)(ql[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4;
    }
}

static void read_q5_0(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b) { read_q5(job, p, y, b, 0); }
static void read_q5_1(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b) { read_q5(job, p, y, b, 1); }

static void read_q4_k(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    const uint8_t *q = p + 16;
    read_kquant_header(job, p, b * 8);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = q[32 * c + l] & 15u;
            y[64 * c + 32 + l] = (uint32_t)q[32 * c + l] >> 4;
        }
}

static void read_q5_k(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    const uint8_t *qh = p + 16, *ql = p + 48;
    read_kquant_header(job, p, b * 8);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = (ql[32 * c + l] & 15u) | ((uint32_t)(qh[l] >> (2 * c)) & 1u) << 4;
            y[64 * c + 32 + l] = (uint32_t)(ql[32 * c + l] >> 4) | ((uint32_t)(qh[l] >> (2 * c + 1)) & 1u) << 4;
        }
}

/* 16 chunks of 16: scale = d·sc as ggml's (d·sc)·q evaluates it; codes stay
 * 0..63 under zero_const 32. */
static void read_q6_k(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    float d = qkc_f16_to_f32(qkc_rd16(p + 208));
    if (job->sup)
        job->sup[2 * b] = qkc_rd16(p + 208);
    for (int j = 0; j < 16; j++) {
        int sc = p[192 + j] >= 128 ? (int)p[192 + j] - 256 : (int)p[192 + j];
        float s = d * (float)sc;
        job->scale[b * 16 + j] = qkc_f32_bits(s);
        if (job->sub)
            job->sub[16 * b + j] = p[192 + j];
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
}

/* iq4_xs: eight 32-weight chunks of table codes, scale dl = d·(ls − 32)
 * as ggml's dequantizer computes it (exact in f32). */
static void read_iq4_xs(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    const float d = qkc_f16_to_f32(qkc_rd16(p));
    if (job->sup)
        job->sup[2 * b] = qkc_rd16(p);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *qs = p + 8 + 16 * ib;
        job->scale[b * 8 + ib] = qkc_f32_bits(d * (float)(iq4_xs_ls(p, ib) - 32));
        if (job->sub)
            job->sub[16 * b + ib] = (uint8_t)iq4_xs_ls(p, ib);
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = qs[j] & 15u;
            y[32 * ib + 16 + j] = (uint32_t)qs[j] >> 4;
        }
    }
}

/* TQ2_0: the 2-bit codes as nibbles, the block's d for each chunk. */
static void read_tq2_0(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    for (int c = 0; c < 8; c++)
        job->scale[8 * b + c] = qkc_rd16(p + 64);
    for (int h = 0; h < 2; h++)
        for (int n = 0; n < 4; n++)
            for (int m = 0; m < 32; m++)
                y[128 * h + 32 * n + m] = ((uint32_t)p[32 * h + m] >> (2 * n)) & 3u;
}


/* TQ1_0: the trits as nibbles, the block's d for each chunk. */
static void read_tq1_0(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    for (int c = 0; c < 8; c++)
        job->scale[8 * b + c] = qkc_rd16(p + 52);
    tq1_codes(p, y);
}


/* q3_k: sixteen 16-weight chunks of 3-bit codes (q + 4), scale d·(sc − 32)
 * as ggml's dequantizer computes it. */
static void read_q3_k(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    const float d = qkc_f16_to_f32(qkc_rd16(p + 108));
    for (int s = 0; s < 16; s++)
        job->scale[b * 16 + s] = qkc_f32_bits(d * (float)q3k_scale(p, s));
    for (int e = 0; e < QK_K; e++)
        y[e] = (uint32_t)q3k_code(p, e);
}


/* q2_k: sixteen 16-weight chunks of 2-bit codes as nibbles, scale d·sc
 * and min −(dmin·m) as ggml's dequantizer computes them. */
static void read_q2_k(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b)
{
    const float d = qkc_f16_to_f32(qkc_rd16(p + 80)), dmin = qkc_f16_to_f32(qkc_rd16(p + 82));
    for (int s = 0; s < 16; s++) {
        job->scale[b * 16 + s] = qkc_f32_bits(d * (float)(p[s] & 15));
        job->min[b * 16 + s] = negated_min(dmin * (float)(p[s] >> 4));
    }
    for (int e = 0; e < QK_K; e++)
        y[e] = (uint32_t)q2k_code(p, e);
}


/* ------------------------------------------------------------ dispatch */

/* One block type: its codec and, unless its blocks already are the kernel
 * layout's chunk records (ir/fam_gguf.c), its packer's block reader. Its
 * geometry (weights and bytes per block) is presets.def's. */
typedef struct block_codec {
    void (*quant)(const float *x, uint8_t *b);
    void (*dequant)(const uint8_t *b, float *y);
    void (*read)(qkc_pack_job *job, const uint8_t *p, uint32_t *y, int64_t b);
} block_codec;

static void quant_mxfp8_e4m3(const float *x, uint8_t *b) { quant_mxfp8(QKC_DTYPE_FP8E4M3, x, b); }
static void quant_mxfp8_e5m2(const float *x, uint8_t *b) { quant_mxfp8(QKC_DTYPE_FP8E5M2, x, b); }
static void dequant_mxfp8_e4m3(const uint8_t *b, float *y) { dequant_mxfp8(QKC_DTYPE_FP8E4M3, b, y); }
static void dequant_mxfp8_e5m2(const uint8_t *b, float *y) { dequant_mxfp8(QKC_DTYPE_FP8E5M2, b, y); }

static const block_codec block_codecs[QKC_PRESET_END_] = {
    [QKC_PRESET_Q4_0] = {quant_q4_0, dequant_q4_0, NULL},
    [QKC_PRESET_Q4_1] = {quant_q4_1, dequant_q4_1, NULL},
    [QKC_PRESET_Q5_0] = {quant_q5_0, dequant_q5_0, read_q5_0},
    [QKC_PRESET_Q5_1] = {quant_q5_1, dequant_q5_1, read_q5_1},
    [QKC_PRESET_Q8_0] = {quant_q8_0, dequant_q8_0, read_q8_0},
    [QKC_PRESET_Q4_K] = {quant_q4_k, dequant_q4_k, read_q4_k},
    [QKC_PRESET_Q5_K] = {quant_q5_k, dequant_q5_k, read_q5_k},
    [QKC_PRESET_Q6_K] = {quant_q6_k, dequant_q6_k, read_q6_k},
    [QKC_PRESET_IQ4_NL] = {quant_iq4_nl, dequant_iq4_nl, NULL},
    [QKC_PRESET_MXFP4] = {quant_mxfp4, dequant_mxfp4, NULL},
    [QKC_PRESET_MXFP8] = {quant_mxfp8_e4m3, dequant_mxfp8_e4m3, NULL},
    [QKC_PRESET_IQ4_XS] = {quant_iq4_xs, dequant_iq4_xs, read_iq4_xs},
    [QKC_PRESET_TQ2_0] = {quant_tq2_0, dequant_tq2_0, read_tq2_0},
    [QKC_PRESET_TQ1_0] = {quant_tq1_0, dequant_tq1_0, read_tq1_0},
    [QKC_PRESET_Q3_K] = {quant_q3_k, dequant_q3_k, read_q3_k},
    [QKC_PRESET_Q2_K] = {quant_q2_k, dequant_q2_k, read_q2_k},
};

static const block_codec mxfp8_e5m2_codec = {quant_mxfp8_e5m2, dequant_mxfp8_e5m2, NULL};

/* The codec of a preset (mxfp8 with e4m3 elements) with its block
 * geometry, or NULL. */
static const block_codec *codec_of(qkc_preset p, const qkc_preset_desc **pd)
{
    *pd = qkc_preset_get(p);
    if (!*pd || (*pd)->family != QKC_FAMILY_GGUF || (*pd)->block_elems <= 0 || !block_codecs[p].quant)
        return NULL;
    return &block_codecs[p];
}

/* Row functions: presets without a codec leave dst / y untouched (the
 * matrix codecs below report them as an error instead). */
void qkc_gguf_quantize_row(qkc_preset preset, const float *x, uint8_t *dst, int64_t k)
{
    const qkc_preset_desc *pd;
    const block_codec *c = codec_of(preset, &pd);
    if (!c)
        return;
    for (int64_t i = 0; i + pd->block_elems <= k; i += pd->block_elems)
        c->quant(x + i, dst + i / pd->block_elems * pd->block_bytes);
}

void qkc_gguf_dequantize_row(qkc_preset preset, const uint8_t *src, float *y, int64_t k)
{
    const qkc_preset_desc *pd;
    const block_codec *c = codec_of(preset, &pd);
    if (!c)
        return;
    for (int64_t i = 0; i + pd->block_elems <= k; i += pd->block_elems)
        c->dequant(src + i / pd->block_elems * pd->block_bytes, y + i);
}

/* ---------------------------------------------------------- matrix codec */

/* Checks shared by both directions; picks the block codec and gives the
 * block geometry. */
static qkc_status matrix_codec(const qkc_ref_weights *rw, const void *in, const void *out,
                               int64_t ldw, const block_codec **codec, const qkc_preset_desc **geometry)
{
    const qkc_preset_desc *pd;
    const block_codec *c;
    if (!rw || !rw->format || !rw->layout)
        return qkc_fail(rw ? rw->ctx : NULL, QKC_ERR_INVALID_ARGUMENT,
                        "gguf codec: missing format or layout");
    c = codec_of(rw->format->preset, &pd);
    if (!pd || !c)
        return qkc_fail(rw->ctx, QKC_ERR_INTERNAL,
                        "gguf codec: preset %d (%s) is not a GGUF block preset", (int)rw->format->preset,
                        pd ? pd->keyword : "none");
    if (rw->format->preset == QKC_PRESET_MXFP8) {
        if (rw->format->dtype == QKC_DTYPE_FP8E5M2)
            c = &mxfp8_e5m2_codec;
        else if (rw->format->dtype != QKC_DTYPE_FP8E4M3)
            return qkc_fail(rw->ctx, QKC_ERR_INTERNAL,
                            "gguf codec: mxfp8 element dtype must be fp8e4m3 or fp8e5m2, not %s",
                            qkc_dtype_keyword(rw->format->dtype));
    }
    if (!in || !out)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "gguf codec: NULL weights or blob");
    if (rw->n < 0 || rw->k <= 0 || ldw < rw->k)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "gguf codec: invalid shape n=%lld k=%lld ldw=%lld", (long long)rw->n,
                        (long long)rw->k, (long long)ldw);
    if (rw->k % pd->block_elems != 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "gguf codec: k=%lld is not a multiple of the %s block size %lld", (long long)rw->k,
                        pd->keyword, (long long)pd->block_elems);
    if (rw->layout->row_bytes != (uint64_t)(rw->k / pd->block_elems) * (uint64_t)pd->block_bytes ||
        rw->layout->bytes[QKC_SECTION_DATA] != rw->layout->row_bytes * (uint64_t)rw->n)
        return qkc_fail(rw->ctx, QKC_ERR_INTERNAL,
                        "gguf codec: layout row_bytes=%llu does not match %s rows of k=%lld",
                        (unsigned long long)rw->layout->row_bytes, pd->keyword, (long long)rw->k);
    *codec = c;
    *geometry = pd;
    return QKC_OK;
}

qkc_status qkc_ref_gguf_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const block_codec *c = NULL;
    const qkc_preset_desc *pd = NULL;
    qkc_status st = matrix_codec(rw, w, blob, ldw, &c, &pd);
    if (st != QKC_OK)
        return st;
    /* Every byte of the blob is written: padding (none today for block
     * presets, but the layout owns that decision) as zeros. */
    memset(blob, 0, (size_t)rw->layout->total);
    uint8_t *data = blob + rw->layout->offset[QKC_SECTION_DATA];
    for (int64_t n = 0; n < rw->n; n++) {
        const float *row = w + n * ldw;
        uint8_t *dst = data + (uint64_t)n * rw->layout->row_bytes;
        for (int64_t i = 0; i < rw->k; i += pd->block_elems)
            c->quant(row + i, dst + i / pd->block_elems * pd->block_bytes);
    }
    return QKC_OK;
}

qkc_status qkc_ref_gguf_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const block_codec *c = NULL;
    const qkc_preset_desc *pd = NULL;
    qkc_status st = matrix_codec(rw, blob, w, ldw, &c, &pd);
    if (st != QKC_OK)
        return st;
    const uint8_t *data = blob + rw->layout->offset[QKC_SECTION_DATA];
    for (int64_t n = 0; n < rw->n; n++) {
        const uint8_t *src = data + (uint64_t)n * rw->layout->row_bytes;
        float *row = w + n * ldw;
        for (int64_t i = 0; i < rw->k; i += pd->block_elems)
            c->dequant(src + i / pd->block_elems * pd->block_bytes, row + i);
    }
    return QKC_OK;
}

/* ------------------------------------------------------------ packing */

static void read_gguf(qkc_pack_job *job, int64_t r)
{
    const qkc_preset_desc *pd = qkc_preset_get(job->f->preset);
    const block_codec *c = &block_codecs[job->f->preset];
    const uint8_t *row = job->src + job->wl->offset[QKC_SECTION_DATA] + (uint64_t)r * job->wl->row_bytes;
    for (int64_t b = 0; b < job->k / pd->block_elems; b++)
        c->read(job, row + b * pd->block_bytes, job->code + b * pd->block_elems, b);
}

/* Blocks that already are chunk records (the kernel layout's in_place)
 * are copied by qkc_pack_weights; the others are read block by block. */
static qkc_status gguf_pack(qkc_pack_job *job, uint8_t *out)
{
    const qkc_preset_desc *pd;
    if (!codec_of(job->f->preset, &pd) || !block_codecs[job->f->preset].read)
        return qkc_fail(job->ctx, QKC_ERR_INTERNAL, "pack: %s has no block reader",
                        pd ? pd->keyword : "a gguf-family format");
    return qkc_pack_rows(job, out, read_gguf);
}

const qkc_family_codec qkc_family_gguf_codec = {
    .name = "gguf",
    .quantize = qkc_ref_gguf_quantize,
    .dequantize = qkc_ref_gguf_dequantize,
    .pack = gguf_pack,
};
