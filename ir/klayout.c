/*
 * Kernel layouts (klayout.h): the generic half of choosing one — each
 * format's family fills the chunk record (family.h), this file describes
 * and places it — and the scalar reference decode of a packed element.
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
#include "ir/family.h"
#include "ir/mixed.h"

#define PERM_ALIGN 64u

int qkc_kfield_bytes(qkc_kfield f)
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
        snprintf(head, sizeof head, "%d-bit %s", L->code_bits + (L->panel ? L->hi_bits : 0), kind);
    len = (size_t)snprintf(L->description, sizeof L->description, "%s", head);
    if (L->sub != QKC_KSUB_NONE && L->panel) {
        /* a compact panel form (set_panel): scales from the header */
        static const char *const subs[] = {"", ", 6-bit scale and min under f16", ", 6-bit scale under f16",
                                           ", int8 scale per 16 under f16"};
        if (len < sizeof L->description)
            len += (size_t)snprintf(L->description + len, sizeof L->description - len, "%s", subs[L->sub]);
    } else if (L->scale != QKC_KF_NONE && len < sizeof L->description)
        len += (size_t)snprintf(L->description + len, sizeof L->description - len, ", %s scale",
                                field_name(L, L->scale));
    if (L->min != QKC_KF_NONE && !(L->sub != QKC_KSUB_NONE && L->panel) && len < sizeof L->description)
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

int qkc_klayout_chunk(const qkc_format *f, char *why, size_t why_size)
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

void qkc_klayout_set_fallback(qkc_klayout *L, const char *why)
{
    memset(L, 0, sizeof *L);
    L->chunk = 32;
    L->code_bits = 32;
    L->decode = QKC_KDEC_F32;
    L->fallback = 1;
    snprintf(L->description, sizeof L->description, "dense f32 fallback: %s", why);
}

void qkc_klayout_set_affine(qkc_klayout *L, int chunk, int code_bits, int zero_const)
{
    L->chunk = chunk;
    L->code_bits = code_bits;
    L->decode = QKC_KDEC_AFFINE;
    L->zero_const = zero_const;
}

void qkc_klayout_set_table(qkc_klayout *L, int chunk, const float *table)
{
    L->chunk = chunk;
    L->code_bits = 4;
    L->decode = QKC_KDEC_TABLE;
    memcpy(L->table, table, sizeof L->table);
}

void qkc_klayout_set_dtype_table(qkc_klayout *L, int chunk, qkc_dtype dt)
{
    float t[16];
    for (uint32_t i = 0; i < 16; i++)
        t[i] = qkc_dtype_decode(dt, i);
    qkc_klayout_set_table(L, chunk, t);
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
        off += qkc_kfield_bytes(L->scale);
    }
    if (L->min != QKC_KF_NONE) {
        L->min_off = off;
        off += qkc_kfield_bytes(L->min);
    }
    if (L->zero != QKC_KF_NONE) {
        L->zero_off = off;
        off += qkc_kfield_bytes(L->zero);
    }
    if (L->tidx != QKC_KF_NONE) {
        L->tidx_off = off;
        off += qkc_kfield_bytes(L->tidx);
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
    const qkc_family_ir *fam;

    if (!f || !out || n <= 0 || k <= 0 || !qkc_dtype_get(f->dtype) ||
        !(fam = qkc_family_ir_get(qkc_format_family(f))))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "klayout: invalid format or shape");
    if (fam->kernel_layout_whole)
        return fam->kernel_layout_whole(f, n, k, out, diag);
    memset(&L, 0, sizeof L);
    note[0] = '\0';
    what = fam->kernel_layout(f, n, k, &L, note, sizeof note);
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

int qkc_klayout_panel_ok(const qkc_klayout *L)
{
    int compact = L->hi_bits || L->sub != QKC_KSUB_NONE;
    int dense = (L->decode == QKC_KDEC_F32 && L->code_bits == 32) ||
                ((L->decode == QKC_KDEC_F16 || L->decode == QKC_KDEC_BF16) && L->code_bits == 16);
    return (L->chunk == 32 || (compact && L->chunk == 16)) &&
           (((L->code_bits == 4 || L->code_bits == 8) &&
             (L->decode == QKC_KDEC_AFFINE || L->decode == QKC_KDEC_TABLE)) ||
            (dense && L->scale == QKC_KF_NONE)) &&
           !L->permute_k && !L->outliers &&
           !L->mixed && !L->fallback && L->tidx == QKC_KF_NONE && !L->panel &&
           (L->sub == QKC_KSUB_NONE || L->chunks_per_row * L->chunk % 256 == 0);
}

/* Header bytes per row of a compact panel's super record (klayout.h):
 *   KQ  [P f16 d][P f16 dmin][P u32 hi][8 planes of P bytes lo]; record j:
 *       sc = lo_j & 15 | (hi >> 2j & 3) << 4,
 *       m  = lo_j >> 4 | (hi >> (16 + 2j) & 3) << 4
 *   XS  [P f16 d][P u16 hi][4 planes of P bytes lo]; record j:
 *       ls = lo_{j/2} >> 4(j % 2) & 15 | (hi >> 2j & 3) << 4
 *   Q6  [P f16 d][16 planes of P bytes: int8 sc]; record j, half h:
 *       sc = plane 2j + h
 * (the file's 12, 6 and 16 bytes of sub-block scales, rearranged so that
 * one vector load serves the P rows of a record). */
