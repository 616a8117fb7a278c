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
#define QKC_MAX_FILE_TENSORS (INT64_C(1) << 21)    /* tensors (and metadata entries) of one checkpoint file */

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

/* A report of a long operation's progress (qkc_context_options.progress). */
typedef struct qkc_progress {
    const char *task; /* "aot" */
    int64_t done;     /* steps finished, 0..total */
    int64_t total;
    const char *item; /* what step done+1 is about (the last step when done == total) */
} qkc_progress;

/* A context reads the environment (QKC_TARGET, QKC_CACHE, QKC_TUNE_DB, ...:
 * docs/api.md, "Environment") once, in qkc_context_create: variables set
 * later do not change it. */
typedef struct qkc_context_options {
    /* Size of this struct: set it to sizeof(qkc_context_options). */
    size_t struct_size;
    /* NULL: malloc/free. Copied by qkc_context_create. */
    const qkc_allocator *allocator;
    /* Threads kernels run on (0: one per online CPU). The pool starts with
     * the first kernel run. */
    int threads;
    /* The persistent kernel cache (docs/api.md, "Kernel cache"): compiled
     * kernels are kept on disk so a later process links them without
     * generating code. disk_cache: QKC_DISK_CACHE_DEFAULT (on, unless the
     * environment has QKC_CACHE=off), QKC_DISK_CACHE_ON or _OFF. cache_dir:
     * NULL means $QKC_CACHE_DIR, else $XDG_CACHE_HOME/qkc, else
     * $HOME/.cache/qkc; the string is copied. */
    int disk_cache;
    const char *cache_dir;
    /* Warnings that do not fail a call (a corrupt cache entry that was
     * rebuilt, a cache directory that cannot be written). NULL: printed to
     * stderr as "qkc: warning: <message>". Called on the calling thread. */
    void (*warn)(const char *message, void *user);
    void *warn_user;
    /* Progress of long operations (qkc_aot_write: a report before each
     * kernel it compiles and one when all are done), on the calling
     * thread. NULL: none. */
    void (*progress)(const qkc_progress *progress, void *user);
    void *progress_user;
    /* A tuning database file (docs/tuning.md) that qkc_kernel_compile
     * consults when the caller gives no schedule. NULL: $QKC_TUNE_DB, else
     * none. Read once, at the first compile; a missing or unreadable file
     * is reported through `warn` and compiles fall back to the heuristic.
     * The string is copied. */
    const char *tune_db;
} qkc_context_options;


enum { QKC_DISK_CACHE_DEFAULT = 0, QKC_DISK_CACHE_ON = 1, QKC_DISK_CACHE_OFF = 2 };

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
    int lora_rank;               /* lora=R:DTYPE: R; else 0 */
    const char *lora_type;       /* the adapters' dtype ("f32", "f16", "bf16"), or "none" */
    const char *act_scales;      /* ascale: "dynamic", "static", "static:channel" */
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

/* SmoothQuant folding for ascale=static:channel specs: quantize W·diag(s),
 * i.e. w[n,k]·smooth[k] rounded to f32, exactly as qkc_quantize would
 * quantize that matrix. smooth holds K finite factors > 0 (the same vector
 * the kernel later receives in qkc_act_scales.smooth). Errors: those of
 * qkc_quantize, QKC_ERR_INVALID_ARGUMENT for a bad factor or a product
 * that overflows, QKC_ERR_NO_MEMORY (it allocates N·K floats). */
qkc_status qkc_quantize_smoothed(qkc_context *ctx, const qkc_spec *spec, const float *w, int64_t ldw,
                                 const float *smooth, void *dst, size_t dst_bytes);

/* Dequantize a weight blob (src_bytes >= qkc_weights_bytes()) into f32
 * W[N,K] (row n at w + n*ldw). Bit-exact with the external format's own
 * decoder (ggml, bitsandbytes, GPTQ/AWQ) per docs/formats.md. */
qkc_status qkc_dequantize(qkc_context *ctx, const qkc_spec *spec, const void *src,
                          size_t src_bytes, float *w, int64_t ldw);

/* Rotate `count` rows of K floats (row r at rows + r*ld, ld >= K) in place
 * by the spec's rotation, R = blockdiag(H_B)/sqrt(B) for rotate=hadamard:B
 * (docs/spec.md), exactly as kernels rotate activations. Quantizing W·R
 * (qkc_rotate_rows on the weights, then qkc_quantize) gives the stored
 * weights such a spec expects. Errors: QKC_ERR_INVALID_ARGUMENT (a spec
 * without rotate=, NULL, ld < K). Thread-safe. */
qkc_status qkc_rotate_rows(qkc_context *ctx, const qkc_spec *spec, float *rows, int64_t count, int64_t ld);

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

/* Run-time operands of two optional spec features (ir/spec.h, docs/spec.md).
 *
 * lora=R:DTYPE: adapters in the spec's lora dtype (f32: float, f16/bf16:
 * uint16_t bit patterns), row-major and dense:
 *   a  A[R][K]: row j, column k at a + j*K elements;
 *   b  B[N][R]: row n (one per output), column j at b + n*R elements;
 *   scale  s, finite; the output gains s·(X·Aᵀ)·Bᵀ before the bias.
 * The caller keeps them alive for the call; they are read, never kept. */
