/*
 * Running compiled kernels: argument checks, the activation pre-pass and
 * the split of N over the context's thread pool. No LLVM here: this is
 * part of the runtime library that ahead-of-time builds link.
 *
 * The pre-pass gives kernels activations exactly as the reference models
 * them (ir/spec.h): f16/bf16 widened to f32, rounded to the compute type,
 * or quantized to int8 per block of 32 by the very function the reference
 * uses — then, for act-order weights, permuted like the packed columns.
 * When A is f32, needs no rounding and no permutation, kernels read the
 * caller's buffer directly.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/context.h"
#include "runtime/cuda.h"
#include "runtime/kernel.h"
#include "formats/pack.h"
#include "formats/ref.h"
#include "core/spec_object.h"

qkc_status qkc_kernel_wrap(qkc_context *ctx, const qkc_compiled *code, int from_cache, qkc_kernel **out)
{
    qkc_kernel *k = qkc_alloc(ctx, sizeof *k);
    if (!k)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "kernel: out of memory");
    k->ctx = ctx;
    atomic_init(&k->code, code);
    k->owned = NULL;
    k->from_cache = from_cache;
    k->tier = NULL;
    k->tier_stop = NULL;
    atomic_init(&k->alt, NULL);
    k->alt_prefill = 0;
    k->alt_flags = 0;
    atomic_init(&k->alt_off, 0);
    k->alt_compile = NULL;
    *out = k;
    return QKC_OK;
}

void qkc_kernel_destroy(qkc_kernel *kernel)
{
    if (kernel) {
        if (kernel->tier_stop)
            kernel->tier_stop(kernel);
        qkc_free(kernel->ctx, kernel->owned);
        qkc_free(kernel->ctx, kernel);
    }
}

qkc_status qkc_kernel_packed_bytes(const qkc_kernel *kernel, size_t *bytes)
{
    if (!kernel || !bytes)
        return QKC_ERR_INVALID_ARGUMENT;
    *bytes = (size_t)qkc_kernel_code(kernel)->layout.total_bytes;
    return QKC_OK;
}

/* The code for a call with m rows: `alt` when m is on its side of
 * QKC_PREFILL_M (compiled by the first such call), else `code`. A failed
 * compile is a warning; `code` computes the same product. */
static const qkc_compiled *code_for_m(qkc_context *ctx, const qkc_kernel *kernel, const qkc_compiled *code, int64_t m)
{
    qkc_kernel *k = (qkc_kernel *)kernel; /* alt is the handle's cache */
    const qkc_compiled *alt;
    if (!k->alt_compile || (m >= QKC_PREFILL_M) != k->alt_prefill || atomic_load(&k->alt_off))
        return code;
    if ((alt = atomic_load_explicit(&k->alt, memory_order_acquire)) != NULL)
        return alt;
    if (k->alt_compile(k, &alt) != QKC_OK) {
        char msg[512];
        qkc_context_copy_error(k->ctx, msg, sizeof msg); /* the compile reports on the kernel's context */
        if (!atomic_exchange(&k->alt_off, 1))
            qkc_warn(ctx, "the %s kernel for m=%lld could not be compiled (%s); the kernel's own schedule runs",
                     k->alt_prefill ? "prefill" : "decode", (long long)m, msg);
        return code;
    }
    atomic_store_explicit(&k->alt, alt, memory_order_release);
    return alt;
}

static void fill_info(const qkc_kernel *kernel, const qkc_compiled *code, qkc_kernel_info *out)
{
    memset(out, 0, sizeof *out);
    out->target = code->target;
    out->features = code->features;
    out->schedule = code->schedule_text;
    out->layout = code->layout.description;
    out->symbol = code->symbol;
    out->compile_ms = kernel->from_cache ? 0.0 : code->compile_ms;
    out->from_cache = kernel->from_cache;
    out->from_disk = code->from_disk;
    out->ahead_of_time = code->ahead_of_time;
    out->entry = (uintptr_t)code->fn;
}

qkc_status qkc_kernel_query(const qkc_kernel *kernel, qkc_kernel_info *out)
{
    if (!kernel || !out)
        return QKC_ERR_INVALID_ARGUMENT;
    fill_info(kernel, qkc_kernel_code(kernel), out);
    return QKC_OK;
}

