/*
 * Autotuning the kernels of one transformer layer.
 *
 * A decoder layer multiplies by seven weight matrices: the attention
 * projections q, k, v, o (d x d here) and the MLP's gate and up (f x d)
 * and down (d x f). Projections of the same shape and format share one
 * kernel, so three specs cover the layer. For each spec and each M (one
 * token, and a short prompt) the program:
 *
 *   1. times the heuristic's kernel (what qkc_kernel_compile gives with no
 *      tuning database),
 *   2. runs qkc_tune under a small trial budget, which writes its findings
 *      to a tuning database file,
 *   3. opens a context on that database and compiles again: the kernel now
 *      comes with the tuned schedule (qkc_kernel_info.schedule), checked
 *      against the reference.
 *
 * Then it prints the layer's table before and after. Budget: argv[1]
 * trials per spec and M (default 8); the database goes to argv[2]
 * (default layer-tune.db). Exits 1 on any error or mismatch.
 *
 * Build outside the tree:
 *   cc -std=c11 -O2 tune.c -o tune $(pkg-config --cflags --libs qkc)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qkc/qkc.h>

typedef struct layer_kernel {
    const char *names; /* the projections this spec serves */
    const char *spec;
} layer_kernel;

/* A small layer: d = 512, f = 1408 (SwiGLU width, a multiple of 64), 4-bit weights. */
static const layer_kernel kernels[] = {
    {"q k v o", "matmul n=512 k=512 w=q4_0"},
    {"gate up", "matmul n=1408 k=512 w=q4_0"},
    {"down", "matmul n=512 k=1408 w=q4_0"},
};
#define NKERNELS (int)(sizeof kernels / sizeof kernels[0])
static const int64_t ms[] = {1, 16};
#define NM 2

static int fail(qkc_context *ctx, const char *what)
{
    fprintf(stderr, "error: %s: %s\n", what, ctx ? qkc_context_last_error(ctx) : "");
    return 1;
}

/* Quantize seeded weights, pack them for k, run it for m rows, and
 * compare with the reference (nmse <= 1e-10). */
