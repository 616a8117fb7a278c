/* One compiled kernel against the reference (see testutil.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "testutil.h"

static double out_at(const char *out, const void *c, int64_t i)
{
    if (!strcmp(out, "bf16")) {
        uint32_t bits = (uint32_t)((const uint16_t *)c)[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    return ((const float *)c)[i];
}

int qkc_test_kernel_vs_reference(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kern, const char *name,
                                 int64_t m, char *err, size_t err_size)
{
    qkc_spec_info info;
    size_t pbytes;
    int bad = 0;
    qkc_rng r = qkc_rng_from_name(name);
    qkc_spec_query(spec, &info);
    qkc_kernel_packed_bytes(kern, &pbytes);
    if (strcmp(info.out_type, "f32") && strcmp(info.out_type, "bf16")) {
        snprintf(err, err_size, "%s: out=%s is not one this check reads", name, info.out_type);
        return 1;
    }
    {
        int64_t n = info.n, k = info.k;
        float *w = malloc((size_t)(n * k) * 4), *a = malloc((size_t)(m * k) * 4), *bias = calloc((size_t)n, 4);
        float *c = malloc((size_t)(m * n) * 4), *cr = malloc((size_t)(m * n) * 4);
        unsigned char *blob = malloc(info.weight_bytes), *packed = malloc(pbytes);
        if (!w || !a || !bias || !c || !cr || !blob || !packed) {
            snprintf(err, err_size, "%s: out of memory", name);
            bad = 1;
            goto done;
        }
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        for (int64_t i = 0; i < m * k; i++)
            a[i] = qkc_rng_normal(&r);
        for (int64_t i = 0; i < n; i++)
            bias[i] = qkc_rng_normal(&r);
        qkc_matmul_args ar = {a, k, blob, info.weight_bytes, info.has_bias ? bias : NULL, cr, n, m};
        qkc_matmul_args ak = {a, k, packed, pbytes, info.has_bias ? bias : NULL, c, n, m};
        if (qkc_quantize(ctx, spec, w, k, blob, info.weight_bytes) != QKC_OK ||
            qkc_weights_pack(ctx, kern, blob, info.weight_bytes, packed, pbytes) != QKC_OK ||
            qkc_reference_matmul(ctx, spec, &ar) != QKC_OK || qkc_kernel_run(ctx, kern, &ak, NULL) != QKC_OK) {
            snprintf(err, err_size, "%s m=%lld: %s", name, (long long)m, qkc_context_last_error(ctx));
            bad = 1;
        } else {
            double e = 0, ref = 0;
            for (int64_t i = 0; i < m * n; i++) {
                double x = out_at(info.out_type, c, i), y = out_at(info.out_type, cr, i);
                e += (x - y) * (x - y);
                ref += y * y;
            }
            /* bf16 output: a few one-ulp flips; f32: accumulation order only */
            bad = !(e <= (strcmp(info.out_type, "bf16") ? 1e-9 : 1e-4) * ref);
            if (bad)
                snprintf(err, err_size, "%s m=%lld: nmse %.3e", name, (long long)m, e / ref);
        }
    done:
        free(w), free(a), free(bias), free(c), free(cr), free(blob), free(packed);
    }
    return bad;
}
