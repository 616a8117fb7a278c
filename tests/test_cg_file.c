/*
 * JIT kernels on weights read from files: for every GGUF type qkc runs,
 * a file written by the test writer is opened, and qkc_file_run (spec
 * "auto": the format's default compute, int8 for the GGUF types) is
 * compared with the reference matmul on the file's in-place bytes (within
 * the kernel tolerance), and with identity activations and compute=f32
 * the kernel's output is the dequantized weight matrix exactly. Shapes
 * with many rows and odd row counts. The same for the safetensors
 * importers (GPTQ v1/v2 with act-order, AWQ, NF4 with nested
 * quantization). A failure prints the command that reruns its case.
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

#include "qkc/qkc.h"
#include "util/file_fixtures.h"
#include "util/testutil.h"
#include "util/tolerance.h"

#define PROG "test_cg_file"

/* Kernel (qkc_file_run) against the reference for tensor `index`. */
static void check_run(qkc_context *ctx, qkc_file *file, int64_t index, const char *name, int64_t m)
{
    qkc_tensor_info ti;
    qkc_spec *spec = NULL;
    qkc_spec_info info;
    const qkc_tol_kernel *tol;
    qkc_rng r = qkc_rng_from_name(name);
    float *a, *c, *cr, *wd;
    const void *blob;
    void *imported = NULL;
    double err = 0, ref = 0;
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_true(ti.runnable);
    /* the spec "auto" runs: a=f32 out=f32, the format's default compute */
    assert_int_equal(qkc_file_spec(ctx, file, index, "a=f32 out=f32", &spec), QKC_OK);
    assert_int_equal(qkc_spec_query(spec, &info), QKC_OK);
    tol = qkc_tol_kernel_for(info.compute_type, "f32");
    a = malloc((size_t)(m * ti.k) * sizeof *a);
    c = malloc((size_t)(m * ti.n + 1) * sizeof *c);
    cr = malloc((size_t)(m * ti.n) * sizeof *cr);
    wd = malloc((size_t)(ti.n * ti.k) * sizeof *wd);
    assert_true(a && c && cr && wd);
    for (int64_t i = 0; i < m * ti.k; i++)
        a[i] = qkc_rng_normal(&r);
    if (ti.in_place) {
        blob = ti.data;
    } else {
        imported = malloc(ti.weights_bytes);
        assert_non_null(imported);
        assert_int_equal(qkc_file_weights(ctx, file, index, imported, ti.weights_bytes), QKC_OK);
        blob = imported;
    }
    assert_int_equal(qkc_dequantize(ctx, spec, blob, ti.weights_bytes, wd, ti.k), QKC_OK);
    {
        qkc_matmul_args ar = {a, ti.k, blob, ti.weights_bytes, NULL, cr, ti.n, m};
        qkc_matmul_args ak = {a, ti.k, NULL, 0, NULL, c, ti.n, m};
        c[m * ti.n] = 12345.0f;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &ar), QKC_OK);
        QKC_CASE_CHECK(PROG, name, qkc_file_run(ctx, file, index, "auto", &ak, NULL, NULL) == QKC_OK, "run: %s",
                       qkc_context_last_error(ctx));
        QKC_CASE_CHECK(PROG, name, c[m * ti.n] == 12345.0f, "the kernel wrote past C");
    }
    for (int64_t i = 0; i < m * ti.n; i++) {
        int64_t row = i / ti.n, col = i % ti.n;
        double d = (double)c[i] - (double)cr[i], cond = 0;
        for (int64_t t = 0; t < ti.k; t++)
            cond += fabs((double)a[row * ti.k + t] * (double)wd[col * ti.k + t]);
        err += d * d;
        ref += (double)cr[i] * (double)cr[i];
        QKC_CASE_CHECK(PROG, name, fabs(d) <= tol->cond_factor * sqrt((double)ti.k) * 0x1p-24 * cond,
                       "C[%lld][%lld] = %.9g, the reference %.9g", (long long)row, (long long)col, (double)c[i],
                       (double)cr[i]);
    }
    if (m * ti.n >= QKC_TOL_MIN_OUTPUTS)
        QKC_CASE_CHECK(PROG, name, err <= tol->max_nmse * ref, "nmse %.3e (bound %.1e)", err / ref, tol->max_nmse);
    free(a), free(c), free(cr), free(wd), free(imported);
    qkc_spec_destroy(spec);
}

