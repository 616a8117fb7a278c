/*
 * w=mixed (row blocks of different integer widths in one tensor): the
 * spec's text and verifier; the reference equal to dequantizing each block
 * with the planar codec of its own width; the packed layout (each block in
 * its own kernel layout); and one JIT kernel per spec against the
 * reference over block maps, formats, compute types, M, thread splits of N
 * whose work items cross block boundaries, and both ISA levels of the
 * machine (qkc_test_isa_levels: AVX2 and AVX-512, or NEON and dotprod).
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
        {"matmul n=250 k=128 w=mixed bits=4x96,8x32,2x128", "1:33: bits=4x96,8x32,2x128: the row blocks hold 256 rows; they must sum to n=250",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed bits=4x96,7x32,2x128", "1:38: bits=: a 7-bit block; w=mixed blocks are 2, 3, 4, 5, 6 or 8 bits",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed bits=4x96,8y32", "1:39: bits=4x96,8y32: expected BITSxROWS", QKC_ERR_PARSE},
        {"matmul n=256 k=128 w=mixed bits=4x96,", "1:37: bits=: a trailing ','", QKC_ERR_PARSE},
        {"matmul n=256 k=128 w=mixed bits=x96", "1:33: bits=x96: expected BITSxROWS", QKC_ERR_PARSE},
        {"matmul n=256 k=128 w=mixed bits=4x0,8x256", "1:35: bits=: a block of 0 rows", QKC_ERR_INVALID_SPEC},
        {"matmul n=16 k=128 w=mixed bits=8x8,2x8,4x*", "1:42: bits=8x8,2x8,4x*: the blocks before x* already hold 16",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed", "1:22: w=mixed needs bits=", QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=int4 bits=4x256", "1:32: bits= gives the row blocks of w=mixed; w=int4 has one width",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed bits=4x256 outliers=sparse", "1:48: w=mixed does not take outliers=",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed bits=4x256 zero=float scale=e8m0", "1:44: zero=float stores minima in the scale dtype",
         QKC_ERR_INVALID_SPEC},
        {"matmul n=256 k=128 w=mixed:2 bits=4x256", "mixed", QKC_ERR_PARSE},
        {"matmul n=17 k=128 w=mixed bits=2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1,2x1",
         "1:96: bits=: at most 16 row blocks", QKC_ERR_INVALID_SPEC},
    };
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_test_canonical(ctx, "matmul zero=int w=mixed k=128 bits=4x96,8x32,2x128 n=256 group=32 scale=f16",
                           "matmul n=256 k=128 a=f32 w=mixed bits=4x96,8x32,2x128 group=32 scale=f16 zero=int out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    /* the last block may take the rest; the canonical form spells it out */
    if (qkc_test_canonical(ctx, "matmul n=100 k=64 w=mixed bits=8x10,3x*",
                           "matmul n=100 k=64 a=f32 w=mixed bits=8x10,3x90 group=channel scale=f32 out=f32", buf, sizeof buf))
        fail_msg("%s", buf);
    {
        char msg[512];
        if (qkc_test_refused(ctx, bad, sizeof bad / sizeof bad[0], msg, sizeof msg))
            fail_msg("%s", msg);
    }
    qkc_context_destroy(ctx);
}

/* The mixed blob is the blocks' planar blobs back to back (64-byte aligned),
 * and dequantizes to each block's own dequantization. */
