/*
 * Element dtypes: descriptors and the reference conversions to and from
 * float. These functions are the test oracle of every generated decoder, so
 * they are exact and spelled out:
 *
 * - decode (code -> float) is exact for every dtype: every code of every
 *   dtype here is representable in f32.
 * - encode (float -> code) rounds to nearest, ties to even, for FLOAT,
 *   MINIFLOAT and INT kinds. Overflow: INT clamps; MINIFLOAT saturates to
 *   ±max finite when `saturate` is set, else gives ±Inf (e5m2) or NaN
 *   (e4m3; fp4 has neither and always saturates); FLOAT overflows to ±Inf.
 *   NaN input: f16 -> 0x7E00|sign, bf16 -> (u>>16)|0x40 (both as ggml),
 *   fp8 -> the all-ones NaN code with the sign kept, INT/fp4 -> 0.
 *   Subnormals are produced, never flushed.
 * - CODEBOOK encode picks the nearest table entry; ties: nf4 to the lower
 *   code (bitsandbytes), iq4nl to the higher index (ggml best_index_int8).
 * - EXP (e8m0) decodes 2^(c-127) with 0xFF = NaN; encode takes the exponent
 *   floor(log2|x|) clamped to 0..254.
 * - tf32 is stored as an f32 bit pattern with the low 13 mantissa bits
 *   zero; encode rounds to nearest even on those bits.
 *
 * Plain C, no dependencies beyond libc.
 */
#ifndef QKC_IR_DTYPE_H
#define QKC_IR_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum qkc_dtype {
    QKC_DTYPE_INVALID = 0,
#define QKC_DTYPE(NAME, ID, KW, BITS, KIND, SIGNED, EB, MB, BIAS) QKC_DTYPE_##NAME = ID,
#include "ir/dtypes.def"
#undef QKC_DTYPE
    QKC_DTYPE_END_
} qkc_dtype;

typedef enum qkc_dtype_kind {
    QKC_KIND_FLOAT = 1,
    QKC_KIND_MINIFLOAT = 2,
    QKC_KIND_INT = 3,
    QKC_KIND_CODEBOOK = 4,
    QKC_KIND_EXP = 5,
    QKC_KIND_LUT = 6 /* a code indexes a table stored with the weights (lut2..lut4) */,
    QKC_KIND_VQ = 7   /* an index selects a vector of weights from a codebook (vq) */
} qkc_dtype_kind;

typedef struct qkc_dtype_desc {
    qkc_dtype dtype;
    const char *keyword;
    int bits;
    qkc_dtype_kind kind;
    int is_signed;
    int exp_bits, man_bits, bias; /* float layout; 0 for others */
    int64_t int_min, int_max;     /* INT: value range; CODEBOOK: 0..15 */
} qkc_dtype_desc;

/* Descriptor of a dtype, or NULL for an unknown value. */
const qkc_dtype_desc *qkc_dtype_get(qkc_dtype dtype);

/* Dtype named by the first len bytes of s, or QKC_DTYPE_INVALID. */
qkc_dtype qkc_dtype_from_keyword(const char *s, size_t len);

/* Keyword of a dtype, "?" for an unknown value. */
const char *qkc_dtype_keyword(qkc_dtype dtype);

/* Exact value of a code (INT: the integer; codes are the low `bits` bits,
 * INT signed codes in two's complement). */
float qkc_dtype_decode(qkc_dtype dtype, uint32_t code);

/* Nearest code of x under the rules above. */
uint32_t qkc_dtype_encode(qkc_dtype dtype, float x, int saturate);

/* Convenience: x rounded through the dtype (decode(encode(x))). */
float qkc_dtype_round(qkc_dtype dtype, float x, int saturate);

/* Largest finite magnitude a code can hold (INT: int_max; nf4: 1; iq4nl: 127). */
float qkc_dtype_max_finite(qkc_dtype dtype);

/* Scalar conversions used everywhere (exact, RNE, ggml's NaN rules). */
float qkc_f16_to_f32(uint16_t h);
uint16_t qkc_f32_to_f16(float f);
float qkc_bf16_to_f32(uint16_t h);
uint16_t qkc_f32_to_bf16(float f);
float qkc_tf32_round(float f);
float qkc_e8m0_to_f32(uint8_t e); /* 0xFF -> NaN */

/* Round half to even, independent of the floating-point environment. */
double qkc_round_even(double x);

/* The bit pattern of a float and back. */
uint32_t qkc_f32_bits(float f);
float qkc_f32_from_bits(uint32_t u);

#endif /* QKC_IR_DTYPE_H */
