/*
 * Lowering a matmul to an NVPTX kernel (see lower_ptx.h).
 *
 * Kernel shape, bandwidth first (GEMV and small M): one warp per output
 * column n. Lane l reads chunk records l, l+32, l+64, ... of weight row n,
 * so one step of the warp reads 32 consecutive records: a contiguous,
 * coalesced span of 32·chunk_bytes bytes. Each lane loads its record with
 * the widest aligned loads the layout allows (128-bit ld.global.nc.v4 when
 * records are multiples of 16 bytes), decodes the weights in registers
 * (affine, 16-entry table, fp8, dense; fields extracted with shifts) and
 * runs TM = tile_m rows of A against them with FMAs (A also through
 * 128-bit loads). The warp then reduces each accumulator with shfl.sync
 * butterflies and lane 0 applies the epilogue (bias, act, output dtype).
 * Rows of A beyond TM reuse the weight row from L1 on the next pass.
 * int8 codes (qkc_lower_ptx_int8) use dp4a over 32-code records instead.
 *
 * Tensor cores (qkc_lower_ptx_mma, m >= QKC_GPU_MMA_MIN_M at run time):
 * one warp per QKC_GPU_MMA_ROWS x QKC_GPU_MMA_COLS tile of C with
 * mma.sync (bf16, f16, tf32, s8), see emit_mma.
 *
 * Semantics follow lower.c: weights are dequantized exactly (one rounding
 * per operation, no contraction), rounded to the compute type for
 * bf16/f16/tf32 (emit.h), and multiplied by activations the host already
 * prepared. gelu and silu use f32 approximations with the ISA's exp2
 * (emit.h, qkc_emit_activation) where the CPU kernels call libm in double:
 * GPUs have no libm to call. The instructions of a warp — special
 * registers, shuffles, dp4a, mma.sync — are the NVPTX hooks of isa.h
 * (isa_nvptx.c).
 */
#include "codegen/lower_ptx.h"

#include <string.h>

#include "codegen/emit.h"
#include "codegen/isa.h"
#include "codegen/llvm_compat.h"
#include "codegen/lower.h"
#include "ir/kernel_abi.h"

#define MAX_UNITS 192

typedef struct pg {
    qkc_emit e;
    const qkc_isa *isa;
    const qkc_matmul *mm;
    const qkc_klayout *L;
    int C, TM;
    int lw; /* bytes per weight load */
    int ub; /* bytes per unit: min(lw, 4) */
    LLVMTypeRef gptr, v4f; /* pointers to global memory, <4 x float> */
    LLVMValueRef a, w, bias, c, lda, ldc, m;
    LLVMValueRef table; /* TABLE: [16 x float] in constant memory */
    unsigned invariant_kind;
    int int8;  /* A holds int8 codes + block scales and sums (qkc_lower_ptx_int8) */
    int mma_k; /* k per mma.sync step; 0: no tensor-core path */
    int raw;   /* round_compute leaves f16/bf16 to pack2 (cvt.rn, the same RNE) */
    LLVMValueRef units[MAX_UNITS];
} pg;

static LLVMValueRef sreg(pg *g, const char *name)
{
    return g->isa->thread_register(&g->e, name);
}

/* A read-only global load: !invariant.load lets NVPTX use ld.global.nc. */
static LLVMValueRef load_ro(pg *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align)
{
    qkc_emit *E = &g->e;
    LLVMValueRef v = LLVMBuildLoad2(E->b, ty, p, "");
    LLVMSetAlignment(v, align);
    LLVMSetMetadata(v, g->invariant_kind, LLVMMetadataAsValue(E->ctx, LLVMMDNodeInContext2(E->ctx, NULL, 0)));
    return v;
}

int qkc_lower_ptx_load_bytes(const qkc_klayout *L)
{
    int lw = 16;
    while (lw > 1 && (L->chunk_bytes % lw || L->row_bytes % (uint64_t)lw))
        lw /= 2;
    return lw;
}

/* ------------------------------------------------------ record fields */

/* Load one chunk record into g->units (i32 values holding ub bytes each). */
static void load_record(pg *g, LLVMValueRef rec)
{
    qkc_emit *E = &g->e;
    int n = g->L->chunk_bytes / g->lw;
    for (int i = 0; i < n; i++) {
        LLVMValueRef p = gep8(E, rec, i64c(E, (int64_t)i * g->lw));
        if (g->lw >= 8) {
            int words = g->lw / 4;
            LLVMValueRef v = load_ro(g, LLVMVectorType(E->i32, (unsigned)words), p, (unsigned)g->lw);
            for (int j = 0; j < words; j++)
                g->units[i * words + j] = LLVMBuildExtractElement(E->b, v, i32c(E, j), "");
        } else {
            LLVMTypeRef t = g->lw == 4 ? E->i32 : g->lw == 2 ? E->i16 : E->i8;
            LLVMValueRef v = load_ro(g, t, p, (unsigned)g->lw);
            g->units[i] = g->lw == 4 ? v : LLVMBuildZExt(E->b, v, E->i32, "");
        }
    }
}

/* `bits` (8, 16 or 32) bits of the record at byte offset off, as i32. */
static LLVMValueRef field_bits(pg *g, int off, int bits)
{
    qkc_emit *E = &g->e;
    int bytes = bits / 8, in = off % g->ub;
    LLVMValueRef u = g->units[off / g->ub];
    if (in + bytes <= g->ub) {
        if (in)
            u = LLVMBuildLShr(E->b, u, i32c(E, 8 * in), "");
        if (bits < 32)
            u = LLVMBuildAnd(E->b, u, i32c(E, (int64_t)((1u << bits) - 1)), "");
        return u;
    }
    {
        /* straddles units: assemble from halves */
        LLVMValueRef lo = field_bits(g, off, bits / 2), hi = field_bits(g, off + bytes / 2, bits / 2);
        return LLVMBuildOr(E->b, lo, LLVMBuildShl(E->b, hi, i32c(E, bits / 2), ""), "");
    }
}

static LLVMValueRef as_f32(pg *g, LLVMValueRef bits)
{
    qkc_emit *E = &g->e;
    return LLVMBuildBitCast(E->b, bits, E->f32, "");
}

