/*
 * `qkc bench`: measure compiled kernels against the machine's own limits,
 * measured in the same run (bench/roofline.h). For each (M, threads) case:
 *
 *   us            median µs per call (hot: one weight copy; --cold: calls
 *                 rotate over copies totalling >= 1 GiB so each streams its
 *                 weights from DRAM)
 *   gbps          effective GB/s: the format's weight bytes (elements +
 *                 scales + zeros, qkc_weights_bytes) / time
 *   gflops        2·M·N·K / time
 *   mem_gbps      read bandwidth with the same thread count (1 GiB sweep)
 *   peak_gflops   peak f32 FMA rate, same thread count
 *   peak_gops     peak int8 dot-product rate, same thread count
 *   compile_ms    median cold JIT compile of this kernel (fresh context,
 *                 JIT already started, so LLVM's start-up is not counted;
 *                 disk cache off)
 *   cache_hit_us  median qkc_kernel_compile of an already compiled kernel
 *   disk_hit_us   median qkc_kernel_compile that links the kernel from the
 *                 disk cache, each in a fresh process (`qkc bench
 *                 --probe-disk-hit`) whose JIT another cached kernel has
 *                 already started
 *   jit_start_us  median of that first cached kernel's compile: the JIT's
 *                 start-up in a fresh process plus one disk hit
 *   nmse, max_abs_err   against the reference on the first min(M, 8) rows
 */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/roofline.h"
#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "core/context.h"
#include "bench/weights_rng.h"
#include "core/timing.h"
#include "tools/tool.h"

/* "1,8,512" -> values (each a whole number in [lo, hi], qkc_parse_int);
 * returns the count, or -1 for anything else ("1,,2", "1,", "8x"). */
static int parse_list(const char *s, long long *out, int cap, long long lo, long long hi)
{
    int n = 0;
    for (;;) {
        char item[32];
        size_t len = strcspn(s, ",");
        if (n >= cap || len >= sizeof item)
            return -1;
        memcpy(item, s, len);
        item[len] = '\0';
        if (qkc_parse_int(item, lo, hi, &out[n]))
            return -1;
        n++;
        if (!s[len])
            return n;
        s += len + 1;
    }
}

/* The weights of every case come from one stream (bench/weights_rng.h). */
static uint64_t rng = QKC_BENCH_RNG_SEED;

typedef struct limits {
    int threads;
    double mem_gbps, peak_gflops, peak_gops;
} limits;

/* A context with the disk cache off, or on in `dir`; tune_db: a tuning
 * database file (NULL: $QKC_TUNE_DB). */
static qkc_status bench_context_db(int threads, const char *dir, const char *tune_db, qkc_context **out)
{
    qkc_context_options co = {.struct_size = sizeof co, .threads = threads};
    co.disk_cache = dir ? QKC_DISK_CACHE_ON : QKC_DISK_CACHE_OFF;
    co.cache_dir = dir;
    co.tune_db = tune_db;
    return qkc_context_create(&co, out);
}

static qkc_status bench_context(int threads, const char *dir, qkc_context **out)
{
    return bench_context_db(threads, dir, NULL, out);
}

/* The kernel that starts the JIT before the timed compile. */
#define WARM_SPEC "matmul n=8 k=32 w=f32"

/* Compile time of a kernel on a fresh context whose JIT is already up;
 * NAN when a compile fails, with the message printed. */
static double cold_compile_ms(const char *text, const qkc_compile_options *opt, int reps)
{
    double t[16];
    int n = 0;
    for (int r = 0; r < reps && r < 16; r++) {
        qkc_context *c;
        qkc_spec *s = NULL, *warm = NULL;
        qkc_kernel *k = NULL;
        double t0;
        if (bench_context(0, NULL, &c) != QKC_OK) {
            fprintf(stderr, "error: out of memory for a context\n");
            return NAN;
        }
        /* Start the JIT with another kernel, so only this one is timed. */
        if (qkc_spec_parse(c, WARM_SPEC, &warm) != QKC_OK || qkc_kernel_compile(c, warm, opt, &k) != QKC_OK ||
            qkc_spec_parse(c, text, &s) != QKC_OK) {
            qkc_report("error: cold compile: ", qkc_context_last_error(c));
            qkc_kernel_destroy(k);
            qkc_spec_destroy(warm);
            qkc_context_destroy(c);
            return NAN;
        }
        qkc_kernel_destroy(k);
        qkc_spec_destroy(warm);
        t0 = qkc_now_seconds();
        if (qkc_kernel_compile(c, s, opt, &k) != QKC_OK) {
            qkc_report("error: cold compile: ", qkc_context_last_error(c));
            qkc_spec_destroy(s);
            qkc_context_destroy(c);
            return NAN;
        }
        t[n++] = (qkc_now_seconds() - t0) * 1e3;
        qkc_kernel_destroy(k);
        qkc_spec_destroy(s);
        qkc_context_destroy(c);
    }
    return n ? qkc_median(t, n) : NAN;
}

