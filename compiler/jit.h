/*
 * What the compiler driver's files share (jit.c, aotgen.c, tune.c):
 * generating one kernel's code as bytes, for qkc_kernel_emit and AOT
 * libraries, and compiling with flags.
 */
#ifndef QKC_COMPILER_JIT_H
#define QKC_COMPILER_JIT_H

#include <stddef.h>

#include "qkc/qkc.h"
#include "targets/target.h"

typedef struct qkc_emit_info {
    qkc_target target;     /* resolved */
    qkc_schedule schedule; /* completed */
    int int8_dot;
    int panel; /* rows per weight panel of the layout, 0: rows */
    char layout[256];
} qkc_emit_info;

/* Generate `spec`'s kernel for options' target (need not be this
 * machine's) as "asm", "llvm" (text IR), "bc" or "obj", with the kernel's
 * function named `symbol`. *data comes from the context's allocator
 * (qkc_free) and is NUL-terminated; *len
 * excludes the NUL. info (may be NULL) receives what was decided. */
qkc_status qkc_emit_code(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, const char *what,
                         const char *symbol, char **data, size_t *len, qkc_emit_info *info);

/* qkc_kernel_compile with flags: QKC_JIT_NO_DISK_CACHE neither reads nor
 * writes the disk cache (tuning candidates must not flood it). */
enum { QKC_JIT_NO_DISK_CACHE = 1 };
qkc_status qkc_jit_compile(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, int flags,
                           qkc_kernel **out);

/* Background work that compiles into a context's JIT (tiered kernels'
 * tuning): tracked so that destroying the context first calls stop(),
 * which must end the work and wait for it. */
typedef struct qkc_background {
    struct qkc_background *next;
    void (*stop)(struct qkc_background *bg);
} qkc_background;

qkc_status qkc_jit_track(qkc_context *ctx, qkc_background *bg);
/* 1 if bg was tracked (and is no longer), 0 if the context already stopped it. */
int qkc_jit_untrack(qkc_context *ctx, qkc_background *bg);

#endif