static LLVMValueRef half_to_f32(pg *g, LLVMValueRef bits16)
{
    qkc_emit *E = &g->e;
    LLVMValueRef h = LLVMBuildBitCast(E->b, LLVMBuildTrunc(E->b, bits16, E->i16, ""), E->f16, "");
    return LLVMBuildFPExt(E->b, h, E->f32, "");
}

static LLVMValueRef field_f32(pg *g, qkc_kfield kind, int off)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    switch (kind) {
    case QKC_KF_F16: return half_to_f32(g, field_bits(g, off, 16));
    case QKC_KF_F32: return as_f32(g, field_bits(g, off, 32));
    case QKC_KF_I16: {
        LLVMValueRef v = LLVMBuildTrunc(E->b, field_bits(g, off, 16), E->i16, "");
        return LLVMBuildSIToFP(E->b, v, E->f32, "");
    }
    case QKC_KF_E8M0: return qkc_emit_e8m0_to_f32(E, field_bits(g, off, 8), L->e8m0_half, L->e8m0_ff_is_nan);
    default: return NULL;
    }
}

/* The loaded record's scale, minimum and zero as f32 (NULL where the
 * layout has none). */
static void record_fields(pg *g, LLVMValueRef *s, LLVMValueRef *mn, LLVMValueRef *z)
{
    const qkc_klayout *L = g->L;
    *s = L->scale != QKC_KF_NONE ? field_f32(g, L->scale, L->scale_off) : NULL;
    *mn = L->min != QKC_KF_NONE ? field_f32(g, L->min, L->min_off) : NULL;
    *z = L->zero != QKC_KF_NONE ? field_f32(g, L->zero, L->zero_off) : NULL;
}

/* Round to the compute type (emit.h), except where pack2 rounds. */
static LLVMValueRef round_compute(pg *g, LLVMValueRef x)
{
    if (g->raw && (g->mm->compute == QKC_COMPUTE_F16 || g->mm->compute == QKC_COMPUTE_BF16))
        return x;
    return qkc_emit_round_compute(&g->e, g->mm->compute, x);
}

/* The code of element i of the loaded record, as i32. */
static LLVMValueRef code_at(pg *g, int i)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef code;
    switch (L->code_bits) {
    case 4: {
        int h = g->C / 2;
        code = field_bits(g, L->code_off + i % h, 8);
        return i < h ? LLVMBuildAnd(E->b, code, i32c(E, 15), "") : LLVMBuildLShr(E->b, code, i32c(E, 4), "");
    }
    case 8: return field_bits(g, L->code_off + i, 8);
    case 16: return field_bits(g, L->code_off + 2 * (L->decode == QKC_KDEC_VQ ? i / L->vq_dim : i), 16);
    default: return field_bits(g, L->code_off + 4 * i, 32);
    }
}

/* Element i of the loaded record, dequantized (and rounded to the compute
 * type). s, mn, z: the record's scale, minimum and zero (or NULL). */
static LLVMValueRef element_code(pg *g, LLVMValueRef code, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z);

static LLVMValueRef element(pg *g, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z)
{
    return element_code(g, code_at(g, i), i, s, mn, z);
}

/* Element i, given its code (i matters only to VQ codebooks). */
static LLVMValueRef element_code(pg *g, LLVMValueRef code, int i, LLVMValueRef s, LLVMValueRef mn, LLVMValueRef z)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef x;
    switch (L->decode) {
    case QKC_KDEC_F32: return round_compute(g, as_f32(g, code));
    case QKC_KDEC_F16: return round_compute(g, half_to_f32(g, code));
    case QKC_KDEC_BF16: return round_compute(g, as_f32(g, LLVMBuildShl(E->b, code, i32c(E, 16), "")));
    case QKC_KDEC_AFFINE: {
        LLVMValueRef v = LLVMBuildSub(E->b, code, i32c(E, L->zero_const), "");
        x = LLVMBuildSIToFP(E->b, v, E->f32, "");
        if (z)
            x = LLVMBuildFSub(E->b, x, z, ""); /* code − zero: exact in f32 */
        break;
    }
    case QKC_KDEC_TABLE: {
        LLVMValueRef idx[2] = {i32c(E, 0), code};
        LLVMTypeRef at = LLVMArrayType(E->f32, 16);
        x = LLVMBuildLoad2(E->b, E->f32, LLVMBuildInBoundsGEP2(E->b, at, g->table, idx, 2, ""), "");
        break;
    }
    case QKC_KDEC_LUT: {
        /* tables[tidx][code] from the packed blob (L1-cached, read-only) */
        LLVMValueRef t = L->tidx != QKC_KF_NONE ? LLVMBuildZExt(E->b, field_bits(g, L->tidx_off, 32), E->i64, "")
                                                : i64c(E, 0);
        LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildShl(E->b, t, i64c(E, 6), ""),
                                        LLVMBuildZExt(E->b, LLVMBuildShl(E->b, code, i32c(E, 2), ""), E->i64, ""), "");
        off = LLVMBuildAdd(E->b, off, i64c(E, (int64_t)L->table_offset), "");
        x = load_ro(g, E->f32, gep8(E, g->w, off), 4);
        break;
    }
    case QKC_KDEC_VQ: {
        /* codebook[code][i % vq_dim] from the packed blob */
        LLVMValueRef off = LLVMBuildMul(E->b, LLVMBuildZExt(E->b, code, E->i64, ""), i64c(E, (int64_t)L->vq_dim * 4), "");
        off = LLVMBuildAdd(E->b, off, i64c(E, (int64_t)L->table_offset + 4 * (i % L->vq_dim)), "");
        x = load_ro(g, E->f32, gep8(E, g->w, off), 4);
        break;
    }
    case QKC_KDEC_FP8E4M3: x = qkc_emit_fp8_to_f32(E, code, 0); break;
    default: x = qkc_emit_fp8_to_f32(E, code, 1); break;
    }
    if (s)
        x = LLVMBuildFMul(E->b, x, s, "");
    if (mn)
        x = LLVMBuildFAdd(E->b, x, mn, "");
    return round_compute(g, x);
}

/* ---------------------------------------------------------- epilogue */

/* if (ok) c[r][n] = act(v + bias[n]) in the output dtype; the builder
 * continues after it. */
