/*
 * AArch64 code generation on any host (nothing is executed here; the
 * kernels run under qemu in tests/aarch64_test.sh): the instruction a
 * feature exists for appears when the target has the feature and not when
 * it lacks it — sdot with dotprod, usdot with i8mm, smmla with i8mm for
 * tiles of two rows and two columns or more on the row layout (not for
 * GEMV tiles), tbl for codebooks — int8 kernels read weight panels (sdot
 * by element with dotprod, smull and smlal without, no stack spills in
 * the loop over records), the float path is 128-bit vector code, and the
 * targets' rules hold:
 * aarch64 targets do not run on another architecture, take 128-bit
 * schedules only, and do not share a library with x86 kernels.
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

/* The kernel's `what` (asm, llvm) for a target, with the schedule given
 * as text, or NULL for the heuristic's. */
static char *emit_scheduled(const char *target, const char *spec_text, const char *schedule, const char *what)
{
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_schedule sch;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    size_t need = 0;
    char *buf;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    if (qkc_spec_parse(ctx, spec_text, &spec) != QKC_OK)
        fail_msg("%s: %s", spec_text, qkc_context_last_error(ctx));
    if (schedule) {
        if (qkc_schedule_parse(ctx, schedule, &sch) != QKC_OK)
            fail_msg("%s: %s", schedule, qkc_context_last_error(ctx));
        opt.schedule = &sch;
    }
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, what, NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
    buf = malloc(need + 1);
    if (qkc_kernel_emit(ctx, spec, &opt, what, buf, need + 1, NULL) != QKC_OK)
        fail_msg("%s on %s: %s", spec_text, target, qkc_context_last_error(ctx));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    return buf;
}

static char *emit(const char *target, const char *spec_text, const char *what)
{
    return emit_scheduled(target, spec_text, NULL, what);
}

/* Is `mnemonic` an instruction of the assembly ("\tsdot\t...")? */
static int has_insn(const char *asm_text, const char *mnemonic)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\t%s\t", mnemonic);
    return strstr(asm_text, pat) != NULL;
}

static const char *const int8_specs[] = {
    "matmul n=4096 k=4096 w=q4_0 compute=int8",
    "matmul n=4096 k=4096 w=q8_0 compute=int8",
    "matmul n=4096 k=4096 w=int4 group=128 scale=f16 zero=int compute=int8",
    "matmul n=4096 k=4096 w=iq4_nl compute=int8",
    "matmul n=4096 k=4096 w=q4_k compute=int8",
};

/* The same formats on the row layout: with activation outliers the int8
 * path does not take panels. */
static const char *const int8_row_specs[] = {
    "matmul n=4096 k=4096 w=q4_0 outliers=act:6 compute=int8",
    "matmul n=4096 k=4096 w=q8_0 outliers=act:6 compute=int8",
    "matmul n=4096 k=4096 w=int4 group=128 scale=f16 zero=int outliers=act:6 compute=int8",
    "matmul n=4096 k=4096 w=iq4_nl outliers=act:6 compute=int8",
    "matmul n=4096 k=4096 w=q4_k outliers=act:6 compute=int8",
};

/* The multiplies of panel kernels, on the line at p: with dotprod the
 * by-element form of a dot product ("\tsdot\tv1.4s, v2.16b, v3.4b[2]"),
 * without it the widening multiplies of bytes (smull, smull2, smlal,
 * smlal2 .8h). */
static int is_panel_multiply(const char *p, const char *eol, int dotprod)
{
    const char *b;
    if (dotprod) {
        if (strncmp(p, "\tsdot\t", 6) && strncmp(p, "\tusdot\t", 7))
            return 0;
        b = strstr(p, ".4b[");
    } else {
        if (strncmp(p, "\tsmull", 6) && strncmp(p, "\tsmlal", 6))
            return 0;
        b = strstr(p, ".8h, v");
    }
    return b && b < eol;
}

typedef struct dot_loop {
    int loops;    /* innermost loops with panel multiplies */
    int max_dots; /* the most of them in one such loop */
    int spills;   /* stack references (sp, x29) inside such loops */
} dot_loop;

