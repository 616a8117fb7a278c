/*
 * Lowering a matmul to an NVPTX kernel (see lower_ptx.h).
 *
 * Kernel shape, bandwidth first (GEMV and small M): one warp per output
 * column n. Lane l reads chunk records l, l+32, l+64, ... of weight row n,
 * so one step of the warp reads 32 consecutive records: a contiguous,
 * coalesced span of 32·chunk_bytes bytes. Each lane loads its record with
 * the widest aligned loads the layout allows (128-bit ld.global.nc.v4 when
 * records are multiples of 16 bytes), decodes the weights in registers
 * (affine, 16-entry table, fp8, dense; fields extracted with shifts) and
 * runs TM = tile_m rows of A against them with FMAs (A also through
 * 128-bit loads). The warp then reduces each accumulator with shfl.sync
 * butterflies and lane 0 applies the epilogue (bias, act, output dtype).
 * Rows of A beyond TM reuse the weight row from L1 on the next pass.
 * int8 codes (qkc_lower_ptx_int8) use dp4a over 32-code records instead.
 *
 * Tensor cores (qkc_lower_ptx_mma, m >= QKC_GPU_MMA_MIN_M at run time):
 * one warp per QKC_GPU_MMA_ROWS x QKC_GPU_MMA_COLS tile of C with
 * mma.sync (bf16, f16, tf32, s8), see emit_mma.
 *
 * Semantics follow lower.c: weights are dequantized exactly (one rounding
 * per operation, no contraction), rounded to the compute type for
 * bf16/f16/tf32, and multiplied by activations the host already prepared.
 * gelu and silu use f32 approximations (ex2.approx; erf by Abramowitz and
 * Stegun 7.1.26, |error| < 1.5e-7) where the CPU kernels call libm in
 * double: GPUs have no libm to call.
 */
#include "codegen/lower_ptx.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/kernel_abi.h"
#include "codegen/llvm_compat.h"
#include "codegen/lower.h"
#include "codegen/lower_store.h"

#define MAX_UNITS 192

typedef struct pg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const qkc_matmul *mm;
    const qkc_klayout *L;
    int C, TM;
    int lw; /* bytes per weight load */
    int ub; /* bytes per unit: min(lw, 4) */
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, ptr, gptr, v4f;
    LLVMValueRef a, w, bias, c, lda, ldc, m;
    LLVMValueRef table; /* TABLE: [16 x float] in constant memory */
    unsigned invariant_kind;
    int int8;  /* A holds int8 codes + block scales and sums (qkc_lower_ptx_int8) */
    int mma_k; /* k per mma.sync step; 0: no tensor-core path */
    int raw;   /* round_compute leaves f16/bf16 to pack2 (cvt.rn, the same RNE) */
    LLVMValueRef units[MAX_UNITS];
} pg;

static LLVMValueRef i32c(pg *g, int64_t v)
{
    return LLVMConstInt(g->i32, (unsigned long long)v, 1);
}

static LLVMValueRef i64c(pg *g, int64_t v)
{
    return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}

static LLVMValueRef f32c(pg *g, double v)
{
    return LLVMConstReal(g->f32, v);
}

static LLVMValueRef call(pg *g, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned np,
                         LLVMValueRef *args)
{
    LLVMTypeRef ft = LLVMFunctionType(ret, params, np, 0);
    LLVMValueRef f = LLVMGetNamedFunction(g->mod, name);
    if (!f)
        f = LLVMAddFunction(g->mod, name, ft);
    return LLVMBuildCall2(g->b, ft, f, args, np, "");
}

static LLVMValueRef sreg(pg *g, const char *name)
{
    char full[64];
    snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
    return call(g, full, g->i32, NULL, 0, NULL);
}

/* A read-only global load: !invariant.load lets NVPTX use ld.global.nc. */
static LLVMValueRef load_ro(pg *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(g->b, ty, p, "");
    LLVMSetAlignment(v, align);
    LLVMSetMetadata(v, g->invariant_kind, LLVMMetadataAsValue(g->ctx, LLVMMDNodeInContext2(g->ctx, NULL, 0)));
    return v;
}

static LLVMValueRef load_al(pg *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(g->b, ty, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static LLVMValueRef gep8(pg *g, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildGEP2(g->b, g->i8, base, &off, 1, "");
}

static LLVMBasicBlockRef block(pg *g, const char *name)
{
    return LLVMAppendBasicBlockInContext(g->ctx, g->fn, name);
}

static LLVMValueRef entry_alloca(pg *g, LLVMTypeRef ty)
{
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(g->ctx);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(g->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    LLVMValueRef v;
    if (first)
        LLVMPositionBuilderBefore(eb, first);
    else
        LLVMPositionBuilderAtEnd(eb, entry);
    v = LLVMBuildAlloca(eb, ty, "");
    LLVMDisposeBuilder(eb);
    return v;
}

int qkc_lower_ptx_load_bytes(const qkc_klayout *L)
{
    int lw = 16;
    while (lw > 1 && (L->chunk_bytes % lw || L->row_bytes % (uint64_t)lw))
        lw /= 2;
    return lw;
}

/* ------------------------------------------------------ record fields */

/* Load one chunk record into g->units (i32 values holding ub bytes each). */
static void load_record(pg *g, LLVMValueRef rec)
{
    int n = g->L->chunk_bytes / g->lw;
    for (int i = 0; i < n; i++) {
        LLVMValueRef p = gep8(g, rec, i64c(g, (int64_t)i * g->lw));
        if (g->lw >= 8) {
            int words = g->lw / 4;
            LLVMValueRef v = load_ro(g, LLVMVectorType(g->i32, (unsigned)words), p, (unsigned)g->lw);
            for (int j = 0; j < words; j++)
                g->units[i * words + j] = LLVMBuildExtractElement(g->b, v, i32c(g, j), "");
        } else {
            LLVMTypeRef t = g->lw == 4 ? g->i32 : g->lw == 2 ? g->i16 : g->i8;
            LLVMValueRef v = load_ro(g, t, p, (unsigned)g->lw);
            g->units[i] = g->lw == 4 ? v : LLVMBuildZExt(g->b, v, g->i32, "");
        }
    }
}

/* `bits` (8, 16 or 32) bits of the record at byte offset off, as i32. */
static LLVMValueRef field_bits(pg *g, int off, int bits)
{
    int bytes = bits / 8, in = off % g->ub;
    LLVMValueRef u = g->units[off / g->ub];
    if (in + bytes <= g->ub) {
        if (in)
            u = LLVMBuildLShr(g->b, u, i32c(g, 8 * in), "");
        if (bits < 32)
            u = LLVMBuildAnd(g->b, u, i32c(g, (int64_t)((1u << bits) - 1)), "");
        return u;
    }
    {
        /* straddles units: assemble from halves */
        LLVMValueRef lo = field_bits(g, off, bits / 2), hi = field_bits(g, off + bytes / 2, bits / 2);
        return LLVMBuildOr(g->b, lo, LLVMBuildShl(g->b, hi, i32c(g, bits / 2), ""), "");
    }
}

static LLVMValueRef as_f32(pg *g, LLVMValueRef bits)
{
    return LLVMBuildBitCast(g->b, bits, g->f32, "");
}

static LLVMValueRef half_to_f32(pg *g, LLVMValueRef bits16)
{
    LLVMValueRef h = LLVMBuildBitCast(g->b, LLVMBuildTrunc(g->b, bits16, g->i16, ""), g->f16, "");
    return LLVMBuildFPExt(g->b, h, g->f32, "");
}

static LLVMValueRef field_f32(pg *g, qkc_kfield kind, int off)
{
    const qkc_klayout *L = g->L;
    switch (kind) {
    case QKC_KF_F16: return half_to_f32(g, field_bits(g, off, 16));
    case QKC_KF_F32: return as_f32(g, field_bits(g, off, 32));
    case QKC_KF_I16: {
        LLVMValueRef v = LLVMBuildTrunc(g->b, field_bits(g, off, 16), g->i16, "");
        return LLVMBuildSIToFP(g->b, v, g->f32, "");
    }
    case QKC_KF_E8M0: {
        /* as lower.c: 2^(e-127) (or 2^(e-128) with e8m0_half) from the bits */
        LLVMValueRef e = field_bits(g, off, 8), bits;
        if (L->e8m0_half) {
            LLVMValueRef normal = LLVMBuildShl(g->b, LLVMBuildSub(g->b, e, i32c(g, 1), ""), i32c(g, 23), "");
            LLVMValueRef sub = LLVMBuildShl(g->b, i32c(g, 0x00200000), e, "");
            bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntUGE, e, i32c(g, 2), ""), normal, sub, "");
        } else {
            LLVMValueRef normal = LLVMBuildShl(g->b, e, i32c(g, 23), "");
            bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, e, i32c(g, 0), ""), i32c(g, 0x00400000),
                                   normal, "");
            if (L->e8m0_ff_is_nan)
                bits = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, e, i32c(g, 255), ""),
                                       i32c(g, 0x7FC00000), bits, "");
        }
        return as_f32(g, bits);
    }
    default: return NULL;
    }
}

