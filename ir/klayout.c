/*
 * Kernel layouts (klayout.h): which layout each weight format gets, and the
 * scalar reference decode of a packed element.
 *
 * The choice is made so that decoding the packed layout repeats the
 * reference dequantizer's arithmetic operation for operation (same operands,
 * same order, one rounding each): then packing can be checked bit for bit
 * and kernels need no format-specific code. Where a format's scale groups
 * do not line up with chunks, the layout falls back to dense f32 values.
 */
#include "ir/klayout.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/checked.h"
#include "ir/dtype.h"
#include "ir/mixed.h"

#define PERM_ALIGN 64u

/* ggml's kvalues_mxfp4: E2M1 doubled, paired with the 2^(e-128) scale.
 * Code 8 (E2M1 −0) is +0, as in ggml. */
static const float mxfp4_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static int field_bytes(qkc_kfield f)
{
    switch (f) {
    case QKC_KF_F16: return 2;
    case QKC_KF_F32: return 4;
    case QKC_KF_E8M0: return 1;
    case QKC_KF_I16: return 2;
    case QKC_KF_U32: return 4;
    case QKC_KF_NONE: break;
    }
    return 0;
}

static const char *field_name(const qkc_klayout *L, qkc_kfield f)
{
    switch (f) {
    case QKC_KF_F16: return "f16";
    case QKC_KF_F32: return "f32";
    case QKC_KF_E8M0: return L->e8m0_half ? "e8m0/2" : "e8m0";
    case QKC_KF_I16: return "i16";
    case QKC_KF_U32: return "u32";
    case QKC_KF_NONE: break;
    }
    return "none";
}

/* "4-bit affine, f16 scale per 32 (note)"; the note says which format and
 * anything unusual about the mapping. */
static void describe(qkc_klayout *L, const char *note)
{
    char head[48];
    const char *kind = "?";
    size_t len;
    switch (L->decode) {
    case QKC_KDEC_AFFINE: kind = "affine"; break;
    case QKC_KDEC_TABLE: kind = "table"; break;
    case QKC_KDEC_FP8E4M3: kind = "fp8e4m3"; break;
    case QKC_KDEC_FP8E5M2: kind = "fp8e5m2"; break;
    case QKC_KDEC_F32: kind = "f32"; break;
    case QKC_KDEC_F16: kind = "f16"; break;
    case QKC_KDEC_BF16: kind = "bf16"; break;
    case QKC_KDEC_LUT: kind = "lut"; break;
    case QKC_KDEC_VQ: kind = "vq"; break;
    }
    if (L->decode == QKC_KDEC_F32 || L->decode == QKC_KDEC_F16 || L->decode == QKC_KDEC_BF16)
        snprintf(head, sizeof head, "dense %s", kind);
    else
        snprintf(head, sizeof head, "%d-bit %s", L->code_bits, kind);
    len = (size_t)snprintf(L->description, sizeof L->description, "%s", head);
    if (L->scale != QKC_KF_NONE && len < sizeof L->description)
        len += (size_t)snprintf(L->description + len, sizeof L->description - len, ", %s scale",
                                field_name(L, L->scale));
    if (L->min != QKC_KF_NONE && len < sizeof L->description)
        len += (size_t)snprintf(L->description + len, sizeof L->description - len, ", %s min",
                                field_name(L, L->min));
    if (L->zero != QKC_KF_NONE && len < sizeof L->description)
        len += (size_t)snprintf(L->description + len, sizeof L->description - len, ", i16 zero");
    if (len < sizeof L->description)
        len += (size_t)snprintf(L->description + len, sizeof L->description - len, " per %d%s", L->chunk,
                                L->permute_k ? ", k permuted" : "");
    if (note && len < sizeof L->description)
        snprintf(L->description + len, sizeof L->description - len, " (%s)", note);
}

