/*
 * rotate=hadamard:B (QuaRot/HIGGS-style rotated weights): the spec's text
 * and verifier; the rotation itself (R·R = I, one-hot rows give ±1/sqrt(B));
 * JIT kernels against the reference, which rotates A by the same function,
 * over formats, compute types, block sizes, M and both ISA levels of the
 * machine (qkc_test_isa_levels); and
 * the point of it all: weights stored as W·R under a rotated spec give A·Wᵀ,
 * the unrotated product.
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
#include "targets/target.h"
#include "util/testutil.h"

static void test_text_and_verifier(void **state)
{
    (void)state;
    qkc_context *ctx;
    char buf[256];
    static const qkc_test_bad_spec bad[] = {
        {"matmul n=8 k=256 w=q4_0 rotate=hadamard:48", "1:32: rotate=hadamard:48: the block is a power of two",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=96 w=q8_0 rotate=hadamard:64", "1:31: rotate=hadamard:64: the block must divide k=96",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 rotate=hadamard:1", "the block is a power of two from 2", QKC_ERR_INVALID_SPEC},
        {"matmul n=8 k=256 w=q4_0 rotate=hadamard:131072", "expected hadamard:B", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=q4_0 rotate=hadamard:x", "expected hadamard:B", QKC_ERR_PARSE},
        {"matmul n=8 k=256 w=q4_0 rotate=givens", "rotate=givens: expected none or hadamard:B", QKC_ERR_PARSE},
    };
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_test_canonical(ctx, "matmul k=512 n=8 rotate=hadamard:128 compute=int8 w=q4_0",
                           "matmul n=8 k=512 a=f32 w=q4_0 rotate=hadamard:128 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    if (qkc_test_canonical(ctx, "matmul n=8 k=512 w=q4_0 rotate=none",
                           "matmul n=8 k=512 a=f32 w=q4_0 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    {
        char msg[512];
        if (qkc_test_refused(ctx, bad, sizeof bad / sizeof bad[0], msg, sizeof msg))
            fail_msg("%s", msg);
    }
    qkc_context_destroy(ctx);
}

static void test_rotation_is_orthogonal(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec, *plain;
    enum { K = 256 };
    float x[2 * K], y[K];
    qkc_rng r = qkc_rng_from_name("rotation");
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=1 k=256 w=f32 rotate=hadamard:64", &spec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=1 k=256 w=f32", &plain), QKC_OK);
    /* a one-hot row becomes a column of H/8: every entry +-1/8 in its block, exactly */
    memset(x, 0, sizeof x);
    x[70] = 1.0f;
    assert_int_equal(qkc_rotate_rows(ctx, spec, x, 1, K), QKC_OK);
    for (int i = 0; i < K; i++) {
        float want = (i >= 64 && i < 128) ? 0.125f : 0.0f;
        if (fabsf(x[i]) != want)
            fail_msg("entry %d of the rotated one-hot is %g, expected +-%g", i, x[i], want);
    }
    /* R is symmetric and orthogonal: rotating twice gives the row back */
    for (int i = 0; i < K; i++)
        x[i] = y[i] = qkc_rng_normal(&r);
    for (int i = 0; i < K; i++)
        x[K + i] = x[i];
    assert_int_equal(qkc_rotate_rows(ctx, spec, x, 2, K), QKC_OK);
    assert_memory_equal(x, x + K, K * sizeof *x); /* rows are independent */
    assert_int_equal(qkc_rotate_rows(ctx, spec, x, 1, K), QKC_OK);
    for (int i = 0; i < K; i++)
        assert_true(fabsf(x[i] - y[i]) <= 1e-5f * (1.0f + fabsf(y[i])));
    assert_int_equal(qkc_rotate_rows(ctx, plain, x, 1, K), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_rotate_rows(ctx, spec, x, 1, K - 1), QKC_ERR_INVALID_ARGUMENT);
    qkc_spec_destroy(spec);
    qkc_spec_destroy(plain);
    qkc_context_destroy(ctx);
}

