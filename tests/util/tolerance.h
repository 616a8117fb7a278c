/*
 * The tolerance table: every error bound the tests use, in one place.
 *
 * Round-trip bounds (quantize then dequantize, standard-normal weights,
 * 64 x 1024): the NMSE — sum((dequant(quant(w)) - w)^2) / sum(w^2) — must
 * stay at or below `max_nmse`. Each bound is 1.5x the value measured when
 * the format's codec was written (the measured value is in the comment), so
 * a codec that loses a bit of precision fails the test.
 */
#ifndef QKC_TESTS_TOLERANCE_H
#define QKC_TESTS_TOLERANCE_H

#include <stddef.h>

typedef struct qkc_tol_roundtrip {
    const char *weights; /* the w=... part of a spec, with its format keys */
    double max_nmse;
} qkc_tol_roundtrip;

const qkc_tol_roundtrip *qkc_tol_roundtrip_table(size_t *count);

/*
 * Kernel bounds: a compiled kernel against the reference matmul on the
 * same quantized weights. The reference models the compute type exactly
 * (operand rounding, int8 activation quantization), so what remains is
 * f32 accumulation order against double: NMSE <= 1e-10 for f32 output
 * (the acceptance bound of the JIT issue). f16/bf16 outputs add one
 * rounding of the f32 result, which can land one unit in the last place
 * (ulp) of the output type away from the reference's when the two f32
 * values straddle a rounding boundary: each element must then be within
 * `max_ulps` of the reference, and the NMSE bound is that worst case
 * (2^-22 for f16's 11-bit significand, 2^-16 for bf16's 8 bits).
 */
typedef struct qkc_tol_kernel {
    const char *compute; /* "*" matches any */
    const char *out;
    double max_nmse;     /* sum (c - ref)^2 / sum ref^2, over >= QKC_TOL_MIN_OUTPUTS outputs */
    double max_abs_rel;  /* max |c - ref| / max |ref| (f32 output) */
    int max_ulps;        /* per element, in the output type (0: not used) */
    /* Per element, |c - ref| <= cond_factor * sqrt(K) * 2^-24 * sum_k |a_k w_k|:
     * the error of an f32 sum of K terms is bounded relative to the sum of
     * their magnitudes, not to the (possibly cancelling) result. */
    double cond_factor;
} qkc_tol_kernel;

/* NMSE is a statistic: below this many outputs one cancelling sum would
 * dominate it, and the per-element bounds decide alone. */
#define QKC_TOL_MIN_OUTPUTS 256

const qkc_tol_kernel *qkc_tol_kernel_for(const char *compute, const char *out);

/*
 * Compute-type bounds: what a compute type's rounding of the operands
 * costs against exact f32 operands, both products computed by the
 * reference on the same quantized weights (test_ref_matmul,
 * test_compute_error: standard-normal activations, M = 16, N = 64,
 * K = 1024, weights N(0, 0.05²) in every preset that computes in int8 by
 * default): the NMSE sum((c - c_f32)^2) / sum(c_f32^2) must stay at or
 * below `max_nmse`, 1.5x the largest value measured over those presets
 * (in the comment). compute=int8 is those presets' default (ir/spec.h):
 * its row is the error the default adds to the format's own (the
 * round-trip bounds above), and what compute=f32 avoids.
 */
typedef struct qkc_tol_compute {
    const char *compute; /* the spec's compute= value */
    double max_nmse;
} qkc_tol_compute;

const qkc_tol_compute *qkc_tol_compute_table(size_t *count);

#endif