/* The loaded record's scale, minimum and zero as f32 (NULL where the
 * layout has none). */
static void record_fields(pg *g, LLVMValueRef *s, LLVMValueRef *mn, LLVMValueRef *z)
{
    const qkc_klayout *L = g->L;
    *s = L->scale != QKC_KF_NONE ? field_f32(g, L->scale, L->scale_off) : NULL;
    *mn = L->min != QKC_KF_NONE ? field_f32(g, L->min, L->min_off) : NULL;
    *z = L->zero != QKC_KF_NONE ? field_f32(g, L->zero, L->zero_off) : NULL;
}

/* fp8 code (i32, 0..255) to f32, exact, with Inf/NaN codes (lower.c). */
static LLVMValueRef fp8_to_f32(pg *g, LLVMValueRef code, int e5m2)
{
    LLVMValueRef sign = LLVMBuildShl(g->b, LLVMBuildAnd(g->b, code, i32c(g, 0x80), ""), i32c(g, 24), "");
    LLVMValueRef mag = LLVMBuildAnd(g->b, code, i32c(g, 0x7F), "");
    LLVMValueRef bits = LLVMBuildShl(g->b, mag, i32c(g, e5m2 ? 21 : 20), "");
    LLVMValueRef v = LLVMBuildFMul(g->b, as_f32(g, bits), f32c(g, e5m2 ? 0x1p112 : 0x1p120), "");
    if (e5m2) {
        LLVMValueRef special = LLVMBuildICmp(g->b, LLVMIntUGE, mag, i32c(g, 0x7C), "");
        LLVMValueRef inf = LLVMBuildICmp(g->b, LLVMIntEQ, mag, i32c(g, 0x7C), "");
        LLVMValueRef sp = LLVMBuildSelect(g->b, inf, f32c(g, INFINITY), f32c(g, NAN), "");
        v = LLVMBuildSelect(g->b, special, sp, v, "");
    } else {
        LLVMValueRef nan = LLVMBuildICmp(g->b, LLVMIntEQ, mag, i32c(g, 0x7F), "");
        v = LLVMBuildSelect(g->b, nan, f32c(g, NAN), v, "");
    }
    return as_f32(g, LLVMBuildOr(g->b, LLVMBuildBitCast(g->b, v, g->i32, ""), sign, ""));
}

/* Round to the compute type (RNE), as the reference (lower.c). */
static LLVMValueRef round_compute(pg *g, LLVMValueRef x)
{
    LLVMValueRef u, r;
    if (g->raw && (g->mm->compute == QKC_COMPUTE_F16 || g->mm->compute == QKC_COMPUTE_BF16))
        return x;
    switch (g->mm->compute) {
    case QKC_COMPUTE_F16: return LLVMBuildFPExt(g->b, LLVMBuildFPTrunc(g->b, x, g->f16, ""), g->f32, "");
    case QKC_COMPUTE_BF16:
        u = LLVMBuildBitCast(g->b, x, g->i32, "");
        r = LLVMBuildAdd(g->b, u, LLVMBuildAdd(g->b, i32c(g, 0x7FFF),
                                               LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, u, i32c(g, 16), ""),
                                                            i32c(g, 1), ""), ""), "");
        r = LLVMBuildAnd(g->b, r, i32c(g, (int32_t)0xFFFF0000u), "");
        return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, LLVMRealUNO, x, x, ""), x, as_f32(g, r), "");
    case QKC_COMPUTE_TF32:
        u = LLVMBuildBitCast(g->b, x, g->i32, "");
        r = LLVMBuildAdd(g->b, u, LLVMBuildAdd(g->b, i32c(g, 0xFFF),
                                               LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, u, i32c(g, 13), ""),
                                                            i32c(g, 1), ""), ""), "");
        r = LLVMBuildAnd(g->b, r, i32c(g, (int32_t)0xFFFFE000u), "");
        {
            LLVMValueRef special = LLVMBuildICmp(g->b, LLVMIntEQ, LLVMBuildAnd(g->b, u, i32c(g, 0x7F800000), ""),
                                                 i32c(g, 0x7F800000), "");
            return LLVMBuildSelect(g->b, special, x, as_f32(g, r), "");
        }
    default: return x;
    }
}

/* The code of element i of the loaded record, as i32. */
static LLVMValueRef code_at(pg *g, int i)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef code;
    switch (L->code_bits) {
    case 4: {
        int h = g->C / 2;
        code = field_bits(g, L->code_off + i % h, 8);
        return i < h ? LLVMBuildAnd(g->b, code, i32c(g, 15), "") : LLVMBuildLShr(g->b, code, i32c(g, 4), "");
    }
    case 8: return field_bits(g, L->code_off + i, 8);
    case 16: return field_bits(g, L->code_off + 2 * (L->decode == QKC_KDEC_VQ ? i / L->vq_dim : i), 16);
    default: return field_bits(g, L->code_off + 4 * i, 32);
    }
}

/* Element i of the loaded record, dequantized (and rounded to the compute
 * type). s, mn, z: the record's scale, minimum and zero (or NULL). */
static LLVMValueRef element_code(pg *g, LLVMValueRef code, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z);

static LLVMValueRef element(pg *g, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z)
{
    return element_code(g, code_at(g, i), i, s, mn, z);
}

/* Element i, given its code (i matters only to VQ codebooks). */
static LLVMValueRef element_code(pg *g, LLVMValueRef code, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef x;
    switch (L->decode) {
    case QKC_KDEC_F32: return round_compute(g, as_f32(g, code));
    case QKC_KDEC_F16: return round_compute(g, half_to_f32(g, code));
    case QKC_KDEC_BF16: return round_compute(g, as_f32(g, LLVMBuildShl(g->b, code, i32c(g, 16), "")));
    case QKC_KDEC_AFFINE: {
        LLVMValueRef v = LLVMBuildSub(g->b, code, i32c(g, L->zero_const), "");
        x = LLVMBuildSIToFP(g->b, v, g->f32, "");
        if (z)
            x = LLVMBuildFSub(g->b, x, z, ""); /* code − zero: exact in f32 */
        break;
    }
    case QKC_KDEC_TABLE: {
        LLVMValueRef idx[2] = {i32c(g, 0), code};
        LLVMTypeRef at = LLVMArrayType(g->f32, 16);
        x = LLVMBuildLoad2(g->b, g->f32, LLVMBuildInBoundsGEP2(g->b, at, g->table, idx, 2, ""), "");
        break;
    }
    case QKC_KDEC_LUT: {
        /* tables[tidx][code] from the packed blob (L1-cached, read-only) */
        LLVMValueRef t = L->tidx != QKC_KF_NONE ? LLVMBuildZExt(g->b, field_bits(g, L->tidx_off, 32), g->i64, "")
                                                : i64c(g, 0);
        LLVMValueRef off = LLVMBuildAdd(g->b, LLVMBuildShl(g->b, t, i64c(g, 6), ""),
                                        LLVMBuildZExt(g->b, LLVMBuildShl(g->b, code, i32c(g, 2), ""), g->i64, ""), "");
        off = LLVMBuildAdd(g->b, off, i64c(g, (int64_t)L->table_offset), "");
        x = load_ro(g, g->f32, gep8(g, g->w, off), 4);
        break;
    }
    case QKC_KDEC_VQ: {
        /* codebook[code][i % vq_dim] from the packed blob */
        LLVMValueRef off = LLVMBuildMul(g->b, LLVMBuildZExt(g->b, code, g->i64, ""), i64c(g, (int64_t)L->vq_dim * 4), "");
        off = LLVMBuildAdd(g->b, off, i64c(g, (int64_t)L->table_offset + 4 * (i % L->vq_dim)), "");
        x = load_ro(g, g->f32, gep8(g, g->w, off), 4);
        break;
    }
    case QKC_KDEC_FP8E4M3: x = fp8_to_f32(g, code, 0); break;
    default: x = fp8_to_f32(g, code, 1); break;
    }
    if (s)
        x = LLVMBuildFMul(g->b, x, s, "");
    if (mn)
        x = LLVMBuildFAdd(g->b, x, mn, "");
    return round_compute(g, x);
}

