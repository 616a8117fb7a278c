/* Emission helpers shared by the lowerings and the ISA files (see emit.h). */
#include "codegen/emit.h"

#include <math.h>

#include "codegen/isa.h"
#include "ir/kernel_abi.h"

void qkc_emit_init(qkc_emit *E, LLVMContextRef ctx, const char *name, const qkc_target *t)
{
    memset(E, 0, sizeof *E);
    E->ctx = ctx;
    E->mod = LLVMModuleCreateWithNameInContext(name, ctx);
    LLVMSetTarget(E->mod, t->triple);
    E->b = LLVMCreateBuilderInContext(ctx);
    E->i1 = LLVMInt1TypeInContext(ctx);
    E->i8 = LLVMInt8TypeInContext(ctx);
    E->i16 = LLVMInt16TypeInContext(ctx);
    E->i32 = LLVMInt32TypeInContext(ctx);
    E->i64 = LLVMInt64TypeInContext(ctx);
    E->f16 = LLVMHalfTypeInContext(ctx);
    E->f32 = LLVMFloatTypeInContext(ctx);
    E->f64 = LLVMDoubleTypeInContext(ctx);
    E->ptr = LLVMPointerTypeInContext(ctx, 0);
}

static void string_attribute(qkc_emit *E, const char *key, const char *value)
{
    LLVMAddAttributeAtIndex(E->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(E->ctx, key, (unsigned)strlen(key), value,
                                                      (unsigned)strlen(value)));
}

void qkc_emit_kernel(qkc_emit *E, const char *name, const qkc_target *t)
{
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(E->ctx), &E->ptr, 1, 0);
    E->fn = LLVMAddFunction(E->mod, name, fty);
    string_attribute(E, "target-cpu", t->cpu);
    string_attribute(E, "target-features", t->llvm_features);
    LLVMAddAttributeAtIndex(E->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(E->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(E->ctx, E->fn, "entry"));
}

/* ------------------------------------------------------ kernel arguments */

enum { KIND_PTR, KIND_I64, KIND_F32 };

static const struct {
    int kind;
    unsigned align;
} karg_fields[QKC_KARG_COUNT] = {
#define QKC_KARG(NAME, field, c_type, kind, comment) {KIND_##kind, QKC_ABI_ALIGN_##kind},
#include "ir/kernel_args.def"
#undef QKC_KARG
};

static LLVMTypeRef karg_type(const qkc_emit *E, int field)
{
    switch (karg_fields[field].kind) {
    case KIND_PTR: return E->ptr;
    case KIND_I64: return E->i64;
    default: return E->f32;
    }
}

LLVMTypeRef qkc_emit_kernel_args_type(const qkc_emit *E)
{
    LLVMTypeRef f[QKC_KARG_COUNT];
    for (int i = 0; i < QKC_KARG_COUNT; i++)
        f[i] = karg_type(E, i);
    return LLVMStructTypeInContext(E->ctx, f, QKC_KARG_COUNT, 0);
}

LLVMValueRef qkc_emit_kernel_arg(qkc_emit *E, LLVMTypeRef args_type, LLVMValueRef args, int field)
{
    LLVMValueRef p = LLVMBuildStructGEP2(E->b, args_type, args, (unsigned)field, "");
    return load(E, karg_type(E, field), p, karg_fields[field].align);
}

/* -------------------------------------------------------------- helpers */

LLVMValueRef qkc_emit_int_like(const qkc_emit *E, LLVMTypeRef like, int64_t v)
{
    LLVMValueRef e[64];
    unsigned n;
    (void)E;
    if (LLVMGetTypeKind(like) != LLVMVectorTypeKind)
        return LLVMConstInt(like, (unsigned long long)v, 1);
    n = LLVMGetVectorSize(like);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstInt(LLVMGetElementType(like), (unsigned long long)v, 1);
    return LLVMConstVector(e, n);
}

LLVMValueRef qkc_emit_float_like(const qkc_emit *E, LLVMTypeRef like, double v)
{
    LLVMValueRef e[64];
    unsigned n;
    (void)E;
    if (LLVMGetTypeKind(like) != LLVMVectorTypeKind)
        return LLVMConstReal(like, v);
    n = LLVMGetVectorSize(like);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstReal(LLVMGetElementType(like), v);
    return LLVMConstVector(e, n);
}

