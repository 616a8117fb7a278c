/*
 * ISA hooks: what code generation asks an instruction-set family. One file
 * per family fills a table — isa_x86.c, isa_aarch64.c, isa_nvptx.c — and
 * qkc_isa_for picks it by the target's architecture. Generic code (the
 * schedule checks, the CPU lowering, the tuner) asks the table instead of
 * testing the architecture; the feature bits (QKC_FEAT_*) that choose an
 * instruction sequence are read in the family's file. A micro-kernel that
 * one ISA runs its own way — a part of a tile (the int8 tile hooks), a
 * table lookup, a dot product — is a hook here, so new ones (decode and
 * prefill work) go into the family's file and its table.
 *
 * The CPU hooks take the CPU lowering's state (codegen/lower_cpu.h) and
 * are NULL for GPUs; the GPU hooks take only an emission context
 * (codegen/emit.h) and are NULL for CPUs.
 */
#ifndef QKC_CODEGEN_ISA_H
#define QKC_CODEGEN_ISA_H

#include <llvm-c/Core.h>

#include "codegen/emit.h"
#include "ir/diag.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "targets/target.h"

struct qkc_cg;         /* the CPU lowering's state */
struct qkc_tile;       /* a tile of outputs */
struct qkc_i8;         /* the int8 path's choices */
struct qkc_i8_weights; /* one step's weight operand */

