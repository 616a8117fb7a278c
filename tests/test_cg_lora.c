/*
 * lora=R:DTYPE (the LoRA side path fused into the kernel's epilogue) and
 * compute=int8 ascale=static[:channel] (SmoothQuant-style static activation
 * scales): the spec text and verifier; the run-time operand checks; JIT
 * kernels against the reference over formats, compute types, ranks, adapter
 * dtypes, M, N off the tile sizes and both ISA levels of the machine
 * (qkc_test_isa_levels); and what each
 * feature is for: a LoRA kernel gives the merged product W + s·B·A, and
 * smoothing recovers an activation outlier channel that one static scale
 * cannot.
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

static const int64_t sweep_m[] = {1, 2, 3, 7, 8, 33};

static void test_text_and_verifier(void **state)
{
    (void)state;
    qkc_context *ctx;
    char buf[256];
    static const qkc_test_bad_spec bad[] = {
        {"matmul n=8 k=256 w=q4_0 lora=0:bf16", "1:30: lora=0:bf16: the rank is 1 .. 128", QKC_ERR_INVALID_SPEC},
        {"matmul n=200 k=256 w=q4_0 lora=129:f16", "1:32: lora=129:...: the rank is 1 .. 128", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 lora=16:int8", "1:30: lora=16:int8: adapters are f32, f16 or bf16",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 lora=16:f32", "1:30: lora=16:f32: the rank exceeds min(n, k) = 8",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 lora=4:half", "1:32: lora=4:half: unknown adapter dtype", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=q4_0 lora=16", "1:30: lora=16: expected none or R:DTYPE", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=q4_0 lora=x:f16", "1:30: lora=x:f16: the rank R is a decimal number", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=q4_0 compute=f32 ascale=static",
         "1:44: ascale=static scales int8-quantized activations; it needs compute=int8 (compute=f32)",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q8_0 compute=bf16\n  ascale=static:channel", "2:10: ascale=static:channel scales",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q8_0 compute=int8 ascale=calibrated", "1:45: ascale=calibrated: expected dynamic, static",
         QKC_ERR_PARSE},
    };
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_test_canonical(ctx, "matmul ascale=static:channel lora=16:bf16 k=512 n=64 compute=int8 w=q4_0",
                           "matmul n=64 k=512 a=f32 w=q4_0 lora=16:bf16 ascale=static:channel out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    if (qkc_test_canonical(ctx, "matmul n=8 k=512 w=q8_0 lora=none compute=int8 ascale=dynamic",
                           "matmul n=8 k=512 a=f32 w=q8_0 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    {
        char msg[512];
        if (qkc_test_refused(ctx, bad, sizeof bad / sizeof bad[0], msg, sizeof msg))
            fail_msg("%s", msg);
    }
    qkc_context_destroy(ctx);
}

/* Random adapters: A [r][k], B [n][r] in `type`, values N(0, 0.05²). */
static void *random_adapter(qkc_rng *r, const char *type, int64_t count)
{
    int el = strcmp(type, "f32") ? 2 : 4;
    unsigned char *p = malloc((size_t)(count * el));
    assert_non_null(p);
    for (int64_t i = 0; i < count; i++) {
        float x = qkc_rng_normal(r) * 0.05f;
        if (el == 4)
            ((float *)p)[i] = x;
        else if (!strcmp(type, "f16"))
            ((uint16_t *)p)[i] = qkc_f32_to_f16(x);
        else
            ((uint16_t *)p)[i] = qkc_f32_to_bf16(x);
    }
    return p;
}