/* The innermost loops (a label, and a later branch back to it, with no
 * other such pair inside) that hold panel multiplies (is_panel_multiply):
 * the loops over the records of panel tiles. */
static dot_loop dot_loops(const char *asm_text, int dotprod)
{
    enum { MAXL = 4096 };
    static const char *line[MAXL];
    static int start[MAXL], end[MAXL];
    int nl = 0, nloops = 0;
    dot_loop r = {0, 0, 0};
    for (const char *p = asm_text; *p;) {
        const char *e = strchr(p, '\n');
        if (nl == MAXL)
            fail_msg("dot_loops: the kernel's assembly has more than %d lines", MAXL);
        line[nl++] = p;
        p = e ? e + 1 : p + strlen(p);
    }
    for (int i = 0; i < nl; i++) {
        const char *p = line[i], *eol = strchr(p, '\n'), *tgt;
        size_t len;
        if (!eol)
            eol = p + strlen(p);
        if (p[0] != '\t' || (strncmp(p, "\tb\t", 3) && strncmp(p, "\tb.", 3) && strncmp(p, "\tcbz\t", 5) &&
                             strncmp(p, "\tcbnz\t", 6) && strncmp(p, "\ttbz\t", 5) && strncmp(p, "\ttbnz\t", 6)))
            continue; /* the branches to a label */
        tgt = eol;
        while (tgt > p && tgt[-1] != '\t' && tgt[-1] != ' ' && tgt[-1] != ',')
            tgt--;
        len = (size_t)(eol - tgt);
        for (int j = 0; j < i && nloops < MAXL; j++)
            if (!strncmp(line[j], tgt, len) && line[j][len] == ':') {
                start[nloops] = j, end[nloops] = i, nloops++;
                break;
            }
    }
    for (int k = 0; k < nloops; k++) {
        int inner = 0, dots = 0, spills = 0;
        for (int m = 0; m < nloops; m++)
            if (m != k && start[m] >= start[k] && end[m] <= end[k] && (start[m] != start[k] || end[m] != end[k]))
                inner = 1;
        if (inner)
            continue;
        for (int i = start[k]; i <= end[k]; i++) {
            const char *eol = strchr(line[i], '\n');
            const char *sp1, *sp2;
            if (!eol)
                eol = line[i] + strlen(line[i]);
            dots += is_panel_multiply(line[i], eol, dotprod);
            sp1 = strstr(line[i], "[sp");
            sp2 = strstr(line[i], "[x29");
            spills += (sp1 && sp1 < eol) || (sp2 && sp2 < eol);
        }
        if (!dots)
            continue;
        r.loops++;
        r.spills += spills;
        if (dots > r.max_dots)
            r.max_dots = dots;
    }
    return r;
}

static void test_sdot_with_dotprod_only(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof int8_specs / sizeof int8_specs[0]; i++) {
        char *s = emit("aarch64-neon-dotprod", int8_specs[i], "asm");
        if (!has_insn(s, "sdot"))
            fail_msg("%s on aarch64-neon-dotprod: no sdot in the kernel", int8_specs[i]);
        free(s);
        s = emit("aarch64-neon", int8_specs[i], "asm");
        if (has_insn(s, "sdot") || has_insn(s, "udot") || has_insn(s, "usdot"))
            fail_msg("%s on aarch64-neon: a dot-product instruction without dotprod", int8_specs[i]);
        if (!has_insn(s, "smull") && !has_insn(s, "smull2"))
            fail_msg("%s on aarch64-neon: no widening multiply (smull) in the int8 path", int8_specs[i]);
        free(s);
    }
}

static void test_usdot_with_i8mm_only(void **state)
{
    (void)state;
    /* 8-bit unsigned codes with zero points: usdot spares the u - 128 flip */
    const char *spec = "matmul n=4096 k=4096 w=uint8 group=32 scale=f16 zero=int compute=int8";
    char *s = emit("aarch64-neon-dotprod-i8mm", spec, "asm");
    assert_true(has_insn(s, "usdot"));
    free(s);
    s = emit("aarch64-neon-dotprod", spec, "asm");
    assert_false(has_insn(s, "usdot"));
    assert_true(has_insn(s, "sdot"));
    free(s);
}

