/* One compiled kernel against the reference (see testutil.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "testutil.h"
#include "tolerance.h"

/* Element i of an adapter in its dtype ("f32", "f16", "bf16"). */
static double adapter_value(const char *type, const void *p, int64_t i)
{
    if (!strcmp(type, "f16"))
        return qkc_f16_to_f32(((const uint16_t *)p)[i]);
    if (!strcmp(type, "bf16"))
        return qkc_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* Output element as a double. */
static double out_value(const char *out_type, const void *c, int64_t i)
{
    if (!strcmp(out_type, "f16"))
        return qkc_f16_to_f32(((const uint16_t *)c)[i]);
    if (!strcmp(out_type, "bf16"))
        return qkc_bf16_to_f32(((const uint16_t *)c)[i]);
    return ((const float *)c)[i];
}

static int run_kernel(qkc_context *ctx, const qkc_kernel *kern, const qkc_matmul_args *args,
                      const qkc_run_options *options, void *user, char *msg, size_t msg_size)
{
    (void)user;
    if (qkc_kernel_run(ctx, kern, args, options) == QKC_OK)
        return 0;
    snprintf(msg, msg_size, "%s", qkc_context_last_error(ctx));
    return 1;
}

static int kernel_case(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name, int64_t m,
                       const qkc_run_options *extra, qkc_test_runner runner, void *user, char *msg, size_t msg_size);

int qkc_test_kernel_case_with(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                              int64_t m, const qkc_run_options *extra, char *msg, size_t msg_size)
{
    return kernel_case(ctx, spec, kern, name, m, extra, run_kernel, NULL, msg, msg_size);
}

int qkc_test_kernel_case_run(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                             int64_t m, qkc_test_runner runner, void *user, char *msg, size_t msg_size)
{
    return kernel_case(ctx, spec, kern, name, m, NULL, runner, user, msg, msg_size);
}

static int kernel_case(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name, int64_t m,
                       const qkc_run_options *extra, qkc_test_runner runner, void *user, char *msg, size_t msg_size)
{
    const qkc_lora *lora = extra ? extra->lora : NULL;
    const qkc_act_scales *as = extra ? extra->act_scales : NULL;
    double *lora_t = NULL;
    qkc_spec_info info;
    size_t pbytes;
    qkc_rng r = qkc_rng_from_name(name);
    int failed = 0;
    qkc_spec_query(spec, &info);
    qkc_kernel_packed_bytes(kern, &pbytes);
    msg[0] = '\0';
    {
        int64_t n = info.n, k = info.k;
        int a_el = strcmp(info.a_type, "f32") ? 2 : 4, c_el = strcmp(info.out_type, "f32") ? 2 : 4;
        float *w = malloc((size_t)(n * k) * sizeof *w), *bias = malloc((size_t)n * sizeof *bias);
        unsigned char *a = malloc((size_t)(m * k * a_el)), *c = malloc((size_t)(m * n * c_el) + 8);
        unsigned char *cr = malloc((size_t)(m * n * c_el) + 8);
        unsigned char *blob = malloc(info.weight_bytes), *packed = malloc(pbytes ? pbytes : 1);
        double err = 0, ref = 0, maxerr = 0, maxref = 0;
        float *wd = malloc((size_t)(n * k) * sizeof *wd), *af = malloc((size_t)(m * k) * sizeof *af);
        if (!w || !bias || !a || !c || !cr || !blob || !packed || !wd || !af) {
            snprintf(msg, msg_size, "%s: out of memory", name);
            failed = 1;
            goto done;
        }
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        for (int64_t i = 0; i < n; i++)
            bias[i] = qkc_rng_normal(&r);
        for (int64_t i = 0; i < m * k; i++) {
            float x = qkc_rng_normal(&r);
            if (a_el == 4)
                ((float *)a)[i] = x;
            else if (!strcmp(info.a_type, "f16"))
                ((uint16_t *)a)[i] = qkc_f32_to_f16(x);
            else
                ((uint16_t *)a)[i] = qkc_f32_to_bf16(x);
        }
        for (int64_t i = 0; i < m * k; i++)
            af[i] = a_el == 4 ? ((float *)a)[i]
                              : (!strcmp(info.a_type, "f16") ? qkc_f16_to_f32(((uint16_t *)a)[i])
                                                             : qkc_bf16_to_f32(((uint16_t *)a)[i]));
        if (lora) {
            /* T = X·Aᵀ in double, for the condition of the LoRA term */
            lora_t = calloc((size_t)(m * info.lora_rank), sizeof *lora_t);
            for (int64_t i = 0; lora_t && i < m; i++)
                for (int64_t j = 0; j < info.lora_rank; j++)
                    for (int64_t t = 0; t < k; t++)
                        lora_t[i * info.lora_rank + j] += (double)af[i * k + t] * adapter_value(info.lora_type, lora->a, j * k + t);
        }
        if (as && as->smooth)
            for (int64_t i = 0; i < m * k; i++)
                af[i] /= as->smooth[i % k]; /* the activations the product sees */
        if ((as && as->smooth ? qkc_quantize_smoothed(ctx, spec, w, k, as->smooth, blob, info.weight_bytes)
                              : qkc_quantize(ctx, spec, w, k, blob, info.weight_bytes)) != QKC_OK ||
            qkc_dequantize(ctx, spec, blob, info.weight_bytes, wd, k) != QKC_OK ||
            qkc_weights_pack(ctx, kern, blob, info.weight_bytes, packed, pbytes) != QKC_OK) {
            snprintf(msg, msg_size, "%s: quantize/pack failed: %s", name, qkc_context_last_error(ctx));
            failed = 1;
        } else {
            qkc_matmul_args ar = {a, k, blob, info.weight_bytes, info.has_bias ? bias : NULL, cr, n, m};
            qkc_matmul_args ak = {a, k, packed, pbytes, info.has_bias ? bias : NULL, c, n, m};
            qkc_run_options ro = {.struct_size = sizeof ro, .threads = extra ? extra->threads : 0};
            if (extra)
                ro.lora = lora, ro.act_scales = as;
            memset(c, 0xEE, (size_t)(m * n * c_el) + 8);
            char why[512];
            if (qkc_reference_matmul_with_options(ctx, spec, &ar, &ro) != QKC_OK) {
                snprintf(msg, msg_size, "%s: reference failed: %s", name, qkc_context_last_error(ctx));
                failed = 1;
            } else if (runner(ctx, kern, &ak, &ro, user, why, sizeof why)) {
                snprintf(msg, msg_size, "%s: run failed: %s", name, why);
                failed = 1;
            } else {
                const qkc_tol_kernel *tol = qkc_tol_kernel_for(info.compute_type, info.out_type);
                int mant = !strcmp(info.out_type, "f16") ? 10 : 7;
                for (int64_t i = 0; i < m * n; i++) {
                    double x = out_value(info.out_type, c, i), y = out_value(info.out_type, cr, i), d = x - y;
                    if (isnan(x) != isnan(y))
                        d = INFINITY;
                    else if (isnan(x))
                        d = 0;
                    err += d * d;
                    ref += y * y;
                    maxerr = fmax(maxerr, fabs(d));
                    maxref = fmax(maxref, fabs(y));
                    {
                        /* the sum's condition: sum_k |a_k w_k| for this output */
                        int64_t row = i / n, col = i % n;
                        double cond = 0, bound;
                        for (int64_t t = 0; t < k; t++)
                            cond += fabs((double)af[row * k + t] * (double)wd[col * k + t]);
                        if (lora && lora_t)
                            for (int64_t j = 0; j < info.lora_rank; j++)
                                cond += fabs((double)lora->scale * lora_t[row * info.lora_rank + j] *
                                             adapter_value(info.lora_type, lora->b, col * info.lora_rank + j));
                        bound = tol->cond_factor * sqrt((double)k) * 0x1p-24 * cond;
                        if (tol->max_ulps) {
                            int e;
                            frexp(fmax(fabs(x), fabs(y)), &e);
                            bound = fmax(bound, tol->max_ulps * fmax(ldexp(1.0, (e - 1) - mant),
                                                                     ldexp(1.0, !strcmp(info.out_type, "f16") ? -24 : -133)));
                        }
                        if (!(fabs(d) <= bound) && !failed) {
                            snprintf(msg, msg_size, "%s: element %lld is %.9g, the reference %.9g: |diff| %.3g exceeds %.3g",
                                     name, (long long)i, x, y, fabs(d), bound);
                            failed = 1;
                        }
                    }
                }
                if (!failed && c[m * n * c_el] != 0xEE) {
                    snprintf(msg, msg_size, "%s: the kernel wrote past C", name);
                    failed = 1;
                }
                if (!failed && m * n >= QKC_TOL_MIN_OUTPUTS &&
                    (!(err <= tol->max_nmse * ref) ||
                     (!tol->max_ulps && !(maxerr <= tol->max_abs_rel * maxref + 1e-30)))) {
                    snprintf(msg, msg_size, "%s: nmse %.3e (bound %.1e), max abs err %.3e of max %.3e", name,
                             ref > 0 ? err / ref : err, tol->max_nmse, maxerr, maxref);
                    failed = 1;
                }
            }
        }
    done:
        free(w), free(bias), free(a), free(c), free(cr), free(blob), free(packed), free(wd), free(af);
        free(lora_t);
    }
    return failed;
}

int qkc_test_kernel_case(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name, int64_t m,
                         int threads, char *msg, size_t msg_size)
{
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = threads};
    return qkc_test_kernel_case_with(ctx, spec, kern, name, m, &ro, msg, msg_size);
}

