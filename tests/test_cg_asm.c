/*
 * Assembly checks: the instruction a feature exists for appears when the
 * target has the feature and not when it lacks it. Code is generated for
 * named targets, so these run on any x86-64 machine (nothing is executed).
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

static char *emit(const char *target, const char *spec_text, const char *what)
{
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    size_t need = 0;
    char *buf;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_spec_parse(ctx, spec_text, &spec) != QKC_OK)
        fail_msg("%s: %s", spec_text, qkc_context_last_error(ctx));
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, what, NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
    buf = malloc(need + 1);
    if (qkc_kernel_emit(ctx, spec, &opt, what, buf, need + 1, NULL) != QKC_OK)
        fail_msg("%s on %s: %s", spec_text, target, qkc_context_last_error(ctx));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    return buf;
}

/* The next line of *text into buf (cut to its size), *text moved past it;
 * 0 at the end. */
static int next_line(const char **text, char *buf, size_t size)
{
    const char *line = *text, *end;
    size_t len;
    if (!line || !*line)
        return 0;
    end = strchr(line, '\n');
    len = end ? (size_t)(end - line) : strlen(line);
    if (len >= size)
        len = size - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    *text = end ? end + 1 : NULL;
    return 1;
}

/* Does a line of the assembly contain both `insn` and `reg`? */
static int has_insn(const char *asm_text, const char *insn, const char *reg)
{
    char buf[512];
    while (next_line(&asm_text, buf, sizeof buf))
        if (strstr(buf, insn) && (!reg || strstr(buf, reg)))
            return 1;
    return 0;
}

static void test_vnni_int8_uses_vpdpbusd_zmm(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "matmul n=4096 k=4096 w=q4_0 compute=int8",
        "matmul n=4096 k=4096 w=q8_0 compute=int8",
        "matmul n=4096 k=4096 w=int4 group=128 scale=f16 zero=int compute=int8",
        "matmul n=4096 k=4096 w=iq4_nl compute=int8",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char *s = emit("x86_64-avx512-vnni", specs[i], "asm");
        if (!has_insn(s, "vpdpbusd", "zmm"))
            fail_msg("%s on x86_64-avx512-vnni: no vpdpbusd on zmm in the kernel", specs[i]);
        free(s);
    }
}

static void test_no_vnni_without_the_feature(void **state)
{
    (void)state;
    char *s = emit("x86_64-avx512", "matmul n=4096 k=4096 w=q4_0 compute=int8", "asm");
    assert_false(has_insn(s, "vpdpbusd", NULL));
    free(s);
    s = emit("x86_64-avx2", "matmul n=4096 k=4096 w=q4_0 compute=int8", "asm");
    assert_false(has_insn(s, "vpdpbusd", NULL));
    assert_true(has_insn(s, "vpmaddubsw", "ymm"));
    free(s);
    s = emit("x86_64-avx2", "matmul n=4096 k=4096 w=q8_0 compute=int8", "asm");
    assert_true(has_insn(s, "vpsignb", "ymm"));
    assert_true(has_insn(s, "vpmaddubsw", "ymm"));
    free(s);
}

static void test_avx2_has_no_zmm(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "matmul n=4096 k=4096 w=q4_0 compute=f32",
        "matmul n=4096 k=4096 w=q4_k compute=int8",
        "matmul n=300 k=250 w=nf4 group=64 bias=f32 act=gelu out=bf16",
        "matmul n=300 k=256 w=fp8e4m3 compute=bf16",
        "matmul n=300 k=256 w=mxfp4 compute=f32",
        "matmul n=300 k=256 a=f16 w=bf16 compute=f16 out=f16",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char *s = emit("x86_64-avx2", specs[i], "asm");
        if (strstr(s, "zmm"))
            fail_msg("%s on x86_64-avx2: a zmm register appears", specs[i]);
        if (!strstr(s, "ymm"))
            fail_msg("%s on x86_64-avx2: no ymm register: not vectorised?", specs[i]);
        free(s);
    }
}

