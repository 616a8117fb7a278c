/*
 * The thread pool (core/threadpool.h): every index runs exactly once for
 * every (pool size, threads, count), never on more workers than asked;
 * one worker means inline and in order; several callers share a pool
 * without mixing jobs; nested calls run inline; the sleep/wake paths;
 * create/destroy is leak-free through the context's allocator; argument
 * errors carry a status and a message.
 *
 * Callbacks run on pool threads, where cmocka's assertions must not be
 * used: they count into atomics, and the test thread checks the counts.
 * Cases are named; a failure prints the name, and QKC_CASE=<name> reruns
 * only that case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threadpool.h"
#include "util/testutil.h"

#define CHECK(name, cond, ...)                                                                 \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            print_error("case %s: ", (name));                                                  \
            print_error(__VA_ARGS__);                                                          \
            print_error("\n  rerun: QKC_CASE=%s ./test_threadpool\n", (name));                 \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

typedef struct counting {
    atomic_long allocs, frees;
} counting;

static void *count_alloc(size_t bytes, void *user)
{
    atomic_fetch_add(&((counting *)user)->allocs, 1);
    return malloc(bytes);
}

static void count_free(void *p, void *user)
{
    if (p)
        atomic_fetch_add(&((counting *)user)->frees, 1);
    free(p);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ coverage */

enum { MAX_COUNT = 1000 };

typedef struct coverage {
    int64_t count;
    atomic_int hits[MAX_COUNT];
    atomic_int bad_count; /* fn saw a count other than the job's */
    atomic_int bad_index;
    atomic_int inside; /* calls running right now */
    atomic_int max_inside;
    atomic_int off_caller; /* calls that ran on another thread than the caller */
    atomic_int out_of_order;
    atomic_llong last_index;
    pthread_t caller;
    int slow; /* items sleep a little, so that workers really overlap */
} coverage;

static void cover_fn(void *arg, int64_t index, int64_t count)
{
    coverage *c = arg;
    int now = atomic_fetch_add(&c->inside, 1) + 1;
    int seen = atomic_load(&c->max_inside);
    while (now > seen && !atomic_compare_exchange_weak(&c->max_inside, &seen, now))
        ;
    if (count != c->count)
        atomic_fetch_add(&c->bad_count, 1);
    if (index < 0 || index >= c->count || index >= MAX_COUNT)
        atomic_fetch_add(&c->bad_index, 1);
    else
        atomic_fetch_add(&c->hits[index], 1);
    if (!pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->off_caller, 1);
    if (atomic_exchange(&c->last_index, index) != index - 1)
        atomic_fetch_add(&c->out_of_order, 1);
    if (c->slow)
        sleep_us(200);
    atomic_fetch_sub(&c->inside, 1);
}

static void coverage_init(coverage *c, int64_t count, int slow)
{
    c->count = count;
    for (int i = 0; i < MAX_COUNT; i++)
        atomic_init(&c->hits[i], 0);
    atomic_init(&c->bad_count, 0);
    atomic_init(&c->bad_index, 0);
    atomic_init(&c->inside, 0);
    atomic_init(&c->max_inside, 0);
    atomic_init(&c->off_caller, 0);
    atomic_init(&c->out_of_order, 0);
    atomic_init(&c->last_index, -1);
    c->caller = pthread_self();
    c->slow = slow;
}

static void coverage_case(qkc_threadpool *pool, int threads, int64_t count, int slow)
{
    static coverage c; /* large; one test thread uses it */
    char name[96];
    int size = qkc_threadpool_size(pool), limit;
    snprintf(name, sizeof name, "cover/pool=%d/threads=%d/count=%lld%s", size, threads,
             (long long)count, slow ? "/slow" : "");
    if (!qkc_case_selected(name))
        return;
    limit = threads > 0 && threads < size ? threads : size;
    if (count < limit)
        limit = count > 0 ? (int)count : 1;
    coverage_init(&c, count, slow);
    qkc_threadpool_parallel_for(pool, threads, cover_fn, &c, count);
    CHECK(name, atomic_load(&c.bad_count) == 0, "fn saw the wrong count");
    CHECK(name, atomic_load(&c.bad_index) == 0, "fn saw an index out of range");
    for (int64_t i = 0; i < count; i++)
        CHECK(name, atomic_load(&c.hits[i]) == 1, "index %lld ran %d times", (long long)i,
              atomic_load(&c.hits[i]));
    for (int64_t i = count; i < MAX_COUNT; i++)
        CHECK(name, atomic_load(&c.hits[i]) == 0, "index %lld past count ran", (long long)i);
    CHECK(name, atomic_load(&c.max_inside) <= limit, "%d calls at once, limit %d",
          atomic_load(&c.max_inside), limit);
    if (limit == 1) {
        CHECK(name, atomic_load(&c.off_caller) == 0, "one worker must mean inline on the caller");
        CHECK(name, atomic_load(&c.out_of_order) == 0, "inline indices must run in order");
    }
}

