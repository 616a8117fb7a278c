/*
 * GGUF files written by the test writer and read back: for every GGUF type
 * qkc runs, the tensor's bytes are the weight blob (in place), bit for bit,
 * and dequantize exactly as the blob qkc_quantize wrote; shapes are
 * reported outermost first; tensors of other types are listed with why;
 * metadata of every value type reads back. Runs only the runtime (no JIT):
 * test_cg_file runs the kernels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/file_fixtures.h"
#include "util/file_writer.h"
#include "util/testutil.h"

static const int64_t shapes[][2] = {{1001, 256}, {7, 512}, {1, 256}};

static void check_type(qkc_context *ctx, const qkc_gguf_type_case *tc, int64_t n, int64_t k)
{
    char name[128], text[256];
    void *blob = NULL;
    size_t bytes = 0;
    qkc_gguf_writer w;
    qkc_bytes out;
    qkc_file *file = NULL;
    qkc_tensor_info ti;
    qkc_spec *spec = NULL, *fspec = NULL;
    float *w1, *w2;
    uint64_t dims[2] = {(uint64_t)k, (uint64_t)n};
    uint8_t *copy;
    int64_t index = -1;
    snprintf(name, sizeof name, "gguf|%s|n=%lld|k=%lld", tc->name, (long long)n, (long long)k);
    if (!qkc_case_selected(name))
        return;
    QKC_CASE_CHECK("test_file_gguf", name, qkc_fixture_blob(ctx, tc->weights, n, k, name, &blob, &bytes) == 0,
                   "quantize: %s", qkc_context_last_error(ctx));
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    qkc_gguf_kv_u32(&w, "general.quantization_version", 2);
    assert_int_equal(qkc_gguf_add_tensor(&w, "token_norm.weight", 0, 1, dims, blob, 0), 0);
    w.tensors[0].dims[0] = 0; /* an empty 1-D tensor */
    assert_int_equal(qkc_gguf_add_tensor(&w, "blk.0.ffn_up.weight", tc->ggml_type, 2, dims, blob, bytes), 0);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);

    QKC_CASE_CHECK("test_file_gguf", name, qkc_file_open_memory(ctx, out.data, out.len, NULL, &file) == QKC_OK,
                   "open: %s", qkc_context_last_error(ctx));
    assert_int_equal(qkc_file_find(ctx, file, "blk.0.ffn_up.weight", &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_string_equal(ti.dtype, tc->name);
    assert_int_equal(ti.n_dims, 2);
    assert_int_equal(ti.shape[0], n); /* outermost first: [N, K] as PyTorch prints it */
    assert_int_equal(ti.shape[1], k);
    QKC_CASE_CHECK("test_file_gguf", name, ti.runnable, "not runnable: %s", ti.unsupported);
    assert_int_equal(ti.n, n);
    assert_int_equal(ti.k, k);
    assert_string_equal(ti.weights, tc->weights);
    assert_true(ti.in_place);
    assert_int_equal(ti.bytes, bytes);
    assert_int_equal(ti.weights_bytes, bytes);
    assert_int_equal(ti.offset % 32, 0);
    assert_ptr_equal(ti.data, out.data + w.data_pos[1]);
    QKC_CASE_CHECK("test_file_gguf", name, memcmp(ti.data, blob, bytes) == 0, "the tensor bytes differ from the blob");

    /* The spec from the file is the one the blob was written for, and the
     * in-place data dequantize bit for bit like the blob. */
    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s", (long long)n, (long long)k, tc->weights);
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_file_spec(ctx, file, index, NULL, &fspec), QKC_OK);
    w1 = malloc((size_t)(n * k) * sizeof *w1);
    w2 = malloc((size_t)(n * k) * sizeof *w2);
    copy = malloc(bytes);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_non_null(copy);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, bytes, w1, k), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, fspec, ti.data, ti.bytes, w2, k), QKC_OK);
    QKC_CASE_CHECK("test_file_gguf", name, memcmp(w1, w2, (size_t)(n * k) * sizeof *w1) == 0,
                   "dequantized file tensor differs from the blob's");
    assert_int_equal(qkc_file_weights(ctx, file, index, copy, bytes), QKC_OK);
    assert_memory_equal(copy, blob, bytes);
    assert_int_equal(qkc_file_weights(ctx, file, index, copy, bytes - 1), QKC_ERR_BUFFER_TOO_SMALL);

    /* The empty 1-D tensor is listed, not runnable, and says why. */
    assert_int_equal(qkc_file_find(ctx, file, "token_norm.weight", &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "1-D tensor"));
    qkc_spec_destroy(fspec);
    assert_int_equal(qkc_file_spec(ctx, file, index, NULL, &fspec), QKC_ERR_UNSUPPORTED);
    assert_null(fspec);
    assert_non_null(strstr(qkc_context_last_error(ctx), "does not run in qkc: 1-D tensor"));

    free(w1), free(w2), free(copy), free(blob);
    qkc_spec_destroy(spec);
    qkc_file_close(file);
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
}

