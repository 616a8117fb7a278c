/* Presets, format equality and the byte layout of weight blobs. */
#include "ir/format.h"

#include "ir/checked.h"
#include "ir/vq.h"
#include "ir/mixed.h"

#include <string.h>

typedef struct preset_row {
    qkc_preset_desc desc;
    qkc_format format; /* expansion with default options */
} preset_row;

#define FMT(DT, GR, G, SD, S2, SG, Z)                                                      \
    {.preset = QKC_PRESET_NONE, .dtype = QKC_DTYPE_##DT, .granularity = QKC_GRAN_##GR,     \
     .group = G, .scale_dtype = QKC_DTYPE_##SD, .scale2_dtype = QKC_DTYPE_##S2,             \
     .super_group = SG, .zero = QKC_ZERO_##Z}

/*
 * What each preset means in qkc's terms. The K-quants are double quantized:
 * 6-bit (q4_k, q5_k) or int8 (q6_k) sub-block scales under one f16 scale
 * per 256-weight super-block; q4_k/q5_k also carry 6-bit quantized minima
 * (x = d·sc·q − dmin·m). bitsandbytes absmax is an f32 scale per block.
 */
static const preset_row preset_table[QKC_PRESET_END_] = {
    [QKC_PRESET_Q4_0] = {{QKC_PRESET_Q4_0, "q4_0", 2, 32, 18, 0}, FMT(INT4, GROUP, 32, F16, INVALID, 0, NONE)},
    [QKC_PRESET_Q4_1] = {{QKC_PRESET_Q4_1, "q4_1", 3, 32, 20, 0}, FMT(UINT4, GROUP, 32, F16, INVALID, 0, FLOAT)},
    [QKC_PRESET_Q5_0] = {{QKC_PRESET_Q5_0, "q5_0", 6, 32, 22, 0}, FMT(INT5, GROUP, 32, F16, INVALID, 0, NONE)},
    [QKC_PRESET_Q5_1] = {{QKC_PRESET_Q5_1, "q5_1", 7, 32, 24, 0}, FMT(UINT5, GROUP, 32, F16, INVALID, 0, FLOAT)},
    [QKC_PRESET_Q8_0] = {{QKC_PRESET_Q8_0, "q8_0", 8, 32, 34, 0}, FMT(INT8, GROUP, 32, F16, INVALID, 0, NONE)},
    [QKC_PRESET_Q4_K] = {{QKC_PRESET_Q4_K, "q4_k", 12, 256, 144, 0}, FMT(UINT4, GROUP, 32, UINT6, F16, 8, FLOAT)},
    [QKC_PRESET_Q5_K] = {{QKC_PRESET_Q5_K, "q5_k", 13, 256, 176, 0}, FMT(UINT5, GROUP, 32, UINT6, F16, 8, FLOAT)},
    [QKC_PRESET_Q6_K] = {{QKC_PRESET_Q6_K, "q6_k", 14, 256, 210, 0}, FMT(INT6, GROUP, 16, INT8, F16, 16, NONE)},
    [QKC_PRESET_IQ4_NL] = {{QKC_PRESET_IQ4_NL, "iq4_nl", 20, 32, 18, 0}, FMT(IQ4NL, GROUP, 32, F16, INVALID, 0, NONE)},
    [QKC_PRESET_MXFP4] = {{QKC_PRESET_MXFP4, "mxfp4", 39, 32, 17, 0}, FMT(FP4, GROUP, 32, E8M0, INVALID, 0, NONE)},
    [QKC_PRESET_MXFP8] = {{QKC_PRESET_MXFP8, "mxfp8", -1, 32, 33, 0}, FMT(FP8E4M3, GROUP, 32, E8M0, INVALID, 0, NONE)},
    [QKC_PRESET_NF4_BNB] = {{QKC_PRESET_NF4_BNB, "nf4_bnb", -1, 0, 0, 1}, FMT(NF4, GROUP, 64, F32, INVALID, 0, NONE)},
    [QKC_PRESET_GPTQ] = {{QKC_PRESET_GPTQ, "gptq", -1, 0, 0, 1}, FMT(UINT4, GROUP, 128, F16, INVALID, 0, INT)},
    [QKC_PRESET_AWQ] = {{QKC_PRESET_AWQ, "awq", -1, 0, 0, 1}, FMT(UINT4, GROUP, 128, F16, INVALID, 0, INT)},
};

const qkc_preset_desc *qkc_preset_get(qkc_preset preset)
{
    if ((int)preset <= 0 || preset >= QKC_PRESET_END_ || !preset_table[preset].desc.keyword)
        return NULL;
    return &preset_table[preset].desc;
}

qkc_preset qkc_preset_from_keyword(const char *s, size_t len)
{
    for (int i = 1; i < QKC_PRESET_END_; i++) {
        const char *kw = preset_table[i].desc.keyword;
        if (kw && strlen(kw) == len && memcmp(kw, s, len) == 0)
            return (qkc_preset)i;
    }
    return QKC_PRESET_NONE;
}

qkc_preset qkc_preset_from_ggml_type(int ggml_type)
{
    for (int i = 1; i < QKC_PRESET_END_; i++)
        if (preset_table[i].desc.keyword && preset_table[i].desc.ggml_type == ggml_type)
            return (qkc_preset)i;
    return QKC_PRESET_NONE;
}

qkc_format qkc_preset_format(qkc_preset preset)
{
    qkc_format f;
    memset(&f, 0, sizeof f);
    if (qkc_preset_get(preset)) {
        f = preset_table[preset].format;
        f.preset = preset;
    }
    return f;
}

int qkc_format_equal(const qkc_format *a, const qkc_format *b)
{
    return a->preset == b->preset && a->dtype == b->dtype && a->granularity == b->granularity &&
           a->group == b->group && a->scale_dtype == b->scale_dtype &&
           a->scale2_dtype == b->scale2_dtype && a->super_group == b->super_group &&
           a->zero == b->zero && a->outliers == b->outliers &&
           a->outlier_fraction == b->outlier_fraction && a->flags == b->flags &&
           a->act_threshold == b->act_threshold &&
           a->table_dtype == b->table_dtype && a->vq_dim == b->vq_dim && a->vq_bits == b->vq_bits &&
           qkc_mixed_format_equal(a, b);
}

int64_t qkc_format_lut_tables(const qkc_format *f, int64_t n, int64_t k)
{
    const qkc_dtype_desc *d = qkc_dtype_get(f->dtype);
    if (!d || d->kind != QKC_KIND_LUT || f->preset != QKC_PRESET_NONE || n <= 0 || k <= 0)
        return 0;
    switch (f->granularity) {
    case QKC_GRAN_TENSOR: return 1;
    case QKC_GRAN_CHANNEL: return n;
    case QKC_GRAN_GROUP: return f->group > 0 ? n * ((k + f->group - 1) / f->group) : 0;
    default: return 0;
    }
}

int qkc_dtype_storage_bytes(qkc_dtype dtype)
{
    const qkc_dtype_desc *d = qkc_dtype_get(dtype);
    return d ? (d->bits + 7) / 8 : 0;
}

/* ------------------------------------------------------------------ layout */

/* a*b, a+b with overflow detection (all sizes are below 2^62 when valid). */
#define mul_ok qkc_mul_u64
#define add_ok qkc_add_u64

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

#define ALIGN 64u

static int align_up(uint64_t v, uint64_t *r)
{
    return qkc_align_u64(v, ALIGN, r);
}

/* Sizes of each section, before placement. */
static int section_sizes(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    uint64_t *b = L->bytes;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    const qkc_preset_desc *pd = qkc_preset_get(f->preset);
    uint64_t G = f->granularity == QKC_GRAN_GROUP ? (uint64_t)f->group : k;
    uint64_t groups = ceil_div(k, G);
    uint64_t t;

    if (!dd)
        return 0;
    L->groups_per_row = (int64_t)groups;
    if (pd && pd->block_bytes > 0) {
        /* Block rows: GGUF types and mxfp8. */
        if (k % (uint64_t)pd->block_elems != 0)
            return 0; /* the verifier reports this case with its own message */
        if (!mul_ok(k / (uint64_t)pd->block_elems, (uint64_t)pd->block_bytes, &L->row_bytes) ||
            !mul_ok(n, L->row_bytes, &b[QKC_SECTION_DATA]))
            return 0;
        return 1;
    }
    switch (f->preset) {
    case QKC_PRESET_NF4_BNB: {
        /* DATA: N·K/2 bytes, element 2i in the HIGH nibble of byte i, blocks
         * of `group` consecutive row-major elements (in-row since K % G == 0).
         * SCALES: absmax f32 per block, or with dq: uint8 codes into the
         * nested map. SCALES2 (dq): nested_absmax f32 per 256 codes.
         * AUX (dq): nested_quant_map f32[256], then nested_offset f32. */
        uint64_t nk, blocks;
        if (!mul_ok(n, k, &nk))
            return 0;
        blocks = nk / G;
        b[QKC_SECTION_DATA] = nk / 2;
        L->row_bytes = k / 2;
        if (f->flags & QKC_FORMAT_DQ) {
            b[QKC_SECTION_SCALES] = blocks;
            b[QKC_SECTION_SCALES2] = ceil_div(blocks, 256) * 4;
            b[QKC_SECTION_AUX] = 256 * 4 + 4;
        } else {
            b[QKC_SECTION_SCALES] = blocks * 4;
        }
        return 1;
    }
    case QKC_PRESET_GPTQ: {
        /* DATA: qweight int32 [K·bits/32][N] (packed along K, LSB first;
         * 3-bit: 96-bit little-endian runs of 32 values). ZEROS: qzeros int32
         * [groups][N·bits/32] packed along N, stored value = zero − 1.
         * SCALES: f16 [groups][N]. AUX (actorder): g_idx int32[K]. */
        uint64_t bits = (uint64_t)dd->bits;
        if (!mul_ok(k * bits / 32, n * 4, &b[QKC_SECTION_DATA]) ||
            !mul_ok(groups, n * bits / 32 * 4, &b[QKC_SECTION_ZEROS]) ||
            !mul_ok(groups, n * 2, &b[QKC_SECTION_SCALES]))
            return 0;
        if (f->flags & QKC_FORMAT_ACTORDER)
            b[QKC_SECTION_AUX] = k * 4;
        return 1;
    }
    case QKC_PRESET_AWQ:
        /* DATA: qweight int32 [K][N/8], nibble i of word c = column
         * 8c + ORDER[i], ORDER = 0,2,4,6,1,3,5,7. ZEROS: qzeros int32
         * [K/G][N/8], same interleave, stored as is. SCALES: f16 [K/G][N]. */
        if (!mul_ok(k, n / 8 * 4, &b[QKC_SECTION_DATA]) ||
            !mul_ok(groups, n / 8 * 4, &b[QKC_SECTION_ZEROS]) ||
            !mul_ok(groups, n * 2, &b[QKC_SECTION_SCALES]))
            return 0;
        return 1;
    default: break;
    }

    if (dd->kind == QKC_KIND_VQ)
        return qkc_vq_section_sizes(f, n, k, &b[QKC_SECTION_DATA], &b[QKC_SECTION_AUX], &L->row_bytes);
    /* Planar. */
    if (!mul_ok(k, (uint64_t)dd->bits, &t))
        return 0;
    L->row_bytes = ceil_div(t, 8);
    if (!mul_ok(n, L->row_bytes, &b[QKC_SECTION_DATA]))
        return 0;
    if (f->granularity != QKC_GRAN_NONE) {
        uint64_t nscales = f->granularity == QKC_GRAN_TENSOR ? 1 : n * groups;
        if (f->granularity == QKC_GRAN_TENSOR)
            L->groups_per_row = 1;
        if (!mul_ok(nscales, (uint64_t)qkc_dtype_storage_bytes(f->scale_dtype), &b[QKC_SECTION_SCALES]))
            return 0;
        if (f->scale2_dtype != QKC_DTYPE_INVALID) {
            uint64_t n2;
            if (!mul_ok(n, ceil_div(groups, (uint64_t)f->super_group), &n2) ||
                !mul_ok(n2, (uint64_t)qkc_dtype_storage_bytes(f->scale2_dtype), &b[QKC_SECTION_SCALES2]))
                return 0;
        }
        if (dd->kind == QKC_KIND_LUT) {
            /* AUX: the tables (n·groups ≤ 2^36, entries ≤ 16·4 bytes). */
            uint64_t tables = (uint64_t)qkc_format_lut_tables(f, (int64_t)n, (int64_t)k);
            if (!mul_ok(tables, (UINT64_C(1) << dd->bits) * (uint64_t)qkc_dtype_storage_bytes(f->table_dtype),
                        &b[QKC_SECTION_AUX]))
                return 0;
        }
        if (f->zero == QKC_ZERO_INT)
            b[QKC_SECTION_ZEROS] = nscales;
        else if (f->zero == QKC_ZERO_FLOAT)
            b[QKC_SECTION_ZEROS] = b[QKC_SECTION_SCALES];
    }
    if (f->outliers == QKC_OUTLIERS_SPARSE) {
        uint64_t cap = (uint64_t)(f->outlier_fraction * (double)k + 0.999999);
        uint64_t total, ptr_bytes, col_bytes, val_bytes, s;
        if (cap < 1)
            cap = 1;
        if (cap > k)
            cap = k;
        L->outlier_cap = (int64_t)cap;
        if (!mul_ok(n, cap, &total) || !mul_ok(n + 1, 4, &ptr_bytes) || !mul_ok(total, 4, &col_bytes) ||
            !mul_ok(total, 2, &val_bytes) || !align_up(ptr_bytes, &s) || !align_up(col_bytes, &t) ||
            !add_ok(s, t, &s) || !add_ok(s, val_bytes, &b[QKC_SECTION_OUTLIERS]))
            return 0;
    }
    return 1;
}

qkc_status qkc_format_layout(const qkc_format *f, int64_t n, int64_t k, qkc_weight_layout *out,
                             qkc_diag *diag)
{
    qkc_weight_layout L;
    uint64_t pos = 0;
    if (f->mixed_blocks)
        return qkc_mixed_format_layout(f, n, k, out, diag);
    memset(&L, 0, sizeof L);
    if (n <= 0 || k <= 0 || (f->granularity == QKC_GRAN_GROUP && f->group <= 0) ||
        (f->scale2_dtype != QKC_DTYPE_INVALID && f->super_group <= 0))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "layout: invalid shape or format");
    if (qkc_preset_get(f->preset) && qkc_preset_get(f->preset)->block_elems > 0 &&
        k % qkc_preset_get(f->preset)->block_elems != 0)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "layout: k=%lld is not a multiple of the %s block (%lld)",
                            (long long)k, qkc_preset_get(f->preset)->keyword,
                            (long long)qkc_preset_get(f->preset)->block_elems);
    if (!section_sizes(f, (uint64_t)n, (uint64_t)k, &L))
        return qkc_diag_set(diag, QKC_ERR_LIMIT,
                            "the weight blob of n=%lld k=%lld does not fit in 64-bit sizes",
                            (long long)n, (long long)k);
    for (int s = 0; s < QKC_SECTION_COUNT; s++) {
        if (L.bytes[s] == 0)
            continue;
        if (!align_up(pos, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "weight blob size overflows");
        L.offset[s] = pos;
        if (!add_ok(pos, L.bytes[s], &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "weight blob size overflows");
    }
    if (pos > QKC_MAX_BLOB_BYTES)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "the weight blob of n=%lld k=%lld takes %llu bytes, over the limit of 2^40",
                            (long long)n, (long long)k, (unsigned long long)pos);
    L.total = pos;
    if (L.bytes[QKC_SECTION_OUTLIERS]) {
        uint64_t ptr_bytes = ((uint64_t)n + 1) * 4;
        L.outlier_col_offset = L.offset[QKC_SECTION_OUTLIERS] + ((ptr_bytes + ALIGN - 1) & ~(uint64_t)(ALIGN - 1));
        L.outlier_val_offset = L.outlier_col_offset +
                               ((((uint64_t)n * (uint64_t)L.outlier_cap * 4) + ALIGN - 1) & ~(uint64_t)(ALIGN - 1));
    }
    *out = L;
    return QKC_OK;
}