static void test_every_index_once(void **state)
{
    (void)state;
    static const int64_t counts[] = {0, 1, 7, 1000};
    qkc_context *ctx = NULL;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (int size = 1; size <= 4; size++) {
        qkc_threadpool *pool = NULL;
        int threads[] = {0, 1, 2, size + 3, -1};
        assert_int_equal(qkc_threadpool_create(ctx, size, &pool), QKC_OK);
        assert_int_equal(qkc_threadpool_size(pool), size);
        for (size_t t = 0; t < sizeof threads / sizeof *threads; t++)
            for (size_t n = 0; n < sizeof counts / sizeof *counts; n++)
                coverage_case(pool, threads[t], counts[n], 0);
        /* Items that take a while: the workers run side by side, and
         * the limit on simultaneous calls is really exercised. */
        coverage_case(pool, 0, 40, 1);
        coverage_case(pool, 2, 40, 1);
        qkc_threadpool_destroy(pool);
    }
    /* A NULL pool runs inline. */
    coverage_case(NULL, 0, 7, 0);
    qkc_context_destroy(ctx);
}

/* A pool of 1 has no background thread: everything runs on the caller. */
static void test_pool_of_one_inline(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    qkc_threadpool *pool = NULL;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_threadpool_create(ctx, 1, &pool), QKC_OK);
    for (int threads = 0; threads <= 4; threads++)
        coverage_case(pool, threads, 1000, 0);
    qkc_threadpool_destroy(pool);
    qkc_context_destroy(ctx);
}

/* ----------------------------------------------------- several callers */

enum { CALLERS = 4, CALLS = 200 };

typedef struct job {
    int caller;
    int64_t count;
    atomic_llong sum;
    atomic_int calls;
    atomic_int foreign; /* fn called with another caller's count */
} job;

static void job_fn(void *arg, int64_t index, int64_t count)
{
    job *j = arg;
    if (count != j->count || index < 0 || index >= count)
        atomic_fetch_add(&j->foreign, 1);
    atomic_fetch_add(&j->sum, index + 1);
    atomic_fetch_add(&j->calls, 1);
}

typedef struct caller {
    qkc_threadpool *pool;
    int id;
    int failures; /* read by the test thread after join */
    char first_failure[128];
} caller;

static void *caller_main(void *opaque)
{
    caller *c = opaque;
    for (int i = 0; i < CALLS; i++) {
        job j;
        /* Counts differ per caller and call so that a mixed-up job shows. */
        j.caller = c->id;
        j.count = 1 + (i * 37 + c->id * 101) % 257;
        atomic_init(&j.sum, 0);
        atomic_init(&j.calls, 0);
        atomic_init(&j.foreign, 0);
        qkc_threadpool_parallel_for(c->pool, i % 3, job_fn, &j, j.count);
        if (atomic_load(&j.calls) != j.count || atomic_load(&j.sum) != j.count * (j.count + 1) / 2 ||
            atomic_load(&j.foreign) != 0) {
            if (!c->failures++)
                snprintf(c->first_failure, sizeof c->first_failure,
                         "caller %d call %d: count %lld, %d calls, sum %lld, %d foreign", c->id, i,
                         (long long)j.count, atomic_load(&j.calls), (long long)atomic_load(&j.sum),
                         atomic_load(&j.foreign));
        }
    }
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    for (int size = 2; size <= 3; size++) {
        char name[64];
        qkc_threadpool *pool = NULL;
        pthread_t threads[CALLERS];
        caller callers[CALLERS];
        int started;
        snprintf(name, sizeof name, "callers/pool=%d/%dx%d", size, CALLERS, CALLS);
        if (!qkc_case_selected(name))
            continue;
        assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
        assert_int_equal(qkc_threadpool_create(ctx, size, &pool), QKC_OK);
        /* no assertion while callers run: a failed start is checked after
         * the started ones are joined */
        for (started = 0; started < CALLERS; started++) {
            callers[started] = (caller){.pool = pool, .id = started};
            if (pthread_create(&threads[started], NULL, caller_main, &callers[started]) != 0)
                break;
        }
        for (int t = 0; t < started; t++)
            pthread_join(threads[t], NULL);
        assert_int_equal(started, CALLERS);
        for (int t = 0; t < CALLERS; t++)
            CHECK(name, callers[t].failures == 0, "%d bad calls, first: %s", callers[t].failures,
                  callers[t].first_failure);
        qkc_threadpool_destroy(pool);
        qkc_context_destroy(ctx);
    }
}

