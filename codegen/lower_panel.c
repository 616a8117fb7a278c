/*
 * Kernels over weight panels (ir/klayout.h): the int8 path, and the
 * factorised f32 path over affine codes.
 *
 * A panel holds P weight rows interleaved record by record, P the int32
 * lanes of the target's vectors, so lane r of a vector is weight row r of
 * the panel: the P scales of a record load as one vector, the ISA's dot
 * product (isa.h int8_panel_dot) leaves row r's Σ w·q in lane r, and
 * nothing is reduced across lanes until the tile's end. A schedule with
 * narrower vectors (V = vec/32 lanes, P a multiple of V) reads each panel
 * as P/V units of V rows: unit h is rows hV .. hV+V−1, its fields at
 * P·off + hV·size and its codes at h·4V in each group.
 *
 * Per record (32 elements of K) and tile of tm activation rows x np
 * panels, with s, mn, z the records' fields as <V x float>, d and Σq the
 * activation block's scale and code sum (the pre-pass computes both,
 * kernel_abi.h):
 *
 *     dot  = (−cc·Σq) + Σ w·q                 int32, exact
 *     acc += float(dot) · (s·d)               one convert, one multiply, one FMA
 *     acc += (mn − cz·s) · (Σq·d)             only with a min or a zero field
 *
 * where cc is the integer correction of the operand form (zero_const, or
 * the table offset 128) and cz = zero_const + z with a zero field; the
 * codes of a record are decoded once for all tm rows.
 *
 * Compact panels (klayout.h): a record's scale and min come from its
 * super record's header (unit_fields; the 8 records of a super record are
 * unrolled so that the header is read once), the codes' bit planes are
 * merged into the nibbles by the ISA's dot (qkc_lower_panel_hi), and with
 * two scales a record (q6_k) the dot keeps the halves apart, each with its
 * scale and its −cc·Σq over 16 codes.
 *
 * Loops: panels [n_begin/P, ceil(n_end/P)) in tiles of tile_n panels (the
 * rest one by one), M in tiles of tile_m rows within them, the records of
 * K innermost; then the rows the M tiles leave (every row at M = 1), one
 * row and one panel at a time. The runtime starts every call at a multiple of
 * P (the schedule's n_block is whole panels); columns past n_end are
 * computed from the zero padding rows and never stored.
 */
#include <string.h>

#include "codegen/lower_cpu.h"

typedef struct ptile {
    int tm, np;
    LLVMValueRef m0, p0;    /* first activation row, first panel */
    LLVMValueRef acc[8][8]; /* allocas of <V x float>: row i, unit u (panel u / H, unit u % H) */
    LLVMTypeRef acc_ty;     /* <V x float> */
} ptile;

/* A field of unit h (V rows) of a record as <V x float> (rec: the record). */
static LLVMValueRef field_vec(cg *g, i8ctx *x, LLVMValueRef rec, qkc_kfield kind, int off, int h)
{
    qkc_emit *E = &g->e;
    unsigned V = (unsigned)x->pv;
    LLVMValueRef p = gep8(E, rec, i64c(E, (int64_t)x->panel * off + (int64_t)h * x->pv * qkc_kfield_bytes(kind)));
    switch (kind) {
    case QKC_KF_F16:
        return LLVMBuildFPExt(E->b, LLVMBuildBitCast(E->b, load(E, LLVMVectorType(E->i16, V), p, 1),
                                                     LLVMVectorType(E->f16, V), ""),
                              x->pf32, "");
    case QKC_KF_F32: return load(E, x->pf32, p, 1);
    case QKC_KF_I16: return LLVMBuildSIToFP(E->b, load(E, LLVMVectorType(E->i16, V), p, 1), x->pf32, "");
    case QKC_KF_E8M0:
        return qkc_emit_e8m0_to_f32(E, LLVMBuildZExt(E->b, load(E, LLVMVectorType(E->i8, V), p, 1), x->pi32, ""),
                                    g->L->e8m0_half, g->L->e8m0_ff_is_nan);
    default: return NULL;
    }
}

typedef struct pctx {
    ptile *T;
    i8ctx *x; /* the panel's types; the int8 path's choices when x->mode is set */
    int int_cc, need_coef, need_qsum;
    int j; /* compact panels with sub-block scales: record c's index in its super record, or −1 (c & 7) */
} pctx;

/* Record c of the panel of unit u of tile T (the unit's half in *h; the
 * super record's header in *hdr for compact panels with sub-block
 * scales), with the schedule's prefetch of the whole record pf records
 * ahead once per panel. */
