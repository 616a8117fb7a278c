/*
 * A weight matrix past every 32-bit boundary: q4_0 with N = 65536 and
 * K = 65600, so N·K = 4 299 161 600 weights (> 2^32) in a blob of
 * 2 418 278 400 bytes (> 2^31). The JIT kernels of both compute types
 * (the default int8 and compute=f32) run over all of it; the
 * reference checks sampled output columns, among them the columns where
 * the element index crosses 2^31 and 2^32 and the byte offset crosses
 * 2^31, and the last rows. The reference runs on a one-column spec with
 * the same K built from each sampled row, never on the whole matrix.
 *
 * Memory: the blob and the packed copy, about 4.8 GB at the peak (2.4 GB
 * once the blob is freed); about 15 s on two cores, most of it writing
 * the blob and first touching the pages. In the default suite with the
 * ctest label `big`: `ctest -LE big` leaves it out on a small machine.
 * QKC_BIG_K=<k> (a multiple of 32) runs a smaller or larger K.
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

#include "core/timing.h"
#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "util/testutil.h"

enum { N = 65536, M = 2, BLOCK = 32, BLOCK_BYTES = 18 };

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* MemAvailable from /proc/meminfo in bytes, or -1. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Both compute types q4_0 runs: the default (int8, as llama.cpp) and
 * compute=f32. Their kernels read the same packed layout (it depends on
 * the format only), so the weights are packed once. */
static const char *const computes[] = {"", " compute=f32"};
enum { NCOMPUTE = sizeof computes / sizeof computes[0] };

