/*
 * The reference implementation: weight codecs (quantize/dequantize) per
 * format family and the reference matmul. Plain scalar C. Everything here
 * is the oracle generated kernels are tested against, so exactness beats
 * speed: arithmetic order follows the external formats' own code (no FMA —
 * the runtime is built with -ffp-contract=off).
 *
 * A codec works on a whole N×K matrix: `w` is row-major f32 with leading
 * dimension ldw (row n at w + n*ldw), `blob` is the weight blob laid out by
 * qkc_format_layout(). Quantizers write every byte of the blob (padding
 * included, as zeros) so blobs are reproducible byte for byte.
 */
#ifndef QKC_RUNTIME_REF_H
#define QKC_RUNTIME_REF_H

#include <stdint.h>
#include <string.h>

#include "ir/format.h"
#include "ir/spec.h"
#include "qkc/qkc.h"

typedef struct qkc_ref_weights {
    qkc_context *ctx;                 /* for qkc_alloc/qkc_fail */
    const qkc_format *format;
    const qkc_weight_layout *layout;
    int64_t n, k;
} qkc_ref_weights;

/* Planar layout (formats/ref_planar.c). */
qkc_status qkc_ref_planar_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_planar_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* w=mixed: each row block through the planar codec (formats/ref_mixed.c). */
qkc_status qkc_ref_mixed_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_mixed_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* Arbitrary codebooks lut2/lut3/lut4 in the planar layout (formats/ref_lut.c). */
qkc_status qkc_ref_lut_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_lut_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* 2-D vector codebooks w=vq vq=V:B (formats/ref_vq.c; format in ir/vq.h). */
qkc_status qkc_ref_vq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_vq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* GGUF block presets q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k iq4_nl mxfp4,
 * and mxfp8 (formats/ref_gguf.c). */
qkc_status qkc_ref_gguf_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_gguf_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* One row of blocks (k weights, k a multiple of the block size). Used by
 * the codecs above and by tests against published block bytes. */
void qkc_gguf_quantize_row(qkc_preset preset, const float *x, uint8_t *dst, int64_t k);
void qkc_gguf_dequantize_row(qkc_preset preset, const uint8_t *src, float *y, int64_t k);

/* bitsandbytes nf4 (formats/ref_bnb.c). */
qkc_status qkc_ref_bnb_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_bnb_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* GPTQ v1 and AWQ gemm packings (formats/ref_gptq.c). */
qkc_status qkc_ref_gptq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_gptq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);
qkc_status qkc_ref_awq_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
qkc_status qkc_ref_awq_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);

/* The int8 compute type's activation quantization (ir/spec.h): q[k] codes and
 * one f32 scale per block of QKC_INT8_BLOCK, d[ceil(k / 32)]. Branch-free,
 * so that compilers vectorize it: the kernels' pre-pass calls it too. */
void qkc_ref_int8_quantize_row(const float *x, int64_t k, int8_t *q, float *d);

/* One int8 code: clamp(round-half-even(v), -127, 127), and 0 for a NaN
 * (whose conversion C leaves undefined). Clamping first keeps |v| <= 127,
 * where adding and subtracting 1.5·2^23 rounds v to an integer with ties
 * to even in f32 (the sum's spacing is 1; the library never reassociates
 * or contracts float arithmetic), the same integer as rounding v exactly:
 * clamp-then-round equals round-then-clamp because ±127 are integers. The
 * clamp tests the bit pattern (|v| > 127 is |bits| > bits(127), NaN is
 * |bits| > bits(inf)) and selects with masks: integer arithmetic without
 * branches, which compilers vectorize where float comparisons (which may
 * trap) would stay branches. */
static inline int8_t qkc_int8_code(float v)
{
    const float magic = 12582912.0f;
    uint32_t u, a, big, nan;
    float c;
    memcpy(&u, &v, sizeof u);
    a = u & 0x7FFFFFFFu;
    big = 0u - (uint32_t)(a > 0x42FE0000u); /* |v| > 127, ±inf included: ±127 */
    nan = 0u - (uint32_t)(a > 0x7F800000u); /* NaN: 0 */
    u = ((u & ~big) | (((u & 0x80000000u) | 0x42FE0000u) & big)) & ~nan;
    memcpy(&c, &u, sizeof c);
    return (int8_t)(int32_t)((c + magic) - magic);
}