static int has_mmla(const char *asm_text)
{
    return has_insn(asm_text, "smmla") || has_insn(asm_text, "usmmla") || has_insn(asm_text, "ummla");
}

/* smmla (i8mm's 2x8 by 8x2 form) serves tiles of two rows and two columns
 * and more on the row layout: present with i8mm when the schedule pairs
 * rows and columns (odd sides too), absent for one-row (GEMV) or
 * one-column tiles and without i8mm. Panel kernels (the same formats
 * without outliers) take sdot instead, whatever the tile. */
static void test_smmla_with_i8mm_and_row_pairs_only(void **state)
{
    (void)state;
    static const char *const paired[] = {"tm=2 tn=2", "tm=4 tn=4", "tm=3 tn=3", "tm=5 tn=3"};
    static const char *const unpaired[] = {"tm=1 tn=4", "tm=4 tn=1"};
    for (size_t i = 0; i < sizeof int8_row_specs / sizeof int8_row_specs[0]; i++) {
        for (size_t p = 0; p < sizeof paired / sizeof paired[0]; p++) {
            char *s = emit_scheduled("aarch64-neon-dotprod-i8mm", int8_row_specs[i], paired[p], "asm");
            if (!has_insn(s, "smmla"))
                fail_msg("%s, %s on aarch64-neon-dotprod-i8mm: no smmla", int8_row_specs[i], paired[p]);
            free(s);
            s = emit_scheduled("aarch64-neon-dotprod", int8_row_specs[i], paired[p], "asm");
            if (has_mmla(s) || !has_insn(s, "sdot"))
                fail_msg("%s, %s on aarch64-neon-dotprod: smmla without i8mm, or no sdot", int8_row_specs[i],
                         paired[p]);
            free(s);
            s = emit_scheduled("aarch64-neon", int8_row_specs[i], paired[p], "asm");
            if (has_mmla(s))
                fail_msg("%s, %s on aarch64-neon: smmla without i8mm", int8_row_specs[i], paired[p]);
            free(s);
        }
        for (size_t p = 0; p < sizeof unpaired / sizeof unpaired[0]; p++) {
            char *s = emit_scheduled("aarch64-neon-dotprod-i8mm", int8_row_specs[i], unpaired[p], "asm");
            if (has_mmla(s) || !has_insn(s, "sdot"))
                fail_msg("%s, %s on aarch64-neon-dotprod-i8mm: smmla without pairs, or no sdot", int8_row_specs[i],
                         unpaired[p]);
            free(s);
        }
        {
            char *s = emit_scheduled("aarch64-neon-dotprod-i8mm", int8_specs[i], "tm=4 tn=4", "asm");
            if (has_mmla(s) || !has_insn(s, "sdot"))
                fail_msg("%s, tm=4 tn=4 on aarch64-neon-dotprod-i8mm: smmla in a panel kernel, or no sdot",
                         int8_specs[i]);
            free(s);
        }
    }
    {
        /* unsigned 8-bit codes with zeros: usmmla, as usdot */
        const char *spec = "matmul n=4096 k=4096 w=uint8 group=32 scale=f16 zero=int outliers=act:6 compute=int8";
        char *s = emit_scheduled("aarch64-neon-dotprod-i8mm", spec, "tm=2 tn=2", "asm");
        assert_true(has_insn(s, "usmmla"));
        free(s);
        s = emit_scheduled("aarch64-neon-dotprod", spec, "tm=2 tn=2", "asm");
        assert_false(has_mmla(s));
        free(s);
    }
}

