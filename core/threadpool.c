/*
 * The persistent thread pool (contract in threadpool.h).
 *
 * One job at a time: a caller takes run_lock, writes the job (fn, arg,
 * count), resets the item counter `next`, opens the job in join_word and
 * publishes it by storing job_word = generation << 16 | workers. Workers
 * watch job_word; the background thread with index i may help when
 * i < workers - 1. To help it must first join: a CAS that adds one to the
 * helper count in join_word, which succeeds only while join_word still
 * names this generation and is not closed. Helpers and the caller take
 * indices from `next` until it passes count; a helper then leaves (subtracts
 * one). The caller, out of indices, closes the job (sets the closed bit) and
 * waits only for the helpers that joined. A worker that wakes up late finds
 * the job closed (or a newer generation) and never touches the job, so the
 * caller does not wait for threads that did not get there in time: after
 * an idle spell the caller simply starts alone and sleeping workers join
 * when they wake.
 *
 * Memory ordering: the job fields are plain data, written before job_word's
 * release and read only by a joined helper after its acquire; they are not
 * rewritten before every joined helper has left (acq_rel on join_word), so
 * there is no data race. Sleeping uses the usual flag handshake with
 * seq_cst atomics on both sides (a waiter registers in `sleepers` /
 * `caller_sleeping` under the mutex and re-checks; a waker publishes, then
 * checks the flag and broadcasts under the same mutex), so no wake-up is
 * lost and the fast path takes no lock besides run_lock.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/context.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

typedef void (*job_fn)(void *arg, int64_t index, int64_t count);

typedef struct worker {
    struct qkc_threadpool *pool;
    int index; /* 0 .. size - 2 */
    pthread_t thread;
} worker;

#define JOIN_CLOSED 1u
#define JOIN_HELPER 2u
#define JOIN_HELPERS_MASK 0xfffeu

/* Hot atomics live on their own cache lines (padding rather than _Alignas,
 * since the allocator only promises malloc alignment). */
#define LINE 64

struct qkc_threadpool {
    qkc_context *ctx;
    int size;
    int started; /* background threads running */
    worker *workers;
    uint64_t generation; /* owned by the run_lock holder */

    pthread_mutex_t run_lock;  /* one job at a time */
    pthread_mutex_t wake_lock; /* idle workers sleep on wake_cond */
    pthread_cond_t wake_cond;
    pthread_mutex_t done_lock; /* a caller waiting for helpers sleeps on done_cond */
    pthread_cond_t done_cond;

    /* The job: written by the run_lock holder before job_word is published. */
    job_fn fn;
    void *arg;
    int64_t count;

    char pad0[LINE];
    _Atomic uint64_t job_word; /* generation << 16 | workers; 0 = none yet */
    atomic_int sleepers;       /* workers inside the sleep phase */
    atomic_int stop;
    char pad1[LINE];
    _Atomic uint64_t next; /* next index to hand out */
    char pad2[LINE];
    /* generation << 16 | helpers inside << 1 | closed */
    _Atomic uint64_t join_word;
    atomic_int caller_sleeping;
    char pad3[LINE];
};

/* The pool whose job this thread is running (a worker: its own pool for
 * its whole life). Per thread, not shared state: it only lets a nested
 * call on the same pool run inline instead of deadlocking on run_lock. */
static _Thread_local const qkc_threadpool *current_pool;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin until *word != seen (or stop), for at most QKC_THREADPOOL_SPIN_NS.
 * Returns 1 if the condition came true. The clock is read every 64 turns. */
static int spin_until_changed(const _Atomic uint64_t *word, uint64_t seen, const atomic_int *stop)
{
    uint64_t deadline = 0;
    for (unsigned turn = 1;; turn++) {
        if (atomic_load_explicit(word, memory_order_acquire) != seen ||
            atomic_load_explicit(stop, memory_order_relaxed))
            return 1;
        if ((turn & 63) == 0) {
            uint64_t t = now_ns();
            if (!deadline)
                deadline = t + QKC_THREADPOOL_SPIN_NS;
            else if (t >= deadline)
                return 0;
        }
        cpu_relax();
    }
}

