/* A CPU emulator for qkc's GPU kernels (see warp_emu.h). */
#define _GNU_SOURCE /* ucontext */
#include "gpu/warp_emu.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "ir/dtype.h"

/* Lane stacks: the kernels' frames are a few KB; each stack has a guard
 * page below it, so running off one faults instead of corrupting the next.
 * (Small stacks also keep AddressSanitizer's swapcontext cheap: it clears
 * the shadow of the whole stack it switches to.) */
enum { LANES = 32, STACK_BYTES = 64 * 1024, GUARD_BYTES = 4096, WARPS_PER_BLOCK = QKC_GPU_BLOCK / 32 };

/* What a lane waits at. */
enum { OP_RUN, OP_BFLY, OP_IDX, OP_MMA_BF16, OP_MMA_F16, OP_MMA_TF32, OP_MMA_S8, OP_DONE };

typedef struct lane {
    ucontext_t uc;
    int op;
    float fv;           /* shfl operand */
    int32_t iv;         /* shfl offset or source lane */
    float fres;         /* shfl result */
    uint32_t in[10];    /* mma a0..a3, b0, b1, c0..c3 as 32-bit words */
    uint32_t out[4];    /* mma d0..d3 */
} lane;

typedef struct warp {
    ucontext_t sched;
    lane lanes[LANES];
    int cur;
    int64_t index; /* in the grid */
    void (*kernel)(const qkc_kernel_args *);
    const qkc_kernel_args *args;
} warp;

struct qkc_warp_emu {
    LLVMOrcLLJITRef jit;
    void (*kernel)(const qkc_kernel_args *);
    char *stacks;
};

/* The warp the current thread is running (the emulator's callbacks have
 * no other way to find it); one per thread, so tests may run in parallel. */
static _Thread_local warp *current;

static int fail(char *msg, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return 1;
}

/* ------------------------------------------------------- callbacks */

static void wait_at(int op)
{
    lane *l = &current->lanes[current->cur];
    l->op = op;
    swapcontext(&l->uc, &current->sched);
}

static int32_t emu_tid_x(void)
{
    return (int32_t)((current->index % WARPS_PER_BLOCK) * LANES + current->cur);
}

static int32_t emu_ntid_x(void)
{
    return QKC_GPU_BLOCK;
}

static int32_t emu_ctaid_x(void)
{
    return (int32_t)(current->index / WARPS_PER_BLOCK);
}

static float emu_shfl(int op, float v, int32_t arg)
{
    lane *l = &current->lanes[current->cur];
    l->fv = v;
    l->iv = arg;
    wait_at(op);
    return l->fres;
}

static float emu_shfl_bfly(int32_t mask, float v, int32_t offset, int32_t clamp)
{
    (void)mask, (void)clamp;
    return emu_shfl(OP_BFLY, v, offset);
}

static float emu_shfl_idx(int32_t mask, float v, int32_t src, int32_t clamp)
{
    (void)mask, (void)clamp;
    return emu_shfl(OP_IDX, v, src);
}

static float emu_ex2(float x)
{
    return exp2f(x);
}

/* dp4a.s32.s32 d, a, b, c: c + Σ of the four signed byte products */
static int32_t emu_dp4a(int32_t a, int32_t b, int32_t c)
{
    int32_t s = c;
    for (int i = 0; i < 4; i++)
        s += (int32_t)(int8_t)((uint32_t)a >> (8 * i)) * (int32_t)(int8_t)((uint32_t)b >> (8 * i));
    return s;
}

static void emu_mma(int op, const uint32_t *in, uint32_t *out)
{
    lane *l = &current->lanes[current->cur];
    memcpy(l->in, in, sizeof l->in);
    wait_at(op);
    memcpy(out, l->out, sizeof l->out);
}

static void emu_mma_bf16(const uint32_t *in, uint32_t *out)
{
    emu_mma(OP_MMA_BF16, in, out);
}

static void emu_mma_f16(const uint32_t *in, uint32_t *out)
{
    emu_mma(OP_MMA_F16, in, out);
}

static void emu_mma_tf32(const uint32_t *in, uint32_t *out)
{
    emu_mma(OP_MMA_TF32, in, out);
}

