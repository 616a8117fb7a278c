/*
 * The spec language: round trips (every preset, the default compute type,
 * seeded random specs in canonical and reshuffled multi-line form) and
 * the rejection of invalid specs with the expected status, place and
 * message.
 *
 * Rerun one random case: QKC_CASE=spec_random_<i> ./test_spec
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/spec.h"
#include "qkc/qkc.h"
#include "util/testutil.h"

static void roundtrip_text(const char *text)
{
    qkc_matmul a, b;
    qkc_diag d;
    char p1[1024], p2[1024];
    if (qkc_matmul_parse(text, &a, NULL, &d) != QKC_OK)
        fail_msg("'%s' should parse: %s", text, d.message);
    qkc_matmul_print(&a, p1, sizeof p1);
    if (qkc_matmul_parse(p1, &b, NULL, &d) != QKC_OK)
        fail_msg("canonical '%s' should parse: %s", p1, d.message);
    assert_true(qkc_matmul_equal(&a, &b));
    qkc_matmul_print(&b, p2, sizeof p2);
    assert_string_equal(p1, p2);
}

static void test_examples(void **state)
{
    (void)state;
    qkc_matmul mm;
    qkc_diag d;
    char buf[512];
    /* The two one-line examples, and their canonical forms. */
    assert_int_equal(qkc_matmul_parse("matmul n=4096 k=4096 a=f32 w=q4_0 out=f32", &mm, NULL, &d), QKC_OK);
    assert_int_equal(mm.compute, QKC_COMPUTE_INT8); /* q4_0's default, as llama.cpp */
    qkc_matmul_print(&mm, buf, sizeof buf);
    assert_string_equal(buf, "matmul n=4096 k=4096 a=f32 w=q4_0 out=f32");
    assert_int_equal(qkc_matmul_parse("matmul n=11008 k=4096 a=bf16 w=int4 group=128 scale=f16 zero=int compute=f32 "
                                      "bias=f32 act=silu out=bf16",
                                      &mm, NULL, &d),
                     QKC_OK);
    assert_int_equal(mm.w.dtype, QKC_DTYPE_INT4);
    assert_int_equal(mm.w.granularity, QKC_GRAN_GROUP);
    assert_int_equal(mm.w.group, 128);
    assert_int_equal(mm.w.scale_dtype, QKC_DTYPE_F16);
    assert_int_equal(mm.w.zero, QKC_ZERO_INT);
    assert_int_equal(mm.act, QKC_ACT_SILU);
    assert_int_equal(mm.bias, QKC_BIAS_F32);
    assert_int_equal(mm.out_dtype, QKC_DTYPE_BF16);
    qkc_matmul_print(&mm, buf, sizeof buf);
    assert_string_equal(buf, "matmul n=11008 k=4096 a=bf16 w=int4 group=128 scale=f16 zero=int bias=f32 act=silu out=bf16");
    /* Several lines, comments, any key order. */
    assert_int_equal(qkc_matmul_parse("# a layer\nmatmul\n  out=f16   # output\n\tw=q8_0 k=64\n n=3\n", &mm, NULL, &d),
                     QKC_OK);
    qkc_matmul_print(&mm, buf, sizeof buf);
    assert_string_equal(buf, "matmul n=3 k=64 a=f32 w=q8_0 out=f16");
}

