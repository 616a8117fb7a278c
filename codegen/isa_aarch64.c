/*
 * The AArch64 family's hooks (isa.h): NEON, with FEAT_DotProd and
 * FEAT_I8MM (targets/aarch64.c).
 *
 * ISA assumptions: 128-bit NEON vectors, 32 of them. 16-entry f32 tables
 * are byte lookups over four table registers (tbl). The int8 path
 * (lower_cpu.h: I8_*) multiplies s8 by s8, exact in every form: sdot
 * (DotProd) over 4-bit codes and codes of up to 7 bits as they are, over
 * 8-bit codes less 128 (off = 128, the correction less 128), or usdot
 * (I8MM) over unsigned 8-bit codes that are not centred on 128; table
 * values as s8 (tbl, cc = 0); without DotProd a widening multiply (smull)
 * and pairwise adds. With I8MM, 2x2 pairs of a tile's rows and columns go
 * through smmla / usmmla (the int8 tile hooks below) where the weights
 * keep the row layout; the int8 path reads weight panels of 4 rows
 * (below) wherever the layout takes them: sdot by element with DotProd,
 * smull / smlal and pairwise adds without.
 */
#include <stdlib.h>

#include "codegen/lower_cpu.h"

static int aarch64_registers(const qkc_target *t)
{
    (void)t;
    return 32;
}

/* ------------------------------------------------------ 16-entry tables */

/* The table's 64 bytes in four registers: float i's bytes are 4i..4i+3. */
static void aarch64_table_constants(cg *g, const double v[16])
{
    qkc_emit *E = &g->e;
    for (int r = 0; r < 4; r++) {
        LLVMValueRef bytes[16];
        for (int i = 0; i < 16; i++) {
            float f = (float)v[r * 4 + i / 4];
            uint32_t u;
            memcpy(&u, &f, sizeof u);
            bytes[i] = LLVMConstInt(E->i8, (u >> (8 * (i % 4))) & 0xFF, 0);
        }
        g->table[r] = LLVMConstVector(bytes, 16);
    }
}

static void aarch64_table_load(cg *g, LLVMValueRef p)
{
    qkc_emit *E = &g->e;
    for (int r = 0; r < 4; r++)
        g->table[r] = load(E, LLVMVectorType(E->i8, 16), gep8(E, p, i64c(E, 16 * r)), 4);
}

/* A byte lookup (tbl with four table registers): idx·0x04040404 +
 * 0x03020100 gives exactly float idx's byte indices in each 32-bit lane. */
/* tbl over the table's four registers: one instruction per vector. */
static int aarch64_table_lookup_is_one_op(cg *g)
{
    (void)g;
    return 1;
}

static LLVMValueRef aarch64_table_lookup(cg *g, LLVMValueRef idx)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v16 = LLVMVectorType(E->i8, 16);
    LLVMValueRef b = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, idx, vconst_i32(g, 0x04040404), ""),
                                  vconst_i32(g, 0x03020100), "");
    LLVMValueRef args[5] = {g->table[0], g->table[1], g->table[2], g->table[3], LLVMBuildBitCast(E->b, b, v16, "")};
    return LLVMBuildBitCast(E->b, intrinsic(E, "llvm.aarch64.neon.tbl4", &v16, 1, args, 5), g->vf, "");
}

/* ------------------------------------------------------------ int8 path */

static int aarch64_int8_mode(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    (void)mm, (void)t;
    /* s8 x s8 products are exact in every form (sdot, usdot, smull) */
    if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8))
        return I8_DIRECT;
    if (L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L))
        return I8_TABLE;
    return I8_NONE;
}

static void aarch64_int8_setup(cg *g, i8ctx *x)
{
    const qkc_target *t = g->t;
    const qkc_klayout *L = g->L;
    x->P = 1;
    x->dotprod = (t->features & QKC_FEAT_DOTPROD) != 0;
    /* usdot spares the u - 128 flip and its correction where the
     * codes are not centred on 128 anyway (uint8 with zeros) */
    x->usdot = x->dotprod && (t->features & QKC_FEAT_I8MM) && x->mode == I8_DIRECT && L->code_bits == 8 &&
               !(L->zero_const == 128 && L->zero == QKC_KF_NONE);
    x->mmla = x->dotprod && (t->features & QKC_FEAT_I8MM);
    /* 8-bit codes of up to 7 bits (q5_0, int6, ...) are s8 as they are;
     * wider ones go as code − 128 under sdot */
    x->off =
        x->mode == I8_DIRECT && L->code_bits == 8 && !x->usdot && qkc_dtype_get(g->mm->w.dtype)->bits >= 8 ? 128 : 0;
    x->table_cc = 0;
}