/* A = the K×K identity with compute=f32 (operands exact; int8 compute
 * would turn each 1 into 127·(1/127) rounded): C[j][n] = W[n][j] exactly
 * (one product by 1, the rest zeros), so the kernel's decoding equals the
 * reference dequantizer. */
static void check_identity(qkc_context *ctx, qkc_file *file, int64_t index, const char *name)
{
    qkc_tensor_info ti;
    qkc_spec *spec = NULL;
    float *a, *c, *wd;
    void *blob;
    char text[512];
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_int_equal(qkc_file_spec(ctx, file, index, "a=f32 compute=f32 out=f32", &spec), QKC_OK);
    assert_int_equal(qkc_spec_print(spec, text, sizeof text, NULL), QKC_OK);
    a = calloc((size_t)(ti.k * ti.k), sizeof *a);
    c = malloc((size_t)(ti.k * ti.n) * sizeof *c);
    wd = malloc((size_t)(ti.n * ti.k) * sizeof *wd);
    blob = malloc(ti.weights_bytes);
    assert_true(a && c && wd && blob);
    for (int64_t i = 0; i < ti.k; i++)
        a[i * ti.k + i] = 1.0f;
    assert_int_equal(qkc_file_weights(ctx, file, index, blob, ti.weights_bytes), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, ti.weights_bytes, wd, ti.k), QKC_OK);
    {
        qkc_matmul_args ak = {a, ti.k, NULL, 0, NULL, c, ti.n, ti.k};
        QKC_CASE_CHECK(PROG, name, qkc_file_run(ctx, file, index, text, &ak, NULL, NULL) == QKC_OK, "run: %s",
                       qkc_context_last_error(ctx));
    }
    for (int64_t j = 0; j < ti.k; j++)
        for (int64_t n = 0; n < ti.n; n++)
            QKC_CASE_CHECK(PROG, name, c[j * ti.n + n] == wd[n * ti.k + j],
                           "kernel decodes W[%lld][%lld] as %.9g, the reference dequantizer %.9g", (long long)n,
                           (long long)j, (double)c[j * ti.n + n], (double)wd[n * ti.k + j]);
    free(a), free(c), free(wd), free(blob);
    qkc_spec_destroy(spec);
}

static void test_gguf_types(void **state)
{
    static const int64_t shapes[][2] = {{1001, 256}, {7, 512}};
    size_t count;
    const qkc_gguf_type_case *tc = qkc_gguf_type_cases(&count);
    qkc_context *ctx;
    int ran = 0;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < count; i++) {
        for (size_t s = 0; s < 2; s++) {
            int64_t n = shapes[s][0], k = shapes[s][1], index;
            uint64_t dims[2] = {(uint64_t)k, (uint64_t)n};
            char name[128];
            void *blob;
            size_t bytes;
            qkc_gguf_writer w;
            qkc_bytes out;
            qkc_file *file;
            snprintf(name, sizeof name, "gguf-kernel|%s|n=%lld|k=%lld", tc[i].name, (long long)n, (long long)k);
            if (!qkc_case_selected(name))
                continue;
            assert_int_equal(qkc_fixture_blob(ctx, tc[i].weights, n, k, name, &blob, &bytes), 0);
            qkc_gguf_init(&w);
            qkc_gguf_kv_str(&w, "general.architecture", "llama");
            qkc_gguf_add_tensor(&w, "blk.0.attn_q.weight", tc[i].ggml_type, 2, dims, blob, bytes);
            assert_int_equal(qkc_gguf_finish(&w, &out), 0);
            assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
            assert_int_equal(qkc_file_find(ctx, file, "blk.0.attn_q.weight", &index), QKC_OK);
            check_run(ctx, file, index, name, s == 0 ? 3 : 5);
            check_identity(ctx, file, index, name);
            ran++;
            qkc_file_close(file);
            qkc_bytes_free(&out);
            qkc_gguf_free(&w);
            free(blob);
        }
    }
    print_message("%d GGUF tensors run through kernels\n", ran);
    qkc_context_destroy(ctx);
}