/* The chunk a format's groups allow: 32, or 16 when the group is a
 * multiple of 16 but not of 32 (q6_k, planar group=16 or 48). A partial
 * last group at the K tail is fine: it starts on a group boundary too.
 * Returns 0 (and says why) when groups would straddle chunks. */
static int chunk_of(const qkc_format *f, char *why, size_t why_size)
{
    if (f->granularity != QKC_GRAN_GROUP)
        return 32;
    if (f->group > 0 && f->group % 32 == 0)
        return 32;
    if (f->group > 0 && f->group % 16 == 0)
        return 16;
    snprintf(why, why_size, "group=%lld is not a multiple of 16", (long long)f->group);
    return 0;
}

static void set_fallback(qkc_klayout *L, const char *why)
{
    memset(L, 0, sizeof *L);
    L->chunk = 32;
    L->code_bits = 32;
    L->decode = QKC_KDEC_F32;
    L->fallback = 1;
    snprintf(L->description, sizeof L->description, "dense f32 fallback: %s", why);
}

static void set_affine(qkc_klayout *L, int chunk, int code_bits, int zero_const)
{
    L->chunk = chunk;
    L->code_bits = code_bits;
    L->decode = QKC_KDEC_AFFINE;
    L->zero_const = zero_const;
}

static void set_table(qkc_klayout *L, int chunk, const float *table)
{
    L->chunk = chunk;
    L->code_bits = 4;
    L->decode = QKC_KDEC_TABLE;
    memcpy(L->table, table, sizeof L->table);
}

static void set_dtype_table(qkc_klayout *L, int chunk, qkc_dtype dt)
{
    float t[16];
    for (uint32_t i = 0; i < 16; i++)
        t[i] = qkc_dtype_decode(dt, i);
    set_table(L, chunk, t);
}

/* Dense planar weights: the stored values themselves (tf32 is f32 bits
 * with the low 13 mantissa bits cleared on packing). */
static void set_dense(qkc_klayout *L, qkc_dtype dt)
{
    L->chunk = 32;
    if (dt == QKC_DTYPE_F16) {
        L->code_bits = 16;
        L->decode = QKC_KDEC_F16;
    } else if (dt == QKC_DTYPE_BF16) {
        L->code_bits = 16;
        L->decode = QKC_KDEC_BF16;
    } else {
        L->code_bits = 32;
        L->decode = QKC_KDEC_F32;
    }
}

/* qkc's planar layout. Returns the note for the description, or NULL after
 * choosing the fallback. */
