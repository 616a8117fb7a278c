/*
 * The NVPTX family's hooks (isa.h): NVIDIA GPUs (targets/nvptx.c), for the
 * GPU lowering (lower_ptx.c).
 *
 * ISA assumptions: sm_80 and later, PTX 7.8. A warp is 32 lanes; sums
 * across it are shfl.sync butterflies, a lane reads another's value with
 * shfl.sync.idx. int8 dot products of four bytes are dp4a; the tensor
 * cores are mma.sync m16n8k16 (f16, bf16), m16n8k8 (tf32) and m16n8k32
 * (s8) with f32 (s32) accumulators. Kernels have no libm: ex2.approx is
 * the exp2 of the f32 gelu and silu (emit.h). The schedule checks and the
 * tuner see a 256-bit target (targets/nvptx.c); GPU kernels read only
 * tile_m of a schedule.
 */
#include <stdio.h>

#include "codegen/isa.h"
#include "codegen/lower_ptx.h"

static int nvptx_registers(const qkc_target *t)
{
    (void)t;
    return 32;
}

static int nvptx_takes_int8(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    (void)t;
    return qkc_lower_ptx_int8(mm, L);
}

static LLVMValueRef nvptx_exp2(qkc_emit *E, LLVMValueRef x)
{
    return call(E, "llvm.nvvm.ex2.approx.f", E->f32, &E->f32, 1, &x);
}

/* Butterfly: every lane ends with the warp's sum. */
static LLVMValueRef nvptx_lane_sum(qkc_emit *E, LLVMValueRef v)
{
    LLVMTypeRef pt[4];
    pt[0] = E->i32, pt[1] = E->f32, pt[2] = E->i32, pt[3] = E->i32;
    for (int off = 16; off >= 1; off /= 2) {
        LLVMValueRef args[4] = {i32c(E, -1), v, i32c(E, off), i32c(E, 31)};
        v = LLVMBuildFAdd(E->b, v, call(E, "llvm.nvvm.shfl.sync.bfly.f32", E->f32, pt, 4, args), "");
    }
    return v;
}

static LLVMValueRef nvptx_thread_register(qkc_emit *E, const char *name)
{
    char full[64];
    snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
    return call(E, full, E->i32, NULL, 0, NULL);
}

static LLVMValueRef nvptx_lane_read(qkc_emit *E, LLVMValueRef v, LLVMValueRef src)
{
    LLVMTypeRef pt[4] = {E->i32, E->f32, E->i32, E->i32};
    LLVMValueRef args[4] = {i32c(E, -1), v, src, i32c(E, 31)};
    return call(E, "llvm.nvvm.shfl.sync.idx.f32", E->f32, pt, 4, args);
}

/* dp4a.s32.s32 */
static LLVMValueRef nvptx_dot4_s8(qkc_emit *E, LLVMValueRef x, LLVMValueRef y, LLVMValueRef acc)
{
    static const char text[] = "dp4a.s32.s32 $0, $1, $2, $3;", cons[] = "=r,r,r,r";
    LLVMTypeRef pt[3] = {E->i32, E->i32, E->i32};
    LLVMTypeRef ft = LLVMFunctionType(E->i32, pt, 3, 0);
    LLVMValueRef fn = LLVMGetInlineAsm(ft, text, sizeof text - 1, cons, sizeof cons - 1, 0, 0, LLVMInlineAsmDialectATT, 0);
    LLVMValueRef args[3] = {x, y, acc};
    return LLVMBuildCall2(E->b, ft, fn, args, 3, "");
}

static int nvptx_mma_k(qkc_compute compute)
{
    switch (compute) {
    case QKC_COMPUTE_F16:
    case QKC_COMPUTE_BF16: return 16;
    case QKC_COMPUTE_TF32: return 8;
    case QKC_COMPUTE_INT8: return 32;
    default: return 0; /* f32: FMA, exact f32 products */
    }
}

/* mma.sync: operands <2 x half> for f16, else 32-bit registers. */
static void nvptx_mma(qkc_emit *E, qkc_compute compute, LLVMValueRef a[4], LLVMValueRef b[2], LLVMValueRef c[4],
                      LLVMValueRef d[4])
{
    const char *name;
    LLVMTypeRef op = compute == QKC_COMPUTE_F16 ? LLVMVectorType(E->f16, 2) : E->i32;
    LLVMTypeRef acc = compute == QKC_COMPUTE_INT8 ? E->i32 : E->f32, pt[10], et[4], rt;
    LLVMValueRef args[10], r;
    switch (compute) {
    case QKC_COMPUTE_F16: name = "llvm.nvvm.mma.m16n8k16.row.col.f32.f32"; break;
    case QKC_COMPUTE_BF16: name = "llvm.nvvm.mma.m16n8k16.row.col.bf16"; break;
    case QKC_COMPUTE_TF32: name = "llvm.nvvm.mma.m16n8k8.row.col.tf32"; break;
    default: name = "llvm.nvvm.mma.m16n8k32.row.col.s8"; break;
    }
    for (int i = 0; i < 4; i++)
        pt[i] = op, args[i] = a[i], pt[6 + i] = acc, args[6 + i] = c[i], et[i] = acc;
    pt[4] = pt[5] = op, args[4] = b[0], args[5] = b[1];
    rt = LLVMStructTypeInContext(E->ctx, et, 4, 0);
    r = call(E, name, rt, pt, 10, args);
    for (int i = 0; i < 4; i++)
        d[i] = LLVMBuildExtractValue(E->b, r, (unsigned)i, "");
}

const qkc_isa qkc_isa_nvptx = {
    .name = "nvptx",
    .arch = QKC_ARCH_NVPTX,
    .gpu = 1,
    .vector_widths = {256, 512, 0},
    .vector_widths_text = "256 or 512",
    .vector_registers = nvptx_registers,
    .lower = qkc_lower_ptx,
    .takes_int8 = nvptx_takes_int8,
    .lane_sum = nvptx_lane_sum,
    .exp2 = nvptx_exp2,
    .thread_register = nvptx_thread_register,
    .lane_read = nvptx_lane_read,
    .dot4_s8 = nvptx_dot4_s8,
    .mma_k = nvptx_mma_k,
    .mma = nvptx_mma,
};
