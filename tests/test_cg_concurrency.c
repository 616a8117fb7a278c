/*
 * Concurrency stress: 8 threads, in rounds. Each round creates two shared
 * contexts (threads 0-3 use one, 4-7 the other) and every thread also a
 * context of its own; each thread compiles an overlapping set of kernels
 * in both (so threads race to fill the same cache entries, and private
 * contexts compile the same kernels at the same time), packs, runs them on
 * the contexts' thread pools and checks every result against the
 * reference; then the thread destroys its own context, and after the
 * round the shared ones are destroyed too. All contexts share one disk
 * cache directory (filled concurrently in the first round, linked from
 * afterwards). Run it under QKC_SANITIZE=thread
 * (scripts/sanitize.sh thread) to check for data races.
 *
 * QKC_STRESS_ROUNDS=<r> runs more or fewer rounds (default 4).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/testutil.h"

enum { THREADS = 8, SHARED = 2, PER_THREAD = 3 };

static const char *const specs[] = {
    "matmul n=64 k=256 w=q4_0 compute=f32",
    "matmul n=48 k=256 w=q8_0 compute=int8",
    "matmul n=40 k=250 w=int4 group=50 scale=f16 zero=int",
    "matmul n=33 k=256 w=nf4_bnb:dq act=silu bias=f32",
    "matmul n=32 k=256 a=bf16 w=gptq:actorder group=64 out=bf16",
    "matmul n=17 k=512 w=q4_k compute=int8",
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct worker {
    qkc_context *shared;
    int id, round;
    int failures, checks;
    char first_error[320];
} worker;

static void note(worker *wk, qkc_context *ctx, const char *what, const char *text)
{
    if (!wk->first_error[0]) {
        char msg[200];
        qkc_context_copy_error(ctx, msg, sizeof msg);
        snprintf(wk->first_error, sizeof wk->first_error, "%s: %s: %s", text, what, msg);
    }
    wk->failures++;
}

/* Compile, quantize, pack, run with `threads` pool threads and compare. */
static void check_one(worker *wk, qkc_context *ctx, const char *text, int64_t m, int threads)
{
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    char msg[300];
    wk->checks++;
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK) {
        note(wk, ctx, "parse", text);
        return;
    }
    if (qkc_kernel_compile(ctx, spec, NULL, &kern) != QKC_OK) {
        note(wk, ctx, "compile", text);
        qkc_spec_destroy(spec);
        return;
    }
    if (qkc_test_kernel_case(ctx, spec, kern, text, m, threads, msg, sizeof msg)) {
        if (!wk->first_error[0])
            snprintf(wk->first_error, sizeof wk->first_error, "%s", msg);
        wk->failures++;
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
}

/* Every context of the test shares one disk cache directory: the first
 * round fills it from many threads at once, later rounds link from it. */
static char cache_dir[64];

static qkc_status stress_context(qkc_context **out)
{
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2, .disk_cache = QKC_DISK_CACHE_ON};
    co.cache_dir = cache_dir;
    return qkc_context_create(&co, out);
}

static void *work(void *arg)
{
    worker *wk = arg;
    qkc_context *own = NULL;
    if (stress_context(&own) != QKC_OK) {
        snprintf(wk->first_error, sizeof wk->first_error, "thread %d: no context", wk->id);
        wk->failures++;
        return NULL;
    }
    for (int i = 0; i < PER_THREAD; i++) {
        /* overlapping sets: thread t takes specs t, t+1, t+2 (mod count) */
        const char *text = specs[(size_t)(wk->id + wk->round + i) % NSPECS];
        int64_t m = 1 + (wk->id + i) % 4;
        check_one(wk, wk->shared, text, m, 0);
        check_one(wk, own, text, m, i % 2 ? 1 : 0);
    }
    qkc_context_destroy(own);
    return NULL;
}

static void test_threads_contexts_rounds(void **state)
{
    (void)state;
    int rounds = getenv("QKC_STRESS_ROUNDS") ? atoi(getenv("QKC_STRESS_ROUNDS")) : 4, failures = 0, checks = 0;
    snprintf(cache_dir, sizeof cache_dir, "/tmp/qkc-stress-%ld-XXXXXX", (long)getpid());
    assert_non_null(mkdtemp(cache_dir));
    for (int round = 0; round < rounds; round++) {
        qkc_context *shared[SHARED];
        pthread_t t[THREADS];
        worker w[THREADS];
        int started;
        for (int s = 0; s < SHARED; s++)
            assert_int_equal(stress_context(&shared[s]), QKC_OK);
        /* no assertion while threads run: a failed start is checked after
         * the started ones are joined */
        for (started = 0; started < THREADS; started++) {
            memset(&w[started], 0, sizeof w[started]);
            w[started].shared = shared[started * SHARED / THREADS];
            w[started].id = started;
            w[started].round = round;
            if (pthread_create(&t[started], NULL, work, &w[started]) != 0)
                break;
        }
        for (int i = 0; i < started; i++) {
            pthread_join(t[i], NULL);
            if (w[i].failures)
                print_error("round %d thread %d: %d of %d checks failed, first: %s\n", round, i, w[i].failures,
                            w[i].checks, w[i].first_error);
            failures += w[i].failures;
            checks += w[i].checks;
        }
        for (int s = 0; s < SHARED; s++)
            qkc_context_destroy(shared[s]);
        assert_int_equal(started, THREADS);
    }
    print_message("%d rounds, %d kernels checked against the reference\n", rounds, checks);
    {
        /* the cache holds one valid entry per kernel, nothing else */
        qkc_context *c;
        size_t removed = 0;
        assert_int_equal(stress_context(&c), QKC_OK);
        assert_int_equal(qkc_cache_clear(c, &removed), QKC_OK);
        assert_int_equal(removed, NSPECS);
        qkc_context_destroy(c);
        assert_int_equal(rmdir(cache_dir), 0);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_contexts_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