static void store_if(pg *g, LLVMValueRef ok, LLVMValueRef v, LLVMValueRef r, LLVMValueRef n)
{
    qkc_emit *E = &g->e;
    LLVMBasicBlockRef st = block(E, "store"), next = block(E, "store.next");
    LLVMBuildCondBr(E->b, ok, st, next);
    LLVMPositionBuilderAtEnd(E->b, st);
    if (g->mm->bias == QKC_BIAS_F32)
        v = LLVMBuildFAdd(E->b, v, load_ro(g, E->f32, LLVMBuildGEP2(E->b, E->f32, g->bias, &n, 1, ""), 4), "");
    qkc_emit_store_out(E, g->mm->out_dtype, qkc_emit_activation(E, g->mm->act, v, g->isa), g->c, g->ldc, r, n);
    LLVMBuildBr(E->b, next);
    LLVMPositionBuilderAtEnd(E->b, next);
}

/* ------------------------------------------------------- int8 path */

/* The integer weight value of a code: code − zero constant (AFFINE) or
 * the table's integer entry (TABLE), as i32. */
static LLVMValueRef int8_of_code(pg *g, LLVMValueRef code)
{
    qkc_emit *E = &g->e;
    if (g->L->decode == QKC_KDEC_TABLE) {
        LLVMValueRef idx[2] = {i32c(E, 0), code};
        LLVMTypeRef at = LLVMArrayType(E->f32, 16);
        LLVMValueRef v = LLVMBuildLoad2(E->b, E->f32, LLVMBuildInBoundsGEP2(E->b, at, g->table, idx, 2, ""), "");
        return LLVMBuildFPToSI(E->b, v, E->i32, "");
    }
    return LLVMBuildSub(E->b, code, i32c(E, g->L->zero_const), "");
}

/* Elements 4w..4w+3 of the loaded record as one word of four s8 lanes. */
static LLVMValueRef int8_word(pg *g, int w)
{
    qkc_emit *E = &g->e;
    LLVMValueRef r = NULL;
    for (int j = 0; j < 4; j++) {
        LLVMValueRef v = LLVMBuildAnd(E->b, int8_of_code(g, code_at(g, 4 * w + j)), i32c(E, 255), "");
        if (j)
            v = LLVMBuildShl(E->b, v, i32c(E, 8 * j), "");
        r = r ? LLVMBuildOr(E->b, r, v, "") : v;
    }
    return r;
}

/* The loaded record's factors for the int8 dot product: its elements are
 * x = v·fd + fs (v the integer value), so with activations d·q over the
 * record, Σ x·d·q = d·(fd·Σ v·q + fs·Σ q). */
static void int8_factors(pg *g, LLVMValueRef *fd, LLVMValueRef *fs)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef s = L->scale != QKC_KF_NONE ? field_f32(g, L->scale, L->scale_off) : NULL;
    LLVMValueRef mn = L->min != QKC_KF_NONE ? field_f32(g, L->min, L->min_off) : NULL;
    LLVMValueRef z = L->decode == QKC_KDEC_AFFINE && L->zero != QKC_KF_NONE ? field_f32(g, L->zero, L->zero_off)
                                                                             : NULL;
    *fd = s ? s : f32c(E, 1.0);
    *fs = mn ? mn : f32c(E, 0.0);
    if (z)
        *fs = LLVMBuildFSub(E->b, *fs, s ? LLVMBuildFMul(E->b, s, z, "") : z, "");
}

int qkc_lower_ptx_int8(const qkc_matmul *mm, const qkc_klayout *L)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(mm->w.dtype);
    if (mm->compute != QKC_COMPUTE_INT8 || mm->w.outliers == QKC_OUTLIERS_ACT || L->mixed || L->fallback ||
        L->permute_k || L->outliers || L->chunk != 32 || !dd)
        return 0;
    if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8))
        return L->zero_const <= 128 && (1 << dd->bits) - 1 - L->zero_const <= 127;
    return L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L);
}

/* GEMV, int8: dp4a over the loaded record's 32 codes and each row's 32
 * int8 activations (one block: its scale and code sum). rix: the rows. */
static void gemv_int8_record(pg *g, LLVMValueRef ci, LLVMValueRef k0, LLVMValueRef *rix, LLVMValueRef *acc)
{
    qkc_emit *E = &g->e;
    LLVMValueRef fd, fs, w[8];
    LLVMValueRef lda4 = LLVMBuildMul(E->b, g->lda, i64c(E, 4), "");
    LLVMValueRef sums = LLVMBuildAdd(E->b, g->lda, LLVMBuildSDiv(E->b, g->lda, i64c(E, 8), ""), "");
    LLVMValueRef cb = LLVMBuildShl(E->b, ci, i64c(E, 2), "");
    int8_factors(g, &fd, &fs);
    for (int i = 0; i < 8; i++)
        w[i] = int8_word(g, i);
    for (int t = 0; t < g->TM; t++) {
        LLVMValueRef base = LLVMBuildMul(E->b, rix[t], lda4, "");
        LLVMValueRef dot = i32c(E, 0), d, q, inner;
        for (int h = 0; h < 2; h++) {
            LLVMValueRef p = gep8(E, g->a, LLVMBuildAdd(E->b, base, LLVMBuildAdd(E->b, k0, i64c(E, 16 * h), ""), ""));
            LLVMValueRef v = load_ro(g, LLVMVectorType(E->i32, 4), p, 16);
            for (int j = 0; j < 4; j++)
                dot = g->isa->dot4_s8(E, w[4 * h + j], LLVMBuildExtractElement(E->b, v, i32c(E, j), ""), dot);
        }
        d = load_ro(g, E->f32, gep8(E, g->a, LLVMBuildAdd(E->b, base, LLVMBuildAdd(E->b, g->lda, cb, ""), "")), 4);
        q = load_ro(g, E->i32, gep8(E, g->a, LLVMBuildAdd(E->b, base, LLVMBuildAdd(E->b, sums, cb, ""), "")), 4);
        inner = LLVMBuildFAdd(E->b, LLVMBuildFMul(E->b, fd, LLVMBuildSIToFP(E->b, dot, E->f32, ""), ""),
                              LLVMBuildFMul(E->b, fs, LLVMBuildSIToFP(E->b, q, E->f32, ""), ""), "");
        LLVMBuildStore(E->b, LLVMBuildFAdd(E->b, LLVMBuildLoad2(E->b, E->f32, acc[t], ""),
                                           LLVMBuildFMul(E->b, d, inner, ""), ""), acc[t]);
    }
}

/* ------------------------------------------------- tensor-core path */

