/*
 * Malformed files: each case is a hand-made corruption of a GGUF or
 * safetensors file (truncations, huge counts, bad offsets, alignment,
 * magic and version, inconsistent shapes, unknown types, wrong dtype
 * sizes). qkc_file_open must refuse every one with the given status and a
 * message naming the problem, without crashing or reading outside the
 * buffer: the buffer is copied into an exactly sized allocation, so
 * AddressSanitizer sees any overread (run the suite under ASan/UBSan).
 * QKC_CASE=<name> runs one case.
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

typedef struct bad_case {
    const char *name;
    qkc_status status;
    const char *message; /* a substring of the context message */
    const char *ext;     /* write to a file with this extension, or NULL: open from memory */
} bad_case;

static const bad_case cases[] = {
    {"empty", QKC_ERR_CORRUPT_DATA, "neither a GGUF file", NULL},
    {"empty_file", QKC_ERR_CORRUPT_DATA, "empty file", ".gguf"},
    {"gguf_short_magic", QKC_ERR_CORRUPT_DATA, "truncated: the magic", ".gguf"},
    {"gguf_bad_magic", QKC_ERR_CORRUPT_DATA, "bad magic 47 47 55 58", ".gguf"},
    {"gguf_version_0", QKC_ERR_UNSUPPORTED, "unknown GGUF version 0", NULL},
    {"gguf_version_1", QKC_ERR_UNSUPPORTED, "GGUF version 1 is obsolete", NULL},
    {"gguf_version_4", QKC_ERR_UNSUPPORTED, "unknown GGUF version 4", NULL},
    {"gguf_big_endian", QKC_ERR_UNSUPPORTED, "big-endian GGUF files are not supported", NULL},
    {"gguf_truncated_header", QKC_ERR_CORRUPT_DATA, "truncated: the tensor count needs 8 bytes at offset 8", NULL},
    {"gguf_huge_tensor_count", QKC_ERR_CORRUPT_DATA, "tensor count 9223372036854775808 is more than", NULL},
    {"gguf_huge_kv_count", QKC_ERR_CORRUPT_DATA, "metadata count 1152921504606846976 is more than", NULL},
    {"gguf_key_length_past_end", QKC_ERR_CORRUPT_DATA, "string length 18446744073709551615", NULL},
    {"gguf_empty_key", QKC_ERR_CORRUPT_DATA, "metadata entry 0 has an empty key", NULL},
    {"gguf_unknown_value_type", QKC_ERR_CORRUPT_DATA, "key 'x.bad': unknown value type 13", NULL},
    {"gguf_nested_array", QKC_ERR_CORRUPT_DATA, "key 'x.arr': nested arrays are not allowed", NULL},
    {"gguf_huge_array", QKC_ERR_CORRUPT_DATA, "array of 2305843009213693952 u32 elements does not fit", NULL},
    {"gguf_array_strings_past_end", QKC_ERR_CORRUPT_DATA, "runs past the end of the file", NULL},
    {"gguf_bad_bool", QKC_ERR_CORRUPT_DATA, "key 'x.flag': bool value 2", NULL},
    {"gguf_duplicate_key", QKC_ERR_CORRUPT_DATA, "duplicate metadata key 'general.architecture'", NULL},
    {"gguf_alignment_not_power_of_two", QKC_ERR_CORRUPT_DATA, "general.alignment 48 is not a power of two", NULL},
    {"gguf_alignment_zero", QKC_ERR_CORRUPT_DATA, "general.alignment 0 is not a power of two", NULL},
    {"gguf_alignment_wrong_type", QKC_ERR_CORRUPT_DATA, "general.alignment has type u64; it must be u32", NULL},
    {"gguf_string_value_past_end", QKC_ERR_CORRUPT_DATA, "general.architecture: string length 1125899906842624 at offset 56 runs past the end", NULL},
    {"gguf_name_too_long", QKC_ERR_CORRUPT_DATA, "name of 64 bytes", NULL},
    {"gguf_empty_name", QKC_ERR_CORRUPT_DATA, "name of 0 bytes", NULL},
    {"gguf_five_dims", QKC_ERR_CORRUPT_DATA, "tensor 'a': 5 dimensions", NULL},
    {"gguf_zero_dims", QKC_ERR_CORRUPT_DATA, "tensor 'a': 0 dimensions", NULL},
    {"gguf_unknown_type", QKC_ERR_CORRUPT_DATA, "tensor 'a': unknown ggml type id 99", NULL},
    {"gguf_removed_type", QKC_ERR_CORRUPT_DATA, "ggml type id 4 was removed", NULL},
    {"gguf_row_not_whole_blocks", QKC_ERR_CORRUPT_DATA, "ne[0]=33 is not a multiple of the Q8_0 block of 32", NULL},
    {"gguf_dims_overflow", QKC_ERR_CORRUPT_DATA, "dimensions overflow 64-bit element counts", NULL},
    {"gguf_bytes_overflow", QKC_ERR_CORRUPT_DATA, "byte size overflows", NULL},
    {"gguf_offset_misaligned", QKC_ERR_CORRUPT_DATA, "offset 8 is not a multiple of the alignment 32", NULL},
    {"gguf_offset_past_end", QKC_ERR_CORRUPT_DATA, "tensor 'b': data [4096, +32) lies outside", NULL},
    {"gguf_huge_offset", QKC_ERR_CORRUPT_DATA, "lies outside the", NULL},
    {"gguf_overlap", QKC_ERR_CORRUPT_DATA, "the data of tensors 'a' and 'b' overlap", NULL},
    {"gguf_duplicate_name", QKC_ERR_CORRUPT_DATA, "two tensors are named 'a'", NULL},
    {"gguf_truncated_data", QKC_ERR_CORRUPT_DATA, "tensor 'b': data [160, +32) lies outside", NULL},
    {"gguf_truncated_infos", QKC_ERR_CORRUPT_DATA, "truncated", NULL},
    {"gguf_data_start_past_end", QKC_ERR_CORRUPT_DATA, "the tensor data would start at offset", NULL},
    {"st_short", QKC_ERR_CORRUPT_DATA, "truncated: 5 bytes", ".safetensors"},
    {"st_header_past_end", QKC_ERR_CORRUPT_DATA, "header length 1000 runs past the end", NULL},
    {"st_not_json", QKC_ERR_CORRUPT_DATA, "header JSON, line 1", NULL},
    {"st_not_object", QKC_ERR_CORRUPT_DATA, "the header is not a JSON object", ".safetensors"},
    {"st_missing_dtype", QKC_ERR_CORRUPT_DATA, "tensor 'w': expected an object with dtype", NULL},
    {"st_unknown_dtype", QKC_ERR_CORRUPT_DATA, "tensor 'w': unknown dtype 'Q9'", NULL},
    {"st_wrong_dtype_size", QKC_ERR_CORRUPT_DATA, "8 bytes of data for 8 F16 elements", NULL},
    {"st_offsets_past_end", QKC_ERR_CORRUPT_DATA, "data_offsets [0, 64] lie outside the 16 data bytes", NULL},
    {"st_offsets_reversed", QKC_ERR_CORRUPT_DATA, "data_offsets [16, 0] lie outside", NULL},
    {"st_offsets_arity", QKC_ERR_CORRUPT_DATA, "data_offsets must be two non-negative integers", NULL},
    {"st_negative_shape", QKC_ERR_CORRUPT_DATA, "shape[1] is not a non-negative integer", NULL},
    {"st_float_offset", QKC_ERR_CORRUPT_DATA, "data_offsets must be two non-negative integers", NULL},
    {"st_shape_overflow", QKC_ERR_CORRUPT_DATA, "shape overflows 64 bits", NULL},
    {"st_five_dims", QKC_ERR_UNSUPPORTED, "5 dimensions", NULL},
    {"st_overlap", QKC_ERR_CORRUPT_DATA, "overlap", NULL},
    {"st_duplicate_key", QKC_ERR_CORRUPT_DATA, "two tensors are named 'w'", NULL},
    {"st_metadata_not_string", QKC_ERR_CORRUPT_DATA, "__metadata__ value of 'n' is not a string", NULL},
    {"st_metadata_not_object", QKC_ERR_CORRUPT_DATA, "__metadata__ must be an object", NULL},
    {"st_truncated_json", QKC_ERR_CORRUPT_DATA, "header JSON", NULL},
    /* the header's JSON reader is strict (RFC 8259) */
    {"st_invalid_utf8", QKC_ERR_CORRUPT_DATA, "line 1 column 3: invalid UTF-8 in a string", NULL},
    {"st_overlong_utf8", QKC_ERR_CORRUPT_DATA, "invalid UTF-8 in a string", NULL},
    {"st_control_char", QKC_ERR_CORRUPT_DATA, "control character in a string", NULL},
    {"st_nul_escape", QKC_ERR_CORRUPT_DATA, "\\u0000 is not allowed", NULL},
    /* an escape first in a string: nothing copied before it (found by fuzz_run) */
    {"st_nul_escape_first", QKC_ERR_CORRUPT_DATA, "\\u0000 is not allowed", NULL},
    {"st_lone_surrogate", QKC_ERR_CORRUPT_DATA, "a lone low surrogate", NULL},
    {"st_half_surrogate", QKC_ERR_CORRUPT_DATA, "a high surrogate without its low half", NULL},
    {"st_bad_escape", QKC_ERR_CORRUPT_DATA, "invalid escape in a string", NULL},
    {"st_trailing_garbage", QKC_ERR_CORRUPT_DATA, "end of the header expected after the object", NULL},
    {"st_leading_zero", QKC_ERR_CORRUPT_DATA, "invalid number (a leading zero)", NULL},
    {"st_integer_overflow", QKC_ERR_CORRUPT_DATA, "integer out of range", NULL},
    {"st_trailing_comma", QKC_ERR_CORRUPT_DATA, "expected a string", NULL},
    {"st_duplicate_dtype", QKC_ERR_CORRUPT_DATA, "tensor 'w': duplicate key 'dtype'", NULL},
    {"st_duplicate_metadata", QKC_ERR_CORRUPT_DATA, "duplicate key 'a' in __metadata__", NULL},
    {"st_two_metadata", QKC_ERR_CORRUPT_DATA, "duplicate key '__metadata__'", NULL},
    {"st_nested_too_deep", QKC_ERR_CORRUPT_DATA, "nested too deeply", NULL},
};

