/*
 * The JIT from several threads at once: threads share one context, compile
 * overlapping sets of kernels (so some race to fill the same cache entry),
 * pack, run, and check every result against the reference. Also: one
 * kernel run by all threads at once.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/testutil.h"

enum { THREADS = 4, ROUNDS = 3 };

static const char *const specs[] = {
    "matmul n=64 k=256 w=q4_0 compute=f32",
    "matmul n=48 k=256 w=q8_0 compute=int8",
    "matmul n=40 k=250 w=int4 group=50 scale=f16 zero=int",
    "matmul n=33 k=256 w=nf4_bnb:dq act=silu bias=f32",
    "matmul n=32 k=256 w=gptq group=64 out=bf16",
    "matmul n=17 k=512 w=q4_k compute=int8",
    /* m >= 4 of these runs the int8 pre-pass on the pool (m·k >= 65536) */
    "matmul n=24 k=16384 w=q8_0 compute=int8",
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct worker {
    qkc_context *ctx;
    int id;
    int failures;
    char first_error[256];
} worker;

static int check_one(worker *wk, const char *text, int64_t m)
{
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    int bad;
    if (qkc_spec_parse(wk->ctx, text, &spec) != QKC_OK || qkc_kernel_compile(wk->ctx, spec, NULL, &kern) != QKC_OK) {
        qkc_context_copy_error(wk->ctx, wk->first_error, sizeof wk->first_error);
        qkc_spec_destroy(spec);
        return 1;
    }
    bad = qkc_test_kernel_vs_reference(wk->ctx, spec, kern, text, m, wk->first_error, sizeof wk->first_error);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    return bad;
}

static void *work(void *arg)
{
    worker *wk = arg;
    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < NSPECS; i++) {
            /* each thread starts at a different spec: overlapping sets */
            const char *text = specs[(i + (size_t)wk->id) % NSPECS];
            wk->failures += check_one(wk, text, 1 + (wk->id + round) % 5);
        }
    return NULL;
}

static void test_threads_compile_and_run(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    pthread_t t[THREADS];
    worker w[THREADS];
    int failures = 0, started;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    /* no assertion while threads run (cmocka would leave this frame
     * under them): a failed start stops starting, and is checked once
     * the started ones are joined */
    for (started = 0; started < THREADS; started++) {
        memset(&w[started], 0, sizeof w[started]);
        w[started].ctx = ctx;
        w[started].id = started;
        if (pthread_create(&t[started], NULL, work, &w[started]) != 0)
            break;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failures)
            print_error("thread %d: %d failures, first: %s\n", i, w[i].failures, w[i].first_error);
        failures += w[i].failures;
    }
    qkc_context_destroy(ctx);
    assert_int_equal(started, THREADS);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_compile_and_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
