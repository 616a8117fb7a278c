/*
 * A CPU emulator for qkc's GPU kernels, so that tests check every GPU
 * kernel against the reference on machines without a GPU.
 *
 * It takes a kernel's optimised NVPTX module (qkc_kernel_emit "bc": the IR
 * the PTX is generated from), retargets it to this CPU and runs it with
 * LLVM's JIT, one warp at a time: the 32 lanes are coroutines that run
 * until they reach a warp-collective operation (shfl.sync, mma.sync) and
 * are resumed when all 32 have. The NVVM intrinsics become calls into the
 * emulator: thread and block indices, shfl.sync.bfly/idx, ex2.approx,
 * dp4a (inline asm in the kernels) and the four mma.sync shapes qkc uses,
 * computed from the fragment layouts of the PTX ISA ("Matrix Fragments for
 * mma.m16n8k16 / m16n8k8 / m16n8k32"), independently of the kernel's own
 * indexing; tf32 operands lose their 13 low mantissa bits as on the tensor
 * cores. A lane that reaches a collective its warp's other lanes do not
 * (divergence) and an intrinsic it does not know are errors, not hangs; a
 * lane that runs off its stack hits a guard page.
 *
 * What this does not check: ptxas and the hardware themselves (timing,
 * memory coalescing, the exact rounding of ex2.approx or of tensor-core
 * sums) — test_cg_ptx assembles every kernel, and test_cg_gpu runs them on
 * a GPU where there is one.
 */
#ifndef QKC_TESTS_GPU_WARP_EMU_H
#define QKC_TESTS_GPU_WARP_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "ir/kernel_abi.h"

typedef struct qkc_warp_emu qkc_warp_emu;

/* Load the bitcode of one NVPTX kernel whose entry is `symbol`. 0 on
 * success, else 1 with the reason in msg. */
int qkc_warp_emu_load(const void *bitcode, size_t len, const char *symbol, qkc_warp_emu **out, char *msg,
                      size_t msg_size);

/* Run `warps` warps of the grid (blocks of QKC_GPU_BLOCK threads, as the
 * runtime launches them) on args, whose pointers are host memory. */
int qkc_warp_emu_launch(qkc_warp_emu *e, const qkc_kernel_args *args, int64_t warps, char *msg, size_t msg_size);

void qkc_warp_emu_destroy(qkc_warp_emu *e);

#endif
