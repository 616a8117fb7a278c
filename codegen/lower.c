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
 */
#include "codegen/lower.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/kernel_abi.h"
#include "codegen/llvm_compat.h"
#include "codegen/lower_store.h"
#include "ir/mixed.h"

typedef struct cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const qkc_matmul *mm;
    const qkc_klayout *L;
    const qkc_target *t;
    const qkc_schedule *s;
    int V;  /* lanes per vector */
    int C;  /* elements per chunk */
    int S;  /* vectors per chunk */
    int factorized;
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, f64, ptr, vf, vi32, vd;
    LLVMValueRef a, w, bias, c, lda, ldc, m, n_begin, n_end;
    LLVMValueRef table_lo, table_hi; /* TABLE on x86: 16 (or 2x8) float constants */
    LLVMValueRef table_bytes[4];     /* TABLE on aarch64: the 16 floats as 4 x 16 bytes (tbl4) */
    struct i8ctx *x8;                /* the int8 dot-product path, or NULL */
    int affine_table; /* 4-bit affine codes decode by table {i - zero_const} */
    LLVMValueRef lora_t, lora_b, lora_ld, lora_scale; /* lora=R:DTYPE, else NULL */
    LLVMValueRef o_cols, o_vals, o_count; /* outliers=act:T on the int8 path (kernel_abi.h) */
} cg;

/* ---------------------------------------------------------------- helpers */

static LLVMValueRef i64c(cg *g, int64_t v)
{
    return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}

static LLVMValueRef i32c(cg *g, int32_t v)
{
    return LLVMConstInt(g->i32, (unsigned long long)(uint32_t)v, 0);
}

static LLVMValueRef f32c(cg *g, double v)
{
    return LLVMConstReal(g->f32, v);
}

static LLVMValueRef splat(cg *g, LLVMValueRef scalar, int lanes)
{
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), (unsigned)lanes);
    LLVMValueRef undef = LLVMGetUndef(vt);
    LLVMValueRef ins = LLVMBuildInsertElement(g->b, undef, scalar, i32c(g, 0), "");
    LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(g->i32, (unsigned)lanes));
    return LLVMBuildShuffleVector(g->b, ins, undef, zeros, "");
}

static LLVMValueRef vconst_i32(cg *g, int32_t v)
{
    LLVMValueRef e[64];
    for (int i = 0; i < g->V; i++)
        e[i] = i32c(g, v);
    return LLVMConstVector(e, (unsigned)g->V);
}

static LLVMValueRef intrinsic(cg *g, const char *name, LLVMTypeRef *ov, unsigned nov, LLVMValueRef *args,
                              unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->mod, id, ov, nov);
    LLVMTypeRef ft = LLVMIntrinsicGetType(g->ctx, id, ov, nov);
    return LLVMBuildCall2(g->b, ft, f, args, nargs, "");
}

static LLVMValueRef fma_v(cg *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = {a, b, c};
    LLVMTypeRef ty = LLVMTypeOf(a);
    return intrinsic(g, "llvm.fma", &ty, 1, args, 3);
}

static LLVMValueRef gep8(cg *g, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildGEP2(g->b, g->i8, base, &off, 1, "");
}

static LLVMValueRef load(cg *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(g->b, ty, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

/* Sub-vector `sub` (V lanes) of a C-lane vector. */
static LLVMValueRef subvec(cg *g, LLVMValueRef v, int sub)
{
    LLVMValueRef idx[64];
    if (g->S == 1)
        return v;
    for (int i = 0; i < g->V; i++)
        idx[i] = i32c(g, sub * g->V + i);
    return LLVMBuildShuffleVector(g->b, v, LLVMGetUndef(LLVMTypeOf(v)), LLVMConstVector(idx, (unsigned)g->V), "");
}

/* ---------------------------------------------------------- arguments */

static LLVMTypeRef args_type(cg *g)
{
    LLVMTypeRef f[QKC_KARG_COUNT] = {g->ptr, g->ptr, g->ptr, g->ptr, g->ptr, g->i64, g->i64, g->i64,
                                     g->i64, g->i64, g->i64, g->ptr, g->ptr, g->i64, g->f32,
                                     g->ptr, g->ptr, g->i64};
    return LLVMStructTypeInContext(g->ctx, f, QKC_KARG_COUNT, 0);
}

static LLVMValueRef load_arg(cg *g, LLVMTypeRef st, LLVMValueRef args, int field, LLVMTypeRef ty)
{
    LLVMValueRef p = LLVMBuildStructGEP2(g->b, st, args, (unsigned)field, "");
    return load(g, ty, p, 8);
}

/* --------------------------------------------------- chunk fields */

static LLVMValueRef chunk_field_f32(cg *g, LLVMValueRef chunk, qkc_kfield kind, int off)
{
    LLVMValueRef p = gep8(g, chunk, i64c(g, off));
    switch (kind) {
    case QKC_KF_F16: return LLVMBuildFPExt(g->b, load(g, g->f16, p, 1), g->f32, "");
    case QKC_KF_F32: return load(g, g->f32, p, 1);
    case QKC_KF_I16: return LLVMBuildSIToFP(g->b, load(g, g->i16, p, 1), g->f32, "");
    case QKC_KF_E8M0: {
        /* 2^(e-127) (or 2^(e-128) with e8m0_half) built from the bits;
         * e = 0 (and e = 1 with half) are f32 subnormals. */
        LLVMValueRef e = LLVMBuildZExt(g->b, load(g, g->i8, p, 1), g->i32, "");
        LLVMValueRef bits;
        if (g->L->e8m0_half) {
            LLVMValueRef normal = LLVMBuildShl(g->b, LLVMBuildSub(g->b, e, i32c(g, 1), ""), i32c(g, 23), "");
            LLVMValueRef sub = LLVMBuildShl(g->b, i32c(g, 0x00200000), e, "");
            bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntUGE, e, i32c(g, 2), ""), normal, sub, "");
        } else {
            LLVMValueRef normal = LLVMBuildShl(g->b, e, i32c(g, 23), "");
            bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, e, i32c(g, 0), ""), i32c(g, 0x00400000),
                                   normal, "");
            if (g->L->e8m0_ff_is_nan)
                bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, e, i32c(g, 255), ""),
                                       i32c(g, 0x7FC00000), bits, "");
        }
        return LLVMBuildBitCast(g->b, bits, g->f32, "");
    }
    default: return NULL;
    }
}

/* A chunk field broadcast to `lanes` floats. An f16 field is broadcast as
 * 16-bit lanes and converted as a vector (vpbroadcastw + vcvtph2ps: two
 * instructions where a scalar convert and a broadcast take four). */
static LLVMValueRef chunk_field_vec(cg *g, LLVMValueRef chunk, qkc_kfield kind, int off, int lanes)
{
    if (kind == QKC_KF_F16) {
        LLVMValueRef h = load(g, g->i16, gep8(g, chunk, i64c(g, off)), 1);
        LLVMValueRef v = LLVMBuildBitCast(g->b, splat(g, h, lanes), LLVMVectorType(g->f16, (unsigned)lanes), "");
        return LLVMBuildFPExt(g->b, v, LLVMVectorType(g->f32, (unsigned)lanes), "");
    }
    return splat(g, chunk_field_f32(g, chunk, kind, off), lanes);
}

/* Codes of one chunk as C lanes: <C x i8> (4/8-bit), <C x i16>, <C x float>. */
static LLVMValueRef chunk_codes(cg *g, LLVMValueRef chunk)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef p = gep8(g, chunk, i64c(g, L->code_off));
    if (L->code_bits == 4) {
        int h = g->C / 2;
        LLVMTypeRef bt = LLVMVectorType(g->i8, (unsigned)h);
        LLVMValueRef bytes = load(g, bt, p, 1), idx[64], f[64];
        for (int i = 0; i < h; i++)
            f[i] = LLVMConstInt(g->i8, 15, 0);
        LLVMValueRef lo = LLVMBuildAnd(g->b, bytes, LLVMConstVector(f, (unsigned)h), "");
        for (int i = 0; i < h; i++)
            f[i] = LLVMConstInt(g->i8, 4, 0);
        LLVMValueRef hi = LLVMBuildLShr(g->b, bytes, LLVMConstVector(f, (unsigned)h), "");
        for (int i = 0; i < g->C; i++)
            idx[i] = i32c(g, i);
        return LLVMBuildShuffleVector(g->b, lo, hi, LLVMConstVector(idx, (unsigned)g->C), "");
    }
    if (L->code_bits == 8)
        return load(g, LLVMVectorType(g->i8, (unsigned)g->C), p, 1);
    if (L->code_bits == 16)
        return load(g, LLVMVectorType(g->i16, (unsigned)g->C), p, 2);
    return load(g, LLVMVectorType(g->f32, (unsigned)g->C), p, 4);
}

