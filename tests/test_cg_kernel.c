/*
 * JIT kernels against the reference matmul: every weight format of the
 * tolerance table, every compute type, both x86 ISA levels (AVX-512 and
 * AVX2), and shapes with M, N and K off every tile and chunk size.
 *
 * Default suite: a rotating selection of shapes per (format, target) so it
 * stays quick. QKC_SWEEP=full (the `sweep` build target) runs the whole
 * grid M ∈ {1,2,3,7,8,16,33,64,257} × N ∈ {1,17,1000} × K from one group
 * to 4096+. A failure prints the command that reruns exactly that case:
 * QKC_CASE=<case name> ./test_cg_kernel
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/testutil.h"
#include "util/tolerance.h"

static const int64_t sweep_m[] = {1, 2, 3, 7, 8, 16, 33, 64, 257};
static const int64_t sweep_n[] = {1, 17, 1000};
static const int64_t sweep_k[] = {16, 32, 250, 256, 1000, 4096, 4352};

typedef struct outcome {
    int ran;    /* 0: the spec did not verify for this shape (skipped) */
    int failed;
} outcome;

/* One case: compile for `target`, quantize, pack, run, compare. */
static outcome run_case_m(qkc_context *ctx, const char *target, const char *weights, const char *extra,
                          const int64_t *ms, int nms, int64_t n, int64_t k, int threads);

static outcome run_case(qkc_context *ctx, const char *target, const char *weights, const char *extra, int64_t m,
                        int64_t n, int64_t k, int threads)
{
    return run_case_m(ctx, target, weights, extra, &m, 1, n, k, threads);
}

/* One kernel (compiled once), run for each M in ms. */
static outcome run_case_m(qkc_context *ctx, const char *target, const char *weights, const char *extra,
                          const int64_t *ms, int nms, int64_t n, int64_t k, int threads)
{
    outcome o = {0, 0};
    char text[512], name[640];
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    int any = 0;
    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s %s", (long long)n, (long long)k, weights, extra);
    for (int mi = 0; mi < nms; mi++) {
        snprintf(name, sizeof name, "%s|%s|m=%lld|t=%d", target, text, (long long)ms[mi], threads);
        any |= qkc_case_selected(name);
    }
    if (!any)
        return o;
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
        return o; /* the format does not take this shape */
    {
        qkc_compile_options opt = {sizeof opt, target, NULL, 0};
        if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK) {
            print_error("%s: compile failed: %s\n", name, qkc_context_last_error(ctx));
            o.failed = 1;
            qkc_spec_destroy(spec);
            return o;
        }
    }
    for (int mi = 0; mi < nms && !o.failed; mi++) {
        int64_t m = ms[mi];
        snprintf(name, sizeof name, "%s|%s|m=%lld|t=%d", target, text, (long long)m, threads);
        if (!qkc_case_selected(name))
            continue;
        o.ran++;
        {
            char err[1024];
            if (qkc_test_kernel_case(ctx, spec, kern, name, m, threads, err, sizeof err)) {
                print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_kernel\n", err, name);
                o.failed = 1;
            }
        }
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    return o;
}

/* The levels this machine can run: on x86-64, AVX-512 (with VNNI when present)
 * and AVX2. A level the CPU lacks is skipped with a message. */
static int targets(const char **out)
{
    uint32_t host = qkc_target_host_features();
    int n = 0;
    if (qkc_target_host_arch() == QKC_ARCH_AARCH64) {
        /* natively on aarch64: the best named level and plain NEON */
        out[n++] = (host & QKC_FEAT_I8MM) && (host & QKC_FEAT_DOTPROD) ? "aarch64-neon-dotprod-i8mm"
                   : (host & QKC_FEAT_DOTPROD)                         ? "aarch64-neon-dotprod"
                                                                       : "aarch64-neon";
        if (strcmp(out[0], "aarch64-neon"))
            out[n++] = "aarch64-neon";
        return n;
    }
    if (host & QKC_FEAT_AVX512_VNNI)
        out[n++] = "x86_64-avx512-vnni";
    else if (host & QKC_FEAT_AVX512BW)
        out[n++] = "x86_64-avx512";
    else
        print_message("skipped: AVX-512 kernels (this CPU has no AVX-512)\n");
    if (host & QKC_FEAT_AVX2)
        out[n++] = "x86_64-avx2";
    else
        print_message("skipped: AVX2 kernels (this CPU has no AVX2)\n");
    return n;
}