static LLVMValueRef unit_record(cg *g, i8ctx *x, ptile *T, LLVMValueRef c, int jc, int u, int *h, LLVMValueRef *hdr)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int H = x->panel / x->pv;
    int64_t rec_bytes = (int64_t)x->panel * L->chunk_bytes;
    LLVMValueRef panel = LLVMBuildAdd(E->b, T->p0, i64c(E, u / H), "");
    LLVMValueRef base = gep8(E, g->w, LLVMBuildMul(E->b, panel, i64c(E, (int64_t)L->panel_bytes), ""));
    LLVMValueRef rec;
    if (L->sub != QKC_KSUB_NONE) {
        /* super records of 8: the header, then the records */
        /* with j known (jc >= 0), c − j is the super record's first: the
         * header's address is the same for its 8 records */
        LLVMValueRef j = jc >= 0 ? i64c(E, jc) : LLVMBuildAnd(E->b, c, i64c(E, 7), "");
        LLVMValueRef sup = LLVMBuildLShr(E->b, LLVMBuildSub(E->b, c, j, ""), i64c(E, 3), "");
        *hdr = gep8(E, base, LLVMBuildMul(E->b, sup, i64c(E, (int64_t)qkc_klayout_super_bytes(L)), ""));
        rec = gep8(E, *hdr, LLVMBuildAdd(E->b, i64c(E, (int64_t)x->panel * L->hdr_bytes),
                                         LLVMBuildMul(E->b, j, i64c(E, rec_bytes), ""), ""));
    } else {
        *hdr = NULL;
        rec = gep8(E, base, LLVMBuildMul(E->b, c, i64c(E, rec_bytes), ""));
    }
    *h = u % H;
    if (g->s->prefetch > 0 && *h == 0)
        for (int64_t off = 0; off < rec_bytes; off += 64) {
            LLVMValueRef pf = gep8(E, rec, i64c(E, (int64_t)g->s->prefetch * rec_bytes + off));
            LLVMValueRef args[4] = {pf, i32c(E, 0), i32c(E, 3), i32c(E, 1)};
            LLVMTypeRef ov = E->ptr;
            intrinsic(E, "llvm.prefetch", &ov, 1, args, 4);
        }
    return rec;
}

/* <V x i32> from V bytes at p, zero- or sign-extended. */
static LLVMValueRef lanes_u8(cg *g, i8ctx *x, LLVMValueRef p, int sign)
{
    qkc_emit *E = &g->e;
    LLVMValueRef v = load(E, LLVMVectorType(E->i8, (unsigned)x->pv), p, 1);
    return sign ? LLVMBuildSExt(E->b, v, x->pi32, "") : LLVMBuildZExt(E->b, v, x->pi32, "");
}

/* The scale s (and with two a record, s2: elements 16..31) and the min mn
 * (or NULL) of unit h of record c as <V x float>: from the record's fields,
 * or from the super record's header hdr (klayout.c: s = d·sc, mn =
 * −(dmin·m), d·(ls − 32), d·sc per 16). */