/* Table lookup of 16 floats by <V x i32> indices in 0..15: one vpermps on
 * 512-bit targets, two and a blend on 256-bit ones. On aarch64 (V = 4) a
 * byte lookup over the table's 64 bytes in four registers (tbl with four
 * table registers): float i's bytes are 4i..4i+3, and idx·0x04040404 +
 * 0x03020100 gives exactly those byte indices in each 32-bit lane. */
static LLVMValueRef lookup16(cg *g, LLVMValueRef idx)
{
    if (g->t->arch == QKC_ARCH_AARCH64) {
        LLVMTypeRef v16 = LLVMVectorType(g->i8, 16);
        LLVMValueRef b = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, idx, vconst_i32(g, 0x04040404), ""),
                                      vconst_i32(g, 0x03020100), "");
        LLVMValueRef args[5] = {g->table_bytes[0], g->table_bytes[1], g->table_bytes[2], g->table_bytes[3],
                                LLVMBuildBitCast(g->b, b, v16, "")};
        return LLVMBuildBitCast(g->b, intrinsic(g, "llvm.aarch64.neon.tbl4", &v16, 1, args, 5), g->vf, "");
    }
    if (g->V == 16) {
        LLVMValueRef args[2] = {g->table_lo, idx};
        return intrinsic(g, "llvm.x86.avx512.permvar.sf.512", NULL, 0, args, 2);
    }
    LLVMValueRef a1[2] = {g->table_lo, idx}, a2[2] = {g->table_hi, idx};
    LLVMValueRef lo = intrinsic(g, "llvm.x86.avx2.permps", NULL, 0, a1, 2);
    LLVMValueRef hi = intrinsic(g, "llvm.x86.avx2.permps", NULL, 0, a2, 2);
    LLVMValueRef bit = LLVMBuildAnd(g->b, idx, vconst_i32(g, 8), "");
    LLVMValueRef use_hi = LLVMBuildICmp(g->b, LLVMIntNE, bit, vconst_i32(g, 0), "");
    return LLVMBuildSelect(g->b, use_hi, hi, lo, "");
}

/* LUT: the 16 f32 entries of the table at p (64-byte aligned, in the
 * packed blob) into the registers lookup16 reads. */
static void load_table(cg *g, LLVMValueRef p)
{
    if (g->t->arch == QKC_ARCH_AARCH64) {
        for (int r = 0; r < 4; r++)
            g->table_bytes[r] = load(g, LLVMVectorType(g->i8, 16), gep8(g, p, i64c(g, 16 * r)), 4);
    } else if (g->V == 16) {
        g->table_lo = load(g, LLVMVectorType(g->f32, 16), p, 4);
    } else {
        g->table_lo = load(g, LLVMVectorType(g->f32, 8), p, 4);
        g->table_hi = load(g, LLVMVectorType(g->f32, 8), gep8(g, p, i64c(g, 32)), 4);
    }
}

/* LUT with a table per row or group: the chunk's table. */
static void load_chunk_table(cg *g, LLVMValueRef chunk)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef t = LLVMBuildZExt(g->b, load(g, g->i32, gep8(g, chunk, i64c(g, L->tidx_off)), 1), g->i64, "");
    LLVMValueRef off = LLVMBuildAdd(g->b, i64c(g, (int64_t)L->table_offset), LLVMBuildShl(g->b, t, i64c(g, 6), ""), "");
    load_table(g, gep8(g, g->w, off));
}

/* fp8 codes (<V x i32>, 0..255) to float, exact, with Inf/NaN codes. */
static LLVMValueRef fp8_to_f32(cg *g, LLVMValueRef code, int e5m2)
{
    LLVMValueRef sign = LLVMBuildShl(g->b, LLVMBuildAnd(g->b, code, vconst_i32(g, 0x80), ""), vconst_i32(g, 24), "");
    LLVMValueRef mag = LLVMBuildAnd(g->b, code, vconst_i32(g, 0x7F), "");
    /* Shift the exponent/mantissa into f32 position and rebias with one
     * exact multiply (subnormal codes land on f32 subnormals, also exact). */
    LLVMValueRef bits = LLVMBuildShl(g->b, mag, vconst_i32(g, e5m2 ? 21 : 20), "");
    LLVMValueRef v = LLVMBuildFMul(g->b, LLVMBuildBitCast(g->b, bits, g->vf, ""),
                                   splat(g, f32c(g, e5m2 ? 0x1p112 : 0x1p120), g->V), "");
    if (e5m2) {
        LLVMValueRef special = LLVMBuildICmp(g->b, LLVMIntUGE, mag, vconst_i32(g, 0x7C), "");
        LLVMValueRef inf = LLVMBuildICmp(g->b, LLVMIntEQ, mag, vconst_i32(g, 0x7C), "");
        LLVMValueRef sp = LLVMBuildSelect(g->b, inf, splat(g, f32c(g, INFINITY), g->V), splat(g, f32c(g, NAN), g->V), "");
        v = LLVMBuildSelect(g->b, special, sp, v, "");
    } else {
        LLVMValueRef nan = LLVMBuildICmp(g->b, LLVMIntEQ, mag, vconst_i32(g, 0x7F), "");
        v = LLVMBuildSelect(g->b, nan, splat(g, f32c(g, NAN), g->V), v, "");
    }
    return LLVMBuildBitCast(g->b, LLVMBuildOr(g->b, LLVMBuildBitCast(g->b, v, g->vi32, ""), sign, ""), g->vf, "");
}

/* The value of each code before scale/zero/min: code as float (AFFINE),
 * table entry, fp8 value, or the dense value. */
static LLVMValueRef code_value(cg *g, LLVMValueRef codes_sub)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef ci;
    switch (L->decode) {
    case QKC_KDEC_F32: return codes_sub;
    case QKC_KDEC_F16: return LLVMBuildFPExt(g->b, LLVMBuildBitCast(g->b, codes_sub, LLVMVectorType(g->f16, (unsigned)g->V), ""), g->vf, "");
    case QKC_KDEC_BF16:
        ci = LLVMBuildZExt(g->b, codes_sub, g->vi32, "");
        return LLVMBuildBitCast(g->b, LLVMBuildShl(g->b, ci, vconst_i32(g, 16), ""), g->vf, "");
    default: break;
    }
    ci = LLVMBuildZExt(g->b, codes_sub, g->vi32, "");
    switch (L->decode) {
    case QKC_KDEC_AFFINE: return g->affine_table ? lookup16(g, ci) : LLVMBuildSIToFP(g->b, ci, g->vf, "");
    case QKC_KDEC_TABLE: return lookup16(g, ci);
    case QKC_KDEC_LUT: return lookup16(g, ci);
    case QKC_KDEC_FP8E4M3: return fp8_to_f32(g, ci, 0);
    case QKC_KDEC_FP8E5M2: return fp8_to_f32(g, ci, 1);
    default: return NULL;
    }
}

/* Round a vector of floats to the compute type (RNE), as the reference. */
static LLVMValueRef round_compute(cg *g, LLVMValueRef x)
{
    LLVMValueRef u, r;
    switch (g->mm->compute) {
    case QKC_COMPUTE_F16:
        return LLVMBuildFPExt(g->b, LLVMBuildFPTrunc(g->b, x, LLVMVectorType(g->f16, (unsigned)g->V), ""), g->vf, "");
    case QKC_COMPUTE_BF16:
        u = LLVMBuildBitCast(g->b, x, g->vi32, "");
        r = LLVMBuildAdd(g->b, u, LLVMBuildAdd(g->b, vconst_i32(g, 0x7FFF),
                                               LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, u, vconst_i32(g, 16), ""),
                                                            vconst_i32(g, 1), ""), ""), "");
        r = LLVMBuildAnd(g->b, r, vconst_i32(g, (int32_t)0xFFFF0000u), "");
        return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, LLVMRealUNO, x, x, ""), x,
                               LLVMBuildBitCast(g->b, r, g->vf, ""), "");
    case QKC_COMPUTE_TF32:
        u = LLVMBuildBitCast(g->b, x, g->vi32, "");
        r = LLVMBuildAdd(g->b, u, LLVMBuildAdd(g->b, vconst_i32(g, 0xFFF),
                                               LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, u, vconst_i32(g, 13), ""),
                                                            vconst_i32(g, 1), ""), ""), "");
        r = LLVMBuildAnd(g->b, r, vconst_i32(g, (int32_t)0xFFFFE000u), "");
        {
            LLVMValueRef special = LLVMBuildICmp(g->b, LLVMIntEQ,
                                                 LLVMBuildAnd(g->b, u, vconst_i32(g, 0x7F800000), ""),
                                                 vconst_i32(g, 0x7F800000), "");
            return LLVMBuildSelect(g->b, special, x, LLVMBuildBitCast(g->b, r, g->vf, ""), "");
        }
    default: return x;
    }
}

/* ------------------------------------------------------------- tiles */

