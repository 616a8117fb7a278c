/*
 * Lowering a matmul to explicit vector LLVM IR (see lower.h).
 *
 * Kernel shape: for each tile of TN weight rows and TM activation rows,
 * TM*TN vector accumulators run over K chunk by chunk; each chunk's codes
 * are decoded once per weight row and used by all TM activation rows.
 * Leftover rows (n or m not a multiple of the tile) use 1-wide tiles. The
 * last, partial chunk of K loads activations with a mask (weights there
 * are padded with code 0, so masked lanes contribute exactly zero).
 *
 * Decoding with compute=f32 is factorised per chunk, as in ggml: with
 * x = (code − z)·s + min,
 *     Σ a·x = s·(Σ a·code − z·Σ a) + min·Σ a,
 * so each vector of weights costs one conversion and one FMA, and the
 * scale, zero and minimum cost O(1) per chunk. For bf16/f16/tf32 compute
 * each weight is dequantized exactly, rounded to the compute type and then
 * multiplied, which is what the reference models.
 *
 * What an instruction set does its own way — 16-entry table lookups, the
 * int8 path's weight operand and dot product, micro-kernels for part of a
 * tile (aarch64 smmla pairs) — the target's ISA table does (isa.h,
 * isa_x86.c, isa_aarch64.c); this file asks it and never tests the
 * architecture. The state the parts share is in lower_cpu.h.
 */
#include "codegen/lower.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codegen/llvm_compat.h"
#include "codegen/lower_cpu.h"
#include "ir/kernel_abi.h"
#include "ir/mixed.h"

/* Sub-vector `sub` (V lanes) of a C-lane vector. */
static LLVMValueRef subvec(cg *g, LLVMValueRef v, int sub)
{
    qkc_emit *E = &g->e;
    LLVMValueRef idx[64];
    if (g->S == 1)
        return v;
    for (int i = 0; i < g->V; i++)
        idx[i] = i32c(E, sub * g->V + i);
    return LLVMBuildShuffleVector(E->b, v, LLVMGetUndef(LLVMTypeOf(v)), LLVMConstVector(idx, (unsigned)g->V), "");
}

/* --------------------------------------------------- chunk fields */

LLVMValueRef qkc_lower_chunk_field(cg *g, LLVMValueRef chunk, qkc_kfield kind, int off)
{
    qkc_emit *E = &g->e;
    LLVMValueRef p = gep8(E, chunk, i64c(E, off));
    switch (kind) {
    case QKC_KF_F16: return LLVMBuildFPExt(E->b, load(E, E->f16, p, 1), E->f32, "");
    case QKC_KF_F32: return load(E, E->f32, p, 1);
    case QKC_KF_I16: return LLVMBuildSIToFP(E->b, load(E, E->i16, p, 1), E->f32, "");
    case QKC_KF_E8M0:
        return qkc_emit_e8m0_to_f32(E, LLVMBuildZExt(E->b, load(E, E->i8, p, 1), E->i32, ""), g->L->e8m0_half,
                                    g->L->e8m0_ff_is_nan);
    default: return NULL;
    }
}

/* A chunk field broadcast to `lanes` floats. An f16 field is broadcast as
 * 16-bit lanes and converted as a vector (vpbroadcastw + vcvtph2ps: two
 * instructions where a scalar convert and a broadcast take four). */
static LLVMValueRef chunk_field_vec(cg *g, LLVMValueRef chunk, qkc_kfield kind, int off, int lanes)
{
    qkc_emit *E = &g->e;
    if (kind == QKC_KF_F16) {
        LLVMValueRef h = load(E, E->i16, gep8(E, chunk, i64c(E, off)), 1);
        LLVMValueRef v = LLVMBuildBitCast(E->b, splat(E, h, lanes), LLVMVectorType(E->f16, (unsigned)lanes), "");
        return LLVMBuildFPExt(E->b, v, LLVMVectorType(E->f32, (unsigned)lanes), "");
    }
    return splat(E, qkc_lower_chunk_field(g, chunk, kind, off), lanes);
}

LLVMValueRef qkc_lower_chunk_codes(cg *g, LLVMValueRef chunk)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef p = gep8(E, chunk, i64c(E, L->code_off));
    if (L->code_bits == 4) {
        int h = g->C / 2;
        LLVMTypeRef bt = LLVMVectorType(E->i8, (unsigned)h);
        LLVMValueRef bytes = load(E, bt, p, 1), idx[64], f[64];
        for (int i = 0; i < h; i++)
            f[i] = LLVMConstInt(E->i8, 15, 0);
        LLVMValueRef lo = LLVMBuildAnd(E->b, bytes, LLVMConstVector(f, (unsigned)h), "");
        for (int i = 0; i < h; i++)
            f[i] = LLVMConstInt(E->i8, 4, 0);
        LLVMValueRef hi = LLVMBuildLShr(E->b, bytes, LLVMConstVector(f, (unsigned)h), "");
        for (int i = 0; i < g->C; i++)
            idx[i] = i32c(E, i);
        return LLVMBuildShuffleVector(E->b, lo, hi, LLVMConstVector(idx, (unsigned)g->C), "");
    }
    if (L->code_bits == 8)
        return load(E, LLVMVectorType(E->i8, (unsigned)g->C), p, 1);
    if (L->code_bits == 16)
        return load(E, LLVMVectorType(E->i16, (unsigned)g->C), p, 2);
    return load(E, LLVMVectorType(E->f32, (unsigned)g->C), p, 4);
}