qkc_status qkc_kernel_query_m(qkc_context *ctx, const qkc_kernel *kernel, int64_t m, qkc_kernel_info *out)
{
    const qkc_compiled *code;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_query_m: NULL argument");
    if (m < 1 || m > QKC_MAX_DIM)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_query_m: m=%lld must be in 1..%lld", (long long)m,
                        (long long)QKC_MAX_DIM);
    code = code_for_m(ctx, kernel, qkc_kernel_code(kernel), m);
    fill_info(kernel, code, out);
    if (code != qkc_kernel_code(kernel)) {
        out->from_cache = 0;
        out->compile_ms = code->compile_ms;
    }
    return QKC_OK;
}

qkc_status qkc_weights_pack(qkc_context *ctx, const qkc_kernel *kernel, const void *weights, size_t weights_bytes,
                            void *dst, size_t dst_bytes)
{
    qkc_spec spec;
    qkc_diag diag;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !weights || !dst)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_weights_pack: NULL argument");
    /* A spec object for the packer, from the kernel's own description. */
    memset(&spec, 0, sizeof spec);
    spec.ctx = ctx;
    spec.mm = qkc_kernel_code(kernel)->mm;
    if (qkc_format_layout(&spec.mm.w, spec.mm.n, spec.mm.k, &spec.layout, &diag))
        return qkc_fail_diag(ctx, &diag);
    return qkc_pack_weights(ctx, &spec, &qkc_kernel_code(kernel)->layout, weights, weights_bytes, dst, dst_bytes, 0);
}

/* ----------------------------------------------------------------- run */

typedef struct run_job {
    const qkc_compiled *code;
    qkc_kernel_args args;
    int64_t n_block;
} run_job;

static void run_block(void *arg, int64_t index, int64_t count)
{
    const run_job *job = arg;
    qkc_kernel_args a = job->args;
    (void)count;
    a.n_begin = index * job->n_block;
    a.n_end = a.n_begin + job->n_block;
    if (a.n_end > job->code->mm.n)
        a.n_end = job->code->mm.n;
    job->code->fn(&a);
}

/* Σ of n codes, n a constant at each call: a vector sum, not a byte loop
 * (the byte loop was a third of the pre-pass at M = 512). */
static inline int32_t code_sum(const int8_t *q, int n)
{
    int32_t s = 0;
    for (int i = 0; i < n; i++)
        s += q[i];
    return s;
}

/* The sums of each block of `per` int8 codes, 32 or 16 (panel kernels
 * read them: the zero-point and offset corrections, kernel_abi.h a_sums). */
static void block_sums(const int8_t *q, int64_t blocks, int per, int32_t *out)
{
    if (per == 16)
        for (int64_t b = 0; b < blocks * 2; b++)
            out[b] = code_sum(q + b * 16, 16);
    else
        for (int64_t b = 0; b < blocks; b++)
            out[b] = code_sum(q + b * QKC_INT8_BLOCK, QKC_INT8_BLOCK);
}

/* Codes per a_sums entry for a kernel's layout: 16 where its records
 * have two scales (klayout.h Q6), else the int8 block. */
static int sums_per(const qkc_klayout *L)
{
    return L->panel && L->sub == QKC_KSUB_Q6 ? 16 : QKC_INT8_BLOCK;
}

/* The int8 pre-pass of f32 activations with dynamic scales, neither
 * rotated nor split by outliers: each row quantized straight from A by
 * the reference's own function (branch-free, vectorized by the compiler),
 * rows spread over the thread pool. */
typedef struct int8_prepass {
    const float *a;
    int64_t lda, k, kpad, blocks;
    int8_t *q8;
    float *d8;
    int32_t *sums; /* [m][blocks·32/per] sums of each `per` codes, or NULL */
    int per;
} int8_prepass;

static void int8_prepass_row(void *arg, int64_t r, int64_t count)
{
    const int8_prepass *p = arg;
    (void)count;
    qkc_ref_int8_quantize_row(p->a + r * p->lda, p->k, p->q8 + r * p->kpad, p->d8 + r * p->blocks);
    if (p->sums)
        block_sums(p->q8 + r * p->kpad, p->blocks, p->per, p->sums + r * p->blocks * QKC_INT8_BLOCK / p->per);
}