static int header_bytes(qkc_ksub sub)
{
    switch (sub) {
    case QKC_KSUB_KQ: return 16;
    case QKC_KSUB_XS: return 8;
    case QKC_KSUB_Q6: return 18;
    case QKC_KSUB_NONE: break;
    }
    return 0;
}

uint64_t qkc_klayout_super_bytes(const qkc_klayout *L)
{
    return (uint64_t)L->panel * (uint64_t)(L->hdr_bytes + 8 * L->chunk_bytes);
}

/* The compact record: 4-bit codes and their hi planes; with sub, no
 * fields (they are in the header). */
static void make_compact(qkc_klayout *L)
{
    L->code_bits = 4;
    L->chunk = 32;
    if (L->sub != QKC_KSUB_NONE) {
        L->scale_off = L->min_off = L->zero_off = L->code_off = 0;
        L->hdr_bytes = header_bytes(L->sub);
    }
    L->chunk_bytes = L->code_off + 16 + 4 * L->hi_bits;
}

qkc_status qkc_klayout_set_panel(qkc_klayout *L, int p, int64_t n, qkc_diag *diag)
{
    qkc_klayout C;
    uint64_t panels, bytes, per_row;
    size_t len;
    if (p < 1 || p > 64 || n < 1 || !qkc_klayout_panel_ok(L))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "klayout: %s cannot take panels of %d rows",
                            L->description, p);
    C = *L;
    C.panel = p;
    if (C.hi_bits || C.sub != QKC_KSUB_NONE) {
        int64_t k = C.chunks_per_row * C.chunk;
        C.chunks_per_row = (k + 31) / 32;
        make_compact(&C);
        describe(&C, C.panel_note);
    } else if (C.in_place) {
        /* the rows are rearranged now: the note's " in place" goes */
        char *s = strstr(C.description, " in place");
        if (s)
            memmove(s, s + 9, strlen(s + 9) + 1);
    }
    per_row = (uint64_t)C.chunks_per_row * (uint64_t)C.chunk_bytes;
    if (C.sub != QKC_KSUB_NONE)
        per_row += (uint64_t)(C.chunks_per_row / 8) * (uint64_t)C.hdr_bytes;
    panels = (uint64_t)(n / p + (n % p != 0));
    if (!mul_ok(per_row, (uint64_t)p, &C.panel_bytes) || !mul_ok(C.panel_bytes, panels, &bytes) ||
        bytes > QKC_MAX_BLOB_BYTES)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weights of n=%lld in panels of %d do not fit", (long long)n,
                            p);
    C.row_bytes = per_row;
    C.total_bytes = bytes;
    C.in_place = 0;
    len = strlen(C.description);
    if (len < sizeof C.description)
        snprintf(C.description + len, sizeof C.description - len, ", panels of %d rows", p);
    *L = C;
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

/* An element's value from its code, its record's scale s and min mn (used
 * where the layout has them) and its zero field at zp. */
