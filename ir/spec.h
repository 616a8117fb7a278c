/*
 * The matmul description: qkc's one operation, its text form and verifier.
 *
 *     C[M,N] = act( A[M,K] · dequant(W)[N,K]ᵀ + bias[N] )
 *
 * Semantics, written once (docs/spec.md restates them for users):
 *
 * - Row-major everywhere. A row m holds K activations; W row n holds the K
 *   weights of output n (format.h gives the weight conventions); C row m
 *   holds N outputs. M is given at run time unless the spec fixes m=.
 * - Activations are f32, f16 or bf16 in memory and are read exactly.
 * - Compute types define which rounding the product may apply to its
 *   operands; the reference models each exactly:
 *     f32   operands exact (dequantized weights are exact f32 values);
 *     bf16  A and dequantized W rounded to bf16 (RNE), products summed;
 *     f16   the same with f16 (RNE, overflow to Inf);
 *     tf32  the same with tf32 (RNE on the 13 dropped bits);
 *     int8  A quantized per row in blocks of 32 along K (the last block may
 *           be shorter): d = amax/127 in f32, q = clamp(round-half-even(
 *           x · (1/d)), −127, 127), d = 0 gives q = 0; the product then uses
 *           d·q in place of x. Weights enter exactly.
 *   Accumulation: the reference sums in double; kernels in f32 (or int32
 *   for int8 dot products); the tolerance table bounds the difference.
 * - Default compute type (qkc_default_compute), for a text that names no
 *   compute=: int8 for the presets whose llama.cpp CPU kernel quantizes
 *   the activations itself (presets.def's vec_dot_type: the ggml types)
 *   wherever compute=int8 is accepted, else f32. So w=q4_0 computes as
 *   llama.cpp does, and compute=f32 asks for exact operands.
 * - Rotation (rotate=hadamard:B, QuaRot/HIGGS style): each row of A is
 *   multiplied, before any compute-type rounding or int8 quantization, by
 *   R = blockdiag(H_B) / sqrt(B) along K, where H_B is the Sylvester
 *   Hadamard matrix of order B (a power of two dividing K). The weights are
 *   stored already rotated (W·R), so (A·R)·(W·R)ᵀ = A·Wᵀ. R is applied in
 *   f32 exactly as qkc_ref_hadamard_row does (butterflies x+y, x−y for
 *   h = 1, 2, 4, …, then one multiplication by 1/sqrt(B) rounded to f32);
 *   kernels and the reference use that same function.
 * - LoRA side path (lora=R:DTYPE, QLoRA inference without merging): with
 *   adapters A [R][K] and B [N][R] in DTYPE (f32, f16 or bf16, read
 *   exactly) and a scale s (f32), all given at run time,
 *       C = act( A·dequant(W)ᵀ + s·(X·Aᵀ)·Bᵀ + bias ).
 *   X is the activations as read from memory, widened to f32: before
 *   rotation, compute-type rounding or int8 quantization. T = X·Aᵀ [M][R]
 *   is computed once per call on the host by qkc_ref_lora_t: each T[m,j]
 *   sums X[m,k]·A[j,k] in double for k = 0, 1, …, K−1, then rounds to f32;
 *   kernels and the reference use that function. The term
 *   s·Σ_j T[m,j]·B[n,j] is then added to the product before the bias: the
 *   reference sums it in double (s, T, B exact), kernels in f32 in any
 *   order and multiply by s in f32.
 * - Static activation scales (compute=int8 ascale=static[:channel],
 *   SmoothQuant W8A8): the int8 quantization of A uses a calibrated f32
 *   α > 0 given at run time instead of the per-block amax. With
 *   ascale=static:channel a smoothing vector s[K] (f32, > 0) divides A
 *   first, and the weights were quantized from W·diag(s)
 *   (qkc_quantize_smoothed), so X·diag(1/s)·(W·diag(s))ᵀ = X·Wᵀ.
 *   Per element, after any rotation: x' = x / s_k rounded to f32
 *   (ascale=static: x' = x), q = clamp(round-half-even(x' · (1/α)), −127,
 *   127) with 1/α rounded to f32; the product uses α·q in place of x. This
 *   is qkc_ref_int8_quantize_row_static; every block scale is α.
 * - Activation outliers (outliers=act:T, LLM.int8; compute=int8 only): per
 *   call, column k of A is an outlier column when |x[m,k]| > T for at least
 *   one of the call's M rows, x the activation after widening and rotation
 *   (a NaN never exceeds T). Each row is int8-quantized as above with its
 *   outlier columns set to 0 first (so they do not widen the block scales);
 *   the product then uses x itself (f32, exact) in outlier columns and d·q
 *   elsewhere, against the same exactly dequantized weights. Without
 *   outlier columns this is plain compute=int8.
 * - Epilogue, in this order: + bias[n] (f32), then act, then conversion to
 *   the output dtype (RNE): relu(x) = max(x, 0); gelu(x) = x·Φ(x) with the
 *   exact erf; silu(x) = x / (1 + e^−x).
 *
 * Limits (checked by the verifier, QKC_ERR_LIMIT; named in qkc/qkc.h):
 * 1 ≤ n, k, m ≤ QKC_MAX_DIM = 2^24, and n·k ≤ QKC_MAX_WEIGHTS = 2^36.
 */
#ifndef QKC_IR_SPEC_H
#define QKC_IR_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"
#include "ir/format.h"

