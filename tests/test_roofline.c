/*
 * Roofline measurements (bench/roofline.h): with tiny sizes every function
 * returns a finite positive rate, on every ISA path this machine can run
 * (QKC_ROOFLINE_ISA caps the choice), and 0 where it cannot measure.
 * Speed itself is measured by the benchmarks, never asserted here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/roofline.h"

static int positive(double v)
{
    return isfinite(v) && v > 0;
}

static void check_all(qkc_threadpool *pool, const char *cap)
{
    static const size_t sizes[] = {1, 63, 4096, 100003, (1u << 20) + 77, 3u << 20};
    if (cap)
        setenv("QKC_ROOFLINE_ISA", cap, 1);
    else
        unsetenv("QKC_ROOFLINE_ISA");
    print_message("  isa cap %s: read %s, flops %s, int8 %s\n", cap ? cap : "-",
                  qkc_roofline_read_isa(), qkc_roofline_flops_isa(), qkc_roofline_int8_isa());
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        for (int threads = 0; threads <= 2; threads++) {
            double gbps = qkc_roofline_read_gbps(pool, threads, sizes[i], 2);
            if (!positive(gbps))
                fail_msg("read %zu bytes, %d threads, cap %s: %g", sizes[i], threads, cap ? cap : "-", gbps);
        }
    }
    if (strcmp(qkc_roofline_flops_isa(), "none") == 0)
        assert_true(qkc_roofline_peak_gflops(pool, 0, 1) == 0);
    else
        assert_true(positive(qkc_roofline_peak_gflops(pool, 0, 1)));
    if (strcmp(qkc_roofline_int8_isa(), "none") == 0)
        assert_true(qkc_roofline_peak_gops(pool, 0, 1) == 0);
    else
        assert_true(positive(qkc_roofline_peak_gops(pool, 0, 1)));
}

static void test_finite_positive(void **state)
{
    (void)state;
    qkc_context *ctx = NULL;
    qkc_threadpool *pool = NULL;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_threadpool_create(ctx, 2, &pool), QKC_OK);
    check_all(pool, NULL);
    check_all(pool, "avx2");
    check_all(pool, "generic");
    unsetenv("QKC_ROOFLINE_ISA");
    /* A NULL pool is one thread; zero bytes cannot be measured. */
    assert_true(positive(qkc_roofline_read_gbps(NULL, 0, 4096, 1)));
    if (strcmp(qkc_roofline_flops_isa(), "none") == 0) {
        print_message("skipped: the FMA peak with a NULL pool (no compute-peak path for this CPU family)\n");
        assert_true(qkc_roofline_peak_gflops(NULL, 4, 1) == 0);
    } else {
        assert_true(positive(qkc_roofline_peak_gflops(NULL, 4, 1)));
    }
    assert_true(qkc_roofline_read_gbps(pool, 0, 0, 1) == 0);
    assert_true(positive(qkc_roofline_read_gbps(pool, 0, 4096, 0))); /* reps 0 counts as 1 */
    qkc_threadpool_destroy(pool);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_finite_positive)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