static void unit_fields(cg *g, i8ctx *x, LLVMValueRef rec, LLVMValueRef hdr, LLVMValueRef c, int jc, int h,
                        LLVMValueRef *s, LLVMValueRef *s2, LLVMValueRef *mn)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int64_t P = x->panel, V = x->pv;
    LLVMValueRef j, lo, d, sc, hi, sh;
    *s = *s2 = *mn = NULL;
    if (L->sub == QKC_KSUB_NONE) {
        if (L->scale != QKC_KF_NONE)
            *s = field_vec(g, x, rec, L->scale, L->scale_off, h);
        if (L->min != QKC_KF_NONE)
            *mn = field_vec(g, x, rec, L->min, L->min_off, h);
        return;
    }
    j = jc >= 0 ? i64c(E, jc) : LLVMBuildAnd(E->b, c, i64c(E, 7), "");
    lo = gep8(E, hdr, i64c(E, P * QKC_KHDR_LO(L->sub) + h * V));
    d = field_vec(g, x, hdr, QKC_KF_F16, QKC_KHDR_D, h);
    /* 2j as a lane shift count */
    sh = splat(E, LLVMBuildTrunc(E->b, LLVMBuildShl(E->b, j, i64c(E, 1), ""), E->i32, ""), (int)V);
    switch (L->sub) {
    case QKC_KSUB_KQ: {
        LLVMValueRef b = lanes_u8(g, x, gep8(E, lo, LLVMBuildMul(E->b, j, i64c(E, P), "")), 0), m;
        LLVMValueRef dmin = field_vec(g, x, hdr, QKC_KF_F16, QKC_KHDR_DMIN, h);
        LLVMValueRef k15 = qkc_emit_int_like(E, x->pi32, 15), k48 = qkc_emit_int_like(E, x->pi32, 48);
        LLVMValueRef k4 = qkc_emit_int_like(E, x->pi32, 4);
        hi = LLVMBuildLShr(E->b, load(E, x->pi32, gep8(E, hdr, i64c(E, P * QKC_KHDR_HI(L->sub) + h * V * 4)), 1),
                           sh, "");
        sc = LLVMBuildOr(E->b, LLVMBuildAnd(E->b, b, k15, ""),
                         LLVMBuildAnd(E->b, LLVMBuildShl(E->b, hi, k4, ""), k48, ""), "");
        m = LLVMBuildOr(E->b, LLVMBuildLShr(E->b, b, k4, ""),
                        LLVMBuildAnd(E->b, LLVMBuildLShr(E->b, hi, qkc_emit_int_like(E, x->pi32, 12), ""), k48, ""),
                        "");
        *s = LLVMBuildFMul(E->b, d, LLVMBuildSIToFP(E->b, sc, x->pf32, ""), "");
        *mn = LLVMBuildFNeg(E->b, LLVMBuildFMul(E->b, dmin, LLVMBuildSIToFP(E->b, m, x->pf32, ""), ""), "");
        return;
    }
    case QKC_KSUB_XS: {
        LLVMValueRef pair = LLVMBuildLShr(E->b, j, i64c(E, 1), "");
        LLVMValueRef nib = splat(E, LLVMBuildTrunc(E->b, LLVMBuildShl(E->b, LLVMBuildAnd(E->b, j, i64c(E, 1), ""),
                                                                      i64c(E, 2), ""),
                                                   E->i32, ""),
                                 (int)V);
        LLVMValueRef b = lanes_u8(g, x, gep8(E, lo, LLVMBuildMul(E->b, pair, i64c(E, P), "")), 0);
        LLVMValueRef h16 = load(E, LLVMVectorType(E->i16, (unsigned)V),
                                gep8(E, hdr, i64c(E, P * QKC_KHDR_HI(L->sub) + h * V * 2)), 1);
        hi = LLVMBuildLShr(E->b, LLVMBuildZExt(E->b, h16, x->pi32, ""), sh, "");
        sc = LLVMBuildOr(E->b, LLVMBuildAnd(E->b, LLVMBuildLShr(E->b, b, nib, ""), qkc_emit_int_like(E, x->pi32, 15), ""),
                         LLVMBuildAnd(E->b, LLVMBuildShl(E->b, hi, qkc_emit_int_like(E, x->pi32, 4), ""),
                                      qkc_emit_int_like(E, x->pi32, 48), ""),
                         "");
        sc = LLVMBuildSub(E->b, sc, qkc_emit_int_like(E, x->pi32, 32), "");
        *s = LLVMBuildFMul(E->b, d, LLVMBuildSIToFP(E->b, sc, x->pf32, ""), "");
        return;
    }
    default: {
        LLVMValueRef p0 = gep8(E, lo, LLVMBuildMul(E->b, j, i64c(E, 2 * P), ""));
        *s = LLVMBuildFMul(E->b, d, LLVMBuildSIToFP(E->b, lanes_u8(g, x, p0, 1), x->pf32, ""), "");
        *s2 = LLVMBuildFMul(E->b, d, LLVMBuildSIToFP(E->b, lanes_u8(g, x, gep8(E, p0, i64c(E, P)), 1), x->pf32, ""),
                            "");
        return;
    }
    }
}

void qkc_lower_panel_planes(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef *planes)
{
    qkc_emit *E = &g->e;
    for (int j = 0; j < g->L->hi_bits; j++)
        planes[j] = load(E, x->pi32, gep8(E, codes, i64c(E, (int64_t)(4 + j) * stride)), 1);
}

/* Group t's hi bits are bits hb·(t / hb) + 8i of plane t % hb (hb =
 * hi_bits): one shift and a mask put them at bit 4 of byte i. */
LLVMValueRef qkc_lower_panel_hi(cg *g, i8ctx *x, LLVMValueRef w, const LLVMValueRef *planes, int t)
{
    qkc_emit *E = &g->e;
    int hb = g->L->hi_bits, sh = 4 - hb * (t / hb);
    uint32_t mask = ((1u << hb) - 1) << 4;
    LLVMValueRef b = planes[t % hb];
    if (sh > 0)
        b = LLVMBuildShl(E->b, b, qkc_emit_int_like(E, x->pi32, sh), "");
    else if (sh < 0)
        b = LLVMBuildLShr(E->b, b, qkc_emit_int_like(E, x->pi32, -sh), "");
    b = LLVMBuildAnd(E->b, b, qkc_emit_int_like(E, x->pi32, (int32_t)(mask * 0x01010101u)), "");
    return LLVMBuildBitCast(E->b, LLVMBuildOr(E->b, LLVMBuildBitCast(E->b, w, x->pi32, ""), b, ""), x->pbytes, "");
}