static void run_fixture(qkc_context *ctx, qkc_ckpt_fixture *fx, const char *name, int gptq_version)
{
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = gptq_version};
    qkc_file *file;
    int64_t index;
    assert_int_equal(qkc_file_open_memory(ctx, fx->file.data, fx->file.len, &fo, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, fx->head, &index), QKC_OK);
    check_run(ctx, file, index, name, 4);
    check_identity(ctx, file, index, name);
    qkc_file_close(file);
}

static void test_safetensors_importers(void **state)
{
    qkc_context *ctx;
    qkc_ckpt_fixture fx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_case_selected("kernel|gptq4-actorder-v1")) {
        assert_int_equal(qkc_fixture_gptq(&fx, "l.q", 4, 301 / 8 * 8, 256, 64, 1, 0, 0, "kernel|gptq4-actorder-v1"), 0);
        run_fixture(ctx, &fx, "kernel|gptq4-actorder-v1", 0);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|gptq4-v2")) {
        assert_int_equal(qkc_fixture_gptq(&fx, "l.k", 4, 264, 512, 128, 0, 1, 1, "kernel|gptq4-v2"), 0);
        run_fixture(ctx, &fx, "kernel|gptq4-v2", 0);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|gptq3-actorder-v2")) {
        assert_int_equal(qkc_fixture_gptq(&fx, "l.v", 3, 96, 256, 32, 1, 1, 0, "kernel|gptq3-actorder-v2"), 0);
        run_fixture(ctx, &fx, "kernel|gptq3-actorder-v2", 2);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|awq")) {
        assert_int_equal(qkc_fixture_awq(&fx, "l.o", 520, 256, 128, "kernel|awq"), 0);
        run_fixture(ctx, &fx, "kernel|awq", 0);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|nf4")) {
        assert_int_equal(qkc_fixture_bnb(&fx, "l.up", 77, 256, 64, 0, "kernel|nf4"), 0);
        run_fixture(ctx, &fx, "kernel|nf4", 0);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|nf4-dq")) {
        assert_int_equal(qkc_fixture_bnb(&fx, "l.down", 333, 256, 64, 1, "kernel|nf4-dq"), 0);
        run_fixture(ctx, &fx, "kernel|nf4-dq", 0);
        qkc_fixture_free(&fx);
    }
    if (qkc_case_selected("kernel|fp8-block")) {
        /* DeepSeek-V3's FP8 form: E4M3 codes, F32 scales per 128 x 128
         * block, N and K off the block */
        enum { N = 200, K = 300 };
        static uint8_t codes[N * K];
        static float scales[2 * 3];
        int64_t ws[2] = {N, K}, ss[2] = {2, 3}, index;
        qkc_rng r = qkc_rng_from_name("kernel|fp8-block");
        qkc_st_writer sw;
        qkc_bytes out = {0};
        qkc_file *file = NULL;
        for (int i = 0; i < N * K; i++) {
            codes[i] = (uint8_t)(qkc_rng_u64(&r) >> 24);
            if ((codes[i] & 0x7f) == 0x7f)
                codes[i] ^= 0x40; /* not NaN */
        }
        for (int i = 0; i < 6; i++)
            scales[i] = qkc_rng_uniform(&r, 1e-3f, 2e-3f);
        qkc_st_init(&sw);
        assert_int_equal(qkc_st_add(&sw, "l.gate.weight", "F8_E4M3", 2, ws, codes, sizeof codes), 0);
        assert_int_equal(qkc_st_add(&sw, "l.gate.weight_scale_inv", "F32", 2, ss, scales, sizeof scales), 0);
        assert_int_equal(qkc_st_finish(&sw, &out), 0);
        assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
        assert_int_equal(qkc_file_find(ctx, file, "l.gate", &index), QKC_OK);
        check_run(ctx, file, index, "kernel|fp8-block", 7);
        check_run(ctx, file, index, "kernel|fp8-block", 40);
        qkc_file_close(file);
        qkc_bytes_free(&out);
    }
    qkc_context_destroy(ctx);
}

