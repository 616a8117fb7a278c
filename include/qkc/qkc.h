/*
 * qkc — quantized-matmul kernel compiler: the public C API.
 *
 * One operation:   C[M,N] = act( A[M,K] · dequant(W)[N,K]ᵀ + bias[N] )
 *
 * A spec (text, see docs/spec.md) describes one such product: N and K, the
 * weight format, the activation, compute and output types, the epilogue.
 * This header is the whole public surface. It is plain C11, usable from C++,
 * and never mentions LLVM.
 *
 * Conventions
 * - Every fallible call returns a qkc_status (QKC_OK == 0). On failure the
 *   context records a human-readable message, see qkc_context_last_error().
 * - Objects are opaque, made by *_create / *_parse and released by
 *   *_destroy, which accepts NULL.
 * - Extents are int64_t, byte counts size_t. Leading dimensions are in
 *   elements.
 * - Thread-safety: a context may be shared by several threads; every call
 *   that takes a context is safe to make concurrently. Specs are immutable
 *   after parsing and may be read from any thread.
 */
#ifndef QKC_QKC_H
#define QKC_QKC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QKC_VERSION_MAJOR 0
#define QKC_VERSION_MINOR 1
#define QKC_VERSION_PATCH 0
/* One integer that orders versions: major*10000 + minor*100 + patch. */
#define QKC_VERSION (QKC_VERSION_MAJOR * 10000 + QKC_VERSION_MINOR * 100 + QKC_VERSION_PATCH)

/* Status codes. Stable: values are never renumbered or reused. */
typedef enum qkc_status {
    QKC_OK = 0,
    QKC_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a bad size, a bad enum value */
    QKC_ERR_PARSE = 2,            /* spec text is not well-formed (message has line:col) */
    QKC_ERR_INVALID_SPEC = 3,     /* spec is well-formed but violates a rule of the verifier */
    QKC_ERR_NO_MEMORY = 4,        /* an allocation failed */
    QKC_ERR_UNSUPPORTED = 5,      /* valid, but not implemented for this target/format */
    QKC_ERR_BUFFER_TOO_SMALL = 6, /* an output or input buffer is smaller than required */
    QKC_ERR_LIMIT = 7,            /* a size exceeds qkc's documented limits */
    QKC_ERR_IO = 8,               /* a file could not be read or written */
    QKC_ERR_CORRUPT_DATA = 9,     /* input data is malformed (truncated file, bad header) */
    QKC_ERR_NO_DEVICE = 10,       /* the requested device or CPU feature is not available */
    QKC_ERR_COMPILE = 11,         /* code generation failed */
    QKC_ERR_INTERNAL = 12         /* a bug in qkc: please report the message */
} qkc_status;

/* ------------------------------------------------------------------ limits
 *
 * qkc's limits, all in one place (docs/spec.md, "Limits"). A request past
 * one fails with QKC_ERR_LIMIT (or QKC_ERR_INVALID_SPEC for a format rule)
 * and a message naming it; it never wraps around or truncates. Every size
 * qkc derives from them is computed with overflow checks in 64 bits, and
 * kernels index weights, activations and outputs with 64-bit arithmetic.
 */
#define QKC_MAX_DIM (INT64_C(1) << 24)            /* n, k and m each: 16 777 216 */
#define QKC_MAX_WEIGHTS (INT64_C(1) << 36)        /* n*k: weights of one matrix */
#define QKC_MAX_SUPER_GROUP 65536                 /* groups per double-quantization super-group */
#define QKC_MAX_OUTLIER_FRACTION 0.5              /* outliers=sparse:F, share of a row */
#define QKC_MAX_BLOB_BYTES (UINT64_C(1) << 40)    /* a weight blob, quantized or packed */
#define QKC_MAX_SPEC_BYTES (1u << 20)             /* text given to qkc_spec_parse */
#define QKC_MAX_THREADS 1024                      /* qkc_context_options.threads */
#define QKC_MAX_FILE_BYTES (UINT64_C(1) << 42)    /* a model or cache file qkc reads */

/* A static, never-NULL English name for a status ("ok", "parse error", ...). */
const char *qkc_status_str(qkc_status status);

/* Run-time version of the library, QKC_VERSION-encoded, and as "0.1.0". */
int qkc_version(void);
const char *qkc_version_string(void);

/* ---------------------------------------------------------------- context */

/* Allocator hook. All memory qkc allocates on behalf of a context goes
 * through it. Functions receive `user` unchanged. alloc returns NULL on
 * failure, and qkc then returns QKC_ERR_NO_MEMORY. free accepts NULL. */