static void test_avx512_uses_zmm_fma_and_vpermps(void **state)
{
    (void)state;
    char *s = emit("x86_64-avx512", "matmul n=4096 k=4096 w=q4_0 compute=f32", "asm");
    assert_true(has_insn(s, "vfmadd", "zmm"));
    free(s);
    s = emit("x86_64-avx512", "matmul n=4096 k=4096 w=nf4_bnb", "asm");
    /* in-register codebook lookup: a 16-lane permute (LLVM may pick the
     * integer form vpermd of the same operation) */
    assert_true(has_insn(s, "vpermps", "zmm") || has_insn(s, "vpermd", "zmm"));
    free(s);
    s = emit("x86_64-avx2", "matmul n=4096 k=4096 w=nf4_bnb", "asm");
    assert_true(has_insn(s, "vpermps", "ymm") || has_insn(s, "vpermd", "ymm"));
    free(s);
}

static void test_llvm_ir_is_vector_code(void **state)
{
    (void)state;
    char *s = emit("x86_64-avx512", "matmul n=64 k=256 w=q4_0 compute=f32", "llvm");
    assert_non_null(strstr(s, "<16 x float>"));
    assert_non_null(strstr(s, "llvm.fma.v16f32"));
    free(s);
}

/* The basic blocks of the assembly that contain `insn`: how many, and how
 * many of their instructions move a vector register to or from the stack
 * (%rsp), summed. */
static int stack_refs_in_blocks_with(const char *asm_text, const char *insn, int *blocks)
{
    int refs = 0, block_refs = 0, hit = 0;
    char buf[512];
    *blocks = 0;
    while (next_line(&asm_text, buf, sizeof buf)) {
        if (buf[0] == '.' && strstr(buf, ":")) { /* a label: a new block */
            refs += hit ? block_refs : 0;
            *blocks += hit;
            block_refs = hit = 0;
        } else if (buf[0] == '\t' && buf[1] != '.') {
            block_refs += strstr(buf, "rsp)") != NULL && strstr(buf, "mm"); /* a vector register */
            hit |= strstr(buf, insn) != NULL;
        }
    }
    if (hit) {
        refs += block_refs;
        (*blocks)++;
    }
    return refs;
}

/* Panel kernels (codegen/lower_panel.c) with the default schedule: the
 * record loops — every block with the dot-product instruction — keep
 * their accumulators, codes and activations in vector registers: no
 * vector spills at 32 zmm (AVX-512 VNNI) or 16 ymm (AVX2). */
static void test_panel_loops_do_not_spill(void **state)
{
    static const struct {
        const char *target, *spec, *insn;
    } cases[] = {
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q4_0 compute=int8", "vpdpbusd"},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q8_0 compute=int8", "vpdpbusd"},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q4_0 compute=int8", "vpmaddubsw"},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q8_0 compute=int8", "vpmaddubsw"},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q4_0 compute=f32", "vfmadd"},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q4_0 compute=f32", "vfmadd"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = emit(cases[i].target, cases[i].spec, "asm");
        int blocks, refs = stack_refs_in_blocks_with(s, cases[i].insn, &blocks);
        if (!blocks)
            fail_msg("%s on %s: no block with %s", cases[i].spec, cases[i].target, cases[i].insn);
        if (refs)
            fail_msg("%s on %s: %d vector stack references in the %d blocks with %s (spills)", cases[i].spec,
                     cases[i].target, refs, blocks, cases[i].insn);
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vnni_int8_uses_vpdpbusd_zmm), cmocka_unit_test(test_panel_loops_do_not_spill),
        cmocka_unit_test(test_no_vnni_without_the_feature),
        cmocka_unit_test(test_avx2_has_no_zmm),               cmocka_unit_test(test_avx512_uses_zmm_fma_and_vpermps),
        cmocka_unit_test(test_llvm_ir_is_vector_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
