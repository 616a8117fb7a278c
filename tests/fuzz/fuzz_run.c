/*
 * libFuzzer harness: fuzzed checkpoints packed and run. The bytes are
 * opened from memory as in fuzz_file; for the first two runnable tensors
 * of at most 64 Ki weights, the harness builds the tensor's spec
 * ("matmul n=N k=K <weights> out=f32", with an activation dtype, a
 * compute type, an activation and a bias chosen by the input's hash where
 * the verifier takes them), imports its weight blob, compiles the JIT kernel (disk
 * cache off; the target is the host or x86_64-avx2, also by the hash),
 * packs the blob and runs the kernel on seeded activations with M = 1 and
 * 3, and compares every output with the reference matmul on the same blob
 * by the kernel bounds of the tolerance table (tests/util/tolerance.h: the
 * condition bound cond_factor·sqrt(K)·2^-24·Σ|a·w|, as test_cg_kernel and
 * fuzz_diff use, plus K·2^-149 for products that underflow into
 * subnormals and, with a bias, the roundings of sum + bias and of the
 * output).
 * qkc_file_run of the tensor must give the same bits as the harness's own
 * pack and run.
 *
 * Fuzzed weights are arbitrary bit patterns: outputs whose weights are
 * not all finite, or whose Σ|a·w| is so large that an f32 sum may
 * overflow, are not compared (the kernel and the double-precision
 * reference may then differ in how they overflow), but they are computed.
 * Explained refusals: the GPTQ-v2 zero of 0 (import), a g_idx outside the
 * groups (QKC_ERR_CORRUPT_DATA) or an act-order grouping the packed
 * layout cannot hold (QKC_ERR_UNSUPPORTED) when packing, each with a
 * message. Any other failure, a mismatch, a crash or a sanitizer report
 * is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/testutil.h"
#include "util/tolerance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_WEIGHTS (64 * 1024)
#define MAX_TENSORS 2

static qkc_context *ctx;
static int inputs;

/* A fresh context every so many inputs: compiled code lives as long as its
 * context. */
static void new_context(void)
{
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .disk_cache = QKC_DISK_CACHE_OFF,
                              .warn = qkc_fuzz_no_warning};
    qkc_context_destroy(ctx);
    ctx = NULL;
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        qkc_fuzz_bug("no context");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    new_context();
    return 0;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

typedef struct tensor_run {
    const qkc_tensor_info *t;
    const char *text;    /* the spec */
    const char *compute; /* its compute type, for the tolerance table */
    int bias;            /* bias=f32 */
    const char *a_type;  /* activations: "f32", "f16" or "bf16" */
    const char *target;
    uint64_t seed;
} tensor_run;

/* Compare C (kernel) with R (reference) for M rows; w: the dequantized
 * weights, a: the activations, bias: NULL or the bias. */
static void compare(const tensor_run *r, const qkc_tol_kernel *tol, int64_t m, const float *a, const float *w,
                    const float *bias, const float *c, const float *ref)
{
    int64_t n = r->t->n, k = r->t->k;
    for (int64_t col = 0; col < n; col++) {
        int finite = 1;
        for (int64_t j = 0; j < k && finite; j++)
            finite = isfinite(w[col * k + j]);
        for (int64_t row = 0; row < m; row++) {
            double cond = 0, bound, x = c[row * n + col], y = ref[row * n + col];
            for (int64_t j = 0; j < k; j++)
                cond += fabs((double)a[row * k + j] * (double)w[col * k + j]);
            /* beyond 2^100 an f32 sum of K terms may overflow where the
             * double one does not */
            if (!finite || !(cond <= 0x1p100))
                continue;
            /* plus K·2^-149: products that underflow into f32's
             * subnormals lose up to half of 2^-149 each, whatever their
             * size (the table's bound is relative: test data never gets
             * there, fuzzed weights do) */
            bound = tol->cond_factor * sqrt((double)k) * 0x1p-24 * cond + (double)k * 0x1p-149;
            /* a bias: the kernel rounds sum + bias to f32 before the
             * activation (slope at most 1.13) and the output once more,
             * where the reference adds in double */
            if (bias)
                bound += 0x1p-22 * (cond + fabs(bias[col])) + 0x1p-24 * fabs(y);
            if (x != y && !(isnan(x) && isnan(y)) && !(fabs(x - y) <= bound))
                qkc_fuzz_bug("%s on %s, m=%lld: element (%lld, %lld) is %.9g, the reference %.9g: |diff| %.3g exceeds "
                             "%.3g",
                             r->text, r->target, (long long)m, (long long)row, (long long)col, x, y, fabs(x - y),
                             bound);
        }
    }
}