/* An explicit spec may change the compute type; one that does not
 * describe the tensor is refused; a tensor that does not run says why. */
static void test_spec_checks(void **state)
{
    qkc_context *ctx;
    qkc_gguf_writer w;
    qkc_bytes out;
    qkc_file *file;
    void *blob;
    size_t bytes;
    uint64_t dims[2] = {256, 16};
    float a[256], c[16];
    qkc_matmul_args args = {a, 256, NULL, 0, NULL, c, 16, 1};
    (void)state;
    for (int i = 0; i < 256; i++)
        a[i] = (float)(i % 7) - 3.0f;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_fixture_blob(ctx, "w=q4_k", 16, 256, "spec-checks", &blob, &bytes), 0);
    qkc_gguf_init(&w);
    qkc_gguf_add_tensor(&w, "w", 12, 2, dims, blob, bytes);
    qkc_gguf_add_tensor(&w, "norm", 0, 1, dims, blob, 1024);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_run(ctx, file, 0, "matmul n=16 k=256 w=q4_k compute=int8 act=relu", &args, NULL, NULL),
                     QKC_OK);
    for (int i = 0; i < 16; i++)
        assert_true(c[i] >= 0.0f);
    assert_int_equal(qkc_file_run(ctx, file, 0, "matmul n=16 k=256 w=q4_0", &args, NULL, NULL),
                     QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "does not describe tensor 'w', which is n=16 k=256 w=q4_k"));
    assert_int_equal(qkc_file_run(ctx, file, 1, NULL, &args, NULL, NULL), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "'norm' (F32) does not run in qkc: 1-D tensor"));
    assert_int_equal(qkc_file_run(ctx, file, 2, NULL, &args, NULL, NULL), QKC_ERR_INVALID_ARGUMENT);
    qkc_file_close(file);
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
    free(blob);
    qkc_context_destroy(ctx);
}

/* A MoE expert stack (a 3-D GGUF tensor [E, N, K]): every expert runs in
 * place through qkc_file_run_expert, within the kernel tolerance of the
 * reference on that expert's blob; a grouped run of the packed experts,
 * each with its own rows (one with none), gives the bits of separate runs. */
