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
    assert_int_equal(unsetenv("QKC_CUDA_LIBRARY"), 0);
}

static const char *const specs[] = {
    "matmul n=96 k=512 w=q4_0",
    "matmul n=96 k=512 w=q4_1 compute=int8",
    "matmul n=96 k=512 w=q5_0 bias=f32 act=silu",
    "matmul n=96 k=512 w=q5_1 out=bf16",
    "matmul n=96 k=512 w=q8_0 compute=int8 act=relu",
    "matmul n=96 k=512 a=bf16 w=q4_k compute=bf16 bias=f32 act=gelu out=f16",
    "matmul n=96 k=512 w=q5_k",
    "matmul n=96 k=512 w=q6_k compute=tf32",
    "matmul n=96 k=512 w=iq4_nl",
    "matmul n=96 k=512 w=mxfp4",
    "matmul n=96 k=512 w=mxfp8",
    "matmul n=96 k=512 w=nf4_bnb a=f16 compute=f16",
    "matmul n=96 k=512 w=gptq:4 group=128",
    "matmul n=96 k=512 w=gptq:8:actorder group=32",
    "matmul n=96 k=512 w=awq group=128",
    "matmul n=17 k=250 w=int4 group=48 scale=f16",
    "matmul n=17 k=250 w=fp8e5m2 group=128 scale=fp8e4m3:f32:2",
    "matmul n=17 k=250 w=f16",
    "matmul n=17 k=250 w=bf16",
    "matmul n=17 k=250 w=f32",
    /* tensor cores (m >= 16) and dp4a: every compute type, columns and
     * rows off the warp tile, mins, zeros and tables on the int8 path */
    "matmul n=100 k=512 w=q4_0 compute=bf16 bias=f32 act=silu",
    "matmul n=100 k=512 a=f16 w=uint4 group=32 scale=f16 zero=float compute=f16",
    "matmul n=100 k=512 w=mxfp4 compute=tf32 out=bf16",
    "matmul n=100 k=512 w=q4_k compute=int8",
    "matmul n=100 k=512 w=iq4_nl compute=int8 bias=f32",
    "matmul n=100 k=512 w=int4 group=128 scale=f16 zero=int compute=int8",
    "matmul n=100 k=512 w=int8 group=32 scale=bf16 zero=int compute=int8",
};

static void test_kernels_match_reference(void **state)
{
    static const int64_t ms[] = {1, 3, 8, 16, 17, 40, 64};
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
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            qkc_spec *spec;
            qkc_kernel *k;
            qkc_compile_options opt = {sizeof opt, target, NULL, 0};
            assert_int_equal(qkc_spec_parse(ctx, specs[i], &spec), QKC_OK);
            if (qkc_kernel_compile(ctx, spec, &opt, &k) != QKC_OK)
                fail_msg("%s on %s: %s", specs[i], target, qkc_context_last_error(ctx));
            for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
                char name[600], msg[512];
                snprintf(name, sizeof name, "%s@%s:m=%lld", specs[i], target, (long long)ms[j]);
                if (qkc_test_kernel_case(ctx, spec, k, name, ms[j], 0, msg, sizeof msg))
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