static float load_act(qkc_dtype dt, const void *base, int64_t idx)
{
    switch (dt) {
    case QKC_DTYPE_F16: return qkc_f16_to_f32(((const uint16_t *)base)[idx]);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32(((const uint16_t *)base)[idx]);
    default: return ((const float *)base)[idx];
    }
}

static float round_act(qkc_compute c, float x)
{
    switch (c) {
    case QKC_COMPUTE_BF16: return qkc_bf16_to_f32(qkc_f32_to_bf16(x));
    case QKC_COMPUTE_F16: return qkc_f16_to_f32(qkc_f32_to_f16(x));
    case QKC_COMPUTE_TF32: return qkc_tf32_round(x);
    default: return x;
    }
}

/* Row r of A as kernels on the float path read it (ir/spec.h): widened to
 * f32, rotated (rotate=hadamard:B), rounded to the compute type or int8-
 * quantized and dequantized with the reference's own functions, then
 * permuted like act-order weights' columns, into dst[0..k). row, qrow and
 * dblk are scratch of k floats, k bytes and k/32+1 floats. Returns -1, or
 * the index of a permutation entry outside 0..k-1. */
static int64_t prepare_row(const qkc_matmul *mm, const qkc_act_scales *scales, const void *a, int64_t lda, int64_t r,
                           const int32_t *perm, const uint8_t *oflag, float *row, int8_t *qrow, float *dblk,
                           float *dst)
{
    int64_t k = mm->k;
    for (int64_t i = 0; i < k; i++)
        row[i] = load_act(mm->a_dtype, a, r * lda + i);
    if (mm->rotate)
        qkc_ref_hadamard_row(row, k, mm->rotate);
    if (mm->compute == QKC_COMPUTE_INT8 && oflag) {
        /* outliers=act:T: outlier columns keep their f32 value (dst holds
         * them until the permutation below overwrites it from row) */
        qkc_ref_int8_quantize_split(row, k, oflag, qrow, dblk, dst);
        for (int64_t i = 0; i < k; i++)
            row[i] = oflag[i] ? dst[i] : (float)((double)dblk[i / QKC_INT8_BLOCK] * (double)qrow[i]);
    } else if (mm->compute == QKC_COMPUTE_INT8) {
        qkc_ref_int8_quantize(mm, scales, row, qrow, dblk);
        for (int64_t i = 0; i < k; i++)
            row[i] = (float)((double)dblk[i / QKC_INT8_BLOCK] * (double)qrow[i]);
    } else {
        for (int64_t i = 0; i < k; i++)
            row[i] = round_act(mm->compute, row[i]);
    }
    for (int64_t i = 0; i < k; i++) {
        int64_t src = perm ? perm[i] : i;
        if (src < 0 || src >= k)
            return i;
        dst[i] = row[src];
    }
    return -1;
}

/* ------------------------------------------------------------ GPU */