/* init + Σ over groups of 4 bytes of w·q, w signed (or unsigned when
 * `unsigned_w`, usdot), as <8 x i32>: sdot/usdot on each 16-byte half,
 * or without DOTPROD products widened to i16 (|w·q| ≤ 128·128 fits) and
 * summed in pairs twice. */
static LLVMValueRef dot_neon(cg *g, i8ctx *x, LLVMValueRef init, LLVMValueRef w, LLVMValueRef q, int unsigned_w)
{
    qkc_emit *E = &g->e;
    LLVMValueRef idx[32], r;
    if (x->dotprod) {
        LLVMTypeRef v16 = LLVMVectorType(E->i8, 16), v4 = LLVMVectorType(E->i32, 4);
        LLVMValueRef half[2];
        LLVMTypeRef ov[2] = {v4, v16};
        for (int h = 0; h < 2; h++) {
            LLVMValueRef wi[16], ai[4];
            for (int i = 0; i < 16; i++)
                wi[i] = i32c(E, 16 * h + i);
            for (int i = 0; i < 4; i++)
                ai[i] = i32c(E, 4 * h + i);
            LLVMValueRef args[3] = {
                init ? LLVMBuildShuffleVector(E->b, init, LLVMGetUndef(x->vi32s), LLVMConstVector(ai, 4), "")
                     : LLVMConstNull(v4),
                LLVMBuildShuffleVector(E->b, w, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), ""),
                LLVMBuildShuffleVector(E->b, q, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), "")};
            half[h] = intrinsic(E, unsigned_w ? "llvm.aarch64.neon.usdot" : "llvm.aarch64.neon.sdot", ov, 2, args, 3);
        }
        for (int i = 0; i < 8; i++)
            idx[i] = i32c(E, i);
        return LLVMBuildShuffleVector(E->b, half[0], half[1], LLVMConstVector(idx, 8), "");
    }
    {
        LLVMTypeRef v32w = LLVMVectorType(E->i16, 32), v32d = LLVMVectorType(E->i32, 32);
        LLVMValueRef p = LLVMBuildMul(E->b, LLVMBuildSExt(E->b, w, v32w, ""), LLVMBuildSExt(E->b, q, v32w, ""), "");
        r = LLVMBuildSExt(E->b, p, v32d, "");
        for (int len = 16; len >= 8; len /= 2) {
            LLVMValueRef ev[16], od[16];
            for (int i = 0; i < len; i++)
                ev[i] = i32c(E, 2 * i), od[i] = i32c(E, 2 * i + 1);
            LLVMValueRef u = LLVMGetUndef(LLVMTypeOf(r));
            r = LLVMBuildAdd(E->b, LLVMBuildShuffleVector(E->b, r, u, LLVMConstVector(ev, (unsigned)len), ""),
                             LLVMBuildShuffleVector(E->b, r, u, LLVMConstVector(od, (unsigned)len), ""), "");
        }
        (void)unsigned_w; /* never set without DOTPROD */
        return init ? LLVMBuildAdd(E->b, init, r, "") : r;
    }
}

static void aarch64_int8_weights(cg *g, i8ctx *x, LLVMValueRef *chunks, int present, i8w *out)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef w = qkc_lower_step_codes(g, x, chunks, present);
    out->svec = out->wabs = NULL;
    if (L->decode == QKC_KDEC_TABLE) {
        /* tbl: the 16 table values as s8, one lookup per 16 codes */
        uint8_t tb[16];
        LLVMTypeRef v16 = LLVMVectorType(E->i8, 16);
        LLVMValueRef half[2], idx[32];
        for (int i = 0; i < 16; i++)
            tb[i] = (uint8_t)(int8_t)L->table[i];
        for (int h = 0; h < 2; h++) {
            LLVMValueRef wi[16];
            for (int i = 0; i < 16; i++)
                wi[i] = i32c(E, 16 * h + i);
            LLVMValueRef args[2] = {cbytes(E, tb, 16),
                                    LLVMBuildShuffleVector(E->b, w, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), "")};
            half[h] = intrinsic(E, "llvm.aarch64.neon.tbl1", &v16, 1, args, 2);
        }
        for (int i = 0; i < 32; i++)
            idx[i] = i32c(E, i);
        w = LLVMBuildShuffleVector(E->b, half[0], half[1], LLVMConstVector(idx, 32), "");
    } else if (x->off == 128) {
        uint8_t flip[32];
        memset(flip, 0x80, sizeof flip);
        w = LLVMBuildXor(E->b, w, cbytes(E, flip, 32), ""); /* u - 128 as s8 */
    }
    out->w = w;
}

