/*
 * Outliers in the CPU kernel's epilogue (lower_cpu.h: qkc_lower_outliers).
 *
 * After a tile's dense dot products, before bias and activation, each
 * (activation row i, weight row j) pair gets an f32 scalar sum:
 *
 * - sparse weight outliers (klayout.h `outliers`): for each CSR entry e of
 *   weight row n, val[e] (f16) · a[m, col[e]], where a is the activation
 *   the dense part multiplies (f32, or d·q on the int8 path); with a
 *   rounding compute type (bf16, f16, tf32) the term is
 *   round(dense + val) − round(dense), as the reference rounds the sum;
 * - activation outlier columns (outliers=act:T, int8 path only): for each
 *   column e of the call's list, o_vals[m][e] · W[n][o_cols[e]], with the
 *   weight decoded exactly from its chunk record (scalar, the arithmetic of
 *   qkc_klayout_decode).
 *
 * Both are scalar loops whose trip counts are data (a row's outliers, the
 * call's outlier columns): at 1 % outliers they cost about K/100 scalar
 * FMAs per output against the dense part's K/V vector FMAs.
 */
#include "codegen/lower_cpu.h"

typedef struct outlier_loop {
    tile *T;
    int j;
    LLVMValueRef (*extra)[8];
} outlier_loop;

static LLVMValueRef load_i64_elem(cg *g, LLVMValueRef base, LLVMTypeRef ty, LLVMValueRef idx, unsigned align)
{
    qkc_emit *E = &g->e;
    return load(E, ty, LLVMBuildGEP2(E->b, ty, base, &idx, 1, ""), align);
}

/* The activation the dense part multiplies, a[m0 + i, col], as f32. */
static LLVMValueRef outlier_a(cg *g, tile *T, int i, LLVMValueRef col)
{
    qkc_emit *E = &g->e;
    LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
    LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""), col, "");
    if (!g->x8)
        return load_i64_elem(g, g->a, E->f32, el, 4);
    {
        LLVMValueRef q = LLVMBuildSIToFP(E->b, load_i64_elem(g, g->a, E->i8, el, 1), E->f32, "");
        LLVMValueRef si = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->x8->a_scales_ld, ""),
                                       LLVMBuildSDiv(E->b, col, i64c(E, QKC_INT8_BLOCK), ""), "");
        LLVMValueRef d = load_i64_elem(g, g->x8->a_scales, E->f32, si, 4);
        return LLVMBuildFMul(E->b, d, q, "");
    }
}

static void add_extra(cg *g, LLVMValueRef slot, LLVMValueRef x, LLVMValueRef y)
{
    qkc_emit *E = &g->e;
    LLVMValueRef sum = load(E, E->f32, slot, 4);
    LLVMBuildStore(E->b, fma_v(E, x, y, sum), slot);
}

static LLVMValueRef decode_one(cg *g, LLVMValueRef row, LLVMValueRef col);

/* One lane of qkc_emit_round_compute over the tile's vectors. */
static LLVMValueRef round_scalar(cg *g, LLVMValueRef x)
{
    qkc_emit *E = &g->e;
    return LLVMBuildExtractElement(E->b, qkc_emit_round_compute(E, g->mm->compute, splat(E, x, g->V)), i32c(E, 0), "");
}

static void sparse_entry(cg *g, void *ctx, LLVMValueRef e)
{
    qkc_emit *E = &g->e;
    outlier_loop *lp = ctx;
    const qkc_klayout *L = g->L;
    LLVMValueRef colp = gep8(E, g->w, LLVMBuildAdd(E->b, i64c(E, (int64_t)L->outlier_col_offset),
                                                   LLVMBuildMul(E->b, e, i64c(E, 4), ""), ""));
    LLVMValueRef valp = gep8(E, g->w, LLVMBuildAdd(E->b, i64c(E, (int64_t)L->outlier_val_offset),
                                                   LLVMBuildMul(E->b, e, i64c(E, 2), ""), ""));
    LLVMValueRef col = LLVMBuildZExt(E->b, load(E, E->i32, colp, 1), E->i64, "");
    LLVMValueRef v = LLVMBuildFPExt(E->b, load(E, E->f16, valp, 1), E->f32, "");
    if (g->mm->compute == QKC_COMPUTE_BF16 || g->mm->compute == QKC_COMPUTE_F16 ||
        g->mm->compute == QKC_COMPUTE_TF32) {
        /* The reference rounds the whole weight, dense + val, to the compute
         * type; the dense part already entered as round(dense), so the
         * outlier adds round(dense + val) − round(dense) (exact in f32 for
         * all but far-apart exponents). */
        LLVMValueRef d = decode_one(g, lp->T->nrow[lp->j], col);
        v = LLVMBuildFSub(E->b, round_scalar(g, LLVMBuildFAdd(E->b, d, v, "")), round_scalar(g, d), "");
    }
    for (int i = 0; i < lp->T->tm; i++)
        add_extra(g, lp->extra[i][lp->j], v, outlier_a(g, lp->T, i, col));
}

/* W[row][col] decoded exactly from its chunk record (AFFINE, TABLE or fp8
 * over 4- or 8-bit codes: every chunked planar layout). */