/* ---------------------------------------------------------- epilogue */

static LLVMValueRef ex2(pg *g, LLVMValueRef x)
{
    return call(g, "llvm.nvvm.ex2.approx.f", g->f32, &g->f32, 1, &x);
}

/* e^x = 2^(x·log2 e) */
static LLVMValueRef expf_approx(pg *g, LLVMValueRef x)
{
    return ex2(g, LLVMBuildFMul(g->b, x, f32c(g, 1.4426950408889634), ""));
}

static LLVMValueRef fabs_f(pg *g, LLVMValueRef x)
{
    return call(g, "llvm.fabs.f32", g->f32, &g->f32, 1, &x);
}

static LLVMValueRef activation(pg *g, LLVMValueRef x)
{
    switch (g->mm->act) {
    case QKC_ACT_RELU:
        return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, LLVMRealOGT, x, f32c(g, 0.0), ""), x, f32c(g, 0.0), "");
    case QKC_ACT_SILU: {
        LLVMValueRef e = expf_approx(g, LLVMBuildFNeg(g->b, x, ""));
        return LLVMBuildFDiv(g->b, x, LLVMBuildFAdd(g->b, f32c(g, 1.0), e, ""), "");
    }
    case QKC_ACT_GELU: {
        /* erf(z), z = x/√2: 1 − (a1 t + … + a5 t^5) e^(−z²), t = 1/(1 + p|z|) */
        static const double a[5] = {0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429};
        LLVMValueRef z = LLVMBuildFMul(g->b, x, f32c(g, 0.7071067811865476), "");
        LLVMValueRef az = fabs_f(g, z);
        LLVMValueRef t = LLVMBuildFDiv(g->b, f32c(g, 1.0),
                                       LLVMBuildFAdd(g->b, f32c(g, 1.0), LLVMBuildFMul(g->b, f32c(g, 0.3275911), az, ""),
                                                     ""), "");
        LLVMValueRef p = f32c(g, a[4]), y, erf;
        for (int i = 3; i >= 0; i--)
            p = LLVMBuildFAdd(g->b, LLVMBuildFMul(g->b, p, t, ""), f32c(g, a[i]), "");
        p = LLVMBuildFMul(g->b, p, t, "");
        y = LLVMBuildFSub(g->b, f32c(g, 1.0),
                          LLVMBuildFMul(g->b, p, expf_approx(g, LLVMBuildFNeg(g->b, LLVMBuildFMul(g->b, az, az, ""), "")),
                                        ""), "");
        erf = LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, LLVMRealOLT, z, f32c(g, 0.0), ""), LLVMBuildFNeg(g->b, y, ""), y,
                              "");
        return LLVMBuildFMul(g->b, LLVMBuildFMul(g->b, f32c(g, 0.5), x, ""),
                             LLVMBuildFAdd(g->b, f32c(g, 1.0), erf, ""), "");
    }
    default: return x;
    }
}

static void store_out(pg *g, LLVMValueRef v, LLVMValueRef m, LLVMValueRef n)
{
    qkc_lower_store_out(g->b, g->mm->out_dtype, v, g->c, LLVMBuildAdd(g->b, LLVMBuildMul(g->b, m, g->ldc, ""), n, ""));
}

static LLVMValueRef warp_sum(pg *g, LLVMValueRef v)
{
    LLVMTypeRef pt[4];
    pt[0] = g->i32, pt[1] = g->f32, pt[2] = g->i32, pt[3] = g->i32;
    for (int off = 16; off >= 1; off /= 2) {
        LLVMValueRef args[4] = {i32c(g, -1), v, i32c(g, off), i32c(g, 31)};
        v = LLVMBuildFAdd(g->b, v, call(g, "llvm.nvvm.shfl.sync.bfly.f32", g->f32, pt, 4, args), "");
    }
    return v;
}

/* if (ok) c[r][n] = act(v + bias[n]) in the output dtype; the builder
 * continues after it. */
static void store_if(pg *g, LLVMValueRef ok, LLVMValueRef v, LLVMValueRef r, LLVMValueRef n)
{
    LLVMBasicBlockRef st = block(g, "store"), next = block(g, "store.next");
    LLVMBuildCondBr(g->b, ok, st, next);
    LLVMPositionBuilderAtEnd(g->b, st);
    if (g->mm->bias == QKC_BIAS_F32)
        v = LLVMBuildFAdd(g->b, v, load_ro(g, g->f32, LLVMBuildGEP2(g->b, g->f32, g->bias, &n, 1, ""), 4), "");
    store_out(g, activation(g, v), r, n);
    LLVMBuildBr(g->b, next);
    LLVMPositionBuilderAtEnd(g->b, next);
}

/* ------------------------------------------------------- int8 path */

/* dp4a.s32.s32: acc + the dot product of the four s8 lanes of x and y. */
static LLVMValueRef dp4a(pg *g, LLVMValueRef x, LLVMValueRef y, LLVMValueRef acc)
{
    static const char text[] = "dp4a.s32.s32 $0, $1, $2, $3;", cons[] = "=r,r,r,r";
    LLVMTypeRef pt[3] = {g->i32, g->i32, g->i32};
    LLVMTypeRef ft = LLVMFunctionType(g->i32, pt, 3, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, text, sizeof text - 1, cons, sizeof cons - 1, 0, 0, LLVMInlineAsmDialectATT, 0);
    LLVMValueRef args[3] = {x, y, acc};
    return LLVMBuildCall2(g->b, ft, fn, args, 3, "");
}

/* The integer weight value of a code: code − zero constant (AFFINE) or
 * the table's integer entry (TABLE), as i32. */
static LLVMValueRef int8_of_code(pg *g, LLVMValueRef code)
{
    if (g->L->decode == QKC_KDEC_TABLE) {
        LLVMValueRef idx[2] = {i32c(g, 0), code};
        LLVMTypeRef at = LLVMArrayType(g->f32, 16);
        LLVMValueRef v = LLVMBuildLoad2(g->b, g->f32, LLVMBuildInBoundsGEP2(g->b, at, g->table, idx, 2, ""), "");
        return LLVMBuildFPToSI(g->b, v, g->i32, "");
    }
    return LLVMBuildSub(g->b, code, i32c(g, g->L->zero_const), "");
}