qkc_status qkc_kernel_prepare_a(qkc_context *ctx, const qkc_kernel *kernel, const void *a, int64_t lda, int64_t m,
                                const void *packed_weights, float *dst, size_t dst_bytes, size_t *needed,
                                int64_t *ld)
{
    const qkc_compiled *code;
    const qkc_matmul *mm;
    int64_t k, ldp;
    const int32_t *perm;
    float *row;
    int8_t *qrow;
    float *dblk;
    uint8_t *oflag = NULL;
    size_t bytes;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !ld)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_prepare_a: NULL argument");
    code = qkc_kernel_code(kernel);
    mm = &code->mm;
    k = mm->k;
    if (m < 1 || m > QKC_MAX_DIM)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_prepare_a: m=%lld must be in 1..%lld",
                        (long long)m, (long long)QKC_MAX_DIM);
    /* rows cover every chunk (padded with zeros), a multiple of QKC_GPU_A_ALIGN */
    ldp = code->layout.chunks_per_row * code->layout.chunk;
    ldp = (ldp + QKC_GPU_A_ALIGN - 1) / QKC_GPU_A_ALIGN * QKC_GPU_A_ALIGN;
    *ld = ldp;
    if ((uint64_t)m > SIZE_MAX / sizeof(float) / (uint64_t)ldp)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "qkc_kernel_prepare_a: %lld x %lld activations are too large",
                        (long long)m, (long long)ldp);
    bytes = (size_t)m * (size_t)ldp * sizeof(float);
    if (needed)
        *needed = bytes;
    if (!dst)
        return QKC_OK;
    if (dst_bytes < bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "qkc_kernel_prepare_a: %zu bytes given, %zu needed", dst_bytes,
                        bytes);
    if (!a || lda < k)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_prepare_a: a is required and lda=%lld >= k=%lld",
                        (long long)lda, (long long)k);
    if (code->layout.permute_k && !packed_weights)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_kernel_prepare_a: act-order weights: the packed weights hold the permutation");
    perm = code->layout.permute_k ? (const int32_t *)((const uint8_t *)packed_weights + code->layout.perm_offset)
                                  : NULL;
    row = qkc_alloc(ctx, (size_t)k * sizeof *row);
    qrow = qkc_alloc(ctx, (size_t)k);
    dblk = qkc_alloc(ctx, (size_t)(k / QKC_INT8_BLOCK + 1) * sizeof *dblk);
    if (!row || !qrow || !dblk) {
        qkc_free(ctx, row);
        qkc_free(ctx, qrow);
        qkc_free(ctx, dblk);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_prepare_a: out of memory");
    }
    if (mm->w.outliers == QKC_OUTLIERS_ACT) {
        if (!(oflag = qkc_alloc(ctx, (size_t)k))) {
            qkc_free(ctx, row);
            qkc_free(ctx, qrow);
            qkc_free(ctx, dblk);
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_prepare_a: out of memory");
        }
        qkc_ref_act_outlier_columns(mm->a_dtype, mm->rotate, mm->w.act_threshold, a, lda, m, k, row, oflag);
    }
    memset(dst, 0, bytes);
    if (code->int8_dot) {
        /* int8 codes, block scales and code sums (ir/kernel_abi.h);
         * such kernels have no act-order permutation */
        float *tmp = qkc_alloc(ctx, (size_t)k * sizeof *tmp);
        if (!tmp) {
            qkc_free(ctx, row);
            qkc_free(ctx, qrow);
            qkc_free(ctx, dblk);
            qkc_free(ctx, oflag);
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_prepare_a: out of memory");
        }
        for (int64_t r = 0; r < m; r++) {
            uint8_t *base = (uint8_t *)(dst + r * ldp);
            int64_t blocks = (k + QKC_INT8_BLOCK - 1) / QKC_INT8_BLOCK;
            prepare_row(mm, NULL, a, lda, r, NULL, NULL, row, qrow, dblk, tmp);
            memcpy(base, qrow, (size_t)k);
            for (int64_t b = 0; b < blocks; b++) {
                int32_t sum = 0;
                for (int64_t i = b * QKC_INT8_BLOCK; i < k && i < (b + 1) * QKC_INT8_BLOCK; i++)
                    sum += qrow[i];
                memcpy(base + ldp + 4 * b, &dblk[b], 4);
                memcpy(base + ldp + ldp / 8 + 4 * b, &sum, 4);
            }
        }
        qkc_free(ctx, tmp);
        qkc_free(ctx, row);
        qkc_free(ctx, qrow);
        qkc_free(ctx, dblk);
        qkc_free(ctx, oflag);
        return QKC_OK;
    }
    for (int64_t r = 0; r < m; r++) {
        int64_t bad = prepare_row(mm, NULL, a, lda, r, perm, oflag, row, qrow, dblk, dst + r * ldp);
        if (bad >= 0) {
            qkc_free(ctx, row);
            qkc_free(ctx, qrow);
            qkc_free(ctx, dblk);
            qkc_free(ctx, oflag);
            return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_kernel_prepare_a: column permutation entry %lld is %lld",
                            (long long)bad, (long long)perm[bad]);
        }
    }
    qkc_free(ctx, row);
    qkc_free(ctx, qrow);
    qkc_free(ctx, dblk);
    qkc_free(ctx, oflag);
    return QKC_OK;
}

int64_t qkc_gpu_warps(const qkc_compiled *code, int64_t m, int64_t n)
{
    if (code->gpu_mma && m >= QKC_GPU_MMA_MIN_M)
        return (m + QKC_GPU_MMA_ROWS - 1) / QKC_GPU_MMA_ROWS * ((n + QKC_GPU_MMA_COLS - 1) / QKC_GPU_MMA_COLS);
    return n;
}

