/* LLVM compat layer (see llvm_compat.h). */
#include "codegen/llvm_compat.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/ErrorHandling.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define QKC_LLVM_PIPELINE                                                                        \
    "function(sroa,early-cse,instcombine,simplifycfg,loop-mssa(licm),gvn,instcombine,simplifycfg,dce)"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* What this thread is compiling, for the fatal error message. Per thread,
 * set and cleared by the compiling thread itself: no shared state. */
static _Thread_local char activity[256];

void qkc_llvm_set_activity(const char *what)
{
    snprintf(activity, sizeof activity, "%s", what ? what : "");
}

/* LLVM calls this for errors it cannot recover from (report_fatal_error:
 * an instruction the backend cannot select, a broken invariant) and then
 * ends the process itself with exit(1) or abort() when the handler
 * returns. Unwinding back into qkc is not possible: longjmp would skip the
 * C++ destructors of the frames in between and leave LLVM's locks held and
 * its objects half-built, so the process could not go on safely anyway.
 * What qkc can do is say clearly what failed and where, on stderr, before
 * the process ends (docs/reliability.md). */
static void fatal_handler(const char *reason)
{
    int len = reason ? (int)strlen(reason) : 0;
    while (len > 0 && (reason[len - 1] == '\n' || reason[len - 1] == ' '))
        len--;
    fprintf(stderr, "qkc: fatal LLVM error: %.*s\n", len, len ? reason : "(no reason given)");
    if (activity[0])
        fprintf(stderr, "qkc: while compiling %s\n", activity);
    fprintf(stderr, "qkc: LLVM ends the process after a fatal error; this is a bug in qkc or LLVM, please "
                    "report it with the lines above\n");
    fflush(stderr);
}

static void init_llvm(void)
{
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeX86AsmParser();
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
    LLVMInitializeAArch64AsmParser();
    /* NVIDIA GPUs: PTX text only (LLVM has no NVPTX object emitter). */
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
    LLVMInstallFatalErrorHandler(fatal_handler);
}

/* Build LLVM's lazily created pass-pipeline statics (timer groups and the
 * like) once, on one thread, rather than in whichever concurrent compiles
 * reach them first (ThreadSanitizer saw that race). Separate from
 * init_llvm: linking a kernel from the disk cache never needs it. */
static pthread_once_t passes_once = PTHREAD_ONCE_INIT;

static void init_passes(void)
{
    LLVMContextRef c = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("qkc_init", c);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(m, QKC_LLVM_PIPELINE, NULL, o);
    if (e)
        LLVMConsumeError(e);
    LLVMDisposePassBuilderOptions(o);
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
}

void qkc_llvm_init(void)
{
    pthread_once(&init_once, init_llvm);
}

qkc_status qkc_llvm_error(LLVMErrorRef err, qkc_status status, const char *what, qkc_diag *diag)
{
    char *msg = LLVMGetErrorMessage(err); /* consumes err */
    qkc_diag_set(diag, status, "%s: %s", what, msg ? msg : "unknown LLVM error");
    LLVMDisposeErrorMessage(msg);
    return status;
}

qkc_status qkc_llvm_target_machine(const qkc_target *t, LLVMCodeGenOptLevel level, LLVMTargetMachineRef *out,
                                   qkc_diag *diag)
{
    LLVMTargetRef target;
    char *err = NULL;
    qkc_llvm_init();
    if (!t->triple || LLVMGetTargetFromTriple(t->triple, &target, &err)) {
        qkc_diag_set(diag, QKC_ERR_COMPILE, "LLVM has no target for %s: %s", t->triple ? t->triple : "(no triple)",
                     err ? err : "");
        LLVMDisposeMessage(err);
        return QKC_ERR_COMPILE;
    }
    *out = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->llvm_features, level, LLVMRelocPIC,
                                   LLVMCodeModelJITDefault);
    if (!*out)
        return qkc_diag_set(diag, QKC_ERR_COMPILE, "LLVM could not create a target machine for %s", t->name);
    return QKC_OK;
}

qkc_status qkc_llvm_verify(LLVMModuleRef mod, qkc_diag *diag)
{
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        qkc_diag_set(diag, QKC_ERR_INTERNAL, "generated LLVM module is invalid: %.400s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return QKC_ERR_INTERNAL;
    }
    LLVMDisposeMessage(msg);
    return QKC_OK;
}

qkc_status qkc_llvm_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, const char *passes, qkc_diag *diag)
{
    LLVMPassBuilderOptionsRef opts;
    LLVMErrorRef err;
    pthread_once(&passes_once, init_passes);
    opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
    LLVMPassBuilderOptionsSetLoopVectorization(opts, 0); /* kernels are explicit vector code */
    LLVMPassBuilderOptionsSetSLPVectorization(opts, 0);
    /* Kernels arrive as explicit vector code with allocas for loop state: they
     * need promotion to registers, scalar clean-up, loop-invariant motion and
     * redundancy elimination, not the whole O3 pipeline (which costs several
     * times more compile time for no faster code here). QKC_LLVM_PASSES
     * replaces the pipeline, for experiments. */
    if (!passes || !*passes)
        passes = QKC_LLVM_PIPELINE;
    else
        LLVMPassBuilderOptionsSetVerifyEach(opts, 1); /* an experiment's pipeline: check its output */
    err = LLVMRunPasses(mod, passes, tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (err)
        return qkc_llvm_error(err, QKC_ERR_COMPILE, "LLVM optimisation failed", diag);
    return qkc_llvm_verify(mod, diag);
}

qkc_status qkc_llvm_emit(LLVMModuleRef mod, LLVMTargetMachineRef tm, int assembly, LLVMMemoryBufferRef *out,
                         qkc_diag *diag)
{
    char *err = NULL;
    *out = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, assembly ? LLVMAssemblyFile : LLVMObjectFile, &err, out)) {
        qkc_diag_set(diag, QKC_ERR_COMPILE, "LLVM code emission failed: %s", err ? err : "");
        LLVMDisposeMessage(err);
        *out = NULL;
        return QKC_ERR_COMPILE;
    }
    return QKC_OK;
}