static void run_tensor(const qkc_file *file, int64_t index, const tensor_run *r)
{
    const qkc_tensor_info *t = r->t;
    int64_t n = t->n, k = t->k;
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_compile_options co = {.struct_size = sizeof co, .target = r->target};
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = 1};
    size_t pbytes = 0;
    qkc_status st, dq;
    int64_t experts = 1;
    void *blob, *packed = NULL;
    float *w, *a, *c, *ref, *c2, *bias;
    uint16_t *a16 = NULL;
    qkc_rng rng = {r->seed ? r->seed : 1};
    if (qkc_spec_parse(ctx, r->text, &spec) != QKC_OK)
        qkc_fuzz_bug("runnable tensor '%s': '%s' does not parse: %s", t->name, r->text, qkc_context_last_error(ctx));
    blob = malloc(t->weights_bytes ? t->weights_bytes : 1);
    w = malloc((size_t)(n * k) * sizeof *w);
    a = malloc((size_t)(3 * k) * sizeof *a);
    c = malloc((size_t)(3 * n) * sizeof *c);
    c2 = malloc((size_t)(3 * n) * sizeof *c2);
    ref = malloc((size_t)(3 * n) * sizeof *ref);
    bias = malloc((size_t)n * sizeof *bias);
    if (strcmp(r->a_type, "f32") && !(a16 = malloc((size_t)(3 * k) * sizeof *a16)))
        qkc_fuzz_bug("out of memory");
    if (!blob || !w || !a || !c || !c2 || !ref || !bias)
        qkc_fuzz_bug("out of memory");
    /* a MoE expert stack: its last expert, in place */
    if (qkc_file_expert(ctx, file, index, 0, NULL, &experts) != QKC_OK)
        qkc_fuzz_bug("tensor '%s': no expert count: %s", t->name, qkc_context_last_error(ctx));
    if (experts > 1) {
        const void *ed = NULL;
        if (qkc_file_weights(ctx, file, index, blob, t->weights_bytes) != QKC_ERR_INVALID_ARGUMENT)
            qkc_fuzz_bug("tensor '%s': a stack of %lld experts gives one blob", t->name, (long long)experts);
        if (qkc_file_expert(ctx, file, index, experts - 1, &ed, NULL) != QKC_OK || !ed)
            qkc_fuzz_bug("tensor '%s': expert %lld: %s", t->name, (long long)experts - 1, qkc_context_last_error(ctx));
        memcpy(blob, ed, t->weights_bytes);
        st = QKC_OK;
    } else {
        st = qkc_file_weights(ctx, file, index, blob, t->weights_bytes);
    }
    if (st == QKC_ERR_UNSUPPORTED)
        goto done; /* the GPTQ v2 zero of 0 */
    if (st != QKC_OK)
        qkc_fuzz_bug("tensor '%s': import failed: %s", t->name, qkc_context_last_error(ctx));
    /* a blob dequantization refuses (a g_idx outside the groups) must be
     * refused by the reference and by packing too */
    dq = qkc_dequantize(ctx, spec, blob, t->weights_bytes, w, k);
    if (dq != QKC_OK && (dq != QKC_ERR_CORRUPT_DATA || !qkc_context_last_error(ctx)[0]))
        qkc_fuzz_bug("tensor '%s': dequantization failed: status %d: %s", t->name, (int)dq,
                     qkc_context_last_error(ctx));
    for (int64_t i = 0; i < 3 * k; i++)
        a[i] = qkc_rng_normal(&rng);
    /* f16 / bf16 activations: the kernel reads their bits, the bounds
     * take the values they hold */
    for (int64_t i = 0; i < 3 * k && a16; i++) {
        a16[i] = !strcmp(r->a_type, "f16") ? qkc_f32_to_f16(a[i]) : qkc_f32_to_bf16(a[i]);
        a[i] = !strcmp(r->a_type, "f16") ? qkc_f16_to_f32(a16[i]) : qkc_bf16_to_f32(a16[i]);
    }
    for (int64_t i = 0; i < n; i++)
        bias[i] = qkc_rng_normal(&rng);
    if (qkc_kernel_compile(ctx, spec, &co, &kern) != QKC_OK)
        qkc_fuzz_bug("%s for %s: compile failed: %s", r->text, r->target, qkc_context_last_error(ctx));
    if (qkc_kernel_packed_bytes(kern, &pbytes) != QKC_OK || !(packed = malloc(pbytes ? pbytes : 1)))
        qkc_fuzz_bug("%s: no packed size", r->text);
    st = qkc_weights_pack(ctx, kern, blob, t->weights_bytes, packed, pbytes);
    /* packing refuses what its layout cannot hold, and says so */
    if (st != QKC_OK && ((st != QKC_ERR_CORRUPT_DATA && st != QKC_ERR_UNSUPPORTED) || !qkc_context_last_error(ctx)[0]))
        qkc_fuzz_bug("%s: pack failed: status %d: %s", r->text, (int)st, qkc_context_last_error(ctx));
    if (dq != QKC_OK && st == QKC_OK)
        qkc_fuzz_bug("%s: packing takes a blob dequantization refuses", r->text);
    for (int64_t m = 1; m <= 3; m += 2) {
        const float *b = r->bias ? bias : NULL;
        const void *av = a16 ? (const void *)a16 : a;
        qkc_matmul_args ar = {av, k, blob, t->weights_bytes, b, ref, n, m};
        qkc_matmul_args ak = {av, k, packed, pbytes, b, c, n, m};
        qkc_matmul_args af = {av, k, NULL, 0, b, c2, n, m};
        qkc_status rs = qkc_reference_matmul(ctx, spec, &ar);
        if ((rs != QKC_OK) != (dq != QKC_OK))
            qkc_fuzz_bug("%s: the reference %s a blob dequantization %s: %s", r->text, rs ? "refuses" : "takes",
                         dq ? "refuses" : "takes", qkc_context_last_error(ctx));
        if (st != QKC_OK)
            continue;
        memset(c, 0, (size_t)(m * n) * sizeof *c);
        if (qkc_kernel_run(ctx, kern, &ak, &ro) != QKC_OK)
            qkc_fuzz_bug("%s on %s, m=%lld: run failed: %s", r->text, r->target, (long long)m,
                         qkc_context_last_error(ctx));
        compare(r, qkc_tol_kernel_for(r->compute, "f32"), m, a, w, b, c, ref);
        /* the one-call path: the same kernel on the same weights */
        if ((experts > 1 ? qkc_file_run_expert(ctx, file, index, experts - 1, r->text, &af, &co, &ro)
                         : qkc_file_run(ctx, file, index, r->text, &af, &co, &ro)) != QKC_OK)
            qkc_fuzz_bug("%s: qkc_file_run failed: %s", r->text, qkc_context_last_error(ctx));
        if (memcmp(c, c2, (size_t)(m * n) * sizeof *c))
            qkc_fuzz_bug("%s on %s, m=%lld: qkc_file_run gives other bits than pack and run", r->text, r->target,
                         (long long)m);
    }