typedef struct tile {
    int tm, tn;
    LLVMValueRef m0, n0;
    LLVMValueRef nrow[8]; /* weight row of column j: min(n0 + j, n_end - 1) */
    LLVMValueRef acc[8][8]; /* allocas of <V x float> */
    int pm, pn;               /* int8 with smmla: rows and columns in 2x2 pairs (lower_mmla.inc), else 0 */
    LLVMValueRef pacc[4][4];  /* their allocas of <4 x float> */
    LLVMValueRef sum[8][8];   /* an output's final sum where no acc is reduced, else NULL */
} tile;

/* Rows of a tile. The last tile of a range may stick out past n_end: its
 * extra columns repeat row n_end - 1, compute the same value and store it
 * to the same place, so one tile width serves every N. */
static void tile_rows(cg *g, tile *T)
{
    LLVMValueRef last = LLVMBuildSub(g->b, g->n_end, i64c(g, 1), "");
    for (int j = 0; j < T->tn; j++) {
        LLVMValueRef r = j ? LLVMBuildAdd(g->b, T->n0, i64c(g, j), "") : T->n0;
        T->nrow[j] = j ? LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->n_end, ""), r, last, "") : r;
    }
}

static LLVMValueRef a_load(cg *g, tile *T, int tmi, LLVMValueRef ci, int sub, int valid)
{
    int lanes = valid - sub * g->V;
    LLVMValueRef row = LLVMBuildAdd(g->b, T->m0, i64c(g, tmi), "");
    LLVMValueRef el = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row, g->lda, ""),
                                   LLVMBuildAdd(g->b, LLVMBuildMul(g->b, ci, i64c(g, g->C), ""),
                                                i64c(g, sub * g->V), ""), "");
    LLVMValueRef p = LLVMBuildGEP2(g->b, g->f32, g->a, &el, 1, "");
    if (lanes >= g->V)
        return load(g, g->vf, p, 4);
    if (lanes <= 0)
        return LLVMConstNull(g->vf);
    {
        LLVMValueRef mask[64];
        for (int i = 0; i < g->V; i++)
            mask[i] = LLVMConstInt(g->i1, i < lanes, 0);
        LLVMTypeRef ov[2] = {g->vf, g->ptr};
        LLVMValueRef args[4] = {p, i32c(g, 4), LLVMConstVector(mask, (unsigned)g->V), LLVMConstNull(g->vf)};
        return intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
    }
}

#include "codegen/lower_vq.inc"

/* One chunk (index ci, `valid` real elements) of a tile. */
static void emit_chunk(cg *g, tile *T, LLVMValueRef ci, int valid)
{
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
                asum[i] = LLVMBuildFAdd(g->b, asum[i], a[i][sub], "");
        }
    }
    for (int j = 0; j < T->tn; j++) {
        LLVMValueRef row = T->nrow[j];
        LLVMValueRef off = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row, i64c(g, (int64_t)L->row_bytes), ""),
                                        LLVMBuildMul(g->b, ci, i64c(g, L->chunk_bytes), ""), "");
        LLVMValueRef chunk = gep8(g, g->w, off);
        LLVMValueRef s = NULL, mn = NULL, z = NULL, codes, val[8];
        if (g->s->prefetch > 0) {
            LLVMValueRef pf = gep8(g, chunk, i64c(g, (int64_t)g->s->prefetch * L->chunk_bytes));
            LLVMValueRef args[4] = {pf, i32c(g, 0), i32c(g, 3), i32c(g, 1)};
            LLVMTypeRef ov = g->ptr;
            intrinsic(g, "llvm.prefetch", &ov, 1, args, 4);
        }
        if (L->scale != QKC_KF_NONE)
            s = factorized ? NULL : chunk_field_f32(g, chunk, L->scale, L->scale_off);
        if (L->min != QKC_KF_NONE)
            mn = chunk_field_f32(g, chunk, L->min, L->min_off);
        if (L->zero != QKC_KF_NONE)
            z = chunk_field_f32(g, chunk, L->zero, L->zero_off);
        if (L->decode == QKC_KDEC_LUT && L->tidx != QKC_KF_NONE)
            load_chunk_table(g, chunk);
        if (L->decode == QKC_KDEC_VQ) {
            vq_values(g, chunk, val);
        } else {
            codes = chunk_codes(g, chunk);
            for (int sub = 0; sub < g->S; sub++)
                val[sub] = code_value(g, subvec(g, codes, sub));
        }

        if (factorized) {
            /* Σ a·v over the chunk, then scale, zero and minimum once. */
            LLVMValueRef negz = NULL;
            LLVMValueRef vs = L->scale != QKC_KF_NONE ? chunk_field_vec(g, chunk, L->scale, L->scale_off, g->V) : NULL;
            if (L->decode == QKC_KDEC_AFFINE && (zc || z)) {
                negz = f32c(g, -(double)zc);
                if (z)
                    negz = LLVMBuildFSub(g->b, negz, z, "");
                negz = splat(g, negz, g->V);
            }
            for (int i = 0; i < T->tm; i++) {
                LLVMValueRef t = NULL, acc = load(g, g->vf, T->acc[i][j], 64);
                for (int sub = 0; sub < g->S; sub++)
                    t = t ? fma_v(g, a[i][sub], val[sub], t) : LLVMBuildFMul(g->b, a[i][sub], val[sub], "");
                if (negz)
                    t = fma_v(g, asum[i], negz, t);
                acc = vs ? fma_v(g, t, vs, acc) : LLVMBuildFAdd(g->b, acc, t, "");
                if (mn)
                    acc = fma_v(g, asum[i], splat(g, mn, g->V), acc);
                LLVMBuildStore(g->b, acc, T->acc[i][j]);
            }
        } else {
            /* Exact dequantization, rounding to the compute type, FMA. */
            for (int sub = 0; sub < g->S; sub++) {
                LLVMValueRef x = val[sub];
                if (L->decode == QKC_KDEC_AFFINE && (zc || z)) {
                    LLVMValueRef zz = f32c(g, (double)zc);
                    if (z)
                        zz = LLVMBuildFAdd(g->b, zz, z, "");
                    x = LLVMBuildFSub(g->b, x, splat(g, zz, g->V), "");
                }
                if (s)
                    x = LLVMBuildFMul(g->b, x, splat(g, s, g->V), "");
                if (mn)
                    x = LLVMBuildFAdd(g->b, x, splat(g, mn, g->V), "");
                val[sub] = round_compute(g, x);
            }
            for (int i = 0; i < T->tm; i++) {
                LLVMValueRef acc = load(g, g->vf, T->acc[i][j], 64);
                for (int sub = 0; sub < g->S; sub++)
                    acc = fma_v(g, a[i][sub], val[sub], acc);
                LLVMBuildStore(g->b, acc, T->acc[i][j]);
            }
        }
    }
}

static LLVMBasicBlockRef block(cg *g, const char *name)
{
    return LLVMAppendBasicBlockInContext(g->ctx, g->fn, name);
}

