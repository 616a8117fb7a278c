/*
 * The CPU lowering's state and the functions its parts share: lower.c (the
 * driver, the float and int8 paths, the epilogue), lower_vq.c (VQ
 * codebooks), lower_outliers.c (outlier epilogues) and the CPU ISA files'
 * hooks (isa_x86.c, isa_aarch64.c; isa.h). Internal to codegen/.
 */
#ifndef QKC_CODEGEN_LOWER_CPU_H
#define QKC_CODEGEN_LOWER_CPU_H

#include "codegen/emit.h"
#include "codegen/isa.h"
#include "codegen/lower.h"

typedef struct qkc_cg cg;
typedef struct qkc_tile tile;
typedef struct qkc_i8 i8ctx;
typedef struct qkc_i8_weights i8w;

struct qkc_cg {
    qkc_emit e;
    const qkc_isa *isa;
    const qkc_matmul *mm;
    const qkc_klayout *L;
    const qkc_target *t;
    const qkc_schedule *s;
    int V;  /* lanes per vector */
    int C;  /* elements per chunk */
    int S;  /* vectors per chunk */
    int factorized;
    LLVMTypeRef vf, vi32; /* <V x float>, <V x i32> */
    LLVMValueRef a, w, bias, c, lda, ldc, m, n_begin, n_end;
    LLVMValueRef table[4]; /* a 16-entry table in the registers the ISA's table_lookup reads */
    i8ctx *x8;             /* the int8 dot-product path, or NULL */
    int affine_table;      /* 4-bit affine codes decode by table {i - zero_const} */
    LLVMValueRef lora_t, lora_b, lora_ld, lora_scale; /* lora=R:DTYPE, else NULL */
    LLVMValueRef o_cols, o_vals, o_count;             /* outliers=act:T on the int8 path (kernel_abi.h) */
};

struct qkc_tile {
    int tm, tn;
    LLVMValueRef m0, n0;
    LLVMValueRef nrow[8];    /* weight row of column j: min(n0 + j, n_end - 1) */
    LLVMValueRef acc[8][8];  /* allocas of <V x float> */
    int pm, pn;              /* rows and columns an ISA's int8 tile hooks compute (isa.h), else 0 */
    LLVMValueRef pacc[4][4]; /* their accumulators (aarch64: smmla pairs, allocas of <4 x float>) */
    LLVMValueRef sum[8][8];  /* an output's final sum where no acc is reduced, else NULL */
};

/* The int8 dot-product path: which operand form a (layout, target) takes.
 *   DIRECT  Σ q·u over the unsigned codes u (or u − off), then − cc·Σq
 *           with cc = zero_const + zero;
 *   TABLE   the code's integer table value (+ table_cc) as the weight;
 *   SIGNED  signed weights v against q (x86 AVX2: vpmaddubsw(|v|,
 *           sign(q, v))), cc = 0.
 * The ISA files say which form each of their instruction sets takes. */
enum { I8_NONE = 0, I8_DIRECT = 1, I8_TABLE = 2, I8_SIGNED = 3 };

struct qkc_i8 {
    int mode;
    int P;        /* chunks per step: 1 (256-bit, NEON) or 2 (512-bit) */
    int lanes;    /* i32/f32 lanes per step: 8P */
    int off;      /* the dot's weight operand is the code minus off (aarch64 8-bit codes under sdot: 128) */
    int table_cc; /* TABLE: the weight operand is the table value + table_cc (x86: 128, as u8) */
    /* the ISA's instruction choices (int8_setup), read by its hooks */
    int vnni;        /* x86 AVX512-VNNI: vpdpbusd */
    int vbmi_unpack; /* x86 AVX512-VBMI: 4-bit codes of two adjacent records via vpermb */
    int dotprod;     /* aarch64 FEAT_DotProd: sdot */
    int usdot;       /* aarch64 FEAT_I8MM: usdot (usmmla) over unsigned 8-bit codes */
    int mmla;        /* aarch64 FEAT_I8MM: smmla / usmmla for 2x2 pairs of tiles with tm, tn >= 2 */
    LLVMTypeRef vbytes, vi32s, vfs; /* <32P x i8>, <8P x i32>, <8P x float> */
    LLVMValueRef a_scales, a_scales_ld;
    /* panel kernels (lower_panel.c): P rows per panel, V lanes per vector
     * (the schedule's; P a multiple of V), the block sums */
    int panel, pv;
    LLVMTypeRef pbytes, pi32, pf32; /* <4V x i8>, <V x i32>, <V x float> */
    LLVMValueRef a_sums;
    /* compact panels with two scales a record (klayout.h Q6): int8_panel_dot
     * keeps the record's halves apart (isa.h) */
    int halves;
};

