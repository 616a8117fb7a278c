/*
 * libFuzzer harness: checkpoint files opened by path (qkc_file_open: the
 * mmap path, and the format found from the extension when the contents do
 * not say), where fuzz_file opens the same bytes from memory. The bytes
 * are written to a file in the process's scratch directory named .gguf,
 * .safetensors or .bin, or model.safetensors.index.json with two small
 * valid shards beside it (a.safetensors: a.weight; b.safetensors:
 * b.weight, b.bias), by the input's size, so mutations try all four;
 * opened, and put through the checks fuzz_file makes
 * (qkc_fuzz_check_file). When the contents name the format (the GGUF
 * magic, or a '{' after a safetensors header length) the path and memory
 * opens must agree: the same status, and the same metadata and tensor
 * table. A crash, a sanitizer report, a refusal without a message or a
 * disagreement is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "qkc/qkc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WEIGHTS (1u << 20)

static int same_string(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* The path open and the memory open of the same bytes agree. */
static void compare(const qkc_file *a, const qkc_file *b)
{
    qkc_file_info ia, ib;
    qkc_file_query(a, &ia);
    qkc_file_query(b, &ib);
    if (!same_string(ia.format, ib.format) || ia.version != ib.version || ia.tensors != ib.tensors ||
        ia.metadata != ib.metadata || ia.alignment != ib.alignment || ia.bytes != ib.bytes)
        qkc_fuzz_bug("opened by path: %s v%d, %lld tensors, %lld metadata; from memory: %s v%d, %lld, %lld",
                     ia.format, ia.version, (long long)ia.tensors, (long long)ia.metadata, ib.format, ib.version,
                     (long long)ib.tensors, (long long)ib.metadata);
    for (int64_t i = 0; i < ia.metadata; i++) {
        qkc_file_meta ma, mb;
        qkc_file_metadata(a, i, &ma);
        qkc_file_metadata(b, i, &mb);
        if (!same_string(ma.key, mb.key) || !same_string(ma.type, mb.type) || ma.count != mb.count ||
            !same_string(ma.value, mb.value))
            qkc_fuzz_bug("metadata %lld: '%s' by path, '%s' from memory", (long long)i, ma.key, mb.key);
    }
    for (int64_t i = 0; i < ia.tensors; i++) {
        qkc_tensor_info ta, tb;
        qkc_file_tensor(a, i, &ta);
        qkc_file_tensor(b, i, &tb);
        if (!same_string(ta.name, tb.name) || !same_string(ta.dtype, tb.dtype) || ta.n_dims != tb.n_dims ||
            memcmp(ta.shape, tb.shape, sizeof ta.shape) || ta.offset != tb.offset || ta.bytes != tb.bytes ||
            ta.runnable != tb.runnable || ta.n != tb.n || ta.k != tb.k || !same_string(ta.weights, tb.weights) ||
            !same_string(ta.unsupported, tb.unsupported) || ta.in_place != tb.in_place ||
            ta.weights_bytes != tb.weights_bytes || (ta.bytes && memcmp(ta.data, tb.data, ta.bytes)))
            qkc_fuzz_bug("tensor %lld: '%s' (%s, %s) by path, '%s' (%s, %s) from memory", (long long)i, ta.name,
                         ta.weights, ta.unsupported, tb.name, tb.weights, tb.unsupported);
    }
}

/* The shards an index input may name, written beside it: a.safetensors
 * (a.weight) and b.safetensors (b.weight, b.bias), F16, valid. */
static void write_shards(void)
{
    static const char *const files[2] = {"a.safetensors", "b.safetensors"};
    static const char *const headers[2] = {
        "{\"a.weight\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]}}",
        "{\"b.weight\":{\"dtype\":\"F16\",\"shape\":[4,2],\"data_offsets\":[0,16]},"
        "\"b.bias\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]}}",
    };
    for (int s = 0; s < 2; s++) {
        uint8_t buf[512];
        char path[1024];
        size_t hlen = strlen(headers[s]), padded = (hlen + 7) / 8 * 8;
        memset(buf, ' ', sizeof buf);
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)(padded >> (8 * i));
        memcpy(buf + 8, headers[s], hlen);
        for (size_t i = 0; i < 24; i++)
            buf[8 + padded + i] = (uint8_t)(i % 2 ? 0x3c : 0x00); /* 1.0 in f16 */
        qkc_fuzz_path(path, sizeof path, files[s]);
        qkc_fuzz_write_file(path, buf, 8 + padded + 24);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"input.gguf", "input.safetensors", "input.bin",
                                        "model.safetensors.index.json"};
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF, .warn = qkc_fuzz_no_warning};
    char path[1024];
    qkc_file *file = NULL, *mem = NULL;
    qkc_status st, st_mem;
    /* both GPTQ conventions, chosen by the first byte (as fuzz_file) */
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = size ? data[0] % 3 : 0,
                          .load = size ? data[size - 1] % 3 : 0}; /* default, mmap or read mode */
    int index = size % 4 == 3; /* a sharded checkpoint's index, its shards beside it */
    int named = !index && ((size >= 4 && !memcmp(data, "GGUF", 4)) || (size >= 9 && data[8] == '{'));
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return 0;
    if (index)
        write_shards();
    qkc_fuzz_path(path, sizeof path, names[index ? 3 : size % 3]);
    qkc_fuzz_write_file(path, data, size);
    st = qkc_file_open(ctx, path, &fo, &file);
    if (st != QKC_OK && !qkc_context_last_error(ctx)[0])
        qkc_fuzz_bug("a refusal without a message");
    if (named) {
        st_mem = qkc_file_open_memory(ctx, data, size, &fo, &mem);
        if (st != st_mem)
            qkc_fuzz_bug("opened by path: status %d; from memory: status %d (%s)", (int)st, (int)st_mem,
                         qkc_context_last_error(ctx));
        if (file && mem)
            compare(file, mem);
        qkc_file_close(mem);
    }
    if (file) {
        qkc_file_info fi;
        qkc_file_query(file, &fi);
        if (index && fi.bytes < size)
            qkc_fuzz_bug("a sharded checkpoint of %zu bytes, its index alone has %zu", fi.bytes, size);
        qkc_fuzz_check_file(ctx, file, NULL, index ? fi.bytes : size, MAX_WEIGHTS, index);
        qkc_file_close(file);
    }
    remove(path);
    qkc_context_destroy(ctx);
    return 0;
}