/* f32 or <N x float>, i32 or <N x i32>, half or <N x half> of ty's shape */
static LLVMTypeRef shaped(LLVMTypeRef like, LLVMTypeRef scalar)
{
    return LLVMGetTypeKind(like) == LLVMVectorTypeKind ? LLVMVectorType(scalar, LLVMGetVectorSize(like)) : scalar;
}

LLVMValueRef qkc_emit_alloca(qkc_emit *E, LLVMTypeRef ty, unsigned align)
{
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(E->b);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(E->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    LLVMValueRef a;
    if (first)
        LLVMPositionBuilderBefore(E->b, first);
    else
        LLVMPositionBuilderAtEnd(E->b, entry);
    a = LLVMBuildAlloca(E->b, ty, "");
    if (align)
        LLVMSetAlignment(a, align);
    LLVMPositionBuilderAtEnd(E->b, cur);
    return a;
}

LLVMValueRef qkc_emit_fp8_to_f32(qkc_emit *E, LLVMValueRef code, int e5m2)
{
    LLVMTypeRef it = LLVMTypeOf(code), ft = shaped(it, E->f32);
    LLVMValueRef sign = LLVMBuildShl(E->b, LLVMBuildAnd(E->b, code, qkc_emit_int_like(E, it, 0x80), ""),
                                     qkc_emit_int_like(E, it, 24), "");
    LLVMValueRef mag = LLVMBuildAnd(E->b, code, qkc_emit_int_like(E, it, 0x7F), "");
    /* Shift the exponent/mantissa into f32 position and rebias with one
     * exact multiply (subnormal codes land on f32 subnormals, also exact). */
    LLVMValueRef bits = LLVMBuildShl(E->b, mag, qkc_emit_int_like(E, it, e5m2 ? 21 : 20), "");
    LLVMValueRef v = LLVMBuildFMul(E->b, LLVMBuildBitCast(E->b, bits, ft, ""),
                                   qkc_emit_float_like(E, ft, e5m2 ? 0x1p112 : 0x1p120), "");
    if (e5m2) {
        LLVMValueRef special = LLVMBuildICmp(E->b, LLVMIntUGE, mag, qkc_emit_int_like(E, it, 0x7C), "");
        LLVMValueRef inf = LLVMBuildICmp(E->b, LLVMIntEQ, mag, qkc_emit_int_like(E, it, 0x7C), "");
        LLVMValueRef sp = LLVMBuildSelect(E->b, inf, qkc_emit_float_like(E, ft, INFINITY),
                                          qkc_emit_float_like(E, ft, NAN), "");
        v = LLVMBuildSelect(E->b, special, sp, v, "");
    } else {
        LLVMValueRef nan = LLVMBuildICmp(E->b, LLVMIntEQ, mag, qkc_emit_int_like(E, it, 0x7F), "");
        v = LLVMBuildSelect(E->b, nan, qkc_emit_float_like(E, ft, NAN), v, "");
    }
    return LLVMBuildBitCast(E->b, LLVMBuildOr(E->b, LLVMBuildBitCast(E->b, v, it, ""), sign, ""), ft, "");
}

LLVMValueRef qkc_emit_e8m0_to_f32(qkc_emit *E, LLVMValueRef e, int half, int ff_is_nan)
{
    LLVMTypeRef it = LLVMTypeOf(e), ft = E->f32;
    LLVMValueRef bits;
#define IC(v) qkc_emit_int_like(E, it, (v))
    if (LLVMGetTypeKind(it) == LLVMVectorTypeKind)
        ft = LLVMVectorType(E->f32, LLVMGetVectorSize(it));
    if (half) {
        LLVMValueRef normal = LLVMBuildShl(E->b, LLVMBuildSub(E->b, e, IC(1), ""), IC(23), "");
        LLVMValueRef sub = LLVMBuildShl(E->b, IC(0x00200000), e, "");
        bits = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntUGE, e, IC(2), ""), normal, sub, "");
    } else {
        LLVMValueRef normal = LLVMBuildShl(E->b, e, IC(23), "");
        bits = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntEQ, e, IC(0), ""), IC(0x00400000), normal, "");
        if (ff_is_nan)
            bits = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntEQ, e, IC(255), ""), IC(0x7FC00000), bits, "");
    }
