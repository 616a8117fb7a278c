/*
 * Lowering for NVIDIA GPUs: one verified matmul + its kernel layout + an
 * NVPTX target (targets/nvptx.c) + a complete schedule -> an LLVM module
 * holding one PTX `.entry` kernel with the GPU ABI of ir/kernel_abi.h
 * (qkc_kernel_args by value; grid and block rules there). The module is
 * verified before it is returned. codegen/lower.c is the CPU counterpart;
 * the JIT picks one by the target's arch.
 */
#ifndef QKC_CODEGEN_LOWER_PTX_H
#define QKC_CODEGEN_LOWER_PTX_H

#include <llvm-c/Core.h>

#include "ir/diag.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "targets/target.h"

qkc_status qkc_lower_ptx(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                         const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag);

/* Does this spec's GPU kernel take int8 codes of A (compute=int8, weights
 * with integer codes in 32-element records; dp4a and the s8 tensor-core
 * path)? Then qkc_kernel_prepare_a writes the int8 row layout of
 * ir/kernel_abi.h. */
int qkc_lower_ptx_int8(const qkc_matmul *mm, const qkc_klayout *L);

/* Does this spec's GPU kernel have the tensor-core (mma.sync) path for
 * m >= QKC_GPU_MMA_MIN_M (compute f16, bf16, tf32, or int8 as above)? */
int qkc_lower_ptx_mma(const qkc_matmul *mm, const qkc_klayout *L);

/* The widest load (16, 8, 4, 2 or 1 bytes) a lane uses for a chunk
 * record of layout L: every record starts at a multiple of it, given
 * weights that start 16-byte aligned (the GPU ABI requires that). */
int qkc_lower_ptx_load_bytes(const qkc_klayout *L);

#endif