/* LUT with a table per row or group: the chunk's table. */
static void load_chunk_table(cg *g, LLVMValueRef chunk)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef t = LLVMBuildZExt(E->b, load(E, E->i32, gep8(E, chunk, i64c(E, L->tidx_off)), 1), E->i64, "");
    LLVMValueRef off = LLVMBuildAdd(E->b, i64c(E, (int64_t)L->table_offset), LLVMBuildShl(E->b, t, i64c(E, 6), ""), "");
    g->isa->table_load(g, gep8(E, g->w, off));
}

/* The value of each code before scale/zero/min: code as float (AFFINE),
 * table entry, fp8 value, or the dense value. */
static LLVMValueRef code_value(cg *g, LLVMValueRef codes_sub)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef ci;
    switch (L->decode) {
    case QKC_KDEC_F32: return codes_sub;
    case QKC_KDEC_F16: return LLVMBuildFPExt(E->b, LLVMBuildBitCast(E->b, codes_sub, LLVMVectorType(E->f16, (unsigned)g->V), ""), g->vf, "");
    case QKC_KDEC_BF16:
        ci = LLVMBuildZExt(E->b, codes_sub, g->vi32, "");
        return LLVMBuildBitCast(E->b, LLVMBuildShl(E->b, ci, vconst_i32(g, 16), ""), g->vf, "");
    default: break;
    }
    ci = LLVMBuildZExt(E->b, codes_sub, g->vi32, "");
    switch (L->decode) {
    case QKC_KDEC_AFFINE: return g->affine_table ? g->isa->table_lookup(g, ci) : LLVMBuildSIToFP(E->b, ci, g->vf, "");
    case QKC_KDEC_TABLE: return g->isa->table_lookup(g, ci);
    case QKC_KDEC_LUT: return g->isa->table_lookup(g, ci);
    case QKC_KDEC_FP8E4M3: return qkc_emit_fp8_to_f32(E, ci, 0);
    case QKC_KDEC_FP8E5M2: return qkc_emit_fp8_to_f32(E, ci, 1);
    default: return NULL;
    }
}

/* ------------------------------------------------------------- tiles */

/* Rows of a tile. The last tile of a range may stick out past n_end: its
 * extra columns repeat row n_end - 1, compute the same value and store it
 * to the same place, so one tile width serves every N. */
static void tile_rows(cg *g, tile *T)
{
    qkc_emit *E = &g->e;
    LLVMValueRef last = LLVMBuildSub(E->b, g->n_end, i64c(E, 1), "");
    for (int j = 0; j < T->tn; j++) {
        LLVMValueRef r = j ? LLVMBuildAdd(E->b, T->n0, i64c(E, j), "") : T->n0;
        T->nrow[j] = j ? LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, r, g->n_end, ""), r, last, "") : r;
    }
}

static LLVMValueRef a_load(cg *g, tile *T, int tmi, LLVMValueRef ci, int sub, int valid)
{
    qkc_emit *E = &g->e;
    int lanes = valid - sub * g->V;
    LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, tmi), "");
    LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                   LLVMBuildAdd(E->b, LLVMBuildMul(E->b, ci, i64c(E, g->C), ""),
                                                i64c(E, sub * g->V), ""), "");
    LLVMValueRef p = LLVMBuildGEP2(E->b, E->f32, g->a, &el, 1, "");
    if (lanes >= g->V)
        return load(E, g->vf, p, 4);
    if (lanes <= 0)
        return LLVMConstNull(g->vf);
    {
        LLVMValueRef mask[64];
        for (int i = 0; i < g->V; i++)
            mask[i] = LLVMConstInt(E->i1, i < lanes, 0);
        LLVMTypeRef ov[2] = {g->vf, E->ptr};
        LLVMValueRef args[4] = {p, i32c(E, 4), LLVMConstVector(mask, (unsigned)g->V), LLVMConstNull(g->vf)};
        return intrinsic(E, "llvm.masked.load", ov, 2, args, 4);
    }
}