qkc_status qkc_kernel_run_device(qkc_context *ctx, const qkc_kernel *kernel, const qkc_device_args *args)
{
    const qkc_compiled *code;
    const qkc_matmul *mm;
    qkc_kernel_args ka;
    int64_t ldp;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !args)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run_device: NULL argument");
    code = qkc_kernel_code(kernel);
    mm = &code->mm;
    if (!code->gpu)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_kernel_run_device: a CPU kernel (target %s); compile for nvptx-sm80 or nvptx-sm90",
                        code->target);
    ldp = (code->layout.chunks_per_row * code->layout.chunk + QKC_GPU_A_ALIGN - 1) / QKC_GPU_A_ALIGN *
          QKC_GPU_A_ALIGN;
    if (args->m < 1 || args->m > QKC_MAX_DIM || (mm->m && args->m != mm->m))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run_device: m=%lld is not valid for this spec",
                        (long long)args->m);
    if (!args->a || !args->weights || !args->c || (args->a | args->weights) % 16)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_kernel_run_device: a, weights and c are required, a and weights 16-byte aligned");
    if (args->lda < ldp || args->lda % QKC_GPU_A_ALIGN || args->ldc < mm->n)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_kernel_run_device: lda=%lld must be a multiple of %d and >= %lld "
                        "(qkc_kernel_prepare_a), ldc=%lld >= n=%lld",
                        (long long)args->lda, QKC_GPU_A_ALIGN, (long long)ldp, (long long)args->ldc,
                        (long long)mm->n);
    if ((mm->bias == QKC_BIAS_F32) != (args->bias != 0))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run_device: bias %s",
                        mm->bias == QKC_BIAS_F32 ? "is required by the spec" : "given but the spec has none");
    if (args->weights_bytes < code->layout.total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_kernel_run_device: packed weights hold %zu bytes, the kernel reads %llu",
                        args->weights_bytes, (unsigned long long)code->layout.total_bytes);
    memset(&ka, 0, sizeof ka);
    ka.a = (const void *)(uintptr_t)args->a;
    ka.w = (const uint8_t *)(uintptr_t)args->weights;
    ka.bias = (const float *)(uintptr_t)args->bias;
    ka.c = (void *)(uintptr_t)args->c;
    ka.lda = args->lda;
    ka.ldc = args->ldc;
    ka.m = args->m;
    ka.n_begin = 0;
    ka.n_end = mm->n;
    return qkc_cuda_launch(ctx, code->gpu_function, &ka, qkc_gpu_warps(code, args->m, mm->n));
}