static void test_lora_kernels_match_reference(void **state)
{
    (void)state;
    static const char *const formats[] = {
        "k=512 w=q4_0",
        "k=512 w=q8_0 compute=int8",
        "k=384 w=int4 group=32 scale=f16 zero=int a=bf16 bias=f32 act=silu out=bf16",
        "k=512 w=nf4_bnb:dq out=f16",
        "k=320 w=gptq:actorder group=64 bias=f32",
        "k=512 w=q4_k compute=int8 act=gelu",
        "k=160 w=f16 compute=bf16 a=f16",
        "k=256 w=iq4_nl compute=int8 rotate=hadamard:64 act=relu",
    };
    static const int ranks[] = {1, 7, 16, 33, 128};
    static const char *const types[] = {"f32", "f16", "bf16"};
    const char *targets[2];
    int failures = 0, ran = 0, nt;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    const char *why;
    if (!(nt = qkc_test_isa_levels(targets, &why))) {
        print_message("skipped: %s\n", why);
        return;
    }
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
        for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
            const char *target = targets[(f + ri) % (size_t)nt], *type = types[(f + ri) % 3];
            int rank = ranks[ri];
            int64_t n = (rank > 29 ? rank : 29) + 2 * (int64_t)(f % 4) + (int64_t)ri; /* off every tile width */
            if (strstr(formats[f], "gptq"))
                n = (n + 7) / 8 * 8; /* gptq packs zeros 8 to an int32 along n */
            char text[320], name[400], msg[1024];
            qkc_spec *spec;
            qkc_kernel *kern;
            qkc_spec_info info;
            qkc_compile_options opt = {.struct_size = sizeof opt, .target = target};
            snprintf(text, sizeof text, "matmul n=%lld %s lora=%d:%s", (long long)n, formats[f], rank, type);
            if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                fail_msg("%s: %s", text, qkc_context_last_error(ctx));
            qkc_spec_query(spec, &info);
            if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                fail_msg("%s: %s", text, qkc_context_last_error(ctx));
            for (size_t mi = 0; mi < sizeof sweep_m / sizeof sweep_m[0]; mi++) {
                qkc_rng r;
                qkc_lora lora;
                qkc_run_options ro = {.struct_size = sizeof ro, .lora = &lora};
                snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)sweep_m[mi]);
                if (!qkc_case_selected(name))
                    continue;
                r = qkc_rng_from_name(name);
                lora.a = random_adapter(&r, type, rank * info.k);
                lora.b = random_adapter(&r, type, n * rank);
                lora.scale = 32.0f / (float)rank; /* lora_alpha / r with alpha 32 */
                ran++;
                if (qkc_test_kernel_case_with(ctx, spec, kern, name, sweep_m[mi], &ro, msg, sizeof msg)) {
                    print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_lora\n", msg, name);
                    failures++;
                }
                free((void *)lora.a);
                free((void *)lora.b);
            }
            qkc_kernel_destroy(kern);
            qkc_spec_destroy(spec);
        }
    print_message("%d LoRA cases against the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

static void test_static_scale_kernels_match_reference(void **state)
{
    (void)state;
    static const char *const formats[] = {
        "k=512 w=q8_0",
        "k=512 w=q4_0 bias=f32",
        "k=288 w=int8 group=channel out=bf16",
        "k=384 w=int4 group=32 scale=f16 zero=int a=bf16 act=silu",
        "k=320 w=gptq:actorder group=64",
        "k=512 w=q4_k",
        "k=256 w=iq4_nl rotate=hadamard:32 lora=8:bf16",
    };
    static const char *const modes[] = {"static", "static:channel"};
    const char *targets[2];
    int failures = 0, ran = 0, nt;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    const char *why;
    if (!(nt = qkc_test_isa_levels(targets, &why))) {
        print_message("skipped: %s\n", why);
        return;
    }
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
        for (size_t md = 0; md < 2; md++)
            for (int t = 0; t < nt; t++) {
                const char *target = targets[t];
                int64_t n = 19 + 6 * (int64_t)f + (int64_t)md;
                if (strstr(formats[f], "gptq"))
                    n = (n + 7) / 8 * 8;
                char text[320], name[400], msg[1024];
                qkc_spec *spec;
                qkc_kernel *kern;
                qkc_spec_info info;
                qkc_compile_options opt = {.struct_size = sizeof opt, .target = target};
                snprintf(text, sizeof text, "matmul n=%lld %s compute=int8 ascale=%s", (long long)n, formats[f],
                         modes[md]);
                if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                    fail_msg("%s: %s", text, qkc_context_last_error(ctx));
                qkc_spec_query(spec, &info);
                if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                    fail_msg("%s: %s", text, qkc_context_last_error(ctx));
                for (size_t mi = 0; mi < sizeof sweep_m / sizeof sweep_m[0]; mi++) {
                    qkc_rng r;
                    qkc_act_scales as;
                    qkc_lora lora = {0};
                    float *smooth = NULL;
                    qkc_run_options ro = {.struct_size = sizeof ro, .act_scales = &as};
                    snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)sweep_m[mi]);
                    if (!qkc_case_selected(name))
                        continue;
                    r = qkc_rng_from_name(name);
                    /* N(0,1) activations: alpha 3/127 clamps the tail beyond 3 sigma */
                    as.alpha = 3.0f / 127.0f;
                    as.smooth = NULL;
                    if (md) {
                        smooth = malloc((size_t)info.k * sizeof *smooth);
                        for (int64_t i = 0; i < info.k; i++)
                            smooth[i] = qkc_rng_uniform(&r, 0.25f, 4.0f);
                        as.smooth = smooth;
                        as.alpha = 1.5f / 127.0f;
                    }
                    if (info.lora_rank) {
                        lora.a = random_adapter(&r, info.lora_type, info.lora_rank * info.k);
                        lora.b = random_adapter(&r, info.lora_type, n * info.lora_rank);
                        lora.scale = 0.5f;
                        ro.lora = &lora;
                    }
                    ran++;
                    if (qkc_test_kernel_case_with(ctx, spec, kern, name, sweep_m[mi], &ro, msg, sizeof msg)) {
                        print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_lora\n", msg, name);
                        failures++;
                    }
                    free(smooth);
                    free((void *)lora.a);
                    free((void *)lora.b);
                }
                qkc_kernel_destroy(kern);
                qkc_spec_destroy(spec);
            }
    print_message("%d static-scale cases against the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* Pack f32 weights for a kernel of spec (quantized by qkc_quantize, or
 * qkc_quantize_smoothed when smooth is given); returns the packed copy. */