typedef struct qkc_lora {
    const void *a;
    const void *b;
    float scale;
} qkc_lora;

/* compute=int8 ascale=static / static:channel (SmoothQuant W8A8):
 *   alpha   the calibrated per-tensor activation scale, finite and > 0;
 *   smooth  ascale=static:channel: K factors s_k (finite, > 0) that divide
 *           the activations; the weights must have been quantized from
 *           W·diag(s) (qkc_quantize_smoothed). NULL for ascale=static. */
typedef struct qkc_act_scales {
    float alpha;
    const float *smooth;
} qkc_act_scales;

/* The reference matmul: plain scalar C, double accumulation, modelling the
 * spec's compute type exactly (int8: dynamic per-block activation
 * quantization; bf16/f16/tf32: operand rounding). It is the oracle every
 * generated kernel is tested against. */
qkc_status qkc_reference_matmul(qkc_context *ctx, const qkc_spec *spec,
                                const qkc_matmul_args *args);

/* ------------------------------------------------------------ kernels */

/* The tunable parameters of a kernel, kept apart from the spec. A zero
 * field means "the default heuristic chooses". Text form (qkc_schedule_print
 * / _parse): "tm=4 tn=4 ku=1 vec=512 pf=0 nb=64"; the compiler checks the
 * values against the target when it completes a schedule. */
typedef struct qkc_schedule {
    int tile_m;      /* rows of A per register tile */
    int tile_n;      /* weight rows (outputs) per register tile */
    int k_unroll;    /* chunks of K per loop iteration */
    int vector_bits; /* 256 or 512 */
    int prefetch;    /* weight prefetch distance in chunks, 0 = none */
    int n_block;     /* outputs per thread work item */
} qkc_schedule;

/* Parse a schedule's text form: space-separated key=value pairs from
 * tm tn ku vec pf nb, each at most once, missing keys left 0 (heuristic).
 * Errors: QKC_ERR_PARSE naming the word. */
qkc_status qkc_schedule_parse(qkc_context *ctx, const char *text, qkc_schedule *out);

/* Print the text form with snprintf semantics; returns the length. */
size_t qkc_schedule_print(const qkc_schedule *schedule, char *buf, size_t size);

typedef struct qkc_compile_options {
    size_t struct_size;            /* sizeof(qkc_compile_options) */
    const char *target;            /* NULL: the context's QKC_TARGET, else the host; or "x86_64-avx2", ... */
    const qkc_schedule *schedule;  /* NULL: the tuning database's entry, else the heuristic */
    /* The M the kernel will mostly run with (0: 1). It picks the tuning
     * database's M bucket (1, 2-8, 9-64, 65+) when `schedule` is NULL, and
     * at 32 or more the heuristic's prefill tiles. The kernel runs any M:
     * without a schedule, calls on the other side of 32 rows get code
     * scheduled for them (qkc_kernel_query_m). */
    int64_t m_hint;
} qkc_compile_options;

typedef struct qkc_kernel qkc_kernel;

/* JIT-compile a kernel for a spec. The spec may be destroyed afterwards.
 * A second compile of the same (spec, schedule, target) on the same context
 * returns a new handle to the already compiled code (in-memory cache).
 * Errors: QKC_ERR_NO_DEVICE (the target needs CPU features this machine
 * lacks), QKC_ERR_INVALID_ARGUMENT (bad schedule), QKC_ERR_COMPILE.
 * An NVPTX target ("nvptx-sm80", "nvptx-sm90") compiles PTX and loads it
 * through the CUDA driver (see "GPUs" below; QKC_ERR_NO_DEVICE "no CUDA
 * driver ..." without one). Thread-safe. */
qkc_status qkc_kernel_compile(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                              qkc_kernel **out);

/* Release a kernel handle. NULL is fine. For a tiered kernel this stops
 * its background tuning (at the next measurement) and waits for it. */
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
    /* read only when struct_size covers them (older callers: NULL) */
    const qkc_lora *lora;              /* lora=R:DTYPE specs: adapters and scale; else NULL */
    const qkc_act_scales *act_scales;  /* ascale=static[:channel] specs; else NULL */
} qkc_run_options;

/* Run C = act(A·Wᵀ + bias) with args->weights holding PACKED weights
 * (qkc_weights_pack). `options` may be NULL. Thread-safe: many threads may
 * run the same kernel at once. For a GPU kernel the pointers are host
 * memory: the call copies weights, activations and bias to the device,
 * runs and copies C back (simple, but it moves the weights on every call;
 * qkc_kernel_run_device keeps them on the device). */
qkc_status qkc_kernel_run(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *args,
                          const qkc_run_options *options);

/* Grouped run (MoE experts): `count` products with the same kernel, each
 * with its own packed weights (one expert's), activation rows, output and
 * m, as if qkc_kernel_run were called for each in order; the routing (which
 * rows go to which expert) is the caller's. A group with m = 0 is skipped.
 * Stops at the first group that fails, whose index the message names.
 * Errors: those of qkc_kernel_run. */
