/*
 * A transformer MLP block (SwiGLU, as in Llama) on quantized weights:
 *
 *   gate = silu(x · Wgᵀ)        one kernel, the activation fused (act=silu)
 *   up   = x · Wuᵀ              one kernel
 *   h    = gate ⊙ up            a plain C loop
 *   y    = h · Wdᵀ + bias       one kernel, the bias fused (bias=f32)
 *
 * x holds TOKENS rows of D_MODEL, h rows of D_FF. Wg and Wu are GGUF Q4_K,
 * Wd is Q6_K (llama.cpp's Q4_K_M mix keeps some down projections in Q6_K).
 *
 * Checks, each on identical inputs:
 *   - every projection against qkc_reference_matmul (NMSE <= 1e-10);
 *   - the whole block against the block computed by the reference alone
 *     (gate, up and down by qkc_reference_matmul);
 * and reports, for information, how far the quantized block is from the
 * same block with the original f32 weights (the formats' own error).
 *
 * Prints the specs, the time of each projection (median of REPEATS calls)
 * and the checks. Exits 1 on any error or mismatch.
 *
 * Build outside the tree (see README.md):
 *   cc -std=c11 -O2 mlp_block.c -o mlp_block $(pkg-config --cflags --libs qkc)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qkc/qkc.h>

#define D_MODEL 512
#define D_FF 1536 /* a multiple of 256: Q4_K and Q6_K blocks span 256 weights along k */
#define TOKENS 8  /* M: rows of x */
#define REPEATS 50 /* timed runs of each projection; the median is printed */

/* The three projections. act=silu and bias=f32 are part of the kernel:
 * no separate pass over the output. */
static const char *const gate_spec = "matmul n=1536 k=512 a=f32 w=q4_k act=silu out=f32";
static const char *const up_spec = "matmul n=1536 k=512 a=f32 w=q4_k out=f32";
static const char *const down_spec = "matmul n=512 k=1536 a=f32 w=q6_k bias=f32 out=f32";

/* A compiled kernel sums in f32, the reference in double: for f32 output
 * they agree to NMSE <= 1e-10 (docs/api.md). Through the whole block the
 * small differences of gate and up pass through the product and the down
 * projection; the bound for the block allows them that. */
#define MAX_NMSE 1e-10
#define MAX_NMSE_BLOCK 1e-8

/* One projection: spec, quantized weights (read by the reference), kernel
 * and packed weights (read by the kernel). */
typedef struct projection {
    const char *name;
    const char *text;
    int64_t n, k;
    float *w; /* the original f32 weights, N x K */
    qkc_spec *spec;
    void *blob;
    size_t blob_bytes;
    qkc_kernel *kernel;
    void *packed;
    size_t packed_bytes;
} projection;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* Uniform numbers in [-1, 1) from xorshift32: fixed seeds, same every run. */
static float uniform(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

static double nmse(const float *c, const float *ref, size_t count)
{
    double err = 0.0, norm = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)c[i] - (double)ref[i];
        err += d * d;
        norm += (double)ref[i] * (double)ref[i];
    }
    return norm > 0.0 ? err / norm : err;
}

/* On failure, print what failed with the context's message. */
static int ok(qkc_context *ctx, qkc_status status, const char *what, const char *name)
{
    if (status == QKC_OK)
        return 1;
    fprintf(stderr, "mlp_block: %s failed for %s: %s (%s)\n", what, name, ctx ? qkc_context_last_error(ctx) : "",
            qkc_status_str(status));
    return 0;
}