/* --------------------------------------------------------------- builders */

static const uint8_t payload[4096];

/* The base GGUF: 2 KVs, tensor a (Q8_0, 4 x 32), tensor b (F32, 8). */
static void base_gguf(qkc_gguf_writer *w)
{
    uint64_t da[2] = {32, 4}, db[1] = {8};
    qkc_gguf_init(w);
    qkc_gguf_kv_str(w, "general.architecture", "llama");
    qkc_gguf_kv_u32(w, "x.count", 7);
    qkc_gguf_add_tensor(w, "a", 8, 2, da, payload, 136);
    qkc_gguf_add_tensor(w, "b", 0, 1, db, payload, 32);
}

/* Position of tensor i's fields in a finished base file (names of 1 byte). */
static size_t ndims_pos(const qkc_gguf_writer *w, int i) { return w->info_pos[i] + 8 + strlen(w->tensors[i].name); }
static size_t type_pos(const qkc_gguf_writer *w, int i) { return ndims_pos(w, i) + 4 + 8 * w->tensors[i].n_dims; }

static void st_raw(qkc_bytes *out, const char *json, size_t data_bytes)
{
    memset(out, 0, sizeof *out);
    qkc_bytes_u64(out, strlen(json));
    qkc_bytes_put(out, json, strlen(json));
    qkc_bytes_put(out, payload, data_bytes);
}