/* One chunk (index ci, `valid` real elements) of a tile. */
static void emit_chunk(cg *g, tile *T, LLVMValueRef ci, int valid)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef a[8][8], asum[8] = {0}; /* up to 8 vectors per chunk (32 floats in NEON registers) */
    /* Factorising saves per-weight work for one activation row; with
     * several rows, dequantizing once per weight row and sharing it across
     * the rows costs fewer FMAs (2 instead of 4 per chunk and row). */
    int factorized = g->factorized && T->tm == 1;
    int zc = g->affine_table ? 0 : L->zero_const; /* the table already subtracts it */
    int need_asum = factorized && L->decode == QKC_KDEC_AFFINE &&
                    (zc || L->zero != QKC_KF_NONE || L->min != QKC_KF_NONE);

    for (int i = 0; i < T->tm; i++) {
        for (int sub = 0; sub < g->S; sub++)
            a[i][sub] = a_load(g, T, i, ci, sub, valid);
        if (need_asum) {
            asum[i] = a[i][0];
            for (int sub = 1; sub < g->S; sub++)
                asum[i] = LLVMBuildFAdd(E->b, asum[i], a[i][sub], "");
        }
    }
    for (int j = 0; j < T->tn; j++) {
        LLVMValueRef row = T->nrow[j];
        LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, i64c(E, (int64_t)L->row_bytes), ""),
                                        LLVMBuildMul(E->b, ci, i64c(E, L->chunk_bytes), ""), "");
        LLVMValueRef chunk = gep8(E, g->w, off);
        LLVMValueRef s = NULL, mn = NULL, z = NULL, codes, val[8];
        if (g->s->prefetch > 0) {
            LLVMValueRef pf = gep8(E, chunk, i64c(E, (int64_t)g->s->prefetch * L->chunk_bytes));
            LLVMValueRef args[4] = {pf, i32c(E, 0), i32c(E, 3), i32c(E, 1)};
            LLVMTypeRef ov = E->ptr;
            intrinsic(E, "llvm.prefetch", &ov, 1, args, 4);
        }
        if (L->scale != QKC_KF_NONE)
            s = factorized ? NULL : qkc_lower_chunk_field(g, chunk, L->scale, L->scale_off);
        if (L->min != QKC_KF_NONE)
            mn = qkc_lower_chunk_field(g, chunk, L->min, L->min_off);
        if (L->zero != QKC_KF_NONE)
            z = qkc_lower_chunk_field(g, chunk, L->zero, L->zero_off);
        if (L->decode == QKC_KDEC_LUT && L->tidx != QKC_KF_NONE)
            load_chunk_table(g, chunk);
        if (L->decode == QKC_KDEC_VQ) {
            qkc_lower_vq_values(g, chunk, val);
        } else {
            codes = qkc_lower_chunk_codes(g, chunk);
            for (int sub = 0; sub < g->S; sub++)
                val[sub] = code_value(g, subvec(g, codes, sub));
        }

        if (factorized) {
            /* Σ a·v over the chunk, then scale, zero and minimum once. */
            LLVMValueRef negz = NULL;
            LLVMValueRef vs = L->scale != QKC_KF_NONE ? chunk_field_vec(g, chunk, L->scale, L->scale_off, g->V) : NULL;
            if (L->decode == QKC_KDEC_AFFINE && (zc || z)) {
                negz = f32c(E, -(double)zc);
                if (z)
                    negz = LLVMBuildFSub(E->b, negz, z, "");
                negz = splat(E, negz, g->V);
            }
            for (int i = 0; i < T->tm; i++) {
                LLVMValueRef t = NULL, acc = load(E, g->vf, T->acc[i][j], 64);
                for (int sub = 0; sub < g->S; sub++)
                    t = t ? fma_v(E, a[i][sub], val[sub], t) : LLVMBuildFMul(E->b, a[i][sub], val[sub], "");
                if (negz)
                    t = fma_v(E, asum[i], negz, t);
                acc = vs ? fma_v(E, t, vs, acc) : LLVMBuildFAdd(E->b, acc, t, "");
                if (mn)
                    acc = fma_v(E, asum[i], splat(E, mn, g->V), acc);
                LLVMBuildStore(E->b, acc, T->acc[i][j]);
            }
        } else {
            /* Exact dequantization, rounding to the compute type, FMA. */
            for (int sub = 0; sub < g->S; sub++) {
                LLVMValueRef x = val[sub];
                if (L->decode == QKC_KDEC_AFFINE && (zc || z)) {
                    LLVMValueRef zz = f32c(E, (double)zc);
                    if (z)
                        zz = LLVMBuildFAdd(E->b, zz, z, "");
                    x = LLVMBuildFSub(E->b, x, splat(E, zz, g->V), "");
                }
                if (s)
                    x = LLVMBuildFMul(E->b, x, splat(E, s, g->V), "");
                if (mn)
                    x = LLVMBuildFAdd(E->b, x, splat(E, mn, g->V), "");
                val[sub] = qkc_emit_round_compute(E, g->mm->compute, x);
            }
            for (int i = 0; i < T->tm; i++) {
                LLVMValueRef acc = load(E, g->vf, T->acc[i][j], 64);
                for (int sub = 0; sub < g->S; sub++)
                    acc = fma_v(E, a[i][sub], val[sub], acc);
                LLVMBuildStore(E->b, acc, T->acc[i][j]);
            }
        }
    }
}

LLVMValueRef qkc_lower_loop(cg *g, LLVMValueRef start, LLVMValueRef end, int64_t step, qkc_lower_loop_body body,
                            void *bctx)
{
    qkc_emit *E = &g->e;
    LLVMValueRef iv = qkc_emit_alloca(E, E->i64, 64);
    LLVMBasicBlockRef cond = block(E, "loop.cond"), bodyb = block(E, "loop.body"), done = block(E, "loop.done");
    LLVMBuildStore(E->b, start, iv);
    LLVMBuildBr(E->b, cond);
    LLVMPositionBuilderAtEnd(E->b, cond);
    LLVMValueRef i = load(E, E->i64, iv, 8);
    LLVMValueRef ok = LLVMBuildICmp(E->b, LLVMIntSLE, LLVMBuildAdd(E->b, i, i64c(E, step), ""), end, "");
    LLVMBuildCondBr(E->b, ok, bodyb, done);
    LLVMPositionBuilderAtEnd(E->b, bodyb);
    body(g, bctx, i);
    LLVMBuildStore(E->b, LLVMBuildAdd(E->b, i, i64c(E, step), ""), iv);
    LLVMBuildBr(E->b, cond);
    LLVMPositionBuilderAtEnd(E->b, done);
    return load(E, E->i64, iv, 8);
}

static void chunk_body(cg *g, void *ctx, LLVMValueRef ci)
{
    qkc_emit *E = &g->e;
    tile *T = ctx;
    for (int u = 0; u < g->s->k_unroll; u++)
        emit_chunk(g, T, u ? LLVMBuildAdd(E->b, ci, i64c(E, u), "") : ci, g->C);
}

static void chunk_body1(cg *g, void *ctx, LLVMValueRef ci)
{
    emit_chunk(g, ctx, ci, g->C);
}

/* A tile of tm x tn outputs at (m0, n0): its rows and its accumulators
 * (vectors of acc_ty, zeroed). */
