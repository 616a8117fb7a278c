/*
 * qkc's layer over the LLVM C API for what is not lowering: initialisation once
 * per process (the only global state qkc has), target machines, module
 * verification, optimisation and emission. Errors come back as qkc_status
 * with a message; every LLVMErrorRef and message string is consumed here.
 * (The lowerings build IR with the C API directly.) Nothing outside codegen/
 * and compiler/ includes llvm-c headers: the layers check keeps LLVM there.
 */
#ifndef QKC_CODEGEN_LLVM_COMPAT_H
#define QKC_CODEGEN_LLVM_COMPAT_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/TargetMachine.h>

#include "ir/diag.h"
#include "targets/target.h"

/* Initialise the LLVM targets qkc uses, X86 and AArch64 (thread-safe, idempotent), and
 * install LLVM's fatal error handler: it prints the reason and what the
 * thread was compiling to stderr; LLVM then ends the process (it allows
 * no return to the caller). */
void qkc_llvm_init(void);

/* Name what the calling thread compiles (a spec's text), for the fatal
 * error message; NULL or "" clears it. Thread-local, so compiles on other
 * threads keep their own. */
void qkc_llvm_set_activity(const char *what);

/* A target machine for a qkc target (caller disposes). */
qkc_status qkc_llvm_target_machine(const qkc_target *t, LLVMCodeGenOptLevel level, LLVMTargetMachineRef *out,
                                   qkc_diag *diag);

/* Verify (LLVMReturnStatusAction: never aborts) and run qkc's pass
 * pipeline, or `passes` when not NULL (the context's QKC_LLVM_PASSES; an
 * invalid pipeline string is QKC_ERR_COMPILE). The optimised module is
 * verified again. */
qkc_status qkc_llvm_verify(LLVMModuleRef mod, qkc_diag *diag);
qkc_status qkc_llvm_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, const char *passes, qkc_diag *diag);

/* Emit assembly or an object into an LLVM memory buffer (the caller
 * disposes it; its bytes are LLVMGetBufferStart/Size). */
qkc_status qkc_llvm_emit(LLVMModuleRef mod, LLVMTargetMachineRef tm, int assembly, LLVMMemoryBufferRef *out,
                         qkc_diag *diag);

/* Take the message of an LLVMErrorRef (consumes it) into diag. */
qkc_status qkc_llvm_error(LLVMErrorRef err, qkc_status status, const char *what, qkc_diag *diag);

#endif