static float decode_code(const qkc_klayout *L, uint32_t code, float s, float mn, const uint8_t *zp)
{
    float x;
    switch (L->decode) {
    case QKC_KDEC_F32: return qkc_f32_from_bits(code);
    case QKC_KDEC_F16: return qkc_f16_to_f32((uint16_t)code);
    case QKC_KDEC_BF16: return qkc_bf16_to_f32((uint16_t)code);
    case QKC_KDEC_AFFINE: {
        int32_t v = (int32_t)code - L->zero_const;
        if (L->zero == QKC_KF_I16) {
            uint32_t z = rd16(zp);
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
    if (L->scale != QKC_KF_NONE)
        x = x * s;
    /* When both are NaN, x86 returns the first operand's payload and
     * sign, and the compiler may order a commutative + either way: the
     * scaled value's NaN comes first here explicitly, as in the
     * reference's d·q − m (a NaN min alone is kept as it is). */
    if (L->min != QKC_KF_NONE)
        x = isnan(x) ? x : x + mn;
    return x;
}

/* The same with the scale and min read from their fields (scale at sp,
 * min at mp, zero at zp: row or panel addresses). */
static float decode_value(const qkc_klayout *L, uint32_t code, const uint8_t *sp, const uint8_t *mp,
                          const uint8_t *zp)
{
    return decode_code(L, code, L->scale != QKC_KF_NONE ? field_value(L, L->scale, sp) : 0.0f,
                       L->min != QKC_KF_NONE ? field_value(L, L->min, mp) : 0.0f, zp);
}

float qkc_klayout_decode(const qkc_klayout *L, const uint8_t *row, int64_t k)
{
    int64_t c = k / L->chunk;
    int i = (int)(k % L->chunk), half = L->chunk / 2;
    const uint8_t *rec = row + (uint64_t)c * (uint64_t)L->chunk_bytes;
    const uint8_t *codes = rec + L->code_off;
    uint32_t code;

    switch (L->code_bits) {
    case 4: code = i < half ? codes[i] & 15u : (uint32_t)codes[i - half] >> 4; break;
    case 8: code = codes[i]; break;
    case 16: code = rd16(codes + 2 * i); break;
    default: code = rd32(codes + 4 * i); break;
    }
    return decode_value(L, code, rec + L->scale_off, rec + L->min_off, rec + L->zero_off);
}

/* Record j's scale (half h for Q6) and min of row `lane` from a compact
 * panel's super-record header hdr (klayout.h qkc_ksub, header_bytes). */
static void header_scale(const qkc_klayout *L, const uint8_t *hdr, int lane, int j, int h, float *s, float *mn)
{
    int P = L->panel;
    const uint8_t *lo = hdr + P * QKC_KHDR_LO(L->sub);
    float d = qkc_f16_to_f32((uint16_t)rd16(hdr + P * QKC_KHDR_D + 2 * lane));
    *mn = 0.0f;
    if (L->sub == QKC_KSUB_KQ) {
        uint32_t hi = rd32(hdr + P * QKC_KHDR_HI(L->sub) + 4 * lane), b = lo[j * P + lane];
        uint32_t sc = (b & 15u) | ((hi >> (2 * j)) & 3u) << 4, m = (b >> 4) | ((hi >> (16 + 2 * j)) & 3u) << 4;
        float dmin = qkc_f16_to_f32((uint16_t)rd16(hdr + P * QKC_KHDR_DMIN + 2 * lane));
        float m1 = dmin * (float)m;
        *s = d * (float)sc;
        *mn = isnan(m1) ? m1 : -m1; /* as the packer's negated min */
    } else if (L->sub == QKC_KSUB_XS) {
        uint32_t hi = rd16(hdr + P * QKC_KHDR_HI(L->sub) + 2 * lane);
        uint32_t ls = ((uint32_t)lo[(j / 2) * P + lane] >> (4 * (j % 2)) & 15u) | ((hi >> (2 * j)) & 3u) << 4;
        *s = d * (float)((int)ls - 32);
    } else {
        *s = d * (float)(int8_t)lo[(2 * j + h) * P + lane];
    }
}

/* Element (n, k) of a panel blob (klayout.h). */
static float decode_panel(const qkc_klayout *L, const uint8_t *blob, int64_t n, int64_t k)
{
    int P = L->panel, lane = (int)(n % P), i = (int)(k % L->chunk);
    int64_t c = k / L->chunk;
    const uint8_t *pan = blob + (uint64_t)(n / P) * L->panel_bytes, *rec, *codes;
    uint32_t code;
    if (L->sub != QKC_KSUB_NONE)
        rec = pan + (uint64_t)(c / 8) * qkc_klayout_super_bytes(L) + (uint64_t)P * (uint64_t)L->hdr_bytes +
              (uint64_t)(c % 8) * (uint64_t)P * (uint64_t)L->chunk_bytes;
    else
        rec = pan + (uint64_t)c * (uint64_t)P * (uint64_t)L->chunk_bytes;
    codes = rec + P * L->code_off;
    if (L->code_bits == 32) {
        code = rd32(codes + i * 4 * P + lane * 4); /* group i: element i */
    } else if (L->code_bits == 16) {
        code = rd16(codes + (i / 2) * 4 * P + lane * 4 + (i % 2) * 2); /* group i/2: elements i & ~1, i | 1 */
    } else if (L->code_bits == 4) {
        int e = i % 16, t = e / 4 + 4 * (i >= 16);
        uint32_t byte = codes[(e / 4) * 4 * P + lane * 4 + e % 4];
        code = i >= 16 ? byte >> 4 : byte & 15u;
        if (L->hi_bits) {
            int hb = L->hi_bits;
            uint32_t plane = rd32(codes + 16 * P + 4 * P * (t % hb) + 4 * lane);
            code |= (plane >> (8 * (e % 4) + hb * (t / hb)) & ((1u << hb) - 1)) << 4;
        }
    } else {
        code = codes[(i / 4) * 4 * P + lane * 4 + i % 4];
    }
    if (L->sub != QKC_KSUB_NONE) {
        float s, mn;
        header_scale(L, pan + (uint64_t)(c / 8) * qkc_klayout_super_bytes(L), lane, (int)(c % 8), i >= 16, &s,
                     &mn);
        return decode_code(L, code, s, mn, NULL);
    }
    return decode_value(L, code, rec + P * L->scale_off + lane * qkc_kfield_bytes(L->scale),
                        rec + P * L->min_off + lane * qkc_kfield_bytes(L->min),
                        rec + P * L->zero_off + lane * qkc_kfield_bytes(L->zero));
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
    if (L->panel)
        return decode_panel(L, blob, n, k);
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
