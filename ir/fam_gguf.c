/*
 * The GGUF family (family.h): rows of fixed blocks — the GGUF types q4_0,
 * q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4, and mxfp8 (OCP
 * MX, 33-byte blocks). Block geometry is presets.def's; here are the
 * verifier's rules, the blob's sections and, per type, how its blocks map
 * onto the kernel layout. The bytes are in docs/formats.md.
 */
#include "ir/family.h"

#include <stdio.h>
#include <string.h>

#include "ir/checked.h"

static qkc_status gguf_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    return qkc_preset_verify(mm, NULL, 0, diag, bad_key);
}

/* Only mxfp8 takes an option: its element dtype, w=mxfp8:e4m3|e5m2. */
static qkc_status gguf_option(qkc_format *f, const char *s, size_t n, unsigned *seen, qkc_diag *diag)
{
    (void)seen;
    if (f->preset != QKC_PRESET_MXFP8)
        return qkc_option_none(f, s, n, diag);
    if (n == 4 && (!memcmp(s, "e4m3", 4) || !memcmp(s, "e5m2", 4))) {
        f->dtype = s[1] == '5' ? QKC_DTYPE_FP8E5M2 : QKC_DTYPE_FP8E4M3;
        return QKC_OK;
    }
    return qkc_option_unknown(f, s, n, "e4m3 and e5m2", diag);
}

static void gguf_print_options(const qkc_format *f, char *buf, size_t size)
{
    if (f->preset == QKC_PRESET_MXFP8 && f->dtype == QKC_DTYPE_FP8E5M2)
        snprintf(buf, size, "e5m2");
}

/* DATA: N rows of K / block_weights blocks. */
static int gguf_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    const qkc_preset_desc *pd = qkc_preset_get(f->preset);
    if (pd->block_elems <= 0 || k % (uint64_t)pd->block_elems != 0)
        return 0; /* the verifier reports this case with its own message */
    return qkc_mul_u64(k / (uint64_t)pd->block_elems, (uint64_t)pd->block_bytes, &L->row_bytes) &&
           qkc_mul_u64(n, L->row_bytes, &L->bytes[QKC_SECTION_DATA]);
}

/* ggml's kvalues_mxfp4: E2M1 doubled, paired with the 2^(e-128) scale.
 * Code 8 (E2M1 −0) is +0, as in ggml. */
static const float mxfp4_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* How a block type maps onto the kernel layout: the element decode (AFFINE
 * codes of code_bits under zero_const; TABLE through `table`, or through
 * the element dtype's decode when NULL; FP8E4M3: the element dtype's fp8),
 * the chunk fields, whether the blocks already are chunk records, and the
 * description's note after the keyword. Resolved scales (K-quants: d·sc
 * and −(dmin·m)) are computed by the packer as the reference does. */
typedef struct kernel_row {
    qkc_kdecode decode;
    int code_bits, zero_const;
    const float *table;
    qkc_kfield scale, min;
    int e8m0_half, e8m0_ff_is_nan, in_place;
    const char *note;
    /* the compact panel form (ir/klayout.h): bit planes, two-level
     * scales, and its note */
    int hi_bits;
    qkc_ksub sub;
    const char *panel_note;
} kernel_row;