/* Elements 4w..4w+3 of the loaded record as one word of four s8 lanes. */
static LLVMValueRef int8_word(pg *g, int w)
{
    LLVMValueRef r = NULL;
    for (int j = 0; j < 4; j++) {
        LLVMValueRef v = LLVMBuildAnd(g->b, int8_of_code(g, code_at(g, 4 * w + j)), i32c(g, 255), "");
        if (j)
            v = LLVMBuildShl(g->b, v, i32c(g, 8 * j), "");
        r = r ? LLVMBuildOr(g->b, r, v, "") : v;
    }
    return r;
}

/* The loaded record's factors for the int8 dot product: its elements are
 * x = v·fd + fs (v the integer value), so with activations d·q over the
 * record, Σ x·d·q = d·(fd·Σ v·q + fs·Σ q). */
static void int8_factors(pg *g, LLVMValueRef *fd, LLVMValueRef *fs)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef s = L->scale != QKC_KF_NONE ? field_f32(g, L->scale, L->scale_off) : NULL;
    LLVMValueRef mn = L->min != QKC_KF_NONE ? field_f32(g, L->min, L->min_off) : NULL;
    LLVMValueRef z = L->decode == QKC_KDEC_AFFINE && L->zero != QKC_KF_NONE ? field_f32(g, L->zero, L->zero_off)
                                                                             : NULL;
    *fd = s ? s : f32c(g, 1.0);
    *fs = mn ? mn : f32c(g, 0.0);
    if (z)
        *fs = LLVMBuildFSub(g->b, *fs, s ? LLVMBuildFMul(g->b, s, z, "") : z, "");
}

int qkc_lower_ptx_int8(const qkc_matmul *mm, const qkc_klayout *L)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(mm->w.dtype);
    if (mm->compute != QKC_COMPUTE_INT8 || mm->w.outliers == QKC_OUTLIERS_ACT || L->mixed || L->fallback ||
        L->permute_k || L->outliers || L->chunk != 32 || !dd)
        return 0;
    if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8))
        return L->zero_const <= 128 && (1 << dd->bits) - 1 - L->zero_const <= 127;
    return L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L);
}

/* GEMV, int8: dp4a over the loaded record's 32 codes and each row's 32
 * int8 activations (one block: its scale and code sum). rix: the rows. */
static void gemv_int8_record(pg *g, LLVMValueRef ci, LLVMValueRef k0, LLVMValueRef *rix, LLVMValueRef *acc)
{
    LLVMValueRef fd, fs, w[8];
    LLVMValueRef lda4 = LLVMBuildMul(g->b, g->lda, i64c(g, 4), "");
    LLVMValueRef sums = LLVMBuildAdd(g->b, g->lda, LLVMBuildSDiv(g->b, g->lda, i64c(g, 8), ""), "");
    LLVMValueRef cb = LLVMBuildShl(g->b, ci, i64c(g, 2), "");
    int8_factors(g, &fd, &fs);
    for (int i = 0; i < 8; i++)
        w[i] = int8_word(g, i);
    for (int t = 0; t < g->TM; t++) {
        LLVMValueRef base = LLVMBuildMul(g->b, rix[t], lda4, "");
        LLVMValueRef dot = i32c(g, 0), d, q, inner;
        for (int h = 0; h < 2; h++) {
            LLVMValueRef p = gep8(g, g->a, LLVMBuildAdd(g->b, base, LLVMBuildAdd(g->b, k0, i64c(g, 16 * h), ""), ""));
            LLVMValueRef v = load_ro(g, LLVMVectorType(g->i32, 4), p, 16);
            for (int j = 0; j < 4; j++)
                dot = dp4a(g, w[4 * h + j], LLVMBuildExtractElement(g->b, v, i32c(g, j), ""), dot);
        }
        d = load_ro(g, g->f32, gep8(g, g->a, LLVMBuildAdd(g->b, base, LLVMBuildAdd(g->b, g->lda, cb, ""), "")), 4);
        q = load_ro(g, g->i32, gep8(g, g->a, LLVMBuildAdd(g->b, base, LLVMBuildAdd(g->b, sums, cb, ""), "")), 4);
        inner = LLVMBuildFAdd(g->b, LLVMBuildFMul(g->b, fd, LLVMBuildSIToFP(g->b, dot, g->f32, ""), ""),
                              LLVMBuildFMul(g->b, fs, LLVMBuildSIToFP(g->b, q, g->f32, ""), ""), "");
        LLVMBuildStore(g->b, LLVMBuildFAdd(g->b, LLVMBuildLoad2(g->b, g->f32, acc[t], ""),
                                           LLVMBuildFMul(g->b, d, inner, ""), ""), acc[t]);
    }
}

/* ------------------------------------------------- tensor-core path */

#define MMA_MT (QKC_GPU_MMA_ROWS / 16) /* m16 tiles per warp */
#define MMA_NT (QKC_GPU_MMA_COLS / 8)  /* n8 tiles per warp */
#define MMA_MAX_STEPS 32               /* mma k-steps per chunk record */

static int mma_k(qkc_compute c)
{
    switch (c) {
    case QKC_COMPUTE_F16:
    case QKC_COMPUTE_BF16: return 16;
    case QKC_COMPUTE_TF32: return 8;
    case QKC_COMPUTE_INT8: return 32;
    default: return 0; /* f32: FMA, exact f32 products */
    }
}

int qkc_lower_ptx_mma(const qkc_matmul *mm, const qkc_klayout *L)
{
    int k = mma_k(mm->compute);
    if (!k || L->mixed || L->outliers || (mm->m && mm->m < QKC_GPU_MMA_MIN_M))
        return 0;
    if (mm->compute == QKC_COMPUTE_INT8)
        return qkc_lower_ptx_int8(mm, L);
    return L->chunk % k == 0 && L->chunk / k <= MMA_MAX_STEPS;
}

/*
 * Per-lane codes. On the tensor-core path each lane needs elements
 * i = tt + c of a record, tt a lane-dependent multiple of 2 (0..12) and c
 * a constant; it loads just the bytes of those codes, at lane-dependent
 * addresses, instead of decoding the whole record. For 4-bit codes
 * (element i < C/2 in the low nibble of byte i, else the high nibble of
 * byte i − C/2) that needs the nibble to be the same for every tt:
 * lane_code_ok says whether it is.
 */
static int lane_code_ok(const pg *g, int c, int tt_max)
{
    const qkc_klayout *L = g->L;
    if (L->decode == QKC_KDEC_VQ)
        return 0;
    if (L->code_bits == 4)
        return (c < g->C / 2) == (c + tt_max < g->C / 2);
    return L->code_bits == 8 || L->code_bits == 16 || L->code_bits == 32;
}

static LLVMValueRef lane_code(pg *g, LLVMValueRef rec, LLVMValueRef tt, int c)
{
    const qkc_klayout *L = g->L;
    int bytes = L->code_bits == 4 ? 1 : L->code_bits / 8, hi = L->code_bits == 4 && c >= g->C / 2;
    int64_t off = L->code_off + (L->code_bits == 4 ? c - (hi ? g->C / 2 : 0) : (int64_t)bytes * c);
    LLVMValueRef base = gep8(g, rec, bytes == 1 ? tt : LLVMBuildMul(g->b, tt, i64c(g, bytes), "")), v = NULL;
    for (int b = 0; b < bytes; b++) {
        LLVMValueRef x = LLVMBuildZExt(g->b, load_ro(g, g->i8, gep8(g, base, i64c(g, off + b)), 1), g->i32, "");
        v = v ? LLVMBuildOr(g->b, v, LLVMBuildShl(g->b, x, i32c(g, 8 * b), ""), "") : x;
    }
    if (L->code_bits == 4)
        v = hi ? LLVMBuildLShr(g->b, v, i32c(g, 4), "") : LLVMBuildAnd(g->b, v, i32c(g, 15), "");
    return v;
}

/* v[t] for the lane's t in 0..3 */
static LLVMValueRef select4(pg *g, LLVMValueRef t, LLVMValueRef v[4])
{
    LLVMValueRef r = v[3];
    for (int i = 2; i >= 0; i--)
        r = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, t, i32c(g, i), ""), v[i], r, "");
    return r;
}