static void test_every_type(void **state)
{
    size_t count;
    const qkc_gguf_type_case *tc = qkc_gguf_type_cases(&count);
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < count; i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_type(ctx, &tc[i], shapes[s][0], shapes[s][1]);
    qkc_context_destroy(ctx);
}

/* Types qkc does not run are listed with a reason, never misread; 3-D
 * tensors are listed but not run. The file is read from disk (mmap). */
static void test_unsupported_and_mmap(void **state)
{
    static uint8_t zeros[84 * 2 * 4];
    uint64_t d2[2] = {256, 2}, d3[3] = {32, 2, 4};
    qkc_gguf_writer w;
    qkc_bytes out;
    qkc_context *ctx;
    qkc_file *file;
    qkc_file_info fi;
    qkc_tensor_info ti;
    char path[64];
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    qkc_gguf_add_tensor(&w, "iq2xxs", 16, 2, d2, zeros, 66 * 2);
    qkc_gguf_add_tensor(&w, "iq4xs", 23, 2, d2, zeros, 136 * 2);
    qkc_gguf_add_tensor(&w, "experts", 8, 3, d3, zeros, 34 * 8);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    snprintf(path, sizeof path, "test_file_gguf_%d.gguf", (int)getpid());
    assert_int_equal(qkc_bytes_save(&out, path), 0);
    assert_int_equal(qkc_file_open(ctx, path, NULL, &file), QKC_OK);
    unlink(path);
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_string_equal(fi.format, "gguf");
    assert_int_equal(fi.version, 3);
    assert_int_equal(fi.tensors, 3);
    assert_int_equal(fi.alignment, 32);
    assert_int_equal(fi.bytes, out.len);
    assert_int_equal(qkc_file_tensor(file, 0, &ti), QKC_OK);
    assert_string_equal(ti.dtype, "IQ2_XXS");
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "grid-based IQ"));
    assert_int_equal(ti.bytes, 132);
    assert_memory_equal(ti.data, zeros, 132);
    assert_int_equal(qkc_file_tensor(file, 1, &ti), QKC_OK);
    assert_string_equal(ti.dtype, "IQ4_XS");
    assert_true(ti.runnable); /* a preset (presets.def row with ggml type 23) */
    assert_string_equal(ti.weights, "w=iq4_xs");
    assert_int_equal(qkc_file_tensor(file, 2, &ti), QKC_OK);
    assert_int_equal(ti.n_dims, 3);
    assert_int_equal(ti.shape[0], 4);
    assert_int_equal(ti.shape[2], 32);
    {
        /* a 3-D tensor [E, N, K] is a stack of E experts, each its own
         * blob in place: q8_0, 2 rows of one block (68 bytes) each */
        const void *d = NULL;
        int64_t e = 0;
        uint8_t buf[68];
        assert_true(ti.runnable);
        assert_int_equal(ti.n, 2);
        assert_int_equal(ti.k, 32);
        assert_int_equal(ti.weights_bytes, 68);
        assert_int_equal(ti.bytes, 4 * 68);
        assert_int_equal(qkc_file_expert(ctx, file, 2, 3, &d, &e), QKC_OK);
        assert_int_equal(e, 4);
        assert_ptr_equal(d, (const uint8_t *)ti.data + 3 * 68);
        assert_int_equal(qkc_file_expert(ctx, file, 2, 4, &d, &e), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "which has 4"));
        assert_int_equal(qkc_file_weights(ctx, file, 2, buf, sizeof buf), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "stack of 4 experts"));
        /* a plain matrix is one expert */
        assert_int_equal(qkc_file_expert(ctx, file, 1, 0, NULL, &e), QKC_OK);
        assert_int_equal(e, 1);
    }
    assert_int_equal(qkc_file_tensor(file, 3, &ti), QKC_ERR_INVALID_ARGUMENT);
    {
        int64_t idx;
        assert_int_equal(qkc_file_find(ctx, file, "nope", &idx), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "no tensor named 'nope'"));
    }
    qkc_file_close(file);
    qkc_file_close(NULL);
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
    qkc_context_destroy(ctx);
}