qkc_status qkc_kernel_run_grouped(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *groups,
                                  int64_t count, const qkc_run_options *options);

/* qkc_reference_matmul for specs with lora= or ascale=static: the same,
 * with the run-time operands taken from options->lora and
 * options->act_scales (options->threads is ignored; options may be NULL
 * for a spec that needs neither). Errors as qkc_kernel_run's for these
 * operands: QKC_ERR_INVALID_ARGUMENT when one the spec needs is missing,
 * one is given that the spec does not use, or a scale is not valid. */
qkc_status qkc_reference_matmul_with_options(qkc_context *ctx, const qkc_spec *spec, const qkc_matmul_args *args,
                                             const qkc_run_options *options);

/* ------------------------------------------------------ GPUs (CUDA)
 *
 * Kernels compiled for an NVPTX target ("nvptx-sm80", "nvptx-sm90") run
 * on an NVIDIA GPU through the CUDA driver, which qkc loads at run time
 * (dlopen of libcuda.so.1: no link-time CUDA dependency). Each context
 * uses device 0's primary context. Without the driver, or without a
 * device, every call here (and qkc_kernel_compile for an NVPTX target)
 * fails with QKC_ERR_NO_DEVICE and the message "no CUDA driver
 * (libcuda.so.1 not found)" or "no CUDA device ...". Thread-safe; device
 * memory belongs to the caller, who frees it before destroying the
 * context. docs/gpu.md has the details.
 */
typedef uint64_t qkc_device_ptr; /* a device address; 0 is none */

typedef struct qkc_device_info {
    int count;        /* devices the driver sees */
    char name[128];   /* device 0's name */
    int sm;           /* device 0's compute capability, major*10 + minor (80, 90) */
    size_t memory;    /* device 0's memory in bytes */
} qkc_device_info;

/* Load the driver and describe the devices. */
qkc_status qkc_device_query(qkc_context *ctx, qkc_device_info *out);

/* Device memory (256-byte aligned): allocate, free (0 is fine), copy host
 * to device, device to host, device to device. Copies to and from the
 * host wait for the kernels launched before them; a device-to-device copy
 * is ordered after them and may return before it finishes. */
qkc_status qkc_device_alloc(qkc_context *ctx, size_t bytes, qkc_device_ptr *out);
qkc_status qkc_device_free(qkc_context *ctx, qkc_device_ptr ptr);
qkc_status qkc_device_upload(qkc_context *ctx, qkc_device_ptr dst, const void *src, size_t bytes);
qkc_status qkc_device_download(qkc_context *ctx, void *dst, qkc_device_ptr src, size_t bytes);
qkc_status qkc_device_copy(qkc_context *ctx, qkc_device_ptr dst, qkc_device_ptr src, size_t bytes);
/* Wait for everything launched on the context's device. */
qkc_status qkc_device_synchronize(qkc_context *ctx);

/* Activations for a GPU kernel, prepared on the host as the reference
 * models them (rounded to the compute type, int8-quantized for
 * compute=int8, act-order permuted): rows of *ld 4-byte elements (padded
 * with zeros) — f32 values, or, for compute=int8 kernels whose weights
 * have integer codes, each row's int8 codes, block scales and code sums
 * (a layout only the kernel reads; docs/gpu.md). a: A[m][lda] in the spec's activation dtype. With dst NULL
 * only *needed (bytes) and *ld are set. packed_weights: the kernel's
 * packed weights on the host (read for an act-order permutation; may be
 * NULL otherwise). Errors: QKC_ERR_BUFFER_TOO_SMALL, INVALID_ARGUMENT. */
qkc_status qkc_kernel_prepare_a(qkc_context *ctx, const qkc_kernel *kernel, const void *a, int64_t lda, int64_t m,
                                const void *packed_weights, float *dst, size_t dst_bytes, size_t *needed,
                                int64_t *ld);

/* A GPU kernel's operands in device memory: a from qkc_kernel_prepare_a
 * (lda its *ld), weights packed (qkc_weights_pack, then uploaded), bias N
 * floats or 0, c M×ldc in the output dtype. */
typedef struct qkc_device_args {
    qkc_device_ptr a;
    int64_t lda;
    qkc_device_ptr weights;
    size_t weights_bytes;
    qkc_device_ptr bias;
    qkc_device_ptr c;
    int64_t ldc;
    int64_t m;
} qkc_device_args;

/* Launch a GPU kernel on device operands; asynchronous (wait with
 * qkc_device_synchronize or a download). Errors: QKC_ERR_INVALID_ARGUMENT
 * (a CPU kernel, a misaligned or missing operand, a bad ld), NO_DEVICE. */
qkc_status qkc_kernel_run_device(qkc_context *ctx, const qkc_kernel *kernel, const qkc_device_args *args);