static uint64_t wait_for_job(qkc_threadpool *p, uint64_t seen)
{
    uint64_t w;
    if (spin_until_changed(&p->job_word, seen, &p->stop))
        return atomic_load_explicit(&p->job_word, memory_order_acquire);
    pthread_mutex_lock(&p->wake_lock);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->job_word) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake_cond, &p->wake_lock);
    atomic_fetch_sub(&p->sleepers, 1);
    w = atomic_load(&p->job_word);
    pthread_mutex_unlock(&p->wake_lock);
    return w;
}

static void run_items(qkc_threadpool *p)
{
    job_fn fn = p->fn;
    void *arg = p->arg;
    int64_t count = p->count;
    /* Unsigned: the counter overshoots count by at most one per helper and
     * can never wrap into a valid index. */
    for (;;) {
        uint64_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= (uint64_t)count)
            break;
        fn(arg, (int64_t)i, count);
    }
}

/* Join job `generation` as a helper: 1 if it is still open. */
static int join(qkc_threadpool *p, uint64_t generation)
{
    uint64_t j = atomic_load(&p->join_word);
    while (j >> 16 == generation && !(j & JOIN_CLOSED)) {
        if (atomic_compare_exchange_weak(&p->join_word, &j, j + JOIN_HELPER))
            return 1;
    }
    return 0;
}

static void *worker_main(void *opaque)
{
    worker *self = opaque;
    qkc_threadpool *p = self->pool;
    uint64_t seen = 0;
    current_pool = p;
    for (;;) {
        uint64_t w = wait_for_job(p, seen);
        if (atomic_load(&p->stop))
            break;
        seen = w;
        if (self->index >= (int)(w & 0xffff) - 1)
            continue; /* not asked to help with this job */
        if (!join(p, w >> 16))
            continue; /* closed already: the others did it without us */
        run_items(p);
        /* Leave; the last helper out wakes the caller if it went to sleep.
         * The pool outlives this: destroy joins every worker first. */
        if ((atomic_fetch_sub(&p->join_word, JOIN_HELPER) & JOIN_HELPERS_MASK) == JOIN_HELPER &&
            atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->done_lock);
            pthread_cond_signal(&p->done_cond);
            pthread_mutex_unlock(&p->done_lock);
        }
    }
    return NULL;
}

/* Close the job to late helpers and wait for those inside to leave. */
static void close_and_wait(qkc_threadpool *p)
{
    uint64_t deadline = 0;
    if ((atomic_fetch_or(&p->join_word, JOIN_CLOSED) & JOIN_HELPERS_MASK) == 0)
        return;
    for (unsigned turn = 1;; turn++) {
        if ((atomic_load_explicit(&p->join_word, memory_order_acquire) & JOIN_HELPERS_MASK) == 0)
            return;
        if ((turn & 63) == 0) {
            uint64_t t = now_ns();
            if (!deadline)
                deadline = t + QKC_THREADPOOL_SPIN_NS;
            else if (t >= deadline)
                break;
        }
        cpu_relax();
    }
    pthread_mutex_lock(&p->done_lock);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->join_word) & JOIN_HELPERS_MASK)
        pthread_cond_wait(&p->done_cond, &p->done_lock);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->done_lock);
}

/* Stop and join the first n background threads. */
static void stop_workers(qkc_threadpool *p, int n)
{
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->wake_lock);
    pthread_cond_broadcast(&p->wake_cond);
    pthread_mutex_unlock(&p->wake_lock);
    for (int i = 0; i < n; i++)
        pthread_join(p->workers[i].thread, NULL);
}

/* Sync objects initialised so far, torn down in reverse order. */
enum { SYNC_RUN = 1, SYNC_WAKE_LOCK, SYNC_WAKE_COND, SYNC_DONE_LOCK, SYNC_DONE_COND };

static void destroy_sync(qkc_threadpool *p, int ready)
{
    if (ready >= SYNC_DONE_COND)
        pthread_cond_destroy(&p->done_cond);
    if (ready >= SYNC_DONE_LOCK)
        pthread_mutex_destroy(&p->done_lock);
    if (ready >= SYNC_WAKE_COND)
        pthread_cond_destroy(&p->wake_cond);
    if (ready >= SYNC_WAKE_LOCK)
        pthread_mutex_destroy(&p->wake_lock);
    if (ready >= SYNC_RUN)
        pthread_mutex_destroy(&p->run_lock);
}

