/*
 * LLVM failures become a qkc_status with a message, never an abort:
 * an unknown target name, a triple LLVM has no target for, an invalid
 * QKC_LLVM_PASSES pipeline, an invalid module. And the one thing LLVM does
 * not let a library recover from, a fatal error (report_fatal_error), is
 * reported clearly on stderr before LLVM ends the process: checked in a
 * child process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen/llvm_compat.h"
#include "qkc/qkc.h"
#include "targets/target.h"

static void test_unknown_target_name(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern = NULL;
    qkc_compile_options opt = {.struct_size = sizeof opt, .target = "riscv64-rvv", .schedule = NULL};
    char buf[64];
    size_t needed = 0;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, &opt, &kern), QKC_ERR_INVALID_ARGUMENT);
    assert_null(kern);
    assert_non_null(strstr(qkc_context_last_error(ctx), "unknown target 'riscv64-rvv'"));
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "asm", buf, sizeof buf, &needed), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "unknown target 'riscv64-rvv'"));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* A target descriptor whose triple LLVM does not know (a target table row
 * gone wrong) gives QKC_ERR_COMPILE, not a crash. */
static void test_no_llvm_target_for_triple(void **state)
{
    (void)state;
    qkc_target t;
    qkc_diag diag;
    LLVMTargetMachineRef tm = NULL;
    memset(&t, 0, sizeof t);
    assert_int_equal(qkc_target_resolve("x86_64-avx2", 0, &t, &diag), QKC_OK);
    t.triple = "nonesuch-unknown-none";
    assert_int_equal(qkc_llvm_target_machine(&t, LLVMCodeGenLevelDefault, &tm, &diag), QKC_ERR_COMPILE);
    assert_null(tm);
    assert_non_null(strstr(diag.message, "LLVM has no target for nonesuch-unknown-none"));
    t.triple = NULL;
    assert_int_equal(qkc_llvm_target_machine(&t, LLVMCodeGenLevelDefault, &tm, &diag), QKC_ERR_COMPILE);
}

/* A context and spec created with QKC_LLVM_PASSES=passes (the
 * environment is read when a context is created). */
static void with_passes(const char *passes, qkc_context **ctx, qkc_spec **spec)
{
    assert_int_equal(setenv("QKC_LLVM_PASSES", passes, 1), 0);
    assert_int_equal(qkc_context_create(NULL, ctx), QKC_OK);
    assert_int_equal(unsetenv("QKC_LLVM_PASSES"), 0);
    assert_int_equal(qkc_spec_parse(*ctx, "matmul n=16 k=64 w=q8_0", spec), QKC_OK);
}

/* QKC_LLVM_PASSES with a pass LLVM does not know: compile and emit fail
 * with QKC_ERR_COMPILE and LLVM's reason; a variable set after the
 * context was created changes nothing for it. */
static void test_invalid_pass_pipeline(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern = NULL;
    size_t needed = 0;
    with_passes("function(no-such-pass)", &ctx, &spec);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_ERR_COMPILE);
    assert_null(kern);
    assert_non_null(strstr(qkc_context_last_error(ctx), "LLVM optimisation failed"));
    assert_non_null(strstr(qkc_context_last_error(ctx), "no-such-pass"));
    assert_int_equal(qkc_kernel_emit(ctx, spec, NULL, "llvm", NULL, 0, &needed), QKC_ERR_COMPILE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "no-such-pass"));
    /* read once: fixing the variable now does not change this context */
    assert_int_equal(setenv("QKC_LLVM_PASSES", "function(sroa,instcombine)", 1), 0);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_ERR_COMPILE);
    assert_int_equal(unsetenv("QKC_LLVM_PASSES"), 0);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    /* a malformed pipeline string */
    with_passes("function(sroa", &ctx, &spec);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_ERR_COMPILE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "LLVM optimisation failed"));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    /* a valid one of the user's own is checked and used */
    with_passes("function(sroa,instcombine)", &ctx, &spec);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