/* What was compiled: static strings valid while the kernel lives. */
typedef struct qkc_kernel_info {
    const char *target;      /* the target compiled for: "host", "x86_64-avx512", ... */
                             /* (for "host", `features` lists exactly what was used) */
    const char *features;    /* "avx2 fma f16c avx512f ..." */
    const char *schedule;    /* text form of the schedule used */
    const char *layout;      /* the packed weight layout, and any fallback */
    const char *symbol;      /* the kernel's symbol name */
    double compile_ms;       /* time the compile took; 0 for an in-memory cache hit */
    int from_cache;          /* 1: in-memory cache hit */
    int from_disk;           /* 1: linked from the disk cache, no code generated */
    int ahead_of_time;       /* 1: a kernel of an AOT library (qkc_aot_kernel) */
    uintptr_t entry;         /* address of the entry point qkc_kernel_run calls */
} qkc_kernel_info;

qkc_status qkc_kernel_query(const qkc_kernel *kernel, qkc_kernel_info *out);

/* What a call with m activation rows runs. A kernel compiled for a
 * run-time M without a given schedule has two schedules: the one for the
 * M it was compiled for (m_hint, else 1), which qkc_kernel_query reports,
 * and one for the other side of 32 rows (decode below, prefill from 32
 * on: taller register tiles), compiled by the first call that needs it —
 * or by this query. Both read the same packed weights. A schedule given
 * at compile time, by qkc_kernel_set_schedule or by a fixed M serves
 * every call. Errors: INVALID_ARGUMENT (m out of range). */
qkc_status qkc_kernel_query_m(qkc_context *ctx, const qkc_kernel *kernel, int64_t m, qkc_kernel_info *out);

/* Generated code of a kernel: "asm" (text; PTX for an NVPTX target, also
 * named "ptx"), "llvm" (optimised IR, text),
 * "bc" (LLVM bitcode, binary) or "obj" (an ELF object, binary). The
 * kernel's symbol is "qkc_kernel".
 * Writes into buf like qkc_spec_print (needed receives the length; text is
 * NUL-terminated). The target need not be this machine's. */
qkc_status qkc_kernel_emit(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                           const char *what, char *buf, size_t size, size_t *needed);

/* ------------------------------------------------------------ kernel cache */

/* The persistent kernel cache is a directory of entry files, one per
 * compiled kernel, named by the SHA-256 of its key (canonical spec,
 * schedule, target triple and features, qkc and LLVM versions). Entries
 * are written atomically and checked (lengths and a SHA-256) when read; a
 * corrupt one is reported through the context's warning hook and rebuilt.
 * Entries and a directory that another user could have written (not this
 * user's, or writable by group or others; a symbolic link) are refused
 * with a warning, and the kernel compiled without them (docs/aot.md,
 * "Trust"). Importing entries means trusting them like any other
 * machine code. */

/* The context's cache directory, or NULL when the disk cache is off. */
const char *qkc_cache_dir(const qkc_context *ctx);

typedef struct qkc_cache_entry_info {
    const char *file;    /* the entry's file name in the directory */
    const char *spec;    /* canonical spec ("" if the entry is unreadable) */
    const char *target;  /* target name, triple, CPU and LLVM features */
    const char *versions;/* "qkc 0.1.0 llvm 19.1.7" */
    uint64_t bytes;      /* file size */
    int64_t mtime;       /* seconds since the epoch */
    const char *problem; /* NULL for a valid entry, else why it is not */
} qkc_cache_entry_info;

/* Call fn once per entry file of the cache directory (in no set order).
 * The strings are valid during the call. Errors: QKC_ERR_IO, and
 * QKC_ERR_INVALID_ARGUMENT when the cache is off. */
qkc_status qkc_cache_list(qkc_context *ctx, void (*fn)(const qkc_cache_entry_info *entry, void *user), void *user);

/* Remove every entry file (and left-over temporary files) of the cache
 * directory; nothing else in it is touched. *removed may be NULL. */
qkc_status qkc_cache_clear(qkc_context *ctx, size_t *removed);

/* Write every valid entry into one bundle file, or read a bundle and add
 * its entries to the cache. Import checks every entry before it writes
 * any: a bundle with a corrupt entry is rejected whole
 * (QKC_ERR_CORRUPT_DATA). Both fail with QKC_ERR_IO on a cache directory
 * that is not trusted. *count (may be NULL) receives the entries. */
qkc_status qkc_cache_export(qkc_context *ctx, const char *file, size_t *count);
qkc_status qkc_cache_import(qkc_context *ctx, const char *file, size_t *count);

/* ---------------------------------------------------------- AOT libraries */

/* An ahead-of-time library made by `qkc compile --emit lib` (or
 * qkc_aot_write): kernels for several specs, each possibly for several
 * targets, plus a table the runtime reads. The generated header declares
 * the table as `extern const qkc_aot_library qkc_aot_<name>;`. Programs
 * that use AOT kernels need only libqkc_rt (no LLVM). */
typedef struct qkc_aot_library qkc_aot_library;