/* Metadata of every value type, arrays included, and general.alignment. */
static void test_metadata(void **state)
{
    static const char *const want[][3] = {
        {"general.alignment", "u32", "64"}, {"a.u8", "u8", "200"},       {"a.i8", "i8", "-3"},
        {"a.u16", "u16", "65535"},          {"a.i16", "i16", "-300"},    {"a.i32", "i32", "-70000"},
        {"a.f32", "f32", "1.5"},            {"a.bool", "bool", "true"},  {"a.u64", "u64", "18446744073709551615"},
        {"a.i64", "i64", "-5"},             {"a.f64", "f64", "0.25"},    {"a.str", "string", "hello"},
        {"a.arr", "array", "[string x 2]"}, {"a.arr2", "array", "[u16 x 3]"},
    };
    qkc_gguf_writer w;
    qkc_bytes out, v = {0};
    qkc_context *ctx;
    qkc_file *file;
    qkc_file_info fi;
    uint8_t b[8];
    uint64_t d[2] = {32, 3};
    static uint8_t data[34 * 3];
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    qkc_gguf_init(&w);
    w.alignment = 64;
    qkc_gguf_kv_u32(&w, "general.alignment", 64);
    b[0] = 200, qkc_gguf_kv_raw(&w, "a.u8", 0, b, 1);
    b[0] = 0xFD, qkc_gguf_kv_raw(&w, "a.i8", 1, b, 1);
    b[0] = 0xFF, b[1] = 0xFF, qkc_gguf_kv_raw(&w, "a.u16", 2, b, 2);
    b[0] = 0xD4, b[1] = 0xFE, qkc_gguf_kv_raw(&w, "a.i16", 3, b, 2);
    qkc_bytes_u32(&v, (uint32_t)-70000), qkc_gguf_kv_raw(&w, "a.i32", 5, v.data, 4), v.len = 0;
    qkc_bytes_u32(&v, 0x3FC00000u), qkc_gguf_kv_raw(&w, "a.f32", 6, v.data, 4), v.len = 0;
    b[0] = 1, qkc_gguf_kv_raw(&w, "a.bool", 7, b, 1);
    qkc_bytes_u64(&v, UINT64_MAX), qkc_gguf_kv_raw(&w, "a.u64", 10, v.data, 8), v.len = 0;
    qkc_bytes_u64(&v, (uint64_t)-5), qkc_gguf_kv_raw(&w, "a.i64", 11, v.data, 8), v.len = 0;
    qkc_bytes_u64(&v, 0x3FD0000000000000ull), qkc_gguf_kv_raw(&w, "a.f64", 12, v.data, 8), v.len = 0;
    qkc_gguf_kv_str(&w, "a.str", "hello");
    qkc_bytes_u32(&v, 8), qkc_bytes_u64(&v, 2), qkc_bytes_gguf_str(&v, "x"), qkc_bytes_gguf_str(&v, "yz");
    qkc_gguf_kv_raw(&w, "a.arr", 9, v.data, v.len), v.len = 0;
    qkc_bytes_u32(&v, 2), qkc_bytes_u64(&v, 3), qkc_bytes_u16(&v, 1), qkc_bytes_u16(&v, 2), qkc_bytes_u16(&v, 3);
    qkc_gguf_kv_raw(&w, "a.arr2", 9, v.data, v.len), v.len = 0;
    qkc_gguf_add_tensor(&w, "w", 8, 2, d, data, sizeof data);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_int_equal(fi.alignment, 64);
    assert_int_equal(fi.metadata, (int64_t)(sizeof want / sizeof want[0]));
    for (int64_t i = 0; i < fi.metadata; i++) {
        qkc_file_meta m;
        assert_int_equal(qkc_file_metadata(file, i, &m), QKC_OK);
        assert_string_equal(m.key, want[i][0]);
        assert_string_equal(m.type, want[i][1]);
        assert_string_equal(m.value, want[i][2]);
    }
    {
        qkc_tensor_info ti;
        assert_int_equal(qkc_file_tensor(file, 0, &ti), QKC_OK);
        assert_int_equal(ti.offset % 64, 0);
        assert_true(ti.runnable);
        assert_int_equal(ti.n, 3);
    }
    assert_int_equal(qkc_file_metadata(file, fi.metadata, &(qkc_file_meta){0}), QKC_ERR_INVALID_ARGUMENT);
    qkc_file_close(file);
    qkc_bytes_free(&out);
    qkc_bytes_free(&v);
    qkc_gguf_free(&w);
    qkc_context_destroy(ctx);
}