/* An invalid module (a block without a terminator) is caught by the
 * verifier with a message, before any pass or code generation sees it. */
static void test_invalid_module(void **state)
{
    (void)state;
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMValueRef fn;
    LLVMBuilderRef b;
    qkc_diag diag;
    qkc_llvm_init();
    c = LLVMContextCreate();
    m = LLVMModuleCreateWithNameInContext("bad", c);
    fn = LLVMAddFunction(m, "f", LLVMFunctionType(LLVMVoidTypeInContext(c), NULL, 0, 0));
    b = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
    LLVMDisposeBuilder(b); /* no ret: the block has no terminator */
    assert_int_equal(qkc_llvm_verify(m, &diag), QKC_ERR_INTERNAL);
    assert_non_null(strstr(diag.message, "generated LLVM module is invalid"));
    assert_non_null(strstr(diag.message, "terminator"));
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
}

/* In a child: an AVX-512 intrinsic emitted for an AVX2 target machine,
 * which LLVM's instruction selector cannot select: a fatal error. */
static void child_fatal(void)
{
    qkc_target t;
    qkc_diag diag;
    LLVMTargetMachineRef tm;
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMTypeRef v16 , params[2], fty;
    LLVMValueRef fn, intr, args[2];
    LLVMBuilderRef b;
    LLVMMemoryBufferRef buf = NULL;
    qkc_llvm_init();
    if (qkc_target_resolve("x86_64-avx2", 0, &t, &diag) || qkc_llvm_target_machine(&t, LLVMCodeGenLevelDefault, &tm, &diag))
        _exit(3);
    qkc_llvm_set_activity("matmul n=1 k=1 w=f32 (a test of the fatal error handler)");
    c = LLVMContextCreate();
    m = LLVMModuleCreateWithNameInContext("fatal", c);
    LLVMSetTarget(m, t.triple);
    v16 = LLVMVectorType(LLVMFloatTypeInContext(c), 16);
    params[0] = v16;
    params[1] = LLVMInt32TypeInContext(c);
    intr = LLVMAddFunction(m, "llvm.x86.avx512.sqrt.ps.512", LLVMFunctionType(v16, params, 2, 0));
    fty = LLVMFunctionType(v16, &v16, 1, 0);
    fn = LLVMAddFunction(m, "f", fty);
    b = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
    args[0] = LLVMGetParam(fn, 0);
    args[1] = LLVMConstInt(LLVMInt32TypeInContext(c), 11, 0);
    LLVMBuildRet(b, LLVMBuildCall2(b, LLVMFunctionType(v16, params, 2, 0), intr, args, 2, ""));
    LLVMDisposeBuilder(b);
    qkc_llvm_emit(m, tm, 1, &buf, &diag);
    _exit(0); /* not reached when LLVM fails as expected */
}

static void test_fatal_error_is_reported(void **state)
{
    (void)state;
    int fds[2], status = 0;
    pid_t pid;
    char out[4096];
    size_t len = 0;
    ssize_t r;
    fflush(NULL);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        child_fatal();
    }
    close(fds[1]);
    while (len < sizeof out - 1 && (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        print_error("LLVM emitted the unselectable intrinsic without a fatal error:\n%s\n", out);
        fail();
    }
    /* LLVM's reason (the instruction it could not lower), then what was
     * being compiled */
    if (!strstr(out, "qkc: fatal LLVM error: ") || strstr(out, "qkc: fatal LLVM error: \n") ||
        !strstr(out, "qkc: while compiling matmul n=1 k=1 w=f32 (a test of the fatal error handler)")) {
        print_error("the child's stderr lacks the fatal error report:\n%s\n", out);
        fail();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first, while this process has no threads (it forks) */
        cmocka_unit_test(test_fatal_error_is_reported),
        cmocka_unit_test(test_unknown_target_name),
        cmocka_unit_test(test_no_llvm_target_for_triple),
        cmocka_unit_test(test_invalid_pass_pipeline),
        cmocka_unit_test(test_invalid_module),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