static LLVMValueRef aarch64_int8_dot(cg *g, i8ctx *x, LLVMValueRef init, const i8w *w, LLVMValueRef q)
{
    return dot_neon(g, x, init, w->w, q, x->usdot);
}

static LLVMValueRef aarch64_int8_sum(cg *g, i8ctx *x, LLVMValueRef u, LLVMValueRef q)
{
    return dot_neon(g, x, NULL, u, q, 0);
}

/* ------------------------------------------------ smmla pairs (FEAT_I8MM)
 *
 * The int8 path's matrix form with FEAT_I8MM: smmla (usmmla where the
 * weights go as unsigned codes, as usdot does), for tiles of at least two
 * activation rows and two weight columns.
 *
 * smmla(acc, X, Y) adds to the four int32 lanes of acc the products of
 * X's two rows of 8 bytes by Y's two rows: lane 2i + j += Σ_k X[8i+k]·Y[8j+k].
 * Here X holds two weight columns' bytes and Y two activation rows' bytes,
 * both for the same 8 values of k, so lane 2·jc + ir is the output (row
 * ir, column jc) of the pair: 32 products per instruction where sdot does
 * 16, and a chunk (k = 0..31, four groups of 8) ends as one int32 per
 * output instead of a vector of partial sums, so the chunk's scales cost
 * one conversion, one multiply and one FMA per 2×2 outputs instead of two
 * of each per output. The pair accumulators (<4 x float>) cover the
 * tile's first tm & ~1 rows and tn & ~1 columns; an odd last row or column
 * stays on the sdot path (lower.c's emit_step_int8), and one-row tiles (GEMV) never
 * come here. Scales, zeros and minimums are applied as the sdot path
 * applies them: the products are the same exact integers, summed in a
 * different order only in f32 across chunks.
 *
 * The integer correction −cc·Σq of a row pair is itself an smmla chain
 * (the bytes −cc, or ones when Σq is needed in f32 too) and starts each
 * column pair's accumulation. Two 4-bit records pair up before their
 * nibbles are split: their 16 code bytes interleave by 8 (zip1/zip2 .2d),
 * and the low nibbles of the two halves are then k 0-7 and 8-15 of both
 * columns, the high nibbles k 16-23 and 24-31.
 */

/* Bytes [8·grp, 8·grp + 8) of two vectors of nb bytes, side by side,
 * shuffled as 64-bit lanes (one zip1/zip2 .2d; as bytes LLVM moves each
 * half on its own). */
static LLVMValueRef mmla_pair8(cg *g, LLVMValueRef first, LLVMValueRef second, int nb, int grp)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef vt = LLVMVectorType(E->i64, (unsigned)(nb / 8));
    LLVMValueRef idx[2] = {i32c(E, grp), i32c(E, nb / 8 + grp)};
    LLVMValueRef r = LLVMBuildShuffleVector(E->b, LLVMBuildBitCast(E->b, first, vt, ""),
                                            LLVMBuildBitCast(E->b, second, vt, ""), LLVMConstVector(idx, 2), "");
    return LLVMBuildBitCast(E->b, r, LLVMVectorType(E->i8, 16), "");
}

/* <4 x float> {e0, e1, e0, e1}. (LLVM 19 builds it with three lane moves
 * whatever the IR's form: two lanes and a 64-bit dup, or a freeze between,
 * fold back into the same build_vector.) */
static LLVMValueRef pair_twice(cg *g, LLVMValueRef e0, LLVMValueRef e1)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v2 = LLVMVectorType(E->f32, 2);
    LLVMValueRef idx[4] = {i32c(E, 0), i32c(E, 1), i32c(E, 0), i32c(E, 1)};
    LLVMValueRef v = LLVMBuildInsertElement(E->b, LLVMGetUndef(v2), e0, i32c(E, 0), "");
    v = LLVMBuildInsertElement(E->b, v, e1, i32c(E, 1), "");
    return LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(v2), LLVMConstVector(idx, 4), "");
}

/* <4 x float> {e0, e0, e1, e1}. */
static LLVMValueRef each_twice(cg *g, LLVMValueRef e0, LLVMValueRef e1)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v2 = LLVMVectorType(E->f32, 2);
    LLVMValueRef idx[4] = {i32c(E, 0), i32c(E, 0), i32c(E, 1), i32c(E, 1)};
    LLVMValueRef v = LLVMBuildInsertElement(E->b, LLVMGetUndef(v2), e0, i32c(E, 0), "");
    v = LLVMBuildInsertElement(E->b, v, e1, i32c(E, 1), "");
    return LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(v2), LLVMConstVector(idx, 4), "");
}