static LLVMValueRef shfl_idx(pg *g, LLVMValueRef v, LLVMValueRef src)
{
    LLVMTypeRef pt[4] = {g->i32, g->f32, g->i32, g->i32};
    LLVMValueRef args[4] = {i32c(g, -1), v, src, i32c(g, 31)};
    return call(g, "llvm.nvvm.shfl.sync.idx.f32", g->f32, pt, 4, args);
}

/* The mma operand type: <2 x half> for f16, else a 32-bit register. */
static LLVMTypeRef mma_op_type(pg *g)
{
    return g->mm->compute == QKC_COMPUTE_F16 ? LLVMVectorType(g->f16, 2) : g->i32;
}

/* Two f32 values rounded (RNE) to the compute type, f16 or bf16, as one
 * packed operand register, lo in the low half (cvt.rn; exact for values
 * already in the type). */
static LLVMValueRef pack2(pg *g, LLVMValueRef lo, LLVMValueRef hi)
{
    LLVMTypeRef h = g->mm->compute == QKC_COMPUTE_F16 ? g->f16 : LLVMBFloatTypeInContext(g->ctx);
    LLVMValueRef v = LLVMGetUndef(LLVMVectorType(h, 2));
    v = LLVMBuildInsertElement(g->b, v, LLVMBuildFPTrunc(g->b, lo, h, ""), i32c(g, 0), "");
    v = LLVMBuildInsertElement(g->b, v, LLVMBuildFPTrunc(g->b, hi, h, ""), i32c(g, 1), "");
    return g->mm->compute == QKC_COMPUTE_F16 ? v : LLVMBuildBitCast(g->b, v, g->i32, "");
}

/* d = a·b + c on the tensor cores, one m16 x n8 tile. */
static void mma(pg *g, LLVMValueRef a[4], LLVMValueRef b[2], LLVMValueRef c[4], LLVMValueRef d[4])
{
    const char *name;
    LLVMTypeRef op = mma_op_type(g), acc = g->int8 ? g->i32 : g->f32, pt[10], et[4], rt;
    LLVMValueRef args[10], r;
    switch (g->mm->compute) {
    case QKC_COMPUTE_F16: name = "llvm.nvvm.mma.m16n8k16.row.col.f32.f32"; break;
    case QKC_COMPUTE_BF16: name = "llvm.nvvm.mma.m16n8k16.row.col.bf16"; break;
    case QKC_COMPUTE_TF32: name = "llvm.nvvm.mma.m16n8k8.row.col.tf32"; break;
    default: name = "llvm.nvvm.mma.m16n8k32.row.col.s8"; break;
    }
    for (int i = 0; i < 4; i++)
        pt[i] = op, args[i] = a[i], pt[6 + i] = acc, args[6 + i] = c[i], et[i] = acc;
    pt[4] = pt[5] = op, args[4] = b[0], args[5] = b[1];
    rt = LLVMStructTypeInContext(g->ctx, et, 4, 0);
    r = call(g, name, rt, pt, 10, args);
    for (int i = 0; i < 4; i++)
        d[i] = LLVMBuildExtractValue(g->b, r, (unsigned)i, "");
}

/*
 * One warp, one QKC_GPU_MMA_ROWS x QKC_GPU_MMA_COLS tile of C (MMA_MT x
 * MMA_NT mma tiles) over all of k. Lane l = 4·gid + t decodes, for each
 * n8 tile, the elements its B fragment needs from the chunk record of
 * column n0 + 8·nt + gid (the four lanes of a quad share the record). The k order inside one mma step is permuted, the same way for A
 * and B (a dot product does not depend on it), so that each lane's
 * elements are contiguous: for m16n8k16 lane t holds k = 4t..4t+3 (PTX
 * fragment rows 2t, 2t+1, 2t+8, 2t+9), for m16n8k8 k = 2t, 2t+1 (rows t,
 * t+4); A is then read with one 16- or 8-byte load per row. m16n8k32
 * (s8) keeps the PTX order: lane t holds k = 4t..4t+3 and 16+4t..16+4t+3,
 * two 4-byte loads of A per row. Where the codes allow it (lane_code) a
 * lane loads only the code bytes of its own elements; otherwise it
 * decodes the whole record and selects its elements by t. The C fragment
 * is not permuted: lane (gid, t) owns rows gid and gid+8, columns 2t and
 * 2t+1 of each tile. int8: each k32 step is one record and one activation
 * block; its integer tile is scaled into the f32 accumulators with the
 * row's block scale and code sum and the column's record factors (fetched
 * from the lane that decoded that column with shfl.sync.idx).
 */
