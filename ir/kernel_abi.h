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
 *
 * The fields of qkc_kernel_args are one list, ir/kernel_args.def: the C
 * struct below, its field indices, the LLVM struct the code generator
 * builds (codegen/emit.c) and the struct AOT headers declare
 * (compiler/aotgen.c) all come from it, and the checks at the end of this
 * header keep the C layout and the code generator's in step.
 *
 *   a, lda, m          f32 [m][lda], or int8 [m][lda] for the int8 path;
 *   a_scales, a_scales_ld   int8 path: [m][a_scales_ld] block scales, else
 *                      NULL / 0;
 *   a_sums             int8 path: [m][a_scales_ld] int32 sums of each
 *                      block's 32 codes (the pre-pass computes them once;
 *                      panel kernels read them), or [m][2·a_scales_ld]
 *                      sums of each 16 codes for panels with two scales a
 *                      record (ir/klayout.h Q6), else NULL;
 *   w                  packed weights;
 *   bias               [N] or NULL;
 *   c, ldc             [m][ldc] in the output dtype;
 *   lora_t, lora_b, lora_t_ld, lora_scale   lora=R:DTYPE (ir/spec.h): T =
 *                      X·Aᵀ, f32 [m][lora_t_ld] with columns R .. lora_t_ld-1
 *                      zero (lora_t_ld a multiple of 16), adapter B [N][R]
 *                      in the lora dtype, the scale s; NULL / 0 otherwise;
 *   o_cols, o_vals, o_count   outliers=act:T on the int8 path: the call's
 *                      activation outlier columns (o_count of them,
 *                      ascending, original column numbers) and their f32
 *                      values o_vals [m][o_count]; the int8 codes of those
 *                      columns are 0. Kernels add Σ_e o_vals[m][e] ·
 *                      W[n][o_cols[e]] (W dequantized exactly). Unused
 *                      (NULL, 0) otherwise.
 */
#ifndef QKC_IR_KERNEL_ABI_H
#define QKC_IR_KERNEL_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef struct qkc_kernel_args {
#define QKC_KARG(NAME, field, c_type, kind, comment) c_type field;
#include "ir/kernel_args.def"
#undef QKC_KARG
} qkc_kernel_args;

/* Field indices of qkc_kernel_args as the code generator addresses them. */
enum {
#define QKC_KARG(NAME, field, c_type, kind, comment) QKC_KARG_##NAME,
#include "ir/kernel_args.def"
#undef QKC_KARG
    QKC_KARG_COUNT
};

typedef void (*qkc_kernel_fn)(const qkc_kernel_args *args);

/*
 * GPU kernels (codegen/lower_ptx.c, NVPTX targets) are PTX entries
 *
 *     .entry qkc_kernel_<hash>(.param .align 8 .b8 args[152])
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
 * fields of its structs are one list, ir/aot_table.def; the code generator
 * writes the table as LLVM constants from the same list
 * (codegen/aot_table.c). `abi` changes whenever the list does.
 */
#define QKC_AOT_MAGIC 0x41434B51u /* "QKCA" */
#define QKC_AOT_ABI 4u /* 2: rows name their architecture; 3: a_sums, panel rows; 4: compact panels */

typedef struct qkc_aot_row {
#define QKC_AOT_ROW(field, c_type, dims, kind, comment) c_type field dims;
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
} qkc_aot_row;

struct qkc_aot_library {
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment) c_type field dims;
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
};

/*
 * Layout checks. The code generator types each field by its kind (the
 * lists above), and LLVM lays a struct out as C does: each field at the
 * next multiple of its alignment after the previous one, the size a
 * multiple of the largest alignment. Every qkc target (x86-64, AArch64,
 * NVPTX64) has 64-bit pointers and naturally aligned integers and floats.
 * The *_layout structs are those layouts built from the kinds alone (a
 * byte array of the kind's size at the kind's alignment per field); the C
 * structs must match them field by field. A C type that disagrees with
 * its kind, or a 32-bit build, stops the compile here.
 */
#define QKC_ABI_SIZE_PTR 8
#define QKC_ABI_ALIGN_PTR 8
#define QKC_ABI_SIZE_STR 8
#define QKC_ABI_ALIGN_STR 8
#define QKC_ABI_SIZE_FN 8
#define QKC_ABI_ALIGN_FN 8
#define QKC_ABI_SIZE_ROWS 8
#define QKC_ABI_ALIGN_ROWS 8
#define QKC_ABI_SIZE_I64 8
#define QKC_ABI_ALIGN_I64 8
#define QKC_ABI_SIZE_I32 4
#define QKC_ABI_ALIGN_I32 4
#define QKC_ABI_SIZE_U32 4
#define QKC_ABI_ALIGN_U32 4
#define QKC_ABI_SIZE_F32 4
#define QKC_ABI_ALIGN_F32 4

struct qkc_kernel_args_layout {
#define QKC_KARG(NAME, field, c_type, kind, comment)                                                               \
    _Alignas(QKC_ABI_ALIGN_##kind) unsigned char field[QKC_ABI_SIZE_##kind];
#include "ir/kernel_args.def"
#undef QKC_KARG
};

struct qkc_aot_row_layout {
#define QKC_AOT_ROW(field, c_type, dims, kind, comment) \
    _Alignas(QKC_ABI_ALIGN_##kind) unsigned char field dims[QKC_ABI_SIZE_##kind];
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
};

struct qkc_aot_library_layout {
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment) \
    _Alignas(QKC_ABI_ALIGN_##kind) unsigned char field dims[QKC_ABI_SIZE_##kind];
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
};

#define QKC_ABI_CHECK(type, layout, field)                                                                         \
    _Static_assert(offsetof(type, field) == offsetof(struct layout, field) &&                                      \
                       sizeof(((type *)0)->field) == sizeof(((struct layout *)0)->field),                          \
                   #type "." #field ": its C type does not match its kind");
#define QKC_KARG(NAME, field, c_type, kind, comment) QKC_ABI_CHECK(qkc_kernel_args, qkc_kernel_args_layout, field)
#include "ir/kernel_args.def"
#undef QKC_KARG
#define QKC_AOT_ROW(field, c_type, dims, kind, comment) QKC_ABI_CHECK(qkc_aot_row, qkc_aot_row_layout, field)
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)                                                        \
    QKC_ABI_CHECK(struct qkc_aot_library, qkc_aot_library_layout, field)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
#undef QKC_ABI_CHECK
_Static_assert(sizeof(qkc_kernel_args) == sizeof(struct qkc_kernel_args_layout), "qkc_kernel_args: size");
_Static_assert(sizeof(qkc_aot_row) == sizeof(struct qkc_aot_row_layout), "qkc_aot_row: size");
_Static_assert(sizeof(struct qkc_aot_library) == sizeof(struct qkc_aot_library_layout), "qkc_aot_library: size");

#endif
