/*
 * libFuzzer harness, differential: random valid specs, compiled by the JIT
 * on tiny shapes and run against the reference on random data. The input
 * picks the weight format (every row of the tolerance table), N, K, M, the
 * compute type, epilogue, activation and output dtypes, the ISA level and
 * the data's seed; any mismatch beyond the tolerance table's bounds (the
 * check test_cg_kernel uses), a compile or run failure of a verified spec,
 * a crash or a sanitizer report is a bug. Specs the verifier refuses for
 * the drawn shape are skipped.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/testutil.h"
#include "util/tolerance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static qkc_context *ctx;
static int runs;

/* A fresh context every so many runs: compiled code lives as long as its
 * context, and a long fuzzing run compiles thousands of kernels. */
static int new_context(void)
{
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_context_destroy(ctx);
    ctx = NULL;
    return qkc_context_create(&co, &ctx) == QKC_OK ? 0 : 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return new_context();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const compute[] = {"compute=f32", "compute=int8", "compute=bf16", "compute=f16", "compute=tf32"};
    static const char *const act[] = {"", "act=relu", "act=gelu", "act=silu"};
    static const char *const out[] = {"", "out=f16", "out=bf16"};
    static const char *const a_type[] = {"", "a=f16", "a=bf16"};
    size_t nformats;
    const qkc_tol_roundtrip *formats = qkc_tol_roundtrip_table(&nformats);
    uint8_t b[8] = {0};
    char text[512], name[640], msg[1024];
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL;
    const char *target;
    int64_t n, m, kmul;
    if (++runs % 512 == 0 && new_context())
        abort();
    memcpy(b, data, size < sizeof b ? size : sizeof b);
    n = 1 + b[1] % 40;
    m = 1 + b[3] % 9;
    kmul = 1 + b[2] % 8;
    target = (b[5] & 1) || !(qkc_target_host_features() & QKC_FEAT_AVX512BW) ? "x86_64-avx2" : "host";
    /* K: a multiple of 32 first, else of 256 (super-block formats) */
    for (int attempt = 0; attempt < 2 && !spec; attempt++) {
        int64_t k = attempt == 0 ? 32 * kmul : 256 * (1 + kmul % 2);
        snprintf(text, sizeof text, "matmul n=%lld k=%lld %s %s %s %s %s %s", (long long)n, (long long)k,
                 formats[b[0] % nformats].weights, compute[b[4] % 5], act[(b[4] / 5) % 4], out[(b[4] / 20) % 3],
                 a_type[(b[5] >> 1) % 3], (b[5] & 8) ? "bias=f32" : "");
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK)
            spec = NULL;
    }
    if (!spec)
        return 0;
    {
        qkc_compile_options opt = {.struct_size = sizeof opt, .target = target, .schedule = NULL};
        if (qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK) {
            fprintf(stderr, "fuzz_diff: %s for %s: compile failed: %s\n", text, target, qkc_context_last_error(ctx));
            abort();
        }
    }
    /* the data's seed: the whole input */
    snprintf(name, sizeof name, "%s|%s|m=%lld|%02x%02x%02x%02x", target, text, (long long)m, b[6], b[7],
             size > 8 ? data[8] : 0, size > 9 ? data[size - 1] : 0);
    if (qkc_test_kernel_case(ctx, spec, kern, name, m, 1, msg, sizeof msg)) {
        fprintf(stderr, "fuzz_diff: %s\n", msg);
        abort();
    }
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    return 0;
}
