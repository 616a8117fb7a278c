/*
 * Runtime-internal view of a context: allocation through the context's
 * allocator and error recording. Every runtime file that allocates or
 * reports goes through these.
 */
#ifndef QKC_RUNTIME_CONTEXT_H
#define QKC_RUNTIME_CONTEXT_H

#include <stddef.h>

#include "ir/diag.h"
#include "qkc/qkc.h"

/* Allocate through the context's allocator; NULL on failure (the caller
 * returns QKC_ERR_NO_MEMORY via qkc_fail). Sizes are checked by callers. */
void *qkc_alloc(qkc_context *ctx, size_t bytes);
/* Zero-filled; n*size overflow gives NULL. */
void *qkc_calloc(qkc_context *ctx, size_t n, size_t size);
void qkc_free(qkc_context *ctx, void *ptr);

/* Record an error message on the context (printf-style), return status. */
qkc_status qkc_fail(qkc_context *ctx, qkc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Report a warning that does not fail the call (the context's hook, or
 * stderr). */
void qkc_warn(qkc_context *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Report progress through the context's hook (none: nothing happens). */
void qkc_report_progress(qkc_context *ctx, const char *task, int64_t done, int64_t total, const char *item);

/* Copy an IR diagnostic into the context, return its status. */
qkc_status qkc_fail_diag(qkc_context *ctx, const qkc_diag *diag);

#endif /* QKC_RUNTIME_CONTEXT_H */

/* ------------------------------------------------ kernels and threads */

#include "runtime/threadpool.h"

/* Threads kernels run on (the option, or one per online CPU). */
int qkc_context_threads(const qkc_context *ctx);

/* The context's thread pool, created on first use. NULL on failure, with
 * the status in *st and a message on the context. */
qkc_threadpool *qkc_context_pool(qkc_context *ctx, qkc_status *st);

/* An extension slot owned by the compiler (libqkc) so that the runtime
 * library needs no LLVM: get the state, creating it with `create` the
 * first time (under the context's lock). `destroy` runs at context
 * destruction. Returns NULL if create fails: create records the message
 * and sets *st to its status, which comes back in *st (QKC_OK otherwise);
 * a later call tries to create the state again. */
void *qkc_context_extension(qkc_context *ctx, void *(*create)(qkc_context *ctx, qkc_status *st),
                            void (*destroy)(void *state), qkc_status *st);

/* A second slot of the same kind for the device layer (runtime/cuda.c),
 * destroyed after the compiler's. */
void *qkc_context_device(qkc_context *ctx, void *(*create)(qkc_context *ctx, qkc_status *st),
                         void (*destroy)(void *state), qkc_status *st);

/* The context's tuning database (the tune_db option or $QKC_TUNE_DB),
 * loaded on first use; NULL when there is none or it could not be read
 * (reported once through the warning hook). Read-only after loading. */
qkc_tune_db *qkc_context_tune_db(qkc_context *ctx);