static void emu_mma_s8(const uint32_t *in, uint32_t *out)
{
    emu_mma(OP_MMA_S8, in, out);
}

/* f32 -> bf16 / f16 and back when the CPU has no instruction for it. The
 * x86-64 ABI passes __bf16 and _Float16 in the low 16 bits of an SSE
 * register, as it passes a float: the bits travel inside a float. */
static float word_float(uint32_t w)
{
    float f;
    memcpy(&f, &w, 4);
    return f;
}

static uint16_t from_float(float f)
{
    uint32_t w;
    memcpy(&w, &f, 4);
    return (uint16_t)w;
}

static float emu_truncsfbf2(float x)
{
    return word_float(qkc_f32_to_bf16(x));
}

static float emu_truncsfhf2(float x)
{
    return word_float(qkc_f32_to_f16(x));
}

static float emu_extendhfsf2(float h)
{
    return qkc_f16_to_f32(from_float(h));
}

/* ------------------------------------------------ the collectives */

static float half_value(int op, uint32_t reg, int hi)
{
    uint16_t h = (uint16_t)(reg >> (16 * hi));
    return op == OP_MMA_F16 ? qkc_f16_to_f32(h) : qkc_bf16_to_f32(h);
}

/* D = A·B + C for one m16n8 tile from the 32 lanes' fragments, laid out
 * as the PTX ISA gives them (groupID g = lane >> 2, t = lane % 4). */
static void mma_tile(warp *w, int op)
{
    int K = op == OP_MMA_TF32 ? 8 : op == OP_MMA_S8 ? 32 : 16;
    double A[16][32], B[32][8], C[16][8];
    for (int L = 0; L < LANES; L++) {
        const uint32_t *in = w->lanes[L].in;
        int g = L >> 2, t = L & 3;
        if (op == OP_MMA_BF16 || op == OP_MMA_F16) {
            for (int i = 0; i < 8; i++) /* a_i: register i/2, half i%2 */
                A[g + ((i < 2 || (i >= 4 && i < 6)) ? 0 : 8)][2 * t + (i & 1) + (i >= 4 ? 8 : 0)] =
                    half_value(op, in[i / 2], i & 1);
            for (int i = 0; i < 4; i++)
                B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = half_value(op, in[4 + i / 2], i & 1);
        } else if (op == OP_MMA_TF32) {
            for (int i = 0; i < 4; i++) /* the tensor cores read 19 bits */
                A[g + (i & 1 ? 8 : 0)][t + (i >= 2 ? 4 : 0)] = word_float(in[i] & 0xFFFFE000u);
            for (int i = 0; i < 2; i++)
                B[t + (i ? 4 : 0)][g] = word_float(in[4 + i] & 0xFFFFE000u);
        } else {
            for (int i = 0; i < 16; i++) /* a_i: register i/4, byte i%4 */
                A[g + ((i < 4 || (i >= 8 && i < 12)) ? 0 : 8)][4 * t + (i & 3) + (i >= 8 ? 16 : 0)] =
                    (int8_t)(in[i / 4] >> (8 * (i & 3)));
            for (int i = 0; i < 8; i++)
                B[4 * t + (i & 3) + (i >= 4 ? 16 : 0)][g] = (int8_t)(in[4 + i / 4] >> (8 * (i & 3)));
        }
        for (int i = 0; i < 4; i++)
            C[g + (i >= 2 ? 8 : 0)][2 * t + (i & 1)] =
                op == OP_MMA_S8 ? (double)(int32_t)in[6 + i] : (double)word_float(in[6 + i]);
    }
    for (int L = 0; L < LANES; L++) {
        int g = L >> 2, t = L & 3;
        for (int i = 0; i < 4; i++) {
            int r = g + (i >= 2 ? 8 : 0), c = 2 * t + (i & 1);
            double d = C[r][c];
            for (int k = 0; k < K; k++)
                d += A[r][k] * B[k][c];
            if (op == OP_MMA_S8) {
                int32_t v = (int32_t)d;
                memcpy(&w->lanes[L].out[i], &v, 4);
            } else {
                float f = (float)d;
                memcpy(&w->lanes[L].out[i], &f, 4);
            }
        }
    }
}