static unsigned char *pack_for(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const float *w,
                               int64_t k, const float *smooth, size_t *pbytes)
{
    size_t wbytes;
    unsigned char *blob, *packed;
    assert_int_equal(qkc_weights_bytes(ctx, spec, &wbytes), QKC_OK);
    blob = malloc(wbytes);
    assert_non_null(blob);
    assert_int_equal(smooth ? qkc_quantize_smoothed(ctx, spec, w, k, smooth, blob, wbytes)
                            : qkc_quantize(ctx, spec, w, k, blob, wbytes),
                     QKC_OK);
    assert_int_equal(qkc_kernel_packed_bytes(kern, pbytes), QKC_OK);
    packed = malloc(*pbytes);
    assert_non_null(packed);
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, wbytes, packed, *pbytes), QKC_OK);
    free(blob);
    return packed;
}

/* y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ equals x·(W + s·B·A)ᵀ: the side path against the
 * merged f32 weights. */
static void test_lora_is_the_merged_product(void **state)
{
    (void)state;
    enum { N = 40, K = 256, R = 12, M = 5 };
    qkc_context *ctx;
    qkc_spec *lspec, *mspec;
    qkc_kernel *lk, *mk;
    float *w = malloc(N * K * sizeof *w), *wm = malloc(N * K * sizeof *wm), *a = malloc(M * K * sizeof *a);
    float *la = malloc(R * K * sizeof *la), *lb = malloc(N * R * sizeof *lb), c[M * N], ref[M * N];
    unsigned char *p1, *p2;
    size_t b1, b2;
    double err = 0, sum = 0, side = 0;
    qkc_rng r = qkc_rng_from_name("merged lora");
    qkc_lora lora = {la, lb, 1.75f};
    qkc_run_options ro = {.struct_size = sizeof ro, .lora = &lora};
    assert_true(w && wm && a && la && lb);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=40 k=256 w=f32 lora=12:f32", &lspec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=40 k=256 w=f32", &mspec), QKC_OK);
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < R * K; i++)
        la[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < N * R; i++)
        lb[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < M * K; i++)
        a[i] = qkc_rng_normal(&r);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double d = 0;
            for (int j = 0; j < R; j++)
                d += (double)lb[n * R + j] * la[j * K + k];
            wm[n * K + k] = (float)(w[n * K + k] + 1.75 * d);
        }
    assert_int_equal(qkc_kernel_compile(ctx, lspec, NULL, &lk), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, mspec, NULL, &mk), QKC_OK);
    p1 = pack_for(ctx, lspec, lk, w, K, NULL, &b1);
    p2 = pack_for(ctx, mspec, mk, wm, K, NULL, &b2);
    {
        qkc_matmul_args ka = {a, K, p1, b1, NULL, c, N, M}, kb = {a, K, p2, b2, NULL, ref, N, M};
        assert_int_equal(qkc_kernel_run(ctx, lk, &ka, &ro), QKC_OK);
        assert_int_equal(qkc_kernel_run(ctx, mk, &kb, NULL), QKC_OK);
        /* the side path's own size: without it the outputs differ a lot */
        assert_int_equal(qkc_kernel_run(ctx, mk, &(qkc_matmul_args){a, K, p1, b1, NULL, c + 0, N, M}, NULL), QKC_OK);
        for (int i = 0; i < M * N; i++)
            side += ((double)c[i] - ref[i]) * ((double)c[i] - ref[i]);
        assert_int_equal(qkc_kernel_run(ctx, lk, &ka, &ro), QKC_OK);
    }
    for (int i = 0; i < M * N; i++) {
        err += ((double)c[i] - ref[i]) * ((double)c[i] - ref[i]);
        sum += (double)ref[i] * ref[i];
    }
    if (!(err <= 1e-10 * sum) || !(side >= 1e-2 * sum))
        fail_msg("LoRA kernel vs merged weights: nmse %.3e (side path alone %.3e)", err / sum, side / sum);
    print_message("x·Wᵀ + s·(x·Aᵀ)·Bᵀ vs x·(W + s·B·A)ᵀ: nmse %.2e (the side path is %.2e of the output)\n",
                  err / sum, side / sum);
    qkc_kernel_destroy(lk);
    qkc_kernel_destroy(mk);
    qkc_spec_destroy(lspec);
    qkc_spec_destroy(mspec);
    qkc_context_destroy(ctx);
    free(w), free(wm), free(a), free(la), free(lb), free(p1), free(p2);
}