/* A handle to the kernel of `lib` that computes `spec`, for the best
 * variant this CPU runs: options->target (or QKC_TARGET) picks a variant by
 * target name; otherwise the first variant, in the library's order of
 * preference, whose CPU features this machine has. The handle works with
 * qkc_weights_pack, qkc_kernel_run, qkc_kernel_query (target names the
 * variant chosen) and qkc_kernel_destroy. Errors: QKC_ERR_UNSUPPORTED (no
 * kernel for this spec, or no variant named so; the message lists what the
 * library has), QKC_ERR_NO_DEVICE (the variant needs features this CPU
 * lacks), QKC_ERR_CORRUPT_DATA (not a qkc library, or one made by another
 * qkc version). Thread-safe. */
qkc_status qkc_aot_kernel(qkc_context *ctx, const qkc_aot_library *lib, const qkc_spec *spec,
                          const qkc_compile_options *options, qkc_kernel **out);

typedef struct qkc_aot_variant_info {
    const char *spec;     /* canonical spec */
    const char *target;   /* target name */
    const char *features; /* CPU features it needs */
    const char *symbol;   /* entry point (declared in the generated header) */
    const char *schedule; /* schedule text */
} qkc_aot_variant_info;

/* The variants of a library: count (-1 if `lib` is not a qkc library of
 * this version), then each by index. Strings are the library's own. */
int qkc_aot_variant_count(const qkc_aot_library *lib);
qkc_status qkc_aot_variant(const qkc_aot_library *lib, int index, qkc_aot_variant_info *out);

typedef struct qkc_aot_options {
    size_t struct_size;          /* sizeof(qkc_aot_options) */
    const char *name;            /* C identifier: table qkc_aot_<name>, entry points qkc_aot_<name>_<i> */
    const char *const *targets;  /* target names, in order of preference; NULL: "host" */
    int target_count;
    const qkc_schedule *schedule;/* NULL: heuristic for each kernel */
} qkc_aot_options;

/* Generate an AOT product for specs x targets and write it to `path`
 * (atomically: a temporary file renamed into place). what: "lib" (a static
 * library: one object per kernel variant and the dispatch table, with a
 * symbol index) or "header" (the C header declaring the argument struct,
 * the entry points and the table). libqkc only. */
qkc_status qkc_aot_write(qkc_context *ctx, const qkc_spec *const *specs, int spec_count,
                         const qkc_aot_options *options, const char *what, const char *path);

/* ------------------------------------------------------ checkpoint files */

/*
 * A GGUF or safetensors file opened for reading (docs/files.md). The file
 * is memory-mapped read-only or read into memory (qkc_file_options.load);
 * every count, size and offset in it is
 * checked against the file size when it is opened, so a malformed file
 * fails qkc_file_open with QKC_ERR_CORRUPT_DATA (or QKC_ERR_UNSUPPORTED,
 * QKC_ERR_LIMIT) and a message naming what is wrong and where.
 *
 * The file lists its tensors. A tensor qkc can run as a weight matrix
 * carries a format (spec text such as "w=q4_k" or "w=gptq:4:actorder
 * group=128") and N×K; its qkc weight blob is either the file's bytes in
 * place (GGUF tensors, dense safetensors tensors) or imported from several
 * tensors (GPTQ, AWQ, bitsandbytes NF4), bit for bit. The others say why
 * not ("unsupported" in qkc_tensor_info).
 *
 * Thread-safety: a file is immutable after opening; every function below
 * that takes a const qkc_file may be called from several threads at once.
 */
typedef struct qkc_file qkc_file;

typedef struct qkc_file_options {
    size_t struct_size; /* sizeof(qkc_file_options) */
    /* GPTQ zero-point convention: 0 = from the safetensors metadata key
     * "checkpoint_format" ("gptq_v2" means v2, anything else v1), 1 = v1
     * (qzeros hold zero − 1, AutoGPTQ), 2 = v2 (qzeros hold zero, GPTQModel). */
    int gptq_version;
    /* How qkc_file_open holds the file (read only when struct_size covers
     * it): QKC_FILE_LOAD_DEFAULT maps it, unless the environment has
     * QKC_FILE_MMAP=0, which means QKC_FILE_LOAD_READ. QKC_FILE_LOAD_MMAP
     * maps it read-only: nothing is copied and only the pages used are
     * read, but the file must not shrink while it is open (touching a
     * page past its new end is a SIGBUS from the operating system, which
     * no library can turn into an error). QKC_FILE_LOAD_READ reads the
     * whole file into memory of the context: the file may then change or
     * go away without harm. Ignored by qkc_file_open_memory. */
    int load;
} qkc_file_options;

enum { QKC_FILE_LOAD_DEFAULT = 0, QKC_FILE_LOAD_MMAP = 1, QKC_FILE_LOAD_READ = 2 };