static void test_reference_is_per_block(void **state)
{
    (void)state;
    static const char *const formats[] = {"group=32 scale=f16 zero=int", "group=channel", "group=64 scale=bf16",
                                          "group=16 scale=f16 zero=float"};
    static const int bits[3] = {4, 8, 2};
    static const int rows[3] = {24, 8, 33};
    enum { N = 65, K = 192 };
    qkc_context *ctx;
    float *w = malloc(sizeof(float) * N * K), *wd = malloc(sizeof(float) * N * K), *wb = malloc(sizeof(float) * N * K);
    qkc_rng r = qkc_rng_from_name("mixed reference");
    for (int i = 0; i < N * K; i++)
        w[i] = qkc_rng_normal(&r);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        char text[256];
        qkc_spec *spec;
        size_t bytes;
        uint8_t *blob;
        size_t off = 0;
        int r0 = 0;
        snprintf(text, sizeof text, "matmul n=%d k=%d w=mixed bits=4x24,8x8,2x33 %s", N, K, formats[f]);
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
            fail_msg("%s: %s", text, qkc_context_last_error(ctx));
        assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
        blob = calloc(1, bytes);
        assert_int_equal(qkc_quantize(ctx, spec, w, K, blob, bytes), QKC_OK);
        assert_int_equal(qkc_dequantize(ctx, spec, blob, bytes, wd, K), QKC_OK);
        for (int b = 0; b < 3; b++) {
            char bt[256];
            qkc_spec *bs;
            size_t bb;
            uint8_t *own;
            const char *rest = strstr(text, " group=");
            snprintf(bt, sizeof bt, "matmul n=%d k=%d w=int%d%s", rows[b], K, bits[b], rest ? rest : "");
            if (qkc_spec_parse(ctx, bt, &bs) != QKC_OK)
                fail_msg("%s: %s", bt, qkc_context_last_error(ctx));
            assert_int_equal(qkc_weights_bytes(ctx, bs, &bb), QKC_OK);
            off = (off + 63) / 64 * 64;
            assert_true(off + bb <= bytes);
            /* the block's bytes are what quantizing its rows alone gives */
            own = calloc(1, bb);
            assert_int_equal(qkc_quantize(ctx, bs, w + (size_t)r0 * K, K, own, bb), QKC_OK);
            if (memcmp(own, blob + off, bb) != 0)
                fail_msg("%s: block %d bytes differ from %s", text, b, bt);
            assert_int_equal(qkc_dequantize(ctx, bs, blob + off, bb, wb, K), QKC_OK);
            if (memcmp(wb, wd + (size_t)r0 * K, sizeof(float) * (size_t)rows[b] * K) != 0)
                fail_msg("%s: block %d dequantizes differently from %s", text, b, bt);
            free(own);
            qkc_spec_destroy(bs);
            off += bb;
            r0 += rows[b];
        }
        assert_int_equal((size_t)(off + 63) / 64 * 64 >= bytes, 1);
        free(blob);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    free(w), free(wd), free(wb);
}

/* Kernels against the reference: maps, formats, compute types, M, both
 * ISA levels, and thread work items (n_block) that cross block edges. */
