/*
 * Large checkpoint headers: a safetensors header of 100 000 tensors and
 * 100 000 metadata entries opens with memory linear in the tensors (a
 * counting allocator measures qkc's peak: at most 320 bytes per tensor and
 * metadata entry beyond the names), every tensor and entry read back
 * right; a file with more than QKC_MAX_FILE_TENSORS metadata entries or
 * tensors is refused (QKC_ERR_LIMIT) before the tables are built.
 *
 * The time to open is printed, not asserted. For the 1.36-million-tensor
 * measurement of docs/files.md:
 *     QKC_LARGE_HEADER_TENSORS=1360000 ./test_file_large_header
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/file_writer.h"
#include "util/testutil.h"

typedef struct peak {
    size_t live, peak;
} peak;

#define HDR 16

static void *peak_alloc(size_t bytes, void *user)
{
    peak *p = user;
    unsigned char *b = bytes <= SIZE_MAX - HDR ? malloc(bytes + HDR) : NULL;
    if (!b)
        return NULL;
    memcpy(b, &bytes, sizeof bytes);
    p->live += bytes;
    if (p->live > p->peak)
        p->peak = p->live;
    return b + HDR;
}

static void peak_free(void *ptr, void *user)
{
    peak *p = user;
    size_t bytes;
    if (!ptr)
        return;
    memcpy(&bytes, (unsigned char *)ptr - HDR, sizeof bytes);
    p->live -= bytes;
    free((unsigned char *)ptr - HDR);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void many_tensors_and_metadata(void **state)
{
    const char *env = getenv("QKC_LARGE_HEADER_TENSORS");
    int64_t n = env && atoll(env) > 0 ? atoll(env) : 100000, nmeta = env ? 16 : 100000;
    peak pk = {0, 0};
    qkc_allocator hook = {peak_alloc, peak_free, &pk};
    qkc_context_options co = {.struct_size = sizeof co, .allocator = &hook, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_context *ctx;
    qkc_file *file;
    qkc_file_info fi;
    qkc_bytes b;
    qkc_rng r = qkc_rng_from_name("test_file_large_header");
    size_t names = 0;
    double t0, secs;
    (void)state;
    assert_int_equal(qkc_st_many(&b, n, nmeta), 0);
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    pk.peak = pk.live;
    t0 = now_s();
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_OK);
    secs = now_s() - t0;
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_int_equal(fi.tensors, n);
    assert_int_equal(fi.metadata, nmeta);
    print_message("safetensors header of %.1f MiB: %lld tensors, %lld metadata entries opened in %.3f s; qkc's peak "
                  "memory %.1f MiB\n",
                  (double)(b.len - 4 * (size_t)n - 8) / 1048576.0, (long long)n, (long long)nmeta, secs,
                  (double)pk.peak / 1048576.0);
    /* names: "l.<i>.w" and "k<i>", "v<i>" with their NULs */
    for (int64_t i = 0; i < n; i++)
        names += (size_t)snprintf(NULL, 0, "l.%lld.w", (long long)i) + 1;
    for (int64_t i = 0; i < nmeta; i++)
        names += 2 * ((size_t)snprintf(NULL, 0, "k%lld", (long long)i) + 1);
    if (pk.peak > 320 * (size_t)(n + nmeta) + names + (2u << 20))
        fail_msg("qkc's peak memory %zu bytes for %lld tensors and %lld metadata entries: more than 320 bytes each "
                 "beyond their %zu bytes of names",
                 pk.peak, (long long)n, (long long)nmeta, names);
    for (int s = 0; s < 1000; s++) {
        int64_t i = (int64_t)qkc_rng_below(&r, (uint64_t)n), idx;
        char name[48];
        qkc_tensor_info t;
        uint32_t v;
        snprintf(name, sizeof name, "l.%lld.w", (long long)i);
        assert_int_equal(qkc_file_find(ctx, file, name, &idx), QKC_OK);
        assert_int_equal(idx, i);
        assert_int_equal(qkc_file_tensor(file, idx, &t), QKC_OK);
        assert_string_equal(t.name, name);
        assert_string_equal(t.weights, "w=bf16");
        assert_int_equal(t.n, 2);
        assert_int_equal(t.bytes, 4);
        memcpy(&v, t.data, 4);
        assert_int_equal(v, (uint32_t)i);
    }
    for (int64_t i = 0; i < nmeta; i += nmeta / 97 + 1) {
        qkc_file_meta m;
        char k[32], v[32];
        snprintf(k, sizeof k, "k%lld", (long long)i);
        snprintf(v, sizeof v, "v%lld", (long long)i);
        assert_int_equal(qkc_file_metadata(file, i, &m), QKC_OK);
        assert_string_equal(m.key, k);
        assert_string_equal(m.value, v);
    }
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    assert_int_equal(pk.live, 0);
    qkc_bytes_free(&b);
}

/* More metadata entries than QKC_MAX_FILE_TENSORS: 2^21 + 1 short ones fit
 * in a 30 MiB header. Refused before the tables are allocated. */
static void metadata_over_the_limit(void **state)
{
    qkc_context *ctx;
    qkc_file *file;
    qkc_bytes b;
    (void)state;
    assert_int_equal(qkc_st_many(&b, 1, QKC_MAX_FILE_TENSORS + 1), 0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_file_open_memory(ctx, b.data, b.len, NULL, &file), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "2097153 metadata entries"));
    assert_non_null(strstr(qkc_context_last_error(ctx), "QKC_MAX_FILE_TENSORS"));
    qkc_context_destroy(ctx);
    qkc_bytes_free(&b);
}

/* A GGUF file that claims 2^21 + 1 tensors and is large enough to describe
 * them (33 bytes each): refused by the limit, not by running out of file. */
static void gguf_tensors_over_the_limit(void **state)
{
    size_t len = 24 + 33 * (size_t)(QKC_MAX_FILE_TENSORS + 1);
    uint8_t *g = calloc(len, 1);
    qkc_context *ctx;
    qkc_file *file;
    uint64_t nt = (uint64_t)QKC_MAX_FILE_TENSORS + 1;
    (void)state;
    assert_non_null(g);
    memcpy(g, "GGUF\3\0\0\0", 8);
    for (int i = 0; i < 8; i++)
        g[8 + i] = (uint8_t)(nt >> (8 * i));
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_file_open_memory(ctx, g, len, NULL, &file), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "2097153 tensors"));
    qkc_context_destroy(ctx);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_tensors_and_metadata),
        cmocka_unit_test(metadata_over_the_limit),
        cmocka_unit_test(gguf_tensors_over_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
