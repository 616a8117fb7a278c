/*
 * AArch64 kernels under emulation: every kernel of an AOT library made by
 * `qkc compile --emit lib --target aarch64-...` (tests/aarch64_test.sh),
 * run through the runtime cross-built for aarch64 (no LLVM), against the
 * reference matmul with the tolerance rules of the JIT tests
 * (tests/util/kernel_check.c).
 *
 * For each spec of the library and each of its variants, the target
 * option forces the variant: a variant whose features this (emulated) CPU has must run,
 * be the entry point its table row names, and match the reference for
 * every M of the list; one it lacks must be refused with QKC_ERR_NO_DEVICE.
 * Then, without a target, the runtime's own choice is printed and,
 * with --expect-default TARGET, checked.
 *
 * Usage: aarch64_kernels [--expect-default TARGET] [--ran-at-least N]
 * Exit status: 0 when every check holds, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "qkc_cross_kernels.h"
#include "util/testutil.h"

typedef void (*entry_fn)(const qkc_kernel_args *);
static const entry_fn entries[] = QKC_AOT_CROSS_ENTRY_POINTS;
static const int64_t ms[] = {1, 3, 8, 17};

int main(int argc, char **argv)
{
    const qkc_aot_library *lib = &qkc_aot_cross;
    const char *expect_default = NULL;
    qkc_context *ctx;
    int failures = 0, ran = 0, refused = 0, kernels = qkc_aot_variant_count(lib), ran_at_least = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--expect-default") && i + 1 < argc)
            expect_default = argv[++i];
        else if (!strcmp(argv[i], "--ran-at-least") && i + 1 < argc)
            ran_at_least = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--expect-default TARGET] [--ran-at-least N]\n", argv[0]);
            return 2;
        }
    }
    if (kernels != QKC_AOT_CROSS_KERNELS || qkc_context_create(NULL, &ctx) != QKC_OK) {
        fprintf(stderr, "error: the library has %d kernels, its header says %d\n", kernels, QKC_AOT_CROSS_KERNELS);
        return 1;
    }
    for (int r = 0; r < kernels; r++) {
        qkc_aot_variant_info vi;
        qkc_spec *spec = NULL;
        qkc_kernel *kern = NULL;
        qkc_kernel_info ki;
        qkc_status st;
        if (qkc_aot_variant(lib, r, &vi) != QKC_OK || qkc_spec_parse(ctx, vi.spec, &spec) != QKC_OK) {
            fprintf(stderr, "error: kernel %d: %s\n", r, qkc_context_last_error(ctx));
            failures++;
            continue;
        }
        {
            qkc_compile_options opt = {sizeof opt, vi.target, NULL, 0};
            st = qkc_aot_kernel(ctx, lib, spec, &opt, &kern);
        }
        if (st == QKC_ERR_NO_DEVICE) {
            printf("refused %s | %s: %s\n", vi.target, vi.spec, qkc_context_last_error(ctx));
            refused++;
        } else if (st != QKC_OK) {
            fprintf(stderr, "FAILED %s | %s: %s\n", vi.target, vi.spec, qkc_context_last_error(ctx));
            failures++;
        } else {
            qkc_kernel_query(kern, &ki);
            if (strcmp(ki.target, vi.target) || ki.entry != (uintptr_t)entries[r] || !ki.ahead_of_time) {
                fprintf(stderr, "FAILED %s | %s: the kernel that runs is %s at %#lx, not entry point %s\n", vi.target,
                        vi.spec, ki.target, (unsigned long)ki.entry, vi.symbol);
                failures++;
            } else {
                int bad = 0;
                for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
                    char name[2300], msg[2600];
                    snprintf(name, sizeof name, "%s|%s|m=%lld", vi.target, vi.spec, (long long)ms[i]);
                    if (qkc_test_kernel_case(ctx, spec, kern, name, ms[i], 2, msg, sizeof msg)) {
                        fprintf(stderr, "FAILED %s\n", msg);
                        bad = 1;
                    }
                }
                failures += bad;
                ran++;
                printf("%s %s | %s (%s)\n", bad ? "FAILED" : "ok", vi.target, vi.spec, vi.symbol);
            }
            qkc_kernel_destroy(kern);
        }
        qkc_spec_destroy(spec);
    }
    /* the runtime's own choice, per spec (the rows of a spec are adjacent) */
    for (int r = 0; r < kernels; r++) {
        qkc_aot_variant_info vi, prev;
        qkc_spec *spec = NULL;
        qkc_kernel *kern = NULL;
        qkc_kernel_info ki;
        qkc_aot_variant(lib, r, &vi);
        if (r && qkc_aot_variant(lib, r - 1, &prev) == QKC_OK && !strcmp(prev.spec, vi.spec))
            continue;
        if (qkc_spec_parse(ctx, vi.spec, &spec) != QKC_OK || qkc_aot_kernel(ctx, lib, spec, NULL, &kern) != QKC_OK) {
            fprintf(stderr, "FAILED default dispatch | %s: %s\n", vi.spec, qkc_context_last_error(ctx));
            failures++;
        } else {
            qkc_kernel_query(kern, &ki);
            if (expect_default && strcmp(ki.target, expect_default)) {
                fprintf(stderr, "FAILED default dispatch | %s: picked %s, expected %s\n", vi.spec, ki.target,
                        expect_default);
                failures++;
            } else if (r == 0) {
                printf("default dispatch picks %s (features %s)\n", ki.target, ki.features);
            }
        }
        qkc_kernel_destroy(kern);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    if (ran < ran_at_least) {
        fprintf(stderr, "FAILED: %d kernels ran, expected at least %d\n", ran, ran_at_least);
        failures++;
    }
    printf("%d kernels: %d ran (x %d values of M), %d refused, %d failures\n", kernels, ran,
           (int)(sizeof ms / sizeof ms[0]), refused, failures);
    return failures ? 1 : 0;
}
