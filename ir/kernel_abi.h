/*
 * The ABI between generated CPU kernels and the runtime. A kernel is
 *
 *     void qkc_kernel_<hash>(const qkc_kernel_args *args);
 *
 * It computes output columns [n_begin, n_end) for all m rows, so the
 * runtime splits N across threads without the kernel knowing about them.
 * The runtime prepares A before the call (ir/spec.h semantics): f32 values
 * already rounded to the compute type, or, for the int8 path, int8 codes
 * plus one f32 scale per block of 32. Weights are in the kernel layout
 * (ir/klayout.h); for act-order formats A's columns are already permuted.
 * The AOT header generated later declares exactly this struct.
 */
#ifndef QKC_CODEGEN_KERNEL_ABI_H
#define QKC_CODEGEN_KERNEL_ABI_H

#include <stdint.h>

typedef struct qkc_kernel_args {
    const void *a;         /* f32 [m][lda], or int8 [m][lda] for the int8 path */
    const float *a_scales; /* int8 path: [m][a_scales_ld] block scales; else NULL */
    const uint8_t *w;      /* packed weights */
    const float *bias;     /* [N] or NULL */
    void *c;               /* [m][ldc] in the output dtype */
    int64_t lda, ldc, m;
    int64_t n_begin, n_end;
    int64_t a_scales_ld;
    /* lora=R:DTYPE (ir/spec.h); NULL / 0 otherwise: */
    const float *lora_t; /* T = X·Aᵀ, f32 [m][lora_t_ld], columns R .. lora_t_ld-1 zero */
    const void *lora_b;  /* adapter B [N][R] in the lora dtype */
    int64_t lora_t_ld;   /* a multiple of 16 */
    float lora_scale;    /* s */
    /* outliers=act:T on the int8 path: the call's activation outlier
     * columns (o_count of them, ascending, original column numbers) and
     * their f32 values o_vals [m][o_count]; the int8 codes of those columns
     * are 0. Kernels add Σ_e o_vals[m][e] · W[n][o_cols[e]] (W dequantized
     * exactly). Unused (NULL, 0) otherwise. */
    const int32_t *o_cols;
    const float *o_vals;
    int64_t o_count;
} qkc_kernel_args;

/* Field indices of qkc_kernel_args as the code generator addresses them. */
enum {
    QKC_KARG_A, QKC_KARG_A_SCALES, QKC_KARG_W, QKC_KARG_BIAS, QKC_KARG_C, QKC_KARG_LDA, QKC_KARG_LDC,
    QKC_KARG_M, QKC_KARG_N_BEGIN, QKC_KARG_N_END, QKC_KARG_A_SCALES_LD, QKC_KARG_LORA_T, QKC_KARG_LORA_B,
    QKC_KARG_LORA_T_LD, QKC_KARG_LORA_SCALE, QKC_KARG_O_COLS, QKC_KARG_O_VALS, QKC_KARG_O_COUNT, QKC_KARG_COUNT
};

typedef void (*qkc_kernel_fn)(const qkc_kernel_args *args);

/*
 * GPU kernels (codegen/lower_ptx.c, NVPTX targets) are PTX entries
 *
 *     .entry qkc_kernel_<hash>(.param .align 8 .b8 args[144])
 *
 * taking the same qkc_kernel_args BY VALUE, every pointer a device
 * address. The runtime launches QKC_GPU_BLOCK threads per block; warp g of
 * the grid is blockIdx.x · blockDim.x/32 + threadIdx.x/32, and warps past
 * the last tile do nothing. Two grid shapes:
 *   GEMV (every kernel; m < QKC_GPU_MMA_MIN_M or no tensor-core path):
 *       warp g computes output column n = n_begin + g for all m rows;
 *       ceil((n_end − n_begin) / (QKC_GPU_BLOCK / 32)) blocks;
 *   tensor cores (kernels whose compiled code has gpu_mma set, m >=
 *       QKC_GPU_MMA_MIN_M): warp g computes the QKC_GPU_MMA_ROWS x
 *       QKC_GPU_MMA_COLS tile of C at rows mg·ROWS, columns n_begin +
 *       ng·COLS, where mg = g mod ceil(m/ROWS) and ng = g div ceil(m/ROWS);
 *       ceil(m/ROWS) · ceil((n_end − n_begin)/COLS) warps.
 * The kernel picks its shape from m by the same rule.
 * What the runtime guarantees (runtime/cuda.c checks it):
 *   a   f32 [m][lda], prepared on the host (ir/spec.h semantics, the
 *       pre-pass of runtime/kernel.c: rounded to the compute type, or
 *       int8-quantized and dequantized for compute=int8, act-order
 *       permuted), lda a multiple of QKC_GPU_A_ALIGN elements and at
 *       least chunks_per_row · chunk, padding columns zero, 16-byte aligned;
 *       for kernels with int8_dot set (compute=int8 on weights with integer
 *       codes) each row of 4·lda bytes holds instead the int8 codes
 *       (bytes 0..lda−1), then lda/32 f32 block scales (byte lda), then
 *       lda/32 int32 sums of each block's codes (byte lda + lda/8);
 *   a_scales, a_scales_ld   unused;
 *   w   packed weights (ir/klayout.h), 16-byte aligned;
 *   bias, c, ldc   as for CPU kernels.
 */
#define QKC_GPU_BLOCK 256
#define QKC_GPU_A_ALIGN 32
#define QKC_GPU_MMA_MIN_M 16
#define QKC_GPU_MMA_ROWS 32
#define QKC_GPU_MMA_COLS 16

/*
 * AOT libraries (`qkc compile --emit lib`): beside the kernels, a table the
 * runtime reads to pick a kernel for a spec and a CPU (runtime/aot.c). The
 * code generator writes it as LLVM constants with exactly these C layouts
 * (codegen/aot_table.c); `abi` changes whenever they do.
 */
#define QKC_AOT_MAGIC 0x41434B51u /* "QKCA" */
#define QKC_AOT_ABI 2u /* 2: rows name their architecture */

typedef struct qkc_aot_row {
    const char *spec;     /* canonical spec text */
    const char *target;   /* target name */
    const char *features; /* feature names, for messages */
    const char *symbol;
    const char *schedule; /* schedule text */
    qkc_kernel_fn fn;
    uint32_t feature_bits; /* QKC_FEAT_* of `arch` the kernel needs */
    int32_t int8_dot;      /* A is passed as int8 codes + block scales */
    int32_t arch;          /* QKC_ARCH_* the kernel runs on */
    int32_t sched[6];      /* tile_m tile_n k_unroll vector_bits prefetch n_block */
} qkc_aot_row;

struct qkc_aot_library {
    uint32_t magic; /* QKC_AOT_MAGIC */
    uint32_t abi;   /* QKC_AOT_ABI */
    int32_t version; /* QKC_VERSION of the qkc that wrote it */
    int32_t count;
    const char *name;
    const qkc_aot_row *rows; /* in order of preference */
};

#endif