static void build(const char *name, qkc_bytes *out)
{
    qkc_gguf_writer w;
    uint8_t v[16];
    base_gguf(&w);
#define IS(s) (!strcmp(name, s))
    if (IS("gguf_empty_name"))
        snprintf(w.tensors[0].name, sizeof w.tensors[0].name, "%s", "");
    if (IS("gguf_name_too_long"))
        memset(w.tensors[0].name, 'n', 64), w.tensors[0].name[64] = '\0';
    if (IS("gguf_duplicate_name"))
        w.tensors[1].name[0] = 'a';
    if (IS("gguf_row_not_whole_blocks"))
        w.tensors[0].dims[0] = 33;
    if (IS("gguf_dims_overflow"))
        w.tensors[0].dims[0] = 1ull << 40, w.tensors[0].dims[1] = 1ull << 40;
    if (IS("gguf_bytes_overflow"))
        w.tensors[1].dims[0] = 1ull << 62; /* 2^62 f32 elements: 2^64 bytes */
    if (IS("gguf_empty_key") || IS("gguf_unknown_value_type") || IS("gguf_nested_array") || IS("gguf_huge_array") ||
        IS("gguf_bad_bool") || IS("gguf_duplicate_key") || IS("gguf_alignment_not_power_of_two") ||
        IS("gguf_alignment_zero") || IS("gguf_alignment_wrong_type") || IS("gguf_array_strings_past_end")) {
        qkc_bytes_free(&w.kv); /* replace the KVs */
        w.nkv = 0;
        if (IS("gguf_empty_key"))
            qkc_gguf_kv_u32(&w, "", 1);
        if (IS("gguf_unknown_value_type"))
            qkc_gguf_kv_raw(&w, "x.bad", 13, v, 4);
        if (IS("gguf_nested_array")) {
            qkc_bytes b = {0};
            qkc_bytes_u32(&b, 9), qkc_bytes_u64(&b, 1), qkc_bytes_u32(&b, 4), qkc_bytes_u64(&b, 0);
            qkc_gguf_kv_raw(&w, "x.arr", 9, b.data, b.len);
            qkc_bytes_free(&b);
        }
        if (IS("gguf_huge_array") || IS("gguf_array_strings_past_end")) {
            qkc_bytes b = {0};
            int strings = IS("gguf_array_strings_past_end");
            qkc_bytes_u32(&b, strings ? 8 : 4), qkc_bytes_u64(&b, strings ? 2 : 1ull << 61);
            if (strings)
                qkc_bytes_u64(&b, 1), qkc_bytes_u8(&b, 'x'), qkc_bytes_u64(&b, 1ull << 40);
            qkc_gguf_kv_raw(&w, "x.arr", 9, b.data, b.len);
            qkc_bytes_free(&b);
        }
        if (IS("gguf_bad_bool"))
            v[0] = 2, qkc_gguf_kv_raw(&w, "x.flag", 7, v, 1);
        if (IS("gguf_duplicate_key")) {
            qkc_gguf_kv_str(&w, "general.architecture", "llama");
            qkc_gguf_kv_str(&w, "general.architecture", "gpt2");
        }
        if (IS("gguf_alignment_not_power_of_two"))
            qkc_gguf_kv_u32(&w, "general.alignment", 48);
        if (IS("gguf_alignment_zero"))
            qkc_gguf_kv_u32(&w, "general.alignment", 0);
        if (IS("gguf_alignment_wrong_type")) {
            memset(v, 0, 8), v[0] = 32;
            qkc_gguf_kv_raw(&w, "general.alignment", 10, v, 8);
        }
    }
    qkc_gguf_finish(&w, out);
    if (IS("gguf_short_magic"))
        out->len = 3;
    if (IS("gguf_bad_magic"))
        out->data[3] = 'X';
    if (IS("gguf_version_0"))
        qkc_bytes_set_u32(out, 4, 0);
    if (IS("gguf_version_1"))
        qkc_bytes_set_u32(out, 4, 1);
    if (IS("gguf_version_4"))
        qkc_bytes_set_u32(out, 4, 4);
    if (IS("gguf_big_endian"))
        qkc_bytes_set_u32(out, 4, 0x03000000u);
    if (IS("gguf_truncated_header"))
        out->len = 12;
    if (IS("gguf_huge_tensor_count"))
        qkc_bytes_set_u64(out, 8, 1ull << 63);
    if (IS("gguf_huge_kv_count"))
        qkc_bytes_set_u64(out, 16, 1ull << 60);
    if (IS("gguf_key_length_past_end"))
        qkc_bytes_set_u64(out, w.kv_pos, UINT64_MAX);
    if (IS("gguf_string_value_past_end")) /* the value length of general.architecture */
        qkc_bytes_set_u64(out, w.kv_pos + 8 + strlen("general.architecture") + 4, 1ull << 50);
    if (IS("gguf_five_dims"))
        qkc_bytes_set_u32(out, ndims_pos(&w, 0), 5);
    if (IS("gguf_zero_dims"))
        qkc_bytes_set_u32(out, ndims_pos(&w, 0), 0);
    if (IS("gguf_unknown_type"))
        qkc_bytes_set_u32(out, type_pos(&w, 0), 99);
    if (IS("gguf_removed_type"))
        qkc_bytes_set_u32(out, type_pos(&w, 0), 4);
    if (IS("gguf_offset_misaligned"))
        qkc_bytes_set_u64(out, type_pos(&w, 1) + 4, 8);
    if (IS("gguf_offset_past_end"))
        qkc_bytes_set_u64(out, type_pos(&w, 1) + 4, 4096);
    if (IS("gguf_huge_offset"))
        qkc_bytes_set_u64(out, type_pos(&w, 1) + 4, UINT64_MAX - 31);
    if (IS("gguf_overlap"))
        qkc_bytes_set_u64(out, type_pos(&w, 1) + 4, 128);
    if (IS("gguf_truncated_data"))
        out->len -= 1;
    if (IS("gguf_truncated_infos"))
        out->len = type_pos(&w, 1) + 2;
    if (IS("gguf_data_start_past_end"))
        out->len = type_pos(&w, 1) + 12 + 1;
    if (IS("empty") || IS("empty_file"))
        out->len = 0;
    qkc_gguf_free(&w);
    if (!strncmp(name, "st_", 3)) {
        const char *F16_8 = "\"dtype\":\"F16\",\"shape\":[8]";
        char j[1024];
        qkc_bytes_free(out);
        if (IS("st_short"))
            st_raw(out, "", 0), out->len = 5;
        if (IS("st_header_past_end"))
            st_raw(out, "{}", 16), qkc_bytes_set_u64(out, 0, 1000);
        if (IS("st_not_json"))
            st_raw(out, "{\"w\": nope}", 16);
        if (IS("st_not_object"))
            st_raw(out, "[1, 2]  ", 0);
        if (IS("st_missing_dtype"))
            st_raw(out, "{\"w\":{\"shape\":[8],\"data_offsets\":[0,16]}}", 16);
        if (IS("st_unknown_dtype"))
            st_raw(out, "{\"w\":{\"dtype\":\"Q9\",\"shape\":[8],\"data_offsets\":[0,16]}}", 16);
        if (IS("st_wrong_dtype_size"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,8]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_offsets_past_end"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,64]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_offsets_reversed"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[16,0]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_offsets_arity"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_float_offset"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16.0]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_negative_shape"))
            st_raw(out, "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,-4],\"data_offsets\":[0,16]}}", 16);
        if (IS("st_shape_overflow"))
            st_raw(out,
                   "{\"w\":{\"dtype\":\"F16\",\"shape\":[1099511627776,1099511627776,1099511627776],"
                   "\"data_offsets\":[0,16]}}",
                   16);
        if (IS("st_five_dims"))
            st_raw(out, "{\"w\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,8],\"data_offsets\":[0,16]}}", 16);
        if (IS("st_overlap"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16]},\"v\":{%s,\"data_offsets\":[8,24]}}", F16_8,
                     F16_8),
                st_raw(out, j, 24);
        if (IS("st_duplicate_key"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16]},\"w\":{%s,\"data_offsets\":[0,16]}}", F16_8,
                     F16_8),
                st_raw(out, j, 16);
        if (IS("st_metadata_not_string"))
            st_raw(out, "{\"__metadata__\":{\"n\":3}}", 0);
        if (IS("st_metadata_not_object"))
            st_raw(out, "{\"__metadata__\":\"pt\"}", 0);
        if (IS("st_truncated_json"))
            st_raw(out, "{\"w\":{\"dtype\":\"F16\",\"sha", 0);
        if (IS("st_invalid_utf8"))
            snprintf(j, sizeof j, "{\"\xff\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_overlong_utf8")) /* '/' as two bytes */
            snprintf(j, sizeof j, "{\"a\xc0\xaf\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_control_char"))
            snprintf(j, sizeof j, "{\"a\x1b\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_nul_escape"))
            snprintf(j, sizeof j, "{\"a\\u0000b\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_nul_escape_first"))
            snprintf(j, sizeof j, "{\"\\u0000b\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_lone_surrogate"))
            snprintf(j, sizeof j, "{\"a\\udc00\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_half_surrogate"))
            snprintf(j, sizeof j, "{\"a\\ud83dx\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_bad_escape"))
            snprintf(j, sizeof j, "{\"a\\x\":{%s,\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_trailing_garbage"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16]}} x", F16_8), st_raw(out, j, 16);
        if (IS("st_leading_zero"))
            st_raw(out, "{\"w\":{\"dtype\":\"F16\",\"shape\":[08],\"data_offsets\":[0,16]}}", 16);
        if (IS("st_integer_overflow"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,18446744073709551616]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_trailing_comma"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16]},}", F16_8), st_raw(out, j, 16);
        if (IS("st_duplicate_dtype"))
            snprintf(j, sizeof j, "{\"w\":{%s,\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", F16_8), st_raw(out, j, 16);
        if (IS("st_duplicate_metadata"))
            st_raw(out, "{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}}", 0);
        if (IS("st_two_metadata"))
            st_raw(out, "{\"__metadata__\":{},\"__metadata__\":{}}", 0);
        if (IS("st_nested_too_deep")) {
            size_t n = (size_t)snprintf(j, sizeof j, "{\"w\":{%s,\"data_offsets\":[0,16],\"x\":", F16_8);
            for (int d = 0; d < 200; d++)
                j[n++] = '[';
            for (int d = 0; d < 200; d++)
                j[n++] = ']';
            memcpy(j + n, "}}", 3);
            st_raw(out, j, 16);
        }
    }
