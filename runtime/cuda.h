/*
 * The CUDA driver layer: libcuda.so.1 loaded with dlopen on first use (no
 * link-time CUDA dependency), one driver state per qkc context (the
 * context's device slot): the primary context of device 0, the modules
 * loaded into it, the driver entry points. Without the library, or
 * without a device, every function returns QKC_ERR_NO_DEVICE with a
 * message that says which ("no CUDA driver (libcuda.so.1 not found)").
 * Part of libqkc_rt: it needs no LLVM.
 */
#ifndef QKC_RUNTIME_CUDA_H
#define QKC_RUNTIME_CUDA_H

#include <stddef.h>

#include "ir/kernel_abi.h"
#include "qkc/qkc.h"

/* QKC_OK when a driver and a device are there (loading them on first use). */
qkc_status qkc_cuda_require(qkc_context *ctx);

/* Load PTX (driver JIT; the driver's error log goes into the message) and
 * look up the entry `symbol`. sm: the compute capability the target
 * needs (80, 90): a lesser device is QKC_ERR_NO_DEVICE. The module lives
 * until the context is destroyed. */
qkc_status qkc_cuda_load_kernel(qkc_context *ctx, const char *ptx, int sm, const char *symbol, void **function);

/* Launch a GPU kernel (ir/kernel_abi.h: args by value) on the
 * default stream with QKC_GPU_BLOCK-thread blocks covering `warps` warps
 * (the grid shape's count, kernel_abi.h); asynchronous. */
qkc_status qkc_cuda_launch(qkc_context *ctx, void *function, const qkc_kernel_args *args, int64_t warps);

#endif
