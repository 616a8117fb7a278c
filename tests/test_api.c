/*
 * The public API's contracts: contexts and allocators, status strings,
 * versions, spec printing and queries, argument errors with messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qkc/qkc.h"

typedef struct counting {
    long allocs, frees;
} counting;

static void *count_alloc(size_t bytes, void *user)
{
    ((counting *)user)->allocs++;
    return malloc(bytes);
}

static void count_free(void *p, void *user)
{
    if (p)
        ((counting *)user)->frees++;
    free(p);
}

static void test_status_and_version(void **state)
{
    (void)state;
    const char *seen[16] = {0};
    for (int s = QKC_OK; s <= QKC_ERR_INTERNAL; s++) {
        const char *str = qkc_status_str((qkc_status)s);
        assert_non_null(str);
        assert_true(strlen(str) > 0);
        for (int t = 0; t < s; t++)
            assert_string_not_equal(str, seen[t]);
        seen[s] = str;
    }
    assert_string_equal(qkc_status_str((qkc_status)999), "unknown status");
    assert_int_equal(qkc_version(), QKC_VERSION);
    {
        char want[32];
        snprintf(want, sizeof want, "%d.%d.%d", QKC_VERSION_MAJOR, QKC_VERSION_MINOR, QKC_VERSION_PATCH);
        assert_string_equal(qkc_version_string(), want);
    }
}

static void test_context_and_allocator(void **state)
{
    (void)state;
    counting c = {0, 0};
    qkc_allocator a = {count_alloc, count_free, &c};
    qkc_context_options opt = {.struct_size = sizeof opt, .allocator = &a};
    qkc_context *ctx = NULL;
    qkc_spec *spec = NULL;
    char buf[8];

    qkc_context_destroy(NULL);
    qkc_spec_destroy(NULL);
    assert_int_equal(qkc_context_create(NULL, NULL), QKC_ERR_INVALID_ARGUMENT);
    {
        qkc_allocator half = {count_alloc, NULL, &c};
        qkc_context_options bad = {.struct_size = sizeof bad, .allocator = &half};
        assert_int_equal(qkc_context_create(&bad, &ctx), QKC_ERR_INVALID_ARGUMENT);
        assert_null(ctx);
    }
    assert_int_equal(qkc_context_create(&opt, &ctx), QKC_OK);
    assert_string_equal(qkc_context_last_error(ctx), "");
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=64 w=q8_0", &spec), QKC_OK);
    assert_true(c.allocs >= 2); /* context and spec came from the hook */
    qkc_spec_destroy(spec);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=64 w=q8_0 act=tanh", &spec), QKC_ERR_PARSE);
    assert_null(spec);
    assert_non_null(strstr(qkc_context_last_error(ctx), "act=tanh"));
    /* copy_error truncates and reports the full length */
    assert_int_equal(qkc_context_copy_error(ctx, buf, sizeof buf), strlen(qkc_context_last_error(ctx)));
    assert_int_equal(strlen(buf), sizeof buf - 1);
    qkc_context_destroy(ctx);
    assert_int_equal(c.allocs, c.frees);
}