/* Open and validate a file. The format is found from the contents ("GGUF"
 * magic, or a safetensors header), else from the extension (.gguf,
 * .safetensors). A path ending in ".index.json" is a sharded safetensors
 * checkpoint (model.safetensors.index.json): every shard its "weight_map"
 * names is opened from the index's folder with the same options, and the
 * file lists the tensors of all of them as one (an import's tensors may
 * sit in different shards); a shard name that is not a plain file name, a
 * missing shard, or a tensor the index places elsewhere or not at all is
 * QKC_ERR_CORRUPT_DATA (or the shard's own error).
 * .safetensors). `options` may be NULL. Anything but a regular file (a
 * FIFO, a device, a directory) is refused without blocking. On success
 * *out owns the file, released by qkc_file_close. Errors: QKC_ERR_IO
 * (cannot open, read or map; "not a regular file"), QKC_ERR_CORRUPT_DATA,
 * QKC_ERR_UNSUPPORTED (e.g. GGUF v1, big-endian), QKC_ERR_LIMIT (more
 * than QKC_MAX_FILE_BYTES bytes or QKC_MAX_FILE_TENSORS tensors or
 * metadata entries), QKC_ERR_NO_MEMORY, QKC_ERR_INVALID_ARGUMENT. */
qkc_status qkc_file_open(qkc_context *ctx, const char *path, const qkc_file_options *options, qkc_file **out);

/* The same over bytes already in memory. The file borrows `data`: it must
 * stay valid and unchanged until qkc_file_close. */
qkc_status qkc_file_open_memory(qkc_context *ctx, const void *data, size_t bytes, const qkc_file_options *options,
                                qkc_file **out);

/* Unmap and release a file. NULL is fine. Pointers obtained from the file
 * (names, data) are invalid afterwards. */
void qkc_file_close(qkc_file *file);

typedef struct qkc_file_info {
    const char *format;  /* "gguf" or "safetensors" */
    int version;         /* GGUF version (2 or 3); 0 for safetensors */
    int64_t tensors;     /* entries for qkc_file_tensor */
    int64_t metadata;    /* entries for qkc_file_metadata */
    uint64_t alignment;  /* GGUF data alignment; 0 for safetensors */
    size_t bytes;        /* file size (a sharded checkpoint: its index and every shard) */
} qkc_file_info;

qkc_status qkc_file_query(const qkc_file *file, qkc_file_info *out);

/* One metadata entry: GGUF key/value pairs, safetensors __metadata__.
 * Strings are valid while the file is open. */
typedef struct qkc_file_meta {
    const char *key;
    const char *type;  /* GGUF: "u32", "string", "array", ...; safetensors: "string" */
    int64_t count;     /* array elements, else 1 */
    const char *value; /* printable value ("32", "llama", "[string x 32000]") */
} qkc_file_meta;

/* Errors: QKC_ERR_INVALID_ARGUMENT (index out of range, NULL). */
qkc_status qkc_file_metadata(const qkc_file *file, int64_t index, qkc_file_meta *out);

/* The lengths in bytes of entry `index`'s key and value. A GGUF key or
 * string value has a length, not a terminator, and may hold NUL bytes:
 * qkc_file_meta's key and value are then NUL-terminated after these many
 * bytes, and a program that shows them should go by the lengths. Names
 * and values come from the file: escape control bytes before printing
 * them to a terminal. Errors: those of qkc_file_metadata. */
qkc_status qkc_file_metadata_bytes(const qkc_file *file, int64_t index, size_t *key_bytes, size_t *value_bytes);

/* One tensor. Strings and data are valid while the file is open. */
typedef struct qkc_tensor_info {
    const char *name;
    const char *dtype;       /* the file's type name: "Q4_K", "F16" (GGUF), "I32", "BF16" (safetensors) */
    int n_dims;
    int64_t shape[4];        /* outermost first, as PyTorch prints it: GGUF's ne[] reversed */
    uint64_t offset;         /* byte offset of the tensor's data in the file */
    size_t bytes;            /* bytes of data */
    const void *data;        /* the data, in the file's mapping (or its copy in memory) */
    int runnable;            /* 1: qkc runs this tensor as a weight matrix */
    int64_t n, k;            /* runnable: outputs (rows) and inputs (reduction length) */
    const char *weights;     /* runnable: spec text of the format, e.g. "w=q4_k"; else "" */
    const char *unsupported; /* not runnable: why ("part of X.qweight", "qkc has no q2_k preset yet"); else "" */
    int in_place;            /* runnable: the weight blob is (data, bytes) itself */
    size_t weights_bytes;    /* runnable: bytes of the qkc weight blob (qkc_weights_bytes of its spec) */
} qkc_tensor_info;

qkc_status qkc_file_tensor(const qkc_file *file, int64_t index, qkc_tensor_info *out);

/* Index of the tensor called `name`; also accepts a GPTQ/AWQ/bitsandbytes
 * module prefix ("model.layers.0.mlp.up_proj" for ".qweight" / ".weight"):
 * its runnable weight, else the weight that does not run (whose
 * qkc_tensor_info.unsupported says why). Errors: QKC_ERR_INVALID_ARGUMENT
 * ("no tensor named ...", followed by up to three of the file's names
 * that contain `name` or are within a few edits of it: "did you mean
 * ...?"). */
qkc_status qkc_file_find(qkc_context *ctx, const qkc_file *file, const char *name, int64_t *index);