static int init_sync(qkc_threadpool *p)
{
    int ready = 0;
    if (pthread_mutex_init(&p->run_lock, NULL) == 0 && ++ready &&
        pthread_mutex_init(&p->wake_lock, NULL) == 0 && ++ready &&
        pthread_cond_init(&p->wake_cond, NULL) == 0 && ++ready &&
        pthread_mutex_init(&p->done_lock, NULL) == 0 && ++ready &&
        pthread_cond_init(&p->done_cond, NULL) == 0 && ++ready)
        return 1;
    destroy_sync(p, ready);
    return 0;
}

qkc_status qkc_threadpool_create(qkc_context *ctx, int threads, qkc_threadpool **out)
{
    qkc_threadpool *p;
    if (!out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_threadpool_create: out is NULL");
    *out = NULL;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (threads < 1)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_threadpool_create: threads=%d, need at least 1", threads);
    if (threads > QKC_THREADPOOL_MAX_THREADS)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "qkc_threadpool_create: threads=%d exceeds the limit of %d",
                        threads, QKC_THREADPOOL_MAX_THREADS);
    p = qkc_calloc(ctx, 1, sizeof *p);
    if (!p)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_threadpool_create: out of memory");
    p->ctx = ctx;
    p->size = threads;
    atomic_init(&p->job_word, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->join_word, 0);
    atomic_init(&p->caller_sleeping, 0);
    if (!init_sync(p)) {
        qkc_free(ctx, p);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_threadpool_create: cannot create a mutex");
    }
    if (threads > 1) {
        p->workers = qkc_calloc(ctx, (size_t)threads - 1, sizeof *p->workers);
        if (!p->workers) {
            destroy_sync(p, SYNC_DONE_COND);
            qkc_free(ctx, p);
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_threadpool_create: out of memory");
        }
    }
    for (int i = 0; i < threads - 1; i++) {
        int err;
        p->workers[i].pool = p;
        p->workers[i].index = i;
        err = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
        if (err != 0) {
            stop_workers(p, i);
            destroy_sync(p, SYNC_DONE_COND);
            qkc_free(ctx, p->workers);
            qkc_free(ctx, p);
            /* EAGAIN: no stack could be mapped (RLIMIT_AS) or a thread
             * limit (RLIMIT_NPROC, threads-max) was reached */
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_threadpool_create: could not start thread %d of %d: %s",
                            i + 2, threads, strerror(err));
        }
        p->started = i + 1;
    }
    *out = p;
    return QKC_OK;
}

void qkc_threadpool_destroy(qkc_threadpool *pool)
{
    qkc_context *ctx;
    if (!pool)
        return;
    ctx = pool->ctx;
    stop_workers(pool, pool->started);
    destroy_sync(pool, SYNC_DONE_COND);
    qkc_free(ctx, pool->workers);
    qkc_free(ctx, pool);
}

int qkc_threadpool_size(const qkc_threadpool *pool)
{
    return pool ? pool->size : 1;
}

void qkc_threadpool_parallel_for(qkc_threadpool *pool, int threads,
                                 void (*fn)(void *arg, int64_t index, int64_t count), void *arg,
                                 int64_t count)
{
    int workers = qkc_threadpool_size(pool);
    const qkc_threadpool *outer;
    if (count <= 0 || !fn)
        return;
    if (threads > 0 && threads < workers)
        workers = threads;
    if (count < workers)
        workers = (int)count;
    if (workers <= 1 || current_pool == pool) {
        for (int64_t i = 0; i < count; i++)
            fn(arg, i, count);
        return;
    }

    pthread_mutex_lock(&pool->run_lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->count = count;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    pool->generation++;
    atomic_store_explicit(&pool->join_word, pool->generation << 16, memory_order_relaxed);
    atomic_store(&pool->job_word, pool->generation << 16 | (uint64_t)workers);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->wake_lock);
        pthread_cond_broadcast(&pool->wake_cond);
        pthread_mutex_unlock(&pool->wake_lock);
    }

    outer = current_pool;
    current_pool = pool;
    run_items(pool);
    current_pool = outer;

    close_and_wait(pool);
    pthread_mutex_unlock(&pool->run_lock);
}