static const char *choose_planar(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                 size_t note_size)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    char why[64];
    int chunk;

    if (f->granularity == QKC_GRAN_NONE) {
        set_dense(L, f->dtype);
        snprintf(note, note_size, "%s", dd->keyword);
        return note;
    }
    if (dd->kind == QKC_KIND_VQ) {
        /* u16 indices per chunk of 32, the codebook widened to f32 */
        L->chunk = 32;
        L->code_bits = 16;
        L->decode = QKC_KDEC_VQ;
        L->vq_dim = f->vq_dim;
        L->vq_entries = (int64_t)1 << f->vq_bits;
        snprintf(note, note_size, "vq %d:%d, %lld %s codewords", f->vq_dim, f->vq_bits, (long long)L->vq_entries,
                 qkc_dtype_keyword(f->table_dtype));
        return note;
    }
    if (!(chunk = chunk_of(f, why, sizeof why))) {
        set_fallback(L, why);
        return NULL;
    }
    L->outliers = f->outliers == QKC_OUTLIERS_SPARSE; /* CSR arrays after the rows (place) */
    if (dd->kind == QKC_KIND_LUT) {
        /* Codes widen to 4 bits; the tables are copied out as 16 f32 each. */
        L->chunk = chunk;
        L->code_bits = 4;
        L->decode = QKC_KDEC_LUT;
        L->lut_tables = qkc_format_lut_tables(f, n, k);
        L->tidx = L->lut_tables > 1 ? QKC_KF_U32 : QKC_KF_NONE;
        snprintf(note, note_size, "%s, %lld %s table%s", dd->keyword, (long long)L->lut_tables,
                 qkc_dtype_keyword(f->table_dtype), L->lut_tables > 1 ? "s" : "");
        return note;
    }
    int code_bits = dd->bits <= 4 ? 4 : 8;
    if (dd->kind == QKC_KIND_INT) {
        /* Signed codes become offset binary so every code is unsigned;
         * zero_const takes the offset back out, exactly. */
        set_affine(L, chunk, code_bits, dd->is_signed ? 1 << (dd->bits - 1) : 0);
    } else if (f->dtype == QKC_DTYPE_FP8E4M3 || f->dtype == QKC_DTYPE_FP8E5M2) {
        L->chunk = chunk;
        L->code_bits = 8;
        L->decode = f->dtype == QKC_DTYPE_FP8E4M3 ? QKC_KDEC_FP8E4M3 : QKC_KDEC_FP8E5M2;
    } else {
        /* nf4, iq4nl, fp4: the dtype's own decode table (fp4 code 8 is −0,
         * as the reference decodes it). */
        set_dtype_table(L, chunk, f->dtype);
    }

    if (f->scale2_dtype != QKC_DTYPE_INVALID)
        L->scale = QKC_KF_F32; /* s2 · decode(code), computed once at packing */
    else if (f->scale_dtype == QKC_DTYPE_F16)
        L->scale = QKC_KF_F16;
    else if (f->scale_dtype == QKC_DTYPE_E8M0) {
        L->scale = QKC_KF_E8M0;
        L->e8m0_ff_is_nan = 1;
    } else
        L->scale = QKC_KF_F32; /* f32, and bf16 widened exactly */
    if (f->zero == QKC_ZERO_FLOAT)
        L->min = f->scale_dtype == QKC_DTYPE_F16 ? QKC_KF_F16 : QKC_KF_F32;
    else if (f->zero == QKC_ZERO_INT)
        L->zero = QKC_KF_I16;

    if (dd->kind == QKC_KIND_INT && dd->is_signed)
        snprintf(note, note_size, "%s, offset-binary codes", dd->keyword);
    else
        snprintf(note, note_size, "%s", dd->keyword);
    if (L->outliers) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", +sparse outliers");
    }
    if (f->granularity == QKC_GRAN_TENSOR || f->granularity == QKC_GRAN_CHANNEL) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", %s scale repeated",
                 f->granularity == QKC_GRAN_TENSOR ? "tensor" : "row");
    }
    if (f->scale2_dtype != QKC_DTYPE_INVALID) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", scales resolved");
    }
    return note;
}

/* GPTQ / AWQ: 4- or 8-bit codes minus an i16 zero under an f16 scale. */
static const char *choose_gptq_awq(const qkc_format *f, int64_t k, qkc_klayout *L, char *note, size_t note_size)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    char why[64];
    int chunk = chunk_of(f, why, sizeof why);
    int actorder = f->preset == QKC_PRESET_GPTQ && (f->flags & QKC_FORMAT_ACTORDER);

    if (!chunk) {
        /* Act-order falls back unpermuted: dense values need no grouping. */
        set_fallback(L, why);
        return NULL;
    }
    set_affine(L, chunk, dd->bits <= 4 ? 4 : 8, 0);
    L->scale = QKC_KF_F16;
    L->zero = QKC_KF_I16;
    /* One group over all of K (channel, or group >= k) needs no
     * permutation: every valid g_idx is then 0. */
    if (actorder && f->granularity == QKC_GRAN_GROUP && f->group < k)
        L->permute_k = 1;
    if (f->preset == QKC_PRESET_AWQ)
        snprintf(note, note_size, "awq");
    else
        snprintf(note, note_size, "gptq %d-bit%s, zero = field + 1", dd->bits, actorder ? " act-order" : "");
    return note;
}

