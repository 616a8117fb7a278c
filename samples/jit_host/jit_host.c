/*
 * JIT in a host application.
 *
 * The pattern an inference engine follows with qkc:
 *
 *   1. load the weights of each layer (here: generated) and quantize them
 *      to that layer's format;
 *   2. compile each layer's kernel ONCE, at start-up, and pack its weights
 *      ONCE into the kernel's layout;
 *   3. run the kernels many times, from several threads at once, all
 *      sharing one qkc_context and the same kernel handles and packed
 *      weights (all read-only after step 2).
 *
 * Four host threads each run every layer ITERATIONS times on their own
 * activations, and every result is checked against qkc_reference_matmul
 * (computed once per thread and layer: the reference is scalar and slow by
 * design). The host owns the parallelism here, so each call runs on the
 * calling thread alone (qkc_run_options.threads = 1) instead of on the
 * context's thread pool.
 *
 * Prints one line per layer: format, bits per weight, compile time, and
 * microseconds per call as each host thread saw it. Exits 1 on any error
 * or mismatch.
 *
 * Build outside the tree (see README.md):
 *   cc -std=c11 -O2 jit_host.c -o jit_host $(pkg-config --cflags --libs qkc)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sysconf */
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qkc/qkc.h>

/* Three layers of one shape, in three formats. M (tokens per call) is
 * given at run time, so one kernel serves any batch size. */
static const char *const layer_specs[] = {
    /* GGUF Q4_K, as llama.cpp ships it. */
    "matmul n=1024 k=1024 a=f32 w=q4_k out=f32",
    /* GPTQ-style generic int4: groups of 128 along k, f16 scales, integer
     * zero points. */
    "matmul n=1024 k=1024 a=f32 w=int4 group=128 scale=f16 zero=int out=f32",
    /* bitsandbytes NF4 with double-quantized absmax, bf16 activations. */
    "matmul n=1024 k=1024 a=bf16 w=nf4_bnb:dq out=f32",
};
#define LAYERS ((int)(sizeof layer_specs / sizeof layer_specs[0]))

#define THREADS 4
#define ITERATIONS 100 /* runs of every layer per thread */
#define TOKENS 4       /* M: rows of activations per call */

/* A compiled kernel sums in f32, the reference in double: for f32 output
 * they agree to NMSE <= 1e-10 (docs/api.md). */
#define MAX_NMSE 1e-10

/* One layer: its spec, quantized weights (what the reference reads), the
 * compiled kernel and the packed weights (what the kernel reads). Written
 * by main before the threads start, read-only afterwards. */
typedef struct layer {
    const char *text;
    qkc_spec *spec;
    qkc_spec_info info;
    void *blob;
    size_t blob_bytes;
    qkc_kernel *kernel;
    void *packed;
    size_t packed_bytes;
    double compile_ms;
} layer;

/* One host thread: what it was given, and what it measured. */
typedef struct worker {
    int id;
    qkc_context *ctx;
    const layer *layers;
    double run_seconds[LAYERS]; /* time inside qkc_kernel_run */
    double worst_nmse[LAYERS];
    int failed;
    char message[512];
} worker;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Uniform numbers in [-1, 1) from xorshift32: fixed seeds, same every run. */
static float uniform(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

/* f32 to bf16, rounding to nearest even (finite inputs): the top 16 bits. */
static uint16_t f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static double nmse(const float *c, const float *ref, size_t count)
{
    double err = 0.0, norm = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)c[i] - (double)ref[i];
        err += d * d;
        norm += (double)ref[i] * (double)ref[i];
    }
    return norm > 0.0 ? err / norm : err;
}

/* Main-thread check: print what failed with the context's message. */
static int ok(qkc_context *ctx, qkc_status status, const char *what, const char *spec)
{
    if (status == QKC_OK)
        return 1;
    fprintf(stderr, "jit_host: %s failed for \"%s\": %s (%s)\n", what, spec, ctx ? qkc_context_last_error(ctx) : "",
            qkc_status_str(status));
    return 0;
}

/* Worker-thread check: the context is shared, so the message is copied
 * with qkc_context_copy_error (qkc_context_last_error's pointer could be
 * replaced by another thread's failure meanwhile). */
static int worker_ok(worker *w, qkc_status status, const char *what, int layer_index)
{
    char message[256];
    if (status == QKC_OK)
        return 1;
    qkc_context_copy_error(w->ctx, message, sizeof message);
    snprintf(w->message, sizeof w->message, "thread %d, layer %d: %s failed: %s (%s)", w->id, layer_index, what,
             message, qkc_status_str(status));
    w->failed = 1;
    return 0;
}