static void tile_init(cg *g, tile *T, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn, LLVMTypeRef acc_ty)
{
    qkc_emit *E = &g->e;
    memset(T, 0, sizeof *T);
    T->tm = tm, T->tn = tn, T->m0 = m0, T->n0 = n0;
    tile_rows(g, T);
    for (int i = 0; i < tm; i++)
        for (int j = 0; j < tn; j++) {
            T->acc[i][j] = qkc_emit_alloca(E, acc_ty, 64);
            LLVMBuildStore(E->b, LLVMConstNull(acc_ty), T->acc[i][j]);
        }
}

/* ------------------------------------------------------ LoRA side path */

/* lora=R:DTYPE: vector v of row n of adapter B (R values in the lora
 * dtype; the last vector masked, its missing lanes zero), as f32. */
static LLVMValueRef lora_b_vec(cg *g, LLVMValueRef n, int v)
{
    qkc_emit *E = &g->e;
    int r = g->mm->lora_rank, lanes = r - v * g->V;
    qkc_dtype dt = g->mm->lora_dtype;
    LLVMTypeRef et = dt == QKC_DTYPE_F32 ? E->f32 : dt == QKC_DTYPE_F16 ? E->f16 : E->i16;
    LLVMTypeRef vt = LLVMVectorType(et, (unsigned)g->V);
    LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, n, i64c(E, r), ""), i64c(E, v * g->V), "");
    LLVMValueRef p = LLVMBuildGEP2(E->b, et, g->lora_b, &el, 1, ""), x;
    if (lanes >= g->V) {
        x = load(E, vt, p, dt == QKC_DTYPE_F32 ? 4 : 2);
    } else {
        LLVMValueRef mask[64];
        LLVMTypeRef ov[2] = {vt, E->ptr};
        for (int i = 0; i < g->V; i++)
            mask[i] = LLVMConstInt(E->i1, i < lanes, 0);
        LLVMValueRef args[4] = {p, i32c(E, dt == QKC_DTYPE_F32 ? 4 : 2), LLVMConstVector(mask, (unsigned)g->V),
                                LLVMConstNull(vt)};
        x = intrinsic(E, "llvm.masked.load", ov, 2, args, 4);
    }
    if (dt == QKC_DTYPE_F16)
        return LLVMBuildFPExt(E->b, x, g->vf, "");
    if (dt == QKC_DTYPE_BF16)
        return LLVMBuildBitCast(E->b, LLVMBuildShl(E->b, LLVMBuildZExt(E->b, x, g->vi32, ""), vconst_i32(g, 16), ""),
                                g->vf, "");
    return x;
}

/* The term s·Σ_j T[m,j]·B[n,j] of every output of a tile, f32 in any order
 * (ir/spec.h), into lt[i][j]. T's rows are zero-padded to lora_t_ld, a
 * multiple of 16, so they load as whole vectors; B's vectors are loaded
 * once per column and T's once per row, before the tile stores anything. */
static void lora_terms(cg *g, tile *T, LLVMValueRef lt[8][8])
{
    qkc_emit *E = &g->e;
    enum { MAXV = QKC_MAX_LORA_RANK / 4 };
    int nv = (g->mm->lora_rank + g->V - 1) / g->V;
    LLVMValueRef bv[8][MAXV], tv[8][MAXV];
    for (int j = 0; j < T->tn; j++)
        for (int v = 0; v < nv; v++)
            bv[j][v] = lora_b_vec(g, T->nrow[j], v);
    for (int i = 0; i < T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
        for (int v = 0; v < nv; v++) {
            LLVMValueRef el = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lora_ld, ""), i64c(E, v * g->V), "");
            tv[i][v] = load(E, g->vf, LLVMBuildGEP2(E->b, E->f32, g->lora_t, &el, 1, ""), 4);
            /* T's rows do not change along n: without this, loop-invariant
             * code motion hoists them out of the n loop and keeps R/16
             * vectors per row live across the whole K loop, which then
             * spills (rank 64 ran 10x slower). One reload per tile is
             * nothing next to the tile's K loop. */
            LLVMSetVolatile(tv[i][v], 1);
        }
    }
    for (int i = 0; i < T->tm; i++)
        for (int j = 0; j < T->tn; j++) {
            LLVMValueRef acc = LLVMBuildFMul(E->b, tv[i][0], bv[j][0], "");
            for (int v = 1; v < nv; v++)
                acc = fma_v(E, tv[i][v], bv[j][v], acc);
            lt[i][j] = LLVMBuildFMul(E->b, g->isa->lane_sum(E, acc), g->lora_scale, "");
        }
}

/* The end of a tile: reduce each accumulator (vectors of type acc_ty),
 * add the outliers' sums (codegen/lower_outliers.c), the bias, apply the
 * activation, convert and store. */
void qkc_lower_epilogue(cg *g, tile *T, LLVMTypeRef acc_ty)
{
    qkc_emit *E = &g->e;
    LLVMValueRef lt[8][8];
    if (g->lora_t)
        lora_terms(g, T, lt);
    LLVMValueRef extra[8][8] = {{0}};
    qkc_lower_outliers(g, T, extra);
    for (int i = 0; i < T->tm; i++)
        for (int j = 0; j < T->tn; j++) {
            LLVMValueRef sum = T->sum[i][j], n = T->nrow[j];
            if (!sum)
                sum = g->isa->lane_sum(E, load(E, acc_ty, T->acc[i][j], 64));
            if (g->lora_t)
                sum = LLVMBuildFAdd(E->b, sum, lt[i][j], "");
            if (extra[i][j])
                sum = LLVMBuildFAdd(E->b, sum, load(E, E->f32, extra[i][j], 4), "");
            if (g->mm->bias == QKC_BIAS_F32)
                sum = LLVMBuildFAdd(E->b, sum, load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, g->bias, &n, 1, ""), 4), "");
            sum = qkc_emit_activation(E, g->mm->act, sum, g->isa);
            qkc_emit_store_out(E, g->mm->out_dtype, sum, g->c, g->ldc, LLVMBuildAdd(E->b, T->m0, i64c(E, i), ""), n);
        }
}

