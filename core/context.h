/*
 * Runtime-internal view of a context: allocation through the context's
 * allocator and error recording. Every runtime file that allocates or
 * reports goes through these.
 */
#ifndef QKC_CORE_CONTEXT_H
#define QKC_CORE_CONTEXT_H

#include <stddef.h>

#include "ir/diag.h"
#include "qkc/qkc.h"

/* Allocate through the context's allocator; NULL on failure (the caller
 * returns QKC_ERR_NO_MEMORY via qkc_fail). Sizes are checked by callers. */
void *qkc_alloc(qkc_context *ctx, size_t bytes);
/* Zero-filled; n*size overflow gives NULL. */
void *qkc_calloc(qkc_context *ctx, size_t n, size_t size);
void qkc_free(qkc_context *ctx, void *ptr);

/* The allocator the context was created with (for code that allocates on
 * its behalf without naming the context, e.g. codegen/). */
const qkc_allocator *qkc_context_allocator(const qkc_context *ctx);

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


/* ------------------------------------------------ kernels and threads */

#include "core/threadpool.h"

/* Threads kernels run on (the option, or one per online CPU). */
int qkc_context_threads(const qkc_context *ctx);

/* The context's thread pool, created on first use. NULL on failure, with
 * the status in *st and a message on the context. */
qkc_threadpool *qkc_context_pool(qkc_context *ctx, qkc_status *st);

/* State that a layer above the core keeps per context, created on first
 * use (under the context's lock) and destroyed with the context, in the
 * order of this enum: the compiler's (compiler/jit.c: its kernels' code
 * lives in the device's driver context), then the device layer's
 * (runtime/cuda.c), then the tuning database (cache/tune_db.c). The core
 * names no type of theirs, so it depends on none of them. */
typedef enum qkc_context_slot_id {
    QKC_SLOT_COMPILER,
    QKC_SLOT_DEVICE,
    QKC_SLOT_TUNE_DB,
    QKC_SLOT_COUNT
} qkc_context_slot_id;

/* Get the state in `slot`, creating it with `create` the first time.
 * Returns NULL if create fails: create records the message and sets *st
 * to its status, which comes back in *st (QKC_OK otherwise); a later call
 * tries to create the state again. `destroy` runs at context destruction. */
void *qkc_context_slot(qkc_context *ctx, qkc_context_slot_id slot, void *(*create)(qkc_context *ctx, qkc_status *st),
                       void (*destroy)(void *state), qkc_status *st);

/* The tuning database's path (the tune_db option or $QKC_TUNE_DB); NULL
 * when there is none. cache/tune_db.c loads it (qkc_context_tune_db). */
const char *qkc_context_tune_db_path(const qkc_context *ctx);

#endif /* QKC_CORE_CONTEXT_H */