/* Every compute type by name (the default suite always runs the first);
 * the epilogue variants run the format's default compute (int8 for the
 * GGUF presets, f32 for the rest). */
static const char *const extras[] = {
    "compute=f32", "compute=int8", "compute=bf16", "compute=f16", "compute=tf32",
    "a=bf16 bias=f32 act=silu out=bf16", "a=f16 bias=f32 act=gelu out=f16", "act=relu",
};

static void test_every_format(void **state)
{
    (void)state;
    size_t count;
    const qkc_tol_roundtrip *tab = qkc_tol_roundtrip_table(&count);
    const char *tg[2];
    int ntg = targets(tg), failures = 0, ran = 0;
    /* A selected case (QKC_CASE) may come from either grid: search both. */
    int full = (getenv("QKC_SWEEP") && !strcmp(getenv("QKC_SWEEP"), "full")) ||
               (getenv("QKC_CASE") && *getenv("QKC_CASE"));
    qkc_context *ctx;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    /* QKC_SWEEP_FROM=<row> resumes a long full sweep at a tolerance-table row */
    size_t from = getenv("QKC_SWEEP_FROM") ? (size_t)strtoul(getenv("QKC_SWEEP_FROM"), NULL, 10) : 0;
    for (size_t f = full ? from : 0; f < count; f++) {
        for (int t = 0; t < ntg; t++) {
            if (full) {
                /* every M on one kernel per (compute variant, N, K); the
                 * largest products are skipped to bound the reference's time */
                for (size_t e = 0; e < sizeof extras / sizeof extras[0]; e++)
                    for (size_t ni = 0; ni < sizeof sweep_n / sizeof sweep_n[0]; ni++)
                        for (size_t ki = 0; ki < sizeof sweep_k / sizeof sweep_k[0]; ki++) {
                            int64_t mlist[9];
                            int nml = 0;
                            for (size_t mi = 0; mi < sizeof sweep_m / sizeof sweep_m[0]; mi++)
                                if (sweep_m[mi] * sweep_n[ni] * sweep_k[ki] <= 300000000)
                                    mlist[nml++] = sweep_m[mi];
                            outcome o = run_case_m(ctx, tg[t], tab[f].weights, extras[e], mlist, nml, sweep_n[ni],
                                                   sweep_k[ki], 0);
                            ran += o.ran, failures += o.failed;
                        }
                /* progress of a long sweep, and the row to resume at */
                print_message("row %zu (%s) on %s: %d kernels so far, %d failed\n", f, tab[f].weights, tg[t], ran,
                              failures);
                continue;
            }
            /* Default: three shapes and two compute variants per format and
             * target, rotating through the grid so every M, N and K value
             * is covered across the table. */
            for (int s = 0; s < 3; s++) {
                size_t idx = f * 7 + (size_t)t * 3 + (size_t)s;
                int64_t m = sweep_m[idx % 9], n = sweep_n[(idx / 2) % 3];
                const char *extra = extras[s == 0 ? 0 : (idx % (sizeof extras / sizeof extras[0]))];
                int64_t k = 0;
                outcome o = {0, 0};
                if (n == 1000 && m > 33)
                    n = 17; /* keep the default suite quick */
                for (size_t ki = (idx % 7); ki < (idx % 7) + 7 && !o.ran; ki++) {
                    k = sweep_k[ki % 7];
                    if (k > 1000 && m * n > 2000)
                        continue;
                    o = run_case(ctx, tg[t], tab[f].weights, extra, m, n, k, 0);
                }
                ran += o.ran, failures += o.failed;
            }
        }
    }
    print_message("%d kernels compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_true(ran > 0);
    assert_int_equal(failures, 0);
}

/* Threads split N: 1 and 2 threads give the same bits. */
static void test_threads_agree(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    const char *tg[2];
    int ntg = targets(tg), failures = 0;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (int t = 0; t < ntg; t++) {
        failures += run_case(ctx, tg[t], "w=q4_0", "", 3, 1000, 256, 1).failed;
        failures += run_case(ctx, tg[t], "w=q4_0", "", 3, 1000, 256, 2).failed;
        failures += run_case(ctx, tg[t], "w=int4 group=32 scale=f16", "bias=f32 act=silu", 1, 777, 512, 2).failed;
    }
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* A second compile of the same kernel is a cache hit. */
static void test_cache_hit(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *k1, *k2;
    qkc_kernel_info i1, i2;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q8_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &k1), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &k2), QKC_OK);
    qkc_kernel_query(k1, &i1);
    qkc_kernel_query(k2, &i2);
    assert_int_equal(i1.from_cache, 0);
    assert_int_equal(i2.from_cache, 1);
    assert_true(i1.compile_ms > 0);
    assert_string_equal(i1.symbol, i2.symbol);
    qkc_kernel_destroy(k1);
    qkc_kernel_destroy(k2);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern = NULL;
    qkc_compile_options opt = {sizeof opt, "x86_64-sse", NULL, 0};
    qkc_schedule bad = {0, 99, 0, 0, 0, 0};
    float a[256] = {0}, c[64];
    unsigned char w[16];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &kern), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "unknown target 'x86_64-sse'"));
    opt.target = NULL;
    opt.schedule = &bad;
    assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &kern), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "tn=99"));
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    {
        qkc_matmul_args args = {a, 256, w, sizeof w, NULL, c, 64, 1};
        assert_int_equal(qkc_kernel_run(ctx, kern, &args, NULL), QKC_ERR_BUFFER_TOO_SMALL);
        assert_non_null(strstr(qkc_context_last_error(ctx), "qkc_weights_pack"));
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* Weight panels (ir/klayout.h) on the int8 path: every format that takes
 * them, on every target the machine runs (x86: panels of 8 or 16 rows;
 * aarch64, with and without dotprod: 4), with N not a multiple of the
 * panel (padding rows), M through the 4-row tiles and their rest, an
 * epilogue with bias, activation and a 16-bit output, and 2 threads (each
 * block of columns starts at a panel). The kernels must say they read
 * panels. */
/* The kernel of `text` on `target` reads weight panels. */
static void assert_reads_panels(qkc_context *ctx, const char *target, const char *text)
{
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_kernel_info info;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(ctx));
    assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &kern), QKC_OK);
    assert_int_equal(qkc_kernel_query(kern, &info), QKC_OK);
    if (!strstr(info.layout, "panels of"))
        fail_msg("%s on %s: the kernel reads %s, not panels", text, target, info.layout);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
}