static const char *choose_preset(const qkc_format *f, int64_t k, qkc_klayout *L, char *note, size_t note_size)
{
    char why[64];
    int chunk = chunk_of(f, why, sizeof why);
    const char *kw = qkc_preset_get(f->preset)->keyword;

    if (!chunk && f->preset != QKC_PRESET_GPTQ && f->preset != QKC_PRESET_AWQ) {
        set_fallback(L, why);
        return NULL;
    }
    switch (f->preset) {
    case QKC_PRESET_Q4_0:
        set_affine(L, chunk, 4, 8);
        L->scale = QKC_KF_F16;
        L->in_place = 1;
        break;
    case QKC_PRESET_Q4_1:
        set_affine(L, chunk, 4, 0);
        L->scale = QKC_KF_F16;
        L->min = QKC_KF_F16;
        L->in_place = 1;
        break;
    case QKC_PRESET_Q5_0:
    case QKC_PRESET_Q5_1:
        /* The fifth bit (qh) joins the low nibble: one 8-bit code each. */
        set_affine(L, chunk, 8, f->preset == QKC_PRESET_Q5_0 ? 16 : 0);
        L->scale = QKC_KF_F16;
        if (f->preset == QKC_PRESET_Q5_1)
            L->min = QKC_KF_F16;
        snprintf(note, note_size, "%s, qh joined", kw);
        return note;
    case QKC_PRESET_Q8_0:
        /* int8 codes as offset binary (code + 128) under zero_const 128. */
        set_affine(L, chunk, 8, 128);
        L->scale = QKC_KF_F16;
        snprintf(note, note_size, "q8_0, codes + 128");
        return note;
    case QKC_PRESET_Q4_K:
    case QKC_PRESET_Q5_K:
        /* scale = d·sc, min = −(dmin·m), both f32 as ggml computes them. */
        set_affine(L, chunk, f->preset == QKC_PRESET_Q4_K ? 4 : 8, 0);
        L->scale = QKC_KF_F32;
        L->min = QKC_KF_F32;
        snprintf(note, note_size, "%s, d*sc and -(dmin*m) resolved", kw);
        return note;
    case QKC_PRESET_Q6_K:
        set_affine(L, chunk, 8, 32);
        L->scale = QKC_KF_F32;
        snprintf(note, note_size, "q6_k, d*sc resolved");
        return note;
    case QKC_PRESET_IQ4_NL:
        set_dtype_table(L, chunk, QKC_DTYPE_IQ4NL);
        L->scale = QKC_KF_F16;
        L->in_place = 1;
        break;
    case QKC_PRESET_MXFP4:
        set_table(L, chunk, mxfp4_doubled);
        L->scale = QKC_KF_E8M0;
        L->e8m0_half = 1;
        L->in_place = 1;
        break;
    case QKC_PRESET_MXFP8:
        L->chunk = chunk;
        L->code_bits = 8;
        L->decode = f->dtype == QKC_DTYPE_FP8E5M2 ? QKC_KDEC_FP8E5M2 : QKC_KDEC_FP8E4M3;
        L->scale = QKC_KF_E8M0;
        L->e8m0_ff_is_nan = 1;
        L->in_place = 1;
        snprintf(note, note_size, "mxfp8%s in place", f->dtype == QKC_DTYPE_FP8E5M2 ? ":e5m2" : "");
        return note;
    case QKC_PRESET_NF4_BNB:
        set_dtype_table(L, chunk, QKC_DTYPE_NF4);
        L->scale = QKC_KF_F32;
        snprintf(note, note_size, "nf4_bnb%s, absmax resolved", (f->flags & QKC_FORMAT_DQ) ? ":dq" : "");
        return note;
    case QKC_PRESET_GPTQ:
    case QKC_PRESET_AWQ: return choose_gptq_awq(f, k, L, note, note_size);
    default: return NULL;
    }
    snprintf(note, note_size, "%s in place", kw);
    return note;
}

