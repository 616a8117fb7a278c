/*
 * Concurrency stress: 8 threads, in rounds. Each round creates two shared
 * contexts (threads 0-3 use one, 4-7 the other) and every thread also a
 * context of its own; each thread compiles an overlapping set of kernels
 * in both (so threads race to fill the same cache entries, and private
 * contexts compile the same kernels at the same time), packs, runs them on
 * the contexts' thread pools and checks every result against the
 * reference; then the thread destroys its own context, and after the
 * round the shared ones are destroyed too. Run it under QKC_SANITIZE=thread
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

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/testutil.h"

enum { THREADS = 8, SHARED = 2, PER_THREAD = 3 };

static const char *const specs[] = {
    "matmul n=64 k=256 w=q4_0",
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

static double out_at(const char *out, const void *c, int64_t i)
{
    if (!strcmp(out, "bf16")) {
        uint32_t u = (uint32_t)((const uint16_t *)c)[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    return ((const float *)c)[i];
}

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
    qkc_spec_info info;
    size_t pbytes = 0;
    qkc_rng r = qkc_rng_from_name(text);
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
    qkc_spec_query(spec, &info);
    qkc_kernel_packed_bytes(kern, &pbytes);
    {
        int64_t n = info.n, k = info.k;
        int a_el = strcmp(info.a_type, "f32") ? 2 : 4, c_el = strcmp(info.out_type, "f32") ? 2 : 4;
        float *w = malloc((size_t)(n * k) * 4), *bias = calloc((size_t)n, 4);
        unsigned char *a = malloc((size_t)(m * k * a_el)), *c = malloc((size_t)(m * n * c_el));
        unsigned char *cr = malloc((size_t)(m * n * c_el));
        unsigned char *blob = malloc(info.weight_bytes), *packed = malloc(pbytes);
        qkc_run_options ro = {sizeof ro, threads};
        if (!(w && bias && a && c && cr && blob && packed)) {
            note(wk, ctx, "test buffers (malloc)", text);
            free(w), free(bias), free(a), free(c), free(cr), free(blob), free(packed);
            qkc_kernel_destroy(kern);
            qkc_spec_destroy(spec);
            return;
        }
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        for (int64_t i = 0; i < n; i++)
            bias[i] = qkc_rng_normal(&r);
        for (int64_t i = 0; i < m * k; i++) {
            float x = qkc_rng_normal(&r);
            if (a_el == 4) {
                ((float *)a)[i] = x;
            } else {
                uint32_t u;
                memcpy(&u, &x, 4);
                ((uint16_t *)a)[i] = (uint16_t)(u >> 16);
            }
        }
        qkc_matmul_args ar = {a, k, blob, info.weight_bytes, info.has_bias ? bias : NULL, cr, n, m};
        qkc_matmul_args ak = {a, k, packed, pbytes, info.has_bias ? bias : NULL, c, n, m};
        if (qkc_quantize(ctx, spec, w, k, blob, info.weight_bytes) != QKC_OK ||
            qkc_weights_pack(ctx, kern, blob, info.weight_bytes, packed, pbytes) != QKC_OK ||
            qkc_reference_matmul(ctx, spec, &ar) != QKC_OK || qkc_kernel_run(ctx, kern, &ak, &ro) != QKC_OK) {
            note(wk, ctx, "quantize/pack/run", text);
        } else {
            double err = 0, ref = 0;
            for (int64_t i = 0; i < m * n; i++) {
                double x = out_at(info.out_type, c, i), y = out_at(info.out_type, cr, i);
                err += (x - y) * (x - y);
                ref += y * y;
            }
            /* bf16 output: a few one-ulp flips; f32: accumulation order only */
            if (!(err <= (c_el == 4 ? 1e-9 : 1e-4) * ref)) {
                if (!wk->first_error[0])
                    snprintf(wk->first_error, sizeof wk->first_error, "%s m=%lld: nmse %.3e", text, (long long)m,
                             err / ref);
                wk->failures++;
            }
        }
        free(w), free(bias), free(a), free(c), free(cr), free(blob), free(packed);
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
}

static void *work(void *arg)
{
    worker *wk = arg;
    qkc_context *own = NULL;
    qkc_context_options co = {sizeof co, NULL, 2};
    if (qkc_context_create(&co, &own) != QKC_OK) {
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
    for (int round = 0; round < rounds; round++) {
        qkc_context *shared[SHARED];
        qkc_context_options co = {sizeof co, NULL, 2};
        pthread_t t[THREADS];
        worker w[THREADS];
        for (int s = 0; s < SHARED; s++)
            assert_int_equal(qkc_context_create(&co, &shared[s]), QKC_OK);
        for (int i = 0; i < THREADS; i++) {
            memset(&w[i], 0, sizeof w[i]);
            w[i].shared = shared[i * SHARED / THREADS];
            w[i].id = i;
            w[i].round = round;
            assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            if (w[i].failures)
                print_error("round %d thread %d: %d of %d checks failed, first: %s\n", round, i, w[i].failures,
                            w[i].checks, w[i].first_error);
            failures += w[i].failures;
            checks += w[i].checks;
        }
        for (int s = 0; s < SHARED; s++)
            qkc_context_destroy(shared[s]);
    }
    print_message("%d rounds, %d kernels checked against the reference\n", rounds, checks);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_contexts_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