typedef struct qkc_allocator {
    void *(*alloc)(size_t bytes, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} qkc_allocator;

typedef struct qkc_context_options {
    /* Size of this struct: set it to sizeof(qkc_context_options). */
    size_t struct_size;
    /* NULL: malloc/free. Copied by qkc_context_create. */
    const qkc_allocator *allocator;
    /* Threads kernels run on (0: one per online CPU). The pool starts with
     * the first kernel run. */
    int threads;
} qkc_context_options;

typedef struct qkc_context qkc_context;

/* Create a context. `options` may be NULL for defaults. On success *out owns
 * a new context, released by qkc_context_destroy. */
qkc_status qkc_context_create(const qkc_context_options *options, qkc_context **out);

/* Release a context. NULL is fine. Objects made from the context (specs)
 * must be destroyed first. */
void qkc_context_destroy(qkc_context *ctx);

/* The message of the most recent failing call on this context, or "" if
 * none. The pointer stays valid until the next failing call on the context;
 * when several threads share a context, prefer qkc_context_copy_error(). */
const char *qkc_context_last_error(const qkc_context *ctx);

/* Copy the most recent error message into buf (always NUL-terminated when
 * size > 0). Returns the message length, excluding the NUL. Thread-safe. */
size_t qkc_context_copy_error(const qkc_context *ctx, char *buf, size_t size);

/* ------------------------------------------------------------------- specs */

typedef struct qkc_spec qkc_spec;

/* Parse and verify a spec (one line or several; '#' starts a comment).
 * Errors: QKC_ERR_PARSE with "error: <line>:<col>: <what>" in the context
 * message, QKC_ERR_INVALID_SPEC / QKC_ERR_LIMIT naming the field and rule.
 * On success *out owns a new spec, released by qkc_spec_destroy. */
qkc_status qkc_spec_parse(qkc_context *ctx, const char *text, qkc_spec **out);

/* Release a spec. NULL is fine. */
void qkc_spec_destroy(qkc_spec *spec);

/* Write the canonical one-line text of a spec into buf (NUL-terminated).
 * *needed (may be NULL) receives the length excluding the NUL. If size is
 * too small, writes nothing useful and returns QKC_ERR_BUFFER_TOO_SMALL;
 * call with buf = NULL, size = 0 to learn the length. Parsing the canonical
 * text gives back an equal spec. */
qkc_status qkc_spec_print(const qkc_spec *spec, char *buf, size_t size, size_t *needed);

/* What a spec describes, for callers that do not want to parse text. The
 * strings are static keywords ("f32", "q4_0", ...). */
typedef struct qkc_spec_info {
    int64_t m;                   /* fixed M, or 0 when M is given at run time */
    int64_t n, k;
    const char *a_type;          /* activation dtype */
    const char *weight_format;   /* preset keyword or element dtype keyword */
    const char *compute_type;
    const char *out_type;
    int has_bias;                /* 1 when bias=f32 */
    const char *activation;      /* "none", "relu", "gelu", "silu" */
    size_t weight_bytes;         /* bytes of the quantized N×K weight blob */
    double bits_per_weight;      /* weight_bytes * 8 / (n * k) */
} qkc_spec_info;

qkc_status qkc_spec_query(const qkc_spec *spec, qkc_spec_info *out);

/* ------------------------------------------------- weights (reference path) */

/* Bytes of the quantized weight blob of a spec (all sections: elements,
 * scales, zeros, auxiliary tables). See docs/formats.md for the layout. */
qkc_status qkc_weights_bytes(qkc_context *ctx, const qkc_spec *spec, size_t *bytes);

/* Quantize f32 weights W[N,K] (row n at w + n*ldw, ldw >= K) into the spec's
 * format, writing exactly qkc_weights_bytes() bytes to dst (dst_bytes must
 * be at least that). The rules per format are in docs/formats.md; for the
 * GGUF legacy formats they are bit-identical to ggml's reference quantizers.
 * Non-finite weights are rejected with QKC_ERR_INVALID_ARGUMENT. */
qkc_status qkc_quantize(qkc_context *ctx, const qkc_spec *spec, const float *w, int64_t ldw,
                        void *dst, size_t dst_bytes);

/* Dequantize a weight blob (src_bytes >= qkc_weights_bytes()) into f32
 * W[N,K] (row n at w + n*ldw). Bit-exact with the external format's own
 * decoder (ggml, bitsandbytes, GPTQ/AWQ) per docs/formats.md. */
qkc_status qkc_dequantize(qkc_context *ctx, const qkc_spec *spec, const void *src,
                          size_t src_bytes, float *w, int64_t ldw);

/* Arguments of one matmul call. The same struct is used by the reference
 * and by compiled kernels. Element types follow the spec (a=..., out=...). */
typedef struct qkc_matmul_args {
    const void *a;        /* A[M,K], row m at a + m*lda elements */
    int64_t lda;
    const void *weights;  /* quantized blob of qkc_weights_bytes() bytes */
    size_t weights_bytes;
    const float *bias;    /* N floats when the spec has bias=f32, else NULL */
    void *c;              /* C[M,N], row m at c + m*ldc elements */
    int64_t ldc;
    int64_t m;            /* rows of A and C; must equal the spec's m if fixed */
} qkc_matmul_args;

/* The reference matmul: plain scalar C, double accumulation, modelling the
 * spec's compute type exactly (int8: dynamic per-block activation
 * quantization; bf16/f16/tf32: operand rounding). It is the oracle every
 * generated kernel is tested against. */
qkc_status qkc_reference_matmul(qkc_context *ctx, const qkc_spec *spec,
                                const qkc_matmul_args *args);

/* ------------------------------------------------------------ kernels */

/* The tunable parameters of a kernel, kept apart from the spec. A zero
 * field means "the default heuristic chooses". Text form (qkc_schedule_print
 * / _parse): "tm=4 tn=4 ku=1 vec=512 pf=0 nb=64". */
typedef struct qkc_schedule {
    int tile_m;      /* rows of A per register tile */
    int tile_n;      /* weight rows (outputs) per register tile */
    int k_unroll;    /* chunks of K per loop iteration */
    int vector_bits; /* 256 or 512 */
    int prefetch;    /* weight prefetch distance in chunks, 0 = none */
    int n_block;     /* outputs per thread work item */
} qkc_schedule;

typedef struct qkc_compile_options {
    size_t struct_size;            /* sizeof(qkc_compile_options) */
    const char *target;            /* NULL: QKC_TARGET, else the host; or "x86_64-avx2", ... */
    const qkc_schedule *schedule;  /* NULL: heuristic */
} qkc_compile_options;

typedef struct qkc_kernel qkc_kernel;

/* JIT-compile a kernel for a spec. The spec may be destroyed afterwards.
 * A second compile of the same (spec, schedule, target) on the same context
 * returns a new handle to the already compiled code (in-memory cache).
 * Errors: QKC_ERR_NO_DEVICE (the target needs CPU features this machine
 * lacks), QKC_ERR_INVALID_ARGUMENT (bad schedule), QKC_ERR_COMPILE.
 * Thread-safe. */
qkc_status qkc_kernel_compile(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                              qkc_kernel **out);

/* Release a kernel handle. NULL is fine. */
void qkc_kernel_destroy(qkc_kernel *kernel);

/* Bytes of the packed weights this kernel reads. */
qkc_status qkc_kernel_packed_bytes(const qkc_kernel *kernel, size_t *bytes);

/* Convert a weight blob (as qkc_quantize writes it) into the kernel's
 * packed layout, once: dst must hold qkc_kernel_packed_bytes() bytes.
 * Formats already in the kernel's layout are copied. */
qkc_status qkc_weights_pack(qkc_context *ctx, const qkc_kernel *kernel, const void *weights,
                            size_t weights_bytes, void *dst, size_t dst_bytes);

typedef struct qkc_run_options {
    size_t struct_size; /* sizeof(qkc_run_options) */
    int threads;        /* 0: all of the context's threads */
} qkc_run_options;

/* Run C = act(A·Wᵀ + bias) with args->weights holding PACKED weights
 * (qkc_weights_pack). `options` may be NULL. Thread-safe: many threads may
 * run the same kernel at once. */
qkc_status qkc_kernel_run(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *args,
                          const qkc_run_options *options);

/* What was compiled: static strings valid while the kernel lives. */
typedef struct qkc_kernel_info {
    const char *target;      /* the target compiled for: "host", "x86_64-avx512", ... */
                             /* (for "host", `features` lists exactly what was used) */
    const char *features;    /* "avx2 fma f16c avx512f ..." */
    const char *schedule;    /* text form of the schedule used */
    const char *layout;      /* the packed weight layout, and any fallback */
    const char *symbol;      /* the kernel's symbol name */
    double compile_ms;       /* 0 when it came from a cache */
    int from_cache;          /* 1: in-memory cache hit */
} qkc_kernel_info;

qkc_status qkc_kernel_query(const qkc_kernel *kernel, qkc_kernel_info *out);

/* Generated code of a kernel: "asm" (text), "llvm" (optimised IR, text) or
 * "obj" (an ELF object, binary). The kernel's symbol is "qkc_kernel".
 * Writes into buf like qkc_spec_print (needed receives the length; text is
 * NUL-terminated). The target need not be this machine's. */
qkc_status qkc_kernel_emit(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                           const char *what, char *buf, size_t size, size_t *needed);

#ifdef __cplusplus
}
#endif

#endif /* QKC_QKC_H */