/* Allocas go in the entry block so mem2reg/SROA promote them. */
static LLVMValueRef entry_alloca(cg *g, LLVMTypeRef ty)
{
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(g->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    LLVMValueRef a;
    if (first)
        LLVMPositionBuilderBefore(g->b, first);
    else
        LLVMPositionBuilderAtEnd(g->b, entry);
    a = LLVMBuildAlloca(g->b, ty, "");
    LLVMSetAlignment(a, 64);
    LLVMPositionBuilderAtEnd(g->b, cur);
    return a;
}

/* for (i = start; i + step <= end; i += step) body(i); the induction
 * variable lives in an alloca. Returns with the builder after the loop. */
typedef void (*loop_body)(cg *g, void *ctx, LLVMValueRef i);

static LLVMValueRef emit_loop(cg *g, LLVMValueRef start, LLVMValueRef end, int64_t step, loop_body body, void *bctx)
{
    LLVMValueRef iv = entry_alloca(g, g->i64);
    LLVMBasicBlockRef cond = block(g, "loop.cond"), bodyb = block(g, "loop.body"), done = block(g, "loop.done");
    LLVMBuildStore(g->b, start, iv);
    LLVMBuildBr(g->b, cond);
    LLVMPositionBuilderAtEnd(g->b, cond);
    LLVMValueRef i = load(g, g->i64, iv, 8);
    LLVMValueRef ok = LLVMBuildICmp(g->b, LLVMIntSLE, LLVMBuildAdd(g->b, i, i64c(g, step), ""), end, "");
    LLVMBuildCondBr(g->b, ok, bodyb, done);
    LLVMPositionBuilderAtEnd(g->b, bodyb);
    body(g, bctx, i);
    LLVMBuildStore(g->b, LLVMBuildAdd(g->b, i, i64c(g, step), ""), iv);
    LLVMBuildBr(g->b, cond);
    LLVMPositionBuilderAtEnd(g->b, done);
    return load(g, g->i64, iv, 8);
}

static void chunk_body(cg *g, void *ctx, LLVMValueRef ci)
{
    tile *T = ctx;
    for (int u = 0; u < g->s->k_unroll; u++)
        emit_chunk(g, T, u ? LLVMBuildAdd(g->b, ci, i64c(g, u), "") : ci, g->C);
}

static void chunk_body1(cg *g, void *ctx, LLVMValueRef ci)
{
    emit_chunk(g, ctx, ci, g->C);
}

static LLVMValueRef activation(cg *g, LLVMValueRef x)
{
    LLVMValueRef d, r;
    switch (g->mm->act) {
    case QKC_ACT_RELU: {
        LLVMValueRef gt = LLVMBuildFCmp(g->b, LLVMRealOGT, x, f32c(g, 0.0), "");
        return LLVMBuildSelect(g->b, gt, x, f32c(g, 0.0), "");
    }
    case QKC_ACT_GELU:
    case QKC_ACT_SILU: {
        /* In double through libm, as the reference does. */
        const char *fname = g->mm->act == QKC_ACT_GELU ? "erf" : "exp";
        LLVMTypeRef ft = LLVMFunctionType(g->f64, &g->f64, 1, 0);
        LLVMValueRef f = LLVMGetNamedFunction(g->mod, fname);
        if (!f)
            f = LLVMAddFunction(g->mod, fname, ft);
        d = LLVMBuildFPExt(g->b, x, g->f64, "");
        if (g->mm->act == QKC_ACT_GELU) {
            LLVMValueRef arg = LLVMBuildFDiv(g->b, d, LLVMConstReal(g->f64, 1.4142135623730951), "");
            r = LLVMBuildCall2(g->b, ft, f, &arg, 1, "");
            r = LLVMBuildFMul(g->b, LLVMBuildFMul(g->b, LLVMConstReal(g->f64, 0.5), d, ""),
                              LLVMBuildFAdd(g->b, LLVMConstReal(g->f64, 1.0), r, ""), "");
        } else {
            LLVMValueRef arg = LLVMBuildFNeg(g->b, d, "");
            r = LLVMBuildCall2(g->b, ft, f, &arg, 1, "");
            r = LLVMBuildFDiv(g->b, d, LLVMBuildFAdd(g->b, LLVMConstReal(g->f64, 1.0), r, ""), "");
        }
        return LLVMBuildFPTrunc(g->b, r, g->f32, "");
    }
    default: return x;
    }
}

static void store_out(cg *g, LLVMValueRef v, LLVMValueRef m, LLVMValueRef n)
{
    qkc_lower_store_out(g->b, g->mm->out_dtype, v, g->c, LLVMBuildAdd(g->b, LLVMBuildMul(g->b, m, g->ldc, ""), n, ""));
}

/* A tile of tm x tn outputs at (m0, n0): its rows and its accumulators
 * (vectors of acc_ty, zeroed). */
static void tile_init(cg *g, tile *T, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn, LLVMTypeRef acc_ty)
{
    memset(T, 0, sizeof *T);
    T->tm = tm, T->tn = tn, T->m0 = m0, T->n0 = n0;
    tile_rows(g, T);
    for (int i = 0; i < tm; i++)
        for (int j = 0; j < tn; j++) {
            T->acc[i][j] = entry_alloca(g, acc_ty);
            LLVMBuildStore(g->b, LLVMConstNull(acc_ty), T->acc[i][j]);
        }
}

/* ------------------------------------------------------ LoRA side path */

/* lora=R:DTYPE: vector v of row n of adapter B (R values in the lora
 * dtype; the last vector masked, its missing lanes zero), as f32. */
static LLVMValueRef lora_b_vec(cg *g, LLVMValueRef n, int v)
{
    int r = g->mm->lora_rank, lanes = r - v * g->V;
    qkc_dtype dt = g->mm->lora_dtype;
    LLVMTypeRef et = dt == QKC_DTYPE_F32 ? g->f32 : dt == QKC_DTYPE_F16 ? g->f16 : g->i16;
    LLVMTypeRef vt = LLVMVectorType(et, (unsigned)g->V);
    LLVMValueRef el = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, n, i64c(g, r), ""), i64c(g, v * g->V), "");
    LLVMValueRef p = LLVMBuildGEP2(g->b, et, g->lora_b, &el, 1, ""), x;
    if (lanes >= g->V) {
        x = load(g, vt, p, dt == QKC_DTYPE_F32 ? 4 : 2);
    } else {
        LLVMValueRef mask[64];
        LLVMTypeRef ov[2] = {vt, g->ptr};
        for (int i = 0; i < g->V; i++)
            mask[i] = LLVMConstInt(g->i1, i < lanes, 0);
        LLVMValueRef args[4] = {p, i32c(g, dt == QKC_DTYPE_F32 ? 4 : 2), LLVMConstVector(mask, (unsigned)g->V),
                                LLVMConstNull(vt)};
        x = intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
    }
    if (dt == QKC_DTYPE_F16)
        return LLVMBuildFPExt(g->b, x, g->vf, "");
    if (dt == QKC_DTYPE_BF16)
        return LLVMBuildBitCast(g->b, LLVMBuildShl(g->b, LLVMBuildZExt(g->b, x, g->vi32, ""), vconst_i32(g, 16), ""),
                                g->vf, "");
    return x;
}

/* The term s·Σ_j T[m,j]·B[n,j] of every output of a tile, f32 in any order
 * (ir/spec.h), into lt[i][j]. T's rows are zero-padded to lora_t_ld, a
 * multiple of 16, so they load as whole vectors; B's vectors are loaded
 * once per column and T's once per row, before the tile stores anything. */
static void lora_terms(cg *g, tile *T, LLVMValueRef lt[8][8])
{
    enum { MAXV = QKC_MAX_LORA_RANK / 4 };
    int nv = (g->mm->lora_rank + g->V - 1) / g->V;
    LLVMValueRef bv[8][MAXV], tv[8][MAXV];
    for (int j = 0; j < T->tn; j++)
        for (int v = 0; v < nv; v++)
            bv[j][v] = lora_b_vec(g, T->nrow[j], v);
    for (int i = 0; i < T->tm; i++) {
        LLVMValueRef row = LLVMBuildAdd(g->b, T->m0, i64c(g, i), "");
        for (int v = 0; v < nv; v++) {
            LLVMValueRef el = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row, g->lora_ld, ""), i64c(g, v * g->V), "");
            tv[i][v] = load(g, g->vf, LLVMBuildGEP2(g->b, g->f32, g->lora_t, &el, 1, ""), 4);
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
            LLVMValueRef acc = LLVMBuildFMul(g->b, tv[i][0], bv[j][0], "");
            for (int v = 1; v < nv; v++)
                acc = fma_v(g, tv[i][v], bv[j][v], acc);
            LLVMValueRef args[2] = {f32c(g, 0.0), acc};
            LLVMTypeRef ov = g->vf;
            LLVMValueRef sum = intrinsic(g, "llvm.vector.reduce.fadd", &ov, 1, args, 2);
            LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc);
            lt[i][j] = LLVMBuildFMul(g->b, sum, g->lora_scale, "");
        }
}

static void emit_outliers(cg *g, tile *T, LLVMValueRef extra[8][8]);

/* The end of a tile: reduce each accumulator (vectors of type acc_ty),
 * add the outliers' sums (codegen/lower_outliers.c), the bias, apply the
 * activation, convert and store. */
static void emit_epilogue(cg *g, tile *T, LLVMTypeRef acc_ty)
{
    LLVMValueRef lt[8][8];
    if (g->lora_t)
        lora_terms(g, T, lt);
    LLVMValueRef extra[8][8] = {{0}};
    emit_outliers(g, T, extra);
    for (int i = 0; i < T->tm; i++)
        for (int j = 0; j < T->tn; j++) {
            LLVMValueRef sum = T->sum[i][j], n = T->nrow[j];
            if (!sum) {
                LLVMValueRef args[2] = {f32c(g, 0.0), load(g, acc_ty, T->acc[i][j], 64)};
                LLVMTypeRef ov = acc_ty;
                sum = intrinsic(g, "llvm.vector.reduce.fadd", &ov, 1, args, 2);
                LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc);
            }
            if (g->lora_t)
                sum = LLVMBuildFAdd(g->b, sum, lt[i][j], "");
            if (extra[i][j])
                sum = LLVMBuildFAdd(g->b, sum, load(g, g->f32, extra[i][j], 4), "");
            if (g->mm->bias == QKC_BIAS_F32)
                sum = LLVMBuildFAdd(g->b, sum, load(g, g->f32, LLVMBuildGEP2(g->b, g->f32, g->bias, &n, 1, ""), 4), "");
            sum = activation(g, sum);
            store_out(g, sum, LLVMBuildAdd(g->b, T->m0, i64c(g, i), ""), n);
        }
}