static void lane_main(void)
{
    warp *w = current;
    w->kernel(w->args);
    w->lanes[w->cur].op = OP_DONE; /* returns to w->sched through uc_link */
}

/* A lane about to start lane_main on its own stack (a function of its
 * own: getcontext returns twice). */
static void init_lane(lane *l, char *stack, ucontext_t *link)
{
    getcontext(&l->uc);
    l->uc.uc_stack.ss_sp = stack;
    l->uc.uc_stack.ss_size = STACK_BYTES;
    l->uc.uc_link = link;
    makecontext(&l->uc, lane_main, 0);
    l->op = OP_RUN;
}

/* Run one warp to its end. */
static int run_warp(warp *w, char *stacks, char *msg, size_t msg_size)
{
    for (int i = 0; i < LANES; i++)
        init_lane(&w->lanes[i], stacks + (size_t)i * (STACK_BYTES + GUARD_BYTES) + GUARD_BYTES, &w->sched);
    for (;;) {
        int done = 0, op = -1;
        for (int i = 0; i < LANES; i++) {
            if (w->lanes[i].op == OP_DONE)
                continue;
            w->cur = i;
            w->lanes[i].op = OP_RUN;
            swapcontext(&w->sched, &w->lanes[i].uc);
        }
        for (int i = 0; i < LANES; i++) {
            if (w->lanes[i].op == OP_DONE)
                done++;
            else if (op < 0)
                op = w->lanes[i].op;
            else if (w->lanes[i].op != op)
                return fail(msg, msg_size, "warp %lld: lanes wait at different collectives (%d, %d)",
                            (long long)w->index, op, w->lanes[i].op);
        }
        if (done == LANES)
            return 0;
        if (done)
            return fail(msg, msg_size, "warp %lld: %d lanes ended while %d wait at a collective (op %d)",
                        (long long)w->index, done, LANES - done, op);
        switch (op) {
        case OP_BFLY:
        case OP_IDX:
            for (int i = 0; i < LANES; i++) {
                int src = op == OP_BFLY ? i ^ (w->lanes[i].iv & 31) : w->lanes[i].iv & 31;
                w->lanes[i].fres = w->lanes[src].fv;
            }
            break;
        default: mma_tile(w, op); break;
        }
    }
}

int qkc_warp_emu_launch(qkc_warp_emu *e, const qkc_kernel_args *args, int64_t warps, char *msg, size_t msg_size)
{
    warp *w = calloc(1, sizeof *w);
    int rc = 0;
    if (!w)
        return fail(msg, msg_size, "out of memory");
    /* whole blocks, as the runtime launches them */
    warps = (warps + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK * WARPS_PER_BLOCK;
    w->kernel = e->kernel;
    w->args = args;
    current = w;
    for (int64_t i = 0; i < warps && !rc; i++) {
        w->index = i;
        rc = run_warp(w, e->stacks, msg, msg_size);
    }
    current = NULL;
    free(w);
    return rc;
}

/* ------------------------------------------- retargeting the module */

static LLVMValueRef emu_decl(LLVMModuleRef mod, const char *name, LLVMTypeRef type)
{
    LLVMValueRef f = LLVMGetNamedFunction(mod, name);
    return f ? f : LLVMAddFunction(mod, name, type);
}

/* Replace every use of declaration f by a fresh, attribute-free
 * declaration `name` of the same type (the intrinsics' attributes would
 * let LLVM merge or move calls that are collectives here). */
static void redirect(LLVMModuleRef mod, LLVMValueRef f, const char *name)
{
    LLVMValueRef g = emu_decl(mod, name, LLVMGlobalGetValueType(f));
    LLVMReplaceAllUsesWith(f, g);
    LLVMDeleteFunction(f);
}

/* The first instruction of the entry block of the function holding I. */
static void at_entry(LLVMBuilderRef b, LLVMValueRef I)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInstructionParent(I));
    LLVMPositionBuilderBefore(b, LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(fn)));
}

/* Calls of an mma intrinsic (10 32-bit operands, a struct of 4 results)
 * become stores into a buffer, a call of `name`(in, out) and loads. */