/* Kernels against the reference on rotated specs. */
static void test_kernels_match_reference(void **state)
{
    (void)state;
    static const char *const formats[] = {
        "w=q4_0", "w=q8_0 compute=int8", "w=nf4_bnb:dq", "w=gptq:actorder group=64 out=bf16",
        "w=int4 group=32 scale=f16 zero=int a=bf16 bias=f32 act=silu", "w=q4_k compute=int8", "w=f16 compute=bf16",
        "w=iq4_nl compute=int8",
    };
    static const int blocks[] = {2, 32, 128, 512};
    static const int64_t ms[] = {1, 5};
    const char *targets[2], *why;
    int ntargets = qkc_test_isa_levels(targets, &why), failures = 0, ran = 0;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 2};
    if (!ntargets) {
        print_message("skipped: %s\n", why);
        return;
    }
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            /* rotate each format by every block, alternating the targets */
            const char *target = targets[(f + b) % (size_t)ntargets];
            char text[256], name[320], msg[1024];
            qkc_spec *spec;
            qkc_kernel *kern;
            qkc_compile_options opt = {.struct_size = sizeof opt, .target = target};
            snprintf(text, sizeof text, "matmul n=%d k=512 %s rotate=hadamard:%d", 32 + 8 * (int)(f % 3), formats[f], blocks[b]);
            if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                fail_msg("%s: %s", text, qkc_context_last_error(ctx));
            if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                fail_msg("%s: %s", text, qkc_context_last_error(ctx));
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                snprintf(name, sizeof name, "%s|%s|m=%lld", target, text, (long long)ms[mi]);
                if (!qkc_case_selected(name))
                    continue;
                ran++;
                if (qkc_test_kernel_case(ctx, spec, kern, name, ms[mi], 0, msg, sizeof msg)) {
                    print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_rotate\n", msg, name);
                    failures++;
                }
            }
            qkc_kernel_destroy(kern);
            qkc_spec_destroy(spec);
        }
    print_message("%d rotated cases against the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* Weights stored as W·R under rotate=hadamard:B compute A·Wᵀ. */
static void test_rotated_weights_give_the_plain_product(void **state)
{
    (void)state;
    enum { N = 24, K = 384, M = 3 };
    qkc_context *ctx;
    qkc_spec *rot, *plain;
    qkc_kernel *kern;
    size_t wbytes, pbytes;
    float *w = malloc(N * K * sizeof *w), *wr = malloc(N * K * sizeof *wr), *a = malloc(M * K * sizeof *a);
    float c[M * N], ref[M * N];
    unsigned char *blob, *packed;
    double err = 0, sum = 0;
    qkc_rng r = qkc_rng_from_name("rotated weights");
    assert_true(w && wr && a);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=24 k=384 w=f32 rotate=hadamard:128", &rot), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=24 k=384 w=f32", &plain), QKC_OK);
    for (int i = 0; i < N * K; i++)
        w[i] = wr[i] = qkc_rng_normal(&r) * 0.05f;
    for (int i = 0; i < M * K; i++)
        a[i] = qkc_rng_normal(&r);
    assert_int_equal(qkc_rotate_rows(ctx, rot, wr, N, K), QKC_OK);
    assert_int_equal(qkc_weights_bytes(ctx, rot, &wbytes), QKC_OK);
    blob = malloc(wbytes);
    assert_int_equal(qkc_quantize(ctx, rot, wr, K, blob, wbytes), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, rot, NULL, &kern), QKC_OK);
    assert_int_equal(qkc_kernel_packed_bytes(kern, &pbytes), QKC_OK);
    packed = malloc(pbytes);
    assert_int_equal(qkc_weights_pack(ctx, kern, blob, wbytes, packed, pbytes), QKC_OK);
    {
        qkc_matmul_args ka = {a, K, packed, pbytes, NULL, c, N, M};
        assert_int_equal(qkc_kernel_run(ctx, kern, &ka, NULL), QKC_OK);
    }
    {
        /* the plain product, from the unrotated weights */
        size_t pb;
        unsigned char *pblob;
        assert_int_equal(qkc_weights_bytes(ctx, plain, &pb), QKC_OK);
        pblob = malloc(pb);
        assert_int_equal(qkc_quantize(ctx, plain, w, K, pblob, pb), QKC_OK);
        qkc_matmul_args ra = {a, K, pblob, pb, NULL, ref, N, M};
        assert_int_equal(qkc_reference_matmul(ctx, plain, &ra), QKC_OK);
        free(pblob);
    }
    for (int i = 0; i < M * N; i++) {
        err += ((double)c[i] - ref[i]) * ((double)c[i] - ref[i]);
        sum += (double)ref[i] * ref[i];
    }
    /* only the f32 rounding of the two rotations separates them */
    if (!(err <= 1e-10 * sum))
        fail_msg("rotated kernel vs plain product: nmse %.3e", err / sum);
    print_message("(A·R)·(W·R)^T vs A·W^T: nmse %.2e\n", err / sum);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(rot);
    qkc_spec_destroy(plain);
    qkc_context_destroy(ctx);
    free(w), free(wr), free(a), free(blob), free(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_verifier),
        cmocka_unit_test(test_rotation_is_orthogonal),
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_rotated_weights_give_the_plain_product),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