static void emit_mma(pg *g, LLVMValueRef wg, LLVMValueRef nb, LLVMValueRef ne)
{
    const qkc_klayout *L = g->L;
    const int KS = g->mma_k, steps = g->C / KS, i8 = g->int8;
    LLVMValueRef lane = LLVMBuildAnd(g->b, sreg(g, "tid.x"), i32c(g, 31), "");
    LLVMValueRef gid = LLVMBuildLShr(g->b, lane, i32c(g, 2), ""), t = LLVMBuildAnd(g->b, lane, i32c(g, 3), "");
    LLVMValueRef gid64 = LLVMBuildZExt(g->b, gid, g->i64, ""), t64 = LLVMBuildZExt(g->b, t, g->i64, "");
    LLVMValueRef mgroups = LLVMBuildSDiv(g->b, LLVMBuildAdd(g->b, g->m, i64c(g, QKC_GPU_MMA_ROWS - 1), ""),
                                         i64c(g, QKC_GPU_MMA_ROWS), "");
    LLVMValueRef m0 = LLVMBuildMul(g->b, LLVMBuildSRem(g->b, wg, mgroups, ""), i64c(g, QKC_GPU_MMA_ROWS), "m0");
    LLVMValueRef n0 = LLVMBuildAdd(g->b, nb, LLVMBuildMul(g->b, LLVMBuildSDiv(g->b, wg, mgroups, ""),
                                                           i64c(g, QKC_GPU_MMA_COLS), ""), "n0");
    LLVMValueRef lastn = LLVMBuildSub(g->b, ne, i64c(g, 1), ""), lastm = LLVMBuildSub(g->b, g->m, i64c(g, 1), "");
    LLVMValueRef lda4 = LLVMBuildMul(g->b, g->lda, i64c(g, 4), "");
    LLVMValueRef sums = LLVMBuildAdd(g->b, g->lda, LLVMBuildSDiv(g->b, g->lda, i64c(g, 8), ""), "");
    LLVMValueRef wrow[MMA_NT], abase[MMA_MT][2], acc[MMA_MT][MMA_NT][4], cvar;
    /* per-lane code loads (lane_code) when every code the lane needs allows
     * them: elements j·KS + tt + e, tt = (KS/4)·t (int8: 16h + tt + e, tt = 4t) */
    LLVMValueRef tt = LLVMBuildMul(g->b, t64, i64c(g, i8 ? 4 : KS / 4), "");
    int percode = 1;
    for (int j = 0; j < steps; j++)
        for (int e = 0; e < (i8 ? 4 : KS / 4); e++)
            for (int h = 0; h < (i8 ? 2 : 1); h++)
                percode &= lane_code_ok(g, i8 ? 16 * h + e : j * KS + e, i8 ? 12 : 3 * (KS / 4));
    LLVMBasicBlockRef body = block(g, "mma.body"), chead = block(g, "mma.c.head"), cbody = block(g, "mma.c.body");
    LLVMBasicBlockRef cexit = block(g, "mma.c.exit"), done = block(g, "mma.done");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, n0, ne, ""), body, done);
    LLVMPositionBuilderAtEnd(g->b, body);
    for (int nt = 0; nt < MMA_NT; nt++) {
        LLVMValueRef n = LLVMBuildAdd(g->b, n0, LLVMBuildAdd(g->b, gid64, i64c(g, 8 * nt), ""), "");
        n = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, n, ne, ""), n, lastn, "");
        wrow[nt] = gep8(g, g->w, LLVMBuildMul(g->b, n, i64c(g, (int64_t)L->row_bytes), ""));
    }
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int h = 0; h < 2; h++) {
            /* rows past m read row m−1 (valid memory) and are not stored */
            LLVMValueRef r = LLVMBuildAdd(g->b, m0, LLVMBuildAdd(g->b, gid64, i64c(g, 16 * mt + 8 * h), ""), "");
            r = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->m, ""), r, lastm, "");
            abase[mt][h] = LLVMBuildMul(g->b, r, i8 ? lda4 : g->lda, ""); /* bytes (int8) or elements */
        }
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int nt = 0; nt < MMA_NT; nt++)
            for (int e = 0; e < 4; e++) {
                acc[mt][nt][e] = entry_alloca(g, g->f32);
                LLVMBuildStore(g->b, f32c(g, 0.0), acc[mt][nt][e]);
            }
    cvar = entry_alloca(g, g->i64);
    LLVMBuildStore(g->b, i64c(g, 0), cvar);
    LLVMBuildBr(g->b, chead);

    /* for (c = 0; c < chunks_per_row; c++): one record per column */
    LLVMPositionBuilderAtEnd(g->b, chead);
    LLVMValueRef c = LLVMBuildLoad2(g->b, g->i64, cvar, "c");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, c, i64c(g, L->chunks_per_row), ""), cbody, cexit);
    LLVMPositionBuilderAtEnd(g->b, cbody);
    {
        LLVMValueRef bf[MMA_NT][MMA_MAX_STEPS][2];
        LLVMValueRef cdot[MMA_NT][2], csum[MMA_NT][2];
        LLVMValueRef k0 = LLVMBuildMul(g->b, c, i64c(g, g->C), "");
        for (int nt = 0; nt < MMA_NT; nt++) {
            LLVMValueRef rec = gep8(g, wrow[nt], LLVMBuildMul(g->b, c, i64c(g, L->chunk_bytes), ""));
            /* the fields (unused record words are dead loads LLVM drops) */
            load_record(g, rec);
            if (i8) {
                LLVMValueRef fd, fs;
                int8_factors(g, &fd, &fs);
                for (int h = 0; h < 2; h++) {
                    /* b[h]: elements 16h + 4t .. 16h + 4t + 3 */
                    if (percode) {
                        LLVMValueRef w = NULL;
                        for (int e = 0; e < 4; e++) {
                            LLVMValueRef v = LLVMBuildAnd(g->b, int8_of_code(g, lane_code(g, rec, tt, 16 * h + e)),
                                                          i32c(g, 255), "");
                            if (e)
                                v = LLVMBuildShl(g->b, v, i32c(g, 8 * e), "");
                            w = w ? LLVMBuildOr(g->b, w, v, "") : v;
                        }
                        bf[nt][0][h] = w;
                    } else {
                        LLVMValueRef v[4];
                        for (int tt4 = 0; tt4 < 4; tt4++)
                            v[tt4] = int8_word(g, 4 * h + tt4);
                        bf[nt][0][h] = select4(g, t, v);
                    }
                }
                for (int e = 0; e < 2; e++) {
                    /* the lane that decoded column 2t+e of this tile: gid = 2t+e */
                    LLVMValueRef src = LLVMBuildShl(g->b, LLVMBuildAdd(g->b, LLVMBuildShl(g->b, t, i32c(g, 1), ""),
                                                                       i32c(g, e), ""), i32c(g, 2), "");
                    cdot[nt][e] = shfl_idx(g, fd, src);
                    csum[nt][e] = shfl_idx(g, fs, src);
                }
            } else {
                LLVMValueRef s, mn, z, x[MMA_MAX_STEPS * 16];
                record_fields(g, &s, &mn, &z);
                g->raw = 1;
                for (int j = 0; j < steps; j++) {
                    LLVMValueRef v0[4], v1[4], y[4];
                    if (percode) {
                        /* the lane's KS/4 elements of step j: j·KS + tt + e */
                        for (int e = 0; e < KS / 4; e++)
                            y[e] = element_code(g, lane_code(g, rec, tt, j * KS + e), -1, s, mn, z);
                        bf[nt][j][0] = KS == 16 ? pack2(g, y[0], y[1]) : LLVMBuildBitCast(g->b, y[0], g->i32, "");
                        bf[nt][j][1] = KS == 16 ? pack2(g, y[2], y[3]) : LLVMBuildBitCast(g->b, y[1], g->i32, "");
                        continue;
                    }
                    if (j == 0)
                        for (int i = 0; i < g->C; i++)
                            x[i] = element(g, i, s, mn, z);
                    for (int tt4 = 0; tt4 < 4; tt4++) {
                        if (KS == 16) {
                            v0[tt4] = pack2(g, x[16 * j + 4 * tt4], x[16 * j + 4 * tt4 + 1]);
                            v1[tt4] = pack2(g, x[16 * j + 4 * tt4 + 2], x[16 * j + 4 * tt4 + 3]);
                        } else {
                            v0[tt4] = LLVMBuildBitCast(g->b, x[8 * j + 2 * tt4], g->i32, "");
                            v1[tt4] = LLVMBuildBitCast(g->b, x[8 * j + 2 * tt4 + 1], g->i32, "");
                        }
                    }
                    bf[nt][j][0] = select4(g, t, v0);
                    bf[nt][j][1] = select4(g, t, v1);
                }
                g->raw = 0;
            }
        }
        for (int j = 0; j < steps; j++) {
            LLVMValueRef kk = LLVMBuildAdd(g->b, k0, i64c(g, (int64_t)j * KS), "");
            for (int mt = 0; mt < MMA_MT; mt++) {
                LLVMValueRef a[4], dsc[2] = {NULL, NULL}, qs[2] = {NULL, NULL};
                for (int h = 0; h < 2; h++) {
                    if (i8) {
                        /* codes 4t..4t+3 and 16+4t..16+4t+3 of the row's block c; its
                         * scale and code sum */
                        LLVMValueRef p = gep8(g, g->a, LLVMBuildAdd(g->b, abase[mt][h],
                                                                    LLVMBuildAdd(g->b, kk, LLVMBuildShl(g->b, t64, i64c(g, 2), ""), ""), ""));
                        LLVMValueRef cb = LLVMBuildShl(g->b, c, i64c(g, 2), "");
                        a[h] = load_ro(g, g->i32, p, 4);
                        a[2 + h] = load_ro(g, g->i32, gep8(g, p, i64c(g, 16)), 4);
                        dsc[h] = load_ro(g, g->f32, gep8(g, g->a, LLVMBuildAdd(g->b, abase[mt][h], LLVMBuildAdd(g->b, g->lda, cb, ""), "")), 4);
                        qs[h] = LLVMBuildSIToFP(g->b, load_ro(g, g->i32, gep8(g, g->a, LLVMBuildAdd(g->b, abase[mt][h], LLVMBuildAdd(g->b, sums, cb, ""), "")), 4), g->f32, "");
                    } else if (KS == 16) {
                        LLVMValueRef idx = LLVMBuildAdd(g->b, LLVMBuildAdd(g->b, abase[mt][h], kk, ""),
                                                        LLVMBuildShl(g->b, t64, i64c(g, 2), ""), "");
                        LLVMValueRef v = load_ro(g, g->v4f, LLVMBuildGEP2(g->b, g->f32, g->a, &idx, 1, ""), 16);
                        LLVMValueRef e[4];
                        for (int q = 0; q < 4; q++)
                            e[q] = LLVMBuildExtractElement(g->b, v, i32c(g, q), "");
                        a[h] = pack2(g, e[0], e[1]);
                        a[2 + h] = pack2(g, e[2], e[3]);
                    } else {
                        LLVMValueRef idx = LLVMBuildAdd(g->b, LLVMBuildAdd(g->b, abase[mt][h], kk, ""),
                                                        LLVMBuildShl(g->b, t64, i64c(g, 1), ""), "");
                        LLVMValueRef v = load_ro(g, LLVMVectorType(g->f32, 2), LLVMBuildGEP2(g->b, g->f32, g->a, &idx, 1, ""), 8);
                        a[h] = LLVMBuildBitCast(g->b, LLVMBuildExtractElement(g->b, v, i32c(g, 0), ""), g->i32, "");
                        a[2 + h] = LLVMBuildBitCast(g->b, LLVMBuildExtractElement(g->b, v, i32c(g, 1), ""), g->i32, "");
                    }
                }
                for (int nt = 0; nt < MMA_NT; nt++) {
                    LLVMValueRef cur[4], d[4];
                    for (int e = 0; e < 4; e++)
                        cur[e] = i8 ? i32c(g, 0) : LLVMBuildLoad2(g->b, g->f32, acc[mt][nt][e], "");
                    mma(g, a, bf[nt][j], cur, d);
                    for (int e = 0; e < 4; e++) {
                        LLVMValueRef v = d[e];
                        if (i8) {
                            int h = e >> 1;
                            LLVMValueRef inner = LLVMBuildFAdd(
                                g->b, LLVMBuildFMul(g->b, cdot[nt][e & 1], LLVMBuildSIToFP(g->b, d[e], g->f32, ""), ""),
                                LLVMBuildFMul(g->b, csum[nt][e & 1], qs[h], ""), "");
                            v = LLVMBuildFAdd(g->b, LLVMBuildLoad2(g->b, g->f32, acc[mt][nt][e], ""),
                                              LLVMBuildFMul(g->b, dsc[h], inner, ""), "");
                        }
                        LLVMBuildStore(g->b, v, acc[mt][nt][e]);
                    }
                }
            }
        }
        LLVMBuildStore(g->b, LLVMBuildAdd(g->b, c, i64c(g, 1), ""), cvar);
        LLVMBuildBr(g->b, chead);
    }

    /* epilogue: each lane stores its 4 elements of each tile */
    LLVMPositionBuilderAtEnd(g->b, cexit);
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int nt = 0; nt < MMA_NT; nt++)
            for (int e = 0; e < 4; e++) {
                LLVMValueRef r = LLVMBuildAdd(g->b, m0, LLVMBuildAdd(g->b, gid64, i64c(g, 16 * mt + 8 * (e >> 1)), ""), "");
                LLVMValueRef n = LLVMBuildAdd(g->b, n0, LLVMBuildAdd(g->b, LLVMBuildShl(g->b, t64, i64c(g, 1), ""),
                                                                       i64c(g, 8 * nt + (e & 1)), ""), "");
                LLVMValueRef ok = LLVMBuildAnd(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->m, ""),
                                               LLVMBuildICmp(g->b, LLVMIntSLT, n, ne, ""), "");
                store_if(g, ok, LLVMBuildLoad2(g->b, g->f32, acc[mt][nt][e], ""), r, n);
            }
    LLVMBuildBr(g->b, done);
    LLVMPositionBuilderAtEnd(g->b, done);
}