static const kernel_row kernel_rows[QKC_PRESET_END_] = {
    [QKC_PRESET_Q4_0] = {QKC_KDEC_AFFINE, 4, 8, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 1, " in place",
                         0, QKC_KSUB_NONE, NULL},
    [QKC_PRESET_Q4_1] = {QKC_KDEC_AFFINE, 4, 0, NULL, QKC_KF_F16, QKC_KF_F16, 0, 0, 1, " in place",
                         0, QKC_KSUB_NONE, NULL},
    /* The fifth bit (qh) joins the low nibble: one 8-bit code each. */
    [QKC_PRESET_Q5_0] = {QKC_KDEC_AFFINE, 8, 16, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 0, ", qh joined",
                         1, QKC_KSUB_NONE, ", qh a bit plane"},
    [QKC_PRESET_Q5_1] = {QKC_KDEC_AFFINE, 8, 0, NULL, QKC_KF_F16, QKC_KF_F16, 0, 0, 0, ", qh joined",
                         1, QKC_KSUB_NONE, ", qh a bit plane"},
    /* int8 codes as offset binary (code + 128) under zero_const 128. */
    [QKC_PRESET_Q8_0] = {QKC_KDEC_AFFINE, 8, 128, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 0, ", codes + 128",
                         0, QKC_KSUB_NONE, NULL},
    /* scale = d·sc, min = −(dmin·m), both f32 as ggml computes them. */
    [QKC_PRESET_Q4_K] = {QKC_KDEC_AFFINE, 4, 0, NULL, QKC_KF_F32, QKC_KF_F32, 0, 0, 0,
                         ", d*sc and -(dmin*m) resolved", 0, QKC_KSUB_KQ, ""},
    [QKC_PRESET_Q5_K] = {QKC_KDEC_AFFINE, 8, 0, NULL, QKC_KF_F32, QKC_KF_F32, 0, 0, 0,
                         ", d*sc and -(dmin*m) resolved", 1, QKC_KSUB_KQ, ", qh a bit plane"},
    [QKC_PRESET_Q6_K] = {QKC_KDEC_AFFINE, 8, 32, NULL, QKC_KF_F32, QKC_KF_NONE, 0, 0, 0, ", d*sc resolved", 2,
                         QKC_KSUB_Q6, ", qh two bit planes"},
    [QKC_PRESET_IQ4_NL] = {QKC_KDEC_TABLE, 4, 0, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 1, " in place",
                         0, QKC_KSUB_NONE, NULL},
    [QKC_PRESET_MXFP4] = {QKC_KDEC_TABLE, 4, 0, mxfp4_doubled, QKC_KF_E8M0, QKC_KF_NONE, 1, 0, 1, " in place",
                         0, QKC_KSUB_NONE, NULL},
    [QKC_PRESET_MXFP8] = {QKC_KDEC_FP8E4M3, 8, 0, NULL, QKC_KF_E8M0, QKC_KF_NONE, 0, 1, 1, " in place",
                         0, QKC_KSUB_NONE, NULL},
    /* scale = d·(ls − 32), f32 as ggml computes it (exact). */
    [QKC_PRESET_IQ4_XS] = {QKC_KDEC_TABLE, 4, 0, NULL, QKC_KF_F32, QKC_KF_NONE, 0, 0, 0, ", d*(ls-32) resolved", 0,
                           QKC_KSUB_XS, ""},
    /* ternary codes 0..2 (3 in a hand-made block) as nibbles under
     * zero_const 1, the block's d for each of its chunks */
    [QKC_PRESET_TQ2_0] = {QKC_KDEC_AFFINE, 4, 1, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 0, ", 2-bit codes as nibbles", 0,
                          QKC_KSUB_NONE, NULL},
    [QKC_PRESET_TQ1_0] = {QKC_KDEC_AFFINE, 4, 1, NULL, QKC_KF_F16, QKC_KF_NONE, 0, 0, 0, ", trits as nibbles", 0,
                          QKC_KSUB_NONE, NULL},
    /* 3-bit codes q + 4 as nibbles in chunks of 16, scale = d·(sc − 32) f32
     * as ggml computes it */
    [QKC_PRESET_Q3_K] = {QKC_KDEC_AFFINE, 4, 4, NULL, QKC_KF_F32, QKC_KF_NONE, 0, 0, 0, ", d*(sc-32) resolved", 0,
                         QKC_KSUB_NONE, NULL},
    /* 2-bit codes as nibbles in chunks of 16, scale = d·sc and min =
     * −(dmin·m) f32 as ggml computes them */
    [QKC_PRESET_Q2_K] = {QKC_KDEC_AFFINE, 4, 0, NULL, QKC_KF_F32, QKC_KF_F32, 0, 0, 0,
                         ", d*sc and -(dmin*m) resolved", 0, QKC_KSUB_NONE, NULL},
};

static const char *gguf_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                      size_t note_size)
{
    const kernel_row *r = &kernel_rows[f->preset];
    char why[64], opts[32];
    int chunk = qkc_klayout_chunk(f, why, sizeof why);

    (void)n, (void)k;
    if (!chunk) {
        qkc_klayout_set_fallback(L, why);
        return NULL;
    }
    switch (r->decode) {
    case QKC_KDEC_AFFINE: qkc_klayout_set_affine(L, chunk, r->code_bits, r->zero_const); break;
    case QKC_KDEC_TABLE:
        if (r->table)
            qkc_klayout_set_table(L, chunk, r->table);
        else
            qkc_klayout_set_dtype_table(L, chunk, f->dtype);
        break;
    case QKC_KDEC_FP8E4M3:
        L->chunk = chunk;
        L->code_bits = 8;
        L->decode = f->dtype == QKC_DTYPE_FP8E5M2 ? QKC_KDEC_FP8E5M2 : QKC_KDEC_FP8E4M3;
        break;
    default: return NULL; /* a block type without a kernel layout */
    }
    L->scale = r->scale;
    L->min = r->min;
    L->e8m0_half = r->e8m0_half;
    L->e8m0_ff_is_nan = r->e8m0_ff_is_nan;
    L->in_place = r->in_place;
    L->hi_bits = r->hi_bits;
    L->sub = r->sub;
    qkc_format_options(f, opts, sizeof opts);
    if (r->hi_bits || r->sub)
        snprintf(L->panel_note, sizeof L->panel_note, "%s%s", qkc_preset_get(f->preset)->keyword,
                 r->panel_note);
    snprintf(note, note_size, "%s%s%s%s", qkc_preset_get(f->preset)->keyword, opts[0] ? ":" : "", opts, r->note);
    return note;
}

const qkc_family_ir qkc_family_gguf_ir = {
    .name = "gguf",
    .verify = gguf_verify,
    .sections = gguf_sections,
    .kernel_layout = gguf_kernel_layout,
    .parse_option = gguf_option,
    .print_options = gguf_print_options,
};