static void emit_tile(cg *g, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn)
{
    qkc_emit *E = &g->e;
    tile T;
    int64_t full = g->mm->k / g->C;
    int tail = (int)(g->mm->k % g->C);
    tile_init(g, &T, m0, n0, tm, tn, g->vf);
    {
        LLVMValueRef next = i64c(E, 0);
        if (g->s->k_unroll > 1)
            next = qkc_lower_loop(g, next, i64c(E, full), g->s->k_unroll, chunk_body, &T);
        qkc_lower_loop(g, next, i64c(E, full), 1, chunk_body1, &T);
    }
    if (tail)
        emit_chunk(g, &T, i64c(E, full), tail);
    qkc_lower_epilogue(g, &T, g->vf);
}

typedef struct mloop_ctx {
    LLVMValueRef n0;
    int tm, tn;
} mloop_ctx;

static void emit_tile_int8(cg *g, i8ctx *x, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn);

static void m_tile_body(cg *g, void *ctx, LLVMValueRef m0)
{
    mloop_ctx *c = ctx;
    if (g->x8)
        emit_tile_int8(g, g->x8, m0, c->n0, c->tm, c->tn);
    else
        emit_tile(g, m0, c->n0, c->tm, c->tn);
}

static void n_tile_body(cg *g, void *ctx, LLVMValueRef n0)
{
    qkc_emit *E = &g->e;
    int tn = *(int *)ctx;
    mloop_ctx mc = {n0, g->s->tile_m, tn};
    LLVMValueRef m0 = i64c(E, 0);
    if (g->s->tile_m > 1)
        m0 = qkc_lower_loop(g, m0, g->m, g->s->tile_m, m_tile_body, &mc);
    mc.tm = 1;
    qkc_lower_loop(g, m0, g->m, 1, m_tile_body, &mc);
}

/* ------------------------------------------------------- int8 path */

int qkc_lower_int8_table_ok(const qkc_klayout *L)
{
    for (int i = 0; i < 16; i++)
        if (L->table[i] != floorf(L->table[i]) || L->table[i] < -127.0f || L->table[i] > 127.0f)
            return 0;
    return L->code_bits == 4;
}

/* The int8 path's operand form (lower_cpu.h): none unless the spec asks
 * for int8 compute over whole 32-element records of one layout, then the
 * ISA's choice. */
static int int8_mode(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    const qkc_isa *isa = qkc_isa_for(t);
    if (L->mixed)
        return I8_NONE; /* blocks may differ; the float path serves them all */
    if (mm->compute != QKC_COMPUTE_INT8 || L->fallback || L->permute_k || L->chunk != 32 ||
        !qkc_dtype_get(mm->w.dtype))
        return I8_NONE;
    return isa && isa->int8_mode ? isa->int8_mode(mm, L, t) : I8_NONE;
}

int qkc_lower_uses_int8_dot(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    return int8_mode(mm, L, t) != I8_NONE;
}

int qkc_lower_panel_rows(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    const qkc_isa *isa = qkc_isa_for(t);
    qkc_klayout pl = *L;
    /* the choices are made on the panel form (compact panels differ from
     * the rows: 4-bit codes with bit planes, 32-element records) */
    if (!isa || !qkc_klayout_panel_ok(L) || mm->w.outliers == QKC_OUTLIERS_ACT ||
        qkc_klayout_set_panel(&pl, 1, 1, NULL) != QKC_OK)
        return 0;
    if (int8_mode(mm, &pl, t) != I8_NONE)
        return isa->int8_panel_rows ? isa->int8_panel_rows(mm, &pl, t) : 0;
    /* the factorised f32 path over affine codes, and dense values
     * (lower_panel.c) */
    if (mm->compute == QKC_COMPUTE_F32 && qkc_lower_f32_panel_layout(&pl) && isa->f32_panel_rows)
        return isa->f32_panel_rows(mm, &pl, t);
    return 0;
}

LLVMValueRef qkc_lower_step_codes(cg *g, i8ctx *x, LLVMValueRef *chunks, int present)
{
    qkc_emit *E = &g->e;
    LLVMValueRef parts[2], idx[64];
    for (int p = 0; p < x->P; p++)
        parts[p] = p < present ? qkc_lower_chunk_codes(g, chunks[p]) : LLVMConstNull(LLVMVectorType(E->i8, 32));
    if (x->P == 1)
        return parts[0];
    for (int i = 0; i < 64; i++)
        idx[i] = i32c(E, i);
    return LLVMBuildShuffleVector(E->b, parts[0], parts[1], LLVMConstVector(idx, 64), "");
}

/* A vector of 8P lanes holding v[p] in lanes [8p, 8p+8). */
static LLVMValueRef per_chunk_vec(cg *g, i8ctx *x, LLVMValueRef *v)
{
    qkc_emit *E = &g->e;
    LLVMValueRef t, idx[16];
    if (x->P == 1)
        return splat(E, v[0], 8);
    t = LLVMBuildInsertElement(E->b, LLVMGetUndef(LLVMVectorType(E->f32, 2)), v[0], i32c(E, 0), "");
    t = LLVMBuildInsertElement(E->b, t, v[1], i32c(E, 1), "");
    for (int i = 0; i < 16; i++)
        idx[i] = i32c(E, i / 8);
    return LLVMBuildShuffleVector(E->b, t, LLVMGetUndef(LLVMVectorType(E->f32, 2)), LLVMConstVector(idx, 16), "");
}