/* One record c of a tile. */
static void record_body(cg *g, void *ctx, LLVMValueRef c)
{
    qkc_emit *E = &g->e;
    pctx *pc = ctx;
    ptile *T = pc->T;
    i8ctx *x = pc->x;
    const qkc_klayout *L = g->L;
    int V = x->pv, units = T->np * (x->panel / x->pv), nh = x->halves ? 2 : 1;
    LLVMValueRef q[8], d[8], qsd[8] = {0}, init[16];

    for (int i = 0; i < T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
        LLVMValueRef bi = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, x->a_scales_ld, ""), c, "");
        d[i] = load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, x->a_scales, &bi, 1, ""), 4);
        for (int hf = 0; hf < nh; hf++) {
            /* a_sums: per block, or per 16 codes with halves */
            LLVMValueRef si = x->halves ? LLVMBuildAdd(E->b, LLVMBuildShl(E->b, bi, i64c(E, 1), ""), i64c(E, hf), "")
                                        : bi;
            LLVMValueRef qs = NULL;
            if (pc->need_qsum) {
                qs = load(E, E->i32, LLVMBuildGEP2(E->b, E->i32, x->a_sums, &si, 1, ""), 4);
                if (pc->need_coef)
                    qsd[i] = splat(E, LLVMBuildFMul(E->b, LLVMBuildSIToFP(E->b, qs, E->f32, ""), d[i], ""), V);
            }
            /* −cc·Σq as a vector: a broadcast load, a shift and a negation for cc = 2^j */
            init[nh * i + hf] = pc->int_cc
                                    ? splat(E, LLVMBuildMul(E->b, qs, LLVMConstInt(E->i32, (unsigned long long)(int64_t)-pc->int_cc, 1), ""), V)
                                    : LLVMConstNull(x->pi32);
        }
        q[i] = gep8(E, g->a, LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                         LLVMBuildMul(E->b, c, i64c(E, 32), ""), ""));
        d[i] = splat(E, d[i], V);
    }
    for (int j = 0; j < units; j++) {
        int h;
        LLVMValueRef hdr, rec = unit_record(g, x, T, c, pc->j, j, &h, &hdr);
        LLVMValueRef s, s2, mn, coef = NULL, acc[16];
        unit_fields(g, x, rec, hdr, c, pc->j, h, &s, &s2, &mn);
        if (pc->need_coef) {
            coef = mn ? mn : qkc_emit_float_like(E, x->pf32, 0.0);
            if (x->mode == I8_DIRECT && L->zero != QKC_KF_NONE) {
                LLVMValueRef cz = LLVMBuildFAdd(E->b, qkc_emit_float_like(E, x->pf32, (double)L->zero_const),
                                                field_vec(g, x, rec, L->zero, L->zero_off, h), "");
                coef = LLVMBuildFSub(E->b, coef, s ? LLVMBuildFMul(E->b, cz, s, "") : cz, "");
            }
        }
        for (int i = 0; i < nh * T->tm; i++)
            acc[i] = init[i];
        g->isa->int8_panel_dot(g, x, gep8(E, rec, i64c(E, (int64_t)x->panel * L->code_off + (int64_t)h * 4 * V)),
                               4 * x->panel, q, T->tm, acc);
        for (int i = 0; i < T->tm; i++) {
            LLVMValueRef f = load(E, x->pf32, T->acc[i][j], 64);
            if (nh == 2) {
                /* the halves under their scales, then d once: five
                 * operations a row, not six */
                LLVMValueRef t = LLVMBuildFMul(E->b, LLVMBuildSIToFP(E->b, acc[2 * i], x->pf32, ""), s, "");
                t = fma_v(E, LLVMBuildSIToFP(E->b, acc[2 * i + 1], x->pf32, ""), s2, t);
                f = fma_v(E, t, d[i], f);
            } else {
                LLVMValueRef sd = s ? LLVMBuildFMul(E->b, s, d[i], "") : d[i];
                f = fma_v(E, LLVMBuildSIToFP(E->b, acc[i], x->pf32, ""), sd, f);
            }
            if (pc->need_coef)
                f = fma_v(E, coef, qsd[i], f);
            LLVMBuildStore(E->b, f, T->acc[i][j]);
        }
    }
}

