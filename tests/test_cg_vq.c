/*
 * JIT kernels of the VQ kernel layout (w=vq: u16 codeword indices per chunk,
 * the f32 codebook after the rows) against the reference on the host's
 * levels: every V, K tails (partial chunks), several M and N, f32 and bf16
 * compute, an f16 epilogue.
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
#include "targets/target.h"
#include "util/testutil.h"

/* JIT kernels of the VQ layout against the reference: every V, tails of K
 * (partial chunks), several M and N, f32 and bf16 compute, epilogues. */
static void test_kernels(void **state)
{
    (void)state;
    static const char *formats[] = {"w=vq vq=2:8", "w=vq vq=4:8 table=f32", "w=vq vq=8:6", "w=vq vq=4:12 table=f32"};
    static const char *extras[] = {"", "compute=bf16", "a=f16 bias=f32 act=gelu out=f16"};
    static const int64_t ks[] = {8, 40, 256, 1000};
    static const int64_t ns[] = {1, 17};
    static const int64_t ms[] = {1, 3, 8};
    const char *targets[2];
    int nt = 0, ran = 0, failures = 0;
    uint32_t host = qkc_target_host_features();
    qkc_context *ctx;
    if (qkc_target_host_arch() == QKC_ARCH_AARCH64) {
        /* feature bits are read with their architecture: bit 1 is fp16 here */
        targets[nt++] = "aarch64-neon";
        if (host & QKC_FEAT_DOTPROD)
            targets[nt++] = "host";
    } else if (qkc_target_host_arch() == QKC_ARCH_X86_64) {
        if (host & QKC_FEAT_AVX512BW)
            targets[nt++] = "x86_64-avx512";
        if (host & QKC_FEAT_AVX2)
            targets[nt++] = "x86_64-avx2";
    }
    if (!nt)
        skip();
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (int t = 0; t < nt; t++)
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
            for (size_t e = 0; e < sizeof extras / sizeof extras[0]; e++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                        char text[256], name[400];
                        qkc_spec *spec;
                        qkc_kernel *kern;
                        qkc_compile_options opt = {sizeof opt, targets[t], NULL, 0};
                        if ((int64_t)(f + e + ki + ni) % 2 && ks[ki] == 1000)
                            continue; /* keep it quick */
                        snprintf(text, sizeof text, "matmul n=%lld k=%lld %s %s", (long long)ns[ni], (long long)ks[ki],
                                 formats[f], extras[e]);
                        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
                            continue; /* k not a multiple of V */
                        if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK) {
                            print_error("%s on %s: compile failed: %s\n", text, targets[t], qkc_context_last_error(ctx));
                            failures++;
                            qkc_spec_destroy(spec);
                            continue;
                        }
                        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                            char err[1024];
                            snprintf(name, sizeof name, "%s|%s|m=%lld", targets[t], text, (long long)ms[mi]);
                            ran++;
                            if (qkc_test_kernel_case(ctx, spec, kern, name, ms[mi], 1, err, sizeof err)) {
                                print_error("%s\n", err);
                                failures++;
                            }
                        }
                        qkc_kernel_destroy(kern);
                        qkc_spec_destroy(spec);
                    }
    print_message("%d vq kernels compared with the reference\n", ran);
    qkc_context_destroy(ctx);
    assert_true(ran > 0);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
