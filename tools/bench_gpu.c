/*
 * `qkc bench --device cuda`: a GPU kernel timed on device-resident
 * operands, next to a device-to-device copy measured in the same run.
 *
 *   us         median microseconds per launch (each launch synchronised)
 *   gbps       effective GB/s: the format's weight bytes / time
 *   copy_gbps  cuMemcpyDtoD of 1 GiB: bytes read + bytes written / time
 *   pct        gbps / copy_gbps (the target for int4 GEMV at M = 1: 80%)
 *   nmse, max_abs_err   against the reference on the first min(M, 8) rows
 * Without a CUDA driver or device it says so and exits 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timing.h"
#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "tools/tool.h"

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float out_value(const void *c, int bits, int64_t i, const char *out_type)
{
    if (bits == 32)
        return ((const float *)c)[i];
    return strcmp(out_type, "bf16") ? qkc_f16_to_f32(((const uint16_t *)c)[i]) : qkc_bf16_to_f32(((const uint16_t *)c)[i]);
}

/* Release device memory; a failure (a device in an error state) is said. */
static void dev_free(qkc_context *ctx, qkc_device_ptr p)
{
    if (qkc_device_free(ctx, p) != QKC_OK)
        qkc_report("warning: releasing device memory: ", qkc_context_last_error(ctx));
}

static int fail(qkc_context *ctx, const char *what)
{
    fprintf(stderr, "error: %s: ", what);
    qkc_report("", ctx ? qkc_context_last_error(ctx) : "out of memory");
    return 1;
}