/* f32 panels (compute=f32, AFFINE codes): record c of a tile, `valid` of
 * its elements inside K. Per element k, one vector of the P rows' codes
 * (a shift and a mask of the record's 4-byte groups), as floats (a
 * conversion, or with a one-instruction table lookup the value code −
 * zero_const itself), and one FMA per activation row with a[k] broadcast:
 *     t = Σ a·v;   acc += t·s (− (zero_const + z)·s·Σa) (+ min·Σa)
 * in up to 4 independent chains at M = 1. */
static void record_f32(cg *g, pctx *pc, LLVMValueRef c, int valid)
{
    qkc_emit *E = &g->e;
    ptile *T = pc->T;
    i8ctx *x = pc->x;
    const qkc_klayout *L = g->L;
    int V = x->pv, P = x->panel, chains = T->tm == 1 ? 4 : 1, units = T->np * (P / V);
    int zc = g->affine_table ? 0 : L->zero_const; /* the table already subtracts it */
    int need_asum = L->min != QKC_KF_NONE || zc || L->zero != QKC_KF_NONE;
    LLVMValueRef arow[8], asum[8] = {0}, mask = NULL;

    for (int i = 0; i < T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
        LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                       LLVMBuildMul(E->b, c, i64c(E, 32), ""), "");
        arow[i] = LLVMBuildGEP2(E->b, E->f32, g->a, &el, 1, "");
        if (need_asum && valid == 32) {
            /* whole vectors, a tree of adds, one lane sum */
            LLVMValueRef v[8];
            int nv = 32 / V;
            for (int u = 0; u < nv; u++) {
                LLVMValueRef idx = i64c(E, (int64_t)u * V);
                v[u] = load(E, x->pf32, LLVMBuildGEP2(E->b, E->f32, arow[i], &idx, 1, ""), 4);
            }
            for (int w = nv; w > 1; w /= 2)
                for (int u = 0; u < w / 2; u++)
                    v[u] = LLVMBuildFAdd(E->b, v[u], v[u + w / 2], "");
            asum[i] = splat(E, g->isa->lane_sum(E, v[0]), V);
        } else if (need_asum) {
            LLVMValueRef s = NULL;
            for (int k = 0; k < valid; k++) {
                LLVMValueRef idx = i64c(E, k);
                LLVMValueRef v = load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, arow[i], &idx, 1, ""), 4);
                s = s ? LLVMBuildFAdd(E->b, s, v, "") : v;
            }
            asum[i] = splat(E, s, V);
        }
    }
    mask = qkc_emit_int_like(E, x->pi32, L->code_bits == 4 ? 15 : 255);
    {
        /* element by element across the tile's units, so that a[k] is
         * loaded once and used at once (no broadcasts held in registers) */
        int groups = L->code_bits == 4 ? 4 : 8, hs[8];
        LLVMValueRef rec[8], hdr[8], codes[8], raw[8], t[8][8][4];
        memset(t, 0, sizeof t);
        for (int j = 0; j < units; j++) {
            rec[j] = unit_record(g, x, T, c, pc->j, j, &hs[j], &hdr[j]);
            codes[j] = gep8(E, rec[j], i64c(E, (int64_t)P * L->code_off + (int64_t)hs[j] * 4 * V));
        }
        for (int grp = 0; grp < groups; grp++) {
            for (int j = 0; j < units; j++)
                raw[j] = load(E, x->pi32, gep8(E, codes[j], i64c(E, (int64_t)grp * 4 * P)), 1);
            for (int half = 0; half < (L->code_bits == 4 ? 2 : 1); half++)
                for (int b = 0; b < 4; b++) {
                    int k = half * 16 + 4 * grp + b, sh = 8 * b + 4 * half, ch = b % chains;
                    LLVMValueRef a[8];
                    if (k >= valid)
                        continue;
                    for (int i = 0; i < T->tm; i++) {
                        LLVMValueRef idx = i64c(E, k);
                        a[i] = splat(E, load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, arow[i], &idx, 1, ""), 4), V);
                    }
                    for (int j = 0; j < units; j++) {
                        LLVMValueRef v = raw[j], val;
                        if (sh)
                            v = LLVMBuildLShr(E->b, v, qkc_emit_int_like(E, x->pi32, sh), "");
                        /* a 16-entry table reads the index's low 4 bits only */
                        if (sh + L->code_bits < 32 && !g->affine_table)
                            v = LLVMBuildAnd(E->b, v, mask, "");
                        val = g->affine_table ? g->isa->table_lookup(g, v) : LLVMBuildSIToFP(E->b, v, x->pf32, "");
                        for (int i = 0; i < T->tm; i++)
                            t[i][j][ch] = t[i][j][ch] ? fma_v(E, a[i], val, t[i][j][ch])
                                                      : LLVMBuildFMul(E->b, a[i], val, "");
                    }
                }
        }
        for (int j = 0; j < units; j++) {
            int h = hs[j];
            LLVMValueRef s, s2, mn;
            unit_fields(g, x, rec[j], hdr[j], c, pc->j, h, &s, &s2, &mn);
            for (int i = 0; i < T->tm; i++) {
                LLVMValueRef f = load(E, x->pf32, T->acc[i][j], 64), sum = NULL;
                for (int ch = 0; ch < chains; ch++)
                    if (t[i][j][ch])
                        sum = sum ? LLVMBuildFAdd(E->b, sum, t[i][j][ch], "") : t[i][j][ch];
                if (!sum)
                    continue;
                if (zc || L->zero != QKC_KF_NONE) {
                    LLVMValueRef negz = qkc_emit_float_like(E, x->pf32, -(double)zc);
                    if (L->zero != QKC_KF_NONE)
                        negz = LLVMBuildFSub(E->b, negz, field_vec(g, x, rec[j], L->zero, L->zero_off, h), "");
                    sum = fma_v(E, asum[i], negz, sum);
                }
                f = s ? fma_v(E, sum, s, f) : LLVMBuildFAdd(E->b, f, sum, "");
                if (mn)
                    f = fma_v(E, asum[i], mn, f);
                LLVMBuildStore(E->b, f, T->acc[i][j]);
            }
        }
    }
}