/* <4 x float> {s0, s0, s1, s1} of the chunk records' scales: f16 scales
 * are paired as f16 and widened once (fcvtl). */
static LLVMValueRef mmla_scales(cg *g, LLVMValueRef ch0, LLVMValueRef ch1, LLVMValueRef s0, LLVMValueRef s1)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef idx[4] = {i32c(E, 0), i32c(E, 0), i32c(E, 1), i32c(E, 1)}, v;
    if (L->scale == QKC_KF_F16) {
        LLVMTypeRef v2 = LLVMVectorType(E->i16, 2);
        v = LLVMBuildInsertElement(E->b, LLVMGetUndef(v2), load(E, E->i16, gep8(E, ch0, i64c(E, L->scale_off)), 1),
                                   i32c(E, 0), "");
        v = LLVMBuildInsertElement(E->b, v, load(E, E->i16, gep8(E, ch1, i64c(E, L->scale_off)), 1), i32c(E, 1), "");
        v = LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(v2), LLVMConstVector(idx, 4), "");
        return LLVMBuildFPExt(E->b, LLVMBuildBitCast(E->b, v, LLVMVectorType(E->f16, 4), ""),
                              LLVMVectorType(E->f32, 4), "");
    }
    return each_twice(g, s0, s1);
}

static LLVMValueRef mmla(cg *g, int unsigned_w, LLVMValueRef acc, LLVMValueRef w, LLVMValueRef a)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v16 = LLVMVectorType(E->i8, 16), v4 = LLVMVectorType(E->i32, 4);
    LLVMTypeRef ov[2] = {v4, v16};
    LLVMValueRef args[3] = {acc ? acc : LLVMConstNull(v4), w, a};
    return intrinsic(E, unsigned_w ? "llvm.aarch64.neon.usmmla" : "llvm.aarch64.neon.smmla", ov, 2, args, 3);
}

/* The four weight operands (k groups 0..3) of the chunk records ch0, ch1
 * of a column pair, as the sdot path's weight operand: table values
 * (tbl), codes, or codes − 128. */
static void mmla_weights(cg *g, i8ctx *x, LLVMValueRef ch0, LLVMValueRef ch1, LLVMValueRef out[4])
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMTypeRef v16 = LLVMVectorType(E->i8, 16);
    uint8_t c[16];
    if (L->code_bits == 4) {
        LLVMValueRef r0 = load(E, v16, gep8(E, ch0, i64c(E, L->code_off)), 1);
        LLVMValueRef r1 = load(E, v16, gep8(E, ch1, i64c(E, L->code_off)), 1);
        for (int h = 0; h < 2; h++) {
            LLVMValueRef both = mmla_pair8(g, r0, r1, 16, h);
            memset(c, 15, sizeof c);
            out[h] = LLVMBuildAnd(E->b, both, cbytes(E, c, 16), "");
            memset(c, 4, sizeof c);
            out[2 + h] = LLVMBuildLShr(E->b, both, cbytes(E, c, 16), "");
        }
    } else {
        LLVMValueRef c0 = qkc_lower_chunk_codes(g, ch0), c1 = qkc_lower_chunk_codes(g, ch1);
        for (int grp = 0; grp < 4; grp++)
            out[grp] = mmla_pair8(g, c0, c1, 32, grp);
    }
    for (int grp = 0; grp < 4; grp++) {
        if (L->decode == QKC_KDEC_TABLE) {
            for (int i = 0; i < 16; i++)
                c[i] = (uint8_t)(int8_t)L->table[i];
            LLVMValueRef args[2] = {cbytes(E, c, 16), out[grp]};
            out[grp] = intrinsic(E, "llvm.aarch64.neon.tbl1", &v16, 1, args, 2);
        } else if (x->off == 128) {
            memset(c, 0x80, sizeof c);
            out[grp] = LLVMBuildXor(E->b, out[grp], cbytes(E, c, 16), ""); /* u - 128 as s8 */
        }
    }
}

/* One step (one chunk, P = 1) of the tile's pairs. int_cc and need_coef
 * as in lower.c's emit_step_int8. */
