/*
 * qkc's dense f32 kernel beside OpenBLAS's cblas_sgemm, in one process
 * (docs/performance.md, "Prefill"). Opt-in: never built by `all`, never a
 * test; `ninja bench-sgemm` builds and runs it.
 *
 *   qkc_sgemm_peer [--lib PATH] [--n N] [--k K] [--m 128,512] [--threads 1,2] [--reps R]
 *
 * C = A·Wᵀ with A [M][K] and W [N][K] f32 on both sides: qkc's kernel for
 * "matmul n=N k=K w=f32" on packed weights, and cblas_sgemm(RowMajor,
 * NoTrans, Trans) with OpenBLAS's own threads (openblas_set_num_threads).
 * OpenBLAS is loaded with dlopen (default libopenblas.so.0: Debian's
 * libopenblas0-pthread); its two entry points are declared here from its
 * public C ABI. Rounds alternate the two sides; each reports the median of
 * `reps` calls per round and the best round's median. The table gives
 * GFLOP/s, the share of the machine's peak f32 FMA rate measured in the
 * same run (bench/roofline.h) and qkc / OpenBLAS (> 1: qkc faster), and
 * the largest difference between the two outputs relative to the largest
 * output.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/peers/common.h"
#include "bench/roofline.h"
#include "bench/weights_rng.h"
#include "core/context.h"
#include "core/timing.h"
#include "qkc/qkc.h"

/* cblas.h's values (row-major, no transpose, transpose) */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int n);

typedef struct options {
    const char *lib;
    int n, k, reps, nm, nt;
    int ms[8], threads[8];
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: qkc_sgemm_peer [--lib PATH] [--n N] [--k K] [--m 128,512] [--threads 1,2] [--reps R]\n"
               "  --lib PATH   OpenBLAS (default libopenblas.so.0)\n"
               "  --reps R     calls per side and round (default 5; 3 rounds)\n");
}

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->lib = "libopenblas.so.0";
    o->n = o->k = 4096, o->reps = 5;
    o->ms[0] = 128, o->ms[1] = 512, o->nm = 2;
    o->threads[0] = 1, o->threads[1] = 2, o->nt = 2;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            usage(stderr);
            return 0;
        }
        if (!strcmp(argv[i], "--lib"))
            o->lib = v;
        else if (!strcmp(argv[i], "--n") || !strcmp(argv[i], "--k") || !strcmp(argv[i], "--reps")) {
            int x = atoi(v);
            if (x < 1 || x > (1 << 16)) {
                fprintf(stderr, "error: %s takes 1 to 65536\n", argv[i]);
                return 0;
            }
            *(!strcmp(argv[i], "--n") ? &o->n : !strcmp(argv[i], "--k") ? &o->k : &o->reps) = x;
        } else if (!strcmp(argv[i], "--m")) {
            if ((o->nm = qkc_peers_parse_list(v, o->ms, NULL, 8, 1, 8192)) < 1) {
                fprintf(stderr, "error: --m takes a list such as 128,512\n");
                return 0;
            }
        } else if (!strcmp(argv[i], "--threads")) {
            if ((o->nt = qkc_peers_parse_list(v, o->threads, NULL, 8, 1, 256)) < 1) {
                fprintf(stderr, "error: --threads takes a list such as 1,2\n");
                return 0;
            }
        } else {
            usage(stderr);
            return 0;
        }
        i++;
    }
    return 1;
}

/* Median µs of `reps` calls of one side. */
static double time_qkc(qkc_context *ctx, const qkc_kernel *kern, const qkc_matmul_args *args, int threads, int reps,
                       double *samples)
{
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = threads};
    for (int r = 0; r < reps; r++) {
        double t0 = (qkc_now_seconds() * 1e6);
        if (qkc_kernel_run(ctx, kern, args, &ro) != QKC_OK) {
            fprintf(stderr, "error: qkc: %s\n", qkc_context_last_error(ctx));
            exit(1);
        }
        samples[r] = (qkc_now_seconds() * 1e6) - t0;
    }
    return qkc_median(samples, reps);
}

static double time_blas(sgemm_fn sgemm, int m, int n, int k, const float *a, const float *w, float *c, int reps,
                        double *samples)
{
    for (int r = 0; r < reps; r++) {
        double t0 = (qkc_now_seconds() * 1e6);
        sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
        samples[r] = (qkc_now_seconds() * 1e6) - t0;
    }
    return qkc_median(samples, reps);
}

