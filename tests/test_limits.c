/*
 * qkc's documented limits (QKC_MAX_* in qkc/qkc.h, docs/spec.md "Limits"):
 * each one accepted at its value and refused one past it with
 * QKC_ERR_LIMIT (or the verifier's status for format rules) and a
 * message; and the checked arithmetic under the size computations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/checked.h"
#include "ir/format.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"

static qkc_status parse(qkc_context *ctx, const char *text)
{
    qkc_spec *spec = NULL;
    qkc_status st = qkc_spec_parse(ctx, text, &spec);
    qkc_spec_destroy(spec);
    return st;
}

static void test_dimension_limits(void **state)
{
    (void)state;
    qkc_context *ctx;
    char text[128];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    snprintf(text, sizeof text, "matmul n=%lld k=32 w=q4_0", (long long)QKC_MAX_DIM);
    assert_int_equal(parse(ctx, text), QKC_OK);
    snprintf(text, sizeof text, "matmul n=%lld k=32 w=q4_0", (long long)QKC_MAX_DIM + 1);
    assert_int_equal(parse(ctx, text), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "exceeds the limit"));
    snprintf(text, sizeof text, "matmul n=8 k=32 m=%lld w=q4_0", (long long)QKC_MAX_DIM + 1);
    assert_int_equal(parse(ctx, text), QKC_ERR_LIMIT);
    /* n*k: 2^12 * 2^24 = 2^36 is the limit itself, one row more is past it */
    snprintf(text, sizeof text, "matmul n=4096 k=%lld w=q4_0", (long long)QKC_MAX_DIM);
    assert_int_equal(parse(ctx, text), QKC_OK);
    snprintf(text, sizeof text, "matmul n=4097 k=%lld w=q4_0", (long long)QKC_MAX_DIM);
    assert_int_equal(parse(ctx, text), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "2^36"));
    qkc_context_destroy(ctx);
}

static void test_format_limits(void **state)
{
    (void)state;
    qkc_context *ctx;
    char text[160];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    snprintf(text, sizeof text, "matmul n=8 k=256 w=int4 group=1 scale=int8:f32:%d", QKC_MAX_SUPER_GROUP);
    assert_int_equal(parse(ctx, text), QKC_OK);
    snprintf(text, sizeof text, "matmul n=8 k=256 w=int4 group=1 scale=int8:f32:%d", QKC_MAX_SUPER_GROUP + 1);
    assert_int_equal(parse(ctx, text), QKC_ERR_INVALID_SPEC);
    assert_non_null(strstr(qkc_context_last_error(ctx), "65536"));
    assert_int_equal(parse(ctx, "matmul n=8 k=256 w=int4 group=32 outliers=sparse:0.5"), QKC_OK);
    assert_int_equal(parse(ctx, "matmul n=8 k=256 w=int4 group=32 outliers=sparse:0.51"), QKC_ERR_INVALID_SPEC);
    qkc_context_destroy(ctx);
}

/* Spec text: QKC_MAX_SPEC_BYTES is accepted (padded with blanks), one more
 * byte is QKC_ERR_LIMIT; the text is never read past the limit + 1. */
static void test_spec_text_limit(void **state)
{
    (void)state;
    qkc_context *ctx;
    size_t len = QKC_MAX_SPEC_BYTES;
    char *text = malloc(len + 2);
    const char *head = "matmul n=8 k=32 w=q4_0";
    assert_non_null(text);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    memset(text, ' ', len + 1);
    memcpy(text, head, strlen(head));
    text[len] = '\0';
    assert_int_equal(parse(ctx, text), QKC_OK);
    text[len] = ' ';
    text[len + 1] = '\0';
    assert_int_equal(parse(ctx, text), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "longer than the limit"));
    qkc_context_destroy(ctx);
    free(text);
}

/* Blob sizes: specs within the dimension limits stay far below
 * QKC_MAX_BLOB_BYTES; the layout functions refuse what is past it even
 * when called without the verifier. */
static void test_blob_limit(void **state)
{
    (void)state;
    qkc_format f;
    qkc_weight_layout wl;
    qkc_klayout kl;
    qkc_diag diag;
    int64_t big = INT64_C(1) << 21; /* 2^42 weights: 2^44 bytes as f32 */
    assert_int_equal(qkc_format_from_words("f32", 3, NULL, 0, &f, &diag), QKC_OK);
    assert_int_equal(qkc_format_layout(&f, big, big, &wl, &diag), QKC_ERR_LIMIT);
    assert_non_null(strstr(diag.message, "over the limit of 2^40"));
    assert_int_equal(qkc_format_from_words("q8_0", 4, NULL, 0, &f, &diag), QKC_OK);
    assert_int_equal(qkc_klayout_for(&f, big, big, &kl, &diag), QKC_ERR_LIMIT);
    assert_non_null(strstr(diag.message, "over the limit of 2^40"));
    /* the largest verified f32 matrix fits */
    assert_int_equal(qkc_format_from_words("f32", 3, NULL, 0, &f, &diag), QKC_OK);
    assert_int_equal(qkc_format_layout(&f, INT64_C(1) << 12, QKC_MAX_DIM, &wl, &diag), QKC_OK);
    assert_true(wl.total <= QKC_MAX_BLOB_BYTES);
}

static void test_checked_arithmetic(void **state)
{
    (void)state;
    uint64_t r = 7;
    assert_int_equal(qkc_mul_u64(UINT64_C(1) << 32, UINT64_C(1) << 31, &r), 1);
    assert_true(r == UINT64_C(1) << 63);
    assert_int_equal(qkc_mul_u64(UINT64_C(1) << 32, UINT64_C(1) << 32, &r), 0);
    assert_true(r == UINT64_C(1) << 63); /* untouched */
    assert_int_equal(qkc_mul_u64(0, UINT64_MAX, &r), 1);
    assert_true(r == 0);
    assert_int_equal(qkc_add_u64(UINT64_MAX - 1, 1, &r), 1);
    assert_int_equal(qkc_add_u64(UINT64_MAX, 1, &r), 0);
    assert_int_equal(qkc_align_u64(65, 64, &r), 1);
    assert_true(r == 128);
    assert_int_equal(qkc_align_u64(UINT64_MAX - 10, 64, &r), 0);
}

static void test_thread_limit(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    qkc_context_options co = {.struct_size = sizeof co, .threads = QKC_MAX_THREADS + 1};
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    co.threads = QKC_MAX_THREADS;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK); /* the pool starts only with a run */
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dimension_limits),
        cmocka_unit_test(test_format_limits),
        cmocka_unit_test(test_spec_text_limit),
        cmocka_unit_test(test_blob_limit),
        cmocka_unit_test(test_checked_arithmetic),
        cmocka_unit_test(test_thread_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