void qkc_lower_int8_coefs(cg *g, i8ctx *x, LLVMValueRef chunk, LLVMValueRef *s, LLVMValueRef *mn, LLVMValueRef *cc)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    *s = L->scale != QKC_KF_NONE ? qkc_lower_chunk_field(g, chunk, L->scale, L->scale_off) : f32c(E, 1.0);
    *mn = L->min != QKC_KF_NONE ? qkc_lower_chunk_field(g, chunk, L->min, L->min_off) : f32c(E, 0.0);
    if (x->mode != I8_DIRECT || L->zero == QKC_KF_NONE)
        *cc = f32c(E, 0.0);
    else
        *cc = LLVMBuildFAdd(E->b, f32c(E, (double)L->zero_const), qkc_lower_chunk_field(g, chunk, L->zero, L->zero_off),
                            "");
}

/* One step (P chunk records, `present` of them real) of an int8 tile:
 * each activation row's int8 codes and block scales, each weight row's
 * operand (the ISA's int8_weights), then per output the ISA's dot product,
 * scaled into the f32 accumulator. Outputs an ISA's tile hooks claim
 * (T->pm x T->pn) go through them instead. */
static void emit_step_int8(cg *g, i8ctx *x, tile *T, LLVMValueRef step, int present)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int nb = 32 * x->P;
    LLVMValueRef q[8], qsumf[8], qsumi[8], qcorr[8], d[8][2], dvec[8];
    /* A correction cc·Σq with cc a compile-time integer is subtracted in
     * int32, exactly (less the offset the weight operand already has); a
     * per-chunk zero goes through the float FMA. */
    int cc_int = x->mode == I8_TABLE                               ? x->table_cc
                 : x->mode == I8_DIRECT && L->zero == QKC_KF_NONE ? L->zero_const
                                                                  : 0;
    int int_cc = cc_int - x->off;
    int need_coef = L->min != QKC_KF_NONE || (x->mode == I8_DIRECT && L->zero != QKC_KF_NONE);
    int need_qsum = x->mode != I8_SIGNED && (int_cc || need_coef);
    uint8_t ones[64];
    memset(ones, 1, sizeof ones);
    /* the ISA's part of the tile first; the code below does the rest */
    if (T->pm)
        g->isa->int8_tile_step(g, x, T, step, int_cc, need_coef);
    for (int i = 0; i < T->tm; i++) {
        if (i < T->pm && T->pn == T->tn)
            continue; /* a row all in the ISA's part */
        LLVMValueRef row = LLVMBuildAdd(E->b, T->m0, i64c(E, i), "");
        LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, g->lda, ""),
                                        LLVMBuildMul(E->b, step, i64c(E, nb), ""), "");
        q[i] = load(E, x->vbytes, gep8(E, g->a, off), 1);
        if (need_qsum) {
            qsumi[i] = g->isa->int8_sum(g, x, cbytes(E, ones, nb), q[i]);
            qsumf[i] = LLVMBuildSIToFP(E->b, qsumi[i], x->vfs, "");
            if (int_cc) {
                LLVMValueRef ccv[16];
                for (int l = 0; l < x->lanes; l++)
                    ccv[l] = i32c(E, -int_cc);
                qcorr[i] = LLVMBuildMul(E->b, qsumi[i], LLVMConstVector(ccv, (unsigned)x->lanes), "");
            }
        }
        for (int p = 0; p < x->P; p++) {
            LLVMValueRef si = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, row, x->a_scales_ld, ""),
                                           LLVMBuildAdd(E->b, LLVMBuildMul(E->b, step, i64c(E, x->P), ""),
                                                        i64c(E, p), ""), "");
            d[i][p] = p < present ? load(E, E->f32, LLVMBuildGEP2(E->b, E->f32, x->a_scales, &si, 1, ""), 4)
                                  : f32c(E, 0.0);
        }
        dvec[i] = per_chunk_vec(g, x, d[i]);
    }
    for (int j = 0; j < T->tn; j++) {
        if (j < T->pn && T->pm == T->tm)
            continue; /* a column all in the ISA's part */
        LLVMValueRef rowoff = LLVMBuildMul(E->b, T->nrow[j], i64c(E, (int64_t)L->row_bytes), "");
        LLVMValueRef chunks[2], s[2], cc[2], mn[2];
        i8w w;
        for (int p = 0; p < x->P; p++) {
            LLVMValueRef ci = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, step, i64c(E, x->P), ""), i64c(E, p), "");
            chunks[p] = gep8(E, g->w, LLVMBuildAdd(E->b, rowoff, LLVMBuildMul(E->b, ci, i64c(E, L->chunk_bytes), ""), ""));
            if (p >= present) {
                s[p] = cc[p] = mn[p] = f32c(E, 0.0);
                continue;
            }
            qkc_lower_int8_coefs(g, x, chunks[p], &s[p], &mn[p], &cc[p]);
        }
        g->isa->int8_weights(g, x, chunks, present, &w);
        /* Per-lane scale vectors: s once per weight row, d once per
         * activation row (dvec), so each (row, column) pair costs one
         * multiply and one FMA. */
        LLVMValueRef svec = w.svec ? w.svec : per_chunk_vec(g, x, s), cvec = NULL;
        if (need_coef) {
            LLVMValueRef c0[2];
            for (int p = 0; p < x->P; p++)
                c0[p] = LLVMBuildFSub(E->b, mn[p], LLVMBuildFMul(E->b, cc[p], s[p], ""), "");
            cvec = per_chunk_vec(g, x, c0);
        }
        for (int i = 0; i < T->tm; i++) {
            if (i < T->pm && j < T->pn)
                continue;
            LLVMValueRef acc = load(E, x->vfs, T->acc[i][j], 64);
            /* Σ q·u − cc·Σq: the correction is the accumulator's start. */
            LLVMValueRef prod = g->isa->int8_dot(g, x, int_cc ? qcorr[i] : NULL, &w, q[i]);
            acc = fma_v(E, LLVMBuildFMul(E->b, LLVMBuildSIToFP(E->b, prod, x->vfs, ""), svec, ""), dvec[i], acc);
            if (need_coef)
                acc = fma_v(E, LLVMBuildFMul(E->b, qsumf[i], cvec, ""), dvec[i], acc);
            LLVMBuildStore(E->b, acc, T->acc[i][j]);
        }
    }
}