/* int8 kernels read weight panels of 4 rows. With dotprod: per record,
 * tile row and panel 8 dot products by element (sdot w.16b, q.4b[i]: one
 * group of 4 elements of the 4 rows against one activation word), in the
 * loop over records of the tile (tm rows x tn panels), which keeps every
 * value in registers for tm = 1..4 at tn = 2 (q4_0: integer correction,
 * q8_0: codes − 128; q5_0, nibbles and a bit plane: tm = 1..3); usdot for unsigned 8-bit
 * codes with zeros with i8mm. Plain NEON: 16 widening multiplies (smull,
 * smlal and their high halves) per record, row and panel, and no stack
 * references for one row and, with 4-bit codes, two. */
static void check_record_loop(const char *target, const char *spec, int tm, int dotprod)
{
    char sched[32], *s;
    dot_loop r;
    int want = (dotprod ? 8 : 16) * tm * 2;
    snprintf(sched, sizeof sched, "tm=%d tn=2", tm);
    s = emit_scheduled(target, spec, sched, "asm");
    r = dot_loops(s, dotprod);
    if (!r.loops || r.max_dots != want)
        fail_msg("%s, %s on %s: %d loops with panel multiplies, the largest with %d (expected %d)", spec, sched, target,
                 r.loops, r.max_dots, want);
    if (r.spills)
        fail_msg("%s, %s on %s: %d stack references in the loops over records", spec, sched, target, r.spills);
    free(s);
}

static void test_int8_panels(void **state)
{
    static const char *const specs[] = {
        "matmul n=4096 k=4096 w=q4_0 compute=int8",
        "matmul n=4096 k=4096 w=q8_0 compute=int8",
        "matmul n=4096 k=4096 w=q5_0 compute=int8",
    };
    static const char *const targets[] = {"aarch64-neon-dotprod", "aarch64-neon-dotprod-i8mm"};
    (void)state;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        /* q5_0's bit plane (compact panels, klayout.h) takes a register
         * a panel: its loop is free of spills up to 3 rows */
        int tm_max = strstr(specs[i], "q5_0") ? 3 : 4;
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++)
            for (int tm = 1; tm <= tm_max; tm++)
                check_record_loop(targets[t], specs[i], tm, 1);
        check_record_loop("aarch64-neon", specs[i], 1, 0);
    }
    check_record_loop("aarch64-neon", specs[0], 2, 0);
    for (size_t i = 0; i < sizeof int8_specs / sizeof int8_specs[0]; i++) {
        char *s = emit("aarch64-neon-dotprod", int8_specs[i], "asm");
        if (!dot_loops(s, 1).loops)
            fail_msg("%s on aarch64-neon-dotprod: no loop of sdot by element (no panels)", int8_specs[i]);
        free(s);
        s = emit("aarch64-neon", int8_specs[i], "asm");
        if (dot_loops(s, 1).loops || strstr(s, ".4b["))
            fail_msg("%s on aarch64-neon: a dot product by element without dotprod", int8_specs[i]);
        if (!dot_loops(s, 0).loops)
            fail_msg("%s on aarch64-neon: no loop of widening multiplies (no panels)", int8_specs[i]);
        free(s);
    }
    {
        const char *spec = "matmul n=4096 k=4096 w=uint8 group=32 scale=f16 zero=int compute=int8";
        char *s = emit("aarch64-neon-dotprod-i8mm", spec, "asm");
        if (!strstr(s, "\tusdot\t") || !dot_loops(s, 1).loops)
            fail_msg("%s on aarch64-neon-dotprod-i8mm: no usdot by element", spec);
        free(s);
    }
}

static void test_tbl_for_codebooks(void **state)
{
    (void)state;
    static const char *const targets[] = {"aarch64-neon", "aarch64-neon-dotprod", "aarch64-neon-dotprod-i8mm"};
    static const char *const specs[] = {
        "matmul n=4096 k=4096 w=nf4_bnb",
        "matmul n=300 k=256 w=nf4 group=64 bias=f32 act=gelu out=bf16",
        "matmul n=4096 k=4096 w=fp4 group=32",
        "matmul n=4096 k=4096 w=iq4_nl compute=f32",
        "matmul n=4096 k=4096 w=iq4_nl compute=int8",
        "matmul n=4096 k=4096 w=mxfp4 compute=int8",
    };
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++)
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            char *s = emit(targets[t], specs[i], "asm");
            if (!has_insn(s, "tbl"))
                fail_msg("%s on %s: no tbl in the kernel", specs[i], targets[t]);
            free(s);
        }
}