#undef IS
}

static void test_malformed(void **state)
{
    qkc_context *ctx;
    int ran = 0;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        qkc_bytes b;
        qkc_file *file = (qkc_file *)&b; /* must be reset to NULL on failure */
        qkc_status st;
        if (!qkc_case_selected(c->name))
            continue;
        build(c->name, &b);
        if (c->ext) {
            char path[96];
            snprintf(path, sizeof path, "malformed_%d_%s%s", (int)getpid(), c->name, c->ext);
            assert_int_equal(qkc_bytes_save(&b, path), 0);
            st = qkc_file_open(ctx, path, NULL, &file);
            unlink(path);
        } else {
            /* an exactly sized copy: any overread is outside the allocation */
            uint8_t *exact = malloc(b.len ? b.len : 1);
            assert_non_null(exact);
            if (b.len)
                memcpy(exact, b.data, b.len);
            st = qkc_file_open_memory(ctx, exact, b.len, NULL, &file);
            free(exact);
        }
        QKC_CASE_CHECK("test_file_malformed", c->name, st == c->status, "status %s (%d), expected %s; message: %s",
                       qkc_status_str(st), (int)st, qkc_status_str(c->status), qkc_context_last_error(ctx));
        QKC_CASE_CHECK("test_file_malformed", c->name, strstr(qkc_context_last_error(ctx), c->message) != NULL,
                       "message '%s' does not contain '%s'", qkc_context_last_error(ctx), c->message);
        QKC_CASE_CHECK("test_file_malformed", c->name, file == NULL, "*out was not cleared");
        qkc_bytes_free(&b);
        ran++;
    }
    print_message("%d malformed files refused\n", ran);
    assert_true(ran > 0);
    qkc_context_destroy(ctx);
}