int main(int argc, char **argv)
{
    options o;
    void *lib;
    sgemm_fn sgemm;
    set_threads_fn set_threads;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_kernel_info info;
    qkc_context_options co = {.struct_size = sizeof co};
    qkc_threadpool *pool = NULL;
    char text[128], cpu[256];
    size_t packed = 0;
    uint64_t rng = QKC_BENCH_RNG_SEED;
    int maxm = 0, maxt = 1;
    if (!parse(argc, argv, &o))
        return 2;
    if (!(lib = dlopen(o.lib, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "error: cannot load %s (%s): Debian's libopenblas0-pthread provides it\n", o.lib, dlerror());
        return 1;
    }
    *(void **)&sgemm = dlsym(lib, "cblas_sgemm");
    *(void **)&set_threads = dlsym(lib, "openblas_set_num_threads");
    if (!sgemm || !set_threads) {
        fprintf(stderr, "error: %s has no cblas_sgemm or openblas_set_num_threads\n", o.lib);
        return 1;
    }
    for (int i = 0; i < o.nm; i++)
        maxm = o.ms[i] > maxm ? o.ms[i] : maxm;
    for (int i = 0; i < o.nt; i++)
        maxt = o.threads[i] > maxt ? o.threads[i] : maxt;
    co.threads = maxt;
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return 1;
    snprintf(text, sizeof text, "matmul n=%d k=%d w=f32", o.n, o.k);
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK || qkc_kernel_compile(ctx, spec, NULL, &kern) != QKC_OK ||
        qkc_kernel_query(kern, &info) != QKC_OK || qkc_kernel_packed_bytes(kern, &packed) != QKC_OK) {
        fprintf(stderr, "error: qkc: %s\n", qkc_context_last_error(ctx));
        return 1;
    }
    {
        size_t nk = (size_t)o.n * (size_t)o.k;
        float *w = malloc(nk * sizeof *w), *a = malloc((size_t)maxm * (size_t)o.k * sizeof *a);
        float *c1 = malloc((size_t)maxm * (size_t)o.n * sizeof *c1), *c2 = malloc((size_t)maxm * (size_t)o.n * sizeof *c2);
        void *pw = malloc(packed);
        double *samples = malloc((size_t)o.reps * sizeof *samples);
        if (!w || !a || !c1 || !c2 || !pw || !samples) {
            fprintf(stderr, "error: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < nk; i++)
            w[i] = qkc_bench_normal(&rng);
        for (size_t i = 0; i < (size_t)maxm * (size_t)o.k; i++)
            a[i] = qkc_bench_normal(&rng);
        if (qkc_weights_pack(ctx, kern, w, nk * sizeof *w, pw, packed) != QKC_OK) {
            fprintf(stderr, "error: qkc: packing: %s\n", qkc_context_last_error(ctx));
            return 1;
        }
        qkc_peers_cpu_model(cpu, sizeof cpu);
        printf("qkc %s against OpenBLAS cblas_sgemm (%s), n=%d k=%d, %s\n", qkc_version_string(), o.lib, o.n, o.k,
               cpu);
        printf("  qkc: %s, layout %s, schedule %s; peak f32 FMA measured with %s\n\n", info.target, info.layout,
               info.schedule, qkc_roofline_flops_isa());
        printf("%6s %7s %12s %12s %10s %10s %8s %8s %8s %10s\n", "M", "threads", "qkc us", "openblas us", "qkc GF/s",
               "blas GF/s", "peak", "qkc/pk", "qkc/blas", "max diff");
        {
            qkc_status pst;
            if (!(pool = qkc_context_pool(ctx, &pst))) {
                fprintf(stderr, "error: qkc: no thread pool: %s\n", qkc_context_last_error(ctx));
                return 1;
            }
        }
        for (int ti = 0; ti < o.nt; ti++) {
            int t = o.threads[ti];
            double peak = qkc_roofline_peak_gflops(pool, t, 3);
            set_threads(t);
            for (int mi = 0; mi < o.nm; mi++) {
                int m = o.ms[mi];
                qkc_matmul_args args = {a, o.k, pw, packed, NULL, c1, o.n, m};
                double best_q = 0, best_b = 0, flops = 2.0 * m * o.n * o.k;
                for (int round = 0; round < 3; round++) {
                    double q = time_qkc(ctx, kern, &args, t, o.reps, samples);
                    double b = time_blas(sgemm, m, o.n, o.k, a, w, c2, o.reps, samples);
                    best_q = round == 0 || q < best_q ? q : best_q;
                    best_b = round == 0 || b < best_b ? b : best_b;
                }
                printf("%6d %7d %12.1f %12.1f %10.1f %10.1f %8.1f %7.0f%% %8.2f %10.1e\n", m, t, best_q, best_b,
                       flops / best_q / 1e3, flops / best_b / 1e3, peak, 100.0 * flops / best_q / 1e3 / peak,
                       best_b / best_q, qkc_peers_max_rel_diff(c1, c2, (int64_t)m * o.n));
            }
        }
        free(w), free(a), free(c1), free(c2), free(pw), free(samples);
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    dlclose(lib);
    return 0;
}