static void lower_mma(LLVMModuleRef mod, LLVMValueRef f, const char *name)
{
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef i8 = LLVMInt8TypeInContext(ctx), i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), pt[2] = {ptr, ptr};
    LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(ctx), pt, 2, 0);
    LLVMValueRef emu = emu_decl(mod, name, ft);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMUseRef u;
    while ((u = LLVMGetFirstUse(f)) != NULL) {
        LLVMValueRef call = LLVMGetUser(u), in, out, args[2], s;
        LLVMTypeRef st = LLVMTypeOf(call), et = LLVMStructGetTypeAtIndex(st, 0);
        at_entry(b, call);
        in = LLVMBuildAlloca(b, LLVMArrayType(i32, 10), "mma.in");
        out = LLVMBuildAlloca(b, LLVMArrayType(i32, 4), "mma.out");
        LLVMPositionBuilderBefore(b, call);
        for (unsigned i = 0; i < 10; i++) {
            LLVMValueRef off = LLVMConstInt(i32, 4 * i, 0);
            LLVMBuildStore(b, LLVMGetOperand(call, i), LLVMBuildGEP2(b, i8, in, &off, 1, ""));
        }
        args[0] = in, args[1] = out;
        LLVMBuildCall2(b, ft, emu, args, 2, "");
        s = LLVMGetUndef(st);
        for (unsigned i = 0; i < 4; i++) {
            LLVMValueRef off = LLVMConstInt(i32, 4 * i, 0);
            s = LLVMBuildInsertValue(b, s, LLVMBuildLoad2(b, et, LLVMBuildGEP2(b, i8, out, &off, 1, ""), ""), i, "");
        }
        LLVMReplaceAllUsesWith(call, s);
        LLVMInstructionEraseFromParent(call);
    }
    LLVMDisposeBuilder(b);
    LLVMDeleteFunction(f);
}

/* Inline assembly: dp4a.s32.s32 becomes a call of qkc_emu_dp4a; anything
 * else is refused. */
static int lower_asm(LLVMModuleRef mod, char *msg, size_t msg_size)
{
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), pt[3] = {i32, i32, i32};
    LLVMTypeRef ft = LLVMFunctionType(i32, pt, 3, 0);
    LLVMValueRef emu = emu_decl(mod, "qkc_emu_dp4a", ft);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    for (LLVMValueRef fn = LLVMGetFirstFunction(mod); fn; fn = LLVMGetNextFunction(fn))
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb)) {
            LLVMValueRef I = LLVMGetFirstInstruction(bb);
            while (I) {
                LLVMValueRef next = LLVMGetNextInstruction(I);
                if (LLVMGetInstructionOpcode(I) == LLVMCall && LLVMIsAInlineAsm(LLVMGetCalledValue(I))) {
                    size_t len;
                    const char *text = LLVMGetInlineAsmAsmString(LLVMGetCalledValue(I), &len);
                    LLVMValueRef args[3], r;
                    if (!strstr(text, "dp4a.s32.s32") || LLVMGetNumArgOperands(I) != 3) {
                        LLVMDisposeBuilder(b);
                        return fail(msg, msg_size, "inline assembly the emulator does not know: %.*s", (int)len, text);
                    }
                    for (unsigned i = 0; i < 3; i++)
                        args[i] = LLVMGetOperand(I, i);
                    LLVMPositionBuilderBefore(b, I);
                    r = LLVMBuildCall2(b, ft, emu, args, 3, "");
                    LLVMReplaceAllUsesWith(I, r);
                    LLVMInstructionEraseFromParent(I);
                }
                I = next;
            }
        }
    LLVMDisposeBuilder(b);
    return 0;
}

