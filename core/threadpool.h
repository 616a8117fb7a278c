/*
 * A persistent thread pool for data-parallel loops (the runtime splits a
 * kernel's N tiles over it). Plain C11 atomics + pthreads, no global state:
 * the pool belongs to whoever creates it.
 *
 * Model
 * - A pool of `threads` workers is the calling thread plus threads - 1
 *   background threads, started once by qkc_threadpool_create and parked
 *   until qkc_threadpool_destroy. No thread is created per call.
 * - qkc_threadpool_parallel_for(pool, t, fn, arg, count) runs
 *   fn(arg, index, count) once for every index in [0, count), on at most t
 *   workers, the caller being one of them. Indices are handed out one at a
 *   time from a shared atomic counter, so uneven items balance themselves;
 *   the order in which indices run, and which thread runs one, are
 *   unspecified. It returns when every call has returned, and everything
 *   those calls wrote is then visible to the caller.
 * - Waiting: an idle worker spins for about QKC_THREADPOOL_SPIN_NS after
 *   its last job (so back-to-back calls dispatch in well under a
 *   microsecond), then sleeps on a condition variable; a caller waiting for
 *   helpers to finish their last index does the same. Nothing busy-waits
 *   without bound.
 * - The caller starts on the indices at once and waits only for workers
 *   that actually joined: a worker that wakes after the indices are all
 *   taken stays out, so a call never waits for a sleeping thread to wake
 *   up just to find nothing to do.
 *
 * Thread-safety
 * - parallel_for may be called on one pool from several threads at once:
 *   calls are serialized (one job at a time owns the background workers);
 *   each still returns only when its own indices are done, and jobs never
 *   mix.
 * - A nested call, fn calling parallel_for on the same pool, does not
 *   deadlock: it runs all its indices inline on the calling thread. fn may
 *   use another pool, but pools must not nest in a cycle (A's items
 *   calling into B while B's call into A can deadlock).
 * - fn must not call qkc_threadpool_destroy on its pool. Destroying a pool
 *   while another thread is inside parallel_for on it is undefined: the
 *   owner must stop using the pool first.
 * - qkc_threadpool_size may be called from any thread.
 */
#ifndef QKC_RUNTIME_THREADPOOL_H
#define QKC_RUNTIME_THREADPOOL_H

#include <stdint.h>

#include "qkc/qkc.h"

typedef struct qkc_threadpool qkc_threadpool;

/* How long an idle worker (or a caller waiting for the last items) spins
 * before sleeping, in nanoseconds. */
#define QKC_THREADPOOL_SPIN_NS 100000
/* The largest pool qkc_threadpool_create accepts. */
#define QKC_THREADPOOL_MAX_THREADS QKC_MAX_THREADS

/* Create a pool of `threads` workers including the caller (threads - 1
 * background threads), 1 <= threads <= QKC_THREADPOOL_MAX_THREADS. Memory
 * comes from ctx's allocator; ctx must outlive the pool. On success *out
 * owns the pool (release it with qkc_threadpool_destroy). Errors, *out set
 * to NULL and a message recorded on ctx:
 *   QKC_ERR_INVALID_ARGUMENT  ctx or out NULL, threads < 1
 *   QKC_ERR_LIMIT             threads > QKC_THREADPOOL_MAX_THREADS
 *   QKC_ERR_NO_MEMORY         allocation or thread start failed */
qkc_status qkc_threadpool_create(qkc_context *ctx, int threads, qkc_threadpool **out);

/* Stop and join the background threads, free the pool. NULL is fine. */
void qkc_threadpool_destroy(qkc_threadpool *pool);

/* Number of workers including the caller (the `threads` given to create);
 * 1 for a NULL pool. */
int qkc_threadpool_size(const qkc_threadpool *pool);

/* Run fn(arg, index, count) for every index in [0, count) on at most
 * `threads` workers including the calling thread: threads <= 0 or larger
 * than the pool means the whole pool; never more workers than count. With
 * one worker (threads == 1, a pool of 1, count == 1, a NULL pool or a
 * nested call) every index runs inline on the caller, in increasing order.
 * count <= 0 or fn == NULL: returns at once. */
void qkc_threadpool_parallel_for(qkc_threadpool *pool, int threads,
                                 void (*fn)(void *arg, int64_t index, int64_t count), void *arg,
                                 int64_t count);

#endif /* QKC_RUNTIME_THREADPOOL_H */