/* qkc_kernel_run for a GPU kernel: host operands copied in and out. */
static qkc_status run_gpu_host(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *args)
{
    const qkc_compiled *code = qkc_kernel_code(kernel);
    const qkc_matmul *mm = &code->mm;
    size_t abytes = 0, cbytes;
    int64_t ld = 0;
    float *prep = NULL;
    qkc_device_ptr da = 0, dw = 0, db = 0, dc = 0;
    qkc_device_args d;
    qkc_status st;
    if (args->weights_bytes < code->layout.total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_kernel_run: packed weights hold %zu bytes, the kernel reads %llu (pack them with "
                        "qkc_weights_pack)",
                        args->weights_bytes, (unsigned long long)code->layout.total_bytes);
    if ((st = qkc_kernel_prepare_a(ctx, kernel, args->a, args->lda, args->m, args->weights, NULL, 0, &abytes, &ld)))
        return st;
    cbytes = (size_t)((args->m - 1) * args->ldc + mm->n) * qkc_dtype_get(mm->out_dtype)->bits / 8;
    if (!(prep = qkc_alloc(ctx, abytes)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for activations");
    if ((st = qkc_kernel_prepare_a(ctx, kernel, args->a, args->lda, args->m, args->weights, prep, abytes, NULL, &ld)) ||
        (st = qkc_device_alloc(ctx, abytes, &da)) || (st = qkc_device_alloc(ctx, code->layout.total_bytes, &dw)) ||
        (st = qkc_device_alloc(ctx, cbytes, &dc)) ||
        (args->bias && (st = qkc_device_alloc(ctx, (size_t)mm->n * sizeof(float), &db))) ||
        (st = qkc_device_upload(ctx, da, prep, abytes)) ||
        (st = qkc_device_upload(ctx, dw, args->weights, code->layout.total_bytes)) ||
        (args->bias && (st = qkc_device_upload(ctx, db, args->bias, (size_t)mm->n * sizeof(float)))))
        goto done;
    memset(&d, 0, sizeof d);
    d.a = da, d.lda = ld, d.weights = dw, d.weights_bytes = code->layout.total_bytes, d.bias = db, d.c = dc;
    d.ldc = args->ldc, d.m = args->m;
    if ((st = qkc_kernel_run_device(ctx, kernel, &d)))
        goto done;
    st = qkc_device_download(ctx, args->c, dc, cbytes);
done:
    qkc_free(ctx, prep);
    qkc_device_free(ctx, da);
    qkc_device_free(ctx, dw);
    qkc_device_free(ctx, db);
    qkc_device_free(ctx, dc);
    return st;
}

/* outliers=act:T on the int8 path: the call's outlier columns (flags, an
 * ascending list) and room for their f32 values, o_vals [m][count], plus a
 * k-float row the split keeps them in. row is scratch of k floats. */
static qkc_status act_outliers(qkc_context *ctx, const qkc_matmul *mm, const void *a, int64_t lda, int64_t m,
                               float *row, uint8_t **oflag, int32_t **ocols, float **ovals, int64_t *ocount,
                               float **kept)
{
    int64_t k = mm->k, count, e = 0;
    if (!(*oflag = qkc_alloc(ctx, (size_t)k)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for k=%lld", (long long)k);
    count = qkc_ref_act_outlier_columns(mm->a_dtype, mm->rotate, mm->w.act_threshold, a, lda, m, k, row, *oflag);
    *ocount = count;
    if (!count)
        return QKC_OK;
    *ocols = qkc_alloc(ctx, (size_t)count * sizeof **ocols);
    *ovals = qkc_calloc(ctx, (size_t)m, (size_t)count * sizeof **ovals);
    *kept = qkc_alloc(ctx, (size_t)k * sizeof **kept);
    if (!*ocols || !*ovals || !*kept)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for %lld outlier columns",
                        (long long)count);
    for (int64_t i = 0; i < k; i++)
        if ((*oflag)[i])
            (*ocols)[e++] = (int32_t)i;
    return QKC_OK;
}

qkc_status qkc_kernel_run(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *args,
                          const qkc_run_options *options)
{
    const qkc_compiled *code;
    const qkc_matmul *mm;
    int64_t m, k;
    run_job job;
    float *prep = NULL, *row = NULL, *dblk = NULL, *ovals = NULL, *kept = NULL;
    float *lora_t = NULL;
    int32_t *a_sums = NULL;
    const qkc_lora *lora;
    const qkc_act_scales *scales;
    int8_t *qrow = NULL;
    uint8_t *oflag = NULL;
    int32_t *ocols = NULL;
    int64_t ocount = 0;
    int threads = 0;
    qkc_status st = QKC_OK;
    qkc_threadpool *pool;

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !args)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run: NULL argument");
    code = qkc_kernel_code(kernel); /* one snapshot for the whole call */
    mm = &code->mm;
    m = args->m, k = mm->k;
    if (options && options->struct_size >= offsetof(qkc_run_options, threads) + sizeof options->threads)
        threads = options->threads;
    if (m < 1 || m > QKC_MAX_DIM)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run: m=%lld must be in 1..%lld", (long long)m,
                        (long long)QKC_MAX_DIM);
    if (mm->m && m != mm->m)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run: the spec fixes m=%lld, the call gives m=%lld",
                        (long long)mm->m, (long long)m);
    code = code_for_m(ctx, kernel, code, m);
    mm = &code->mm;
    if (!args->a || !args->weights || !args->c)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run: a, weights and c are required");
    if (args->lda < k || args->ldc < mm->n)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run: lda=%lld must be >= k=%lld and ldc=%lld >= n=%lld",
                        (long long)args->lda, (long long)k, (long long)args->ldc, (long long)mm->n);
    if ((mm->bias == QKC_BIAS_F32) != (args->bias != NULL))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, mm->bias == QKC_BIAS_F32
                                                           ? "qkc_kernel_run: the spec has bias=f32 but bias is NULL"
                                                           : "qkc_kernel_run: bias given but the spec has no bias");
    if (args->weights_bytes < code->layout.total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_kernel_run: packed weights hold %zu bytes, the kernel reads %llu (pack them with "
                        "qkc_weights_pack)",
                        args->weights_bytes, (unsigned long long)code->layout.total_bytes);
    if ((st = qkc_run_extras(ctx, "qkc_kernel_run", mm, options, &lora, &scales)))
        return st;
    if (code->gpu)
        return run_gpu_host(ctx, kernel, args);

    memset(&job, 0, sizeof job);
    job.code = code;
    job.args.a = args->a;
    job.args.lda = args->lda;
    if (code->int8_dot) {
        /* int8 codes and block scales exactly as the reference makes them,
         * rows padded with zeros to a multiple of 64 so kernels read whole
         * vectors (the zero codes contribute nothing). */
        int64_t kpad = (k + 63) / 64 * 64, blocks = kpad / QKC_INT8_BLOCK;
        int8_t *q8 = qkc_calloc(ctx, (size_t)m, (size_t)kpad);
        float *d8 = qkc_calloc(ctx, (size_t)m, (size_t)blocks * sizeof *d8);
        int per = sums_per(&code->layout);
        int32_t *sums = code->layout.panel ? qkc_alloc(ctx, (size_t)m * (size_t)blocks * (QKC_INT8_BLOCK / (size_t)per) *
                                                                sizeof *sums)
                                           : NULL;
        row = qkc_alloc(ctx, (size_t)k * sizeof *row);
        prep = (float *)q8;
        dblk = d8;
        a_sums = sums;
        if (!q8 || !d8 || !row || (code->layout.panel && !sums)) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for %lld x %lld activations",
                          (long long)m, (long long)k);
            goto done;
        }
        if (mm->w.outliers == QKC_OUTLIERS_ACT &&
            (st = act_outliers(ctx, mm, args->a, args->lda, m, row, &oflag, &ocols, &ovals, &ocount, &kept)))
            goto done;
        if (mm->a_dtype == QKC_DTYPE_F32 && !mm->rotate && !ocount && (mm->ascale == QKC_ASCALE_DYNAMIC || !scales)) {
            int8_prepass p = {args->a, args->lda, k, kpad, blocks, q8, d8, sums, per};
            /* rows on the pool when there are enough of them to pay for it */
            if (threads != 1 && m >= 4 && m * k >= 65536) {
                if (!(pool = qkc_context_pool(ctx, &st)))
                    goto done;
                qkc_threadpool_parallel_for(pool, threads, int8_prepass_row, &p, m);
            } else {
                for (int64_t r = 0; r < m; r++)
                    int8_prepass_row(&p, r, m);
            }
        } else {
            /* widened, rotated, split by outliers or statically scaled */
            for (int64_t r = 0; r < m; r++) {
                for (int64_t i = 0; i < k; i++)
                    row[i] = load_act(mm->a_dtype, args->a, r * args->lda + i);
                if (mm->rotate)
                    qkc_ref_hadamard_row(row, k, mm->rotate);
                if (ocount) {
                    /* outlier columns out of the int8 codes, into o_vals */
                    qkc_ref_int8_quantize_split(row, k, oflag, q8 + r * kpad, d8 + r * blocks, kept);
                    for (int64_t e = 0; e < ocount; e++)
                        ovals[r * ocount + e] = kept[ocols[e]];
                } else {
                    qkc_ref_int8_quantize(mm, scales, row, q8 + r * kpad, d8 + r * blocks);
                }
                if (sums)
                    block_sums(q8 + r * kpad, blocks, per, sums + r * blocks * QKC_INT8_BLOCK / per);
            }
        }
        job.args.o_cols = ocols;
        job.args.o_vals = ovals;
        job.args.o_count = ocount;
        job.args.a = q8;
        job.args.lda = kpad;
        job.args.a_scales = d8;
        job.args.a_scales_ld = blocks;
        job.args.a_sums = sums;
    } else if (mm->a_dtype != QKC_DTYPE_F32 || mm->compute != QKC_COMPUTE_F32 || code->layout.permute_k ||
               mm->rotate) {
        if (mm->w.outliers == QKC_OUTLIERS_ACT) {
            float *scratch = qkc_alloc(ctx, (size_t)k * sizeof *scratch);
            oflag = qkc_alloc(ctx, (size_t)k);
            if (!scratch || !oflag) {
                qkc_free(ctx, scratch);
                st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for k=%lld", (long long)k);
                goto done;
            }
            qkc_ref_act_outlier_columns(mm->a_dtype, mm->rotate, mm->w.act_threshold, args->a, args->lda, m, k,
                                        scratch, oflag);
            qkc_free(ctx, scratch);
        }
        const int32_t *perm = code->layout.permute_k
                                  ? (const int32_t *)((const uint8_t *)args->weights + code->layout.perm_offset)
                                  : NULL;
        prep = qkc_calloc(ctx, (size_t)m, (size_t)k * sizeof *prep);
        row = qkc_alloc(ctx, (size_t)k * sizeof *row);
        qrow = qkc_alloc(ctx, (size_t)k);
        dblk = qkc_alloc(ctx, (size_t)(k / QKC_INT8_BLOCK + 1) * sizeof *dblk);
        if (!prep || !row || !qrow || !dblk) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for %lld x %lld activations",
                          (long long)m, (long long)k);
            goto done;
        }
        for (int64_t r = 0; r < m; r++) {
            int64_t bad = prepare_row(mm, scales, args->a, args->lda, r, perm, oflag, row, qrow, dblk, prep + r * k);
            if (bad >= 0) {
                st = qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_kernel_run: column permutation entry %lld is %lld",
                              (long long)bad, (long long)perm[bad]);
                goto done;
            }
        }
        job.args.a = prep;
        job.args.lda = k;
    }
    if (lora) {
        /* T = X·Aᵀ by the reference's function, rows padded with zeros to a
         * multiple of 16 so the kernel reads whole vectors */
        int64_t ldt = (mm->lora_rank + 15) / 16 * 16;
        if (!(lora_t = qkc_calloc(ctx, (size_t)m, (size_t)ldt * sizeof *lora_t))) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_run: out of memory for the LoRA activations");
            goto done;
        }
        qkc_ref_lora_t(mm, args->a, args->lda, m, lora->a, lora_t, ldt);
        job.args.lora_t = lora_t;
        job.args.lora_b = lora->b;
        job.args.lora_t_ld = ldt;
        job.args.lora_scale = lora->scale;
    }
    job.args.w = args->weights;
    job.args.bias = args->bias;
    job.args.c = args->c;
    job.args.ldc = args->ldc;
    job.args.m = m;
    job.n_block = code->schedule.n_block;
    {
        int64_t blocks = (mm->n + job.n_block - 1) / job.n_block;
        if (threads == 1 || blocks == 1) {
            for (int64_t b = 0; b < blocks; b++)
                run_block(&job, b, blocks);
        } else {
            pool = qkc_context_pool(ctx, &st);
            if (!pool)
                goto done;
            qkc_threadpool_parallel_for(pool, threads, run_block, &job, blocks);
        }
    }
done:
    qkc_free(ctx, lora_t);
    qkc_free(ctx, a_sums);
    qkc_free(ctx, prep);
    qkc_free(ctx, row);
    qkc_free(ctx, qrow);
    qkc_free(ctx, dblk);
    qkc_free(ctx, oflag);
    qkc_free(ctx, ocols);
    qkc_free(ctx, ovals);
    qkc_free(ctx, kept);
    return st;
}

qkc_status qkc_kernel_run_grouped(qkc_context *ctx, const qkc_kernel *kernel, const qkc_matmul_args *groups,
                                  int64_t count, const qkc_run_options *options)
{
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || (!groups && count))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run_grouped: NULL argument");
    if (count < 0)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_run_grouped: count=%lld", (long long)count);
    for (int64_t g = 0; g < count; g++) {
        qkc_status st;
        char msg[512];
        if (groups[g].m == 0)
            continue;
        if ((st = qkc_kernel_run(ctx, kernel, &groups[g], options)) != QKC_OK) {
            qkc_context_copy_error(ctx, msg, sizeof msg);
            return qkc_fail(ctx, st, "qkc_kernel_run_grouped: group %lld: %s", (long long)g, msg);
        }
    }
    return QKC_OK;
}
