/* Element dtype descriptors and exact reference conversions (see dtype.h). */
#include "ir/dtype.h"

#include <math.h>
#include <string.h>

uint32_t qkc_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float qkc_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

double qkc_round_even(double x)
{
    /* Exact without relying on the current rounding mode: floor is exact,
     * and the comparison against the half is exact for doubles. */
    if (!(fabs(x) < 4503599627370496.0)) /* >= 2^52 (or NaN): already integral */
        return x;
    double f = floor(x);
    double d = x - f;
    if (d > 0.5)
        return f + 1.0;
    if (d < 0.5)
        return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

/* ------------------------------------------------------------- codebooks */

/* bitsandbytes NF4 (formats.md §3.1), written as its fp32 bit patterns; the
 * union reads them as floats without any rounding step. */
static const union {
    uint32_t u[16];
    float f[16];
} nf4_table = {{
    0xBF800000u, 0xBF3239B1u, 0xBF066B30u, 0xBECA32A0u, 0xBE91A24Du, 0xBE3D353Fu,
    0xBDBA7871u, 0x00000000u, 0x3DA2FAFFu, 0x3E24CAE3u, 0x3E7C04DDu, 0x3EAD033Au,
    0x3EE1A4B8u, 0x3F1007ABu, 0x3F3913B3u, 0x3F800000u,
}};

/* ggml kvalues_iq4nl (formats.md §2.14). */
static const float iq4nl_table[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* ----------------------------------------------------------- descriptors */

#define KIND_FLOAT QKC_KIND_FLOAT
#define KIND_MINIFLOAT QKC_KIND_MINIFLOAT
#define KIND_INT QKC_KIND_INT
#define KIND_CODEBOOK QKC_KIND_CODEBOOK
#define KIND_EXP QKC_KIND_EXP
#define KIND_LUT QKC_KIND_LUT
#define KIND_VQ QKC_KIND_VQ

static const qkc_dtype_desc descs[QKC_DTYPE_END_] = {
#define QKC_DTYPE(NAME, ID, KW, BITS, KIND, SIGNED, EB, MB, BIAS)                     \
    [ID] = {.dtype = QKC_DTYPE_##NAME,                                                \
            .keyword = KW,                                                            \
            .bits = BITS,                                                             \
            .kind = KIND_##KIND,                                                      \
            .is_signed = SIGNED,                                                      \
            .exp_bits = EB,                                                           \
            .man_bits = MB,                                                           \
            .bias = BIAS,                                                             \
            .int_min = (KIND_##KIND == KIND_INT && SIGNED) ? -(INT64_C(1) << (BITS - 1)) : 0, \
            .int_max = (KIND_##KIND == KIND_INT || KIND_##KIND == KIND_LUT)                                      \
                           ? (SIGNED ? (INT64_C(1) << (BITS - 1)) - 1 : (INT64_C(1) << BITS) - 1) \
                           : (KIND_##KIND == KIND_CODEBOOK ? 15 : 0)},
#include "ir/dtypes.def"
#undef QKC_DTYPE
};

float qkc_dtype_max_finite(qkc_dtype dt)
{
    switch (dt) {
    case QKC_DTYPE_F32:
    case QKC_DTYPE_TF32: return 3.40282347e38f;
    case QKC_DTYPE_F16: return 65504.0f;
    case QKC_DTYPE_BF16: return 3.38953139e38f;
    case QKC_DTYPE_FP4: return 6.0f;
    case QKC_DTYPE_FP8E4M3: return 448.0f;
    case QKC_DTYPE_FP8E5M2: return 57344.0f;
    case QKC_DTYPE_E8M0: return 1.70141183e38f;
    case QKC_DTYPE_NF4: return 1.0f;
    case QKC_DTYPE_IQ4NL: return 127.0f;
    default: {
        const qkc_dtype_desc *d = qkc_dtype_get(dt);
        return d ? (float)d->int_max : 0.0f;
    }
    }
}

const qkc_dtype_desc *qkc_dtype_get(qkc_dtype dtype)
{
    if ((int)dtype <= 0 || dtype >= QKC_DTYPE_END_ || descs[dtype].keyword == NULL)
        return NULL;
    return &descs[dtype];
}

qkc_dtype qkc_dtype_from_keyword(const char *s, size_t len)
{
    for (int i = 1; i < QKC_DTYPE_END_; i++) {
        const char *kw = descs[i].keyword;
        if (kw && strlen(kw) == len && memcmp(kw, s, len) == 0)
            return (qkc_dtype)i;
    }
    return QKC_DTYPE_INVALID;
}

const char *qkc_dtype_keyword(qkc_dtype dtype)
{
    const qkc_dtype_desc *d = qkc_dtype_get(dtype);
    return d ? d->keyword : "?";
}

/* ---------------------------------------------------------- f16/bf16/tf32 */

float qkc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (e == 31)
        return qkc_f32_from_bits(sign | 0x7F800000u | (m << 13));
    return qkc_f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t qkc_f32_to_f16(float f)
{
    uint32_t u = qkc_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return (uint16_t)(sign | 0x7E00u);
    if (a >= 0x477FF000u) /* >= 65520: rounds to Inf */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) { /* below 2^-14: f16 subnormal, quantum 2^-24 */
        double q = qkc_round_even((double)qkc_f32_from_bits(a) * 16777216.0);
        return (uint16_t)(sign | (uint16_t)q); /* q == 1024 is the min normal: same bits */
    }
    a += 0xFFFu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((a - (112u << 23)) >> 13));
}

float qkc_bf16_to_f32(uint16_t h)
{
    return qkc_f32_from_bits((uint32_t)h << 16);
}

uint16_t qkc_f32_to_bf16(float f)
{
    uint32_t u = qkc_f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float qkc_tf32_round(float f)
{
    uint32_t u = qkc_f32_bits(f);
    if ((u & 0x7F800000u) == 0x7F800000u)
        return f; /* Inf/NaN pass through */
    u += 0xFFFu + ((u >> 13) & 1u);
    return qkc_f32_from_bits(u & ~0x1FFFu);
}

float qkc_e8m0_to_f32(uint8_t e)
{
    if (e == 0xFF)
        return NAN;
    return ldexpf(1.0f, (int)e - 127);
}

/* -------------------------------------------------------------- minifloat */

static float minifloat_decode(const qkc_dtype_desc *d, uint32_t code)
{
    int eb = d->exp_bits, mb = d->man_bits;
    uint32_t emask = (1u << eb) - 1u, mmask = (1u << mb) - 1u;
    int s = (int)((code >> (eb + mb)) & 1u);
    uint32_t e = (code >> mb) & emask;
    uint32_t m = code & mmask;
    float v;
    if (d->dtype == QKC_DTYPE_FP8E4M3 && e == emask && m == mmask)
        return s ? -NAN : NAN;
    if (d->dtype == QKC_DTYPE_FP8E5M2 && e == emask)
        return m == 0 ? (s ? -INFINITY : INFINITY) : (s ? -NAN : NAN);
    if (e == 0)
        v = ldexpf((float)m, 1 - d->bias - mb);
    else
        v = ldexpf((float)(m | (1u << mb)), (int)e - d->bias - mb);
    return s ? -v : v;
}

static uint32_t minifloat_encode(const qkc_dtype_desc *d, float x, int saturate)
{
    int eb = d->exp_bits, mb = d->man_bits;
    uint32_t sign = signbit(x) ? 1u << (eb + mb) : 0u;
    uint32_t nan_code = (1u << (eb + mb)) - 1u; /* all ones: NaN for e4m3 and e5m2 */
    int has_nan = d->dtype != QKC_DTYPE_FP4;
    if (isnan(x))
        return has_nan ? (sign | nan_code) : 0u;
    double a = fabs((double)x);
    double maxf = (double)qkc_dtype_max_finite(d->dtype);
    int emin = 1 - d->bias;
    double r;
    if (a == 0.0) {
        r = 0.0;
    } else if (isinf(x)) {
        r = INFINITY;
    } else {
        int e;
        frexp(a, &e);
        e -= 1; /* a = 1.x * 2^e */
        if (e < emin)
            e = emin;
        double quantum = ldexp(1.0, e - mb);
        r = qkc_round_even(a / quantum) * quantum;
    }
    if (r > maxf) {
        if (saturate || !has_nan)
            r = maxf;
        else if (d->dtype == QKC_DTYPE_FP8E5M2)
            return sign | (((1u << eb) - 1u) << mb); /* Inf */
        else
            return sign | nan_code;
    }
    if (r == 0.0)
        return sign;
    int e;
    frexp(r, &e);
    e -= 1;
    if (e < emin) /* subnormal */
        return sign | (uint32_t)ldexp(r, mb - emin);
    uint32_t m = (uint32_t)(ldexp(r, mb - e)) - (1u << mb);
    return sign | ((uint32_t)(e + d->bias) << mb) | m;
}

/* --------------------------------------------------------------- codebook */

static uint32_t codebook_encode(const qkc_dtype_desc *d, const float *tab, float x)
{
    if (isnan(x))
        return d->dtype == QKC_DTYPE_NF4 ? 7u : 8u; /* the code nearest zero */
    /* Tables are sorted ascending. Thresholds are midpoints (in double). */
    uint32_t best = 0;
    for (uint32_t i = 1; i < 16; i++) {
        double t = ((double)tab[i - 1] + (double)tab[i]) / 2.0;
        if (d->dtype == QKC_DTYPE_NF4 ? (double)x > t : (double)x >= t)
            best = i;
    }
    return best;
}

/* ------------------------------------------------------------ entry points */

float qkc_dtype_decode(qkc_dtype dtype, uint32_t code)
{
    const qkc_dtype_desc *d = qkc_dtype_get(dtype);
    if (!d)
        return NAN;
    switch (dtype) {
    case QKC_DTYPE_F32: return qkc_f32_from_bits(code);
    case QKC_DTYPE_TF32: return qkc_f32_from_bits(code & ~0x1FFFu);
    case QKC_DTYPE_F16: return qkc_f16_to_f32((uint16_t)code);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32((uint16_t)code);
    case QKC_DTYPE_E8M0: return qkc_e8m0_to_f32((uint8_t)code);
    case QKC_DTYPE_NF4: return nf4_table.f[code & 15u];
    case QKC_DTYPE_IQ4NL: return iq4nl_table[code & 15u];
    default: break;
    }
    if (d->kind == QKC_KIND_MINIFLOAT)
        return minifloat_decode(d, code & ((1u << d->bits) - 1u));
    /* INT */
    uint32_t mask = d->bits == 32 ? 0xFFFFFFFFu : (1u << d->bits) - 1u;
    int64_t v = (int64_t)(code & mask);
    if (d->is_signed && (v >> (d->bits - 1)))
        v -= INT64_C(1) << d->bits;
    return (float)v;
}

uint32_t qkc_dtype_encode(qkc_dtype dtype, float x, int saturate)
{
    const qkc_dtype_desc *d = qkc_dtype_get(dtype);
    if (!d)
        return 0;
    switch (dtype) {
    case QKC_DTYPE_F32: return qkc_f32_bits(x);
    case QKC_DTYPE_TF32: return qkc_f32_bits(qkc_tf32_round(x));
    case QKC_DTYPE_F16: return qkc_f32_to_f16(x);
    case QKC_DTYPE_BF16: return qkc_f32_to_bf16(x);
    case QKC_DTYPE_NF4: return codebook_encode(d, nf4_table.f, x);
    case QKC_DTYPE_IQ4NL: return codebook_encode(d, iq4nl_table, x);
    case QKC_DTYPE_E8M0: {
        if (!(x > 0.0f) || isnan(x) || isinf(x))
            return (isinf(x) && x > 0) ? 254u : 0u;
        int e;
        frexpf(x, &e);
        e = e - 1 + 127;
        return (uint32_t)(e < 0 ? 0 : e > 254 ? 254 : e);
    }
    default: break;
    }
    if (d->kind == QKC_KIND_MINIFLOAT)
        return minifloat_encode(d, x, saturate);
    /* INT: clamp(round-half-even(x)) */
    double r = isnan(x) ? 0.0 : qkc_round_even((double)x);
    if (r < (double)d->int_min)
        r = (double)d->int_min;
    if (r > (double)d->int_max)
        r = (double)d->int_max;
    uint32_t mask = d->bits == 32 ? 0xFFFFFFFFu : (1u << d->bits) - 1u;
    return (uint32_t)(int64_t)r & mask;
}

float qkc_dtype_round(qkc_dtype dtype, float x, int saturate)
{
    return qkc_dtype_decode(dtype, qkc_dtype_encode(dtype, x, saturate));
}