static void record_body_f32(cg *g, void *ctx, LLVMValueRef c)
{
    record_f32(g, ctx, c, 32);
}

int qkc_lower_f32_panel_layout(const qkc_klayout *L)
{
    /* (dense f16 keeps the row layout, where vcvtph2ps converts 16 values
     * straight from memory: panels of 4-byte groups made it 25-35% slower) */
    return (L->decode == QKC_KDEC_AFFINE && !L->hi_bits && L->sub != QKC_KSUB_Q6) || L->decode == QKC_KDEC_F32 ||
           L->decode == QKC_KDEC_BF16;
}

/* Dense panels (f32, bf16 values, klayout.h; dense f16 keeps the row
 * layout, qkc_lower_f32_panel_layout): per element k, the P rows' values
 * are one vector
 * (f32: the group itself; bf16: a half of it, shifted or masked, once for
 * the tile) and each activation row adds
 * a[k]·values with one FMA, a[k] broadcast from memory: a tm x units FMA
 * micro-kernel straight into the tile's accumulators (at tm = 1, four
 * chains a record against the FMA latency). `valid` of the record's
 * elements are inside K. */
static void record_dense(cg *g, pctx *pc, LLVMValueRef c, int valid)
{
    qkc_emit *E = &g->e;
    ptile *T = pc->T;
    i8ctx *x = pc->x;
    const qkc_klayout *L = g->L;
    int V = x->pv, P = x->panel, units = T->np * (P / V), per = 32 / L->code_bits, chains = T->tm == 1 ? 4 : 1;
    LLVMValueRef arow[8], codes[8], acc[8][8][4], raw[8] = {0};
    for (int i = 0; i < T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
        LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                       LLVMBuildMul(E->b, c, i64c(E, 32), ""), "");
        arow[i] = LLVMBuildGEP2(E->b, E->f32, g->a, &el, 1, "");
        for (int j = 0; j < units; j++) {
            acc[i][j][0] = load(E, x->pf32, T->acc[i][j], 64);
            for (int ch = 1; ch < chains; ch++)
                acc[i][j][ch] = qkc_emit_float_like(E, x->pf32, 0.0);
        }
    }
    for (int j = 0; j < units; j++) {
        int h;
        LLVMValueRef hdr, rec = unit_record(g, x, T, c, pc->j, j, &h, &hdr);
        codes[j] = gep8(E, rec, i64c(E, (int64_t)P * L->code_off + (int64_t)h * 4 * V));
    }
    for (int k = 0; k < valid; k++) {
        int grp = k / per, half = k % per, ch = k % chains;
        LLVMValueRef a[8], idx = i64c(E, k);
        for (int i = 0; i < T->tm; i++)
            a[i] = splat(E, load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, arow[i], &idx, 1, ""), 4), V);
        for (int j = 0; j < units; j++) {
            LLVMValueRef val;
            if (!half)
                raw[j] = load(E, x->pi32, gep8(E, codes[j], i64c(E, (int64_t)grp * 4 * P)), 4);
            val = raw[j];
            if (L->decode == QKC_KDEC_BF16) /* bf16 is the top half of an f32 */
                val = half ? LLVMBuildAnd(E->b, val, qkc_emit_int_like(E, x->pi32, (int32_t)0xFFFF0000u), "")
                           : LLVMBuildShl(E->b, val, qkc_emit_int_like(E, x->pi32, 16), "");
            val = LLVMBuildBitCast(E->b, val, x->pf32, "");
            for (int i = 0; i < T->tm; i++)
                acc[i][j][ch] = fma_v(E, a[i], val, acc[i][j][ch]);
        }
    }
    for (int i = 0; i < T->tm; i++)
        for (int j = 0; j < units; j++) {
            LLVMValueRef f = acc[i][j][0];
            for (int ch = 1; ch < chains; ch++)
                f = LLVMBuildFAdd(E->b, f, acc[i][j][ch], "");
            LLVMBuildStore(E->b, f, T->acc[i][j]);
        }
}