static void test_big_q4_0(void **state)
{
    (void)state;
    int64_t k = getenv("QKC_BIG_K") ? strtoll(getenv("QKC_BIG_K"), NULL, 10) : 65600;
    const uint64_t row_bytes = (uint64_t)k / BLOCK * BLOCK_BYTES;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co};
    qkc_spec *spec[NCOMPUTE], *spec1;
    qkc_kernel *kern[NCOMPUTE];
    qkc_spec_info info;
    size_t wbytes, pbytes = 0;
    uint8_t *blob, *packed, *rows;
    float *a, *c[NCOMPUTE], *w1;
    char text[128];
    int64_t cols[96];
    int ncols = 0, bad = 0;
    double t0 = qkc_now_seconds(), t_fill, t_pack, t_run;
    qkc_rng r = qkc_rng_from_name("test_cg_big_matrix");

    assert_true(k > 0 && k % BLOCK == 0);
    {
        /* the blob and its packed copy live at once: about 2.2x the blob */
        double need = 2.2 * (double)N * (double)(k / BLOCK) * BLOCK_BYTES, have = mem_available();
        if (have >= 0 && have < need) {
            print_message("skipped: this test needs %.1f GB of memory, %.1f GB are available\n", need / 1e9,
                          have / 1e9);
            skip();
        }
    }
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    for (int v = 0; v < NCOMPUTE; v++) {
        snprintf(text, sizeof text, "matmul n=%d k=%lld w=q4_0%s", N, (long long)k, computes[v]);
        assert_int_equal(qkc_spec_parse(ctx, text, &spec[v]), QKC_OK);
    }
    qkc_spec_query(spec[0], &info);
    wbytes = info.weight_bytes;
    assert_true((uint64_t)wbytes == row_bytes * N);
    print_message("matmul n=%d k=%lld w=q4_0, default compute and compute=f32: %.3g weights, %zu bytes\n", N,
                  (long long)k, (double)N * (double)k, wbytes);

    /* The blob, written directly: an f16 scale per block from a small set,
     * then 16 bytes of random nibbles. */
    blob = malloc(wbytes);
    assert_non_null(blob);
    for (uint64_t n = 0; n < N; n++) {
        uint8_t *row = blob + n * row_bytes;
        for (int64_t b = 0; b < k / BLOCK; b++) {
            uint8_t *blk = row + (uint64_t)b * BLOCK_BYTES;
            uint64_t x = qkc_rng_u64(&r), y = qkc_rng_u64(&r);
            uint16_t d = qkc_f32_to_f16(0.001f * (float)(1 + (x >> 60)));
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &x, 8);
            memcpy(blk + 10, &y, 8);
        }
    }
    t_fill = qkc_now_seconds();

    /* The sampled columns: the first and last rows, where n·K crosses 2^31
     * and 2^32, where the byte offset n·row_bytes crosses 2^31, and random
     * ones. */
    {
        int64_t marks[] = {(INT64_C(1) << 31) / k, (INT64_C(1) << 32) / k, (int64_t)((UINT64_C(1) << 31) / row_bytes)};
        for (int i = 0; i < 4; i++)
            cols[ncols++] = i, cols[ncols++] = N - 1 - i;
        for (size_t j = 0; j < sizeof marks / sizeof marks[0]; j++)
            for (int64_t d = -1; d <= 1; d++)
                if (marks[j] + d >= 0 && marks[j] + d < N)
                    cols[ncols++] = marks[j] + d;
        while (ncols < 64)
            cols[ncols++] = (int64_t)qkc_rng_below(&r, N);
        qsort(cols, (size_t)ncols, sizeof cols[0], cmp_i64);
    }
    rows = malloc((size_t)ncols * row_bytes);
    assert_non_null(rows);
    for (int i = 0; i < ncols; i++)
        memcpy(rows + (uint64_t)i * row_bytes, blob + (uint64_t)cols[i] * row_bytes, row_bytes);

    for (int v = 0; v < NCOMPUTE; v++) {
        size_t bytes;
        assert_int_equal(qkc_kernel_compile(ctx, spec[v], NULL, &kern[v]), QKC_OK);
        qkc_kernel_packed_bytes(kern[v], &bytes);
        if (v == 0)
            pbytes = bytes;
        assert_true(bytes == pbytes);
    }
    packed = malloc(pbytes);
    assert_non_null(packed);
    assert_int_equal(qkc_weights_pack(ctx, kern[0], blob, wbytes, packed, pbytes), QKC_OK);
    free(blob);
    t_pack = qkc_now_seconds();

    a = malloc((size_t)(M * k) * sizeof *a);
    assert_non_null(a);
    for (int64_t i = 0; i < M * k; i++)
        a[i] = qkc_rng_normal(&r);
    for (int v = 0; v < NCOMPUTE; v++) {
        c[v] = malloc((size_t)M * N * sizeof *c[v]);
        assert_non_null(c[v]);
        qkc_matmul_args args = {a, k, packed, pbytes, NULL, c[v], N, M};
        assert_int_equal(qkc_kernel_run(ctx, kern[v], &args, NULL), QKC_OK);
    }
    t_run = qkc_now_seconds();

    /* The reference, one sampled column at a time. */
    w1 = malloc((size_t)k * sizeof *w1);
    assert_non_null(w1);
    for (int v = 0; v < NCOMPUTE; v++) {
        snprintf(text, sizeof text, "matmul n=1 k=%lld w=q4_0%s", (long long)k, computes[v]);
        assert_int_equal(qkc_spec_parse(ctx, text, &spec1), QKC_OK);
        for (int i = 0; i < ncols; i++) {
            float cr[M];
            qkc_matmul_args ar = {a, k, rows + (uint64_t)i * row_bytes, (size_t)row_bytes, NULL, cr, 1, M};
            assert_int_equal(qkc_reference_matmul(ctx, spec1, &ar), QKC_OK);
            assert_int_equal(qkc_dequantize(ctx, spec1, rows + (uint64_t)i * row_bytes, (size_t)row_bytes, w1, k),
                             QKC_OK);
            for (int m = 0; m < M; m++) {
                double cond = 0, got = c[v][(int64_t)m * N + cols[i]], want = cr[m], bound;
                for (int64_t t = 0; t < k; t++)
                    cond += fabs((double)a[m * k + t] * (double)w1[t]);
                bound = 8.0 * sqrt((double)k) * 0x1p-24 * cond;
                if (!(fabs(got - want) <= bound)) {
                    print_error("%s: column %lld row %d: kernel %.9g, reference %.9g, |diff| %.3g exceeds %.3g\n",
                                text, (long long)cols[i], m, got, want, fabs(got - want), bound);
                    bad++;
                }
            }
        }
        qkc_spec_destroy(spec1);
    }
    print_message("%d columns checked for %d compute types; fill %.1f s, compile + pack %.1f s, run %.2f s, "
                  "reference %.1f s\n",
                  ncols, NCOMPUTE, t_fill - t0, t_pack - t_fill, t_run - t_pack, qkc_now_seconds() - t_run);
    free(w1), free(rows), free(packed), free(a);
    for (int v = 0; v < NCOMPUTE; v++) {
        free(c[v]);
        qkc_kernel_destroy(kern[v]);
        qkc_spec_destroy(spec[v]);
    }
    qkc_context_destroy(ctx);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_q4_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