static void aarch64_tile_step(cg *g, i8ctx *x, tile *T, LLVMValueRef step, int int_cc, int need_coef)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMTypeRef v4f = LLVMVectorType(E->f32, 4);
    LLVMValueRef a[4][4], dv[4], corr[4] = {0}, qsumf[4] = {0};
    for (int ip = 0; ip < T->pm / 2; ip++) {
        LLVMValueRef q[2], d[2];
        for (int h = 0; h < 2; h++) {
            LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, 2 * ip + h), "");
            LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                            LLVMBuildMul(E->b, step, i64c(E, 32), ""), "");
            LLVMValueRef si = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, x->a_scales_ld, ""), step, "");
            q[h] = load(E, x->vbytes, gep8(E, g->a, off), 1);
            d[h] = load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, x->a_scales, &si, 1, ""), 4);
        }
        for (int grp = 0; grp < 4; grp++)
            a[ip][grp] = mmla_pair8(g, q[0], q[1], 32, grp);
        dv[ip] = pair_twice(g, d[0], d[1]);
        if (int_cc || need_coef) {
            /* −cc·Σq directly when −cc is an s8 and Σq is not needed
             * otherwise; else Σq (bytes of ones), then the product */
            int direct = !need_coef && int_cc >= -127 && int_cc <= 128;
            uint8_t wv[16];
            LLVMValueRef sum = NULL;
            memset(wv, direct ? (uint8_t)(int8_t)-int_cc : 1, sizeof wv);
            for (int grp = 0; grp < 4; grp++)
                sum = mmla(g, 0, sum, cbytes(E, wv, 16), a[ip][grp]);
            if (direct) {
                corr[ip] = sum;
            } else {
                qsumf[ip] = LLVMBuildSIToFP(E->b, sum, v4f, "");
                if (int_cc)
                    corr[ip] = LLVMBuildMul(E->b, sum, splat(E, i32c(E, -int_cc), 4), "");
            }
        }
    }
    for (int jp = 0; jp < T->pn / 2; jp++) {
        LLVMValueRef ch[2], s[2], mn[2], cc[2], w[4], svec, cvec = NULL;
        for (int h = 0; h < 2; h++) {
            LLVMValueRef rowoff = LLVMBuildMul(E->b, T->nrow[2 * jp + h], i64c(E, (int64_t)L->row_bytes), "");
            ch[h] = gep8(E, g->w, LLVMBuildAdd(E->b, rowoff, LLVMBuildMul(E->b, step, i64c(E, L->chunk_bytes), ""), ""));
            qkc_lower_int8_coefs(g, x, ch[h], &s[h], &mn[h], &cc[h]);
        }
        mmla_weights(g, x, ch[0], ch[1], w);
        svec = mmla_scales(g, ch[0], ch[1], s[0], s[1]);
        if (need_coef) {
            LLVMValueRef c0[2];
            for (int h = 0; h < 2; h++)
                c0[h] = LLVMBuildFSub(E->b, mn[h], LLVMBuildFMul(E->b, cc[h], s[h], ""), "");
            cvec = each_twice(g, c0[0], c0[1]);
        }
        for (int ip = 0; ip < T->pm / 2; ip++) {
            LLVMValueRef prod = corr[ip], acc = load(E, v4f, T->pacc[ip][jp], 16);
            for (int grp = 0; grp < 4; grp++)
                prod = mmla(g, x->usdot, prod, w[grp], a[ip][grp]);
            acc = fma_v(E, LLVMBuildFMul(E->b, LLVMBuildSIToFP(E->b, prod, v4f, ""), svec, ""), dv[ip], acc);
            if (need_coef)
                acc = fma_v(E, LLVMBuildFMul(E->b, qsumf[ip], cvec, ""), dv[ip], acc);
            LLVMBuildStore(E->b, acc, T->pacc[ip][jp]);
        }
    }
}

/* The pairs of a tile: pm x pn outputs, accumulators zeroed. */
static void aarch64_tile_begin(cg *g, i8ctx *x, tile *T)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v4f = LLVMVectorType(E->f32, 4);
    if (!x->mmla || T->tm < 2 || T->tn < 2)
        return;
    T->pm = T->tm & ~1, T->pn = T->tn & ~1;
    for (int ip = 0; ip < T->pm / 2; ip++)
        for (int jp = 0; jp < T->pn / 2; jp++) {
            T->pacc[ip][jp] = qkc_emit_alloca(E, v4f, 64);
            LLVMBuildStore(E->b, LLVMConstNull(v4f), T->pacc[ip][jp]);
        }
}

/* After the K loop: each pair lane is one output's whole sum. */
static void aarch64_tile_end(cg *g, tile *T)
{
    qkc_emit *E = &g->e;
    for (int ip = 0; ip < T->pm / 2; ip++)
        for (int jp = 0; jp < T->pn / 2; jp++) {
            LLVMValueRef acc = load(E, LLVMVectorType(E->f32, 4), T->pacc[ip][jp], 16);
            for (int l = 0; l < 4; l++)
                T->sum[2 * ip + (l & 1)][2 * jp + (l >> 1)] = LLVMBuildExtractElement(E->b, acc, i32c(E, l), "");
        }
}