/* One activation channel 40x larger than the rest: a per-tensor static
 * scale sized for it crushes every other channel to a few codes; smoothing
 * by s_k = sqrt(max|x_k|) (SmoothQuant, migration strength 0.5) moves the
 * range into the weights and recovers the product. */
static void test_smoothing_recovers_an_outlier_channel(void **state)
{
    (void)state;
    enum { N = 64, K = 256, M = 8, OUT = 37 };
    qkc_context *ctx;
    qkc_spec *st, *sc, *ex;
    qkc_kernel *kt, *kc;
    float *w = malloc(N * K * sizeof *w), *a = malloc(M * K * sizeof *a), smooth[K], ones[K];
    float ct[M * N], cc[M * N], cx[M * N], c1[M * N];
    unsigned char *pt, *pc, *blob;
    size_t bt, bc, wb;
    double et = 0, ec = 0, sum = 0;
    float amax = 0, samax = 0;
    qkc_rng r = qkc_rng_from_name("smoothquant outlier");
    assert_true(w && a);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=int8 compute=int8 ascale=static", &st), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=int8 compute=int8 ascale=static:channel", &sc), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=f32", &ex), QKC_OK);
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < M * K; i++)
        a[i] = qkc_rng_normal(&r) * (i % K == OUT ? 40.0f : 1.0f);
    for (int k = 0; k < K; k++) {
        float mx = 0;
        for (int m = 0; m < M; m++)
            mx = fmaxf(mx, fabsf(a[m * K + k]));
        smooth[k] = sqrtf(mx);
        ones[k] = 1.0f;
        amax = fmaxf(amax, mx);
        samax = fmaxf(samax, mx / smooth[k]);
    }
    assert_int_equal(qkc_kernel_compile(ctx, st, NULL, &kt), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, sc, NULL, &kc), QKC_OK);
    pt = pack_for(ctx, st, kt, w, K, NULL, &bt);
    pc = pack_for(ctx, sc, kc, w, K, smooth, &bc);
    {
        qkc_act_scales at = {amax / 127.0f, NULL}, ac = {samax / 127.0f, smooth}, a1 = {amax / 127.0f, ones};
        qkc_run_options rt = {.struct_size = sizeof rt, .act_scales = &at};
        qkc_run_options rc = {.struct_size = sizeof rc, .act_scales = &ac};
        qkc_run_options r1 = {.struct_size = sizeof r1, .act_scales = &a1};
        assert_int_equal(qkc_kernel_run(ctx, kt, &(qkc_matmul_args){a, K, pt, bt, NULL, ct, N, M}, &rt), QKC_OK);
        assert_int_equal(qkc_kernel_run(ctx, kc, &(qkc_matmul_args){a, K, pc, bc, NULL, cc, N, M}, &rc), QKC_OK);
        /* a smoothing vector of ones is the per-tensor kernel, exactly */
        {
            unsigned char *p1 = pack_for(ctx, sc, kc, w, K, ones, &bc);
            assert_int_equal(qkc_kernel_run(ctx, kc, &(qkc_matmul_args){a, K, p1, bc, NULL, c1, N, M}, &r1), QKC_OK);
            assert_memory_equal(c1, ct, sizeof ct);
            free(p1);
        }
    }
    /* the exact product of the same (int8-quantized) weights */
    assert_int_equal(qkc_weights_bytes(ctx, st, &wb), QKC_OK);
    blob = malloc(wb);
    {
        float *wd = malloc(N * K * sizeof *wd);
        size_t eb;
        unsigned char *eblob;
        assert_int_equal(qkc_quantize(ctx, st, w, K, blob, wb), QKC_OK);
        assert_int_equal(qkc_dequantize(ctx, st, blob, wb, wd, K), QKC_OK);
        assert_int_equal(qkc_weights_bytes(ctx, ex, &eb), QKC_OK);
        eblob = malloc(eb);
        assert_int_equal(qkc_quantize(ctx, ex, w, K, eblob, eb), QKC_OK);
        assert_int_equal(qkc_reference_matmul(ctx, ex, &(qkc_matmul_args){a, K, eblob, eb, NULL, cx, N, M}), QKC_OK);
        free(wd), free(eblob);
    }
    for (int i = 0; i < M * N; i++) {
        et += ((double)ct[i] - cx[i]) * ((double)ct[i] - cx[i]);
        ec += ((double)cc[i] - cx[i]) * ((double)cc[i] - cx[i]);
        sum += (double)cx[i] * cx[i];
    }
    print_message("an outlier channel: nmse per-tensor static %.2e, smoothed %.2e\n", et / sum, ec / sum);
    if (!(ec * 4 < et))
        fail_msg("smoothing did not help: nmse %.3e smoothed vs %.3e per-tensor", ec / sum, et / sum);
    qkc_kernel_destroy(kt);
    qkc_kernel_destroy(kc);
    qkc_spec_destroy(st);
    qkc_spec_destroy(sc);
    qkc_spec_destroy(ex);
    qkc_context_destroy(ctx);
    free(w), free(a), free(pt), free(pc), free(blob);
}