/* QKC_MAX_DIM, QKC_MAX_WEIGHTS and qkc's other limits: include/qkc/qkc.h. */
#define QKC_INT8_BLOCK 32
/* Calls with at least this many activation rows are prefill: the schedule
 * heuristic gives them taller tiles (codegen/schedule.c), and a kernel
 * compiled for a run-time M switches code at this M (runtime/kernel.h). */
#define QKC_PREFILL_M 32

typedef enum qkc_compute {
    QKC_COMPUTE_F32 = 1,
    QKC_COMPUTE_INT8 = 2,
    QKC_COMPUTE_BF16 = 3,
    QKC_COMPUTE_F16 = 4,
    QKC_COMPUTE_TF32 = 5
} qkc_compute;

typedef enum qkc_act { QKC_ACT_NONE = 0, QKC_ACT_RELU = 1, QKC_ACT_GELU = 2, QKC_ACT_SILU = 3 } qkc_act;

typedef enum qkc_bias { QKC_BIAS_NONE = 0, QKC_BIAS_F32 = 1 } qkc_bias;

/* How compute=int8 scales activations (append-only). */
typedef enum qkc_ascale {
    QKC_ASCALE_DYNAMIC = 0,        /* amax per block of 32 */
    QKC_ASCALE_STATIC = 1,         /* one calibrated alpha for the tensor */
    QKC_ASCALE_STATIC_CHANNEL = 2  /* alpha after a per-channel smoothing vector */
} qkc_ascale;

typedef struct qkc_matmul {
    int64_t m; /* 0: M given at run time */
    int64_t n, k;
    qkc_dtype a_dtype;
    qkc_format w;
    qkc_compute compute;
    qkc_bias bias;
    qkc_act act;
    qkc_dtype out_dtype;
    int32_t rotate; /* 0: none; else the Hadamard block B along K */
    int32_t lora_rank;    /* 0: no LoRA side path; else R, 1 .. QKC_MAX_LORA_RANK */
    qkc_dtype lora_dtype; /* adapters A and B: f32, f16 or bf16 */
    qkc_ascale ascale;    /* compute=int8 activation scales */
} qkc_matmul;

/* Largest threshold of outliers=act:T (any finite float threshold would
 * do; this keeps infinities and NaN out). */
#define QKC_MAX_ACT_THRESHOLD 1e30

/* Largest Hadamard block of rotate=hadamard:B. */
#define QKC_MAX_ROTATE_BLOCK 65536

/* Largest rank of lora=R:DTYPE. */
#define QKC_MAX_LORA_RANK 128

/* The keys of the text form, in canonical order. */
typedef enum qkc_key {
    QKC_KEY_M, QKC_KEY_N, QKC_KEY_K, QKC_KEY_A, QKC_KEY_W, QKC_KEY_GROUP, QKC_KEY_SCALE,
    QKC_KEY_ZERO, QKC_KEY_OUTLIERS, QKC_KEY_COMPUTE, QKC_KEY_BIAS, QKC_KEY_ACT, QKC_KEY_OUT,
    QKC_KEY_LAYOUT, QKC_KEY_ROTATE, QKC_KEY_LORA, QKC_KEY_ASCALE, QKC_KEY_TABLE, QKC_KEY_VQ, QKC_KEY_BITS,
    QKC_KEY_COUNT
} qkc_key;

const char *qkc_key_name(qkc_key key);

/* Where each key appeared in the text (1-based line and column of the key;
 * line 0 when absent). */
typedef struct qkc_spec_positions {
    int line[QKC_KEY_COUNT];
    int col[QKC_KEY_COUNT];
} qkc_spec_positions;

/* Parse text into *out and verify it. On failure the diag message reads
 * "<line>:<col>: <what is wrong and what was expected>" and the status is
 * QKC_ERR_PARSE (malformed text), QKC_ERR_INVALID_SPEC (a rule of the
 * verifier) or QKC_ERR_LIMIT. positions (may be NULL) receives key places. */
qkc_status qkc_matmul_parse(const char *text, qkc_matmul *out, qkc_spec_positions *positions,
                            qkc_diag *diag);

/* Check every rule on a description (whether parsed or built in code).
 * On failure *bad_key (may be NULL) names the key the rule is about. */
qkc_status qkc_matmul_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key);

/* The compute type of a description whose text names no compute= (the
 * parser sets it; the printer omits compute= when it is this): int8 when
 * w= is a preset with a vec_dot_type (presets.def) and compute=int8 passes
 * the verifier's compute rules for mm's activations and weights, f32
 * otherwise (generic formats such as w=int4 group=32 included). Reads
 * every field but mm->compute, so the answer does not depend on it. */
qkc_compute qkc_default_compute(const qkc_matmul *mm);

/* Canonical one-line text. snprintf semantics: returns the full length and
 * writes at most size bytes including the NUL. */
size_t qkc_matmul_print(const qkc_matmul *mm, char *buf, size_t size);

/* Structural equality. */
int qkc_matmul_equal(const qkc_matmul *a, const qkc_matmul *b);

/* Keywords of the enums ("f32", "silu", ...). */
const char *qkc_compute_keyword(qkc_compute c);
const char *qkc_act_keyword(qkc_act a);

/* The default description of a format named by a preset with options, or
 * by a bare element dtype. Options: the text after the preset keyword,
 * e.g. "8:actorder" for gptq (may be NULL/empty). */
qkc_status qkc_format_from_words(const char *word, size_t len, const char *options, size_t olen,
                                 qkc_format *out, qkc_diag *diag);

/* Reconstruct the options string of a preset format ("8:actorder", "dq",
 * "e5m2", or ""). */
void qkc_format_options(const qkc_format *f, char *buf, size_t size);

#endif /* QKC_IR_SPEC_H */