/* ------------------------------------------------------- weight panels
 *
 * Every aarch64 target reads int8 weights in panels of P = 4 rows
 * (ir/klayout.h): one 128-bit vector is one int32 lane per row. A
 * record's codes are 8 groups of 16 bytes (4-bit codes: 4 vectors of
 * nibbles, the low nibbles groups 0..3, the high ones groups 4..7), group
 * t holding elements 4t .. 4t+3 of every row, row r's bytes at 4r; the 32
 * activation bytes of a row are two vectors, group t's 4 at 4t. The
 * weight operand is the row path's: codes as they are (4-bit, and 8-bit
 * codes of up to 7 bits), codes − 128 (other 8-bit codes under sdot,
 * off = 128), or s8 table values (tbl); it is decoded once per record and
 * panel and used by every row of the tile, and the activation vectors are
 * loaded once per record and row and used by every panel. Groups go in
 * the order 0, 4, 1, 5, ... so that a 4-bit code vector's two groups are
 * used as they are split.
 *
 * DotProd: per group and row one sdot by element (usdot where the path
 * takes unsigned codes),
 *
 *     sdot acc.4s, w_t.16b, q_{t/4}.4b[t%4]
 *
 * With I8MM too: per output and record this takes fewer instructions than
 * smmla pairs on the row layout, whose weights and activations are paired
 * (zip) and corrected pair by pair (q4_0, 2 x 2 tiles: 90 instructions a
 * record for 16 outputs against 48 for 4); smmla stays for the int8
 * kernels that keep the row layout (outliers).
 *
 * Plain NEON: per group and row the activation word broadcast (dup .4s,
 * shared by the tile's panels) times the 16 weight bytes, widened: smull
 * for rows 0-1, smull2 for rows 2-3, accumulated in int16 (smlal, smlal2)
 * over as many groups as cannot overflow (|q| <= 127, ir/spec.h), then
 * summed to one int32 lane per row in one of two ways, whichever takes
 * fewer instructions for the weights' range:
 *   pairs  after every n groups, addp .8h of the two int16 sums (a lane
 *          pair of one row: 2n products) and sadalp into acc (4-bit
 *          codes: n = 8, two instructions per record, row and panel);
 *   wide   after every n groups, sadalp into two int32 sums (rows 0-1,
 *          rows 2-3), and at the end one addp .4s of the two (8-bit codes
 *          and tables with values past ±64: n = 2).
 * q4_0, one row by two panels: 89 instructions a record for 8 outputs,
 * where the row path's smull and pairwise adds took 91 for 2. */

/* Every target: NEON is the baseline (the int8 path's forms above). */
static int aarch64_int8_panel_rows(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    (void)mm, (void)L, (void)t;
    return 4;
}

/* Group t of a panel record's codes as the weight operand (16 bytes, row
 * r's 4 at 4r). 4-bit codes: groups t and t + 4 are the low and high
 * nibbles of one vector, loaded for t < 4 into *raw. */
static LLVMValueRef panel_group(cg *g, i8ctx *x, LLVMValueRef codes, int stride, int t, LLVMValueRef *raw)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMTypeRef v16 = LLVMVectorType(E->i8, 16);
    LLVMValueRef w;
    uint8_t bytes[16];
    if (L->code_bits == 4) {
        if (t < 4)
            *raw = load(E, v16, gep8(E, codes, i64c(E, (int64_t)stride * t)), 1);
        memset(bytes, t < 4 ? 15 : 4, sizeof bytes);
        w = t < 4 ? LLVMBuildAnd(E->b, *raw, cbytes(E, bytes, 16), "")
                  : LLVMBuildLShr(E->b, *raw, cbytes(E, bytes, 16), "");
        if (L->hi_bits) {
            /* compact panels: the bit planes (the loads fold into one) */
            LLVMValueRef planes[2];
            qkc_lower_panel_planes(g, x, codes, stride, planes);
            w = qkc_lower_panel_hi(g, x, w, planes, t);
        }
    } else {
        w = load(E, v16, gep8(E, codes, i64c(E, (int64_t)stride * t)), 1);
    }
    if (L->decode == QKC_KDEC_TABLE) {
        for (int i = 0; i < 16; i++)
            bytes[i] = (uint8_t)(int8_t)L->table[i];
        LLVMValueRef args[2] = {cbytes(E, bytes, 16), w};
        w = intrinsic(E, "llvm.aarch64.neon.tbl1", &v16, 1, args, 2);
    } else if (x->off == 128) {
        memset(bytes, 0x80, sizeof bytes);
        w = LLVMBuildXor(E->b, w, cbytes(E, bytes, 16), ""); /* code − 128 as s8 */
    }
    return w;
}