#define MMA_MT (QKC_GPU_MMA_ROWS / 16) /* m16 tiles per warp */
#define MMA_NT (QKC_GPU_MMA_COLS / 8)  /* n8 tiles per warp */
#define MMA_MAX_STEPS 32               /* mma k-steps per chunk record */

int qkc_lower_ptx_mma(const qkc_matmul *mm, const qkc_klayout *L)
{
    int k = qkc_isa_nvptx.mma_k(mm->compute);
    if (!k || L->mixed || L->outliers || (mm->m && mm->m < QKC_GPU_MMA_MIN_M))
        return 0;
    if (mm->compute == QKC_COMPUTE_INT8)
        return qkc_lower_ptx_int8(mm, L);
    return L->chunk % k == 0 && L->chunk / k <= MMA_MAX_STEPS;
}

/*
 * Per-lane codes. On the tensor-core path each lane needs elements
 * i = tt + c of a record, tt a lane-dependent multiple of 2 (0..12) and c
 * a constant; it loads just the bytes of those codes, at lane-dependent
 * addresses, instead of decoding the whole record. For 4-bit codes
 * (element i < C/2 in the low nibble of byte i, else the high nibble of
 * byte i − C/2) that needs the nibble to be the same for every tt:
 * lane_code_ok says whether it is.
 */
static int lane_code_ok(const pg *g, int c, int tt_max)
{
    const qkc_klayout *L = g->L;
    if (L->decode == QKC_KDEC_VQ)
        return 0;
    if (L->code_bits == 4)
        return (c < g->C / 2) == (c + tt_max < g->C / 2);
    return L->code_bits == 8 || L->code_bits == 16 || L->code_bits == 32;
}

static LLVMValueRef lane_code(pg *g, LLVMValueRef rec, LLVMValueRef tt, int c)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int bytes = L->code_bits == 4 ? 1 : L->code_bits / 8, hi = L->code_bits == 4 && c >= g->C / 2;
    int64_t off = L->code_off + (L->code_bits == 4 ? c - (hi ? g->C / 2 : 0) : (int64_t)bytes * c);
    LLVMValueRef base = gep8(E, rec, bytes == 1 ? tt : LLVMBuildMul(E->b, tt, i64c(E, bytes), "")), v = NULL;
    for (int b = 0; b < bytes; b++) {
        LLVMValueRef x = LLVMBuildZExt(E->b, load_ro(g, E->i8, gep8(E, base, i64c(E, off + b)), 1), E->i32, "");
        v = v ? LLVMBuildOr(E->b, v, LLVMBuildShl(E->b, x, i32c(E, 8 * b), ""), "") : x;
    }
    if (L->code_bits == 4)
        v = hi ? LLVMBuildLShr(E->b, v, i32c(E, 4), "") : LLVMBuildAnd(E->b, v, i32c(E, 15), "");
    return v;
}

/* v[t] for the lane's t in 0..3 */
static LLVMValueRef select4(pg *g, LLVMValueRef t, LLVMValueRef v[4])
{
    qkc_emit *E = &g->e;
    LLVMValueRef r = v[3];
    for (int i = 2; i >= 0; i--)
        r = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntEQ, t, i32c(E, i), ""), v[i], r, "");
    return r;
}

/* Two f32 values rounded (RNE) to the compute type, f16 or bf16, as one
 * packed operand register, lo in the low half (cvt.rn; exact for values
 * already in the type). */
static LLVMValueRef pack2(pg *g, LLVMValueRef lo, LLVMValueRef hi)
{
    qkc_emit *E = &g->e;
    LLVMTypeRef h = g->mm->compute == QKC_COMPUTE_F16 ? E->f16 : LLVMBFloatTypeInContext(E->ctx);
    LLVMValueRef v = LLVMGetUndef(LLVMVectorType(h, 2));
    v = LLVMBuildInsertElement(E->b, v, LLVMBuildFPTrunc(E->b, lo, h, ""), i32c(E, 0), "");
    v = LLVMBuildInsertElement(E->b, v, LLVMBuildFPTrunc(E->b, hi, h, ""), i32c(E, 1), "");
    return g->mm->compute == QKC_COMPUTE_F16 ? v : LLVMBuildBitCast(E->b, v, E->i32, "");
}

/*
 * One warp, one QKC_GPU_MMA_ROWS x QKC_GPU_MMA_COLS tile of C (MMA_MT x
 * MMA_NT mma tiles) over all of k. Lane l = 4·gid + t decodes, for each
 * n8 tile, the elements its B fragment needs from the chunk record of
 * column n0 + 8·nt + gid (the four lanes of a quad share the record). The k order inside one mma step is permuted, the same way for A
 * and B (a dot product does not depend on it), so that each lane's
 * elements are contiguous: for m16n8k16 lane t holds k = 4t..4t+3 (PTX
 * fragment rows 2t, 2t+1, 2t+8, 2t+9), for m16n8k8 k = 2t, 2t+1 (rows t,
 * t+4); A is then read with one 16- or 8-byte load per row. m16n8k32
 * (s8) keeps the PTX order: lane t holds k = 4t..4t+3 and 16+4t..16+4t+3,
 * two 4-byte loads of A per row. Where the codes allow it (lane_code) a
 * lane loads only the code bytes of its own elements; otherwise it
 * decodes the whole record and selects its elements by t. The C fragment
 * is not permuted: lane (gid, t) owns rows gid and gid+8, columns 2t and
 * 2t+1 of each tile. int8: each k32 step is one record and one activation
 * block; its integer tile is scaled into the f32 accumulators with the
 * row's block scale and code sum and the column's record factors (fetched
 * from the lane that decoded that column with shfl.sync.idx).
 */