static int retarget(LLVMModuleRef mod, const char *symbol, const char *triple, const char *layout, char *msg,
                    size_t msg_size)
{
    static const struct {
        const char *intrinsic, *emu;
    } plain[] = {
        {"llvm.nvvm.read.ptx.sreg.tid.x", "qkc_emu_tid_x"},
        {"llvm.nvvm.read.ptx.sreg.ntid.x", "qkc_emu_ntid_x"},
        {"llvm.nvvm.read.ptx.sreg.ctaid.x", "qkc_emu_ctaid_x"},
        {"llvm.nvvm.shfl.sync.bfly.f32", "qkc_emu_shfl_bfly"},
        {"llvm.nvvm.shfl.sync.idx.f32", "qkc_emu_shfl_idx"},
        {"llvm.nvvm.ex2.approx.f", "qkc_emu_ex2"},
    },
      mma[] = {
          {"llvm.nvvm.mma.m16n8k16.row.col.bf16", "qkc_emu_mma_bf16"},
          {"llvm.nvvm.mma.m16n8k16.row.col.f32.f32", "qkc_emu_mma_f16"},
          {"llvm.nvvm.mma.m16n8k8.row.col.tf32", "qkc_emu_mma_tf32"},
          {"llvm.nvvm.mma.m16n8k32.row.col.s8", "qkc_emu_mma_s8"},
      };
    LLVMValueRef kernel = LLVMGetNamedFunction(mod, symbol), fn, next;
    if (!kernel)
        return fail(msg, msg_size, "the module has no function %s", symbol);
    LLVMSetTarget(mod, triple);
    LLVMSetDataLayout(mod, layout);
    for (fn = LLVMGetFirstFunction(mod); fn; fn = next) {
        size_t len;
        const char *name = LLVMGetValueName2(fn, &len);
        int known = 0;
        next = LLVMGetNextFunction(fn);
        LLVMRemoveStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex, "target-cpu", 10);
        LLVMRemoveStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex, "target-features", 15);
        if (strncmp(name, "llvm.nvvm.", 10))
            continue;
        for (size_t i = 0; i < sizeof plain / sizeof plain[0] && !known; i++)
            if (!strcmp(name, plain[i].intrinsic))
                redirect(mod, fn, plain[i].emu), known = 1;
        for (size_t i = 0; i < sizeof mma / sizeof mma[0] && !known; i++)
            if (!strcmp(name, mma[i].intrinsic))
                lower_mma(mod, fn, mma[i].emu), known = 1;
        if (!known)
            return fail(msg, msg_size, "an intrinsic the emulator does not know: %s", name);
    }
    if (lower_asm(mod, msg, msg_size))
        return 1;
    /* a plain C function taking a pointer to its arguments */
    LLVMSetFunctionCallConv(kernel, LLVMCCallConv);
    LLVMRemoveEnumAttributeAtIndex(kernel, 1, LLVMGetEnumAttributeKindForName("byval", 5));
    {
        char *err = NULL;
        if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &err)) {
            fail(msg, msg_size, "the retargeted module does not verify: %s", err ? err : "");
            LLVMDisposeMessage(err);
            return 1;
        }
        LLVMDisposeMessage(err);
    }
    return 0;
}

static int llvm_failed(LLVMErrorRef err, const char *what, char *msg, size_t msg_size)
{
    char *text = LLVMGetErrorMessage(err);
    fail(msg, msg_size, "%s: %s", what, text);
    LLVMDisposeErrorMessage(text);
    return 1;
}