typedef struct i8tile {
    i8ctx *x;
    tile *T;
} i8tile;

static void int8_step_body(cg *g, void *ctx, LLVMValueRef step)
{
    i8tile *it = ctx;
    emit_step_int8(g, it->x, it->T, step, it->x->P);
}

static void emit_tile_int8(cg *g, i8ctx *x, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn)
{
    qkc_emit *E = &g->e;
    tile T;
    i8tile it = {x, &T};
    int64_t chunks = g->L->chunks_per_row, full = chunks / x->P;
    int rest = (int)(chunks % x->P);
    tile_init(g, &T, m0, n0, tm, tn, x->vfs);
    if (g->isa->int8_tile_begin)
        g->isa->int8_tile_begin(g, x, &T);
    qkc_lower_loop(g, i64c(E, 0), i64c(E, full), 1, int8_step_body, &it);
    if (rest)
        emit_step_int8(g, x, &T, i64c(E, full), rest);
    if (g->isa->int8_tile_end)
        g->isa->int8_tile_end(g, &T);
    qkc_lower_epilogue(g, &T, x->vfs);
}

/* The per-layout state: vector shape of its chunks and its decode tables.
 * A mixed kernel calls this once per row block. */
static void set_layout(cg *g, const qkc_klayout *L)
{
    qkc_emit *E = &g->e;
    g->L = L;
    g->V = g->s->vector_bits / 32;
    g->C = L->chunk;
    if (g->C < g->V)
        g->V = g->C; /* 16-element chunks on 512-bit targets use one zmm */
    g->S = g->C / g->V;
    g->vf = LLVMVectorType(E->f32, (unsigned)g->V);
    g->vi32 = LLVMVectorType(E->i32, (unsigned)g->V);
    memset(g->table, 0, sizeof g->table);
    /* 4-bit affine codes on the float path: where a 16-entry table lookup
     * is one instruction (AVX-512, NEON) it replaces the conversion and the
     * zero point's FMA; the values i - zero_const are exact in f32. Where
     * it is not (AVX2: two permutes and a blend), the codes are converted
     * and the zero point joins the factorised sum. */
    g->affine_table = L->decode == QKC_KDEC_AFFINE && L->code_bits == 4 && !g->x8 &&
                      g->isa->table_lookup_is_one_op(g);
    if (L->decode == QKC_KDEC_TABLE || g->affine_table) {
        double v[16];
        for (int i = 0; i < 16; i++)
            v[i] = g->affine_table ? (double)(i - L->zero_const) : L->table[i];
        g->isa->table_constants(g, v);
    }
}

/* w=mixed: one n-loop per row block, each with its block's layout and
 * decode, clamped to [n_begin, n_end). Rows keep their global index (for
 * C, bias and LoRA); the weight base is shifted so that row r of block b
 * reads block b's packed row r − row0. */
static qkc_status emit_mixed(cg *g, qkc_diag *diag)
{
    qkc_emit *E = &g->e;
    const qkc_format *f = &g->L->mixed_format;
    const qkc_klayout *top = g->L;
    qkc_klayout BL[QKC_MAX_MIXED_BLOCKS];
    LLVMValueRef n_begin = g->n_begin, n_end = g->n_end, w = g->w;
    int tn = g->s->tile_n;
    for (int b = 0; b < f->mixed_blocks; b++) {
        uint64_t off;
        int64_t r0 = qkc_mixed_row0(f, b), r1 = r0 + f->mixed_rows[b];
        qkc_status st = qkc_mixed_block_klayout(f, top->mixed_k, b, &BL[b], &off, diag);
        if (st != QKC_OK)
            return st;
        set_layout(g, &BL[b]);
        LLVMValueRef lo = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, n_begin, i64c(E, r0), ""), n_begin,
                                          i64c(E, r0), "");
        LLVMValueRef hi = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, n_end, i64c(E, r1), ""), n_end,
                                          i64c(E, r1), "");
        g->n_end = hi;
        g->w = gep8(E, w, i64c(E, (int64_t)off - r0 * (int64_t)BL[b].row_bytes));
        qkc_lower_loop(g, lo, LLVMBuildAdd(E->b, hi, i64c(E, tn - 1), ""), tn, n_tile_body, &tn);
    }
    g->n_end = n_end, g->w = w;
    set_layout(g, top);
    return QKC_OK;
}