/* -------------------------------------------------------------- nested */

typedef struct nest {
    qkc_threadpool *pool;
    atomic_int inner[8][16];
    atomic_int bad;
} nest;

static void inner_fn(void *arg, int64_t index, int64_t count)
{
    atomic_int *row = arg;
    if (count != 16 || index < 0 || index >= 16)
        return;
    atomic_fetch_add(&row[index], 1);
}

static void outer_fn(void *arg, int64_t index, int64_t count)
{
    nest *n = arg;
    if (count != 8 || index < 0 || index >= 8) {
        atomic_fetch_add(&n->bad, 1);
        return;
    }
    qkc_threadpool_parallel_for(n->pool, 0, inner_fn, n->inner[index], 16);
}

static void test_nested_runs_inline(void **state)
{
    (void)state;
    static nest n;
    qkc_context *ctx = NULL;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_threadpool_create(ctx, 3, &n.pool), QKC_OK);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++)
            atomic_init(&n.inner[i][j], 0);
    atomic_init(&n.bad, 0);
    qkc_threadpool_parallel_for(n.pool, 0, outer_fn, &n, 8);
    assert_int_equal(atomic_load(&n.bad), 0);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++)
            assert_int_equal(atomic_load(&n.inner[i][j]), 1);
    qkc_threadpool_destroy(n.pool);
    qkc_context_destroy(ctx);
}

/* ------------------------------------------------------ sleep and wake */

typedef struct meeting {
    atomic_int started, done, missed;
} meeting;

/* Two items that must run at the same time: each waits (up to a second)
 * for the other to start, so the caller, blocked in its item, needs the
 * sleeping worker to wake up and join. Item 1 then stays busy past the
 * spin time, so the caller, out of work, must sleep until it is done. */
static void meet_fn(void *arg, int64_t index, int64_t count)
{
    meeting *m = arg;
    (void)count;
    atomic_fetch_add(&m->started, 1);
    for (int i = 0; i < 20000 && atomic_load(&m->started) < 2; i++)
        sleep_us(50);
    if (atomic_load(&m->started) < 2)
        atomic_fetch_add(&m->missed, 1);
    if (index == 1)
        sleep_us(2 * QKC_THREADPOOL_SPIN_NS / 1000 + 1000);
    atomic_fetch_add(&m->done, 1);
}

static void test_sleeping_workers_and_caller(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    qkc_threadpool *pool = NULL;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_threadpool_create(ctx, 2, &pool), QKC_OK);
    for (int round = 0; round < 10; round++) {
        meeting m;
        atomic_init(&m.started, 0);
        atomic_init(&m.done, 0);
        atomic_init(&m.missed, 0);
        /* Longer than the spin: the worker has gone to sleep. */
        sleep_us(2 * QKC_THREADPOOL_SPIN_NS / 1000 + 500);
        qkc_threadpool_parallel_for(pool, 2, meet_fn, &m, 2);
        assert_int_equal(atomic_load(&m.done), 2);
        assert_int_equal(atomic_load(&m.missed), 0);
    }
    qkc_threadpool_destroy(pool);
    qkc_context_destroy(ctx);
}

/* -------------------------------------------- lifetime, leaks, errors */

static void add_fn(void *arg, int64_t index, int64_t count)
{
    (void)count;
    atomic_fetch_add((atomic_llong *)arg, index);
}