static void emit_tile(cg *g, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn)
{
    tile T;
    int64_t full = g->mm->k / g->C;
    int tail = (int)(g->mm->k % g->C);
    tile_init(g, &T, m0, n0, tm, tn, g->vf);
    {
        LLVMValueRef next = i64c(g, 0);
        if (g->s->k_unroll > 1)
            next = emit_loop(g, next, i64c(g, full), g->s->k_unroll, chunk_body, &T);
        emit_loop(g, next, i64c(g, full), 1, chunk_body1, &T);
    }
    if (tail)
        emit_chunk(g, &T, i64c(g, full), tail);
    emit_epilogue(g, &T, g->vf);
}

typedef struct mloop_ctx {
    LLVMValueRef n0;
    int tm, tn;
} mloop_ctx;

struct i8ctx;
static void emit_tile_int8(cg *g, struct i8ctx *x, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn);

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
    int tn = *(int *)ctx;
    mloop_ctx mc = {n0, g->s->tile_m, tn};
    LLVMValueRef m0 = i64c(g, 0);
    if (g->s->tile_m > 1)
        m0 = emit_loop(g, m0, g->m, g->s->tile_m, m_tile_body, &mc);
    mc.tm = 1;
    emit_loop(g, m0, g->m, 1, m_tile_body, &mc);
}

/* ------------------------------------------------------------ driver */

/* The int8 dot-product path: which operand form a (layout, target) takes.
 *   DIRECT  Σ q·u over unsigned codes u: vpdpbusd (VNNI), or vpmaddubsw +
 *           vpmaddwd on AVX2 when u ≤ 63 (no int16 saturation);
 *           then − cc·Σq with cc = zero_const + zero.
 *           aarch64: sdot over u as s8 (4-bit codes), or over u − 128
 *           (8-bit codes, cc − 128 corrects), or usdot over u (I8MM);
 *           with I8MM, 2x2 pairs of rows and columns by smmla / usmmla
 *           (lower_mmla.inc);
 *           without DOTPROD, a widening multiply (smull) and pairwise adds.
 *   TABLE   VNNI: the code's integer table value + 128 as u8 (vpshufb),
 *           cc = 128. aarch64: the table value itself as s8 (tbl), cc = 0.
 *   SIGNED  AVX2: vpmaddubsw(|v|, sign(q, v)) over signed weights v (an
 *           integer table, or 8-bit codes with zero_const 128), cc = 0.
 *           |v| is up to 128, which vpmaddubsw reads as unsigned, and
 *           the activations q are within ±127, so sign(q, v) never
 *           overflows (sign(v, q) would turn a weight of −128 into −128). */
enum { I8_NONE = 0, I8_DIRECT = 1, I8_TABLE = 2, I8_SIGNED = 3 };

int qkc_lower_int8_table_ok(const qkc_klayout *L)
{
    for (int i = 0; i < 16; i++)
        if (L->table[i] != floorf(L->table[i]) || L->table[i] < -127.0f || L->table[i] > 127.0f)
            return 0;
    return L->code_bits == 4;
}

static int int8_mode(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t, int vector_bits)
{
    int vnni = t->arch == QKC_ARCH_X86_64 && (t->features & QKC_FEAT_AVX512_VNNI) && (t->features & QKC_FEAT_AVX512VL);
    const qkc_dtype_desc *dd = qkc_dtype_get(mm->w.dtype);
    (void)vector_bits;
    if (L->mixed)
        return I8_NONE; /* blocks may differ; the float path serves them all */
    if (mm->compute != QKC_COMPUTE_INT8 || L->fallback || L->permute_k || L->chunk != 32 || !dd)
        return I8_NONE;
    if (t->arch == QKC_ARCH_AARCH64) {
        /* s8 x s8 products are exact in every form (sdot, usdot, smull) */
        if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8))
            return I8_DIRECT;
        if (L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L))
            return I8_TABLE;
        return I8_NONE;
    }
    if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8)) {
        if (vnni || dd->bits <= 6)
            return I8_DIRECT;
        if (L->code_bits == 8 && L->zero_const == 128 && L->zero == QKC_KF_NONE && L->min == QKC_KF_NONE)
            return I8_SIGNED;
        return I8_NONE;
    }
    if (L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L))
        return vnni ? I8_TABLE : I8_SIGNED;
    return I8_NONE;
}

int qkc_lower_uses_int8_dot(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    return int8_mode(mm, L, t, t->vector_bits) != I8_NONE;
}

/* ------------------------------------------------------- int8 path */

struct i8ctx {
    int mode;
    int P;      /* chunks per step: 1 (256-bit, NEON) or 2 (512-bit) */
    int lanes;  /* i32/f32 lanes per step: 8P */
    int vnni;
    int neon;    /* aarch64: the weights are s8 (u8 with usdot) and the dot is sdot / usdot / smull */
    int dotprod; /* aarch64 FEAT_DotProd: sdot */
    int usdot;   /* aarch64 FEAT_I8MM: usdot (usmmla) over unsigned 8-bit codes */
    int mmla;    /* aarch64 FEAT_I8MM: smmla / usmmla for 2x2 pairs of tiles with tm, tn >= 2 */
    int off;     /* the dot's weight operand is the code minus off (aarch64 8-bit codes under sdot: 128) */
    int vbmi_unpack; /* 4-bit codes of two adjacent records via vpermb */
    LLVMTypeRef vbytes, vi32s, vfs; /* <32P x i8>, <8P x i32>, <8P x float> */
    LLVMValueRef a_scales, a_scales_ld;
};
typedef struct i8ctx i8ctx;

static LLVMValueRef cbytes(cg *g, const uint8_t *v, int n)
{
    LLVMValueRef e[64];
    for (int i = 0; i < n; i++)
        e[i] = LLVMConstInt(g->i8, v[i], 0);
    return LLVMConstVector(e, (unsigned)n);
}

/* <nb x i8> bytes as <nb/4 x i32> (the operand type of vpdpbusd in LLVM 19). */
static LLVMValueRef as_i32(cg *g, LLVMValueRef v, int nb)
{
    return LLVMBuildBitCast(g->b, v, LLVMVectorType(g->i32, (unsigned)(nb / 4)), "");
}

/* init + Σ over groups of 4 bytes of u8(x)·s8(y), as <8P x i32> (init may
 * be NULL for zero). VNNI accumulates into init for free. */
/* aarch64: init + Σ over groups of 4 bytes of w·q, w signed (or unsigned
 * when `unsigned_w`, usdot), as <8 x i32>: sdot/usdot on each 16-byte half,
 * or without DOTPROD products widened to i16 (|w·q| ≤ 128·128 fits) and
 * summed in pairs twice. */
static LLVMValueRef dot_neon(cg *g, i8ctx *x, LLVMValueRef init, LLVMValueRef w, LLVMValueRef q, int unsigned_w)
{
    LLVMValueRef idx[32], r;
    if (x->dotprod) {
        LLVMTypeRef v16 = LLVMVectorType(g->i8, 16), v4 = LLVMVectorType(g->i32, 4);
        LLVMValueRef half[2];
        LLVMTypeRef ov[2] = {v4, v16};
        for (int h = 0; h < 2; h++) {
            LLVMValueRef wi[16], ai[4];
            for (int i = 0; i < 16; i++)
                wi[i] = i32c(g, 16 * h + i);
            for (int i = 0; i < 4; i++)
                ai[i] = i32c(g, 4 * h + i);
            LLVMValueRef args[3] = {
                init ? LLVMBuildShuffleVector(g->b, init, LLVMGetUndef(x->vi32s), LLVMConstVector(ai, 4), "")
                     : LLVMConstNull(v4),
                LLVMBuildShuffleVector(g->b, w, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), ""),
                LLVMBuildShuffleVector(g->b, q, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), "")};
            half[h] = intrinsic(g, unsigned_w ? "llvm.aarch64.neon.usdot" : "llvm.aarch64.neon.sdot", ov, 2, args, 3);
        }
        for (int i = 0; i < 8; i++)
            idx[i] = i32c(g, i);
        return LLVMBuildShuffleVector(g->b, half[0], half[1], LLVMConstVector(idx, 8), "");
    }
    {
        LLVMTypeRef v32w = LLVMVectorType(g->i16, 32), v32d = LLVMVectorType(g->i32, 32);
        LLVMValueRef p = LLVMBuildMul(g->b, LLVMBuildSExt(g->b, w, v32w, ""), LLVMBuildSExt(g->b, q, v32w, ""), "");
        r = LLVMBuildSExt(g->b, p, v32d, "");
        for (int len = 16; len >= 8; len /= 2) {
            LLVMValueRef ev[16], od[16];
            for (int i = 0; i < len; i++)
                ev[i] = i32c(g, 2 * i), od[i] = i32c(g, 2 * i + 1);
            LLVMValueRef u = LLVMGetUndef(LLVMTypeOf(r));
            r = LLVMBuildAdd(g->b, LLVMBuildShuffleVector(g->b, r, u, LLVMConstVector(ev, (unsigned)len), ""),
                             LLVMBuildShuffleVector(g->b, r, u, LLVMConstVector(od, (unsigned)len), ""), "");
        }
        (void)unsigned_w; /* never set without DOTPROD */
        return init ? LLVMBuildAdd(g->b, init, r, "") : r;
    }
}

