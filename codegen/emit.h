/*
 * Emission helpers every lowering shares: the CPU lowering (lower.c and
 * its parts), the GPU lowering (lower_ptx.c) and the ISA files (isa_*.c).
 * An emission context holds the module being built, its builder and the
 * scalar types. The helpers build constants, addresses, loads and calls,
 * the kernel function and its argument struct (ir/kernel_args.def), and
 * every conversion whose rounding the reference fixes: fp8 and e8m0
 * decoding, rounding to the compute type (bf16 in one place), the output
 * store, the activations. Where a helper takes a value it may be a scalar
 * or a vector; its constants take the value's shape.
 */
#ifndef QKC_CODEGEN_EMIT_H
#define QKC_CODEGEN_EMIT_H

#include <stdint.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "ir/dtype.h"
#include "ir/spec.h"
#include "targets/target.h"

struct qkc_isa;

typedef struct qkc_emit {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn; /* the kernel (qkc_emit_kernel) */
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, f64, ptr;
} qkc_emit;

/* A new module `name` for target t (its triple), a builder and the types.
 * The caller disposes of E->b, and of E->mod unless it returns it. */
void qkc_emit_init(qkc_emit *E, LLVMContextRef ctx, const char *name, const qkc_target *t);

/* The kernel E->fn: `void name(ptr args)` with t's CPU and features,
 * nounwind; the builder at the end of its entry block. */
void qkc_emit_kernel(qkc_emit *E, const char *name, const qkc_target *t);

/* The LLVM struct of qkc_kernel_args (ir/kernel_args.def: each field's
 * kind gives its type), and field QKC_KARG_* of the struct at `args`,
 * loaded at the field's alignment. */
LLVMTypeRef qkc_emit_kernel_args_type(const qkc_emit *E);
LLVMValueRef qkc_emit_kernel_arg(qkc_emit *E, LLVMTypeRef args_type, LLVMValueRef args, int field);

/* ------------------------------------------------------ small builders */

static inline LLVMValueRef i32c(const qkc_emit *E, int64_t v)
{
    return LLVMConstInt(E->i32, (unsigned long long)v, 1);
}

static inline LLVMValueRef i64c(const qkc_emit *E, int64_t v)
{
    return LLVMConstInt(E->i64, (unsigned long long)v, 1);
}

static inline LLVMValueRef f32c(const qkc_emit *E, double v)
{
    return LLVMConstReal(E->f32, v);
}

/* <n x i8> of the bytes v[0..n) (n ≤ 64). */
static inline LLVMValueRef cbytes(const qkc_emit *E, const uint8_t *v, int n)
{
    LLVMValueRef e[64];
    for (int i = 0; i < n; i++)
        e[i] = LLVMConstInt(E->i8, v[i], 0);
    return LLVMConstVector(e, (unsigned)n);
}

/* base + off bytes */
static inline LLVMValueRef gep8(qkc_emit *E, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildGEP2(E->b, E->i8, base, &off, 1, "");
}

static inline LLVMValueRef load(qkc_emit *E, LLVMTypeRef ty, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(E->b, ty, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static inline LLVMBasicBlockRef block(qkc_emit *E, const char *name)
{
    return LLVMAppendBasicBlockInContext(E->ctx, E->fn, name);
}

/* A vector of `lanes` copies of scalar. */
static inline LLVMValueRef splat(qkc_emit *E, LLVMValueRef scalar, int lanes)
{
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), (unsigned)lanes);
    LLVMValueRef undef = LLVMGetUndef(vt);
    LLVMValueRef ins = LLVMBuildInsertElement(E->b, undef, scalar, i32c(E, 0), "");
    LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(E->i32, (unsigned)lanes));
    return LLVMBuildShuffleVector(E->b, ins, undef, zeros, "");
}

/* A call of the LLVM intrinsic `name` overloaded on ov[0..nov). */
static inline LLVMValueRef intrinsic(qkc_emit *E, const char *name, LLVMTypeRef *ov, unsigned nov, LLVMValueRef *args,
                                     unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(E->mod, id, ov, nov);
    LLVMTypeRef ft = LLVMIntrinsicGetType(E->ctx, id, ov, nov);
    return LLVMBuildCall2(E->b, ft, f, args, nargs, "");
}

