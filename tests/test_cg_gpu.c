/*
 * GPU kernels against the reference. The no-driver path is checked
 * everywhere (a driver library that does not exist, via QKC_CUDA_LIBRARY):
 * every GPU entry point says "no CUDA driver" with QKC_ERR_NO_DEVICE.
 * With a CUDA driver and a device, kernels for every format family run
 * for several M and are compared with the reference (tests/util's
 * tolerance table); without one the test prints "skipped: no CUDA driver
 * ..." (or "no CUDA device") and exits 77.
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
#include "util/testutil.h"

static void test_no_driver_is_a_clear_error(void **state)
{
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *k = NULL;
    qkc_device_info info;
    qkc_device_ptr p = 1;
    qkc_compile_options opt = {sizeof opt, "nvptx-sm80", NULL, 0};
    (void)state;
    assert_int_equal(setenv("QKC_CUDA_LIBRARY", "libqkc-no-such-driver.so.1", 1), 0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(unsetenv("QKC_CUDA_LIBRARY"), 0); /* read when the context was created */
    assert_int_equal(qkc_device_query(ctx, &info), QKC_ERR_NO_DEVICE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "no CUDA driver (libqkc-no-such-driver.so.1 not found)"));
    assert_int_equal(qkc_device_alloc(ctx, 64, &p), QKC_ERR_NO_DEVICE);
    assert_true(p == 0);
    assert_int_equal(qkc_device_synchronize(ctx), QKC_ERR_NO_DEVICE);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &k), QKC_ERR_NO_DEVICE);
    assert_null(k);
    assert_non_null(strstr(qkc_context_last_error(ctx), "no CUDA driver"));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* the GPU suite's specs and M values (shared with test_cg_gpu_emu) */
#include "gpu/specs.inc"

static void test_kernels_match_reference(void **state)
{
    qkc_context *ctx;
    qkc_device_info info;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_device_query(ctx, &info), QKC_OK);
    printf("device: %s (sm_%d)\n", info.name, info.sm);
    for (int t = 0; t < 2; t++) {
        const char *target = t ? "nvptx-sm90" : "nvptx-sm80";
        if (t && info.sm < 90)
            continue;
        for (size_t i = 0; i < sizeof gpu_specs / sizeof gpu_specs[0]; i++) {
            qkc_spec *spec;
            qkc_kernel *k;
            qkc_compile_options opt = {sizeof opt, target, NULL, 0};
            assert_int_equal(qkc_spec_parse(ctx, gpu_specs[i], &spec), QKC_OK);
            if (qkc_kernel_compile(ctx, spec, &opt, &k) != QKC_OK)
                fail_msg("%s on %s: %s", gpu_specs[i], target, qkc_context_last_error(ctx));
            for (size_t j = 0; j < sizeof gpu_ms / sizeof gpu_ms[0]; j++) {
                char name[600], msg[512];
                snprintf(name, sizeof name, "%s@%s:m=%lld", gpu_specs[i], target, (long long)gpu_ms[j]);
                if (qkc_test_kernel_case(ctx, spec, k, name, gpu_ms[j], 0, msg, sizeof msg))
                    fail_msg("%s: %s", name, msg);
            }
            qkc_kernel_destroy(k);
            qkc_spec_destroy(spec);
        }
    }
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest no_driver[] = {cmocka_unit_test(test_no_driver_is_a_clear_error)};
    const struct CMUnitTest gpu[] = {cmocka_unit_test(test_kernels_match_reference)};
    qkc_context *ctx;
    qkc_device_info info;
    int rc = cmocka_run_group_tests(no_driver, NULL, NULL);
    if (rc)
        return rc;
    if (qkc_context_create(NULL, &ctx) != QKC_OK)
        return 1;
    if (qkc_device_query(ctx, &info) != QKC_OK) {
        printf("skipped: %s\n", qkc_context_last_error(ctx));
        qkc_context_destroy(ctx);
        return 77;
    }
    qkc_context_destroy(ctx);
    return cmocka_run_group_tests(gpu, NULL, NULL);
}