static LLVMValueRef dot_u8s8_acc(cg *g, i8ctx *x, LLVMValueRef init, LLVMValueRef u, LLVMValueRef q)
{
    int nb = 32 * x->P;
    if (x->neon)
        return dot_neon(g, x, init, u, q, x->usdot);
    if (x->vnni) {
        LLVMValueRef args[3] = {init ? init : LLVMConstNull(x->vi32s), as_i32(g, u, nb), as_i32(g, q, nb)};
        return intrinsic(g, x->P == 2 ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256", NULL, 0,
                         args, 3);
    }
    {
        LLVMValueRef args[2] = {u, q};
        LLVMValueRef w16 = intrinsic(g, "llvm.x86.avx2.pmadd.ub.sw", NULL, 0, args, 2);
        LLVMValueRef ones[16];
        for (int i = 0; i < 16; i++)
            ones[i] = LLVMConstInt(g->i16, 1, 0);
        LLVMValueRef a2[2] = {w16, LLVMConstVector(ones, 16)};
        LLVMValueRef r = intrinsic(g, "llvm.x86.avx2.pmadd.wd", NULL, 0, a2, 2);
        return init ? LLVMBuildAdd(g->b, init, r, "") : r;
    }
}

/* Σq and the like: u is a vector of small non-negative constants (valid as s8) */
static LLVMValueRef dot_u8s8(cg *g, i8ctx *x, LLVMValueRef u, LLVMValueRef q)
{
    if (x->neon)
        return dot_neon(g, x, NULL, u, q, 0);
    return dot_u8s8_acc(g, x, NULL, u, q);
}

/* Weight bytes of one step: P chunks' codes, <32P x i8> in k order. */
static LLVMValueRef step_codes(cg *g, i8ctx *x, LLVMValueRef *chunks, int present)
{
    LLVMValueRef parts[2], idx[64];
    for (int p = 0; p < x->P; p++)
        parts[p] = p < present ? chunk_codes(g, chunks[p]) : LLVMConstNull(LLVMVectorType(g->i8, 32));
    if (x->P == 1)
        return parts[0];
    for (int i = 0; i < 64; i++)
        idx[i] = i32c(g, i);
    return LLVMBuildShuffleVector(g->b, parts[0], parts[1], LLVMConstVector(idx, 64), "");
}

/* Two adjacent 4-bit chunk records with VBMI: one masked 64-byte load
 * (it never touches bytes past the second record), one vpermb placing
 * [codes0, codes0, codes1, codes1], one vpsrlvw shifting the second copy of
 * each by 4, one and: 64 nibbles in k order. */
static LLVMValueRef step_codes_vbmi(cg *g, i8ctx *x, LLVMValueRef rec0, LLVMValueRef *raw)
{
    const qkc_klayout *L = g->L;
    int span = L->chunk_bytes + L->code_off + 16;
    LLVMValueRef mask[64], idx[64], sh[32], bytes, perm, words;
    LLVMTypeRef v64 = LLVMVectorType(g->i8, 64), v32w = LLVMVectorType(g->i16, 32);
    uint8_t fifteen[64];
    (void)x;
    for (int i = 0; i < 64; i++) {
        mask[i] = LLVMConstInt(g->i1, i < span, 0);
        idx[i] = LLVMConstInt(g->i8, (unsigned)((i < 32 ? L->code_off : L->chunk_bytes + L->code_off) + (i % 16)), 0);
    }
    for (int i = 0; i < 32; i++)
        sh[i] = LLVMConstInt(g->i16, (i / 8) % 2 ? 4 : 0, 0);
    {
        LLVMTypeRef ov[2] = {v64, g->ptr};
        LLVMValueRef args[4] = {rec0, i32c(g, 1), LLVMConstVector(mask, 64), LLVMConstNull(v64)};
        bytes = intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
        *raw = bytes;
    }
    {
        LLVMValueRef args[2] = {bytes, LLVMConstVector(idx, 64)};
        perm = intrinsic(g, "llvm.x86.avx512.permvar.qi.512", NULL, 0, args, 2);
    }
    words = LLVMBuildLShr(g->b, LLVMBuildBitCast(g->b, perm, v32w, ""), LLVMConstVector(sh, 32), "");
    memset(fifteen, 15, sizeof fifteen);
    return LLVMBuildAnd(g->b, LLVMBuildBitCast(g->b, words, v64, ""), cbytes(g, fifteen, 64), "");
}

/* A vector of 8P lanes holding v[p] in lanes [8p, 8p+8). */
static LLVMValueRef per_chunk_vec(cg *g, i8ctx *x, LLVMValueRef *v)
{
    LLVMValueRef t, idx[16];
    if (x->P == 1)
        return splat(g, v[0], 8);
    t = LLVMBuildInsertElement(g->b, LLVMGetUndef(LLVMVectorType(g->f32, 2)), v[0], i32c(g, 0), "");
    t = LLVMBuildInsertElement(g->b, t, v[1], i32c(g, 1), "");
    for (int i = 0; i < 16; i++)
        idx[i] = i32c(g, i / 8);
    return LLVMBuildShuffleVector(g->b, t, LLVMGetUndef(LLVMVectorType(g->f32, 2)), LLVMConstVector(idx, 16), "");
}

/* A chunk record's scale s, minimum mn and the zero correction cc that
 * the float FMA applies (0 where int32 handles it, or nothing is to
 * correct). */
static void int8_chunk_coefs(cg *g, i8ctx *x, LLVMValueRef chunk, LLVMValueRef *s, LLVMValueRef *mn, LLVMValueRef *cc)
{
    const qkc_klayout *L = g->L;
    *s = L->scale != QKC_KF_NONE ? chunk_field_f32(g, chunk, L->scale, L->scale_off) : f32c(g, 1.0);
    *mn = L->min != QKC_KF_NONE ? chunk_field_f32(g, chunk, L->min, L->min_off) : f32c(g, 0.0);
    if (x->mode != I8_DIRECT || L->zero == QKC_KF_NONE)
        *cc = f32c(g, 0.0);
    else
        *cc = LLVMBuildFAdd(g->b, f32c(g, (double)L->zero_const), chunk_field_f32(g, chunk, L->zero, L->zero_off), "");
}

#include "codegen/lower_mmla.inc"