/* One step's weight operand for int8_dot (isa.h). */
struct qkc_i8_weights {
    LLVMValueRef w;    /* <32P x i8>, the form of x->mode */
    LLVMValueRef wabs; /* I8_SIGNED: |w| */
    LLVMValueRef svec; /* the P records' scales per lane, where the ISA had them at hand; else NULL */
};

/* <V x i32> with v in every lane. */
static inline LLVMValueRef vconst_i32(cg *g, int32_t v)
{
    return qkc_emit_int_like(&g->e, g->vi32, v);
}

/* A chunk record's field at byte off as f32 (scalar). */
LLVMValueRef qkc_lower_chunk_field(cg *g, LLVMValueRef chunk, qkc_kfield kind, int off);

/* Codes of one chunk as C lanes: <C x i8> (4/8-bit), <C x i16>, <C x float>. */
LLVMValueRef qkc_lower_chunk_codes(cg *g, LLVMValueRef chunk);

/* int8 path: weight bytes of one step, the codes of P chunk records
 * (present of them real, the rest zero), <32P x i8> in k order. */
LLVMValueRef qkc_lower_step_codes(cg *g, i8ctx *x, LLVMValueRef *chunks, int present);

/* int8 path: a chunk record's scale s, minimum mn and the zero correction
 * cc that the float FMA applies (0 where int32 handles it, or nothing is
 * to correct). */
void qkc_lower_int8_coefs(cg *g, i8ctx *x, LLVMValueRef chunk, LLVMValueRef *s, LLVMValueRef *mn, LLVMValueRef *cc);

/* for (i = start; i + step <= end; i += step) body(i); the induction
 * variable lives in an alloca. Returns i after the loop, with the builder
 * after it. */
typedef void (*qkc_lower_loop_body)(cg *g, void *ctx, LLVMValueRef i);
LLVMValueRef qkc_lower_loop(cg *g, LLVMValueRef start, LLVMValueRef end, int64_t step, qkc_lower_loop_body body,
                            void *ctx);

/* The end of a tile: each output's sum (T->sum, or its accumulator of
 * type acc_ty reduced), the outliers, LoRA, bias, activation, stored. */
void qkc_lower_epilogue(cg *g, tile *T, LLVMTypeRef acc_ty);

/* lower_panel.c: the hi planes of a compact panel record (klayout.h
 * hi_bits; codes and stride as int8_panel_dot's) as <V x i32>, loaded
 * once per record, and group t (0..7) of its codes with their hi bits:
 * w (<4V x i8>) holds the group's nibbles, one per byte. */
void qkc_lower_panel_planes(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef *planes);
LLVMValueRef qkc_lower_panel_hi(cg *g, i8ctx *x, LLVMValueRef w, const LLVMValueRef *planes, int t);

/* lower_panel.c: does the f32 panel kernel read this panel layout? Affine
 * codes without bit planes or two scales a record, and dense f32 and bf16
 * values. */
int qkc_lower_f32_panel_layout(const qkc_klayout *L);

/* lower_panel.c: the n loop of a kernel over weight panels (klayout.h)
 * on the int8 path x. */
void qkc_lower_panels(cg *g, i8ctx *x);

/* lower_vq.c: the S vectors of one w=vq chunk's decoded values. */
void qkc_lower_vq_values(cg *g, LLVMValueRef chunk, LLVMValueRef *val);

/* lower_outliers.c: each output's f32 outlier sum (sparse weight
 * outliers, activation outlier columns) of tile T into allocas extra[i][j]
 * (left NULL where the kernel has none). */
void qkc_lower_outliers(cg *g, tile *T, LLVMValueRef extra[8][8]);

#endif