/* Run-time operands of lora= and ascale=static specs: random adapters
 * (N(0, 0.02²) in the lora dtype, scale 2), alpha 4/127 and smoothing
 * factors 0.5 .. 2. Freed by the caller (three pointers). */
static void bench_extras(const qkc_spec_info *info, qkc_lora *lora, qkc_act_scales *as, void **mem)
{
    int el = strcmp(info->lora_type, "f32") ? 2 : 4;
    mem[0] = mem[1] = mem[2] = NULL;
    if (info->lora_rank) {
        int64_t counts[2] = {info->lora_rank * info->k, info->n * info->lora_rank};
        for (int t = 0; t < 2; t++) {
            unsigned char *p = malloc((size_t)(counts[t] * el));
            for (int64_t i = 0; p && i < counts[t]; i++) {
                float x = qkc_bench_normal(&rng) * 0.02f;
                if (el == 4)
                    ((float *)p)[i] = x;
                else if (!strcmp(info->lora_type, "f16"))
                    ((uint16_t *)p)[i] = qkc_f32_to_f16(x);
                else
                    ((uint16_t *)p)[i] = qkc_f32_to_bf16(x);
            }
            mem[t] = p;
        }
        lora->a = mem[0], lora->b = mem[1], lora->scale = 2.0f;
    }
    as->alpha = 4.0f / 127.0f;
    as->smooth = NULL;
    if (!strcmp(info->act_scales, "static:channel") && (mem[2] = malloc((size_t)info->k * sizeof(float)))) {
        for (int64_t i = 0; i < info->k; i++)
            ((float *)mem[2])[i] = 0.5f + 0.5f * (float)(i % 4);
        as->smooth = mem[2];
    }
}

static double cache_hit_us(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *opt)
{
    enum { N = 2001 };
    static double t[N];
    for (int i = 0; i < N; i++) {
        qkc_kernel *k;
        double t0 = qkc_now_seconds();
        if (qkc_kernel_compile(ctx, spec, opt, &k) != QKC_OK) {
            qkc_report("error: cached compile: ", qkc_context_last_error(ctx));
            return NAN;
        }
        t[i] = (qkc_now_seconds() - t0) * 1e6;
        qkc_kernel_destroy(k);
    }
    return qkc_median(t, N);
}

/* Compile time in microseconds (NAN on failure); *disk says whether the
 * kernel came from the disk cache. */
static double timed_compile_us(qkc_context *c, const char *text, const qkc_compile_options *opt, int *disk)
{
    qkc_spec *s;
    qkc_kernel *k;
    qkc_kernel_info ki;
    double t0, us = NAN;
    if (qkc_spec_parse(c, text, &s) != QKC_OK)
        return NAN;
    t0 = qkc_now_seconds();
    if (qkc_kernel_compile(c, s, opt, &k) == QKC_OK) {
        us = (qkc_now_seconds() - t0) * 1e6;
        *disk = qkc_kernel_query(k, &ki) == QKC_OK && ki.from_disk;
        qkc_kernel_destroy(k);
    }
    qkc_spec_destroy(s);
    return us;
}

/* `qkc bench --probe-disk-hit DIR SPEC`, run by bench in a fresh process:
 * start the JIT with WARM_SPEC from the cache in DIR, then time SPEC's
 * compile, which must come from the cache too. Prints "<start_us> <hit_us>". */