qkc_status qkc_lower(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                     const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag)
{
    cg g;
    i8ctx x8;
    qkc_emit *E = &g.e;
    const qkc_isa *isa = qkc_isa_for(t);
    if (!isa || !isa->table_lookup)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED, "target %s: not a CPU target", t->name);
    memset(&g, 0, sizeof g);
    memset(&x8, 0, sizeof x8);
    g.isa = isa, g.mm = mm, g.L = L, g.t = t, g.s = s;
    g.V = s->vector_bits / 32;
    g.C = L->chunk;
    if (g.C < g.V)
        g.V = g.C; /* 16-element chunks on 512-bit targets use one zmm */
    g.S = g.C / g.V;
    g.factorized = mm->compute == QKC_COMPUTE_F32 || mm->compute == QKC_COMPUTE_INT8;
    qkc_emit_init(E, ctx, name, t);
    g.vf = LLVMVectorType(E->f32, (unsigned)g.V);
    g.vi32 = LLVMVectorType(E->i32, (unsigned)g.V);

    {
        LLVMTypeRef st = qkc_emit_kernel_args_type(E);
        LLVMValueRef args;
        char vw[16];
        qkc_emit_kernel(E, name, t);
        snprintf(vw, sizeof vw, "%d", s->vector_bits);
        LLVMAddAttributeAtIndex(E->fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "prefer-vector-width", 19, vw, (unsigned)strlen(vw)));
        LLVMAddAttributeAtIndex(E->fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "min-legal-vector-width", 22, vw, (unsigned)strlen(vw)));
        args = LLVMGetParam(E->fn, 0);
        g.a = qkc_emit_kernel_arg(E, st, args, QKC_KARG_A);
        g.w = qkc_emit_kernel_arg(E, st, args, QKC_KARG_W);
        g.bias = qkc_emit_kernel_arg(E, st, args, QKC_KARG_BIAS);
        g.c = qkc_emit_kernel_arg(E, st, args, QKC_KARG_C);
        g.lda = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LDA);
        g.ldc = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LDC);
        g.m = qkc_emit_kernel_arg(E, st, args, QKC_KARG_M);
        g.n_begin = qkc_emit_kernel_arg(E, st, args, QKC_KARG_N_BEGIN);
        g.n_end = qkc_emit_kernel_arg(E, st, args, QKC_KARG_N_END);
        if (mm->lora_rank) {
            g.lora_t = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LORA_T);
            g.lora_b = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LORA_B);
            g.lora_ld = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LORA_T_LD);
            g.lora_scale = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LORA_SCALE);
        }
        if (L->panel) {
            /* panel kernels: int8 (x8.mode set below) or f32 (g.x8 NULL) */
            x8.panel = L->panel;
            x8.pv = s->vector_bits / 32 < L->panel ? s->vector_bits / 32 : L->panel;
            x8.pbytes = LLVMVectorType(E->i8, (unsigned)(4 * x8.pv));
            x8.pi32 = LLVMVectorType(E->i32, (unsigned)x8.pv);
            x8.pf32 = LLVMVectorType(E->f32, (unsigned)x8.pv);
        }
        x8.mode = int8_mode(mm, L, t);
        if (x8.mode != I8_NONE) {
            isa->int8_setup(&g, &x8);
            x8.lanes = 8 * x8.P;
            x8.vbytes = LLVMVectorType(E->i8, (unsigned)(32 * x8.P));
            x8.vi32s = LLVMVectorType(E->i32, (unsigned)x8.lanes);
            x8.vfs = LLVMVectorType(E->f32, (unsigned)x8.lanes);
            x8.a_scales = qkc_emit_kernel_arg(E, st, args, QKC_KARG_A_SCALES);
            x8.a_scales_ld = qkc_emit_kernel_arg(E, st, args, QKC_KARG_A_SCALES_LD);
            g.x8 = &x8;
            if (L->panel)
                x8.a_sums = qkc_emit_kernel_arg(E, st, args, QKC_KARG_A_SUMS);
            if (mm->w.outliers == QKC_OUTLIERS_ACT) {
                g.o_cols = qkc_emit_kernel_arg(E, st, args, QKC_KARG_O_COLS);
                g.o_vals = qkc_emit_kernel_arg(E, st, args, QKC_KARG_O_VALS);
                g.o_count = qkc_emit_kernel_arg(E, st, args, QKC_KARG_O_COUNT);
            }
        }
    }
    set_layout(&g, L);
    if (L->decode == QKC_KDEC_LUT && L->tidx == QKC_KF_NONE)
        isa->table_load(&g, gep8(E, g.w, i64c(E, (int64_t)L->table_offset))); /* one table: loaded once */
    if (L->panel && ((x8.mode != I8_NONE && !isa->int8_panel_dot) ||
                     (x8.mode == I8_NONE && (mm->compute != QKC_COMPUTE_F32 || !qkc_lower_f32_panel_layout(L))))) {
        LLVMDisposeBuilder(E->b);
        LLVMDisposeModule(E->mod);
        return qkc_diag_set(diag, QKC_ERR_INTERNAL, "lower: no panel kernel for %s on %s",
                            L->description, t->name);
    }
    if (L->panel) {
        qkc_lower_panels(&g, &x8);
    } else if (L->mixed) {
        qkc_status st = emit_mixed(&g, diag);
        if (st) {
            LLVMDisposeBuilder(E->b);
            LLVMDisposeModule(E->mod);
            return st;
        }
    } else {
        /* n0 < n_end, written as n0 + tn <= n_end + tn - 1 */
        int tn = s->tile_n;
        qkc_lower_loop(&g, g.n_begin, LLVMBuildAdd(E->b, g.n_end, i64c(E, tn - 1), ""), tn, n_tile_body, &tn);
    }
    LLVMBuildRetVoid(E->b);
    LLVMDisposeBuilder(E->b);
    {
        qkc_status st = qkc_llvm_verify(E->mod, diag);
        if (st) {
            LLVMDisposeModule(E->mod);
            return st;
        }
    }
    *out = E->mod;
    return QKC_OK;
}

qkc_status qkc_lower_layout(const qkc_matmul *mm, const qkc_target *t, qkc_klayout *out, qkc_diag *diag)
{
    qkc_status st = qkc_klayout_for(&mm->w, mm->n, mm->k, out, diag);
    int p = st == QKC_OK ? qkc_lower_panel_rows(mm, out, t) : 0;
    return p ? qkc_klayout_set_panel(out, p, mm->n, diag) : st;
}