/* <16 x i8>: 32-bit lane `lane` of q in every lane (dup .4s, or the
 * by-element operand of sdot, where it folds). */
static LLVMValueRef word_dup(cg *g, LLVMValueRef q, int lane)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v4 = LLVMVectorType(E->i32, 4);
    LLVMValueRef idx[4] = {i32c(E, lane), i32c(E, lane), i32c(E, lane), i32c(E, lane)};
    LLVMValueRef words = LLVMBuildBitCast(E->b, q, v4, "");
    LLVMValueRef dup = LLVMBuildShuffleVector(E->b, words, LLVMGetUndef(v4), LLVMConstVector(idx, 4), "");
    return LLVMBuildBitCast(E->b, dup, LLVMVectorType(E->i8, 16), "");
}

/* DotProd. One row's 8 sdot go into two chains (even and odd groups)
 * summed at the end, so that an in-order core is not held by one chain's
 * latency; with more rows the rows are the independent chains. */
static void panel_dot_sdot(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef (*qv)[2], int tm,
                           LLVMValueRef *acc)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef ov[2] = {LLVMVectorType(E->i32, 4), LLVMVectorType(E->i8, 16)};
    LLVMValueRef chain[8][2], raw = NULL;
    int chains = tm == 1 || x->halves ? 2 : 1;
    /* with x->halves the chains are the record's halves (u % 2 = t >= 4) */
    for (int i = 0; i < tm; i++)
        chain[i][0] = acc[x->halves ? 2 * i : i],
        chain[i][1] = x->halves ? acc[2 * i + 1] : LLVMConstNull(x->pi32);
    for (int u = 0; u < 8; u++) {
        int t = u / 2 + 4 * (u % 2);
        LLVMValueRef w = panel_group(g, x, codes, stride, t, &raw);
        for (int i = 0; i < tm; i++) {
            LLVMValueRef args[3] = {chain[i][u % chains], w, word_dup(g, qv[i][t / 4], t % 4)};
            chain[i][u % chains] =
                intrinsic(E, x->usdot ? "llvm.aarch64.neon.usdot" : "llvm.aarch64.neon.sdot", ov, 2, args, 3);
        }
    }
    for (int i = 0; i < tm; i++) {
        if (x->halves)
            acc[2 * i] = chain[i][0], acc[2 * i + 1] = chain[i][1];
        else
            acc[i] = chains == 2 ? LLVMBuildAdd(E->b, chain[i][0], chain[i][1], "") : chain[i][0];
    }
}

/* The largest |w| of the weight operand: 4-bit codes, codes of up to 7
 * bits, codes − 128, table values. */
static int panel_max_weight(cg *g, i8ctx *x)
{
    const qkc_klayout *L = g->L;
    int m = 0;
    if (L->decode == QKC_KDEC_TABLE) {
        for (int i = 0; i < 16; i++) {
            int v = abs((int)L->table[i]);
            m = v > m ? v : m;
        }
        return m;
    }
    if (x->off == 128)
        return 128;
    return L->code_bits == 4 ? (16 << L->hi_bits) - 1 : (1 << qkc_dtype_get(g->mm->w.dtype)->bits) - 1;
}