#define mul_ok qkc_mul_u64

/* Field offsets in the order [scale][min][zero][codes] (absent fields take
 * no bytes and keep offset 0), then row and blob sizes. */
static qkc_status place(qkc_klayout *L, int64_t n, int64_t k, qkc_diag *diag)
{
    int off = 0;
    uint64_t rows;
    if (L->scale != QKC_KF_NONE) {
        L->scale_off = off;
        off += field_bytes(L->scale);
    }
    if (L->min != QKC_KF_NONE) {
        L->min_off = off;
        off += field_bytes(L->min);
    }
    if (L->zero != QKC_KF_NONE) {
        L->zero_off = off;
        off += field_bytes(L->zero);
    }
    if (L->tidx != QKC_KF_NONE) {
        L->tidx_off = off;
        off += field_bytes(L->tidx);
    }
    L->code_off = off;
    L->chunk_bytes = off + (L->decode == QKC_KDEC_VQ ? L->chunk / L->vq_dim * 2 : L->chunk * L->code_bits / 8);
    L->chunks_per_row = (k + L->chunk - 1) / L->chunk;
    if (!mul_ok((uint64_t)L->chunks_per_row, (uint64_t)L->chunk_bytes, &L->row_bytes) ||
        !mul_ok((uint64_t)n, L->row_bytes, &rows))
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld do not fit in 64-bit sizes",
                            (long long)n, (long long)k);
    L->total_bytes = rows;
    if (L->permute_k) {
        uint64_t perm_bytes = (uint64_t)k * 4;
        if (rows > UINT64_MAX - (PERM_ALIGN - 1) ||
            ((rows + PERM_ALIGN - 1) & ~(uint64_t)(PERM_ALIGN - 1)) > UINT64_MAX - perm_bytes)
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld do not fit in 64-bit sizes",
                                (long long)n, (long long)k);
        L->perm_offset = (rows + PERM_ALIGN - 1) & ~(uint64_t)(PERM_ALIGN - 1);
        L->total_bytes = L->perm_offset + perm_bytes;
    }
    if (L->outliers) {
        /* row_ptr[N+1], col[N·cap], val[N·cap], as the format's section */
        uint64_t cap = (uint64_t)L->outlier_cap, entries, parts[3], at = L->total_bytes;
        if (!mul_ok((uint64_t)n, cap, &entries) || entries > (uint64_t)1 << 40)
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed outliers of n=%lld k=%lld do not fit in 64-bit sizes",
                                (long long)n, (long long)k);
        parts[0] = ((uint64_t)n + 1) * 4, parts[1] = entries * 4, parts[2] = entries * 2;
        for (int i = 0; i < 3; i++) {
            if (at > (uint64_t)1 << 50)
                return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld do not fit in 64-bit sizes",
                                    (long long)n, (long long)k);
            at = (at + PERM_ALIGN - 1) & ~(uint64_t)(PERM_ALIGN - 1);
            if (i == 0)
                L->outlier_ptr_offset = at;
            else if (i == 1)
                L->outlier_col_offset = at;
            else
                L->outlier_val_offset = at;
            at += parts[i];
        }
        L->total_bytes = at;
    }
    if (L->decode == QKC_KDEC_LUT) {
        /* lut_tables ≤ n·k: 64·lut_tables stays far below 2^64 */
        if (L->total_bytes > UINT64_MAX - (PERM_ALIGN - 1))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld do not fit in 64-bit sizes",
                                (long long)n, (long long)k);
        L->table_offset = (L->total_bytes + PERM_ALIGN - 1) & ~(uint64_t)(PERM_ALIGN - 1);
        L->total_bytes = L->table_offset + (uint64_t)L->lut_tables * 64u;
    }
    if (L->decode == QKC_KDEC_VQ) {
        /* vq_entries·vq_dim ≤ 2^12·8 */
        if (L->total_bytes > UINT64_MAX - (PERM_ALIGN - 1) - (uint64_t)L->vq_entries * (uint64_t)L->vq_dim * 4u)
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld do not fit in 64-bit sizes",
                                (long long)n, (long long)k);
        L->table_offset = (L->total_bytes + PERM_ALIGN - 1) & ~(uint64_t)(PERM_ALIGN - 1);
        L->total_bytes = L->table_offset + (uint64_t)L->vq_entries * (uint64_t)L->vq_dim * 4u;
    }
    if (L->total_bytes > QKC_MAX_BLOB_BYTES)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld k=%lld take %llu bytes, over the limit of 2^40",
                            (long long)n, (long long)k, (unsigned long long)L->total_bytes);
    return QKC_OK;
}