/* Missing, extra or invalid run-time operands fail with a message, in the
 * kernel and in the reference alike; GPUs refuse both features. */
static void test_operand_errors(void **state)
{
    (void)state;
    enum { N = 16, K = 64 };
    qkc_context *ctx;
    qkc_spec *lspec, *sspec, *cspec, *plain;
    qkc_kernel *lk, *sk, *ck, *pk;
    float a[K], c[N], la[4 * K], lb[N * 4], smooth[K];
    unsigned char *pl, *ps, *pc, *pp;
    size_t bl, bs, bc, bp;
    float w[N * K];
    qkc_compile_options gpu = {.struct_size = sizeof gpu, .target = "nvptx-sm80"};
    char text[256];
    for (int i = 0; i < N * K; i++)
        w[i] = (float)((i * 7) % 13 - 6) * 0.01f;
    for (int i = 0; i < K; i++)
        a[i] = (float)(i % 5) - 2.0f, smooth[i] = 1.0f;
    memset(la, 0, sizeof la), memset(lb, 0, sizeof lb);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0 lora=4:f32", &lspec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0 compute=int8 ascale=static", &sspec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0 compute=int8 ascale=static:channel", &cspec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0", &plain), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, lspec, NULL, &lk), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, sspec, NULL, &sk), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, cspec, NULL, &ck), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, plain, NULL, &pk), QKC_OK);
    pl = pack_for(ctx, lspec, lk, w, K, NULL, &bl);
    ps = pack_for(ctx, sspec, sk, w, K, NULL, &bs);
    pc = pack_for(ctx, cspec, ck, w, K, smooth, &bc);
    pp = pack_for(ctx, plain, pk, w, K, NULL, &bp);
    {
        qkc_lora good = {la, lb, 2.0f}, nan_scale = {la, lb, NAN}, no_b = {la, NULL, 1.0f};
        qkc_act_scales s_ok = {0.05f, NULL}, s_zero = {0.0f, NULL}, s_inf = {INFINITY, NULL}, c_ok = {0.05f, smooth};
        qkc_act_scales c_none = {0.05f, NULL};
        float bad_smooth[K];
        qkc_act_scales c_bad = {0.05f, bad_smooth};
        static const struct {
            int which; /* 0 lora, 1 static, 2 static:channel, 3 plain */
            int lora, scales;
            const char *message;
        } cases[] = {
            {0, -1, -1, "the spec has lora=4:f32: options->lora with adapters a [4][k] and b [n][4] is required"},
            {0, 2, -1, "the LoRA scale is not finite"},
            {0, 3, -1, "options->lora with adapters"},
            {3, 1, -1, "LoRA adapters given but the spec has no lora="},
            {1, -1, -1, "the spec has ascale=static: options->act_scales is required"},
            {1, -1, 1, "the activation scale alpha=0 must be finite and > 0"},
            {1, -1, 2, "the activation scale alpha=inf must be finite and > 0"},
            {1, -1, 3, "a smoothing vector is given but the spec has ascale=static"},
            {2, -1, 4, "ascale=static:channel needs the smoothing vector"},
            {2, -1, 5, "smoothing factor 9 is -1; factors are finite and > 0"},
            {3, -1, 0, "static activation scales given but the spec has no ascale=static"},
        };
        const qkc_lora *loras[] = {NULL, &good, &nan_scale, &no_b};
        const qkc_act_scales *scs[] = {&s_ok, &s_zero, &s_inf, &c_ok, &c_none, &c_bad};
        const qkc_kernel *kerns[] = {lk, sk, ck, pk};
        const qkc_spec *specs[] = {lspec, sspec, cspec, plain};
        unsigned char *packs[] = {pl, ps, pc, pp};
        size_t bytes[] = {bl, bs, bc, bp};
        memcpy(bad_smooth, smooth, sizeof bad_smooth);
        bad_smooth[9] = -1.0f;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            qkc_run_options ro = {.struct_size = sizeof ro};
            qkc_matmul_args ka = {a, K, packs[cases[i].which], bytes[cases[i].which], NULL, c, N, 1};
            qkc_matmul_args ra = ka;
            size_t wb;
            unsigned char *blob;
            ro.lora = cases[i].lora >= 0 ? loras[cases[i].lora] : NULL;
            ro.act_scales = cases[i].scales >= 0 ? scs[cases[i].scales] : NULL;
            if (qkc_kernel_run(ctx, kerns[cases[i].which], &ka, &ro) != QKC_ERR_INVALID_ARGUMENT ||
                !strstr(qkc_context_last_error(ctx), cases[i].message))
                fail_msg("case %zu: kernel: got '%s'", i, qkc_context_last_error(ctx));
            assert_int_equal(qkc_weights_bytes(ctx, specs[cases[i].which], &wb), QKC_OK);
            blob = calloc(1, wb);
            ra.weights = blob, ra.weights_bytes = wb;
            if (qkc_reference_matmul_with_options(ctx, specs[cases[i].which], &ra, &ro) != QKC_ERR_INVALID_ARGUMENT ||
                !strstr(qkc_context_last_error(ctx), cases[i].message))
                fail_msg("case %zu: reference: got '%s'", i, qkc_context_last_error(ctx));
            free(blob);
        }
        /* an old-size options struct (threads only) passes no operands */
        {
            qkc_run_options old = {.struct_size = offsetof(qkc_run_options, lora), .lora = &good};
            qkc_matmul_args ka = {a, K, pl, bl, NULL, c, N, 1};
            assert_int_equal(qkc_kernel_run(ctx, lk, &ka, &old), QKC_ERR_INVALID_ARGUMENT);
            assert_non_null(strstr(qkc_context_last_error(ctx), "options->lora"));
            old.struct_size = sizeof old;
            assert_int_equal(qkc_kernel_run(ctx, lk, &ka, &old), QKC_OK);
        }
    }
    /* qkc_quantize_smoothed rejects a bad factor */
    {
        size_t wb;
        unsigned char *blob;
        float s2[K];
        memcpy(s2, smooth, sizeof s2);
        s2[3] = 0.0f;
        assert_int_equal(qkc_weights_bytes(ctx, cspec, &wb), QKC_OK);
        blob = malloc(wb);
        assert_int_equal(qkc_quantize_smoothed(ctx, cspec, w, K, s2, blob, wb), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "smoothing factor 3 is 0"));
        free(blob);
    }
    /* GPU kernels refuse both; aarch64 takes the shared CPU epilogue */
    for (int i = 0; i < 2; i++) {
        size_t need = 0;
        assert_int_equal(qkc_kernel_emit(ctx, i ? sspec : lspec, &gpu, "ptx", NULL, 0, &need), QKC_ERR_UNSUPPORTED);
        snprintf(text, sizeof text, "%s", qkc_context_last_error(ctx));
        if (!strstr(text, i ? "ascale=static is not supported on nvptx" : "LoRA side path (lora=) is not supported on nvptx"))
            fail_msg("nvptx: got '%s'", text);
    }
    {
        qkc_compile_options arm = {.struct_size = sizeof arm, .target = "aarch64-neon-dotprod"};
        size_t need = 0;
        qkc_spec *s;
        assert_int_equal(qkc_spec_parse(ctx, "matmul n=40 k=256 w=q4_0 compute=int8 lora=20:bf16 ascale=static:channel",
                                        &s), QKC_OK);
        assert_int_equal(qkc_kernel_emit(ctx, s, &arm, "asm", NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
        assert_true(need > 0);
        qkc_spec_destroy(s);
    }
    qkc_kernel_destroy(lk), qkc_kernel_destroy(sk), qkc_kernel_destroy(ck), qkc_kernel_destroy(pk);
    qkc_spec_destroy(lspec), qkc_spec_destroy(sspec), qkc_spec_destroy(cspec), qkc_spec_destroy(plain);
    free(pl), free(ps), free(pc), free(pp);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_verifier),
        cmocka_unit_test(test_lora_kernels_match_reference),
        cmocka_unit_test(test_static_scale_kernels_match_reference),
        cmocka_unit_test(test_lora_is_the_merged_product),
        cmocka_unit_test(test_smoothing_recovers_an_outlier_channel),
        cmocka_unit_test(test_operand_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