static void test_every_preset(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "matmul n=17 k=256 w=q4_0",        "matmul n=17 k=256 w=q4_1",
        "matmul n=17 k=256 w=q5_0",        "matmul n=17 k=256 w=q5_1",
        "matmul n=17 k=256 w=q8_0",        "matmul n=17 k=256 w=q4_k",
        "matmul n=17 k=256 w=q5_k",        "matmul n=17 k=256 w=q6_k",
        "matmul n=17 k=256 w=iq4_nl",      "matmul n=17 k=256 w=mxfp4",
        "matmul n=17 k=256 w=mxfp8",       "matmul n=17 k=256 w=mxfp8:e5m2",
        "matmul n=17 k=256 w=nf4_bnb",     "matmul n=17 k=256 w=nf4_bnb:dq group=128",
        "matmul n=32 k=256 w=gptq",        "matmul n=32 k=256 w=gptq:8 group=32",
        "matmul n=32 k=256 w=gptq:3:actorder group=64", "matmul n=32 k=256 w=gptq:2 group=channel",
        "matmul n=32 k=256 w=awq",         "matmul n=32 k=256 w=awq group=64",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        roundtrip_text(specs[i]);
    /* Each preset keyword is accepted and named back. */
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        const qkc_preset_desc *pd = qkc_preset_get((qkc_preset)p);
        char text[128], out[256];
        qkc_matmul mm;
        qkc_diag d;
        snprintf(text, sizeof text, "matmul n=64 k=512 w=%s", pd->keyword);
        assert_int_equal(qkc_matmul_parse(text, &mm, NULL, &d), QKC_OK);
        assert_int_equal(mm.w.preset, p);
        qkc_matmul_print(&mm, out, sizeof out);
        assert_non_null(strstr(out, pd->keyword));
    }
}

/* ------------------------------------------------- the default compute */

/* Parse text (which must verify), check its compute type and canonical
 * form, and that the canonical form reads back equal. */
static void expect_compute(const char *text, qkc_compute compute, const char *canonical)
{
    qkc_matmul mm;
    qkc_diag d;
    char buf[512];
    if (qkc_matmul_parse(text, &mm, NULL, &d) != QKC_OK)
        fail_msg("'%s' should parse: %s", text, d.message);
    if (mm.compute != compute)
        fail_msg("'%s': compute=%s, expected compute=%s", text, qkc_compute_keyword(mm.compute),
                 qkc_compute_keyword(compute));
    qkc_matmul_print(&mm, buf, sizeof buf);
    if (strcmp(buf, canonical))
        fail_msg("'%s' printed as '%s', expected '%s'", text, buf, canonical);
    roundtrip_text(text);
}