qkc_status qkc_klayout_for(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *out, qkc_diag *diag)
{
    qkc_klayout L;
    char note[80];
    const char *what;

    if (!f || !out || n <= 0 || k <= 0 || !qkc_dtype_get(f->dtype) ||
        (f->preset != QKC_PRESET_NONE && !qkc_preset_get(f->preset)))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "klayout: invalid format or shape");
    if (f->mixed_blocks)
        return qkc_mixed_klayout(f, n, k, out, diag);
    memset(&L, 0, sizeof L);
    note[0] = '\0';
    what = f->preset == QKC_PRESET_NONE ? choose_planar(f, n, k, &L, note, sizeof note)
                                        : choose_preset(f, k, &L, note, sizeof note);
    if (what)
        describe(&L, what);
    else if (!L.fallback)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "klayout: no kernel layout for preset %d",
                            (int)f->preset);
    if (L.outliers) {
        qkc_weight_layout wl; /* the same per-row capacity as the format blob */
        qkc_status fst = qkc_format_layout(f, n, k, &wl, diag);
        if (fst != QKC_OK)
            return fst;
        L.outlier_cap = wl.outlier_cap;
    }
    qkc_status st = place(&L, n, k, diag);
    if (st != QKC_OK)
        return st;
    *out = L;
    return QKC_OK;
}

/* ------------------------------------------------------------ decode */

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* E8M0: 2^(e−127), or 2^(e−128) with e8m0_half, built from bits so that the
 * f32 subnormals 2^−127 and 2^−128 come out exact; 0xFF is NaN (as
 * qkc_e8m0_to_f32) or 2^127 (as ggml_e8m0_to_fp32_half). */
static float e8m0_value(const qkc_klayout *L, uint32_t e)
{
    int x;
    if (e == 0xFF)
        return L->e8m0_ff_is_nan ? qkc_e8m0_to_f32(0xFF) : qkc_f32_from_bits(0x7F000000u);
    x = (int)e - (L->e8m0_half ? 1 : 0); /* biased f32 exponent of the value */
    if (x >= 1)
        return qkc_f32_from_bits((uint32_t)x << 23);
    return qkc_f32_from_bits(0x00400000u >> -x); /* x = 0: 2^-127, x = -1: 2^-128 */
}

static float field_value(const qkc_klayout *L, qkc_kfield kind, const uint8_t *p)
{
    switch (kind) {
    case QKC_KF_F16: return qkc_f16_to_f32((uint16_t)rd16(p));
    case QKC_KF_F32: return qkc_f32_from_bits(rd32(p));
    case QKC_KF_E8M0: return e8m0_value(L, p[0]);
    default: return 0.0f;
    }
}