static LLVMValueRef decode_one(cg *g, LLVMValueRef row, LLVMValueRef col)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef ci = LLVMBuildSDiv(E->b, col, i64c(E, L->chunk), "");
    LLVMValueRef li = LLVMBuildSRem(E->b, col, i64c(E, L->chunk), "");
    LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, i64c(E, (int64_t)L->row_bytes), ""),
                                    LLVMBuildMul(E->b, ci, i64c(E, L->chunk_bytes), ""), "");
    LLVMValueRef rec = gep8(E, g->w, off), codes = gep8(E, rec, i64c(E, L->code_off)), code, x;
    if (L->code_bits == 4) {
        LLVMValueRef half = i64c(E, L->chunk / 2);
        LLVMValueRef hi = LLVMBuildICmp(E->b, LLVMIntSGE, li, half, "");
        LLVMValueRef bi = LLVMBuildSelect(E->b, hi, LLVMBuildSub(E->b, li, half, ""), li, "");
        LLVMValueRef byte = LLVMBuildZExt(E->b, load(E, E->i8, gep8(E, codes, bi), 1), E->i32, "");
        code = LLVMBuildSelect(E->b, hi, LLVMBuildLShr(E->b, byte, i32c(E, 4), ""),
                               LLVMBuildAnd(E->b, byte, i32c(E, 15), ""), "");
    } else {
        code = LLVMBuildZExt(E->b, load(E, E->i8, gep8(E, codes, li), 1), E->i32, "");
    }
    if (L->decode == QKC_KDEC_FP8E4M3 || L->decode == QKC_KDEC_FP8E5M2) {
        LLVMValueRef v = qkc_emit_fp8_to_f32(E, splat(E, code, g->V), L->decode == QKC_KDEC_FP8E5M2);
        x = LLVMBuildExtractElement(E->b, v, i32c(E, 0), "");
    } else if (L->decode == QKC_KDEC_TABLE) {
        LLVMValueRef tab = LLVMGetNamedGlobal(E->mod, "qkc.outlier.table");
        LLVMTypeRef at = LLVMArrayType(E->f32, 16);
        if (!tab) {
            LLVMValueRef e[16];
            for (int i = 0; i < 16; i++)
                e[i] = f32c(E, L->table[i]);
            tab = LLVMAddGlobal(E->mod, at, "qkc.outlier.table");
            LLVMSetInitializer(tab, LLVMConstArray(E->f32, e, 16));
            LLVMSetGlobalConstant(tab, 1);
            LLVMSetLinkage(tab, LLVMPrivateLinkage);
        }
        {
            LLVMValueRef idx[2] = {i64c(E, 0), LLVMBuildZExt(E->b, code, E->i64, "")};
            x = load(E, E->f32, LLVMBuildGEP2(E->b, at, tab, idx, 2, ""), 4);
        }
    } else {
        LLVMValueRef v = LLVMBuildSub(E->b, code, i32c(E, L->zero_const), "");
        if (L->zero == QKC_KF_I16)
            v = LLVMBuildSub(E->b, v, LLVMBuildSExt(E->b, load(E, E->i16, gep8(E, rec, i64c(E, L->zero_off)), 1),
                                                    E->i32, ""), "");
        x = LLVMBuildSIToFP(E->b, v, E->f32, "");
    }
    /* one rounding each, in qkc_klayout_decode's order */
    if (L->scale != QKC_KF_NONE)
        x = LLVMBuildFMul(E->b, x, qkc_lower_chunk_field(g, rec, L->scale, L->scale_off), "");
    if (L->min != QKC_KF_NONE)
        x = LLVMBuildFAdd(E->b, x, qkc_lower_chunk_field(g, rec, L->min, L->min_off), "");
    return x;
}

static void act_column(cg *g, void *ctx, LLVMValueRef e)
{
    qkc_emit *E = &g->e;
    outlier_loop *lp = ctx;
    LLVMValueRef col = LLVMBuildSExt(E->b, load_i64_elem(g, g->o_cols, E->i32, e, 4), E->i64, "");
    LLVMValueRef w = decode_one(g, lp->T->nrow[lp->j], col);
    for (int i = 0; i < lp->T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(E->b, lp->T->m0, i64c(E, i), "");
        LLVMValueRef vi = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->o_count, ""), e, "");
        add_extra(g, lp->extra[i][lp->j], load_i64_elem(g, g->o_vals, E->f32, vi, 4), w);
    }
}

void qkc_lower_outliers(cg *g, tile *T, LLVMValueRef extra[8][8])
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int act = g->x8 && g->o_cols;
    if (!L->outliers && !act)
        return;
    for (int i = 0; i < T->tm; i++)
        for (int j = 0; j < T->tn; j++) {
            extra[i][j] = qkc_emit_alloca(E, E->f32, 64);
            LLVMBuildStore(E->b, f32c(E, 0.0), extra[i][j]);
        }
    for (int j = 0; j < T->tn; j++) {
        outlier_loop lp = {T, j, extra};
        if (L->outliers) {
            LLVMValueRef p = gep8(E, g->w, LLVMBuildAdd(E->b, i64c(E, (int64_t)L->outlier_ptr_offset),
                                                        LLVMBuildMul(E->b, T->nrow[j], i64c(E, 4), ""), ""));
            LLVMValueRef e0 = LLVMBuildZExt(E->b, load(E, E->i32, p, 1), E->i64, "");
            LLVMValueRef e1 = LLVMBuildZExt(E->b, load(E, E->i32, gep8(E, p, i64c(E, 4)), 1), E->i64, "");
            qkc_lower_loop(g, e0, e1, 1, sparse_entry, &lp);
        }
        if (act)
            qkc_lower_loop(g, i64c(E, 0), g->o_count, 1, act_column, &lp);
    }
}