static void test_expert_stack(void **state)
{
    enum { E = 3, N = 40, K = 256 };
    static const int64_t rows[E] = {5, 0, 33};
    qkc_context *ctx;
    qkc_gguf_writer w;
    qkc_bytes out = {0};
    qkc_file *file;
    qkc_tensor_info ti;
    qkc_spec *spec;
    qkc_kernel *kern;
    uint8_t *stack = NULL;
    size_t eb = 0, pb = 0;
    int64_t index, count = 0;
    uint64_t dims[3] = {K, N, E};
    void *packed[E];
    float *a[E], *c1[E], *c2[E];
    qkc_matmul_args groups[E];
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    /* E different experts, back to back */
    for (int e = 0; e < E; e++) {
        void *blob;
        size_t bytes;
        char seed[32];
        snprintf(seed, sizeof seed, "expert %d", e);
        assert_int_equal(qkc_fixture_blob(ctx, "w=q4_0", N, K, seed, &blob, &bytes), 0);
        if (!e) {
            eb = bytes;
            stack = malloc(E * eb);
            assert_non_null(stack);
        }
        memcpy(stack + e * eb, blob, eb);
        free(blob);
    }
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "qwen2moe");
    assert_int_equal(qkc_gguf_add_tensor(&w, "blk.0.ffn_up_exps.weight", 2, 3, dims, stack, E * eb), 0);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, "blk.0.ffn_up_exps.weight", &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_true(ti.runnable);
    assert_int_equal(ti.weights_bytes, eb);
    assert_int_equal(qkc_file_expert(ctx, file, index, 0, NULL, &count), QKC_OK);
    assert_int_equal(count, E);
    {
        qkc_matmul_args ak = {NULL, K, NULL, 0, NULL, NULL, N, 1};
        assert_int_equal(qkc_file_run(ctx, file, index, "auto", &ak, NULL, NULL), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "qkc_file_run_expert"));
    }
    assert_int_equal(qkc_file_spec(ctx, file, index, "a=f32 out=f32", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    assert_int_equal(qkc_kernel_packed_bytes(kern, &pb), QKC_OK);
    for (int e = 0; e < E; e++) {
        const void *blob;
        char name[64];
        qkc_rng r;
        int64_t m = rows[e] ? rows[e] : 1;
        snprintf(name, sizeof name, "expert stack|e=%d", e);
        r = qkc_rng_from_name(name);
        assert_int_equal(qkc_file_expert(ctx, file, index, e, &blob, NULL), QKC_OK);
        assert_memory_equal(blob, stack + e * eb, eb);
        a[e] = malloc((size_t)(m * K) * sizeof *a[e]);
        c1[e] = malloc((size_t)(m * N) * sizeof *c1[e]);
        c2[e] = malloc((size_t)(m * N) * sizeof *c2[e]);
        packed[e] = malloc(pb);
        assert_true(a[e] && c1[e] && c2[e] && packed[e]);
        for (int64_t i = 0; i < m * K; i++)
            a[e][i] = qkc_rng_normal(&r);
        {
            /* in place through the file, against the reference */
            qkc_matmul_args ak = {a[e], K, NULL, 0, NULL, c1[e], N, m};
            qkc_matmul_args ar = {a[e], K, blob, eb, NULL, c2[e], N, m};
            const qkc_tol_kernel *tol = qkc_tol_kernel_for("int8", "f32");
            double err = 0, ref = 0;
            QKC_CASE_CHECK(PROG, name, qkc_file_run_expert(ctx, file, index, e, "auto", &ak, NULL, NULL) == QKC_OK,
                           "run: %s", qkc_context_last_error(ctx));
            assert_int_equal(qkc_reference_matmul(ctx, spec, &ar), QKC_OK);
            for (int64_t i = 0; i < m * N; i++) {
                double d = (double)c1[e][i] - (double)c2[e][i];
                err += d * d;
                ref += (double)c2[e][i] * (double)c2[e][i];
            }
            QKC_CASE_CHECK(PROG, name, err <= tol->max_nmse * ref, "nmse %.3e (bound %.1e)", err / ref,
                           tol->max_nmse);
        }
        assert_int_equal(qkc_weights_pack(ctx, kern, blob, eb, packed[e], pb), QKC_OK);
        groups[e] = (qkc_matmul_args){a[e], K, packed[e], pb, NULL, c2[e], N, rows[e]};
    }
    /* grouped: the same bits as one run per expert */
    assert_int_equal(qkc_kernel_run_grouped(ctx, kern, groups, E, NULL), QKC_OK);
    for (int e = 0; e < E; e++) {
        if (!rows[e])
            continue;
        qkc_matmul_args one = groups[e];
        one.c = c1[e];
        assert_int_equal(qkc_kernel_run(ctx, kern, &one, NULL), QKC_OK);
        if (memcmp(c1[e], c2[e], (size_t)(rows[e] * N) * sizeof(float)))
            fail_msg("expert %d: the grouped run differs from a run of its own", e);
    }
    groups[2].weights_bytes = 1;
    assert_int_equal(qkc_kernel_run_grouped(ctx, kern, groups, E, NULL), QKC_ERR_BUFFER_TOO_SMALL);
    assert_non_null(strstr(qkc_context_last_error(ctx), "group 2"));
    for (int e = 0; e < E; e++)
        free(a[e]), free(c1[e]), free(c2[e]), free(packed[e]);
    free(stack);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_file_close(file);
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_checks),
        cmocka_unit_test(test_gguf_types),
        cmocka_unit_test(test_safetensors_importers),
        cmocka_unit_test(test_expert_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