#undef IC
    return LLVMBuildBitCast(E->b, bits, ft, "");
}

LLVMValueRef qkc_emit_round_bits(qkc_emit *E, LLVMValueRef u, int drop)
{
    LLVMTypeRef it = LLVMTypeOf(u);
    LLVMValueRef lsb = LLVMBuildAnd(E->b, LLVMBuildLShr(E->b, u, qkc_emit_int_like(E, it, drop), ""),
                                    qkc_emit_int_like(E, it, 1), "");
    return LLVMBuildAdd(E->b, u, LLVMBuildAdd(E->b, qkc_emit_int_like(E, it, (1 << (drop - 1)) - 1), lsb, ""), "");
}

LLVMValueRef qkc_emit_round_compute(qkc_emit *E, qkc_compute compute, LLVMValueRef x)
{
    LLVMTypeRef ft = LLVMTypeOf(x), it = shaped(ft, E->i32);
    LLVMValueRef u, r;
    switch (compute) {
    case QKC_COMPUTE_F16:
        return LLVMBuildFPExt(E->b, LLVMBuildFPTrunc(E->b, x, shaped(ft, E->f16), ""), ft, "");
    case QKC_COMPUTE_BF16:
        u = LLVMBuildBitCast(E->b, x, it, "");
        r = LLVMBuildAnd(E->b, qkc_emit_round_bits(E, u, 16), qkc_emit_int_like(E, it, (int32_t)0xFFFF0000u), "");
        return LLVMBuildSelect(E->b, LLVMBuildFCmp(E->b, LLVMRealUNO, x, x, ""), x, LLVMBuildBitCast(E->b, r, ft, ""),
                               "");
    case QKC_COMPUTE_TF32: {
        LLVMValueRef special;
        u = LLVMBuildBitCast(E->b, x, it, "");
        r = LLVMBuildAnd(E->b, qkc_emit_round_bits(E, u, 13), qkc_emit_int_like(E, it, (int32_t)0xFFFFE000u), "");
        special = LLVMBuildICmp(E->b, LLVMIntEQ, LLVMBuildAnd(E->b, u, qkc_emit_int_like(E, it, 0x7F800000), ""),
                                qkc_emit_int_like(E, it, 0x7F800000), "");
        return LLVMBuildSelect(E->b, special, x, LLVMBuildBitCast(E->b, r, ft, ""), "");
    }
    default: return x;
    }
}

/* gelu and silu in f32 with the ISA's fast exp2 (no libm on the device) */
static LLVMValueRef activation_f32(qkc_emit *E, qkc_act act, LLVMValueRef x, const qkc_isa *isa)
{
    LLVMValueRef one = f32c(E, 1.0);
    if (act == QKC_ACT_SILU) {
        LLVMValueRef e = isa->exp2(E, LLVMBuildFMul(E->b, LLVMBuildFNeg(E->b, x, ""), f32c(E, 1.4426950408889634), ""));
        return LLVMBuildFDiv(E->b, x, LLVMBuildFAdd(E->b, one, e, ""), "");
    }
    {
        /* erf(z), z = x/√2: 1 − (a1 t + … + a5 t^5) e^(−z²), t = 1/(1 + p|z|) */
        static const double a[5] = {0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429};
        LLVMValueRef z = LLVMBuildFMul(E->b, x, f32c(E, 0.7071067811865476), "");
        LLVMValueRef az = call(E, "llvm.fabs.f32", E->f32, &E->f32, 1, &z);
        LLVMValueRef t = LLVMBuildFDiv(
            E->b, one, LLVMBuildFAdd(E->b, one, LLVMBuildFMul(E->b, f32c(E, 0.3275911), az, ""), ""), "");
        LLVMValueRef p = f32c(E, a[4]), y, erf, ez;
        for (int i = 3; i >= 0; i--)
            p = LLVMBuildFAdd(E->b, LLVMBuildFMul(E->b, p, t, ""), f32c(E, a[i]), "");
        p = LLVMBuildFMul(E->b, p, t, "");
        ez = isa->exp2(E, LLVMBuildFMul(E->b, LLVMBuildFNeg(E->b, LLVMBuildFMul(E->b, az, az, ""), ""),
                                        f32c(E, 1.4426950408889634), ""));
        y = LLVMBuildFSub(E->b, one, LLVMBuildFMul(E->b, p, ez, ""), "");
        erf = LLVMBuildSelect(E->b, LLVMBuildFCmp(E->b, LLVMRealOLT, z, f32c(E, 0.0), ""), LLVMBuildFNeg(E->b, y, ""),
                              y, "");
        return LLVMBuildFMul(E->b, LLVMBuildFMul(E->b, f32c(E, 0.5), x, ""), LLVMBuildFAdd(E->b, one, erf, ""), "");
    }
}