/* A spec for a runnable tensor: "matmul n=N k=K <weights> <extra>", where
 * extra (may be NULL) adds keys such as "a=bf16 compute=int8 act=silu".
 * Errors: QKC_ERR_UNSUPPORTED (tensor not runnable, message says why), the
 * errors of qkc_spec_parse for a bad `extra`. */
qkc_status qkc_file_spec(qkc_context *ctx, const qkc_file *file, int64_t index, const char *extra, qkc_spec **out);

/* Write the tensor's qkc weight blob (weights_bytes bytes, as qkc_quantize
 * would write it for its spec) into dst: a copy of the file's bytes for
 * in-place tensors, the import for GPTQ/AWQ/NF4. Errors:
 * QKC_ERR_UNSUPPORTED, QKC_ERR_BUFFER_TOO_SMALL, QKC_ERR_UNSUPPORTED for a
 * GPTQ v2 zero of 0 (v1 cannot hold it). In-place tensors need no copy:
 * pass info.data to qkc_dequantize / qkc_reference_matmul directly. */
qkc_status qkc_file_weights(qkc_context *ctx, const qkc_file *file, int64_t index, void *dst, size_t dst_bytes);

/* One call: compile the kernel of `spec` (text; NULL or "auto" means
 * qkc_file_spec(file, index, "a=f32 out=f32")), whose n, k and weight
 * format must be the tensor's, and run it on the tensor with args->a,
 * lda, bias, c, ldc and m (args->weights is ignored). Kernels whose packed
 * layout is the blob itself read the file's mapping in place; others get
 * a packed copy (allocated from the context and freed before returning).
 * `compile` and `run` may be NULL. Errors: those of qkc_file_spec,
 * qkc_kernel_compile, qkc_weights_pack and qkc_kernel_run, and
 * QKC_ERR_INVALID_ARGUMENT when the spec does not describe the tensor.
 * Part of libqkc (needs the compiler). */
qkc_status qkc_file_run(qkc_context *ctx, const qkc_file *file, int64_t index, const char *spec,
                        const qkc_matmul_args *args, const qkc_compile_options *compile, const qkc_run_options *run);

/* MoE expert stacks: a 3-D GGUF tensor of PyTorch shape [E, N, K] runs as
 * E matrices of N x K, expert e's blob the e-th weights_bytes of the
 * tensor's data. qkc_tensor_info describes one expert (n, k,
 * weights_bytes; shape and bytes are the whole stack's, data is expert
 * 0's). *count (may be NULL) receives E (1 for a plain matrix); *data
 * (may be NULL) expert `expert`'s blob in the file's memory, no copy (a
 * plain matrix: its blob when in place, else NULL: use
 * qkc_file_weights). qkc_file_weights and qkc_file_run refuse a stack
 * (there is no single blob); qkc_file_run_expert runs one expert.
 * Errors: QKC_ERR_INVALID_ARGUMENT (expert out of range), those of
 * qkc_file_tensor for a tensor that does not run. */
qkc_status qkc_file_expert(qkc_context *ctx, const qkc_file *file, int64_t index, int64_t expert, const void **data,
                           int64_t *count);
qkc_status qkc_file_run_expert(qkc_context *ctx, const qkc_file *file, int64_t index, int64_t expert,
                               const char *spec, const qkc_matmul_args *args, const qkc_compile_options *compile,
                               const qkc_run_options *run);

/* ---------------------------------------------------------------- tuning */

/* Autotuning (docs/tuning.md): search the schedules of a spec for the
 * fastest on this machine, per M, and keep the results in a tuning
 * database that qkc_kernel_compile consults. */

/* Progress lines of a tuning run ("m=8 rung 1: 12 candidates ..."), on
 * the tuning thread. */
typedef void (*qkc_tune_progress_fn)(const char *line, void *user);

typedef struct qkc_tune_options {
    size_t struct_size;          /* sizeof(qkc_tune_options) */
    const char *target;          /* NULL: QKC_TARGET, else the host */
    const int64_t *m_list;       /* the Ms to tune for (at most QKC_TUNE_MAX_M); NULL: {1} */
    int m_count;
    int max_trials;              /* candidates measured per M (0: no limit) */
    double max_seconds;          /* seconds per M, compiles included (0: no limit; both 0: 200 trials) */
    int cold;                    /* 1: time with weights streamed from memory (copies >= 1 GiB) */
    int threads;                 /* threads per timed call (0: 1) */
    int exhaustive;              /* 1: measure every point of the space, ignore the budget */
    const char *db_path;         /* non-NULL: merge the results into this file (created if absent) */
    qkc_tune_progress_fn progress;
    void *progress_user;
} qkc_tune_options;

enum { QKC_TUNE_MAX_M = 16 };

typedef struct qkc_tune_m_result {
    int64_t m;
    qkc_schedule best;           /* complete; equal to heuristic when nothing beat it */
    qkc_schedule heuristic;      /* the default heuristic's schedule */
    double best_us, default_us;  /* medians, measured alternately at the end */
    int trials;                  /* candidates measured */
    int rejected;                /* candidates that failed to compile or to match the reference */
    double seconds;              /* time spent on this M */
} qkc_tune_m_result;

