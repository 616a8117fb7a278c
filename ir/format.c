/* Presets (presets.def), format equality and the byte layout of weight
 * blobs; each family's sections are its own (ir/family.h). */
#include "ir/format.h"

#include "ir/checked.h"
#include "ir/family.h"
#include "ir/mixed.h"

#include <string.h>

typedef struct preset_row {
    qkc_preset_desc desc;
    qkc_format format; /* expansion with default options */
} preset_row;

/* presets.def's expansion column: always group=SIZE. */
#define EXPANSION(DT, G, SD, S2, SG, Z)                                                            \
    {.preset = QKC_PRESET_NONE, .dtype = QKC_DTYPE_##DT, .granularity = QKC_GRAN_GROUP, .group = G, \
     .scale_dtype = QKC_DTYPE_##SD, .scale2_dtype = QKC_DTYPE_##S2, .super_group = SG, .zero = QKC_ZERO_##Z}

static const preset_row preset_table[QKC_PRESET_END_] = {
#define QKC_PRESET(NAME, ID, KW, GGML, VDOT, BW, BB, FAM, EXP, ABOUT)                              \
    [QKC_PRESET_##NAME] = {{QKC_PRESET_##NAME, KW, GGML, VDOT, BW, BB, (BW) == 0, QKC_FAMILY_##FAM, ABOUT}, EXPANSION EXP},
#include "ir/presets.def"
#undef QKC_PRESET
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
    if (ggml_type < 0)
        return QKC_PRESET_NONE; /* -1 marks the presets that are not GGUF types */
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

int qkc_dtype_storage_bytes(qkc_dtype dtype)
{
    const qkc_dtype_desc *d = qkc_dtype_get(dtype);
    return d ? (d->bits + 7) / 8 : 0;
}

/* ------------------------------------------------------------------ layout */

#define ALIGN 64u

static int align_up(uint64_t v, uint64_t *r)
{
    return qkc_align_u64(v, ALIGN, r);
}

qkc_status qkc_format_layout(const qkc_format *f, int64_t n, int64_t k, qkc_weight_layout *out,
                             qkc_diag *diag)
{
    const qkc_family_ir *fam = qkc_family_ir_get(qkc_format_family(f));
    const qkc_preset_desc *pd = qkc_preset_get(f->preset);
    qkc_weight_layout L;
    uint64_t pos = 0, G;
    if (fam && fam->layout_whole)
        return fam->layout_whole(f, n, k, out, diag);
    memset(&L, 0, sizeof L);
    if (!fam || n <= 0 || k <= 0 || (f->granularity == QKC_GRAN_GROUP && f->group <= 0) ||
        (f->scale2_dtype != QKC_DTYPE_INVALID && f->super_group <= 0))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "layout: invalid shape or format");
    if (pd && pd->block_elems > 0 && k % pd->block_elems != 0)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "layout: k=%lld is not a multiple of the %s block (%lld)",
                            (long long)k, pd->keyword, (long long)pd->block_elems);
    G = f->granularity == QKC_GRAN_GROUP ? (uint64_t)f->group : (uint64_t)k;
    L.groups_per_row = (int64_t)((uint64_t)k / G + ((uint64_t)k % G != 0));
    if (!fam->sections(f, (uint64_t)n, (uint64_t)k, &L))
        return qkc_diag_set(diag, QKC_ERR_LIMIT,
                            "the weight blob of n=%lld k=%lld does not fit in 64-bit sizes",
                            (long long)n, (long long)k);
    for (int s = 0; s < QKC_SECTION_COUNT; s++) {
        if (L.bytes[s] == 0)
            continue;
        if (!align_up(pos, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "weight blob size overflows");
        L.offset[s] = pos;
        if (!qkc_add_u64(pos, L.bytes[s], &pos))
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