static void test_default_compute(void **state)
{
    (void)state;
    /* The GGUF presets compute in int8 unless told otherwise, whatever
     * the key order and the activation dtype; compute=f32 stays and prints. */
    expect_compute("matmul n=64 k=512 w=q4_0", QKC_COMPUTE_INT8, "matmul n=64 k=512 a=f32 w=q4_0 out=f32");
    expect_compute("matmul w=q4_k compute=f32 k=512 n=64", QKC_COMPUTE_F32,
                   "matmul n=64 k=512 a=f32 w=q4_k compute=f32 out=f32");
    expect_compute("matmul compute=f32 n=64 k=512 w=q4_k", QKC_COMPUTE_F32,
                   "matmul n=64 k=512 a=f32 w=q4_k compute=f32 out=f32");
    expect_compute("matmul compute=int8 n=64 k=512 w=q4_k", QKC_COMPUTE_INT8, "matmul n=64 k=512 a=f32 w=q4_k out=f32");
    expect_compute("matmul n=64 k=512 w=q6_k a=bf16 out=bf16", QKC_COMPUTE_INT8,
                   "matmul n=64 k=512 a=bf16 w=q6_k out=bf16");
    expect_compute("matmul n=64 k=512 a=f16 w=iq4_xs", QKC_COMPUTE_INT8, "matmul n=64 k=512 a=f16 w=iq4_xs out=f32");
    expect_compute("matmul n=64 k=512 w=mxfp4 compute=bf16", QKC_COMPUTE_BF16,
                   "matmul n=64 k=512 a=f32 w=mxfp4 compute=bf16 out=f32");
    /* What needs compute=int8 follows the default on a GGUF preset ... */
    expect_compute("matmul n=64 k=512 w=q8_0 ascale=static", QKC_COMPUTE_INT8,
                   "matmul n=64 k=512 a=f32 w=q8_0 ascale=static out=f32");
    expect_compute("matmul n=64 k=512 w=q4_0 outliers=act:6", QKC_COMPUTE_INT8,
                   "matmul n=64 k=512 a=f32 w=q4_0 outliers=act:6 out=f32");
    /* ... and formats not given by a GGUF preset keep f32, the same
     * weights as q4_0 included; compute=int8 is printed for them. */
    expect_compute("matmul n=64 k=512 w=int4 group=32 scale=f16", QKC_COMPUTE_F32,
                   "matmul n=64 k=512 a=f32 w=int4 group=32 scale=f16 out=f32");
    expect_compute("matmul n=64 k=512 w=int4 group=32 scale=f16 compute=int8", QKC_COMPUTE_INT8,
                   "matmul n=64 k=512 a=f32 w=int4 group=32 scale=f16 compute=int8 out=f32");
    expect_compute("matmul n=64 k=512 w=iq4nl group=32 scale=f16", QKC_COMPUTE_F32,
                   "matmul n=64 k=512 a=f32 w=iq4nl group=32 scale=f16 out=f32");
    expect_compute("matmul n=64 k=512 w=mxfp8", QKC_COMPUTE_F32, "matmul n=64 k=512 a=f32 w=mxfp8 out=f32");
    expect_compute("matmul n=64 k=512 w=gptq", QKC_COMPUTE_F32, "matmul n=64 k=512 a=f32 w=gptq out=f32");
    expect_compute("matmul n=64 k=512 w=nf4_bnb", QKC_COMPUTE_F32, "matmul n=64 k=512 a=f32 w=nf4_bnb out=f32");
    {
        qkc_matmul mm;
        qkc_diag d;
        assert_int_equal(qkc_matmul_parse("matmul n=64 k=512 w=int4 group=32 ascale=static", &mm, NULL, &d),
                         QKC_ERR_INVALID_SPEC);
        assert_non_null(strstr(d.message, "needs compute=int8 (compute=f32)"));
    }
    /* Every preset: int8 exactly where presets.def names a vec_dot_type,
     * for every activation dtype; there compute=int8 verifies whenever
     * compute=f32 does (so the default never refuses a spec), and the
     * answer does not depend on the compute already in the description. */
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        static const char *const acts[] = {"f32", "f16", "bf16"};
        const qkc_preset_desc *pd = qkc_preset_get((qkc_preset)p);
        int quantizes = pd->vec_dot_type[0] != '\0';
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
            char text[128], f32[160], int8[160];
            qkc_matmul mm, probe;
            qkc_diag d;
            snprintf(text, sizeof text, "matmul n=64 k=512 a=%s w=%s%s", acts[a], pd->keyword,
                     pd->group_is_free ? " group=64" : "");
            snprintf(f32, sizeof f32, "%s compute=f32", text);
            snprintf(int8, sizeof int8, "%s compute=int8", text);
            if (qkc_matmul_parse(text, &mm, NULL, &d) != QKC_OK)
                fail_msg("'%s' should parse: %s", text, d.message);
            if (mm.compute != (quantizes ? QKC_COMPUTE_INT8 : QKC_COMPUTE_F32))
                fail_msg("'%s': compute=%s by default", text, qkc_compute_keyword(mm.compute));
            probe = mm;
            for (int c = QKC_COMPUTE_F32; c <= QKC_COMPUTE_TF32; c++) {
                probe.compute = (qkc_compute)c;
                assert_int_equal(qkc_default_compute(&probe), mm.compute);
            }
            roundtrip_text(text);
            roundtrip_text(f32);
            assert_int_equal(qkc_matmul_parse(f32, &probe, NULL, &d), QKC_OK);
            if (quantizes && qkc_matmul_parse(int8, &probe, NULL, &d) != QKC_OK)
                fail_msg("'%s' should parse: %s", int8, d.message);
        }
    }
}

/* ----------------------------------------------------- random specs */

static qkc_dtype pick(qkc_rng *r, const qkc_dtype *v, size_t n)
{
    return v[qkc_rng_below(r, n)];
}