static void emit_step_int8(cg *g, i8ctx *x, tile *T, LLVMValueRef step, int present)
{
    const qkc_klayout *L = g->L;
    int nb = 32 * x->P;
    LLVMValueRef q[8], qsumf[8], qsumi[8], qcorr[8], d[8][2], dvec[8];
    /* A correction cc·Σq with cc a compile-time integer is subtracted in
     * int32, exactly (less the offset the weight operand already has); a
     * per-chunk zero goes through the float FMA. */
    int cc_int = x->mode == I8_TABLE ? (x->neon ? 0 : 128)
                 : x->mode == I8_DIRECT && L->zero == QKC_KF_NONE ? L->zero_const : 0;
    int int_cc = cc_int - x->off;
    int need_coef = L->min != QKC_KF_NONE || (x->mode == I8_DIRECT && L->zero != QKC_KF_NONE);
    int need_qsum = x->mode != I8_SIGNED && (int_cc || need_coef);
    uint8_t ones[64];
    memset(ones, 1, sizeof ones);
    /* smmla's pairs first; the sdot code below does the rest of the tile */
    if (T->pm)
        emit_step_mmla(g, x, T, step, int_cc, need_coef);
    for (int i = 0; i < T->tm; i++) {
        if (i < T->pm && T->pn == T->tn)
            continue; /* a row all in pairs */
        LLVMValueRef row = LLVMBuildAdd(g->b, T->m0, i64c(g, i), "");
        LLVMValueRef off = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row, g->lda, ""),
                                        LLVMBuildMul(g->b, step, i64c(g, nb), ""), "");
        q[i] = load(g, x->vbytes, gep8(g, g->a, off), 1);
        if (need_qsum) {
            qsumi[i] = dot_u8s8(g, x, cbytes(g, ones, nb), q[i]);
            qsumf[i] = LLVMBuildSIToFP(g->b, qsumi[i], x->vfs, "");
            if (int_cc) {
                LLVMValueRef ccv[16];
                for (int l = 0; l < x->lanes; l++)
                    ccv[l] = i32c(g, -int_cc);
                qcorr[i] = LLVMBuildMul(g->b, qsumi[i], LLVMConstVector(ccv, (unsigned)x->lanes), "");
            }
        }
        for (int p = 0; p < x->P; p++) {
            LLVMValueRef si = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, row, x->a_scales_ld, ""),
                                           LLVMBuildAdd(g->b, LLVMBuildMul(g->b, step, i64c(g, x->P), ""),
                                                        i64c(g, p), ""), "");
            d[i][p] = p < present ? load(g, g->f32, LLVMBuildGEP2(g->b, g->f32, x->a_scales, &si, 1, ""), 4)
                                  : f32c(g, 0.0);
        }
        dvec[i] = per_chunk_vec(g, x, d[i]);
    }
    for (int j = 0; j < T->tn; j++) {
        if (j < T->pn && T->pm == T->tm)
            continue; /* a column all in pairs */
        LLVMValueRef rowoff = LLVMBuildMul(g->b, T->nrow[j], i64c(g, (int64_t)L->row_bytes), "");
        LLVMValueRef chunks[2], s[2], cc[2], mn[2], w;
        for (int p = 0; p < x->P; p++) {
            LLVMValueRef ci = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, step, i64c(g, x->P), ""), i64c(g, p), "");
            chunks[p] = gep8(g, g->w, LLVMBuildAdd(g->b, rowoff, LLVMBuildMul(g->b, ci, i64c(g, L->chunk_bytes), ""), ""));
            if (p >= present) {
                s[p] = cc[p] = mn[p] = f32c(g, 0.0);
                continue;
            }
            int8_chunk_coefs(g, x, chunks[p], &s[p], &mn[p], &cc[p]);
        }
        LLVMValueRef raw = NULL, svec_raw = NULL;
        w = (x->vbmi_unpack && present == 2) ? step_codes_vbmi(g, x, chunks[0], &raw) : step_codes(g, x, chunks, present);
        if (raw && L->scale == QKC_KF_F16 && L->scale_off % 2 == 0 && L->chunk_bytes % 2 == 0) {
            /* Both f16 scales are in the bytes just loaded: one word
             * permute and one conversion give the per-lane scale vector. */
            LLVMValueRef sel[16];
            for (int l = 0; l < 16; l++)
                sel[l] = i32c(g, (l < 8 ? L->scale_off : L->chunk_bytes + L->scale_off) / 2);
            LLVMValueRef words = LLVMBuildBitCast(g->b, raw, LLVMVectorType(g->i16, 32), "");
            LLVMValueRef h = LLVMBuildShuffleVector(g->b, words, LLVMGetUndef(LLVMVectorType(g->i16, 32)),
                                                    LLVMConstVector(sel, 16), "");
            svec_raw = LLVMBuildFPExt(g->b, LLVMBuildBitCast(g->b, h, LLVMVectorType(g->f16, 16), ""), x->vfs, "");
        }
        if (L->decode == QKC_KDEC_TABLE && x->neon) {
            /* tbl: the 16 table values as s8, one lookup per 16 codes */
            uint8_t tb[16];
            LLVMTypeRef v16 = LLVMVectorType(g->i8, 16);
            LLVMValueRef half[2], idx[32];
            for (int i = 0; i < 16; i++)
                tb[i] = (uint8_t)(int8_t)L->table[i];
            for (int h = 0; h < 2; h++) {
                LLVMValueRef wi[16];
                for (int i = 0; i < 16; i++)
                    wi[i] = i32c(g, 16 * h + i);
                LLVMValueRef args[2] = {cbytes(g, tb, 16),
                                        LLVMBuildShuffleVector(g->b, w, LLVMGetUndef(x->vbytes), LLVMConstVector(wi, 16), "")};
                half[h] = intrinsic(g, "llvm.aarch64.neon.tbl1", &v16, 1, args, 2);
            }
            for (int i = 0; i < 32; i++)
                idx[i] = i32c(g, i);
            w = LLVMBuildShuffleVector(g->b, half[0], half[1], LLVMConstVector(idx, 32), "");
        } else if (L->decode == QKC_KDEC_TABLE) {
            /* vpshufb: 16-byte table in every 128-bit lane. */
            uint8_t tb[64];
            for (int i = 0; i < nb; i++) {
                int v = (int)L->table[i % 16];
                tb[i] = (uint8_t)(x->mode == I8_TABLE ? v + 128 : v);
            }
            LLVMValueRef args[2] = {cbytes(g, tb, nb), w};
            w = intrinsic(g, nb == 64 ? "llvm.x86.avx512.pshuf.b.512" : "llvm.x86.avx2.pshuf.b", NULL, 0, args, 2);
        } else if (x->mode == I8_SIGNED || x->off == 128) {
            uint8_t flip[64];
            memset(flip, 0x80, sizeof flip);
            w = LLVMBuildXor(g->b, w, cbytes(g, flip, nb), ""); /* u - 128 as s8 */
        }
        LLVMValueRef wabs = NULL;
        if (x->mode == I8_SIGNED) {
            /* |v| once per weight vector; |−128| is 0x80, 128 as u8 */
            LLVMTypeRef ty = x->vbytes;
            LLVMValueRef args[2] = {w, LLVMConstInt(g->i1, 0, 0)};
            wabs = intrinsic(g, "llvm.abs", &ty, 1, args, 2);
        }
        /* Per-lane scale vectors: s once per weight row, d once per
         * activation row (dvec), so each (row, column) pair costs one
         * multiply and one FMA. */
        LLVMValueRef svec = svec_raw ? svec_raw : per_chunk_vec(g, x, s), cvec = NULL;
        if (need_coef) {
            LLVMValueRef c0[2];
            for (int p = 0; p < x->P; p++)
                c0[p] = LLVMBuildFSub(g->b, mn[p], LLVMBuildFMul(g->b, cc[p], s[p], ""), "");
            cvec = per_chunk_vec(g, x, c0);
        }
        for (int i = 0; i < T->tm; i++) {
            if (i < T->pm && j < T->pn)
                continue;
            LLVMValueRef prod, acc = load(g, x->vfs, T->acc[i][j], 64);
            if (x->mode == I8_SIGNED) {
                LLVMValueRef sargs[2] = {q[i], w};
                LLVMValueRef signed_q = intrinsic(g, "llvm.x86.avx2.psign.b", NULL, 0, sargs, 2);
                prod = dot_u8s8(g, x, wabs, signed_q);
            } else {
                /* Σ q·u − cc·Σq: the correction is the accumulator's start. */
                prod = dot_u8s8_acc(g, x, int_cc ? qcorr[i] : NULL, w, q[i]);
            }
            acc = fma_v(g, LLVMBuildFMul(g->b, LLVMBuildSIToFP(g->b, prod, x->vfs, ""), svec, ""), dvec[i], acc);
            if (need_coef)
                acc = fma_v(g, LLVMBuildFMul(g->b, qsumf[i], cvec, ""), dvec[i], acc);
            LLVMBuildStore(g->b, acc, T->acc[i][j]);
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

static void emit_tile_int8(cg *g, struct i8ctx *x, LLVMValueRef m0, LLVMValueRef n0, int tm, int tn)
{
    tile T;
    i8tile it = {x, &T};
    int64_t chunks = g->L->chunks_per_row, full = chunks / x->P;
    int rest = (int)(chunks % x->P);
    tile_init(g, &T, m0, n0, tm, tn, x->vfs);
    mmla_tile_init(g, x, &T);
    emit_loop(g, i64c(g, 0), i64c(g, full), 1, int8_step_body, &it);
    if (rest)
        emit_step_int8(g, x, &T, i64c(g, full), rest);
    mmla_tile_finish(g, &T);
    emit_epilogue(g, &T, x->vfs);
}

/* The per-layout state: vector shape of its chunks and its decode tables.
 * A mixed kernel calls this once per row block. */
static void set_layout(cg *g, const qkc_klayout *L)
{
    const qkc_target *t = g->t;
    g->L = L;
    g->V = g->s->vector_bits / 32;
    g->C = L->chunk;
    if (g->C < g->V)
        g->V = g->C; /* 16-element chunks on 512-bit targets use one zmm */
    g->S = g->C / g->V;
    g->vf = LLVMVectorType(g->f32, (unsigned)g->V);
    g->vi32 = LLVMVectorType(g->i32, (unsigned)g->V);
    g->table_lo = g->table_hi = NULL;
    memset(g->table_bytes, 0, sizeof g->table_bytes);
    /* 4-bit affine codes on the float path: a 16-entry table lookup is one
     * permute where a conversion plus a zero-point FMA would be two
     * operations; the values i - zero_const are exact in f32. */
    g->affine_table = L->decode == QKC_KDEC_AFFINE && L->code_bits == 4 && !g->x8;
    if (L->decode == QKC_KDEC_TABLE || g->affine_table) {
        LLVMValueRef e[16];
        for (int i = 0; i < 16; i++)
            e[i] = f32c(g, g->affine_table ? (double)(i - L->zero_const) : L->table[i]);
        if (t->arch == QKC_ARCH_AARCH64) {
            for (int r = 0; r < 4; r++) {
                LLVMValueRef bytes[16];
                for (int i = 0; i < 16; i++) {
                    float f = (float)(g->affine_table ? (double)(r * 4 + i / 4 - L->zero_const) : L->table[r * 4 + i / 4]);
                    uint32_t u;
                    memcpy(&u, &f, sizeof u);
                    bytes[i] = LLVMConstInt(g->i8, (u >> (8 * (i % 4))) & 0xFF, 0);
                }
                g->table_bytes[r] = LLVMConstVector(bytes, 16);
            }
        } else if (g->V == 16) {
            g->table_lo = LLVMConstVector(e, 16);
        } else {
            g->table_lo = LLVMConstVector(e, 8);
            g->table_hi = LLVMConstVector(e + 8, 8);
        }
    }
}

/* w=mixed: one n-loop per row block, each with its block's layout and
 * decode, clamped to [n_begin, n_end). Rows keep their global index (for
 * C, bias and LoRA); the weight base is shifted so that row r of block b
 * reads block b's packed row r − row0. */
static qkc_status emit_mixed(cg *g, qkc_diag *diag)
{
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
        LLVMValueRef lo = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, n_begin, i64c(g, r0), ""), n_begin,
                                          i64c(g, r0), "");
        LLVMValueRef hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, n_end, i64c(g, r1), ""), n_end,
                                          i64c(g, r1), "");
        g->n_end = hi;
        g->w = gep8(g, w, i64c(g, (int64_t)off - r0 * (int64_t)BL[b].row_bytes));
        emit_loop(g, lo, LLVMBuildAdd(g->b, hi, i64c(g, tn - 1), ""), tn, n_tile_body, &tn);
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
    memset(&g, 0, sizeof g);
    memset(&x8, 0, sizeof x8);
    g.ctx = ctx, g.mm = mm, g.L = L, g.t = t, g.s = s;
    g.V = s->vector_bits / 32;
    g.C = L->chunk;
    if (g.C < g.V)
        g.V = g.C; /* 16-element chunks on 512-bit targets use one zmm */
    g.S = g.C / g.V;
    g.factorized = mm->compute == QKC_COMPUTE_F32 || mm->compute == QKC_COMPUTE_INT8;
    g.mod = LLVMModuleCreateWithNameInContext(name, ctx);
    LLVMSetTarget(g.mod, t->triple);
    g.b = LLVMCreateBuilderInContext(ctx);
    g.i1 = LLVMInt1TypeInContext(ctx);
    g.i8 = LLVMInt8TypeInContext(ctx);
    g.i16 = LLVMInt16TypeInContext(ctx);
    g.i32 = LLVMInt32TypeInContext(ctx);
    g.i64 = LLVMInt64TypeInContext(ctx);
    g.f16 = LLVMHalfTypeInContext(ctx);
    g.f32 = LLVMFloatTypeInContext(ctx);
    g.f64 = LLVMDoubleTypeInContext(ctx);
    g.ptr = LLVMPointerTypeInContext(ctx, 0);
    g.vf = LLVMVectorType(g.f32, (unsigned)g.V);
    g.vi32 = LLVMVectorType(g.i32, (unsigned)g.V);

    {
        LLVMTypeRef st = args_type(&g);
        LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), &g.ptr, 1, 0);
        char vw[16];
        g.fn = LLVMAddFunction(g.mod, name, fty);
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "target-cpu", 10, t->cpu, (unsigned)strlen(t->cpu)));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "target-features", 15, t->llvm_features,
                                                          (unsigned)strlen(t->llvm_features)));
        snprintf(vw, sizeof vw, "%d", s->vector_bits);
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "prefer-vector-width", 19, vw, (unsigned)strlen(vw)));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "min-legal-vector-width", 22, vw, (unsigned)strlen(vw)));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
        LLVMPositionBuilderAtEnd(g.b, LLVMAppendBasicBlockInContext(ctx, g.fn, "entry"));
        LLVMValueRef args = LLVMGetParam(g.fn, 0);
        g.a = load_arg(&g, st, args, QKC_KARG_A, g.ptr);
        g.w = load_arg(&g, st, args, QKC_KARG_W, g.ptr);
        g.bias = load_arg(&g, st, args, QKC_KARG_BIAS, g.ptr);
        g.c = load_arg(&g, st, args, QKC_KARG_C, g.ptr);
        g.lda = load_arg(&g, st, args, QKC_KARG_LDA, g.i64);
        g.ldc = load_arg(&g, st, args, QKC_KARG_LDC, g.i64);
        g.m = load_arg(&g, st, args, QKC_KARG_M, g.i64);
        g.n_begin = load_arg(&g, st, args, QKC_KARG_N_BEGIN, g.i64);
        g.n_end = load_arg(&g, st, args, QKC_KARG_N_END, g.i64);
        if (mm->lora_rank) {
            g.lora_t = load_arg(&g, st, args, QKC_KARG_LORA_T, g.ptr);
            g.lora_b = load_arg(&g, st, args, QKC_KARG_LORA_B, g.ptr);
            g.lora_ld = load_arg(&g, st, args, QKC_KARG_LORA_T_LD, g.i64);
            g.lora_scale = load(&g, g.f32, LLVMBuildStructGEP2(g.b, st, args, QKC_KARG_LORA_SCALE, ""), 4);
        }
        x8.mode = int8_mode(mm, L, t, s->vector_bits);
        if (x8.mode != I8_NONE) {
            int x86 = t->arch == QKC_ARCH_X86_64;
            x8.vnni = x86 && (t->features & QKC_FEAT_AVX512_VNNI) && (t->features & QKC_FEAT_AVX512VL);
            x8.P = (x8.vnni && s->vector_bits == 512) ? 2 : 1;
            x8.vbmi_unpack = x86 && x8.P == 2 && L->code_bits == 4 && (t->features & QKC_FEAT_AVX512_VBMI) &&
                             L->chunk_bytes + L->code_off + 16 <= 64;
            x8.neon = t->arch == QKC_ARCH_AARCH64;
            x8.dotprod = x8.neon && (t->features & QKC_FEAT_DOTPROD);
            /* usdot spares the u - 128 flip and its correction where the
             * codes are not centred on 128 anyway (uint8 with zeros) */
            x8.usdot = x8.dotprod && (t->features & QKC_FEAT_I8MM) && x8.mode == I8_DIRECT && L->code_bits == 8 &&
                       !(L->zero_const == 128 && L->zero == QKC_KF_NONE);
            x8.mmla = x8.dotprod && (t->features & QKC_FEAT_I8MM) && x8.P == 1;
            x8.off = x8.neon && x8.mode == I8_DIRECT && L->code_bits == 8 && !x8.usdot ? 128 : 0;
            x8.lanes = 8 * x8.P;
            x8.vbytes = LLVMVectorType(g.i8, (unsigned)(32 * x8.P));
            x8.vi32s = LLVMVectorType(g.i32, (unsigned)x8.lanes);
            x8.vfs = LLVMVectorType(g.f32, (unsigned)x8.lanes);
            x8.a_scales = load_arg(&g, st, args, QKC_KARG_A_SCALES, g.ptr);
            x8.a_scales_ld = load_arg(&g, st, args, QKC_KARG_A_SCALES_LD, g.i64);
            g.x8 = &x8;
            if (mm->w.outliers == QKC_OUTLIERS_ACT) {
                g.o_cols = load_arg(&g, st, args, QKC_KARG_O_COLS, g.ptr);
                g.o_vals = load_arg(&g, st, args, QKC_KARG_O_VALS, g.ptr);
                g.o_count = load_arg(&g, st, args, QKC_KARG_O_COUNT, g.i64);
            }
        }
    }
    set_layout(&g, L);
    if (L->decode == QKC_KDEC_LUT && L->tidx == QKC_KF_NONE)
        load_table(&g, gep8(&g, g.w, i64c(&g, (int64_t)L->table_offset))); /* one table: loaded once */
    if (L->mixed) {
        qkc_status st = emit_mixed(&g, diag);
        if (st) {
            LLVMDisposeBuilder(g.b);
            LLVMDisposeModule(g.mod);
            return st;
        }
    } else     {
        /* n0 < n_end, written as n0 + tn <= n_end + tn - 1 */
        int tn = s->tile_n;
        emit_loop(&g, g.n_begin, LLVMBuildAdd(g.b, g.n_end, i64c(&g, tn - 1), ""), tn, n_tile_body, &tn);
    }
    LLVMBuildRetVoid(g.b);
    LLVMDisposeBuilder(g.b);
    {
        qkc_status st = qkc_llvm_verify(g.mod, diag);
        if (st) {
            LLVMDisposeModule(g.mod);
            return st;
        }
    }
    *out = g.mod;
    return QKC_OK;
}

#include "codegen/lower_outliers.inc"
