/*
 * The smallest complete qkc program, built against an installed qkc
 * (docs/install.md): parse a spec, quantize random weights, JIT-compile a
 * kernel, pack the weights for it, run it, and check it against the
 * reference matmul. Prints what it did; exits 1 on any error or mismatch.
 *
 * It includes only the public header, <qkc/qkc.h>.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <qkc/qkc.h>

#define N 256 /* outputs */
#define K 512 /* inputs: q4_k needs a multiple of 256 */
#define M 4   /* rows of activations, given at run time */

/* A compiled kernel sums in f32, the reference in double: for f32 output
 * they agree to NMSE <= 1e-10 (docs/api.md). */
#define MAX_NMSE 1e-10

/* Uniform numbers in [-1, 1) from xorshift32: fixed seed, same every run. */
static float uniform(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

/* On failure, print what failed with the context's message and say so. */
static int ok(qkc_context *ctx, qkc_status status, const char *what)
{
    if (status == QKC_OK)
        return 1;
    fprintf(stderr, "consumer: %s failed: %s (%s)\n", what, ctx ? qkc_context_last_error(ctx) : "",
            qkc_status_str(status));
    return 0;
}

int main(void)
{
    const char *text = "matmul n=256 k=512 a=f32 w=q4_k out=f32";
    qkc_context *ctx = NULL;
    qkc_spec *spec = NULL;
    qkc_kernel *kernel = NULL;
    qkc_kernel_info kinfo;
    size_t blob_bytes = 0, packed_bytes = 0;
    float *w = malloc(sizeof(float) * N * K);
    float *a = malloc(sizeof(float) * M * K);
    float *c = malloc(sizeof(float) * M * N);
    float *ref = malloc(sizeof(float) * M * N);
    void *blob = NULL, *packed = NULL;
    uint32_t seed = 12345;
    double err = 0.0, norm = 0.0, nmse;
    int rc = 1;

    if (!w || !a || !c || !ref) {
        fprintf(stderr, "consumer: out of memory\n");
        goto done;
    }
    for (int i = 0; i < N * K; i++)
        w[i] = 0.05f * uniform(&seed);
    for (int i = 0; i < M * K; i++)
        a[i] = uniform(&seed);

    printf("qkc %s\n", qkc_version_string());
    if (!ok(NULL, qkc_context_create(NULL, &ctx), "qkc_context_create") ||
        !ok(ctx, qkc_spec_parse(ctx, text, &spec), "qkc_spec_parse"))
        goto done;

    /* Quantize the f32 weights into the spec's format (GGUF Q4_K here). */
    if (!ok(ctx, qkc_weights_bytes(ctx, spec, &blob_bytes), "qkc_weights_bytes"))
        goto done;
    if (!(blob = malloc(blob_bytes))) {
        fprintf(stderr, "consumer: out of memory\n");
        goto done;
    }
    if (!ok(ctx, qkc_quantize(ctx, spec, w, K, blob, blob_bytes), "qkc_quantize"))
        goto done;

    /* Compile for this CPU, then pack the weights into the kernel's layout. */
    if (!ok(ctx, qkc_kernel_compile(ctx, spec, NULL, &kernel), "qkc_kernel_compile") ||
        !ok(ctx, qkc_kernel_query(kernel, &kinfo), "qkc_kernel_query") ||
        !ok(ctx, qkc_kernel_packed_bytes(kernel, &packed_bytes), "qkc_kernel_packed_bytes"))
        goto done;
    if (!(packed = malloc(packed_bytes))) {
        fprintf(stderr, "consumer: out of memory\n");
        goto done;
    }
    if (!ok(ctx, qkc_weights_pack(ctx, kernel, blob, blob_bytes, packed, packed_bytes), "qkc_weights_pack"))
        goto done;

    /* The kernel reads the packed weights, the reference the quantized blob. */
    {
        qkc_matmul_args run = {a, K, packed, packed_bytes, NULL, c, N, M};
        qkc_matmul_args check = {a, K, blob, blob_bytes, NULL, ref, N, M};
        if (!ok(ctx, qkc_kernel_run(ctx, kernel, &run, NULL), "qkc_kernel_run") ||
            !ok(ctx, qkc_reference_matmul(ctx, spec, &check), "qkc_reference_matmul"))
            goto done;
    }
    for (int i = 0; i < M * N; i++) {
        double d = (double)c[i] - (double)ref[i];
        err += d * d;
        norm += (double)ref[i] * (double)ref[i];
    }
    nmse = norm > 0.0 ? err / norm : err;
    printf("spec      %s (m=%d)\n", text, M);
    printf("kernel    %s (%s), compiled in %.1f ms\n", kinfo.target, kinfo.features, kinfo.compile_ms);
    printf("check     kernel vs reference: nmse %.3e (bound %.0e): %s\n", nmse, MAX_NMSE,
           nmse <= MAX_NMSE ? "ok" : "MISMATCH");
    rc = nmse <= MAX_NMSE ? 0 : 1;

done:
    qkc_kernel_destroy(kernel); /* every destroy accepts NULL */
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    free(packed);
    free(blob);
    free(w);
    free(a);
    free(c);
    free(ref);
    return rc;
}