static void record_body_dense(cg *g, void *ctx, LLVMValueRef c)
{
    record_dense(g, ctx, c, 32);
}

/* Compact panels with sub-block scales: the 8 records of super record
 * c0 / 8 unrolled, so that the header's loads and conversions are shared
 * and the shifts that pick a record's scales are constants. */
static void super_body(cg *g, void *ctx, LLVMValueRef c0)
{
    qkc_emit *E = &g->e;
    pctx *pc = ctx;
    for (int j = 0; j < 8; j++) {
        LLVMValueRef c = LLVMBuildAdd(E->b, c0, i64c(E, j), "");
        pc->j = j;
        if (pc->x->mode != I8_NONE)
            record_body(g, pc, c);
        else
            record_f32(g, pc, c, 32);
    }
    pc->j = -1;
}

typedef struct ecol {
    ptile *T;
    LLVMValueRef *buf; /* per row: the tile's sums, np·P floats */
    LLVMValueRef n0;   /* the tile's first column */
} ecol;

/* The epilogue of one column of a tile (a tile of tm x 1 outputs). */
static void column_body(cg *g, void *ctx, LLVMValueRef col)
{
    qkc_emit *E = &g->e;
    ecol *ec = ctx;
    tile t;
    memset(&t, 0, sizeof t);
    t.tm = ec->T->tm, t.tn = 1, t.m0 = ec->T->m0;
    t.n0 = t.nrow[0] = LLVMBuildAdd(E->b, ec->n0, col, "");
    for (int i = 0; i < t.tm; i++)
        t.sum[i][0] = load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, ec->buf[i], &col, 1, ""), 4);
    qkc_lower_epilogue(g, &t, ec->T->acc_ty);
}

/* A tile of tm rows x np panels at (m0, p0): its records, then the
 * epilogue in a loop over its columns before n_end (column n is lane
 * n − p0·P of the tile's sums, laid out panel after panel). */
static void emit_ptile(cg *g, pctx *pc, LLVMValueRef m0, LLVMValueRef p0, int tm, int np)
{
    qkc_emit *E = &g->e;
    i8ctx *x = pc->x;
    int P = x->panel, V = x->pv, units = np * (P / V);
    ptile T;
    LLVMValueRef buf[8];
    memset(&T, 0, sizeof T);
    T.tm = tm, T.np = np, T.m0 = m0, T.p0 = p0;
    T.acc_ty = x->pf32;
    pc->T = &T;
    for (int i = 0; i < tm; i++)
        for (int j = 0; j < units; j++) {
            T.acc[i][j] = qkc_emit_alloca(E, x->pf32, 64);
            LLVMBuildStore(E->b, LLVMConstNull(x->pf32), T.acc[i][j]);
        }
    for (int i = 0; i < tm; i++)
        buf[i] = qkc_emit_alloca(E, LLVMArrayType(E->f32, (unsigned)(np * P)), 64);
    if (g->L->sub != QKC_KSUB_NONE) {
        /* K is a multiple of 256 */
        qkc_lower_loop(g, i64c(E, 0), i64c(E, g->L->chunks_per_row), 8, super_body, pc);
    } else if (x->mode != I8_NONE) {
        /* int8 activations are padded with zero codes past K */
        qkc_lower_loop(g, i64c(E, 0), i64c(E, g->L->chunks_per_row), 1, record_body, pc);
    } else {
        int dense = g->L->decode != QKC_KDEC_AFFINE;
        qkc_lower_loop(g, i64c(E, 0), i64c(E, g->mm->k / 32), 1, dense ? record_body_dense : record_body_f32, pc);
        if (g->mm->k % 32 && dense)
            record_dense(g, pc, i64c(E, g->mm->k / 32), (int)(g->mm->k % 32));
        else if (g->mm->k % 32)
            record_f32(g, pc, i64c(E, g->mm->k / 32), (int)(g->mm->k % 32));
    }

    for (int i = 0; i < tm; i++)
        for (int j = 0; j < units; j++)
            LLVMBuildStore(E->b, load(E, x->pf32, T.acc[i][j], 64), gep8(E, buf[i], i64c(E, (int64_t)j * V * 4)));
    {
        /* columns [p0·P, min(n_end, (p0 + np)·P)), one at a time */
        LLVMValueRef n0 = LLVMBuildMul(E->b, p0, i64c(E, P), "");
        LLVMValueRef cols = LLVMBuildSub(E->b, g->n_end, n0, "");
        ecol ec = {&T, buf, n0};
        cols = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, cols, i64c(E, (int64_t)np * P), ""), cols,
                               i64c(E, (int64_t)np * P), "");
        qkc_lower_loop(g, i64c(E, 0), cols, 1, column_body, &ec);
    }
}