/* Quantize, compile and pack one layer. Returns 1 on success. */
static int layer_prepare(qkc_context *ctx, layer *l, uint32_t seed)
{
    const int64_t n = l->info.n, k = l->info.k;
    float *w = malloc((size_t)(n * k) * sizeof *w);
    double t0;
    int good = 0;

    if (!w) {
        fprintf(stderr, "jit_host: out of memory for %lld x %lld weights\n", (long long)n, (long long)k);
        return 0;
    }
    /* Stand-in for reading a checkpoint: small random weights. */
    for (int64_t i = 0; i < n * k; i++)
        w[i] = 0.03f * uniform(&seed);

    if (!ok(ctx, qkc_weights_bytes(ctx, l->spec, &l->blob_bytes), "qkc_weights_bytes", l->text))
        goto done;
    if (!(l->blob = malloc(l->blob_bytes))) {
        fprintf(stderr, "jit_host: out of memory for the quantized weights\n");
        goto done;
    }
    if (!ok(ctx, qkc_quantize(ctx, l->spec, w, k, l->blob, l->blob_bytes), "qkc_quantize", l->text))
        goto done;

    /* Compile once. The spec could be destroyed after this. */
    t0 = now_seconds();
    if (!ok(ctx, qkc_kernel_compile(ctx, l->spec, NULL, &l->kernel), "qkc_kernel_compile", l->text))
        goto done;
    l->compile_ms = 1e3 * (now_seconds() - t0);

    /* Pack once: kernels read weights in their own layout. */
    if (!ok(ctx, qkc_kernel_packed_bytes(l->kernel, &l->packed_bytes), "qkc_kernel_packed_bytes", l->text))
        goto done;
    if (!(l->packed = malloc(l->packed_bytes))) {
        fprintf(stderr, "jit_host: out of memory for the packed weights\n");
        goto done;
    }
    if (!ok(ctx, qkc_weights_pack(ctx, l->kernel, l->blob, l->blob_bytes, l->packed, l->packed_bytes),
            "qkc_weights_pack", l->text))
        goto done;
    good = 1;
done:
    free(w); /* the f32 weights are no longer needed */
    return good;
}

/* One host thread: its own activations and outputs, the shared context,
 * kernels and packed weights. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    void *a[LAYERS] = {0};
    float *c[LAYERS] = {0}, *ref[LAYERS] = {0};
    /* Each call runs on this thread only: the host owns the parallelism. */
    const qkc_run_options run_options = {.struct_size = sizeof run_options, .threads = 1};

    /* Activations in each layer's dtype, and the reference result. */
    for (int i = 0; i < LAYERS && !w->failed; i++) {
        const qkc_spec_info *info = &w->layers[i].info;
        const int bf16 = strcmp(info->a_type, "bf16") == 0;
        const size_t count = (size_t)(TOKENS * info->k);
        uint32_t seed = 1000u + 100u * (uint32_t)w->id + (uint32_t)i;

        a[i] = malloc(count * (bf16 ? sizeof(uint16_t) : sizeof(float)));
        c[i] = malloc((size_t)(TOKENS * info->n) * sizeof(float));
        ref[i] = malloc((size_t)(TOKENS * info->n) * sizeof(float));
        if (!a[i] || !c[i] || !ref[i]) {
            snprintf(w->message, sizeof w->message, "thread %d: out of memory", w->id);
            w->failed = 1;
            break;
        }
        for (size_t j = 0; j < count; j++) {
            float x = uniform(&seed);
            if (bf16)
                ((uint16_t *)a[i])[j] = f32_to_bf16(x);
            else
                ((float *)a[i])[j] = x;
        }
        {
            /* The reference reads the quantized blob, not the packed one. */
            qkc_matmul_args args = {a[i], info->k, w->layers[i].blob, w->layers[i].blob_bytes, NULL, ref[i], info->n,
                                    TOKENS};
            worker_ok(w, qkc_reference_matmul(w->ctx, w->layers[i].spec, &args), "qkc_reference_matmul", i);
        }
    }

    /* The hot loop: like a forward pass, every layer in turn, many times. */
    for (int iter = 0; iter < ITERATIONS && !w->failed; iter++) {
        for (int i = 0; i < LAYERS && !w->failed; i++) {
            const layer *l = &w->layers[i];
            qkc_matmul_args args = {a[i], l->info.k, l->packed, l->packed_bytes, NULL, c[i], l->info.n, TOKENS};
            double t0 = now_seconds(), e;
            if (!worker_ok(w, qkc_kernel_run(w->ctx, l->kernel, &args, &run_options), "qkc_kernel_run", i))
                break;
            w->run_seconds[i] += now_seconds() - t0;

            /* Check every result. */
            e = nmse(c[i], ref[i], (size_t)(TOKENS * l->info.n));
            if (e > w->worst_nmse[i])
                w->worst_nmse[i] = e;
            if (!(e <= MAX_NMSE)) {
                snprintf(w->message, sizeof w->message,
                         "thread %d, layer %d, iteration %d: kernel vs reference nmse %.3e above %.0e", w->id, i, iter,
                         e, MAX_NMSE);
                w->failed = 1;
            }
            memset(c[i], 0, (size_t)(TOKENS * l->info.n) * sizeof(float)); /* no stale result can pass */
        }
    }

    for (int i = 0; i < LAYERS; i++) {
        free(a[i]);
        free(c[i]);
        free(ref[i]);
    }
    return NULL;
}