/* ------------------------------------------------------------ kernel */

static void emit_kernel(pg *g, LLVMValueRef n)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef lane = LLVMBuildZExt(g->b, LLVMBuildAnd(g->b, sreg(g, "tid.x"), i32c(g, 31), ""), g->i64, "");
    LLVMValueRef row = gep8(g, g->w, LLVMBuildMul(g->b, n, i64c(g, (int64_t)L->row_bytes), ""));
    LLVMValueRef mvar = entry_alloca(g, g->i64), cvar = entry_alloca(g, g->i64), acc[8];
    LLVMBasicBlockRef mhead = block(g, "m.head"), mbody = block(g, "m.body"), chead = block(g, "c.head");
    LLVMBasicBlockRef cbody = block(g, "c.body"), cexit = block(g, "c.exit"), store = block(g, "store");
    LLVMBasicBlockRef mnext = block(g, "m.next"), done = block(g, "done");
    LLVMValueRef arow[8], rix[8];
    for (int t = 0; t < g->TM; t++)
        acc[t] = entry_alloca(g, g->f32);
    LLVMBuildStore(g->b, i64c(g, 0), mvar);
    LLVMBuildBr(g->b, mhead);

    /* for (m0 = 0; m0 < m; m0 += TM) */
    LLVMPositionBuilderAtEnd(g->b, mhead);
    LLVMValueRef m0 = LLVMBuildLoad2(g->b, g->i64, mvar, "m0");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, m0, g->m, ""), mbody, done);
    LLVMPositionBuilderAtEnd(g->b, mbody);
    for (int t = 0; t < g->TM; t++) {
        /* rows past m read row m−1 (valid memory) and are not stored */
        LLVMValueRef r = LLVMBuildAdd(g->b, m0, i64c(g, t), "");
        LLVMValueRef last = LLVMBuildSub(g->b, g->m, i64c(g, 1), "");
        r = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->m, ""), r, last, "");
        rix[t] = r;
        arow[t] = LLVMBuildMul(g->b, r, g->lda, "");
        LLVMBuildStore(g->b, f32c(g, 0.0), acc[t]);
    }
    LLVMBuildStore(g->b, lane, cvar);
    LLVMBuildBr(g->b, chead);

    /* for (c = lane; c < chunks_per_row; c += 32) */
    LLVMPositionBuilderAtEnd(g->b, chead);
    LLVMValueRef ci = LLVMBuildLoad2(g->b, g->i64, cvar, "c");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ci, i64c(g, L->chunks_per_row), ""), cbody, cexit);
    LLVMPositionBuilderAtEnd(g->b, cbody);
    {
        LLVMValueRef rec = gep8(g, row, LLVMBuildMul(g->b, ci, i64c(g, L->chunk_bytes), ""));
        LLVMValueRef s, mn, z, sum[8];
        LLVMValueRef k0 = LLVMBuildMul(g->b, ci, i64c(g, g->C), "");
        load_record(g, rec);
        if (g->int8) {
            gemv_int8_record(g, ci, k0, rix, acc);
        } else {
            record_fields(g, &s, &mn, &z);
            for (int t = 0; t < g->TM; t++)
                sum[t] = LLVMBuildLoad2(g->b, g->f32, acc[t], "");
            for (int q = 0; q < g->C / 4; q++) {
                LLVMValueRef x[4], av[8];
                for (int j = 0; j < 4; j++)
                    x[j] = element(g, 4 * q + j, s, mn, z);
                for (int t = 0; t < g->TM; t++) {
                    LLVMValueRef idx = LLVMBuildAdd(g->b, LLVMBuildAdd(g->b, arow[t], k0, ""), i64c(g, 4 * q), "");
                    av[t] = load_ro(g, g->v4f, LLVMBuildGEP2(g->b, g->f32, g->a, &idx, 1, ""), 16);
                }
                for (int j = 0; j < 4; j++)
                    for (int t = 0; t < g->TM; t++) {
                        LLVMValueRef fa[3] = {LLVMBuildExtractElement(g->b, av[t], i32c(g, j), ""), x[j], sum[t]};
                        LLVMTypeRef ft[3] = {g->f32, g->f32, g->f32};
                        sum[t] = call(g, "llvm.fma.f32", g->f32, ft, 3, fa);
                    }
            }
            for (int t = 0; t < g->TM; t++)
                LLVMBuildStore(g->b, sum[t], acc[t]);
        }
        LLVMBuildStore(g->b, LLVMBuildAdd(g->b, ci, i64c(g, 32), ""), cvar);
        LLVMBuildBr(g->b, chead);
    }

    /* reduce across the warp; lane 0 stores */
    LLVMPositionBuilderAtEnd(g->b, cexit);
    {
        LLVMValueRef tot[8];
        for (int t = 0; t < g->TM; t++)
            tot[t] = warp_sum(g, LLVMBuildLoad2(g->b, g->f32, acc[t], ""));
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, lane, i64c(g, 0), ""), store, mnext);
        LLVMPositionBuilderAtEnd(g->b, store);
        for (int t = 0; t < g->TM; t++) {
            LLVMValueRef r = LLVMBuildAdd(g->b, m0, i64c(g, t), "");
            store_if(g, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->m, ""), tot[t], r, n);
        }
        LLVMBuildBr(g->b, mnext);
    }
    LLVMPositionBuilderAtEnd(g->b, mnext);
    LLVMBuildStore(g->b, LLVMBuildAdd(g->b, m0, i64c(g, g->TM), ""), mvar);
    LLVMBuildBr(g->b, mhead);
    LLVMPositionBuilderAtEnd(g->b, done);
}