static void test_float_path_is_128_bit_vector_code(void **state)
{
    (void)state;
    char *s = emit("aarch64-neon", "matmul n=64 k=256 w=q4_0 compute=f32", "llvm");
    assert_non_null(strstr(s, "llvm.fma.v4f32"));
    assert_null(strstr(s, "<8 x float>"));
    assert_null(strstr(s, "llvm.x86"));
    free(s);
    s = emit("aarch64-neon", "matmul n=64 k=256 w=q4_0 compute=f32", "asm");
    assert_true(has_insn(s, "fmla") || has_insn(s, "fmul"));
    assert_null(strstr(s, "z0.")); /* no SVE */
    free(s);
}

static void test_target_rules(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *k = NULL;
    qkc_target t;
    qkc_diag diag;
    char feats[64];
    assert_int_equal(qkc_target_resolve("aarch64-neon-dotprod-i8mm", 0, &t, &diag), QKC_OK);
    assert_int_equal(t.arch, QKC_ARCH_AARCH64);
    assert_int_equal(t.vector_bits, 128);
    assert_string_equal(t.triple, "aarch64-unknown-linux-gnu");
    assert_non_null(strstr(t.llvm_features, "+dotprod"));
    assert_non_null(strstr(t.llvm_features, "+i8mm"));
    qkc_target_features_string(t.arch, t.features, feats, sizeof feats);
    assert_string_equal(feats, "neon dotprod i8mm");
    assert_int_equal(qkc_target_resolve("aarch64-neon", 0, &t, &diag), QKC_OK);
    assert_non_null(strstr(t.llvm_features, "-dotprod"));
    assert_non_null(strstr(t.llvm_features, "-i8mm"));

    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    if (qkc_target_host_arch() != QKC_ARCH_AARCH64) {
        /* a JIT must run what it compiles */
        qkc_compile_options opt = {sizeof opt, "aarch64-neon", NULL, 0};
        assert_int_equal(qkc_target_resolve("aarch64-neon", 1, &t, &diag), QKC_ERR_NO_DEVICE);
        assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &k), QKC_ERR_NO_DEVICE);
        assert_null(k);
        assert_non_null(strstr(qkc_context_last_error(ctx), "target aarch64-neon is for aarch64 CPUs"));
    } else {
        print_message("skipped: the not-runnable-here check (this is an aarch64 machine)\n");
    }
    {
        /* 128-bit vectors on aarch64 only */
        qkc_schedule sch = {0};
        qkc_compile_options opt = {sizeof opt, "aarch64-neon", &sch, 0};
        char buf[16];
        sch.vector_bits = 256;
        assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "asm", buf, sizeof buf, NULL), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "vector width is 128 on aarch64"));
        sch.vector_bits = 128;
        opt.target = "x86_64-avx2";
        assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "asm", buf, sizeof buf, NULL), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "vector width is 256 or 512"));
    }
    {
        /* one library, one architecture */
        static const char *const targets[] = {"x86_64-avx2", "aarch64-neon"};
        const qkc_spec *specs[1] = {spec};
        qkc_aot_options ao = {sizeof ao, "mixed", targets, 2, NULL};
        assert_int_equal(qkc_aot_write(ctx, specs, 1, &ao, "lib", "mixed-arch.a"), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "different architectures"));
    }
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdot_with_dotprod_only),
        cmocka_unit_test(test_usdot_with_i8mm_only),
        cmocka_unit_test(test_smmla_with_i8mm_and_row_pairs_only),
        cmocka_unit_test(test_int8_panels),
        cmocka_unit_test(test_tbl_for_codebooks),
        cmocka_unit_test(test_float_path_is_128_bit_vector_code),
        cmocka_unit_test(test_target_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