static int probe_disk_hit(const char *dir, const char *text, const qkc_compile_options *opt)
{
    qkc_context *c;
    int d1 = 0, d2 = 0;
    double start, hit;
    if (bench_context(1, dir, &c) != QKC_OK)
        return 1;
    start = timed_compile_us(c, WARM_SPEC, opt, &d1);
    hit = timed_compile_us(c, text, opt, &d2);
    qkc_context_destroy(c);
    if (!d1 || !d2 || isnan(start) || isnan(hit)) {
        fprintf(stderr, "error: the probe's kernels did not come from the disk cache in %s\n", dir);
        return 1;
    }
    printf("%.3f %.3f\n", start, hit);
    return 0;
}

/* Median disk-cache hit and JIT start-up, each from `procs` fresh
 * processes running this program with --probe-disk-hit on a scratch cache
 * filled here. NAN when it cannot be measured. */
static void disk_hit(const char *text, const char *target, int procs, double *start_us, double *hit_us)
{
    char dir[] = "/tmp/qkc-bench-XXXXXX", self[4096], line[128];
    double ts[32], th[32];
    int n = 0;
    qkc_context *c = NULL;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    *start_us = *hit_us = NAN;
    if (sl <= 0 || !mkdtemp(dir))
        return;
    self[sl] = '\0';
    if (bench_context(1, dir, &c) == QKC_OK) {
        int d;
        timed_compile_us(c, WARM_SPEC, &opt, &d);
        timed_compile_us(c, text, &opt, &d);
    }
    for (int p = 0; p < procs && p < 32; p++) {
        int fds[2], status;
        pid_t pid;
        posix_spawn_file_actions_t fa;
        char *args[8];
        int na = 0;
        FILE *f;
        args[na++] = self;
        args[na++] = "bench";
        args[na++] = "--probe-disk-hit";
        args[na++] = dir;
        if (target) {
            args[na++] = "--target";
            args[na++] = (char *)target;
        }
        args[na++] = (char *)text;
        args[na] = NULL;
        if (pipe(fds) != 0)
            break;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        if (posix_spawn(&pid, self, &fa, NULL, args, NULL) != 0) {
            posix_spawn_file_actions_destroy(&fa);
            close(fds[0]), close(fds[1]);
            break;
        }
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        f = fdopen(fds[0], "r");
        if (f && fgets(line, sizeof line, f) && sscanf(line, "%lf %lf", &ts[n], &th[n]) == 2)
            n++;
        if (f)
            fclose(f);
        else
            close(fds[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (c) {
        if (qkc_cache_clear(c, NULL) != QKC_OK)
            qkc_report("warning: removing the scratch kernel cache: ", qkc_context_last_error(c));
        qkc_context_destroy(c);
    }
    rmdir(dir);
    if (n) {
        *start_us = qkc_median(ts, n);
        *hit_us = qkc_median(th, n);
    } else {
        fprintf(stderr, "warning: could not measure the disk-cache hit in fresh processes (shown as n/a)\n");
    }
}

/* A measured figure, or n/a (null in JSON) when it could not be measured. */
static const char *figure(char *buf, size_t size, const char *fmt, double v, int json)
{
    if (isfinite(v))
        snprintf(buf, size, fmt, v);
    else
        snprintf(buf, size, "%s", json ? "null" : "n/a");
    return buf;
}

int qkc_cmd_bench(int argc, char **argv)
{
    long long ms[16] = {1}, ths[16] = {1};
    int nm = 1, nth = 1, cold = 0, json = 0, reps = 0, rc = 1;
    const char *target = NULL;
    char *text = NULL, canon[1024];
    int nwords = 0;
    char **words = calloc((size_t)argc + 1, sizeof *words);
    qkc_context *ctx = NULL;
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_spec_info info;
    qkc_kernel_info kinfo;
    limits lim[16];
    int nlim = 0;
    const char *probe_dir = NULL, *plot = NULL;
    qkc_plot_point pts[256];
    int npts = 0, plot_failed = 0, failed = 0;
    long long maxth = 1;
    const char *db = NULL, *sched_text = NULL, *device = NULL;
    qkc_schedule sched;

    if (!words)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            qkc_print_help("bench");
            free(words);
            return 0;
        } else if (!strcmp(argv[i], "--m") && i + 1 < argc) {
            if ((nm = parse_list(argv[++i], ms, 16, 1, 1 << 20)) < 1) {
                fprintf(stderr, "error: --m takes a list such as 1,8,512\n");
                goto usage;
            }
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if ((nth = parse_list(argv[++i], ths, 16, 1, 1024)) < 1) {
                fprintf(stderr, "error: --threads takes a list such as 1,2\n");
                goto usage;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            long long v;
            if (qkc_parse_int(argv[++i], 1, 100000, &v)) {
                fprintf(stderr, "error: --reps takes an integer from 1 to 100000\n");
                goto usage;
            }
            reps = (int)v;
        } else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
            target = argv[++i];
        } else if (!strcmp(argv[i], "--plot") && i + 1 < argc) {
            plot = argv[++i];
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            db = argv[++i];
        } else if (!strcmp(argv[i], "--schedule") && i + 1 < argc) {
            sched_text = argv[++i];
        } else if (!strcmp(argv[i], "--probe-disk-hit") && i + 1 < argc) {
            probe_dir = argv[++i];
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            device = argv[++i];
            if (strcmp(device, "cpu") && strcmp(device, "cuda")) {
                fprintf(stderr, "error: --device takes cpu or cuda\n");
                goto usage;
            }
        } else if (!strcmp(argv[i], "--cold")) {
            cold = 1;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "error: unknown option %s (see qkc bench --help)\n", argv[i]);
            goto usage;
        } else {
            words[nwords++] = argv[i];
        }
    }
    if (nwords == 0) {
        fprintf(stderr, "error: qkc bench needs a spec (see qkc bench --help)\n");
        goto usage;
    }
    text = qkc_join_words(nwords, words);
    if (text && device && !strcmp(device, "cuda")) {
        rc = qkc_bench_gpu(text, ms, nm, reps, target, json);
        goto done;
    }
    if (text && probe_dir) {
        qkc_compile_options opt = {sizeof opt, target, NULL, 0};
        rc = probe_disk_hit(probe_dir, text, &opt);
        goto done;
    }
    {
        for (int i = 0; i < nth; i++)
            maxth = ths[i] > maxth ? ths[i] : maxth;
        if (!text || bench_context_db((int)maxth, NULL, db, &ctx) != QKC_OK) {
            fprintf(stderr, "error: out of memory\n");
            goto done;
        }
    }
    if (sched_text && qkc_schedule_parse(ctx, sched_text, &sched) != QKC_OK) {
        qkc_report("error: --schedule: ", qkc_context_last_error(ctx));
        goto usage;
    }
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK) {
        qkc_report("", qkc_context_last_error(ctx));
        goto done;
    }
    if (qkc_spec_print(spec, canon, sizeof canon, NULL) != QKC_OK || qkc_spec_query(spec, &info) != QKC_OK) {
        qkc_report("error: ", qkc_context_last_error(ctx));
        goto done;
    }
    {
        qkc_compile_options opt = {sizeof opt, target, sched_text ? &sched : NULL, ms[0]};
        double compile_ms, hit_us, disk_us, start_us;
        char f1[32], f2[32];
        size_t pbytes;
        unsigned char *blob, **copies = NULL;
        float *w;
        int ncopies = 1;
        qkc_status st = qkc_kernel_compile(ctx, spec, &opt, &kern);
        if (st != QKC_OK || qkc_kernel_query(kern, &kinfo) != QKC_OK ||
            qkc_kernel_packed_bytes(kern, &pbytes) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto done;
        }
        if (isnan(compile_ms = cold_compile_ms(text, &opt, 5)) || isnan(hit_us = cache_hit_us(ctx, spec, &opt)))
            goto done; /* the message is printed */
        disk_hit(text, target, 7, &start_us, &disk_us);
        w = malloc((size_t)(info.n * info.k) * sizeof *w);
        blob = malloc(info.weight_bytes);
        if (!w || !blob) {
            fprintf(stderr, "error: out of memory for %lld x %lld weights\n", (long long)info.n, (long long)info.k);
            free(w), free(blob);
            goto done;
        }
        for (int64_t i = 0; i < info.n * info.k; i++)
            w[i] = qkc_bench_normal(&rng) * 0.02f;
        if (qkc_quantize(ctx, spec, w, info.k, blob, info.weight_bytes) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            free(w), free(blob);
            goto done;
        }
        free(w);
        if (cold)
            ncopies = (int)((((size_t)1 << 30) + pbytes - 1) / (pbytes ? pbytes : 1)) + 1;
        if (!(copies = calloc((size_t)ncopies, sizeof *copies))) {
            fprintf(stderr, "error: out of memory for %d weight copies\n", ncopies);
            free(blob);
            goto done;
        }
        for (int c = 0; c < ncopies; c++) {
            copies[c] = malloc(pbytes ? pbytes : 1);
            if (!copies[c] || (c == 0 ? qkc_weights_pack(ctx, kern, blob, info.weight_bytes, copies[0], pbytes)
                                      : (memcpy(copies[c], copies[0], pbytes), QKC_OK)) != QKC_OK) {
                fprintf(stderr, "error: could not prepare %d weight copies: ", ncopies);
                qkc_report("", copies[c] ? qkc_context_last_error(ctx) : "out of memory");
                for (int d = 0; d <= c; d++)
                    free(copies[d]);
                free(copies);
                free(blob);
                goto done;
            }
        }
        if (!json) {
            char what[400];
            printf("qkc bench: %s\n", canon);
            printf("kernel: target %s (%s), schedule %s\n        layout %s\n        compute %s\n", kinfo.target,
                   kinfo.features, kinfo.schedule, kinfo.layout, qkc_describe_compute(spec, kern, what, sizeof what));
            /* the M values on the other side of 32 rows run a schedule of
             * their own (qkc_kernel_query_m) */
            for (int mi = 0; mi < nm; mi++) {
                qkc_kernel_info mk;
                if (!info.m && qkc_kernel_query_m(ctx, kern, ms[mi], &mk) == QKC_OK &&
                    strcmp(mk.schedule, kinfo.schedule)) {
                    printf("        M %s 32: schedule %s\n", ms[mi] >= 32 ? ">=" : "<", mk.schedule);
                    break;
                }
            }
            printf("weights: %zu bytes (%.3f bits/weight), packed %zu; %s\n", info.weight_bytes,
                   info.bits_per_weight, pbytes, cold ? "cold: rotating over >= 1 GiB of copies" : "hot: one copy");
            printf("compile: %.2f ms cold, %.3f us in-memory hit, %s us disk hit (fresh process; JIT start "
                   "%s us)\n",
                   compile_ms, hit_us, figure(f1, sizeof f1, "%.1f", disk_us, 0),
                   figure(f2, sizeof f2, "%.1f", start_us, 0));
            printf("\n%6s %7s %11s %8s %8s %9s %8s %10s %9s %10s %10s\n", "M", "threads", "us", "GB/s", "mem GB/s",
                   "%mem", "GFLOP/s", "peak GF/s", "peak GOP/s", "nmse", "max_err");
        }
        for (int ti = 0; ti < nth && !failed; ti++) {
            limits *L = NULL;
            qkc_status pst;
            qkc_threadpool *pool = qkc_context_pool(ctx, &pst);
            if (!pool) {
                /* the pool the kernels run on: without it nothing below is measured */
                fprintf(stderr, "error: cannot start the thread pool of %lld threads: ", maxth);
                qkc_report("", qkc_context_last_error(ctx));
                failed = 1;
                break;
            }
            for (int i = 0; i < nlim; i++)
                if (lim[i].threads == (int)ths[ti])
                    L = &lim[i];
            if (!L && nlim < 16) {
                L = &lim[nlim++];
                L->threads = (int)ths[ti];
                L->mem_gbps = qkc_roofline_read_gbps(pool, L->threads, (size_t)1 << 30, 5);
                L->peak_gflops = qkc_roofline_peak_gflops(pool, L->threads, 3);
                L->peak_gops = qkc_roofline_peak_gops(pool, L->threads, 3);
                if (!(L->mem_gbps > 0))
                    fprintf(stderr, "warning: could not measure the read bandwidth with %d threads (out of memory "
                                    "for its 1 GiB buffer?): %%mem is not shown\n",
                            L->threads);
            }
            for (int mi = 0; mi < nm && !failed; mi++) {
                int64_t m = info.m ? info.m : ms[mi];
                int a_el = strcmp(info.a_type, "f32") ? 2 : 4, c_el = strcmp(info.out_type, "f32") ? 2 : 4;
                int64_t cm = m < 8 ? m : 8;
                void *a = malloc((size_t)(m * info.k * a_el)), *c = malloc((size_t)(m * info.n * c_el));
                void *cr = malloc((size_t)(cm * info.n * c_el));
                float *bias = calloc((size_t)info.n, sizeof *bias);
                double *t = NULL, us, err = 0, ref = 0, maxerr = 0, elapsed = 0;
                int n_reps = reps, r;
                qkc_run_options ro = {.struct_size = sizeof ro, .threads = (int)ths[ti]};
                qkc_lora lora;
                qkc_act_scales as;
                void *extra[3];
                bench_extras(&info, &lora, &as, extra);
                if (info.lora_rank)
                    ro.lora = &lora;
                if (strcmp(info.act_scales, "dynamic"))
                    ro.act_scales = &as;
                if (!a || !c || !cr || !bias || (info.lora_rank && (!extra[0] || !extra[1])) ||
                    (!strcmp(info.act_scales, "static:channel") && !extra[2])) {
                    fprintf(stderr, "error: out of memory for M=%lld\n", (long long)m);
                    failed = 1;
                    goto next_case;
                }
                for (int64_t i = 0; i < m * info.k; i++) {
                    float x = qkc_bench_normal(&rng);
                    if (a_el == 4)
                        ((float *)a)[i] = x;
                    else if (!strcmp(info.a_type, "f16"))
                        ((uint16_t *)a)[i] = qkc_f32_to_f16(x);
                    else
                        ((uint16_t *)a)[i] = qkc_f32_to_bf16(x);
                }
                qkc_matmul_args args = {a, info.k, copies[0], pbytes, info.has_bias ? bias : NULL, c, info.n, m};
                /* warm-up, and size the repetitions to about a second */
                for (r = 0; r < 3 || (elapsed < 0.05 && r < 1000); r++) {
                    double t0 = qkc_now_seconds();
                    args.weights = copies[r % ncopies];
                    if (qkc_kernel_run(ctx, kern, &args, &ro) != QKC_OK)
                        goto run_failed;
                    elapsed += qkc_now_seconds() - t0;
                }
                if (!n_reps) {
                    n_reps = (int)(1.0 / (elapsed / r));
                    n_reps = n_reps < 11 ? 11 : n_reps > 2001 ? 2001 : n_reps;
                }
                if (!(t = malloc((size_t)n_reps * sizeof *t))) {
                    fprintf(stderr, "error: out of memory for the times\n");
                    failed = 1;
                    goto next_case;
                }
                for (r = 0; r < n_reps; r++) {
                    double t0;
                    args.weights = copies[r % ncopies];
                    t0 = qkc_now_seconds();
                    if (qkc_kernel_run(ctx, kern, &args, &ro) != QKC_OK)
                        goto run_failed;
                    t[r] = (qkc_now_seconds() - t0) * 1e6;
                }
                us = qkc_median(t, n_reps);
                /* correctness on the first rows (not for specs that fix m) */
                if (!info.m) {
                    qkc_matmul_args ar = {a, info.k, blob, info.weight_bytes, info.has_bias ? bias : NULL, cr, info.n, cm};
                    if (qkc_reference_matmul_with_options(ctx, spec, &ar, &ro) != QKC_OK) {
                        fprintf(stderr, "error: M=%lld threads=%d: the reference: ", (long long)m, (int)ths[ti]);
                        qkc_report("", qkc_context_last_error(ctx));
                        failed = 1;
                        goto next_case;
                    }
                    for (int64_t i = 0; i < cm * info.n; i++) {
                        double x = c_el == 4 ? ((float *)c)[i]
                                             : (!strcmp(info.out_type, "f16") ? qkc_f16_to_f32(((uint16_t *)c)[i])
                                                                              : qkc_bf16_to_f32(((uint16_t *)c)[i]));
                        double y = c_el == 4 ? ((float *)cr)[i]
                                             : (!strcmp(info.out_type, "f16") ? qkc_f16_to_f32(((uint16_t *)cr)[i])
                                                                              : qkc_bf16_to_f32(((uint16_t *)cr)[i]));
                        err += (x - y) * (x - y);
                        ref += y * y;
                        /* fmax drops a NaN: keep it */
                        maxerr = isnan(x - y) || isnan(maxerr) ? NAN : fmax(maxerr, fabs(x - y));
                    }
                }
                {
                    double gbps = (double)info.weight_bytes / (us * 1e-6) / 1e9;
                    double gflops = 2.0 * (double)m * (double)info.n * (double)info.k / (us * 1e-6) / 1e9;
                    double nmse = ref > 0 ? err / ref : err > 0 || isnan(err) ? err : 0.0;
                    char pct[16];
                    if (npts < 256) {
                        pts[npts].m = (long long)m;
                        pts[npts].threads = L->threads;
                        pts[npts].intensity = 2.0 * (double)m * (double)info.n * (double)info.k / (double)info.weight_bytes;
                        pts[npts].gflops = gflops;
                        npts++;
                    }
                    if (L->mem_gbps > 0)
                        snprintf(pct, sizeof pct, "%8.1f%%", 100.0 * gbps / L->mem_gbps);
                    else
                        snprintf(pct, sizeof pct, "%9s", "n/a");
                    if (json)
                        printf("{\"spec\": \"%s\", \"compute\": \"%s\", \"m\": %lld, \"threads\": %d, "
                               "\"cold\": %s, \"us\": %.3f, \"gbps\": %.3f, \"gflops\": %.3f, \"mem_gbps\": %.3f, "
                               "\"peak_gflops\": %.3f, \"peak_gops\": %.3f, \"compile_ms\": %.3f, "
                               "\"disk_hit_us\": %s, \"jit_start_us\": %s, \"cache_hit_us\": %.4f, \"nmse\": %.3e, "
                               "\"max_abs_err\": %.3e}\n",
                               canon, info.compute_type, (long long)m, L->threads, cold ? "true" : "false", us, gbps,
                               gflops, L->mem_gbps, L->peak_gflops, L->peak_gops, compile_ms,
                               figure(f1, sizeof f1, "%.1f", disk_us, 1), figure(f2, sizeof f2, "%.1f", start_us, 1),
                               hit_us, nmse, maxerr);
                    else
                        printf("%6lld %7d %11.1f %8.2f %8.2f %s %8.1f %10.1f %9.1f %10.2e %10.2e\n", (long long)m,
                               L->threads, us, gbps, L->mem_gbps, pct, gflops, L->peak_gflops, L->peak_gops, nmse,
                               maxerr);
                    fflush(stdout);
                    if (!isfinite(nmse) || !isfinite(maxerr)) {
                        fprintf(stderr, "error: M=%lld threads=%d: the kernel's output against the reference: nmse "
                                        "%g, max_abs_err %g: not a finite number\n",
                                (long long)m, (int)ths[ti], nmse, maxerr);
                        failed = 1;
                    }
                }
                goto next_case;
            run_failed:
                fprintf(stderr, "error: M=%lld threads=%d: ", (long long)m, (int)ths[ti]);
                qkc_report("", qkc_context_last_error(ctx));
                failed = 1;
            next_case:
                free(t);
                free(a), free(c), free(cr), free(bias), free(extra[0]), free(extra[1]), free(extra[2]);
            }
        }
        if (plot && !failed) {
            qkc_plot_limits pl[16];
            char title[1200];
            for (int i = 0; i < nlim; i++) {
                pl[i].threads = lim[i].threads;
                pl[i].mem_gbps = lim[i].mem_gbps;
                pl[i].peak_gflops = lim[i].peak_gflops;
                pl[i].peak_gops = lim[i].peak_gops;
                pl[i].int8 = !strcmp(info.compute_type, "int8");
            }
            snprintf(title, sizeof title, "qkc bench: %s (%s)", canon, cold ? "cold" : "hot");
            if (qkc_plot_roofline(plot, title, pts, npts, pl, nlim) != 0) {
                fprintf(stderr, "error: cannot write the plot %s\n", plot);
                plot_failed = 1;
            } else if (!json) {
                printf("\nroofline plot: %s\n", plot);
            }
        }
        for (int cpy = 0; cpy < ncopies; cpy++)
            free(copies[cpy]);
        free(copies);
        free(blob);
    }
    rc = plot_failed || failed;
    goto done;
usage:
    rc = 2;
done:
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    free(text);
    free(words);
    return rc;
}
