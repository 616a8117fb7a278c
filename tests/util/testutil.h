/*
 * Shared test helpers. Seeds derive from a case's printable name (never
 * from time or true randomness), so a failure reruns exactly.
 */
#ifndef QKC_TESTS_TESTUTIL_H
#define QKC_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct qkc_rng {
    uint64_t s;
} qkc_rng;

/* Seed from a case name (FNV-1a of the string). */
qkc_rng qkc_rng_from_name(const char *name);
uint64_t qkc_rng_u64(qkc_rng *r);
/* Uniform in [0, n). */
uint64_t qkc_rng_below(qkc_rng *r, uint64_t n);
/* Uniform float in [lo, hi). */
float qkc_rng_uniform(qkc_rng *r, float lo, float hi);
/* Approximately normal(0, 1) (sum of uniforms), deterministic. */
float qkc_rng_normal(qkc_rng *r);

/* Running one case: QKC_CASE=<case name> selects it. 1 when no case is
 * selected (QKC_CASE unset or empty) or when `name` is the selected one. */
int qkc_case_selected(const char *name);

/* In a cmocka test: fail case `name` unless cond, printing the message and
 * the command that reruns just that case in program `prog`. */
#define QKC_CASE_CHECK(prog, name, cond, ...)                                                 \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            print_error("case %s: ", (name));                                                 \
            print_error(__VA_ARGS__);                                                         \
            print_error("\n  rerun: QKC_CASE=%s ./%s\n", (name), (prog));                     \
            fail();                                                                           \
        }                                                                                     \
    } while (0)

/* SHA-256 (qkc_sha256_hex: 64 lowercase hex characters plus NUL) is the
 * runtime's own. */
#include "cache/sha256.h"

/* Parse hex (whitespace ignored) into out; returns bytes written or -1. */
long qkc_hex_decode(const char *hex, uint8_t *out, size_t cap);

/* Quantize seeded random weights (seed: `name`), pack them for `kern`, run
 * it on M seeded rows (f32/f16/bf16 activations as the spec says) with
 * `threads` (0: the context's) and compare with the reference matmul by the
 * kernel bounds of the tolerance table (tolerance.h): every element within
 * its sum's condition bound (or one ulp of an f16/bf16 output), NMSE and
 * max error over enough outputs, nothing written past C. 0 on a match, else
 * 1 with the first reason in msg. Needs no compiler: AOT kernels too. */
typedef struct qkc_context qkc_context;
typedef struct qkc_spec qkc_spec;
typedef struct qkc_kernel qkc_kernel;
struct qkc_run_options;
int qkc_test_kernel_case(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name, int64_t m,
                         int threads, char *msg, size_t msg_size);

/* The same with extra run-time operands (extra->lora, extra->act_scales,
 * extra->threads) given to both the kernel and the reference; with a
 * smoothing vector the weights are quantized by qkc_quantize_smoothed. The
 * per-element bound adds |s|·Σ_j |T_j·B_j| of the LoRA term to the sum's
 * condition. */
int qkc_test_kernel_case_with(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                              int64_t m, const struct qkc_run_options *extra, char *msg, size_t msg_size);

/* The same, with the kernel run by `runner` instead of qkc_kernel_run
 * (kernels run another way: the GPU emulator of tests/gpu). runner gets
 * the host operands qkc_kernel_run would; 0 on success, else 1 with the
 * reason in msg. */
struct qkc_matmul_args;
typedef int (*qkc_test_runner)(qkc_context *ctx, const qkc_kernel *kern, const struct qkc_matmul_args *args,
                               const struct qkc_run_options *options, void *user, char *msg, size_t msg_size);
int qkc_test_kernel_case_run(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                             int64_t m, qkc_test_runner runner, void *user, char *msg, size_t msg_size);

/* The same with the context's threads. */
int qkc_test_kernel_vs_reference(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                                 int64_t m, char *err, size_t err_size);

/* Specs a test expects refused: each text must fail qkc_spec_parse with
 * `status` and a message containing `message`, creating nothing. Returns
 * how many did not; the first is described in msg. */
typedef struct qkc_test_bad_spec {
    const char *text, *message;
    int status; /* a qkc_status */
} qkc_test_bad_spec;
size_t qkc_test_refused(qkc_context *ctx, const qkc_test_bad_spec *bad, size_t count, char *msg, size_t msg_size);

/* `text` parses and prints exactly as `canonical`, which parses back and
 * prints the same. 0, else 1 with the reason in msg. */
int qkc_test_canonical(qkc_context *ctx, const char *text, const char *canonical, char *msg, size_t msg_size);

/* The instruction-set levels the JIT tests compare on this machine, lowest
 * first: the architecture's base named target (x86_64-avx2, aarch64-neon),
 * then "host" when the CPU has more (AVX-512 on x86-64, dotprod on
 * aarch64). Returns how many are in out[0..1]; 0, with the reason in *why,
 * when this CPU runs no base level (x86-64 without AVX2, another
 * architecture). Features are read only with the architecture they belong to. */
int qkc_test_isa_levels(const char **out, const char **why);

/* The widest vector (bits) of the target a kernel compiled without a named
 * target gets: the one QKC_TARGET names, else this machine's (256 on an
 * AVX2 CPU or under QKC_TARGET=x86_64-avx2, 512 with AVX-512, 128 on
 * aarch64). 0 when this machine runs no qkc CPU target. Schedules a test
 * writes by hand take min(their width, this). */
int qkc_test_vector_bits(void);

#endif