static void random_matmul(qkc_rng *r, qkc_matmul *mm)
{
    static const qkc_dtype io[] = {QKC_DTYPE_F32, QKC_DTYPE_F16, QKC_DTYPE_BF16};
    static const qkc_dtype scales1[] = {QKC_DTYPE_F32, QKC_DTYPE_F16, QKC_DTYPE_BF16, QKC_DTYPE_E8M0};
    static const qkc_dtype scales_dq[] = {QKC_DTYPE_INT8, QKC_DTYPE_UINT8, QKC_DTYPE_UINT6, QKC_DTYPE_FP8E4M3,
                                          QKC_DTYPE_FP8E5M2, QKC_DTYPE_INT4};
    memset(mm, 0, sizeof *mm);
    mm->m = qkc_rng_below(r, 3) ? 0 : 1 + (int64_t)qkc_rng_below(r, 5000);
    mm->n = 1 + (int64_t)qkc_rng_below(r, 20000);
    mm->k = 1 + (int64_t)qkc_rng_below(r, 20000);
    mm->a_dtype = pick(r, io, 3);
    mm->out_dtype = pick(r, io, 3);
    mm->compute = (qkc_compute)(1 + qkc_rng_below(r, 5));
    mm->bias = (qkc_bias)qkc_rng_below(r, 2);
    mm->act = (qkc_act)qkc_rng_below(r, 4);
    if (qkc_rng_below(r, 2)) {
        /* A preset with random options and free group. */
        qkc_preset p = (qkc_preset)(1 + qkc_rng_below(r, QKC_PRESET_END_ - 1));
        static const char *const opts[][4] = {
            [QKC_PRESET_GPTQ] = {"", "8", "3:actorder", "actorder"},
            [QKC_PRESET_NF4_BNB] = {"", "dq", "", "dq"},
            [QKC_PRESET_MXFP8] = {"", "e5m2", "e4m3", ""},
        };
        const char *o = (p == QKC_PRESET_GPTQ || p == QKC_PRESET_NF4_BNB || p == QKC_PRESET_MXFP8)
                            ? opts[p][qkc_rng_below(r, 4)]
                            : "";
        const char *kw = qkc_preset_get(p)->keyword;
        qkc_format_from_words(kw, strlen(kw), o, strlen(o), &mm->w, NULL);
        mm->k = 256 * (1 + (int64_t)qkc_rng_below(r, 40));
        mm->n = 32 * (1 + (int64_t)qkc_rng_below(r, 300));
        if (qkc_preset_get(p)->group_is_free) {
            static const int64_t groups[] = {32, 64, 128, 256};
            mm->w.group = groups[qkc_rng_below(r, 4)];
            if (p == QKC_PRESET_GPTQ && qkc_rng_below(r, 4) == 0)
                mm->w.granularity = QKC_GRAN_CHANNEL, mm->w.group = 0;
        }
        return;
    }
    /* Planar. */
    do
        mm->w.dtype = (qkc_dtype)(1 + qkc_rng_below(r, QKC_DTYPE_END_ - 1));
    while (mm->w.dtype == QKC_DTYPE_E8M0);
    if (mm->w.dtype == QKC_DTYPE_F32 || mm->w.dtype == QKC_DTYPE_F16 || mm->w.dtype == QKC_DTYPE_BF16 ||
        mm->w.dtype == QKC_DTYPE_TF32)
        return;
    mm->w.granularity = (qkc_granularity)(1 + qkc_rng_below(r, 3));
    if (mm->w.granularity == QKC_GRAN_GROUP)
        mm->w.group = 1 + (int64_t)qkc_rng_below(r, (uint64_t)mm->k);
    if (mm->w.granularity == QKC_GRAN_GROUP && qkc_rng_below(r, 3) == 0) {
        mm->w.scale_dtype = pick(r, scales_dq, 6);
        mm->w.scale2_dtype = pick(r, io, 3);
        mm->w.super_group = 1 + (int64_t)qkc_rng_below(r, 64);
    } else {
        mm->w.scale_dtype = pick(r, scales1, 4);
    }
    mm->w.zero = (qkc_zero)qkc_rng_below(r, 3);
    if (qkc_rng_below(r, 4) == 0) {
        mm->w.outliers = QKC_OUTLIERS_SPARSE;
        mm->w.outlier_fraction = qkc_rng_uniform(r, 0.0001f, 0.5f);
    }
}