static void test_kernels_match_reference(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "n=256 k=128 w=mixed bits=4x96,8x32,2x128 group=32 scale=f16 zero=int",
        "n=61 k=250 w=mixed bits=8x5,4x17,3x9,6x13,5x*",
        "n=40 k=512 w=mixed bits=2x3,8x30,4x* group=64 scale=f16 compute=int8",
        "n=50 k=256 w=mixed bits=4x25,8x* group=32 scale=bf16 compute=bf16 bias=f32 act=silu out=bf16",
        "n=33 k=96 w=mixed bits=8x1,4x31,2x1 group=48 zero=int a=f16 compute=f16",
        "n=64 k=4096 w=mixed bits=4x32,8x16,4x* group=128 scale=f16 zero=int",
    };
    static const int64_t ms[] = {1, 3, 8, 33};
    static const char *const schedules[] = {NULL, "tm=2 tn=4 nb=7", "tm=4 tn=3 nb=5", "tm=1 tn=1 nb=3"};
    static const int threads[] = {0, 3, 2, 4};
    const char *targets[2], *why;
    int ntargets = qkc_test_isa_levels(targets, &why), failures = 0, ran = 0;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 4};
    if (!ntargets) {
        print_message("skipped: %s\n", why);
        return;
    }
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof specs / sizeof specs[0]; f++)
        for (int t = 0; t < ntargets; t++)
            for (size_t s = 0; s < sizeof schedules / sizeof schedules[0]; s++) {
                char text[256], name[400], msg[1024];
                qkc_spec *spec;
                qkc_kernel *kern;
                qkc_schedule sch;
                qkc_compile_options opt = {.struct_size = sizeof opt, .target = targets[t]};
                snprintf(text, sizeof text, "matmul %s", specs[f]);
                if (schedules[s]) {
                    assert_int_equal(qkc_schedule_parse(ctx, schedules[s], &sch), QKC_OK);
                    opt.schedule = &sch;
                }
                if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                    fail_msg("%s: %s", text, qkc_context_last_error(ctx));
                if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                    fail_msg("%s [%s]: %s", text, schedules[s] ? schedules[s] : "default", qkc_context_last_error(ctx));
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                    snprintf(name, sizeof name, "%s|%s|%s|m=%lld|t=%d", targets[t], text,
                             schedules[s] ? schedules[s] : "default", (long long)ms[mi], threads[s]);
                    if (!qkc_case_selected(name))
                        continue;
                    ran++;
                    if (qkc_test_kernel_case(ctx, spec, kern, name, ms[mi], threads[s], msg, sizeof msg)) {
                        print_error("%s\n  rerun: QKC_CASE='%s' ./test_cg_mixed\n", msg, name);
                        failures++;
                    }
                }
                qkc_kernel_destroy(kern);
                qkc_spec_destroy(spec);
            }
    print_message("%d mixed cases against the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_int_equal(failures, 0);
}

/* One kernel: the compiled function holds one loop per block, not a
 * fallback to dense f32. */
static void test_one_kernel_not_fallback(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern;
    qkc_kernel_info info;
    size_t packed = 0, blob = 0;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=256 k=1024 w=mixed bits=4x128,8x128 group=32 scale=f16", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    assert_int_equal(qkc_kernel_query(kern, &info), QKC_OK);
    if (!strstr(info.layout, "mixed rows 4x128,8x128"))
        fail_msg("layout: %s", info.layout);
    assert_int_equal(qkc_weights_bytes(ctx, spec, &blob), QKC_OK);
    assert_int_equal(qkc_kernel_packed_bytes(kern, &packed), QKC_OK);
    /* 4-bit and 8-bit chunk records, not 32-bit dense values */
    if (packed > blob + blob / 4)
        fail_msg("packed %zu bytes for a %zu-byte blob: a dense fallback?", packed, blob);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* Other targets: AArch64 shares the CPU lowering (its code is emitted
 * here; it runs under qemu in aarch64_test.sh); GPU kernels refuse w=mixed
 * with a message. */
static void test_other_targets(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    size_t need = 0;
    char *buf;
    qkc_compile_options arm = {sizeof arm, "aarch64-neon-dotprod", NULL, 0};
    qkc_compile_options gpu = {sizeof gpu, "nvptx-sm80", NULL, 0};
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=48 k=256 w=mixed bits=4x16,8x16,2x16 group=32 scale=f16 zero=int",
                                    &spec),
                     QKC_OK);
    assert_int_equal(qkc_kernel_emit(ctx, spec, &arm, "asm", NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
    buf = malloc(need + 1);
    assert_int_equal(qkc_kernel_emit(ctx, spec, &arm, "asm", buf, need + 1, NULL), QKC_OK);
    assert_non_null(strstr(buf, "qkc_kernel"));
    free(buf);
    assert_int_equal(qkc_kernel_emit(ctx, spec, &gpu, "ptx", NULL, 0, &need), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "w=mixed: GPU (nvptx) kernels do not take mixed row blocks"));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_verifier),
        cmocka_unit_test(test_reference_is_per_block),
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_one_kernel_not_fallback),
        cmocka_unit_test(test_other_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