LLVMValueRef qkc_emit_activation(qkc_emit *E, qkc_act act, LLVMValueRef x, const qkc_isa *isa)
{
    switch (act) {
    case QKC_ACT_RELU: {
        LLVMValueRef gt = LLVMBuildFCmp(E->b, LLVMRealOGT, x, f32c(E, 0.0), "");
        return LLVMBuildSelect(E->b, gt, x, f32c(E, 0.0), "");
    }
    case QKC_ACT_GELU:
    case QKC_ACT_SILU: {
        /* In double through libm, as the reference does. */
        const char *fname = act == QKC_ACT_GELU ? "erf" : "exp";
        LLVMValueRef d, r, arg;
        if (isa && isa->exp2)
            return activation_f32(E, act, x, isa);
        d = LLVMBuildFPExt(E->b, x, E->f64, "");
        if (act == QKC_ACT_GELU) {
            arg = LLVMBuildFDiv(E->b, d, LLVMConstReal(E->f64, 1.4142135623730951), "");
            r = call(E, fname, E->f64, &E->f64, 1, &arg);
            r = LLVMBuildFMul(E->b, LLVMBuildFMul(E->b, LLVMConstReal(E->f64, 0.5), d, ""),
                              LLVMBuildFAdd(E->b, LLVMConstReal(E->f64, 1.0), r, ""), "");
        } else {
            arg = LLVMBuildFNeg(E->b, d, "");
            r = call(E, fname, E->f64, &E->f64, 1, &arg);
            r = LLVMBuildFDiv(E->b, d, LLVMBuildFAdd(E->b, LLVMConstReal(E->f64, 1.0), r, ""), "");
        }
        return LLVMBuildFPTrunc(E->b, r, E->f32, "");
    }
    default: return x;
    }
}

void qkc_emit_store_out(qkc_emit *E, qkc_dtype out, LLVMValueRef v, LLVMValueRef c, LLVMValueRef ldc, LLVMValueRef m,
                        LLVMValueRef n)
{
    LLVMValueRef idx = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, m, ldc, ""), n, "");
    if (out == QKC_DTYPE_F32) {
        LLVMBuildStore(E->b, v, LLVMBuildGEP2(E->b, E->f32, c, &idx, 1, ""));
    } else if (out == QKC_DTYPE_F16) {
        LLVMBuildStore(E->b, LLVMBuildFPTrunc(E->b, v, E->f16, ""), LLVMBuildGEP2(E->b, E->f16, c, &idx, 1, ""));
    } else {
        LLVMValueRef u = LLVMBuildBitCast(E->b, v, E->i32, "");
        LLVMValueRef r = qkc_emit_round_bits(E, u, 16);
        LLVMValueRef nanv = LLVMBuildOr(E->b, u, i32c(E, 0x00400000), "");
        r = LLVMBuildSelect(E->b, LLVMBuildFCmp(E->b, LLVMRealUNO, v, v, ""), nanv, r, "");
        LLVMBuildStore(E->b, LLVMBuildTrunc(E->b, LLVMBuildLShr(E->b, r, i32c(E, 16), ""), E->i16, ""),
                       LLVMBuildGEP2(E->b, E->i16, c, &idx, 1, ""));
    }
}

LLVMValueRef qkc_emit_vector_sum(qkc_emit *E, LLVMValueRef v)
{
    LLVMValueRef args[2] = {f32c(E, 0.0), v}, sum;
    LLVMTypeRef ov = LLVMTypeOf(v);
    sum = intrinsic(E, "llvm.vector.reduce.fadd", &ov, 1, args, 2);
    LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc);
    return sum;
}