/* Parse, make weights, quantize, compile, pack. Returns 1 on success. */
static int projection_prepare(qkc_context *ctx, projection *p, uint32_t seed)
{
    qkc_spec_info info;
    float scale;

    if (!ok(ctx, qkc_spec_parse(ctx, p->text, &p->spec), "qkc_spec_parse", p->name) ||
        !ok(ctx, qkc_spec_query(p->spec, &info), "qkc_spec_query", p->name))
        return 0;
    p->n = info.n;
    p->k = info.k;
    /* Stand-in for a checkpoint: uniform weights scaled by 1/sqrt(k), so
     * every layer's outputs stay of the order of its inputs. */
    scale = 1.7f / sqrtf((float)p->k);
    if (!(p->w = malloc((size_t)(p->n * p->k) * sizeof *p->w))) {
        fprintf(stderr, "mlp_block: out of memory for the %s weights\n", p->name);
        return 0;
    }
    for (int64_t i = 0; i < p->n * p->k; i++)
        p->w[i] = scale * uniform(&seed);

    p->blob_bytes = info.weight_bytes;
    if (!(p->blob = malloc(p->blob_bytes))) {
        fprintf(stderr, "mlp_block: out of memory for the %s weights\n", p->name);
        return 0;
    }
    if (!ok(ctx, qkc_quantize(ctx, p->spec, p->w, p->k, p->blob, p->blob_bytes), "qkc_quantize", p->name) ||
        !ok(ctx, qkc_kernel_compile(ctx, p->spec, NULL, &p->kernel), "qkc_kernel_compile", p->name) ||
        !ok(ctx, qkc_kernel_packed_bytes(p->kernel, &p->packed_bytes), "qkc_kernel_packed_bytes", p->name))
        return 0;
    if (!(p->packed = malloc(p->packed_bytes))) {
        fprintf(stderr, "mlp_block: out of memory for the %s packed weights\n", p->name);
        return 0;
    }
    return ok(ctx, qkc_weights_pack(ctx, p->kernel, p->blob, p->blob_bytes, p->packed, p->packed_bytes),
              "qkc_weights_pack", p->name);
}

static void projection_release(projection *p)
{
    qkc_kernel_destroy(p->kernel);
    qkc_spec_destroy(p->spec);
    free(p->packed);
    free(p->blob);
    free(p->w);
}

/* out[TOKENS, n] = in[TOKENS, k] · Wᵀ (+ bias) with the compiled kernel,
 * REPEATS times; *median_us receives the median time of one call. */
static int projection_run(qkc_context *ctx, const projection *p, const float *in, const float *bias, float *out,
                          double *median_us)
{
    qkc_matmul_args args = {in, p->k, p->packed, p->packed_bytes, bias, out, p->n, TOKENS};
    double times[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now_us();
        if (!ok(ctx, qkc_kernel_run(ctx, p->kernel, &args, NULL), "qkc_kernel_run", p->name))
            return 0;
        times[r] = now_us() - t0;
    }
    for (int i = 1; i < REPEATS; i++) /* insertion sort: REPEATS is small */
        for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    *median_us = times[REPEATS / 2];
    return 1;
}

/* The same product by the reference, from the quantized (unpacked) blob. */
static int projection_reference(qkc_context *ctx, const projection *p, const float *in, const float *bias, float *out)
{
    qkc_matmul_args args = {in, p->k, p->blob, p->blob_bytes, bias, out, p->n, TOKENS};
    return ok(ctx, qkc_reference_matmul(ctx, p->spec, &args), "qkc_reference_matmul", p->name);
}

/* The block with the original f32 weights, in double: what quantization is
 * compared with. */
static void block_f32(const projection *gate, const projection *up, const projection *down, const float *x,
                      const float *bias, float *y)
{
    static double h[TOKENS * D_FF];
    for (int t = 0; t < TOKENS; t++) {
        for (int j = 0; j < D_FF; j++) {
            double g = 0.0, u = 0.0;
            for (int i = 0; i < D_MODEL; i++) {
                g += (double)x[t * D_MODEL + i] * (double)gate->w[j * D_MODEL + i];
                u += (double)x[t * D_MODEL + i] * (double)up->w[j * D_MODEL + i];
            }
            h[t * D_FF + j] = g / (1.0 + exp(-g)) * u;
        }
        for (int j = 0; j < D_MODEL; j++) {
            double s = (double)bias[j];
            for (int i = 0; i < D_FF; i++)
                s += h[t * D_FF + i] * (double)down->w[j * D_FF + i];
            y[t * D_MODEL + j] = (float)s;
        }
    }
}