static void emit_mma(pg *g, LLVMValueRef wg, LLVMValueRef nb, LLVMValueRef ne)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    const int KS = g->mma_k, steps = g->C / KS, i8 = g->int8;
    LLVMValueRef lane = LLVMBuildAnd(E->b, sreg(g, "tid.x"), i32c(E, 31), "");
    LLVMValueRef gid = LLVMBuildLShr(E->b, lane, i32c(E, 2), ""), t = LLVMBuildAnd(E->b, lane, i32c(E, 3), "");
    LLVMValueRef gid64 = LLVMBuildZExt(E->b, gid, E->i64, ""), t64 = LLVMBuildZExt(E->b, t, E->i64, "");
    LLVMValueRef mgroups = LLVMBuildSDiv(E->b, LLVMBuildAdd(E->b, g->m, i64c(E, QKC_GPU_MMA_ROWS - 1), ""),
                                         i64c(E, QKC_GPU_MMA_ROWS), "");
    LLVMValueRef m0 = LLVMBuildMul(E->b, LLVMBuildSRem(E->b, wg, mgroups, ""), i64c(E, QKC_GPU_MMA_ROWS), "m0");
    LLVMValueRef n0 = LLVMBuildAdd(E->b, nb, LLVMBuildMul(E->b, LLVMBuildSDiv(E->b, wg, mgroups, ""),
                                                           i64c(E, QKC_GPU_MMA_COLS), ""), "n0");
    LLVMValueRef lastn = LLVMBuildSub(E->b, ne, i64c(E, 1), ""), lastm = LLVMBuildSub(E->b, g->m, i64c(E, 1), "");
    LLVMValueRef lda4 = LLVMBuildMul(E->b, g->lda, i64c(E, 4), "");
    LLVMValueRef sums = LLVMBuildAdd(E->b, g->lda, LLVMBuildSDiv(E->b, g->lda, i64c(E, 8), ""), "");
    LLVMValueRef wrow[MMA_NT], abase[MMA_MT][2], acc[MMA_MT][MMA_NT][4], cvar;
    /* per-lane code loads (lane_code) when every code the lane needs allows
     * them: elements j·KS + tt + e, tt = (KS/4)·t (int8: 16h + tt + e, tt = 4t) */
    LLVMValueRef tt = LLVMBuildMul(E->b, t64, i64c(E, i8 ? 4 : KS / 4), "");
    int percode = 1;
    for (int j = 0; j < steps; j++)
        for (int e = 0; e < (i8 ? 4 : KS / 4); e++)
            for (int h = 0; h < (i8 ? 2 : 1); h++)
                percode &= lane_code_ok(g, i8 ? 16 * h + e : j * KS + e, i8 ? 12 : 3 * (KS / 4));
    LLVMBasicBlockRef body = block(E, "mma.body"), chead = block(E, "mma.c.head"), cbody = block(E, "mma.c.body");
    LLVMBasicBlockRef cexit = block(E, "mma.c.exit"), done = block(E, "mma.done");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, n0, ne, ""), body, done);
    LLVMPositionBuilderAtEnd(E->b, body);
    for (int nt = 0; nt < MMA_NT; nt++) {
        LLVMValueRef n = LLVMBuildAdd(E->b, n0, LLVMBuildAdd(E->b, gid64, i64c(E, 8 * nt), ""), "");
        n = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, n, ne, ""), n, lastn, "");
        wrow[nt] = gep8(E, g->w, LLVMBuildMul(E->b, n, i64c(E, (int64_t)L->row_bytes), ""));
    }
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int h = 0; h < 2; h++) {
            /* rows past m read row m−1 (valid memory) and are not stored */
            LLVMValueRef r = LLVMBuildAdd(E->b, m0, LLVMBuildAdd(E->b, gid64, i64c(E, 16 * mt + 8 * h), ""), "");
            r = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, r, g->m, ""), r, lastm, "");
            abase[mt][h] = LLVMBuildMul(E->b, r, i8 ? lda4 : g->lda, ""); /* bytes (int8) or elements */
        }
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int nt = 0; nt < MMA_NT; nt++)
            for (int e = 0; e < 4; e++) {
                acc[mt][nt][e] = qkc_emit_alloca(E, E->f32, 0);
                LLVMBuildStore(E->b, f32c(E, 0.0), acc[mt][nt][e]);
            }
    cvar = qkc_emit_alloca(E, E->i64, 0);
    LLVMBuildStore(E->b, i64c(E, 0), cvar);
    LLVMBuildBr(E->b, chead);

    /* for (c = 0; c < chunks_per_row; c++): one record per column */
    LLVMPositionBuilderAtEnd(E->b, chead);
    LLVMValueRef c = LLVMBuildLoad2(E->b, E->i64, cvar, "c");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, c, i64c(E, L->chunks_per_row), ""), cbody, cexit);
    LLVMPositionBuilderAtEnd(E->b, cbody);
    {
        LLVMValueRef bf[MMA_NT][MMA_MAX_STEPS][2];
        LLVMValueRef cdot[MMA_NT][2], csum[MMA_NT][2];
        LLVMValueRef k0 = LLVMBuildMul(E->b, c, i64c(E, g->C), "");
        for (int nt = 0; nt < MMA_NT; nt++) {
            LLVMValueRef rec = gep8(E, wrow[nt], LLVMBuildMul(E->b, c, i64c(E, L->chunk_bytes), ""));
            /* the fields (unused record words are dead loads LLVM drops) */
            load_record(g, rec);
            if (i8) {
                LLVMValueRef fd, fs;
                int8_factors(g, &fd, &fs);
                for (int h = 0; h < 2; h++) {
                    /* b[h]: elements 16h + 4t .. 16h + 4t + 3 */
                    if (percode) {
                        LLVMValueRef w = NULL;
                        for (int e = 0; e < 4; e++) {
                            LLVMValueRef v = LLVMBuildAnd(E->b, int8_of_code(g, lane_code(g, rec, tt, 16 * h + e)),
                                                          i32c(E, 255), "");
                            if (e)
                                v = LLVMBuildShl(E->b, v, i32c(E, 8 * e), "");
                            w = w ? LLVMBuildOr(E->b, w, v, "") : v;
                        }
                        bf[nt][0][h] = w;
                    } else {
                        LLVMValueRef v[4];
                        for (int tt4 = 0; tt4 < 4; tt4++)
                            v[tt4] = int8_word(g, 4 * h + tt4);
                        bf[nt][0][h] = select4(g, t, v);
                    }
                }
                for (int e = 0; e < 2; e++) {
                    /* the lane that decoded column 2t+e of this tile: gid = 2t+e */
                    LLVMValueRef src = LLVMBuildShl(E->b, LLVMBuildAdd(E->b, LLVMBuildShl(E->b, t, i32c(E, 1), ""),
                                                                       i32c(E, e), ""), i32c(E, 2), "");
                    cdot[nt][e] = g->isa->lane_read(E, fd, src);
                    csum[nt][e] = g->isa->lane_read(E, fs, src);
                }
            } else {
                LLVMValueRef s, mn, z, x[MMA_MAX_STEPS * 16];
                record_fields(g, &s, &mn, &z);
                g->raw = 1;
                for (int j = 0; j < steps; j++) {
                    LLVMValueRef v0[4], v1[4], y[4];
                    if (percode) {
                        /* the lane's KS/4 elements of step j: j·KS + tt + e */
                        for (int e = 0; e < KS / 4; e++)
                            y[e] = element_code(g, lane_code(g, rec, tt, j * KS + e), -1, s, mn, z);
                        bf[nt][j][0] = KS == 16 ? pack2(g, y[0], y[1]) : LLVMBuildBitCast(E->b, y[0], E->i32, "");
                        bf[nt][j][1] = KS == 16 ? pack2(g, y[2], y[3]) : LLVMBuildBitCast(E->b, y[1], E->i32, "");
                        continue;
                    }
                    if (j == 0)
                        for (int i = 0; i < g->C; i++)
                            x[i] = element(g, i, s, mn, z);
                    for (int tt4 = 0; tt4 < 4; tt4++) {
                        if (KS == 16) {
                            v0[tt4] = pack2(g, x[16 * j + 4 * tt4], x[16 * j + 4 * tt4 + 1]);
                            v1[tt4] = pack2(g, x[16 * j + 4 * tt4 + 2], x[16 * j + 4 * tt4 + 3]);
                        } else {
                            v0[tt4] = LLVMBuildBitCast(E->b, x[8 * j + 2 * tt4], E->i32, "");
                            v1[tt4] = LLVMBuildBitCast(E->b, x[8 * j + 2 * tt4 + 1], E->i32, "");
                        }
                    }
                    bf[nt][j][0] = select4(g, t, v0);
                    bf[nt][j][1] = select4(g, t, v1);
                }
                g->raw = 0;
            }
        }
        for (int j = 0; j < steps; j++) {
            LLVMValueRef kk = LLVMBuildAdd(E->b, k0, i64c(E, (int64_t)j * KS), "");
            for (int mt = 0; mt < MMA_MT; mt++) {
                LLVMValueRef a[4], dsc[2] = {NULL, NULL}, qs[2] = {NULL, NULL};
                for (int h = 0; h < 2; h++) {
                    if (i8) {
                        /* codes 4t..4t+3 and 16+4t..16+4t+3 of the row's block c; its
                         * scale and code sum */
                        LLVMValueRef p = gep8(E, g->a, LLVMBuildAdd(E->b, abase[mt][h],
                                                                    LLVMBuildAdd(E->b, kk, LLVMBuildShl(E->b, t64, i64c(E, 2), ""), ""), ""));
                        LLVMValueRef cb = LLVMBuildShl(E->b, c, i64c(E, 2), "");
                        a[h] = load_ro(g, E->i32, p, 4);
                        a[2 + h] = load_ro(g, E->i32, gep8(E, p, i64c(E, 16)), 4);
                        dsc[h] = load_ro(g, E->f32, gep8(E, g->a, LLVMBuildAdd(E->b, abase[mt][h], LLVMBuildAdd(E->b, g->lda, cb, ""), "")), 4);
                        qs[h] = LLVMBuildSIToFP(E->b, load_ro(g, E->i32, gep8(E, g->a, LLVMBuildAdd(E->b, abase[mt][h], LLVMBuildAdd(E->b, sums, cb, ""), "")), 4), E->f32, "");
                    } else if (KS == 16) {
                        LLVMValueRef idx = LLVMBuildAdd(E->b, LLVMBuildAdd(E->b, abase[mt][h], kk, ""),
                                                        LLVMBuildShl(E->b, t64, i64c(E, 2), ""), "");
                        LLVMValueRef v = load_ro(g, g->v4f, LLVMBuildGEP2(E->b, E->f32, g->a, &idx, 1, ""), 16);
                        LLVMValueRef e[4];
                        for (int q = 0; q < 4; q++)
                            e[q] = LLVMBuildExtractElement(E->b, v, i32c(E, q), "");
                        a[h] = pack2(g, e[0], e[1]);
                        a[2 + h] = pack2(g, e[2], e[3]);
                    } else {
                        LLVMValueRef idx = LLVMBuildAdd(E->b, LLVMBuildAdd(E->b, abase[mt][h], kk, ""),
                                                        LLVMBuildShl(E->b, t64, i64c(E, 1), ""), "");
                        LLVMValueRef v = load_ro(g, LLVMVectorType(E->f32, 2), LLVMBuildGEP2(E->b, E->f32, g->a, &idx, 1, ""), 8);
                        a[h] = LLVMBuildBitCast(E->b, LLVMBuildExtractElement(E->b, v, i32c(E, 0), ""), E->i32, "");
                        a[2 + h] = LLVMBuildBitCast(E->b, LLVMBuildExtractElement(E->b, v, i32c(E, 1), ""), E->i32, "");
                    }
                }
                for (int nt = 0; nt < MMA_NT; nt++) {
                    LLVMValueRef cur[4], d[4];
                    for (int e = 0; e < 4; e++)
                        cur[e] = i8 ? i32c(E, 0) : LLVMBuildLoad2(E->b, E->f32, acc[mt][nt][e], "");
                    g->isa->mma(E, g->mm->compute, a, bf[nt][j], cur, d);
                    for (int e = 0; e < 4; e++) {
                        LLVMValueRef v = d[e];
                        if (i8) {
                            int h = e >> 1;
                            LLVMValueRef inner = LLVMBuildFAdd(
                                E->b, LLVMBuildFMul(E->b, cdot[nt][e & 1], LLVMBuildSIToFP(E->b, d[e], E->f32, ""), ""),
                                LLVMBuildFMul(E->b, csum[nt][e & 1], qs[h], ""), "");
                            v = LLVMBuildFAdd(E->b, LLVMBuildLoad2(E->b, E->f32, acc[mt][nt][e], ""),
                                              LLVMBuildFMul(E->b, dsc[h], inner, ""), "");
                        }
                        LLVMBuildStore(E->b, v, acc[mt][nt][e]);
                    }
                }
            }
        }
        LLVMBuildStore(E->b, LLVMBuildAdd(E->b, c, i64c(E, 1), ""), cvar);
        LLVMBuildBr(E->b, chead);
    }

    /* epilogue: each lane stores its 4 elements of each tile */
    LLVMPositionBuilderAtEnd(E->b, cexit);
    for (int mt = 0; mt < MMA_MT; mt++)
        for (int nt = 0; nt < MMA_NT; nt++)
            for (int e = 0; e < 4; e++) {
                LLVMValueRef r = LLVMBuildAdd(E->b, m0, LLVMBuildAdd(E->b, gid64, i64c(E, 16 * mt + 8 * (e >> 1)), ""), "");
                LLVMValueRef n = LLVMBuildAdd(E->b, n0, LLVMBuildAdd(E->b, LLVMBuildShl(E->b, t64, i64c(E, 1), ""),
                                                                       i64c(E, 8 * nt + (e & 1)), ""), "");
                LLVMValueRef ok = LLVMBuildAnd(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, r, g->m, ""),
                                               LLVMBuildICmp(E->b, LLVMIntSLT, n, ne, ""), "");
                store_if(g, ok, LLVMBuildLoad2(E->b, E->f32, acc[mt][nt][e], ""), r, n);
            }
    LLVMBuildBr(E->b, done);
    LLVMPositionBuilderAtEnd(E->b, done);
}