int qkc_bench_gpu(const char *text, const long long *ms, int nm, int reps, const char *target, int json)
{
    qkc_context *ctx = NULL;
    qkc_device_info dev;
    qkc_spec *spec = NULL;
    qkc_kernel *k = NULL;
    qkc_spec_info si;
    qkc_compile_options opt;
    size_t wbytes = 0, pbytes = 0, copy_bytes = (size_t)1 << 30;
    float *w = NULL, *bias = NULL;
    uint8_t *blob = NULL, *packed = NULL;
    qkc_device_ptr dw = 0, dbias = 0, c0 = 0, c1 = 0;
    double copy_gbps = 0;
    uint64_t seed = 12345;
    int rc = 1;
    if (reps < 1)
        reps = 50; /* bench's default (0) means "choose": the median needs at least one time */
    if (qkc_context_create(NULL, &ctx) != QKC_OK)
        return fail(NULL, "qkc bench --device cuda");
    if (qkc_device_query(ctx, &dev) != QKC_OK) {
        rc = fail(ctx, "qkc bench --device cuda");
        goto done;
    }
    if (!target)
        target = dev.sm >= 90 ? "nvptx-sm90" : "nvptx-sm80";
    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.target = target;
    if (qkc_spec_parse(ctx, text, &spec) || qkc_spec_query(spec, &si) || qkc_kernel_compile(ctx, spec, &opt, &k) ||
        qkc_weights_bytes(ctx, spec, &wbytes) || qkc_kernel_packed_bytes(k, &pbytes)) {
        rc = fail(ctx, "qkc bench --device cuda");
        goto done;
    }
    w = malloc((size_t)(si.n * si.k) * sizeof *w);
    bias = malloc((size_t)si.n * sizeof *bias);
    blob = malloc(wbytes);
    packed = malloc(pbytes);
    if (!w || !bias || !blob || !packed) {
        fprintf(stderr, "error: qkc bench --device cuda: out of memory for the weights\n");
        goto done;
    }
    for (int64_t i = 0; i < si.n * si.k; i++)
        w[i] = rnd(&seed);
    for (int64_t i = 0; i < si.n; i++)
        bias[i] = rnd(&seed);
    if (qkc_quantize(ctx, spec, w, si.k, blob, wbytes) || qkc_weights_pack(ctx, k, blob, wbytes, packed, pbytes) ||
        qkc_device_alloc(ctx, pbytes, &dw) || qkc_device_upload(ctx, dw, packed, pbytes) ||
        (si.has_bias && (qkc_device_alloc(ctx, (size_t)si.n * 4, &dbias) ||
                         qkc_device_upload(ctx, dbias, bias, (size_t)si.n * 4)))) {
        rc = fail(ctx, "preparing the weights");
        goto done;
    }
    /* the copy roof, in the same run */
    if (qkc_device_alloc(ctx, copy_bytes, &c0) || qkc_device_alloc(ctx, copy_bytes, &c1)) {
        rc = fail(ctx, "allocating the copy buffers");
        goto done;
    }
    {
        double best = 1e30;
        for (int r = 0; r < 6; r++) {
            double t0 = qkc_now_seconds();
            if (qkc_device_copy(ctx, c1, c0, copy_bytes) || qkc_device_synchronize(ctx)) {
                rc = fail(ctx, "device copy");
                goto done;
            }
            if (r && qkc_now_seconds() - t0 < best)
                best = qkc_now_seconds() - t0;
        }
        copy_gbps = 2.0 * (double)copy_bytes / best * 1e-9;
    }
    dev_free(ctx, c0);
    dev_free(ctx, c1);
    c0 = c1 = 0;
    if (!json)
        printf("# %s (compute %s) on %s (sm_%d, %s); copy %.1f GB/s\n%-6s %10s %10s %8s %6s %10s %10s\n", text,
               si.compute_type, dev.name, dev.sm, target, copy_gbps, "m", "us", "gbps", "pct", "", "nmse", "max_err");
    for (int mi = 0; mi < nm; mi++) {
        int64_t m = ms[mi], ld = 0, rows = m < 8 ? m : 8;
        int obits = strcmp(si.out_type, "f32") ? 16 : 32;
        size_t abytes = 0, cbytes = (size_t)(m * si.n) * (size_t)obits / 8;
        float *a = malloc((size_t)(m * si.k) * sizeof *a), *prep = NULL, *ref = NULL;
        void *c = malloc(cbytes);
        qkc_device_ptr da = 0, dc = 0;
        double *t = calloc((size_t)reps, sizeof *t), nmse = 0, num = 0, den = 0, maxerr = 0, us;
        qkc_device_args d;
        qkc_matmul_args ra;
        int ok = 0;
        /* the spec's activation dtype: f32 here; f16/bf16 specs get f32 values rounded by prepare */
        if (strcmp(si.a_type, "f32")) {
            fprintf(stderr, "error: qkc bench --device cuda: a=%s: only a=f32 is benchmarked on GPUs\n", si.a_type);
            free(a), free(c), free(t);
            goto done;
        }
        if (!a || !c || !t) {
            fprintf(stderr, "error: m=%lld: out of memory\n", (long long)m);
            ok = -1; /* said */
            goto next;
        }
        for (int64_t i = 0; i < m * si.k; i++)
            a[i] = rnd(&seed);
        if (qkc_kernel_prepare_a(ctx, k, a, si.k, m, packed, NULL, 0, &abytes, &ld) || !(prep = malloc(abytes)) ||
            qkc_kernel_prepare_a(ctx, k, a, si.k, m, packed, prep, abytes, NULL, &ld) ||
            qkc_device_alloc(ctx, abytes, &da) || qkc_device_upload(ctx, da, prep, abytes) ||
            qkc_device_alloc(ctx, cbytes, &dc))
            goto next;
        memset(&d, 0, sizeof d);
        d.a = da, d.lda = ld, d.weights = dw, d.weights_bytes = pbytes, d.bias = dbias, d.c = dc, d.ldc = si.n, d.m = m;
        if (qkc_kernel_run_device(ctx, k, &d) || qkc_device_synchronize(ctx))
            goto next;
        for (int r = 0; r < reps; r++) {
            double t0 = qkc_now_seconds();
            if (qkc_kernel_run_device(ctx, k, &d) || qkc_device_synchronize(ctx))
                goto next;
            t[r] = qkc_now_seconds() - t0;
        }
        us = qkc_median(t, reps) * 1e6;
        if (qkc_device_download(ctx, c, dc, cbytes))
            goto next;
        ref = malloc((size_t)(rows * si.n) * sizeof *ref);
        memset(&ra, 0, sizeof ra);
        ra.a = a, ra.lda = si.k, ra.weights = blob, ra.weights_bytes = wbytes, ra.bias = si.has_bias ? bias : NULL;
        ra.c = ref, ra.ldc = si.n, ra.m = rows;
        {
            /* the reference writes the spec's output dtype: compare in f32 */
            qkc_spec *rs = NULL;
            char rtext[2048];
            snprintf(rtext, sizeof rtext, "%s out=f32", text);
            if (!ref || qkc_spec_parse(ctx, rtext, &rs) || qkc_reference_matmul(ctx, rs, &ra)) {
                qkc_spec_destroy(rs);
                goto next;
            }
            qkc_spec_destroy(rs);
        }
        for (int64_t i = 0; i < rows * si.n; i++) {
            double e = (double)out_value(c, obits, i, si.out_type) - (double)ref[i];
            num += e * e;
            den += (double)ref[i] * (double)ref[i];
            maxerr = isnan(e) || isnan(maxerr) ? NAN : fabs(e) > maxerr ? fabs(e) : maxerr;
        }
        nmse = den > 0 ? num / den : num;
        {
            double gbps = (double)wbytes / (us * 1e-6) * 1e-9;
            if (json)
                printf("{\"spec\": \"%s\", \"compute\": \"%s\", \"device\": \"%s\", \"target\": \"%s\", "
                       "\"m\": %lld, \"us\": %.3f, \"gbps\": %.2f, \"copy_gbps\": %.2f, \"pct\": %.1f, \"nmse\": %.3g, "
                       "\"max_abs_err\": %.3g}\n",
                       text, si.compute_type, dev.name, target, (long long)m, us, gbps, copy_gbps,
                       100.0 * gbps / copy_gbps, nmse, maxerr);
            else
                printf("%-6lld %10.2f %10.1f %7.1f%% %6s %10.3g %10.3g\n", (long long)m, us, gbps,
                       100.0 * gbps / copy_gbps, "", nmse, maxerr);
        }
        if (!isfinite(nmse) || !isfinite(maxerr)) {
            fprintf(stderr, "error: m=%lld: the kernel's output against the reference: nmse %g, max_abs_err %g: not a "
                            "finite number\n",
                    (long long)m, nmse, maxerr);
            free(a), free(c), free(t), free(prep), free(ref);
            dev_free(ctx, da);
            dev_free(ctx, dc);
            goto done;
        }
        ok = 1;
    next:
        if (!ok) {
            fprintf(stderr, "error: m=%lld: ", (long long)m);
            qkc_report("", qkc_context_last_error(ctx));
        }
        dev_free(ctx, da);
        dev_free(ctx, dc);
        free(a), free(c), free(t), free(prep), free(ref);
        if (ok != 1)
            goto done;
    }
    rc = 0;
done:
    dev_free(ctx, c0);
    dev_free(ctx, c1);
    dev_free(ctx, dw);
    dev_free(ctx, dbias);
    free(w), free(bias), free(blob), free(packed);
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    return rc;
}