int main(void)
{
    static float x[TOKENS * D_MODEL], bias[D_MODEL];
    static float gate[TOKENS * D_FF], up[TOKENS * D_FF], h[TOKENS * D_FF], y[TOKENS * D_MODEL];
    static float ref_gate[TOKENS * D_FF], ref_up[TOKENS * D_FF], ref_h[TOKENS * D_FF];
    static float ref_y[TOKENS * D_MODEL], ref_down[TOKENS * D_MODEL], f32_y[TOKENS * D_MODEL];
    projection pg = {"gate", gate_spec, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, 0};
    projection pu = {"up", up_spec, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, 0};
    projection pd = {"down", down_spec, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, 0};
    qkc_context *ctx = NULL;
    double us_gate, us_up, us_mul, us_down, t0, e_gate, e_up, e_down, e_block, e_f32;
    uint32_t seed = 7;
    int rc = 1;

    for (int i = 0; i < TOKENS * D_MODEL; i++)
        x[i] = uniform(&seed);
    for (int i = 0; i < D_MODEL; i++)
        bias[i] = 0.1f * uniform(&seed);

    /* Set-up, once: quantize, compile and pack the three projections. */
    if (!ok(NULL, qkc_context_create(NULL, &ctx), "qkc_context_create", "the block") ||
        !projection_prepare(ctx, &pg, 1) || !projection_prepare(ctx, &pu, 2) || !projection_prepare(ctx, &pd, 3))
        goto done;
    printf("MLP block, %d tokens, d_model %d, d_ff %d\n", TOKENS, D_MODEL, D_FF);
    printf("  gate  %s\n  up    %s\n  down  %s\n\n", gate_spec, up_spec, down_spec);

    /* The block through the compiled kernels. */
    if (!projection_run(ctx, &pg, x, NULL, gate, &us_gate) || !projection_run(ctx, &pu, x, NULL, up, &us_up))
        goto done;
    t0 = now_us();
    for (int r = 0; r < REPEATS; r++) /* timed like the kernels: an average of REPEATS */
        for (int i = 0; i < TOKENS * D_FF; i++)
            h[i] = gate[i] * up[i];
    us_mul = (now_us() - t0) / REPEATS;
    if (!projection_run(ctx, &pd, h, bias, y, &us_down))
        goto done;

    /* The reference: each projection on the kernels' own inputs, then the
     * whole block on the reference's. */
    if (!projection_reference(ctx, &pg, x, NULL, ref_gate) || !projection_reference(ctx, &pu, x, NULL, ref_up) ||
        !projection_reference(ctx, &pd, h, bias, ref_down))
        goto done;
    for (int i = 0; i < TOKENS * D_FF; i++)
        ref_h[i] = ref_gate[i] * ref_up[i];
    if (!projection_reference(ctx, &pd, ref_h, bias, ref_y))
        goto done;
    block_f32(&pg, &pu, &pd, x, bias, f32_y);

    e_gate = nmse(gate, ref_gate, TOKENS * D_FF);
    e_up = nmse(up, ref_up, TOKENS * D_FF);
    e_down = nmse(y, ref_down, TOKENS * D_MODEL);
    e_block = nmse(y, ref_y, TOKENS * D_MODEL);
    e_f32 = nmse(y, f32_y, TOKENS * D_MODEL);

    printf("%-24s %12s %14s\n", "step", "us per call", "nmse vs ref");
    printf("%-24s %12.1f %14.2e\n", "gate  x Wg^T + silu", us_gate, e_gate);
    printf("%-24s %12.1f %14.2e\n", "up    x Wu^T", us_up, e_up);
    printf("%-24s %12.1f %14s\n", "h     gate * up (C)", us_mul, "");
    printf("%-24s %12.1f %14.2e\n", "down  h Wd^T + bias", us_down, e_down);
    printf("%-24s %12.1f %14.2e\n\n", "block", us_gate + us_up + us_mul + us_down, e_block);
    printf("quantized block vs f32 weights: nmse %.2e (the formats' own error, for information)\n", e_f32);

    if (e_gate <= MAX_NMSE && e_up <= MAX_NMSE && e_down <= MAX_NMSE && e_block <= MAX_NMSE_BLOCK) {
        printf("ok: each projection within %.0e of the reference, the block within %.0e\n", MAX_NMSE, MAX_NMSE_BLOCK);
        rc = 0;
    } else {
        printf("FAILED: a projection above %.0e or the block above %.0e\n", MAX_NMSE, MAX_NMSE_BLOCK);
    }

done:
    projection_release(&pg);
    projection_release(&pu);
    projection_release(&pd);
    qkc_context_destroy(ctx);
    return rc;
}