typedef struct ploop {
    pctx *pc;
    LLVMValueRef p0;
    LLVMValueRef m_from; /* rest == 1: the first row left over by the tiles */
    int tm, np, rest;
} ploop;

static void m_body(cg *g, void *ctx, LLVMValueRef m0)
{
    ploop *pl = ctx;
    emit_ptile(g, pl->pc, m0, pl->p0, pl->tm, pl->np);
}

/* A tile of np panels: its rows in tiles of tm (rest == 0), or the rows
 * the tiles leave, one at a time (rest == 1). */
static void p_body(cg *g, void *ctx, LLVMValueRef p0)
{
    qkc_emit *E = &g->e;
    ploop *outer = ctx, pl = *outer;
    pl.p0 = p0;
    if (pl.rest)
        qkc_lower_loop(g, pl.m_from, g->m, 1, m_body, &pl);
    else
        qkc_lower_loop(g, i64c(E, 0), g->m, pl.tm, m_body, &pl);
}

/* The panels [pb, pe) in tiles of pl->np, the last ones one by one. */
static void panel_loop(cg *g, ploop *pl, LLVMValueRef pb, LLVMValueRef pe)
{
    int np = pl->np;
    LLVMValueRef next = qkc_lower_loop(g, pb, pe, np, p_body, pl);
    if (np > 1) {
        pl->np = 1;
        qkc_lower_loop(g, next, pe, 1, p_body, pl);
        pl->np = np;
    }
}

void qkc_lower_panels(cg *g, i8ctx *x)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int P = x->panel, tmax;
    pctx pc;
    ploop pl;
    /* the integer correction and the float one, as emit_step_int8 (lower.c) */
    int cc_int = x->mode == I8_TABLE                               ? x->table_cc
                 : x->mode == I8_DIRECT && L->zero == QKC_KF_NONE ? L->zero_const
                                                                  : 0;
    memset(&pc, 0, sizeof pc);
    pc.x = x;
    pc.j = -1;
    pc.int_cc = cc_int - x->off;
    x->halves = L->sub == QKC_KSUB_Q6;
    pc.need_coef = L->min != QKC_KF_NONE || (x->mode == I8_DIRECT && L->zero != QKC_KF_NONE);
    pc.need_qsum = x->mode != I8_SIGNED && (pc.int_cc || pc.need_coef);
    memset(&pl, 0, sizeof pl);
    pl.pc = &pc;
    /* tiles up to 4 x 4 panels, dense values up to 8 rows (schedule.c) */
    tmax = 8;
    pl.np = g->s->tile_n < 4 ? g->s->tile_n : 4;
    pl.tm = g->s->tile_m < tmax ? g->s->tile_m : tmax;
    LLVMValueRef pb = LLVMBuildSDiv(E->b, g->n_begin, i64c(E, P), "");
    LLVMValueRef pe = LLVMBuildSDiv(E->b, LLVMBuildAdd(E->b, g->n_end, i64c(E, P - 1), ""), i64c(E, P), "");
    if (pl.tm == 1) {
        pl.rest = 1;
        pl.m_from = i64c(E, 0);
        panel_loop(g, &pl, pb, pe);
        return;
    }
    /* Rows in tiles of tm over tiles of np panels; the rows left over (all
     * of them at M = 1) stream one panel at a time, which keeps a single
     * weight stream in flight where the call is bound by memory. */
    panel_loop(g, &pl, pb, pe);
    pl.rest = 1;
    pl.tm = 1;
    pl.np = 1;
    pl.m_from = LLVMBuildMul(E->b, LLVMBuildSDiv(E->b, g->m, i64c(E, g->s->tile_m < tmax ? g->s->tile_m : tmax), ""),
                             i64c(E, g->s->tile_m < tmax ? g->s->tile_m : tmax), "");
    panel_loop(g, &pl, pb, pe);
}