done:
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    free(blob), free(w), free(a), free(c), free(c2), free(ref), free(bias), free(a16), free(packed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qkc_file *file = NULL;
    qkc_file_info fi;
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = size ? data[0] % 3 : 0};
    uint64_t h = hash_bytes(data, size);
    int ran = 0;
    if (++inputs % 256 == 0)
        new_context();
    if (qkc_file_open_memory(ctx, data, size, &fo, &file) != QKC_OK)
        return 0;
    qkc_file_query(file, &fi);
    for (int64_t i = 0; i < fi.tensors && ran < MAX_TENSORS; i++) {
        static const char *const compute[] = {"f32", "int8", "bf16", "f16", "tf32"};
        static const char *const act[] = {"none", "relu", "gelu", "silu"};
        static const char *const a_type[] = {"f32", "f16", "bf16"};
        uint64_t pick = h >> (16 + 8 * i);
        qkc_tensor_info t;
        qkc_spec *spec = NULL;
        char text[256];
        tensor_run r;
        if (qkc_file_tensor(file, i, &t) != QKC_OK)
            qkc_fuzz_bug("tensor %lld cannot be read", (long long)i);
        if (!t.runnable || t.n < 1 || t.k < 1 || t.n > MAX_WEIGHTS / t.k || t.weights_bytes > 16 * MAX_WEIGHTS)
            continue;
        ran++;
        /* the compute type, activation and bias by the input's hash; the
         * plain spec where the verifier refuses the combination */
        r.compute = compute[pick % 5];
        r.bias = (pick / 20) & 1;
        r.a_type = a_type[(pick / 40) % 3];
        snprintf(text, sizeof text, "matmul n=%lld k=%lld %s a=%s out=f32 compute=%s act=%s bias=%s", (long long)t.n,
                 (long long)t.k, t.weights, r.a_type, r.compute, act[(pick / 5) % 4], r.bias ? "f32" : "none");
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK) {
            r.compute = "f32";
            r.bias = 0;
            r.a_type = "f32";
            snprintf(text, sizeof text, "matmul n=%lld k=%lld %s a=f32 compute=f32 out=f32", (long long)t.n,
                     (long long)t.k, t.weights);
        }
        qkc_spec_destroy(spec);
        r.t = &t;
        r.text = text;
        r.target = qkc_target_host_arch() == QKC_ARCH_X86_64 && ((h >> (8 + i)) & 1) ? "x86_64-avx2" : "host";
        r.seed = h + (uint64_t)i;
        run_tensor(file, i, &r);
    }
    qkc_file_close(file);
    return 0;
}