/* Render a description in a shuffled, multi-line form with comments. */
static void shuffled_text(qkc_rng *r, const char *canonical, char *out, size_t size)
{
    char words[16][200];
    int n = 0, order[16];
    const char *p = canonical + strlen("matmul ");
    while (*p && n < 16) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        memcpy(words[n], p, len);
        words[n][len] = '\0';
        order[n] = n;
        n++;
        p = e ? e + 1 : p + len;
    }
    for (int i = n - 1; i > 0; i--) {
        int j = (int)qkc_rng_below(r, (uint64_t)i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    snprintf(out, size, "  # shuffled\nmatmul");
    for (int i = 0; i < n; i++) {
        size_t len = strlen(out);
        const char *sep = qkc_rng_below(r, 3) == 0 ? "\n\t" : qkc_rng_below(r, 2) ? "  " : " ";
        snprintf(out + len, size - len, "%s%s%s", sep, words[order[i]], qkc_rng_below(r, 5) == 0 ? " # note\n" : "");
    }
}

static void test_random_roundtrip(void **state)
{
    (void)state;
    int valid = 0, attempts = 0;
    const char *only = getenv("QKC_CASE");
    if (only && !*only)
        only = NULL;
    for (int i = 0; valid < 1200; i++) {
        char name[64], p1[1024], p2[1024], alt[2048];
        qkc_matmul mm, back, back2;
        qkc_diag d;
        snprintf(name, sizeof name, "spec_random_%d", i);
        if (only && strcmp(only, name))
            continue;
        qkc_rng r = qkc_rng_from_name(name);
        random_matmul(&r, &mm);
        attempts++;
        assert_true(attempts < 100000);
        if (qkc_matmul_verify(&mm, &d, NULL) != QKC_OK) {
            if (only)
                fail_msg("%s is not a valid spec: %s", name, d.message);
            continue;
        }
        valid++;
        qkc_matmul_print(&mm, p1, sizeof p1);
        if (qkc_matmul_parse(p1, &back, NULL, &d) != QKC_OK)
            fail_msg("%s: '%s' does not parse: %s (rerun: QKC_CASE=%s ./test_spec)", name, p1, d.message, name);
        if (!qkc_matmul_equal(&mm, &back))
            fail_msg("%s: '%s' parses to a different spec (rerun: QKC_CASE=%s ./test_spec)", name, p1, name);
        qkc_matmul_print(&back, p2, sizeof p2);
        assert_string_equal(p1, p2);
        shuffled_text(&r, p1, alt, sizeof alt);
        if (qkc_matmul_parse(alt, &back2, NULL, &d) != QKC_OK || !qkc_matmul_equal(&mm, &back2))
            fail_msg("%s: shuffled form does not give the same spec:\n%s\n(rerun: QKC_CASE=%s ./test_spec)", name,
                     alt, name);
        if (only)
            break;
    }
    if (!only)
        assert_true(valid >= 1000);
}

/* ------------------------------------------------------ invalid specs */

typedef struct bad_case {
    const char *text;
    qkc_status status;
    const char *where; /* "line:col" */
    const char *message; /* substring */
} bad_case;

static const bad_case bad_cases[] = {
    {"", QKC_ERR_PARSE, "1:1", "empty spec"},
    {"   # only a comment\n", QKC_ERR_PARSE, "2:1", "empty spec"},
    {"matmal n=1 k=1 w=int8", QKC_ERR_PARSE, "1:1", "expected 'matmul'"},
    {"n=1 k=1 w=int8", QKC_ERR_PARSE, "1:1", "expected 'matmul'"},
    {"matmul n=4 k=8 w=int8 bogus", QKC_ERR_PARSE, "1:23", "expected key=value"},
    {"matmul n=4 k=8 w=int8 =5", QKC_ERR_PARSE, "1:23", "expected a key before '='"},
    {"matmul n=4 k=8 w=int8 foo=1", QKC_ERR_PARSE, "1:23", "unknown key 'foo'"},
    {"matmul n=4 k=8 n=5 w=int8", QKC_ERR_PARSE, "1:16", "key 'n' given twice (first at 1:8)"},
    {"matmul n= k=8 w=int8", QKC_ERR_PARSE, "1:10", "missing value after 'n='"},
    {"matmul n=12x k=8 w=int8", QKC_ERR_PARSE, "1:10", "expected a decimal integer"},
    {"matmul n=-4 k=8 w=int8", QKC_ERR_PARSE, "1:10", "expected a decimal integer"},
    {"matmul n=0x10 k=8 w=int8", QKC_ERR_PARSE, "1:10", "expected a decimal integer"},
    {"matmul n=99999999999999999999 k=8 w=int8", QKC_ERR_LIMIT, "1:10", "out of range"},
    {"matmul n=4 k=0 w=int8", QKC_ERR_INVALID_SPEC, "1:14", "k is required and must be at least 1"},
    {"matmul n=0 k=8 w=int8", QKC_ERR_INVALID_SPEC, "1:10", "n is required and must be at least 1"},
    {"matmul k=8 w=int8", QKC_ERR_INVALID_SPEC, "1:1", "n is required"},
    {"matmul n=4 w=int8", QKC_ERR_INVALID_SPEC, "1:1", "k is required"},
    {"matmul n=4 k=8", QKC_ERR_INVALID_SPEC, "1:1", "w= is required"},
    {"matmul m=0 n=4 k=8 w=int8", QKC_ERR_INVALID_SPEC, "1:10", "m must be at least 1"},
    {"matmul n=16777217 k=8 w=int8", QKC_ERR_LIMIT, "1:10", "exceeds the limit of 16777216"},
    {"matmul n=4 k=16777217 w=int8", QKC_ERR_LIMIT, "1:14", "exceeds the limit"},
    {"matmul m=16777217 n=4 k=8 w=int8", QKC_ERR_LIMIT, "1:10", "exceeds the limit"},
    {"matmul n=16777216 k=16777216 w=int4", QKC_ERR_LIMIT, "1:21", "exceeds the limit of 2^36"},
    {"matmul n=4 k=8 w=q3_x", QKC_ERR_PARSE, "1:18", "unknown weight format 'q3_x'"},
    {"matmul n=4 k=8 w=e8m0", QKC_ERR_INVALID_SPEC, "1:18", "e8m0 is a scale-only dtype"},
    {"matmul n=4 k=8 a=int8 w=int8", QKC_ERR_INVALID_SPEC, "1:18", "activations are f32, f16 or bf16"},
    {"matmul n=4 k=8 a=f64 w=int8", QKC_ERR_PARSE, "1:18", "unknown dtype"},
    {"matmul n=4 k=8 w=int8 out=int4", QKC_ERR_INVALID_SPEC, "1:27", "outputs are f32, f16 or bf16"},
    {"matmul n=4 k=8 w=int8 compute=fp64", QKC_ERR_PARSE, "1:31", "expected f32, int8, bf16, f16 or tf32"},
    {"matmul n=4 k=8 w=int8 act=tanh", QKC_ERR_PARSE, "1:27", "expected none, relu, gelu or silu"},
    {"matmul n=4 k=8 w=int8 bias=f16", QKC_ERR_PARSE, "1:28", "expected none or f32"},
    {"matmul n=4 k=8 w=int8 zero=asym", QKC_ERR_PARSE, "1:28", "expected none, int or float"},
    {"matmul n=4 k=8 w=int8 layout=tiled", QKC_ERR_PARSE, "1:30", "unknown layout"},
    {"matmul n=4 k=32 w=q4_0 layout=planar", QKC_ERR_INVALID_SPEC, "1:31", "conflicts with w=q4_0"},
    {"matmul n=4 k=64 w=q4_0 group=64", QKC_ERR_INVALID_SPEC, "1:30", "fixes group=32; group=64 contradicts it"},
    {"matmul n=4 k=64 w=q4_0 scale=f32", QKC_ERR_INVALID_SPEC, "1:30", "fixes its scales"},
    {"matmul n=4 k=64 w=q8_0 zero=int", QKC_ERR_INVALID_SPEC, "1:29", "fixes zero=none"},
    {"matmul n=4 k=4000 w=q4_k", QKC_ERR_INVALID_SPEC, "1:14", "k=4000 is not a multiple of 256"},
    {"matmul n=4 k=48 w=q4_0", QKC_ERR_INVALID_SPEC, "1:14", "not a multiple of 32"},
    {"matmul n=4 k=64 w=q4_0:dq", QKC_ERR_PARSE, "1:19", "q4_0 takes no options"},
    {"matmul n=32 k=64 w=gptq:5", QKC_ERR_PARSE, "1:20", "gptq bits must be 2, 3, 4 or 8"},
    {"matmul n=32 k=64 w=gptq:fast", QKC_ERR_PARSE, "1:20", "unknown or repeated option 'fast' for gptq"},
    {"matmul n=32 k=64 w=gptq:4:8", QKC_ERR_PARSE, "1:20", "bits given twice"},
    {"matmul n=8 k=64 w=gptq:3 group=32", QKC_ERR_INVALID_SPEC, "1:10", "n=8 is not a multiple of 32"},
    {"matmul n=32 k=36 w=gptq group=32", QKC_ERR_INVALID_SPEC, "1:15", "k=36 is not a multiple of 8"},
    {"matmul n=12 k=64 w=awq group=32", QKC_ERR_INVALID_SPEC, "1:10", "n=12 is not a multiple of 8"},
    {"matmul n=16 k=96 w=awq group=64", QKC_ERR_INVALID_SPEC, "1:30", "group=64 does not divide k=96"},
    {"matmul n=16 k=64 w=awq group=channel", QKC_ERR_INVALID_SPEC, "1:30", "needs group=SIZE"},
    {"matmul n=16 k=192 w=nf4_bnb group=48", QKC_ERR_INVALID_SPEC, "1:35", "power of two from 32 to 4096"},
    {"matmul n=16 k=96 w=nf4_bnb", QKC_ERR_INVALID_SPEC, "1:15", "k=96 is not a multiple of group=64"},
    {"matmul n=4 k=64 w=mxfp8:e3m4", QKC_ERR_PARSE, "1:19", "options are e4m3 and e5m2"},
    {"matmul n=4 k=64 w=fp8e4m3 zero=int", QKC_ERR_INVALID_SPEC, "1:32", "fp8e4m3 weights have no integer zero point"},
    {"matmul n=4 k=64 w=nf4 zero=float", QKC_ERR_INVALID_SPEC, "1:28", "needs integer weights, not nf4"},
    {"matmul n=4 k=64 w=uint4 scale=e8m0 zero=float", QKC_ERR_INVALID_SPEC, "1:41", "must then be f32, f16 or bf16"},
    {"matmul n=4 k=64 w=bf16 group=32", QKC_ERR_INVALID_SPEC, "1:30", "stored unscaled"},
    {"matmul n=4 k=64 w=f16 zero=int", QKC_ERR_INVALID_SPEC, "1:28", "no zero point"},
    {"matmul n=4 k=64 w=int4 group=128", QKC_ERR_INVALID_SPEC, "1:30", "group=128 exceeds k=64"},
    {"matmul n=4 k=64 w=int4 group=0", QKC_ERR_INVALID_SPEC, "1:30", "at least one weight"},
    {"matmul n=4 k=64 w=int4 group=many", QKC_ERR_PARSE, "1:30", "expected a group size, channel or tensor"},
    {"matmul n=4 k=64 w=int4 group=32 scale=int8", QKC_ERR_INVALID_SPEC, "1:39", "needs a second level"},
    {"matmul n=4 k=64 w=int4 group=32 scale=int8:f32", QKC_ERR_PARSE, "1:39", "scale=DTYPE:DTYPE:GROUPS"},
    {"matmul n=4 k=64 w=int4 group=32 scale=int8:e8m0:4", QKC_ERR_INVALID_SPEC, "1:39", "second-level scale is f32"},
    {"matmul n=4 k=64 w=int4 group=32 scale=bf16:f32:4", QKC_ERR_INVALID_SPEC, "1:39", "integer or fp8 dtype"},
    {"matmul n=4 k=64 w=int4 group=32 scale=int8:f32:0", QKC_ERR_INVALID_SPEC, "1:39", "super-group holds 1 to 65536"},
    {"matmul n=4 k=64 w=int4 group=channel scale=int8:f32:4", QKC_ERR_INVALID_SPEC, "1:44", "needs group=SIZE granularity"},
    {"matmul n=4 k=64 w=int4 scale=int3", QKC_ERR_INVALID_SPEC, "1:30", "needs a second level"},
    {"matmul n=4 k=64 w=int4 outliers=sparse:0.9", QKC_ERR_INVALID_SPEC, "1:33", "fraction must be in (0, 0.5]"},
    {"matmul n=4 k=64 w=int4 outliers=sparse:x", QKC_ERR_PARSE, "1:40", "expected a fraction"},
    {"matmul n=4 k=64 w=int4 outliers=dense", QKC_ERR_PARSE, "1:33", "expected none or sparse"},
    {"matmul n=4 k=64 w=q4_0 outliers=sparse", QKC_ERR_INVALID_SPEC, "1:33", "planar layout only"},
    {"matmul n=4 k=64 w=nf4 compute=int8", QKC_ERR_INVALID_SPEC, "1:31", "nf4 weights are not integers"},
    {"matmul n=4 k=64 w=fp8e5m2 compute=int8", QKC_ERR_INVALID_SPEC, "1:35", "not integers"},
    {"matmul n=4 k=64 w=bf16 compute=int8", QKC_ERR_INVALID_SPEC, "1:32", "not integers"},
    {"matmul n=4 k=64 w=int4:x", QKC_ERR_PARSE, "1:19", "int4 takes no options"},
    {"matmul\n n=4\n k=64\n w=q4_0 group=16", QKC_ERR_INVALID_SPEC, "4:15", "fixes group=32"},
    /* regressions found by fuzz_spec: a free preset group of 0 or beyond k */
    {"matmul n=32 k=256 w=gptq:3:actorder group=0", QKC_ERR_INVALID_SPEC, "1:43", "group=0: a group holds at least one weight"},
    {"matmul n=32 k=256 w=awq group=0", QKC_ERR_INVALID_SPEC, "1:31", "group=0: a group holds at least one weight"},
    {"matmul n=32 k=256 w=gptq group=512", QKC_ERR_INVALID_SPEC, "1:32", "group=512 exceeds k=256; use group=channel"},
};

static void test_invalid_specs(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    assert_true(n >= 40);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        qkc_matmul mm;
        qkc_diag d;
        char where[32];
        qkc_status st = qkc_matmul_parse(c->text, &mm, NULL, &d);
        snprintf(where, sizeof where, "%s: ", c->where);
        if (st != c->status || strncmp(d.message, where, strlen(where)) != 0 || !strstr(d.message, c->message)) {
            failures++;
            print_error("bad spec #%zu '%s'\n  expected status %d at %s with '%s'\n  got status %d: '%s'\n", i, c->text,
                     c->status, c->where, c->message, st, st ? d.message : "(accepted)");
        }
    }
    assert_int_equal(failures, 0);
}