static void test_int8_panels(void **state)
{
    static const char *const formats[] = {
        "w=q4_0", "w=q4_1", "w=q5_0", "w=q5_1", "w=q8_0", "w=q4_k", "w=q5_k", "w=q6_k", "w=iq4_nl", "w=iq4_xs",
        "w=mxfp4",
        "w=int4 group=32 scale=f16 zero=int", "w=gptq group=32", "w=awq group=64",
        "w=uint4 group=64 scale=f16 zero=float", "w=int8 scale=f32", "w=int6 group=32 scale=f16",
    };
    static const int64_t ms[] = {1, 4, 7};
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    const char *tg[2];
    int ntg = targets(tg), failures = 0, ran = 0;
    (void)state;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (int t = 0; t < ntg; t++) {
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            char text[256];
            outcome o;
            snprintf(text, sizeof text, "matmul n=40 k=512 %s compute=int8", formats[f]);
            if (!qkc_case_selected(text))
                continue;
            assert_reads_panels(ctx, tg[t], text);
            o = run_case_m(ctx, tg[t], formats[f], "compute=int8", ms, 3, 37, 288, 1);
            ran += o.ran, failures += o.failed;
            o = run_case_m(ctx, tg[t], formats[f], "compute=int8 bias=f32 act=silu out=bf16", ms, 3, 40, 256, 2);
            ran += o.ran, failures += o.failed;
            o = run_case(ctx, tg[t], formats[f], "compute=int8", 2, 1000, 256, 2);
            ran += o.ran, failures += o.failed;
        }
    }
    print_message("%d panel kernels compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* The f32 panel kernels (lower_panel.c: dense f32 and bf16 values, affine
 * codes under compute=f32) are FMA micro-kernels of up to 8 activation
 * rows: M across whole tiles and the rows they leave, K with a tail
 * record, N not a multiple of the panel, an epilogue, 2 threads; against
 * the reference on every x86 level. */
