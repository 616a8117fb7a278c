/*
 * Lowering: one verified matmul + its kernel layout + a target + a complete
 * schedule -> an LLVM module holding one kernel function with the ABI of
 * ir/kernel_abi.h. The module is verified before it is returned.
 */
#ifndef QKC_CODEGEN_LOWER_H
#define QKC_CODEGEN_LOWER_H

#include <llvm-c/Core.h>

#include "ir/diag.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "targets/target.h"

/* Does this spec take the integer dot-product path (compute=int8 with
 * weights the int8 kernels decode)? Otherwise the float path runs, fed
 * with int8-quantized-then-dequantized activations for compute=int8. */
int qkc_lower_uses_int8_dot(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);

/* Rows per weight panel (ir/klayout.h) the kernel of this spec reads on
 * target t, for L the row layout of qkc_klayout_for: the ISA's choice
 * where the int8 path takes the spec and the layout takes panels, else 0
 * (the row layout). The packed layout is then qkc_klayout_set_panel's. */
int qkc_lower_panel_rows(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);

/* The packed layout of the kernel of mm on target t: qkc_klayout_for's,
 * in panels where qkc_lower_panel_rows says so. */
qkc_status qkc_lower_layout(const qkc_matmul *mm, const qkc_target *t, qkc_klayout *out, qkc_diag *diag);

/* A 16-entry table of integers in -127..127 (iq4_nl): codes map to int8
 * values, so the int8 dot product can take them. */
int qkc_lower_int8_table_ok(const qkc_klayout *L);

qkc_status qkc_lower(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                     const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag);

#endif