/* The public API reports the same message with an "error: " prefix. */
static void test_api_messages(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec = (qkc_spec *)&spec;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=4 k=64 w=q4_0 group=64", &spec), QKC_ERR_INVALID_SPEC);
    assert_null(spec);
    assert_string_equal(qkc_context_last_error(ctx), "error: 1:30: w=q4_0 fixes group=32; group=64 contradicts it");
    qkc_context_destroy(ctx);
}

/* Regression (found by fuzz_spec, UBSan): a preset without options made the
 * option parser compute NULL + 0. */
static void test_regression_preset_without_options_null_offset(void **state)
{
    (void)state;
    qkc_format f;
    qkc_diag d;
    assert_int_equal(qkc_format_from_words("q4_0", 4, NULL, 0, &f, &d), QKC_OK);
    assert_int_equal(f.preset, QKC_PRESET_Q4_0);
    assert_int_equal(qkc_format_from_words("gptq", 4, NULL, 0, &f, &d), QKC_OK);
    assert_int_equal(f.dtype, QKC_DTYPE_UINT4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),       cmocka_unit_test(test_every_preset),
        cmocka_unit_test(test_default_compute),
        cmocka_unit_test(test_random_roundtrip), cmocka_unit_test(test_invalid_specs),
        cmocka_unit_test(test_api_messages),
        cmocka_unit_test(test_regression_preset_without_options_null_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