int qkc_test_kernel_vs_reference(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                                 int64_t m, char *err, size_t err_size)
{
    return qkc_test_kernel_case(ctx, spec, kern, name, m, 0, err, err_size);
}

size_t qkc_test_refused(qkc_context *ctx, const qkc_test_bad_spec *bad, size_t count, char *msg, size_t msg_size)
{
    size_t wrong = 0;
    msg[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        qkc_spec *spec = NULL;
        qkc_status st = qkc_spec_parse(ctx, bad[i].text, &spec);
        if ((int)st != bad[i].status || spec || !strstr(qkc_context_last_error(ctx), bad[i].message)) {
            if (!wrong++)
                snprintf(msg, msg_size, "%s: got status %d, '%s'; expected %d, '%s'", bad[i].text, (int)st,
                         qkc_context_last_error(ctx), bad[i].status, bad[i].message);
            qkc_spec_destroy(spec);
        }
    }
    return wrong;
}

int qkc_test_canonical(qkc_context *ctx, const char *text, const char *canonical, char *msg, size_t msg_size)
{
    qkc_spec *spec = NULL;
    char buf[1024];
    int bad = 0;
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK) {
        snprintf(msg, msg_size, "%s: %s", text, qkc_context_last_error(ctx));
        return 1;
    }
    qkc_spec_print(spec, buf, sizeof buf, NULL);
    qkc_spec_destroy(spec);
    if (strcmp(buf, canonical)) {
        snprintf(msg, msg_size, "%s printed as '%s', expected '%s'", text, buf, canonical);
        return 1;
    }
    /* and the canonical form parses back to itself */
    if (qkc_spec_parse(ctx, canonical, &spec) != QKC_OK) {
        snprintf(msg, msg_size, "canonical '%s' does not parse: %s", canonical, qkc_context_last_error(ctx));
        return 1;
    }
    qkc_spec_print(spec, buf, sizeof buf, NULL);
    qkc_spec_destroy(spec);
    if (strcmp(buf, canonical)) {
        snprintf(msg, msg_size, "canonical '%s' prints again as '%s'", canonical, buf);
        bad = 1;
    }
    return bad;
}