qkc_status qkc_lower_ptx(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                         const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag)
{
    pg g;
    LLVMTypeRef fields[QKC_KARG_COUNT], st;
    memset(&g, 0, sizeof g);
    g.ctx = ctx, g.mm = mm, g.L = L;
    g.C = L->chunk;
    g.TM = s->tile_m < 1 ? 1 : s->tile_m > 8 ? 8 : s->tile_m;
    g.lw = qkc_lower_ptx_load_bytes(L);
    g.ub = g.lw < 4 ? g.lw : 4;
    g.int8 = qkc_lower_ptx_int8(mm, L);
    g.mma_k = qkc_lower_ptx_mma(mm, L) ? mma_k(mm->compute) : 0;
    if (L->mixed)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "w=mixed: GPU (nvptx) kernels do not take mixed row blocks yet; compile for a CPU target");
    if (mm->lora_rank || mm->ascale != QKC_ASCALE_DYNAMIC)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "GPU kernels: %s is not supported on nvptx targets yet (compile for the CPU)",
                            mm->lora_rank ? "the LoRA side path (lora=)" : "ascale=static");
    if (L->outliers)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "GPU kernels: sparse weight outliers (outliers=sparse) are not supported yet; CPU "
                            "targets add them in the kernel");
    if (L->chunk_bytes / g.ub > MAX_UNITS || g.C % 4)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED, "GPU kernels: chunk records of %d bytes are not supported",
                            L->chunk_bytes);
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
    g.ptr = LLVMPointerTypeInContext(ctx, 0);
    g.gptr = LLVMPointerTypeInContext(ctx, 1); /* global memory */
    g.v4f = LLVMVectorType(g.f32, 4);
    g.invariant_kind = LLVMGetMDKindIDInContext(ctx, "invariant.load", 14);

    /* every field 8 bytes (lora_t, lora_b, unused here, as i64; lora_scale
     * with its padding as i64): the size is sizeof(qkc_kernel_args) */
    for (int i = 0; i < QKC_KARG_COUNT; i++)
        fields[i] = i <= QKC_KARG_C ? g.ptr : g.i64; /* o_cols, o_vals: unused, pointer-sized */
    st = LLVMStructTypeInContext(ctx, fields, QKC_KARG_COUNT, 0);
    {
        LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), &g.ptr, 1, 0);
        LLVMValueRef args, n, nb, ne;
        LLVMBasicBlockRef body, exit;
        g.fn = LLVMAddFunction(g.mod, name, fty);
        LLVMSetFunctionCallConv(g.fn, LLVMPTXKernelCallConv);
        LLVMAddAttributeAtIndex(g.fn, 1, LLVMCreateTypeAttribute(ctx, LLVMGetEnumAttributeKindForName("byval", 5), st));
        LLVMAddAttributeAtIndex(g.fn, 1, LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName("align", 5), 8));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "target-cpu", 10, t->cpu, (unsigned)strlen(t->cpu)));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, "target-features", 15, t->llvm_features,
                                                          (unsigned)strlen(t->llvm_features)));
        LLVMAddAttributeAtIndex(g.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
        LLVMPositionBuilderAtEnd(g.b, LLVMAppendBasicBlockInContext(ctx, g.fn, "entry"));
        args = LLVMGetParam(g.fn, 0);
#define ARG(field, ty)                                                                                             \
    load_al(&g, ty, LLVMBuildStructGEP2(g.b, st, args, field, ""), 8)
        /* device pointers are global addresses: ld.global / st.global */
        g.a = LLVMBuildAddrSpaceCast(g.b, ARG(QKC_KARG_A, g.ptr), g.gptr, "a");
        g.w = LLVMBuildAddrSpaceCast(g.b, ARG(QKC_KARG_W, g.ptr), g.gptr, "w");
        g.bias = LLVMBuildAddrSpaceCast(g.b, ARG(QKC_KARG_BIAS, g.ptr), g.gptr, "bias");
        g.c = LLVMBuildAddrSpaceCast(g.b, ARG(QKC_KARG_C, g.ptr), g.gptr, "c");
        g.lda = ARG(QKC_KARG_LDA, g.i64);
        g.ldc = ARG(QKC_KARG_LDC, g.i64);
        g.m = ARG(QKC_KARG_M, g.i64);
        nb = ARG(QKC_KARG_N_BEGIN, g.i64);
        ne = ARG(QKC_KARG_N_END, g.i64);
#undef ARG
        if (L->decode == QKC_KDEC_TABLE) {
            LLVMValueRef e[16];
            for (int i = 0; i < 16; i++)
                e[i] = f32c(&g, L->table[i]);
            g.table = LLVMAddGlobalInAddressSpace(g.mod, LLVMArrayType(g.f32, 16), "qkc_table", 4);
            LLVMSetInitializer(g.table, LLVMConstArray(g.f32, e, 16));
            LLVMSetGlobalConstant(g.table, 1);
            LLVMSetLinkage(g.table, LLVMInternalLinkage);
            LLVMSetAlignment(g.table, 16);
        }
        {
            /* warp index in the grid; the shape by m (ir/kernel_abi.h) */
            LLVMValueRef wpb = LLVMBuildLShr(g.b, sreg(&g, "ntid.x"), i32c(&g, 5), "");
            LLVMValueRef wg = LLVMBuildAdd(g.b, LLVMBuildMul(g.b, sreg(&g, "ctaid.x"), wpb, ""),
                                           LLVMBuildLShr(g.b, sreg(&g, "tid.x"), i32c(&g, 5), ""), "");
            wg = LLVMBuildZExt(g.b, wg, g.i64, "wg");
            exit = LLVMAppendBasicBlockInContext(ctx, g.fn, "exit");
            if (g.mma_k) {
                LLVMBasicBlockRef tc = LLVMAppendBasicBlockInContext(ctx, g.fn, "tensor.cores");
                LLVMBasicBlockRef gemv = LLVMAppendBasicBlockInContext(ctx, g.fn, "gemv");
                LLVMBuildCondBr(g.b, LLVMBuildICmp(g.b, LLVMIntSGE, g.m, i64c(&g, QKC_GPU_MMA_MIN_M), ""), tc, gemv);
                LLVMPositionBuilderAtEnd(g.b, tc);
                emit_mma(&g, wg, nb, ne);
                LLVMBuildBr(g.b, exit);
                LLVMPositionBuilderAtEnd(g.b, gemv);
            }
            n = LLVMBuildAdd(g.b, nb, wg, "n");
        }
        body = LLVMAppendBasicBlockInContext(ctx, g.fn, "body");
        LLVMBuildCondBr(g.b, LLVMBuildICmp(g.b, LLVMIntSLT, n, ne, ""), body, exit);
        LLVMPositionBuilderAtEnd(g.b, body);
        emit_kernel(&g, n);
        LLVMBuildBr(g.b, exit);
        LLVMPositionBuilderAtEnd(g.b, exit);
        LLVMBuildRetVoid(g.b);
    }
    LLVMDisposeBuilder(g.b);
    {
        qkc_status status = qkc_llvm_verify(g.mod, diag);
        if (status) {
            LLVMDisposeModule(g.mod);
            return status;
        }
    }
    *out = g.mod;
    return QKC_OK;
}