/* rotate=hadamard:B (ir/spec.h): multiply x[0..k) by blockdiag(H_B)/sqrt(B)
 * in place, in f32, in exactly the order the semantics give. Kernels'
 * pre-pass and the reference both call this. */
void qkc_ref_hadamard_row(float *x, int64_t k, int block);

/* lora=R:DTYPE (ir/spec.h; formats/ref_extras.c). T[row][j] for rows
 * 0..m-1 of X (the spec's a dtype, leading dimension lda) and adapter
 * A [R][K]: double sums over k in order, rounded to f32, into t + row*ldt.
 * The term s·Σ_j T[j]·B[n,j] of one output, in double. */
void qkc_ref_lora_t(const qkc_matmul *mm, const void *x, int64_t lda, int64_t m, const void *adapter_a, float *t,
                    int64_t ldt);
double qkc_ref_lora_term(const qkc_matmul *mm, const float *t_row, const void *adapter_b, int64_t n, float scale);

/* ascale=static[:channel]: q = clamp(round_even((x/s) * (1/alpha))), every
 * block scale d[] = alpha. smooth may be NULL (ascale=static). */
void qkc_ref_int8_quantize_row_static(const float *x, int64_t k, const float *smooth, float alpha, int8_t *q,
                                      float *d);
/* The int8 quantization of one row of the spec (dynamic or static). */
void qkc_ref_int8_quantize(const qkc_matmul *mm, const qkc_act_scales *scales, const float *x, int8_t *q, float *d);

/* The LoRA and static-scale operands of options (NULL when struct_size
 * does not cover them), checked against the spec; fn names the caller in
 * messages. */
qkc_status qkc_run_extras(qkc_context *ctx, const char *fn, const qkc_matmul *mm, const qkc_run_options *options,
                          const qkc_lora **lora, const qkc_act_scales **scales);

/* outliers=act:T (ir/spec.h, formats/ref_outliers.c). The call's outlier
 * columns: flag[0..k) = 1 where some row m < M has |x[m, col]| > T, x the
 * activation widened from a_dtype and rotated (rotate > 0); returns how
 * many. row is scratch of k floats. */
int64_t qkc_ref_act_outlier_columns(qkc_dtype a_dtype, int rotate, double threshold, const void *a, int64_t lda,
                                    int64_t m, int64_t k, float *row, uint8_t *flag);

/* The int8 part of a row under outliers=act:T: the flagged columns of x
 * are copied to kept[col] (kept may be NULL) and set to 0, then the row is
 * quantized as qkc_ref_int8_quantize_row does. */
void qkc_ref_int8_quantize_split(float *x, int64_t k, const uint8_t *flag, int8_t *q, float *d, float *kept);

/* Little-endian field access shared by the codecs. */
static inline uint16_t qkc_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t qkc_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void qkc_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void qkc_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* A `bits`-wide field at bit `pos` of a little-endian stream of 32-bit
 * words, word r at base + r·stride. For 2/4/8 bits no field crosses a word;
 * for 3 bits this is exactly GPTQ's 96-bit runs (field 10 takes bits 30–31
 * of word 0 and bit 0 of word 1, field 21 bit 31 of word 1 and bits 0–1 of
 * word 2). Used by the GPTQ codec and by the packer. */
static inline uint32_t qkc_stream_field(const uint8_t *base, uint64_t stride, uint64_t pos, unsigned bits)
{
    uint64_t r = pos / 32;
    unsigned sh = (unsigned)(pos % 32);
    uint32_t v = qkc_rd32(base + r * stride) >> sh;
    if (sh + bits > 32)
        v |= qkc_rd32(base + (r + 1) * stride) << (32 - sh);
    return v & ((1u << bits) - 1u);
}

#endif /* QKC_RUNTIME_REF_H */