/* ------------------------------------------------------------ kernel */

static void emit_kernel(pg *g, LLVMValueRef n)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    LLVMValueRef lane = LLVMBuildZExt(E->b, LLVMBuildAnd(E->b, sreg(g, "tid.x"), i32c(E, 31), ""), E->i64, "");
    LLVMValueRef row = gep8(E, g->w, LLVMBuildMul(E->b, n, i64c(E, (int64_t)L->row_bytes), ""));
    LLVMValueRef mvar = qkc_emit_alloca(E, E->i64, 0), cvar = qkc_emit_alloca(E, E->i64, 0), acc[8];
    LLVMBasicBlockRef mhead = block(E, "m.head"), mbody = block(E, "m.body"), chead = block(E, "c.head");
    LLVMBasicBlockRef cbody = block(E, "c.body"), cexit = block(E, "c.exit"), store = block(E, "store");
    LLVMBasicBlockRef mnext = block(E, "m.next"), done = block(E, "done");
    LLVMValueRef arow[8], rix[8];
    for (int t = 0; t < g->TM; t++)
        acc[t] = qkc_emit_alloca(E, E->f32, 0);
    LLVMBuildStore(E->b, i64c(E, 0), mvar);
    LLVMBuildBr(E->b, mhead);

    /* for (m0 = 0; m0 < m; m0 += TM) */
    LLVMPositionBuilderAtEnd(E->b, mhead);
    LLVMValueRef m0 = LLVMBuildLoad2(E->b, E->i64, mvar, "m0");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, m0, g->m, ""), mbody, done);
    LLVMPositionBuilderAtEnd(E->b, mbody);
    for (int t = 0; t < g->TM; t++) {
        /* rows past m read row m−1 (valid memory) and are not stored */
        LLVMValueRef r = LLVMBuildAdd(E->b, m0, i64c(E, t), "");
        LLVMValueRef last = LLVMBuildSub(E->b, g->m, i64c(E, 1), "");
        r = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, r, g->m, ""), r, last, "");
        rix[t] = r;
        arow[t] = LLVMBuildMul(E->b, r, g->lda, "");
        LLVMBuildStore(E->b, f32c(E, 0.0), acc[t]);
    }
    LLVMBuildStore(E->b, lane, cvar);
    LLVMBuildBr(E->b, chead);

    /* for (c = lane; c < chunks_per_row; c += 32) */
    LLVMPositionBuilderAtEnd(E->b, chead);
    LLVMValueRef ci = LLVMBuildLoad2(E->b, E->i64, cvar, "c");
    LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, ci, i64c(E, L->chunks_per_row), ""), cbody, cexit);
    LLVMPositionBuilderAtEnd(E->b, cbody);
    {
        LLVMValueRef rec = gep8(E, row, LLVMBuildMul(E->b, ci, i64c(E, L->chunk_bytes), ""));
        LLVMValueRef s, mn, z, sum[8];
        LLVMValueRef k0 = LLVMBuildMul(E->b, ci, i64c(E, g->C), "");
        load_record(g, rec);
        if (g->int8) {
            gemv_int8_record(g, ci, k0, rix, acc);
        } else {
            record_fields(g, &s, &mn, &z);
            for (int t = 0; t < g->TM; t++)
                sum[t] = LLVMBuildLoad2(E->b, E->f32, acc[t], "");
            for (int q = 0; q < g->C / 4; q++) {
                LLVMValueRef x[4], av[8];
                for (int j = 0; j < 4; j++)
                    x[j] = element(g, 4 * q + j, s, mn, z);
                for (int t = 0; t < g->TM; t++) {
                    LLVMValueRef idx = LLVMBuildAdd(E->b, LLVMBuildAdd(E->b, arow[t], k0, ""), i64c(E, 4 * q), "");
                    av[t] = load_ro(g, g->v4f, LLVMBuildGEP2(E->b, E->f32, g->a, &idx, 1, ""), 16);
                }
                for (int j = 0; j < 4; j++)
                    for (int t = 0; t < g->TM; t++)
                        sum[t] = fma_v(E, LLVMBuildExtractElement(E->b, av[t], i32c(E, j), ""), x[j], sum[t]);
            }
            for (int t = 0; t < g->TM; t++)
                LLVMBuildStore(E->b, sum[t], acc[t]);
        }
        LLVMBuildStore(E->b, LLVMBuildAdd(E->b, ci, i64c(E, 32), ""), cvar);
        LLVMBuildBr(E->b, chead);
    }

    /* reduce across the warp; lane 0 stores */
    LLVMPositionBuilderAtEnd(E->b, cexit);
    {
        LLVMValueRef tot[8];
        for (int t = 0; t < g->TM; t++)
            tot[t] = g->isa->lane_sum(E, LLVMBuildLoad2(E->b, E->f32, acc[t], ""));
        LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntEQ, lane, i64c(E, 0), ""), store, mnext);
        LLVMPositionBuilderAtEnd(E->b, store);
        for (int t = 0; t < g->TM; t++) {
            LLVMValueRef r = LLVMBuildAdd(E->b, m0, i64c(E, t), "");
            store_if(g, LLVMBuildICmp(E->b, LLVMIntSLT, r, g->m, ""), tot[t], r, n);
        }
        LLVMBuildBr(E->b, mnext);
    }
    LLVMPositionBuilderAtEnd(E->b, mnext);
    LLVMBuildStore(E->b, LLVMBuildAdd(E->b, m0, i64c(E, g->TM), ""), mvar);
    LLVMBuildBr(E->b, mhead);
    LLVMPositionBuilderAtEnd(E->b, done);
}