int qkc_warp_emu_load(const void *bitcode, size_t len, const char *symbol, qkc_warp_emu **out, char *msg,
                      size_t msg_size)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } syms[] = {
#define SYM(name, f) {name, (void (*)(void))(f)}
        SYM("qkc_emu_tid_x", emu_tid_x),         SYM("qkc_emu_ntid_x", emu_ntid_x),
        SYM("qkc_emu_ctaid_x", emu_ctaid_x),     SYM("qkc_emu_shfl_bfly", emu_shfl_bfly),
        SYM("qkc_emu_shfl_idx", emu_shfl_idx),   SYM("qkc_emu_ex2", emu_ex2),
        SYM("qkc_emu_dp4a", emu_dp4a),           SYM("qkc_emu_mma_bf16", emu_mma_bf16),
        SYM("qkc_emu_mma_f16", emu_mma_f16),     SYM("qkc_emu_mma_tf32", emu_mma_tf32),
        SYM("qkc_emu_mma_s8", emu_mma_s8),       SYM("__truncsfbf2", emu_truncsfbf2),
        SYM("__truncsfhf2", emu_truncsfhf2),     SYM("__extendhfsf2", emu_extendhfsf2),
#undef SYM
    };
    qkc_warp_emu *e = calloc(1, sizeof *e);
    LLVMOrcThreadSafeContextRef tsc = NULL;
    LLVMModuleRef mod = NULL;
    LLVMMemoryBufferRef buf;
    LLVMErrorRef err;
    LLVMOrcJITDylibRef jd;
    LLVMOrcJITTargetAddress addr;
    *out = NULL;
    if (!e)
        return fail(msg, msg_size, "out of memory");
    e->stacks = mmap(NULL, (size_t)LANES * (STACK_BYTES + GUARD_BYTES), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (e->stacks == MAP_FAILED) {
        free(e);
        return fail(msg, msg_size, "out of memory for the lanes' stacks");
    }
    for (int i = 0; i < LANES; i++)
        mprotect(e->stacks + (size_t)i * (STACK_BYTES + GUARD_BYTES), GUARD_BYTES, PROT_NONE);
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    if ((err = LLVMOrcCreateLLJIT(&e->jit, NULL))) {
        e->jit = NULL;
        qkc_warp_emu_destroy(e);
        return llvm_failed(err, "creating the JIT", msg, msg_size);
    }
    tsc = LLVMOrcCreateNewThreadSafeContext();
    buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(bitcode, len, "kernel.bc");
    if (LLVMParseBitcodeInContext2(LLVMOrcThreadSafeContextGetContext(tsc), buf, &mod)) {
        LLVMDisposeMemoryBuffer(buf);
        LLVMOrcDisposeThreadSafeContext(tsc);
        qkc_warp_emu_destroy(e);
        return fail(msg, msg_size, "the bitcode does not parse");
    }
    LLVMDisposeMemoryBuffer(buf);
    if (retarget(mod, symbol, LLVMOrcLLJITGetTripleString(e->jit), LLVMOrcLLJITGetDataLayoutStr(e->jit), msg,
                 msg_size)) {
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        qkc_warp_emu_destroy(e);
        return 1;
    }
    jd = LLVMOrcLLJITGetMainJITDylib(e->jit);
    {
        LLVMOrcCSymbolMapPair pairs[sizeof syms / sizeof syms[0]];
        LLVMOrcDefinitionGeneratorRef gen;
        for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
            pairs[i].Name = LLVMOrcLLJITMangleAndIntern(e->jit, syms[i].name);
            pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)syms[i].fn;
            pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
            pairs[i].Sym.Flags.TargetFlags = 0;
        }
        if ((err = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, sizeof syms / sizeof syms[0])))) {
            LLVMDisposeModule(mod);
            LLVMOrcDisposeThreadSafeContext(tsc);
            qkc_warp_emu_destroy(e);
            return llvm_failed(err, "defining the emulator's symbols", msg, msg_size);
        }
        /* libm (expf, fmaf, ...) from this process */
        if ((err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(e->jit),
                                                                        NULL, NULL))) {
            LLVMDisposeModule(mod);
            LLVMOrcDisposeThreadSafeContext(tsc);
            qkc_warp_emu_destroy(e);
            return llvm_failed(err, "searching this process's symbols", msg, msg_size);
        }
        LLVMOrcJITDylibAddGenerator(jd, gen);
    }
    {
        LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
        LLVMOrcDisposeThreadSafeContext(tsc);
        if ((err = LLVMOrcLLJITAddLLVMIRModule(e->jit, jd, tsm))) {
            LLVMOrcDisposeThreadSafeModule(tsm);
            qkc_warp_emu_destroy(e);
            return llvm_failed(err, "adding the module", msg, msg_size);
        }
    }
    if ((err = LLVMOrcLLJITLookup(e->jit, &addr, symbol))) {
        qkc_warp_emu_destroy(e);
        return llvm_failed(err, "compiling the kernel for this CPU", msg, msg_size);
    }
    e->kernel = (void (*)(const qkc_kernel_args *))(uintptr_t)addr;
    *out = e;
    return 0;
}

void qkc_warp_emu_destroy(qkc_warp_emu *e)
{
    if (!e)
        return;
    if (e->jit) {
        LLVMErrorRef err = LLVMOrcDisposeLLJIT(e->jit);
        if (err)
            LLVMConsumeError(err);
    }
    munmap(e->stacks, (size_t)LANES * (STACK_BYTES + GUARD_BYTES));
    free(e);
}