typedef struct qkc_isa {
    const char *name; /* "x86_64", "aarch64", "nvptx" */
    int arch;         /* the QKC_ARCH_* it serves */
    int gpu;          /* kernels run on a device (runtime/cuda.c), not on the host */

    /* ------------------------------------------------------ schedules */
    int vector_widths[3];           /* the widths vec= may take, 0-terminated */
    const char *vector_widths_text; /* the same, for messages */
    /* Vector registers a tile's accumulators, weights and activations
     * share (the tuner's register budget). */
    int (*vector_registers)(const qkc_target *t);

    /* ------------------------------------------------------- lowering */
    /* The kernel of a verified matmul (lower.h, lower_ptx.h). */
    qkc_status (*lower)(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                        const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag);
    /* Does that kernel take A as int8 codes (the int8 path of
     * ir/kernel_abi.h) rather than as f32? */
    int (*takes_int8)(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);
    /* The f32 sum of the lanes of v: a vector's (CPU) or a warp's (GPU). */
    LLVMValueRef (*lane_sum)(qkc_emit *E, LLVMValueRef v);
    /* 2^x in f32, fast, where kernels have no libm; NULL: activations call
     * libm in double (emit.h, qkc_emit_activation). */
    LLVMValueRef (*exp2)(qkc_emit *E, LLVMValueRef x);

    /* ---------------------------------------- CPU: 16-entry tables */
    /* The float path decodes 4-bit codes through a 16-entry f32 table
     * (TABLE, LUT, and AFFINE as code − zero): table_constants puts
     * constant entries, table_load the entries at p (64 bytes, 64-byte
     * aligned), into the CPU state's table registers; table_lookup maps
     * <V x i32> indices in 0..15 to <V x float> entries. */
    void (*table_constants)(struct qkc_cg *g, const double v[16]);
    void (*table_load)(struct qkc_cg *g, LLVMValueRef p);
    LLVMValueRef (*table_lookup)(struct qkc_cg *g, LLVMValueRef idx);
    /* Is table_lookup one instruction at the CPU state's vector width?
     * Then 4-bit affine codes decode through a table of code - zero;
     * otherwise they are converted (zero-extend, int to float) and the
     * zero point joins the factorised sum. */
    int (*table_lookup_is_one_op)(struct qkc_cg *g);

    /* ---------------------------------------- CPU: the int8 dot path */
    /* The operand form (I8_* of lower_cpu.h) of a spec whose weights the
     * int8 path can take in principle (lower.c checked the rest). */
    int (*int8_mode)(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);
    /* Fill the ISA's choices of x (x->mode is set): chunks per step,
     * instruction forms, the weight operand's offsets. */
    void (*int8_setup)(struct qkc_cg *g, struct qkc_i8 *x);
    /* The weight operand of one step of weight row chunks[0..P) (present
     * of them real): codes loaded and mapped to what int8_dot takes. */
    void (*int8_weights)(struct qkc_cg *g, struct qkc_i8 *x, LLVMValueRef *chunks, int present,
                         struct qkc_i8_weights *out);
    /* init + Σ over groups of 4 bytes of w·q, as <8P x i32> (init NULL:
     * zero); q the int8 activations of one row. */
    LLVMValueRef (*int8_dot)(struct qkc_cg *g, struct qkc_i8 *x, LLVMValueRef init, const struct qkc_i8_weights *w,
                             LLVMValueRef q);
    /* Σ over groups of 4 bytes of u·q for u small non-negative constants
     * (the code sums Σq). */
    LLVMValueRef (*int8_sum)(struct qkc_cg *g, struct qkc_i8 *x, LLVMValueRef u, LLVMValueRef q);
    /* A micro-kernel for part of an int8 tile (NULL: none). tile_begin
     * claims rows [0, pm) and columns [0, pn) of T (struct qkc_tile) and
     * zeroes its accumulators, tile_step runs one step of the claimed
     * part (int_cc and need_coef as in lower.c's emit_step_int8), and
     * tile_end sets the claimed outputs' sums; the generic path does the
     * rest of the tile. */
    void (*int8_tile_begin)(struct qkc_cg *g, struct qkc_i8 *x, struct qkc_tile *T);
    void (*int8_tile_step)(struct qkc_cg *g, struct qkc_i8 *x, struct qkc_tile *T, LLVMValueRef step, int int_cc,
                           int need_coef);
    void (*int8_tile_end)(struct qkc_cg *g, struct qkc_tile *T);

    /* ----------------------------------- CPU: int8 over weight panels */
    /* Rows per weight panel (ir/klayout.h) for a spec the int8 path takes
     * (int8_mode not NONE) on target t — the int32 lanes of one vector —
     * or 0 for the row layout (NULL: never panels). */
    int (*int8_panel_rows)(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);
    /* One record of V rows of a panel (V = x->pv, the vector's int32
     * lanes) against tm activation rows: acc[i] (<V x i32>) += Σ over the
     * record's 32 elements of w·q, lane r for row r, where w is the code in
     * the form of x->mode and q the int8 activations of row i at q[i] (32
     * bytes). codes: the rows' first group of 4 elements (klayout.h),
     * the next groups `stride` bytes apart, then the hi planes of compact
     * panels (qkc_lower_panel_planes, qkc_lower_panel_hi). The codes are
     * decoded once for all tm rows. With x->halves, acc has 2·tm entries:
     * acc[2i] sums elements 0..15 (the low nibbles), acc[2i + 1] 16..31. */
    void (*int8_panel_dot)(struct qkc_cg *g, struct qkc_i8 *x, LLVMValueRef codes, int stride, LLVMValueRef *q,
                           int tm, LLVMValueRef *acc);
    /* Rows per weight panel for the factorised f32 path over affine codes
     * (lower_panel.c), or 0 (NULL: never). */
    int (*f32_panel_rows)(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t);

    /* ------------------------------------------------------------ GPU */
    /* A special register of the thread ("tid.x", "ntid.x", "ctaid.x"). */
    LLVMValueRef (*thread_register)(qkc_emit *E, const char *name);
    /* v of lane `src` of the warp (every lane active). */
    LLVMValueRef (*lane_read)(qkc_emit *E, LLVMValueRef v, LLVMValueRef src);
    /* acc + the dot product of the four s8 lanes of the i32 words x, y. */
    LLVMValueRef (*dot4_s8)(qkc_emit *E, LLVMValueRef x, LLVMValueRef y, LLVMValueRef acc);
    /* The k of one matrix instruction for a compute type (0: none), and
     * d = a·b + c on one m16 x n8 tile (operand registers as the
     * instruction takes them; c, d f32, or i32 for int8). */
    int (*mma_k)(qkc_compute compute);
    void (*mma)(qkc_emit *E, qkc_compute compute, LLVMValueRef a[4], LLVMValueRef b[2], LLVMValueRef c[4],
                LLVMValueRef d[4]);
} qkc_isa;

extern const qkc_isa qkc_isa_x86_64;
extern const qkc_isa qkc_isa_aarch64;
extern const qkc_isa qkc_isa_nvptx;

/* The table of t's architecture; NULL for one qkc generates no code for. */
const qkc_isa *qkc_isa_for(const qkc_target *t);

/* Is `bits` one of the vector widths isa's schedules take? */
int qkc_isa_vector_width_ok(const qkc_isa *isa, int bits);

#endif
