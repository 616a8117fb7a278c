/*
 * Compiled kernels as the runtime sees them. A qkc_compiled is the
 * immutable product of one compile (the JIT, or a row of an AOT table): what the
 * code computes, the layout it reads, and the entry point. It lives as long
 * as the code does (the JIT keeps it until its context is destroyed). A
 * qkc_kernel is a user's handle to one.
 */
#ifndef QKC_RUNTIME_KERNEL_H
#define QKC_RUNTIME_KERNEL_H

#include <stdatomic.h>

#include "ir/kernel_abi.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"

typedef struct qkc_compiled {
    qkc_matmul mm;
    qkc_klayout layout;
    qkc_schedule schedule;
    qkc_kernel_fn fn;
    int int8_dot;          /* A is passed as int8 codes + block scales */
    char target[32];
    char features[256];
    char schedule_text[96];
    char symbol[64];
    double compile_ms;
    int from_disk;         /* linked from the disk cache */
    int ahead_of_time;     /* from an AOT library's table */
    int gpu;               /* a GPU kernel: gpu_function (a CUfunction) instead of fn */
    void *gpu_function;
    int gpu_mma;           /* the GPU kernel has the tensor-core path (ir/kernel_abi.h) */
} qkc_compiled;

/* `code` is atomic: a tiered kernel (compiler/tune.c) switches it to a
 * newer, fully built qkc_compiled with a release store; every reader
 * takes one acquire snapshot (qkc_kernel_code) and uses only that for the
 * whole call. Replaced code stays valid until the context dies. */
struct qkc_kernel {
    qkc_context *ctx;
    const qkc_compiled *_Atomic code;
    qkc_compiled *owned; /* code that lives with this handle (AOT kernels), freed with it */
    int from_cache;
    struct qkc_tier *tier;             /* background tuning of a tiered kernel, or NULL */
    void (*tier_stop)(qkc_kernel *k);  /* stops and frees `tier` (set with it) */
    /* A kernel for a run-time M compiled without a fixed schedule serves
     * both sides of QKC_PREFILL_M: `code` was scheduled for the M the
     * compile named (its m_hint, else 1), `alt` for the other side
     * (alt_prefill: calls with M >= QKC_PREFILL_M). The JIT sets
     * alt_compile; the first call that needs `alt` compiles it (a race
     * compiles it twice into the same cached code). Both read one layout.
     * alt_off: a fixed schedule was set since (or alt failed to compile):
     * `code` serves every M. */
    const qkc_compiled *_Atomic alt;
    int alt_prefill;
    int alt_flags;
    atomic_int alt_off;
    qkc_status (*alt_compile)(qkc_kernel *k, const qkc_compiled **out);
};

static inline const qkc_compiled *qkc_kernel_code(const qkc_kernel *k)
{
    return atomic_load_explicit(&((qkc_kernel *)k)->code, memory_order_acquire);
}

/* Wrap compiled code in a new handle (allocated from ctx). */
/* Warps of a GPU kernel's grid for m rows and n columns (the grid shapes
 * of ir/kernel_abi.h). */
int64_t qkc_gpu_warps(const qkc_compiled *code, int64_t m, int64_t n);

qkc_status qkc_kernel_wrap(qkc_context *ctx, const qkc_compiled *code, int from_cache, qkc_kernel **out);

#endif