/* The base files themselves open: the corruptions above are what fails. */
static void test_base_files_open(void **state)
{
    qkc_context *ctx;
    qkc_bytes b;
    qkc_file *file;
    qkc_gguf_writer w;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    base_gguf(&w);
    qkc_gguf_finish(&w, &b);
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_OK);
    qkc_file_close(file);
    qkc_bytes_free(&b);
    qkc_gguf_free(&w);
    st_raw(&b, "{\"w\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", 16);
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_OK);
    qkc_file_close(file);
    qkc_bytes_free(&b);
    qkc_context_destroy(ctx);
}

/* What the strict header reader accepts: escapes (a surrogate pair too)
 * decoded into the tensor name, UTF-8 kept, whitespace anywhere, keys a
 * tensor does not need skipped whatever their values, an empty
 * __metadata__. */
static void test_header_json_accepted(void **state)
{
    const char *json = " \t\r\n{ \"__metadata__\" : { } , \"a\\u00e9\\\"\\\\b\\/\\ud83d\\ude00\xc3\xa9\" :"
                       " { \"\\u0078\" : [ {\"y\": [true, false, null, -1.5e+3, \"s\\n\"]}, {} ] , \"dtype\" : \"F16\" ,"
                       " \"shape\" : [ 2 , 4 ] , \"data_offsets\" : [ 0 , 16 ] , \"z\": -0 } }  \n";
    qkc_context *ctx;
    qkc_bytes b;
    qkc_file *file;
    qkc_tensor_info t;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    memset(&b, 0, sizeof b);
    qkc_bytes_u64(&b, strlen(json));
    qkc_bytes_put(&b, json, strlen(json));
    qkc_bytes_put(&b, payload, 16);
    /* the header starts with whitespace, so the contents do not say "safetensors": open from memory says which */
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_ERR_CORRUPT_DATA);
    b.data[8] = '{', b.data[12] = ' ';
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, 0, &t), QKC_OK);
    assert_string_equal(t.name, "a\xc3\xa9\"\\b/\xf0\x9f\x98\x80\xc3\xa9");
    assert_true(t.runnable);
    qkc_file_close(file);
    qkc_bytes_free(&b);
    qkc_context_destroy(ctx);
}