static int check(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *k, int64_t m)
{
    qkc_spec_info info;
    size_t wbytes, pbytes;
    float *w, *a, *c, *r;
    void *blob, *packed;
    double err = 0, ref = 0;
    uint64_t s = 0x1234567;
    int bad = 1;
    qkc_spec_query(spec, &info);
    qkc_weights_bytes(ctx, spec, &wbytes);
    qkc_kernel_packed_bytes(k, &pbytes);
    w = malloc((size_t)(info.n * info.k) * sizeof *w);
    a = malloc((size_t)(m * info.k) * sizeof *a);
    c = malloc((size_t)(m * info.n) * sizeof *c);
    r = malloc((size_t)(m * info.n) * sizeof *r);
    blob = malloc(wbytes);
    packed = malloc(pbytes);
    if (w && a && c && r && blob && packed) {
        for (int64_t i = 0; i < info.n * info.k; i++)
            w[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
        for (int64_t i = 0; i < m * info.k; i++)
            a[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
        qkc_matmul_args ar = {a, info.k, blob, wbytes, NULL, r, info.n, m};
        qkc_matmul_args ak = {a, info.k, packed, pbytes, NULL, c, info.n, m};
        if (qkc_quantize(ctx, spec, w, info.k, blob, wbytes) == QKC_OK &&
            qkc_weights_pack(ctx, k, blob, wbytes, packed, pbytes) == QKC_OK &&
            qkc_reference_matmul(ctx, spec, &ar) == QKC_OK && qkc_kernel_run(ctx, k, &ak, NULL) == QKC_OK) {
            for (int64_t i = 0; i < m * info.n; i++) {
                err += ((double)c[i] - r[i]) * ((double)c[i] - r[i]);
                ref += (double)r[i] * r[i];
            }
            bad = !(err <= 1e-10 * ref);
        }
    }
    free(w), free(a), free(c), free(r), free(blob), free(packed);
    return bad;
}

int main(int argc, char **argv)
{
    int trials = argc > 1 ? atoi(argv[1]) : 8;
    const char *db = argc > 2 ? argv[2] : "layer-tune.db";
    qkc_context *ctx = NULL, *tuned = NULL;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_tune_result res[NKERNELS];
    char sched_after[NKERNELS][NM][96];
    double geo = 0;
    int rc = 0;

    if (trials < 1)
        trials = 8;
    remove(db);
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return fail(NULL, "context");
    printf("tuning one transformer layer (d=512, f=1408, q4_0), M = 1 and 16, %d trials per kernel and M\n\n",
           trials);
    for (int i = 0; i < NKERNELS; i++) {
        qkc_spec *spec;
        qkc_tune_options o = {.struct_size = sizeof o, .m_list = ms, .m_count = NM, .max_trials = trials,
                              .db_path = db};
        if (qkc_spec_parse(ctx, kernels[i].spec, &spec) != QKC_OK)
            return fail(ctx, kernels[i].spec);
        if (qkc_tune(ctx, spec, &o, &res[i]) != QKC_OK)
            return fail(ctx, "qkc_tune");
        qkc_spec_destroy(spec);
    }

    /* A new context on the database: compiles take the tuned schedules. */
    co.tune_db = db;
    if (qkc_context_create(&co, &tuned) != QKC_OK)
        return fail(NULL, "context");
    for (int i = 0; i < NKERNELS; i++)
        for (int j = 0; j < NM; j++) {
            qkc_spec *spec;
            qkc_kernel *k;
            qkc_kernel_info ki;
            qkc_compile_options opt = {.struct_size = sizeof opt, .m_hint = ms[j]};
            char want[96];
            if (qkc_spec_parse(tuned, kernels[i].spec, &spec) != QKC_OK ||
                qkc_kernel_compile(tuned, spec, &opt, &k) != QKC_OK)
                return fail(tuned, "compile");
            qkc_kernel_query(k, &ki);
            snprintf(sched_after[i][j], sizeof sched_after[i][j], "%s", ki.schedule);
            qkc_schedule_print(&res[i].m[j].best, want, sizeof want);
            if (strcmp(want, ki.schedule)) {
                fprintf(stderr, "error: %s m=%lld: compiled with %s, the database says %s\n", kernels[i].spec,
                        (long long)ms[j], ki.schedule, want);
                rc = 1;
            }
            if (check(tuned, spec, k, ms[j] + 3)) {
                fprintf(stderr, "error: %s m=%lld: the tuned kernel does not match the reference\n", kernels[i].spec,
                        (long long)ms[j]);
                rc = 1;
            }
            qkc_kernel_destroy(k);
            qkc_spec_destroy(spec);
        }

    printf("%-8s %-28s %4s %12s %12s %7s  %s\n", "proj", "spec", "M", "before us", "after us", "gain",
           "schedule after");
    for (int i = 0; i < NKERNELS; i++)
        for (int j = 0; j < NM; j++) {
            const qkc_tune_m_result *r = &res[i].m[j];
            printf("%-8s %-28s %4lld %12.1f %12.1f %6.3fx  %s\n", kernels[i].names, kernels[i].spec, (long long)r->m,
                   r->default_us, r->best_us, r->default_us / r->best_us, sched_after[i][j]);
            geo += log(r->default_us / r->best_us);
        }
    printf("\ngeometric-mean gain %.3fx; schedules kept in %s (QKC_TUNE_DB=%s makes every program use them)\n",
           exp(geo / (NKERNELS * NM)), db, db);
    printf("%s\n", rc ? "FAILED" : "ok: every tuned kernel matched the reference");
    qkc_context_destroy(tuned);
    qkc_context_destroy(ctx);
    return rc;
}
