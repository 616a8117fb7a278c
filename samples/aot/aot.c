/*
 * An ahead-of-time qkc library at work: every kernel of libkernels.a (made
 * by `qkc compile --emit lib` from kernels.specs, see CMakeLists.txt) is
 * looked up for this CPU, fed quantized weights, run, and checked against
 * the reference matmul. The program links libqkc_rt only: no LLVM.
 *
 * qkc_aot_kernel picks, for each spec, the first target in the library's
 * order that this CPU runs; QKC_TARGET=<target> picks one by name. The
 * program prints which kernel ran and proves it: the entry point the
 * runtime calls is the one the header declares for that target.
 *
 * Exit status: 0 when every kernel matches the reference, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qkc/qkc.h>

#include "kernels.h"

typedef void (*entry_fn)(const qkc_kernel_args *);
static const entry_fn entries[] = QKC_AOT_KERNELS_ENTRY_POINTS;
static const char *const specs[QKC_AOT_KERNELS_SPECS] = {QKC_AOT_KERNELS_SPEC_0, QKC_AOT_KERNELS_SPEC_1,
                                                        QKC_AOT_KERNELS_SPEC_2};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static double out_value(const char *type, const void *c, int64_t i)
{
    if (!strcmp(type, "bf16")) {
        uint32_t bits = (uint32_t)((const uint16_t *)c)[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    return ((const float *)c)[i];
}

/* Run one kernel at M rows against the reference; 0 when they agree. */
static int check(qkc_context *ctx, const qkc_spec *spec, const qkc_kernel *kernel, int64_t m)
{
    qkc_spec_info info;
    size_t packed_bytes;
    int bad = 1;
    qkc_spec_query(spec, &info);
    qkc_kernel_packed_bytes(kernel, &packed_bytes);
    {
        int out2 = strcmp(info.out_type, "f32") != 0;
        float *w = malloc((size_t)(info.n * info.k) * sizeof *w), *a = malloc((size_t)(m * info.k) * sizeof *a);
        float *bias = malloc((size_t)info.n * sizeof *bias);
        void *c = malloc((size_t)(m * info.n) * 4), *ref = malloc((size_t)(m * info.n) * 4);
        unsigned char *blob = malloc(info.weight_bytes), *packed = malloc(packed_bytes);
        if (w && a && bias && c && ref && blob && packed) {
            for (int64_t i = 0; i < info.n * info.k; i++)
                w[i] = 0.05f * rnd();
            for (int64_t i = 0; i < m * info.k; i++)
                a[i] = rnd();
            for (int64_t i = 0; i < info.n; i++)
                bias[i] = rnd();
            qkc_matmul_args args = {a, info.k, packed, packed_bytes, info.has_bias ? bias : NULL, c, info.n, m};
            qkc_matmul_args rargs = {a, info.k, blob, info.weight_bytes, info.has_bias ? bias : NULL, ref, info.n, m};
            if (qkc_quantize(ctx, spec, w, info.k, blob, info.weight_bytes) == QKC_OK &&
                qkc_weights_pack(ctx, kernel, blob, info.weight_bytes, packed, packed_bytes) == QKC_OK &&
                qkc_kernel_run(ctx, kernel, &args, NULL) == QKC_OK && qkc_reference_matmul(ctx, spec, &rargs) == QKC_OK) {
                double err = 0, sum = 0;
                for (int64_t i = 0; i < m * info.n; i++) {
                    double x = out_value(info.out_type, c, i), y = out_value(info.out_type, ref, i);
                    err += (x - y) * (x - y);
                    sum += y * y;
                }
                /* f32 output differs from the reference only by summation order;
                 * a bf16 output may round one unit apart on a few elements */
                bad = !(err <= (out2 ? 1e-4 : 1e-10) * sum);
                printf("    m=%-3lld nmse %.2e %s\n", (long long)m, err / sum, bad ? "MISMATCH" : "ok");
            } else {
                fprintf(stderr, "error: %s\n", qkc_context_last_error(ctx));
            }
        }
        free(w), free(a), free(bias), free(c), free(ref), free(blob), free(packed);
    }
    return bad;
}

int main(void)
{
    qkc_context *ctx;
    int failures = 0;
    if (qkc_context_create(NULL, &ctx) != QKC_OK)
        return 1;
    printf("library 'kernels': %d kernels (%d specs x targets)\n", qkc_aot_variant_count(&qkc_aot_kernels),
           QKC_AOT_KERNELS_SPECS);
    for (int s = 0; s < QKC_AOT_KERNELS_SPECS; s++) {
        qkc_spec *spec = NULL;
        qkc_kernel *kernel = NULL;
        qkc_kernel_info ki;
        qkc_aot_variant_info vi;
        int index = -1;
        if (qkc_spec_parse(ctx, specs[s], &spec) != QKC_OK || qkc_aot_kernel(ctx, &qkc_aot_kernels, spec, NULL, &kernel) != QKC_OK) {
            fprintf(stderr, "error: %s\n", qkc_context_last_error(ctx));
            qkc_spec_destroy(spec);
            qkc_context_destroy(ctx);
            return 1;
        }
        qkc_kernel_query(kernel, &ki);
        /* which declared entry point will qkc_kernel_run call? */
        for (int i = 0; i < QKC_AOT_KERNELS_KERNELS; i++)
            if ((uintptr_t)entries[i] == ki.entry)
                index = i;
        if (index < 0 || qkc_aot_variant(&qkc_aot_kernels, index, &vi) != QKC_OK || strcmp(vi.target, ki.target) ||
            strcmp(vi.spec, specs[s]) || !ki.ahead_of_time) {
            fprintf(stderr, "error: the kernel chosen for '%s' is not the entry point its table row names\n", specs[s]);
            failures++;
        } else {
            printf("%s\n  ran %s: entry point %s (features %s)\n", specs[s], ki.target, vi.symbol, ki.features);
        }
        failures += check(ctx, spec, kernel, 1);
        failures += check(ctx, spec, kernel, 7);
        qkc_kernel_destroy(kernel);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    printf("%s\n", failures ? "FAILED" : "all kernels match the reference");
    return failures ? 1 : 0;
}