/* Files that open but whose quantized weights are inconsistent: listed,
 * not run, with the reason (never misread). */
static void test_inconsistent_weights(void **state)
{
    qkc_context *ctx;
    qkc_ckpt_fixture fx;
    qkc_file *file;
    qkc_tensor_info ti;
    int64_t idx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    /* GPTQ whose scales have one row too few for qzeros */
    assert_int_equal(qkc_fixture_gptq(&fx, "m", 4, 32, 128, 32, 0, 0, 0, "inconsistent"), 0);
    fx.st.tensors[2].shape[0] = 3;
    fx.st.tensors[2].bytes = 3 * 32 * 2;
    qkc_bytes_free(&fx.file);
    assert_int_equal(qkc_st_finish(&fx.st, &fx.file), 0);
    assert_int_equal(qkc_file_open_memory(ctx, fx.file.data, fx.file.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, "m.qweight", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "disagree on the groups"));
    qkc_file_close(file);
    qkc_fixture_free(&fx);
    /* NF4 with a quant_map that is not the NF4 code book */
    assert_int_equal(qkc_fixture_bnb(&fx, "p", 4, 64, 64, 0, "inconsistent-bnb"), 0);
    ((float *)fx.buf[4])[3] = 0.5f;
    qkc_bytes_free(&fx.file);
    assert_int_equal(qkc_st_finish(&fx.st, &fx.file), 0);
    assert_int_equal(qkc_file_open_memory(ctx, fx.file.data, fx.file.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, "p.weight", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "quant_map entry 3 differs from the NF4 code book"));
    assert_int_equal(qkc_file_weights(ctx, file, idx, fx.buf[0], 1), QKC_ERR_UNSUPPORTED);
    qkc_file_close(file);
    qkc_fixture_free(&fx);
    /* GGUF q4_k rows whose K is not a multiple of 256 cannot be there at
     * all; a Q8_0 matrix larger than qkc's limits is listed, not run */
    {
        qkc_gguf_writer w;
        qkc_bytes b;
        uint64_t d[2] = {32, 1ull << 25};
        qkc_gguf_init(&w);
        qkc_gguf_add_tensor(&w, "big", 8, 2, d, payload, 0);
        qkc_gguf_finish(&w, &b);
        /* claim the data is there: a zero-byte tensor of 2^25 rows fails the bounds check */
        assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_ERR_CORRUPT_DATA);
        assert_non_null(strstr(qkc_context_last_error(ctx), "lies outside"));
        qkc_bytes_free(&b);
        qkc_gguf_free(&w);
    }
    qkc_context_destroy(ctx);
}