/* GGUF strings have lengths: keys that differ only after a NUL byte are
 * two keys (not a duplicate), qkc_file_metadata_bytes gives their whole
 * length, and general.alignment is matched by its bytes, not as a prefix.
 * A tensor name with a NUL byte is refused (ggml keeps names as C strings). */
static void test_nul_bytes(void **state)
{
    static const char k1[] = "a\0x", k2[] = "a\0y", k3[] = "general.alignment\0z";
    static uint8_t data[34 * 2];
    const char *const keys[3] = {k1, k2, k3};
    const size_t lens[3] = {sizeof k1 - 1, sizeof k2 - 1, sizeof k3 - 1};
    uint64_t d[2] = {32, 2};
    qkc_gguf_writer w;
    qkc_bytes out;
    qkc_context *ctx;
    qkc_file *file;
    qkc_file_info fi;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    qkc_gguf_init(&w);
    for (int i = 0; i < 3; i++) {
        qkc_bytes_u64(&w.kv, lens[i]);
        qkc_bytes_put(&w.kv, keys[i], lens[i]);
        qkc_bytes_u32(&w.kv, i == 2 ? QKC_GGUF_U32 : QKC_GGUF_STRING);
        if (i == 2)
            qkc_bytes_u32(&w.kv, 48); /* not a power of two: harmless unless taken for general.alignment */
        else
            qkc_bytes_u64(&w.kv, 3), qkc_bytes_put(&w.kv, i ? "v\0w" : "v\0v", 3);
        w.nkv++;
    }
    qkc_gguf_add_tensor(&w, "abc", 8, 2, d, data, sizeof data);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_int_equal(fi.metadata, 3);
    assert_int_equal(fi.alignment, 32);
    for (int i = 0; i < 3; i++) {
        qkc_file_meta m;
        size_t kb, vb;
        assert_int_equal(qkc_file_metadata(file, i, &m), QKC_OK);
        assert_int_equal(qkc_file_metadata_bytes(file, i, &kb, &vb), QKC_OK);
        assert_int_equal(kb, lens[i]);
        assert_memory_equal(m.key, keys[i], kb + 1); /* and NUL-terminated after */
        assert_int_equal(vb, i == 2 ? 2 : 3);
        if (i < 2)
            assert_memory_equal(m.value, i ? "v\0w" : "v\0v", 4);
    }
    {
        size_t kb, vb;
        assert_int_equal(qkc_file_metadata_bytes(file, 3, &kb, &vb), QKC_ERR_INVALID_ARGUMENT);
    }
    qkc_file_close(file);
    /* the tensor name "abc" becomes "a\0c" */
    out.data[w.info_pos[0] + 8 + 1] = 0;
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "tensor 0: the name holds a NUL byte"));
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_unsupported_and_mmap),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_nul_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