float qkc_klayout_decode(const qkc_klayout *L, const uint8_t *row, int64_t k)
{
    int64_t c = k / L->chunk;
    int i = (int)(k % L->chunk), half = L->chunk / 2;
    const uint8_t *rec = row + (uint64_t)c * (uint64_t)L->chunk_bytes;
    const uint8_t *codes = rec + L->code_off;
    uint32_t code;
    float x;

    switch (L->code_bits) {
    case 4: code = i < half ? codes[i] & 15u : (uint32_t)codes[i - half] >> 4; break;
    case 8: code = codes[i]; break;
    case 16: code = rd16(codes + 2 * i); break;
    default: code = rd32(codes + 4 * i); break;
    }
    switch (L->decode) {
    case QKC_KDEC_F32: return qkc_f32_from_bits(code);
    case QKC_KDEC_F16: return qkc_f16_to_f32((uint16_t)code);
    case QKC_KDEC_BF16: return qkc_bf16_to_f32((uint16_t)code);
    case QKC_KDEC_AFFINE: {
        int32_t v = (int32_t)code - L->zero_const;
        if (L->zero == QKC_KF_I16) {
            uint32_t z = rd16(rec + L->zero_off);
            v -= (int32_t)z - (z & 0x8000u ? 65536 : 0);
        }
        x = (float)v;
        break;
    }
    case QKC_KDEC_TABLE: x = L->table[code & 15u]; break;
    case QKC_KDEC_FP8E4M3: x = qkc_dtype_decode(QKC_DTYPE_FP8E4M3, code); break;
    case QKC_KDEC_FP8E5M2: x = qkc_dtype_decode(QKC_DTYPE_FP8E5M2, code); break;
    default: return NAN;
    }
    /* Separate statements: one rounding each, in the order the header
     * gives (the build also disables FMA contraction). */
    if (L->scale != QKC_KF_NONE) {
        float s = field_value(L, L->scale, rec + L->scale_off);
        x = x * s;
    }
    if (L->min != QKC_KF_NONE) {
        float m = field_value(L, L->min, rec + L->min_off);
        /* When both are NaN, x86 returns the first operand's payload and
         * sign, and the compiler may order a commutative + either way: the
         * scaled value's NaN comes first here explicitly, as in the
         * reference's d·q − m (a NaN min alone is kept as it is). */
        x = isnan(x) ? x : x + m;
    }
    return x;
}

float qkc_klayout_decode_at(const qkc_klayout *L, const uint8_t *blob, int64_t n, int64_t k)
{
    if (L->mixed) {
        qkc_klayout B;
        qkc_diag d;
        uint64_t off;
        int b = qkc_mixed_block_of_row(&L->mixed_format, n);
        if (qkc_mixed_block_klayout(&L->mixed_format, L->mixed_k, b, &B, &off, &d) != QKC_OK)
            return NAN;
        return qkc_klayout_decode_at(&B, blob + off, n - qkc_mixed_row0(&L->mixed_format, b), k);
    }
    const uint8_t *row = blob + (uint64_t)n * L->row_bytes;
    if (L->decode == QKC_KDEC_LUT) {
        const uint8_t *rec = row + (uint64_t)(k / L->chunk) * (uint64_t)L->chunk_bytes;
        const uint8_t *codes = rec + L->code_off;
        int i = (int)(k % L->chunk), half = L->chunk / 2;
        uint32_t code = i < half ? codes[i] & 15u : (uint32_t)codes[i - half] >> 4;
        uint64_t t = L->tidx == QKC_KF_U32 ? rd32(rec + L->tidx_off) : 0;
        return qkc_f32_from_bits(rd32(blob + L->table_offset + t * 64u + code * 4u));
    }
    if (L->decode == QKC_KDEC_VQ) {
        const uint8_t *rec = row + (uint64_t)(k / L->chunk) * (uint64_t)L->chunk_bytes;
        int i = (int)(k % L->chunk);
        uint64_t idx = rd16(rec + L->code_off + 2 * (i / L->vq_dim));
        return qkc_f32_from_bits(rd32(blob + L->table_offset + (idx * (uint64_t)L->vq_dim + (uint64_t)(i % L->vq_dim)) * 4u));
    }
    return qkc_klayout_decode(L, row, k);
}