/* Open, list, import and dequantize whatever opens; either way no crash
 * and, on failure, a message. */
static void exercise(qkc_context *ctx, const uint8_t *data, size_t len, const char *name)
{
    uint8_t *exact = malloc(len ? len : 1);
    qkc_file *file = NULL;
    qkc_status st;
    assert_non_null(exact);
    memcpy(exact, data, len);
    st = qkc_file_open_memory(ctx, exact, len, NULL, &file);
    if (st != QKC_OK) {
        QKC_CASE_CHECK("test_file_malformed", name, file == NULL && qkc_context_last_error(ctx)[0],
                       "failed (%s) without a message", qkc_status_str(st));
    } else {
        qkc_file_info fi;
        qkc_file_query(file, &fi);
        for (int64_t i = 0; i < fi.tensors; i++) {
            qkc_tensor_info ti;
            qkc_spec *spec = NULL;
            assert_int_equal(qkc_file_tensor(file, i, &ti), QKC_OK);
            if (!ti.runnable || ti.n * ti.k > (1 << 20))
                continue;
            if (qkc_file_spec(ctx, file, i, NULL, &spec) == QKC_OK) {
                void *blob = malloc(ti.weights_bytes);
                float *w = malloc((size_t)(ti.n * ti.k) * sizeof *w);
                assert_true(blob && w);
                if (qkc_file_weights(ctx, file, i, blob, ti.weights_bytes) == QKC_OK)
                    (void)qkc_dequantize(ctx, spec, blob, ti.weights_bytes, w, ti.k);
                free(blob);
                free(w);
                qkc_spec_destroy(spec);
            }
        }
        qkc_file_close(file);
    }
    free(exact);
}

