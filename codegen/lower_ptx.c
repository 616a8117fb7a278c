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

#include "codegen/kernel_abi.h"
#include "codegen/llvm_compat.h"
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

/* Element i of the loaded record, dequantized (and rounded to the compute
 * type). s, mn, z: the record's scale, minimum and zero (or NULL). */
static LLVMValueRef element(pg *g, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z)
{
    const qkc_klayout *L = g->L;
    LLVMValueRef code, x;
    switch (L->code_bits) {
    case 4: {
        int h = g->C / 2;
        code = field_bits(g, L->code_off + i % h, 8);
        code = i < h ? LLVMBuildAnd(g->b, code, i32c(g, 15), "") : LLVMBuildLShr(g->b, code, i32c(g, 4), "");
        break;
    }
    case 8: code = field_bits(g, L->code_off + i, 8); break;
    case 16: code = field_bits(g, L->code_off + 2 * (L->decode == QKC_KDEC_VQ ? i / L->vq_dim : i), 16); break;
    default: code = field_bits(g, L->code_off + 4 * i, 32); break;
    }
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
    LLVMValueRef arow[8];
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
        LLVMValueRef s = NULL, mn = NULL, z = NULL, sum[8];
        LLVMValueRef k0 = LLVMBuildMul(g->b, ci, i64c(g, g->C), "");
        load_record(g, rec);
        if (L->scale != QKC_KF_NONE)
            s = field_f32(g, L->scale, L->scale_off);
        if (L->min != QKC_KF_NONE)
            mn = field_f32(g, L->min, L->min_off);
        if (L->zero != QKC_KF_NONE)
            z = field_f32(g, L->zero, L->zero_off);
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
            LLVMValueRef r = LLVMBuildAdd(g->b, m0, i64c(g, t), ""), v = tot[t];
            LLVMBasicBlockRef st = block(g, "store.row"), next = block(g, "store.next");
            LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, r, g->m, ""), st, next);
            LLVMPositionBuilderAtEnd(g->b, st);
            if (g->mm->bias == QKC_BIAS_F32)
                v = LLVMBuildFAdd(g->b, v, load_ro(g, g->f32, LLVMBuildGEP2(g->b, g->f32, g->bias, &n, 1, ""), 4), "");
            store_out(g, activation(g, v), r, n);
            LLVMBuildBr(g->b, next);
            LLVMPositionBuilderAtEnd(g->b, next);
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
            /* warp index in the grid */
            LLVMValueRef wpb = LLVMBuildLShr(g.b, sreg(&g, "ntid.x"), i32c(&g, 5), "");
            LLVMValueRef wg = LLVMBuildAdd(g.b, LLVMBuildMul(g.b, sreg(&g, "ctaid.x"), wpb, ""),
                                           LLVMBuildLShr(g.b, sreg(&g, "tid.x"), i32c(&g, 5), ""), "");
            n = LLVMBuildAdd(g.b, nb, LLVMBuildZExt(g.b, wg, g.i64, ""), "n");
        }
        body = LLVMAppendBasicBlockInContext(ctx, g.fn, "body");
        exit = LLVMAppendBasicBlockInContext(ctx, g.fn, "exit");
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