/* Plain NEON (smull, smlal, sadalp; see the top of this part). */
static void panel_dot_neon(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef (*qv)[2], int tm,
                           LLVMValueRef *acc)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef v16 = LLVMVectorType(E->i8, 16), v8w = LLVMVectorType(E->i16, 8), v4 = LLVMVectorType(E->i32, 4);
    LLVMTypeRef ov[2] = {v4, v8w};
    LLVMValueRef s16[8][2][2] = {{{0}}}, s32[8][2][2] = {{{0}}}, raw = NULL, lo[8], hi[8];
    int maxp = panel_max_weight(g, x) * 127, nh = x->halves ? 2 : 1, done[2] = {0, 0};
    int n_pairs = 32767 / (2 * maxp), n_wide = 32767 / maxp;
    int cost_pairs = 2 * ((8 + n_pairs - 1) / n_pairs), cost_wide = 2 * ((8 + n_wide - 1) / n_wide) + 2;
    int pairs = cost_pairs <= cost_wide, n = pairs ? n_pairs : n_wide;
    for (int i = 0; i < 8; i++)
        lo[i] = i32c(E, i), hi[i] = i32c(E, 8 + i);
    /* with x->halves, sums per half of the record (hf = u % 2: t >= 4)
     * into acc[2i + hf] */
    for (int u = 0; u < 8; u++) {
        int t = u / 2 + 4 * (u % 2), hf = nh == 2 ? u % 2 : 0;
        LLVMValueRef w = panel_group(g, x, codes, stride, t, &raw);
        LLVMValueRef wh[2] = {LLVMBuildShuffleVector(E->b, w, LLVMGetUndef(v16), LLVMConstVector(lo, 8), ""),
                              LLVMBuildShuffleVector(E->b, w, LLVMGetUndef(v16), LLVMConstVector(hi, 8), "")};
        done[hf]++;
        for (int i = 0; i < tm; i++) {
            LLVMValueRef a = word_dup(g, qv[i][t / 4], t % 4), *ai = &acc[nh * i + hf];
            for (int h = 0; h < 2; h++) {
                /* rows 2h, 2h + 1: smull (h = 0), smull2 (h = 1); the
                 * sum an smlal */
                LLVMValueRef args[2] = {
                    wh[h], LLVMBuildShuffleVector(E->b, a, LLVMGetUndef(v16), LLVMConstVector(h ? hi : lo, 8), "")};
                LLVMValueRef p = intrinsic(E, "llvm.aarch64.neon.smull", &v8w, 1, args, 2);
                s16[i][hf][h] = s16[i][hf][h] ? LLVMBuildAdd(E->b, s16[i][hf][h], p, "") : p;
            }
            if (done[hf] % n && done[hf] != 8 / nh)
                continue;
            if (pairs) {
                LLVMValueRef pr = intrinsic(E, "llvm.aarch64.neon.addp", &v8w, 1, s16[i][hf], 2);
                *ai = LLVMBuildAdd(E->b, *ai, intrinsic(E, "llvm.aarch64.neon.saddlp", ov, 2, &pr, 1), "");
            } else {
                for (int h = 0; h < 2; h++) {
                    LLVMValueRef w32 = intrinsic(E, "llvm.aarch64.neon.saddlp", ov, 2, &s16[i][hf][h], 1);
                    s32[i][hf][h] = s32[i][hf][h] ? LLVMBuildAdd(E->b, s32[i][hf][h], w32, "") : w32; /* sadalp */
                }
            }
            s16[i][hf][0] = s16[i][hf][1] = NULL;
        }
    }
    if (!pairs)
        for (int i = 0; i < tm; i++)
            for (int hf = 0; hf < nh; hf++)
                acc[nh * i + hf] = LLVMBuildAdd(E->b, acc[nh * i + hf],
                                                intrinsic(E, "llvm.aarch64.neon.addp", &v4, 1, s32[i][hf], 2), "");
}

/* Σ w·q of one panel record for tm rows (isa.h). */
static void aarch64_int8_panel_dot(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef *q, int tm,
                                   LLVMValueRef *acc)
{
    qkc_emit *E = &g->e;
    LLVMValueRef qv[8][2];
    for (int i = 0; i < tm; i++)
        for (int h = 0; h < 2; h++)
            qv[i][h] = load(E, LLVMVectorType(E->i8, 16), gep8(E, q[i], i64c(E, 16 * h)), 1);
    if (x->dotprod)
        panel_dot_sdot(g, x, codes, stride, qv, tm, acc);
    else
        panel_dot_neon(g, x, codes, stride, qv, tm, acc);
}

const qkc_isa qkc_isa_aarch64 = {
    .name = "aarch64",
    .arch = QKC_ARCH_AARCH64,
    .vector_widths = {128, 0},
    .vector_widths_text = "128 on aarch64 (NEON)",
    .vector_registers = aarch64_registers,
    .lower = qkc_lower,
    .takes_int8 = qkc_lower_uses_int8_dot,
    .lane_sum = qkc_emit_vector_sum,
    .table_constants = aarch64_table_constants,
    .table_load = aarch64_table_load,
    .table_lookup = aarch64_table_lookup,
    .table_lookup_is_one_op = aarch64_table_lookup_is_one_op,
    .int8_mode = aarch64_int8_mode,
    .int8_setup = aarch64_int8_setup,
    .int8_weights = aarch64_int8_weights,
    .int8_dot = aarch64_int8_dot,
    .int8_sum = aarch64_int8_sum,
    .int8_tile_begin = aarch64_tile_begin,
    .int8_tile_step = aarch64_tile_step,
    .int8_tile_end = aarch64_tile_end,
    .int8_panel_rows = aarch64_int8_panel_rows,
    .int8_panel_dot = aarch64_int8_panel_dot,
};