/* Every byte of small valid files (a GGUF file, a GPTQ and an NF4
 * safetensors checkpoint) replaced by values that break counts, lengths
 * and offsets; and every truncation of the GGUF file. */
static void test_mutations(void **state)
{
    static const uint8_t values[] = {0x00, 0x01, 0x7F, 0x80, 0xFF};
    qkc_context *ctx;
    qkc_gguf_writer w;
    qkc_ckpt_fixture gq, nf;
    qkc_bytes files[3];
    int count = 0;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    base_gguf(&w);
    qkc_gguf_finish(&w, &files[0]);
    assert_int_equal(qkc_fixture_gptq(&gq, "g", 4, 8, 64, 32, 1, 0, 0, "mutations-gptq"), 0);
    assert_int_equal(qkc_fixture_bnb(&nf, "b", 2, 64, 32, 1, "mutations-nf4"), 0);
    files[1] = gq.file, files[2] = nf.file;
    for (int f = 0; f < 3; f++) {
        char name[64];
        snprintf(name, sizeof name, "mutations|file=%d", f);
        if (!qkc_case_selected(name))
            continue;
        for (size_t pos = 0; pos < files[f].len; pos++) {
            uint8_t keep = files[f].data[pos];
            for (size_t v = 0; v < sizeof values; v++) {
                files[f].data[pos] = values[v];
                exercise(ctx, files[f].data, files[f].len, name);
                count++;
            }
            files[f].data[pos] = keep;
            if (f == 0)
                exercise(ctx, files[f].data, pos, name), count++;
        }
    }
    print_message("%d mutated files survived\n", count);
    qkc_bytes_free(&files[0]);
    qkc_gguf_free(&w);
    qkc_fixture_free(&gq);
    qkc_fixture_free(&nf);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_base_files_open),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_inconsistent_weights),
        cmocka_unit_test(test_header_json_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