static void test_f32_panels(void **state)
{
    static const char *const formats[] = {"w=f32", "w=bf16", "w=q4_0 compute=f32", "w=q4_1 compute=f32",
                                          "w=q4_k compute=f32", "w=int4 group=32 scale=f16 zero=int compute=f32"};
    static const int64_t ms[] = {1, 8, 9, 17};
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    const char *tg[2];
    int ntg = targets(tg), failures = 0, ran = 0;
    (void)state;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (int t = 0; t < ntg; t++) {
        if (qkc_target_host_arch() == QKC_ARCH_AARCH64) {
            print_message("skipped: f32 panels are an x86 path (aarch64 keeps the row layout)\n");
            break;
        }
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            char text[256];
            outcome o;
            snprintf(text, sizeof text, "matmul n=40 k=512 %s", formats[f]);
            if (!qkc_case_selected(text))
                continue;
            assert_reads_panels(ctx, tg[t], text);
            /* K with a tail record where the format allows it (dense
             * values); K-quants take K in super-blocks of 256 */
            o = run_case_m(ctx, tg[t], formats[f], "", ms, 4, 37,
                           !strstr(formats[f], "compute=") ? 290 : strstr(formats[f], "_k") ? 512 : 288, 1);
            ran += o.ran, failures += o.failed;
            o = run_case_m(ctx, tg[t], formats[f], "bias=f32 act=silu out=bf16", ms, 4, 40, 256, 2);
            ran += o.ran, failures += o.failed;
        }
    }
    print_message("%d f32 panel kernels compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* A compiled kernel against the reference at each M of ms (one thread):
 * the failures, each printed; *ran counts the runs. */
static int run_ms(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                  const int64_t *ms, size_t nms, int *ran)
{
    int failures = 0;
    for (size_t mi = 0; mi < nms; mi++) {
        char err[1024];
        (*ran)++;
        if (qkc_test_kernel_case(ctx, spec, kern, name, ms[mi], 1, err, sizeof err)) {
            print_error("%s (m=%lld)\n", err, (long long)ms[mi]);
            failures++;
        }
    }
    return failures;
}

/* Panel kernels take tiles of up to 8 activation rows and 4 panels
 * (schedule.c): int8 and f32 kernels with large and odd tiles, given as
 * schedules or picked by an m_hint, at M across whole tiles and the rows
 * they leave. */
static void test_panel_tiles(void **state)
{
    static const char *const specs[] = {
        "matmul n=40 k=512 w=q4_0",         "matmul n=40 k=512 w=q8_0",
        "matmul n=40 k=512 w=q4_k",         "matmul n=40 k=512 w=q6_k",
        "matmul n=40 k=512 w=q5_0",         "matmul n=40 k=512 w=iq4_xs bias=f32",
        "matmul n=40 k=288 w=q4_1 compute=f32", "matmul n=40 k=290 w=f32",
    };
    static const char *const schedules[] = {"tm=8 tn=1", "tm=5 tn=2", "tm=3 tn=3"};
    static const int64_t ms[] = {8, 9, 17};
    qkc_context *ctx;
    const char *tg[2];
    int ntg = targets(tg), failures = 0, ran = 0;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (int t = 0; t < ntg; t++)
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
            for (size_t j = 0; j < sizeof schedules / sizeof schedules[0]; j++) {
                qkc_spec *spec;
                qkc_kernel *kern;
                qkc_schedule sched;
                qkc_compile_options opt = {sizeof opt, tg[t], &sched, 0};
                char name[320];
                snprintf(name, sizeof name, "%s|%s|%s", tg[t], specs[i], schedules[j]);
                if (!qkc_case_selected(name))
                    continue;
                assert_int_equal(qkc_schedule_parse(ctx, schedules[j], &sched), QKC_OK);
                if (qkc_spec_parse(ctx, specs[i], &spec) != QKC_OK)
                    fail_msg("%s: %s", specs[i], qkc_context_last_error(ctx));
                if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                    fail_msg("%s: %s", name, qkc_context_last_error(ctx));
                failures += run_ms(ctx, spec, kern, name, ms, sizeof ms / sizeof ms[0], &ran);
                qkc_kernel_destroy(kern);
                qkc_spec_destroy(spec);
            }
    /* prefill tiles (512-bit int8: 6 x 1) from 32 rows on: picked by an
     * m_hint of 32 or more, or, without one, compiled for the first call
     * that has 32 rows (qkc_kernel_query_m); either way every M runs, and
     * a schedule set by hand serves every M */
    for (int t = 0; t < ntg; t++)
        for (int h = 0; h < 2; h++) {
            static const char *const text = "matmul n=40 k=512 w=q4_0";
            static const int64_t hm[] = {1, 33};
            int wide = strstr(tg[t], "avx512") != NULL;
            qkc_spec *spec;
            qkc_kernel *kern;
            qkc_kernel_info info, i1, i33;
            qkc_schedule fixed;
            qkc_compile_options opt = {sizeof opt, tg[t], NULL, h ? 512 : 0};
            char name[320];
            snprintf(name, sizeof name, "%s|%s|m_hint=%d", tg[t], text, h ? 512 : 0);
            if (!qkc_case_selected(name))
                continue;
            if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                fail_msg("%s: %s", name, qkc_context_last_error(ctx));
            if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                fail_msg("%s: %s", name, qkc_context_last_error(ctx));
            assert_int_equal(qkc_kernel_query(kern, &info), QKC_OK);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 1, &i1), QKC_OK);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 33, &i33), QKC_OK);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 0, &i1), QKC_ERR_INVALID_ARGUMENT);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 1, &i1), QKC_OK);
            /* the compile names the schedule qkc_kernel_query reports */
            if (strcmp(info.schedule, h ? i33.schedule : i1.schedule))
                fail_msg("%s: query says %s, query_m %s", name, info.schedule, h ? i33.schedule : i1.schedule);
            if (wide && (!strstr(i33.schedule, "tm=6 tn=1") || strstr(i1.schedule, "tm=6")))
                fail_msg("%s: schedules %s (M = 1) and %s (M = 33), not decode and prefill tiles", name,
                         i1.schedule, i33.schedule);
            failures += run_ms(ctx, spec, kern, name, hm, sizeof hm / sizeof hm[0], &ran);
            assert_int_equal(qkc_schedule_parse(ctx, "tm=3 tn=1", &fixed), QKC_OK);
            assert_int_equal(qkc_kernel_set_schedule(ctx, kern, &fixed), QKC_OK);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 1, &i1), QKC_OK);
            assert_int_equal(qkc_kernel_query_m(ctx, kern, 33, &i33), QKC_OK);
            if (!strstr(i1.schedule, "tm=3 tn=1") || !strstr(i33.schedule, "tm=3 tn=1"))
                fail_msg("%s: after set_schedule: %s and %s", name, i1.schedule, i33.schedule);
            failures += run_ms(ctx, spec, kern, name, hm, sizeof hm / sizeof hm[0], &ran);
            qkc_kernel_destroy(kern);
            qkc_spec_destroy(spec);
        }
    print_message("%d panel kernels with given tiles compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_every_format),
        cmocka_unit_test(test_int8_panels),
        cmocka_unit_test(test_f32_panels),
        cmocka_unit_test(test_panel_tiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