static void test_spec_print_and_query(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_spec_info info;
    size_t needed = 0, bytes = 0;
    char small[10], big[256];
    const char *text = "matmul m=8 n=256 k=512 a=bf16 w=q4_k compute=f32 bias=f32 act=gelu out=f16";
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_spec_print(spec, NULL, 0, &needed), QKC_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(qkc_spec_print(spec, small, sizeof small, NULL), QKC_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(qkc_spec_print(spec, big, sizeof big, NULL), QKC_OK);
    assert_int_equal(strlen(big), needed);
    /* w=q4_k computes in int8 by default: an explicit compute=f32 stays */
    assert_string_equal(big, "matmul m=8 n=256 k=512 a=bf16 w=q4_k compute=f32 bias=f32 act=gelu out=f16");
    assert_int_equal(qkc_spec_query(spec, &info), QKC_OK);
    assert_int_equal(info.m, 8);
    assert_int_equal(info.n, 256);
    assert_int_equal(info.k, 512);
    assert_string_equal(info.a_type, "bf16");
    assert_string_equal(info.weight_format, "q4_k");
    assert_string_equal(info.compute_type, "f32");
    assert_string_equal(info.out_type, "f16");
    assert_string_equal(info.activation, "gelu");
    assert_int_equal(info.has_bias, 1);
    assert_int_equal(info.weight_bytes, 256 * 2 * 144); /* two q4_k blocks per row */
    assert_true(info.bits_per_weight == 4.5);
    assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
    assert_int_equal(bytes, info.weight_bytes);
    qkc_spec_destroy(spec);
    /* without compute=, the preset's default: int8, and not printed */
    assert_int_equal(qkc_spec_parse(ctx, "matmul m=8 n=256 k=512 a=bf16 w=q4_k bias=f32 act=gelu out=f16", &spec),
                     QKC_OK);
    assert_int_equal(qkc_spec_query(spec, &info), QKC_OK);
    assert_string_equal(info.compute_type, "int8");
    assert_int_equal(qkc_spec_print(spec, big, sizeof big, NULL), QKC_OK);
    assert_string_equal(big, "matmul m=8 n=256 k=512 a=bf16 w=q4_k bias=f32 act=gelu out=f16");
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

static void test_argument_errors(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    size_t bytes;
    float w[64 * 64] = {0}, c[64];
    unsigned char blob[8];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, NULL, &spec), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=64 w=int8 group=32", &spec), QKC_OK);
    assert_int_equal(qkc_weights_bytes(ctx, spec, &bytes), QKC_OK);
    assert_int_equal(qkc_quantize(ctx, spec, w, 64, blob, sizeof blob), QKC_ERR_BUFFER_TOO_SMALL);
    assert_non_null(strstr(qkc_context_last_error(ctx), "dst holds 8 bytes"));
    assert_int_equal(qkc_quantize(ctx, spec, w, 32, blob, sizeof blob), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "ldw=32 is less than k=64"));
    assert_int_equal(qkc_dequantize(ctx, spec, blob, sizeof blob, w, 64), QKC_ERR_BUFFER_TOO_SMALL);
    {
        unsigned char *full = calloc(1, bytes);
        qkc_matmul_args args = {w, 64, full, bytes, NULL, c, 64, 1};
        w[5] = 1.0f / 0.0f;
        assert_int_equal(qkc_quantize(ctx, spec, w, 64, full, bytes), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "weight (0, 5) is not finite"));
        w[5] = 0.0f;
        args.m = 0;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_INVALID_ARGUMENT);
        args.m = 1;
        args.ldc = 3;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "ldc=3"));
        args.ldc = 64;
        args.bias = c;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "bias given"));
        args.bias = NULL;
        args.weights_bytes = 10;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_BUFFER_TOO_SMALL);
        args.weights_bytes = bytes;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_OK);
        free(full);
    }
    qkc_spec_destroy(spec);
    assert_int_equal(qkc_spec_parse(ctx, "matmul m=4 n=64 k=64 w=int8 bias=f32", &spec), QKC_OK);
    {
        qkc_matmul_args args = {w, 64, blob, sizeof blob, NULL, c, 64, 2};
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "fixes m=4"));
        args.m = 4;
        assert_int_equal(qkc_reference_matmul(ctx, spec, &args), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "bias is NULL"));
    }
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

static void test_schedule_text(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_schedule s, t;
    char buf[128];
    static const char *const bad[] = {"tm", "tm=", "tm=x", "tm=1x", "tile=4", "tm=-1", "tm=1 tm=2", "nb=99999999"};
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_schedule_parse(ctx, "  tm=2 tn=3,ku=2 vec=256 pf=4 nb=16 ", &s), QKC_OK);
    assert_int_equal(s.tile_m, 2);
    assert_int_equal(s.tile_n, 3);
    assert_int_equal(s.k_unroll, 2);
    assert_int_equal(s.vector_bits, 256);
    assert_int_equal(s.prefetch, 4);
    assert_int_equal(s.n_block, 16);
    assert_int_equal(qkc_schedule_print(&s, buf, sizeof buf), strlen("tm=2 tn=3 ku=2 vec=256 pf=4 nb=16"));
    assert_string_equal(buf, "tm=2 tn=3 ku=2 vec=256 pf=4 nb=16");
    assert_int_equal(qkc_schedule_parse(ctx, buf, &t), QKC_OK);
    assert_memory_equal(&s, &t, sizeof s);
    /* missing keys stay 0: the heuristic chooses */
    assert_int_equal(qkc_schedule_parse(ctx, "nb=8", &t), QKC_OK);
    assert_int_equal(t.tile_m + t.tile_n + t.k_unroll + t.vector_bits + t.prefetch, 0);
    assert_int_equal(t.n_block, 8);
    assert_int_equal(qkc_schedule_parse(ctx, "", &t), QKC_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = s;
        if (qkc_schedule_parse(ctx, bad[i], &t) != QKC_ERR_PARSE)
            fail_msg("schedule '%s' was accepted", bad[i]);
        assert_memory_equal(&s, &t, sizeof s); /* untouched on failure */
        assert_non_null(strstr(qkc_context_last_error(ctx), "schedule"));
    }
    assert_int_equal(qkc_schedule_parse(ctx, NULL, &t), QKC_ERR_INVALID_ARGUMENT);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_version),
        cmocka_unit_test(test_context_and_allocator),
        cmocka_unit_test(test_spec_print_and_query),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_schedule_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
