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
    "matmul n=64 k=256 w=q4_0",
    "matmul n=48 k=256 w=q8_0 compute=int8",
    "matmul n=40 k=250 w=int4 group=50 scale=f16 zero=int",
    "matmul n=33 k=256 w=nf4_bnb:dq act=silu bias=f32",
    "matmul n=32 k=256 w=gptq group=64 out=bf16",
    "matmul n=17 k=512 w=q4_k compute=int8",
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct worker {
    qkc_context *ctx;
    int id;
    int failures;
    char first_error[256];
} worker;

static double out_at(const char *out, const void *c, int64_t i)
{
    if (!strcmp(out, "bf16"))
        return (double)(*(const float *)&(uint32_t){(uint32_t)((const uint16_t *)c)[i] << 16});
    return ((const float *)c)[i];
}

static int check_one(worker *wk, const char *text, int64_t m)
{
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_spec_info info;
    size_t pbytes;
    int bad = 0;
    qkc_rng r = qkc_rng_from_name(text);
    if (qkc_spec_parse(wk->ctx, text, &spec) != QKC_OK || qkc_kernel_compile(wk->ctx, spec, NULL, &kern) != QKC_OK) {
        qkc_context_copy_error(wk->ctx, wk->first_error, sizeof wk->first_error);
        qkc_spec_destroy(spec);
        return 1;
    }
    qkc_spec_query(spec, &info);
    qkc_kernel_packed_bytes(kern, &pbytes);
    {
        int64_t n = info.n, k = info.k;
        float *w = malloc((size_t)(n * k) * 4), *a = malloc((size_t)(m * k) * 4), *bias = calloc((size_t)n, 4);
        float *c = malloc((size_t)(m * n) * 4), *cr = malloc((size_t)(m * n) * 4);
        unsigned char *blob = malloc(info.weight_bytes), *packed = malloc(pbytes);
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        for (int64_t i = 0; i < m * k; i++)
            a[i] = qkc_rng_normal(&r);
        qkc_matmul_args ar = {a, k, blob, info.weight_bytes, info.has_bias ? bias : NULL, cr, n, m};
        qkc_matmul_args ak = {a, k, packed, pbytes, info.has_bias ? bias : NULL, c, n, m};
        if (qkc_quantize(wk->ctx, spec, w, k, blob, info.weight_bytes) != QKC_OK ||
            qkc_weights_pack(wk->ctx, kern, blob, info.weight_bytes, packed, pbytes) != QKC_OK ||
            qkc_reference_matmul(wk->ctx, spec, &ar) != QKC_OK || qkc_kernel_run(wk->ctx, kern, &ak, NULL) != QKC_OK) {
            bad = 1;
        } else {
            double err = 0, ref = 0;
            for (int64_t i = 0; i < m * n; i++) {
                double x = out_at(info.out_type, c, i), y = out_at(info.out_type, cr, i);
                err += (x - y) * (x - y);
                ref += y * y;
            }
            /* bf16 output: a few one-ulp flips; f32: accumulation order only */
            bad = !(err <= (strcmp(info.out_type, "bf16") ? 1e-9 : 1e-4) * ref);
            if (bad)
                snprintf(wk->first_error, sizeof wk->first_error, "%s m=%lld: nmse %.3e", text, (long long)m,
                         err / ref);
        }
        free(w), free(a), free(bias), free(c), free(cr), free(blob), free(packed);
    }
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
    int failures = 0;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].ctx = ctx;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failures)
            print_error("thread %d: %d failures, first: %s\n", i, w[i].failures, w[i].first_error);
        failures += w[i].failures;
    }
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_compile_and_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
