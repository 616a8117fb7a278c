/*
 * Output conversion shared by the CPU and GPU lowerings: one f32 result
 * stored as the spec's output dtype, with the reference's rounding.
 */
#ifndef QKC_CODEGEN_LOWER_STORE_H
#define QKC_CODEGEN_LOWER_STORE_H

#include <llvm-c/Core.h>

#include "ir/dtype.h"

/* Store f32 `v` at element `idx` of `c` as `out`: f32 as is, f16 by
 * conversion (RNE), bf16 by round to nearest even on the bits, a NaN
 * keeping sign and payload top with the quiet bit set (the reference's
 * rule). */
void qkc_lower_store_out(LLVMBuilderRef b, qkc_dtype out, LLVMValueRef v, LLVMValueRef c, LLVMValueRef idx);

#endif