typedef struct qkc_tune_result {
    int count;
    qkc_tune_m_result m[QKC_TUNE_MAX_M];
    char target[32];             /* target tuned for */
    char features[256];          /* its CPU features */
} qkc_tune_result;

/* Tune `spec` for every M of options->m_list. Every candidate is checked
 * against the reference matmul before it is timed; the best is kept only
 * if its median beats the heuristic's, measured alternately. With db_path,
 * the file is loaded (if it exists), the results merged in and the file
 * rewritten atomically. `out` may be NULL. Errors: those of
 * qkc_kernel_compile, QKC_ERR_IO / QKC_ERR_CORRUPT_DATA for the database.
 * Thread-safe (it compiles and runs on the given context). */
qkc_status qkc_tune(qkc_context *ctx, const qkc_spec *spec, const qkc_tune_options *options, qkc_tune_result *out);

/* Tiered compilation: compile a kernel at once (the database's schedule or
 * the heuristic, like qkc_kernel_compile) and keep tuning it on a
 * background thread for M = compile options' m_hint (or 1) under
 * tune_options' budget (NULL: 50 trials; its m_list and db_path are
 * ignored). When a faster schedule is found the handle switches to it
 * atomically: each qkc_kernel_run uses one complete kernel for the whole
 * call. Packed weights stay valid (the packed layout does not depend on
 * the schedule). qkc_kernel_destroy stops the tuning. */
qkc_status qkc_kernel_compile_tiered(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                                     const qkc_tune_options *tune_options, qkc_kernel **out);

/* Wait until a tiered kernel's background tuning has finished (at once for
 * other kernels). *switched (may be NULL) receives 1 when the handle now
 * runs a tuned schedule. Returns the tuning's status. */
qkc_status qkc_kernel_tier_wait(qkc_kernel *kernel, int *switched);

/* Switch a JIT kernel handle to another schedule of the same spec and
 * target (compiled now; partial schedules are completed by the
 * heuristic), atomically as for tiered kernels. Calls running meanwhile
 * finish on the code they started with. Thread-safe. Errors: those of
 * qkc_kernel_compile; QKC_ERR_UNSUPPORTED for AOT kernels. */
qkc_status qkc_kernel_set_schedule(qkc_context *ctx, qkc_kernel *kernel, const qkc_schedule *schedule);

/* The tuning database: entries (canonical spec, M bucket, target,
 * features, qkc version, schedule, median µs, default µs, date), one line
 * each in a text file (docs/tuning.md). At most one entry per (spec,
 * bucket, features, version): adding or merging keeps the faster. */
typedef struct qkc_tune_db qkc_tune_db;

typedef struct qkc_tune_entry {
    const char *spec;            /* canonical spec text */
    const char *m_bucket;        /* "1", "2-8", "9-64" or "65+" */
    const char *target;          /* target name tuned for */
    const char *features;        /* its CPU features ("avx2 fma ...") */
    const char *version;         /* qkc version ("0.1.0") */
    qkc_schedule schedule;
    double us, default_us;
    const char *date;            /* "YYYY-MM-DD" */
} qkc_tune_entry;

qkc_status qkc_tune_db_create(qkc_context *ctx, qkc_tune_db **out);
void qkc_tune_db_destroy(qkc_tune_db *db);

/* Add the entries of a file. Errors: QKC_ERR_IO (cannot read),
 * QKC_ERR_CORRUPT_DATA ("FILE:LINE: what is wrong"; nothing is added). */
qkc_status qkc_tune_db_load(qkc_tune_db *db, const char *path);

/* Write every entry (sorted) to a file atomically. */
qkc_status qkc_tune_db_save(const qkc_tune_db *db, const char *path);

/* Add one entry (strings copied); version NULL means this qkc, date NULL
 * today. Keeps the faster of two entries with the same key. */
qkc_status qkc_tune_db_add(qkc_tune_db *db, const qkc_tune_entry *entry);

/* Add every entry of src to db. */
qkc_status qkc_tune_db_merge(qkc_tune_db *db, const qkc_tune_db *src);

int qkc_tune_db_count(const qkc_tune_db *db);
/* Entry by index; strings valid until the database changes. */
qkc_status qkc_tune_db_get(const qkc_tune_db *db, int index, qkc_tune_entry *out);

/* The M bucket of an M: "1", "2-8", "9-64", "65+". */
const char *qkc_tune_m_bucket(int64_t m);

/* The schedule for spec, M bucket of m and target (NULL: host) from
 * entries of this qkc version and the target's exact features. Entries
 * for the same spec and bucket but another version or features are
 * ignored, with a note through the context's warning hook (once per
 * entry). Returns QKC_OK with *found 0 when there is none. */
qkc_status qkc_tune_db_lookup(qkc_tune_db *db, const qkc_spec *spec, int64_t m, const char *target,
                              qkc_schedule *out, int *found);

#ifdef __cplusplus
}
#endif

#endif /* QKC_QKC_H */