qkc_status qkc_lower_ptx(LLVMContextRef ctx, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                         const qkc_schedule *s, const char *name, LLVMModuleRef *out, qkc_diag *diag)
{
    pg g;
    qkc_emit *E = &g.e;
    LLVMTypeRef st;
    memset(&g, 0, sizeof g);
    g.isa = &qkc_isa_nvptx, g.mm = mm, g.L = L;
    g.C = L->chunk;
    g.TM = s->tile_m < 1 ? 1 : s->tile_m > 8 ? 8 : s->tile_m;
    g.lw = qkc_lower_ptx_load_bytes(L);
    g.ub = g.lw < 4 ? g.lw : 4;
    g.int8 = qkc_lower_ptx_int8(mm, L);
    g.mma_k = qkc_lower_ptx_mma(mm, L) ? g.isa->mma_k(mm->compute) : 0;
    if (L->mixed)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "w=mixed: GPU (nvptx) kernels do not take mixed row blocks yet; compile for a CPU target");
    if (mm->lora_rank || mm->ascale != QKC_ASCALE_DYNAMIC)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "GPU kernels: %s is not supported on nvptx targets yet (compile for the CPU)",
                            mm->lora_rank ? "the LoRA side path (lora=)" : "ascale=static");
    if (L->outliers)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED,
                            "GPU kernels: sparse weight outliers (outliers=sparse) are not supported yet; CPU "
                            "targets add them in the kernel");
    if (L->chunk_bytes / g.ub > MAX_UNITS || g.C % 4)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED, "GPU kernels: chunk records of %d bytes are not supported",
                            L->chunk_bytes);
    qkc_emit_init(E, ctx, name, t);
    g.gptr = LLVMPointerTypeInContext(ctx, 1); /* global memory */
    g.v4f = LLVMVectorType(E->f32, 4);
    g.invariant_kind = LLVMGetMDKindIDInContext(ctx, "invariant.load", 14);

    /* the argument by value: its size is sizeof(qkc_kernel_args) */
    st = qkc_emit_kernel_args_type(E);
    {
        LLVMValueRef args, n, nb, ne;
        LLVMBasicBlockRef body, exit;
        qkc_emit_kernel(E, name, t);
        LLVMSetFunctionCallConv(E->fn, LLVMPTXKernelCallConv);
        LLVMAddAttributeAtIndex(E->fn, 1, LLVMCreateTypeAttribute(ctx, LLVMGetEnumAttributeKindForName("byval", 5), st));
        LLVMAddAttributeAtIndex(E->fn, 1, LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName("align", 5), 8));
        args = LLVMGetParam(E->fn, 0);
        /* device pointers are global addresses: ld.global / st.global */
        g.a = LLVMBuildAddrSpaceCast(E->b, qkc_emit_kernel_arg(E, st, args, QKC_KARG_A), g.gptr, "a");
        g.w = LLVMBuildAddrSpaceCast(E->b, qkc_emit_kernel_arg(E, st, args, QKC_KARG_W), g.gptr, "w");
        g.bias = LLVMBuildAddrSpaceCast(E->b, qkc_emit_kernel_arg(E, st, args, QKC_KARG_BIAS), g.gptr, "bias");
        g.c = LLVMBuildAddrSpaceCast(E->b, qkc_emit_kernel_arg(E, st, args, QKC_KARG_C), g.gptr, "c");
        g.lda = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LDA);
        g.ldc = qkc_emit_kernel_arg(E, st, args, QKC_KARG_LDC);
        g.m = qkc_emit_kernel_arg(E, st, args, QKC_KARG_M);
        nb = qkc_emit_kernel_arg(E, st, args, QKC_KARG_N_BEGIN);
        ne = qkc_emit_kernel_arg(E, st, args, QKC_KARG_N_END);
        if (L->decode == QKC_KDEC_TABLE) {
            LLVMValueRef e[16];
            for (int i = 0; i < 16; i++)
                e[i] = f32c(E, L->table[i]);
            g.table = LLVMAddGlobalInAddressSpace(E->mod, LLVMArrayType(E->f32, 16), "qkc_table", 4);
            LLVMSetInitializer(g.table, LLVMConstArray(E->f32, e, 16));
            LLVMSetGlobalConstant(g.table, 1);
            LLVMSetLinkage(g.table, LLVMInternalLinkage);
            LLVMSetAlignment(g.table, 16);
        }
        {
            /* warp index in the grid; the shape by m (ir/kernel_abi.h) */
            LLVMValueRef wpb = LLVMBuildLShr(E->b, sreg(&g, "ntid.x"), i32c(E, 5), "");
            LLVMValueRef wg = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, sreg(&g, "ctaid.x"), wpb, ""),
                                           LLVMBuildLShr(E->b, sreg(&g, "tid.x"), i32c(E, 5), ""), "");
            wg = LLVMBuildZExt(E->b, wg, E->i64, "wg");
            exit = block(E, "exit");
            if (g.mma_k) {
                LLVMBasicBlockRef tc = block(E, "tensor.cores");
                LLVMBasicBlockRef gemv = block(E, "gemv");
                LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGE, g.m, i64c(E, QKC_GPU_MMA_MIN_M), ""), tc, gemv);
                LLVMPositionBuilderAtEnd(E->b, tc);
                emit_mma(&g, wg, nb, ne);
                LLVMBuildBr(E->b, exit);
                LLVMPositionBuilderAtEnd(E->b, gemv);
            }
            n = LLVMBuildAdd(E->b, nb, wg, "n");
        }
        body = block(E, "body");
        LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, n, ne, ""), body, exit);
        LLVMPositionBuilderAtEnd(E->b, body);
        emit_kernel(&g, n);
        LLVMBuildBr(E->b, exit);
        LLVMPositionBuilderAtEnd(E->b, exit);
        LLVMBuildRetVoid(E->b);
    }
    LLVMDisposeBuilder(E->b);
    {
        qkc_status status = qkc_llvm_verify(E->mod, diag);
        if (status) {
            LLVMDisposeModule(E->mod);
            return status;
        }
    }
    *out = E->mod;
    return QKC_OK;
}
