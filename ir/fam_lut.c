/*
 * The LUT family (family.h): lut2/lut3/lut4, codes of 2, 3 or 4 bits into
 * tables of 4/8/16 entries stored with the weights, one per tensor, row or
 * group (format.h) — the verifier's rules, the blob's sections (the planar
 * DATA rows plus the tables in AUX) and the kernel layout.
 */
#include "ir/family.h"

#include <stdio.h>

#include "ir/checked.h"

#define FAIL QKC_VERIFY_FAIL

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

/* A table per tensor, row or group; no scale, zero or outliers (the table
 * already holds the values). */
static qkc_status lut_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    const char *wk = qkc_dtype_keyword(f->dtype);
    if (f->vq_dim || f->vq_bits)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq= gives the vector codebook of w=vq; w=%s has none", wk);
    if (f->table_dtype != QKC_DTYPE_F16 && f->table_dtype != QKC_DTYPE_F32)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=%s needs table=f16 or table=f32 (the dtype of its codebook entries)",
             wk);
    if (f->granularity == QKC_GRAN_NONE)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=%s needs a table granularity: group=SIZE, channel or tensor", wk);
    if (f->granularity == QKC_GRAN_GROUP && (f->group < 1 || f->group > mm->k))
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld: a table group holds 1 to k=%lld weights",
             (long long)f->group, (long long)mm->k);
    if (f->scale_dtype != QKC_DTYPE_INVALID || f->scale2_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC,
             "w=%s takes no scale: its table holds the weight values; remove scale=", wk);
    if (f->zero != QKC_ZERO_NONE)
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=%s has no zero point (the table holds the values); remove zero=", wk);
    if (f->outliers != QKC_OUTLIERS_NONE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=%s does not take outliers", wk);
    if (f->flags != 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "preset options need a preset");
    if (mm->compute == QKC_COMPUTE_INT8)
        FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC,
             "compute=int8 needs integer weight codes; w=%s decodes through a float table (use compute=f32, bf16, f16 "
             "or tf32)",
             wk);
    return QKC_OK;
}

/* The planar DATA rows; AUX: the tables (n·groups ≤ 2^36, entries ≤ 16·4
 * bytes). */
static int lut_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    uint64_t tables = (uint64_t)qkc_format_lut_tables(f, (int64_t)n, (int64_t)k);
    if (!qkc_planar_sections(f, n, k, L))
        return 0;
    return qkc_mul_u64(tables, (UINT64_C(1) << dd->bits) * (uint64_t)qkc_dtype_storage_bytes(f->table_dtype),
                       &L->bytes[QKC_SECTION_AUX]);
}

/* Codes widen to 4 bits; the tables are copied out as 16 f32 each. */
static const char *lut_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                     size_t note_size)
{
    char why[64];
    int chunk = qkc_klayout_chunk(f, why, sizeof why);
    if (!chunk) {
        qkc_klayout_set_fallback(L, why);
        return NULL;
    }
    L->chunk = chunk;
    L->code_bits = 4;
    L->decode = QKC_KDEC_LUT;
    L->lut_tables = qkc_format_lut_tables(f, n, k);
    L->tidx = L->lut_tables > 1 ? QKC_KF_U32 : QKC_KF_NONE;
    snprintf(note, note_size, "%s, %lld %s table%s", qkc_dtype_keyword(f->dtype), (long long)L->lut_tables,
             qkc_dtype_keyword(f->table_dtype), L->lut_tables > 1 ? "s" : "");
    return note;
}

const qkc_family_ir qkc_family_lut_ir = {
    .name = "lut",
    .verify = lut_verify,
    .sections = lut_sections,
    .kernel_layout = lut_kernel_layout,
};