static void test_create_destroy_leak_free(void **state)
{
    (void)state;
    counting c;
    qkc_allocator a = {count_alloc, count_free, &c};
    qkc_context_options opt = {.struct_size = sizeof opt, .allocator = &a};
    qkc_context *ctx = NULL;
    atomic_init(&c.allocs, 0);
    atomic_init(&c.frees, 0);
    assert_int_equal(qkc_context_create(&opt, &ctx), QKC_OK);
    for (int i = 0; i < 100; i++) {
        qkc_threadpool *pool = NULL;
        int size = 1 + i % 4;
        assert_int_equal(qkc_threadpool_create(ctx, size, &pool), QKC_OK);
        assert_int_equal(qkc_threadpool_size(pool), size);
        if (i % 2) {
            atomic_llong sum;
            atomic_init(&sum, 0);
            qkc_threadpool_parallel_for(pool, 0, add_fn, &sum, 100);
            assert_int_equal(atomic_load(&sum), 99 * 100 / 2);
        }
        qkc_threadpool_destroy(pool);
        /* Only the context itself is still allocated. */
        assert_int_equal(atomic_load(&c.allocs) - atomic_load(&c.frees), 1);
    }
    assert_true(atomic_load(&c.allocs) >= 1 + 100);
    qkc_context_destroy(ctx);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
}

/* An allocator that fails once `budget` allocations have succeeded. */
typedef struct failing {
    counting count;
    atomic_long budget;
} failing;

static void *failing_alloc(size_t bytes, void *user)
{
    failing *f = user;
    if (atomic_fetch_sub(&f->budget, 1) <= 0)
        return NULL;
    return count_alloc(bytes, &f->count);
}

static void failing_free(void *p, void *user)
{
    count_free(p, &((failing *)user)->count);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    /* The context takes one allocation; the pool then fails at its first,
     * then at its second (the worker table). */
    for (long pool_allocs = 0; pool_allocs < 2; pool_allocs++) {
        failing f;
        qkc_allocator a = {failing_alloc, failing_free, &f};
        qkc_context_options opt = {.struct_size = sizeof opt, .allocator = &a};
        qkc_context *ctx = NULL;
        qkc_threadpool *pool = (qkc_threadpool *)&pool;
        atomic_init(&f.count.allocs, 0);
        atomic_init(&f.count.frees, 0);
        atomic_init(&f.budget, 1 + pool_allocs);
        assert_int_equal(qkc_context_create(&opt, &ctx), QKC_OK);
        assert_int_equal(qkc_threadpool_create(ctx, 3, &pool), QKC_ERR_NO_MEMORY);
        assert_null(pool);
        assert_non_null(strstr(qkc_context_last_error(ctx), "out of memory"));
        qkc_context_destroy(ctx);
        assert_int_equal(atomic_load(&f.count.allocs), atomic_load(&f.count.frees));
    }
}

static void never_fn(void *arg, int64_t index, int64_t count)
{
    (void)index;
    (void)count;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_errors(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    qkc_threadpool *pool = (qkc_threadpool *)&pool; /* must be reset to NULL */
    atomic_int calls;
    atomic_init(&calls, 0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);

    qkc_threadpool_destroy(NULL);
    assert_int_equal(qkc_threadpool_size(NULL), 1);
    assert_int_equal(qkc_threadpool_create(ctx, 2, NULL), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_threadpool_create(NULL, 2, &pool), QKC_ERR_INVALID_ARGUMENT);
    assert_null(pool);
    pool = (qkc_threadpool *)&pool;
    assert_int_equal(qkc_threadpool_create(ctx, 0, &pool), QKC_ERR_INVALID_ARGUMENT);
    assert_null(pool);
    assert_non_null(strstr(qkc_context_last_error(ctx), "threads=0"));
    assert_int_equal(qkc_threadpool_create(ctx, -3, &pool), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_threadpool_create(ctx, QKC_THREADPOOL_MAX_THREADS + 1, &pool), QKC_ERR_LIMIT);
    assert_null(pool);
    assert_non_null(strstr(qkc_context_last_error(ctx), "limit"));

    assert_int_equal(qkc_threadpool_create(ctx, 2, &pool), QKC_OK);
    qkc_threadpool_parallel_for(pool, 0, never_fn, &calls, 0);
    qkc_threadpool_parallel_for(pool, 0, never_fn, &calls, -5);
    qkc_threadpool_parallel_for(pool, 0, NULL, &calls, 10);
    assert_int_equal(atomic_load(&calls), 0);
    qkc_threadpool_destroy(pool);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once),
        cmocka_unit_test(test_pool_of_one_inline),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_nested_runs_inline),
        cmocka_unit_test(test_sleeping_workers_and_caller),
        cmocka_unit_test(test_create_destroy_leak_free),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
