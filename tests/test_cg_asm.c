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

/* The basic blocks of the assembly that contain `insn`: how many, how
 * many of their instructions move a vector register to or from the stack
 * (%rsp), summed, and how many are `insn` (*dots). */
static int stack_refs_in_blocks_with(const char *asm_text, const char *insn, int *blocks, int *dots)
{
    int refs = 0, block_refs = 0, block_dots = 0;
    char buf[512];
    *blocks = *dots = 0;
    while (next_line(&asm_text, buf, sizeof buf)) {
        if (buf[0] == '.' && strstr(buf, ":")) { /* a label: a new block */
            refs += block_dots ? block_refs : 0;
            *blocks += block_dots > 0;
            *dots += block_dots;
            block_refs = block_dots = 0;
        } else if (buf[0] == '\t' && buf[1] != '.') {
            block_refs += strstr(buf, "rsp)") != NULL && strstr(buf, "mm"); /* a vector register */
            block_dots += strstr(buf, insn) != NULL;
        }
    }
    if (block_dots) {
        refs += block_refs;
        (*blocks)++;
        *dots += block_dots;
    }
    return refs;
}

/* Panel kernels (codegen/lower_panel.c) with the default schedule: the
 * record loops — every block with the dot-product instruction — keep
 * their accumulators, codes and activations in vector registers: no
 * vector spills at 32 zmm (AVX-512 VNNI) or 16 ymm (AVX2), or where a
 * larger tile measured faster, few (`few`). Compact panels
 * (klayout.h: bit planes, two-level scales) have more to hold: their
 * default tiles trade a few spills to L1 for fewer decodes (sub-block
 * scales take 4 rows x 1 panel at M > 1: q4_k 4096² M = 8, 0.98 ms
 * against 1.5 ms at 2 x 1, schedule.c), and their loops may move at most
 * one vector to or from the stack per 8 dot products (a record of a row). */
static void test_panel_loops_do_not_spill(void **state)
{
    static const struct {
        const char *target, *spec, *insn;
        int few; /* at most one stack move per 8 of insn, else none */
    } cases[] = {
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q4_0 compute=int8", "vpdpbusd", 0},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q8_0 compute=int8", "vpdpbusd", 0},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q4_0 compute=int8", "vpmaddubsw", 0},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q8_0 compute=int8", "vpmaddubsw", 0},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q4_0 compute=f32", "vfmadd", 0},
        /* AVX2's 4 x 2 f32 tile of affine codes moves a vector to the
         * stack about once per 15 FMAs, and runs at 80 GFLOP/s against 55
         * for 4 x 1 (q4_0 4096² M = 512, schedule.c) */
        {"x86_64-avx2", "matmul n=4096 k=4096 w=q4_0 compute=f32", "vfmadd", 1},
        /* prefill tiles (a fixed M of 32 or more, schedule.c): 6 x 1 (q4_k
         * and q5_k keep 4 x 1, checked above) */
        {"x86_64-avx512-vnni", "matmul m=512 n=4096 k=4096 w=q4_0 compute=int8", "vpdpbusd", 1},
        {"x86_64-avx512-vnni", "matmul m=512 n=4096 k=4096 w=q8_0 compute=int8", "vpdpbusd", 1},
        {"x86_64-avx512-vnni", "matmul m=512 n=4096 k=4096 w=q6_k compute=int8", "vpdpbusd", 1},
        /* (iq4_xs at 6 x 1 moves a vector to the stack about once per 4
         * products, as at its 4 x 1 decode tile, and runs 293 against 249
         * GOP/s there at M = 512: not checked) */
        /* dense values: the FMA micro-kernel, 8 x 2 zmm and 4 x 2 ymm */
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=f32", "vfmadd", 0},
        {"x86_64-avx2", "matmul n=4096 k=4096 w=f32", "vfmadd", 0},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=bf16", "vfmadd", 0},
        {"x86_64-avx512-vnni", "matmul m=1 n=4096 k=4096 w=q4_k compute=int8", "vpdpbusd", 0},
        {"x86_64-avx512-vnni", "matmul m=1 n=4096 k=4096 w=q6_k compute=int8", "vpdpbusd", 0},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q5_0 compute=int8", "vpdpbusd", 0},
        {"x86_64-avx512-vnni", "matmul m=1 n=4096 k=4096 w=q4_k compute=f32", "vfmadd", 0},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q4_k compute=int8", "vpdpbusd", 1},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q5_k compute=int8", "vpdpbusd", 1},
        {"x86_64-avx512-vnni", "matmul n=4096 k=4096 w=q6_k compute=int8", "vpdpbusd", 1},
        /* iq4_xs at M > 1 spills more at 4 x 1 and is still faster
         * there than at 2 x 1 (0.99 against 1.26 ms): M = 1 here */
        {"x86_64-avx512-vnni", "matmul m=1 n=4096 k=4096 w=iq4_xs compute=int8", "vpdpbusd", 0},
        /* AVX2's 2 x 1 tile of q5_0 / q5_1 spills a value or two of
         * its bit plane a group, and is still faster than 1 x 1 */
        {"x86_64-avx2", "matmul m=1 n=4096 k=4096 w=q5_0 compute=int8", "vpmaddubsw", 0},
        {"x86_64-avx2", "matmul m=1 n=4096 k=4096 w=q5_1 compute=int8", "vpmaddubsw", 1},
        {"x86_64-avx2", "matmul m=1 n=4096 k=4096 w=q4_k compute=int8", "vpmaddubsw", 1},
        /* AVX2's 16 ymm and sub-block scales at M > 1: the 4 x 1 tile
         * spills (q4_k: 210 stack moves a super record for 320 products)
         * and still beats 2 x 1 and 1 x 1 (1.8-1.9 ms against 2.1-2.7 and
         * 2.5-2.7 ms at q4_k 4096² M = 8): M = 1 here */
        /* (AVX2 q6_k, two bit planes and two sums a record, spills even
         * at M = 1, and still runs 3.6x faster there than its former row
         * layout: not checked) */
        {"x86_64-avx2", "matmul m=1 n=4096 k=4096 w=iq4_xs compute=int8", "vpmaddubsw", 1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = emit(cases[i].target, cases[i].spec, "asm");
        int blocks, dots, refs = stack_refs_in_blocks_with(s, cases[i].insn, &blocks, &dots);
        if (!blocks)
            fail_msg("%s on %s: no block with %s", cases[i].spec, cases[i].target, cases[i].insn);
        if (cases[i].few ? refs * 8 > dots : refs > 0)
            fail_msg("%s on %s: %d vector stack references in the %d blocks with %d %s (spills)", cases[i].spec,
                     cases[i].target, refs, blocks, dots, cases[i].insn);
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