int main(void)
{
    qkc_context *ctx = NULL;
    layer layers[LAYERS];
    worker workers[THREADS];
    pthread_t threads[THREADS];
    int started = 0, rc = 1;

    memset(layers, 0, sizeof layers);
    memset(workers, 0, sizeof workers);

    /* One context for the whole application, shared by every thread. */
    if (!ok(NULL, qkc_context_create(NULL, &ctx), "qkc_context_create", ""))
        return 1;

    /* Start-up: parse, quantize, compile and pack every layer once. */
    for (int i = 0; i < LAYERS; i++) {
        layers[i].text = layer_specs[i];
        if (!ok(ctx, qkc_spec_parse(ctx, layers[i].text, &layers[i].spec), "qkc_spec_parse", layers[i].text) ||
            !ok(ctx, qkc_spec_query(layers[i].spec, &layers[i].info), "qkc_spec_query", layers[i].text) ||
            !layer_prepare(ctx, &layers[i], 42u + (uint32_t)i))
            goto done;
    }

    /* Serving: THREADS host threads share the context and the kernels. */
    for (int t = 0; t < THREADS; t++) {
        workers[t].id = t;
        workers[t].ctx = ctx;
        workers[t].layers = layers;
        if (pthread_create(&threads[t], NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "jit_host: could not start thread %d\n", t);
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    if (started < THREADS)
        goto done;

    rc = 0;
    for (int t = 0; t < THREADS; t++)
        if (workers[t].failed) {
            fprintf(stderr, "jit_host: %s\n", workers[t].message);
            rc = 1;
        }

    /* With more threads than CPUs, calls share cores: us/call is the wall
     * time each thread saw, waits for a core included. */
    printf("%d threads (on %ld CPUs) x %d iterations x %d layers, m=%d, one shared context\n\n", THREADS,
           sysconf(_SC_NPROCESSORS_ONLN), ITERATIONS, LAYERS, TOKENS);
    printf("%-44s %7s %11s %9s %11s\n", "types", "bits/w", "compile ms", "us/call", "worst nmse");
    for (int i = 0; i < LAYERS; i++) {
        /* The types of the spec: from "a=" up to " out=" (or all of it). */
        const char *types = strstr(layers[i].text, "a=");
        const char *end = strstr(layers[i].text, " out=");
        if (!types || !end || end < types) {
            types = layers[i].text;
            end = types + strlen(types);
        }
        double seconds = 0.0, worst = 0.0;
        for (int t = 0; t < THREADS; t++) {
            seconds += workers[t].run_seconds[i];
            if (workers[t].worst_nmse[i] > worst)
                worst = workers[t].worst_nmse[i];
        }
        printf("%-44.*s %7.3f %11.1f %9.1f %11.2e\n", (int)(end - types), types, layers[i].info.bits_per_weight,
               layers[i].compile_ms, 1e6 * seconds / (THREADS * ITERATIONS), worst);
    }
    if (rc == 0)
        printf("\nok: all %d results matched the reference (nmse <= %.0e)\n", THREADS * ITERATIONS * LAYERS, MAX_NMSE);
    else
        printf("\nFAILED: see the messages above\n");

done:
    for (int i = 0; i < LAYERS; i++) {
        qkc_kernel_destroy(layers[i].kernel);
        qkc_spec_destroy(layers[i].spec);
        free(layers[i].packed);
        free(layers[i].blob);
    }
    qkc_context_destroy(ctx); /* after the specs made from it */
    return rc;
}