/* A call of the function `name` of type ret(params), declared on first use. */
static inline LLVMValueRef call(qkc_emit *E, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned np,
                                LLVMValueRef *args)
{
    LLVMTypeRef ft = LLVMFunctionType(ret, params, np, 0);
    LLVMValueRef f = LLVMGetNamedFunction(E->mod, name);
    if (!f)
        f = LLVMAddFunction(E->mod, name, ft);
    return LLVMBuildCall2(E->b, ft, f, args, np, "");
}

/* a·b + c, rounded once (llvm.fma), scalars or vectors. */
static inline LLVMValueRef fma_v(qkc_emit *E, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = {a, b, c};
    LLVMTypeRef ty = LLVMTypeOf(a);
    return intrinsic(E, "llvm.fma", &ty, 1, args, 3);
}

/* ------------------------------------------------------------ helpers */

/* The integer (float) constant v in the shape of `like`: a scalar of its
 * type, or a vector of its lane type with v in every lane. */
LLVMValueRef qkc_emit_int_like(const qkc_emit *E, LLVMTypeRef like, int64_t v);
LLVMValueRef qkc_emit_float_like(const qkc_emit *E, LLVMTypeRef like, double v);

/* An alloca of ty in the kernel's entry block (so mem2reg and SROA
 * promote it), aligned to `align` bytes (0: the data layout's choice). */
LLVMValueRef qkc_emit_alloca(qkc_emit *E, LLVMTypeRef ty, unsigned align);

/* fp8 codes (i32 or <N x i32>, 0..255) to f32, exact, with the Inf and NaN
 * codes: E4M3 (e5m2 = 0) or E5M2. */
LLVMValueRef qkc_emit_fp8_to_f32(qkc_emit *E, LLVMValueRef code, int e5m2);

/* An e8m0 exponent byte e (i32 or <N x i32>, 0..255) as f32 (or <N x
 * float>): 2^(e−127), or
 * 2^(e−128) with `half` (e = 0, and e = 1 with half, are f32
 * subnormals); e = 255 a NaN with `ff_is_nan`. */
LLVMValueRef qkc_emit_e8m0_to_f32(qkc_emit *E, LLVMValueRef e, int half, int ff_is_nan);

/* The bits u (of an f32, i32 or <N x i32>) rounded to nearest even at bit
 * `drop`: u + (2^(drop−1) − 1) + bit `drop` of u; the caller masks or
 * shifts the low bits away (bf16: drop 16, tf32: drop 13). */
LLVMValueRef qkc_emit_round_bits(qkc_emit *E, LLVMValueRef u, int drop);

/* f32 values (scalar or vector) rounded to the compute type, to nearest
 * even, as the reference; NaN and (tf32) Inf unchanged. */
LLVMValueRef qkc_emit_round_compute(qkc_emit *E, qkc_compute compute, LLVMValueRef x);

/* The activation of one f32 value, as the reference: relu; gelu and silu
 * in double through libm (erf, exp), or, on an ISA with a fast exp2 and
 * no libm (isa->exp2), in f32 (silu with e^x = 2^(x·log2 e); erf by
 * Abramowitz and Stegun 7.1.26, |error| < 1.5e-7). */
LLVMValueRef qkc_emit_activation(qkc_emit *E, qkc_act act, LLVMValueRef x, const struct qkc_isa *isa);

/* Store f32 `v` at element m·ldc + n of `c` as `out`: f32 as is, f16 by
 * conversion (RNE), bf16 by round to nearest even on the bits, a NaN
 * keeping sign and payload top with the quiet bit set (the reference's
 * rule). */
void qkc_emit_store_out(qkc_emit *E, qkc_dtype out, LLVMValueRef v, LLVMValueRef c, LLVMValueRef ldc, LLVMValueRef m,
                        LLVMValueRef n);

/* Σ of the lanes of an f32 vector, in any order (llvm.vector.reduce.fadd
 * with reassoc): the CPU families' lane_sum (isa.h). */
LLVMValueRef qkc_emit_vector_sum(qkc_emit *E, LLVMValueRef v);

#endif
