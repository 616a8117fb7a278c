/* 2-D vector codebooks: format sizes (see vq.h). */
#include "ir/vq.h"

#include "ir/checked.h"
#include "ir/dtype.h"

int64_t qkc_vq_entries(const qkc_format *f)
{
    if (f->preset != QKC_PRESET_NONE || f->dtype != QKC_DTYPE_VQ || f->vq_bits < 1 || f->vq_bits > 16)
        return 0;
    return (int64_t)1 << f->vq_bits;
}

int qkc_vq_section_sizes(const qkc_format *f, uint64_t n, uint64_t k, uint64_t *data, uint64_t *aux,
                         uint64_t *row_bytes)
{
    uint64_t bits, cb;
    int64_t E = qkc_vq_entries(f);
    int eb = qkc_dtype_storage_bytes(f->table_dtype);
    if (E <= 0 || f->vq_dim < 1 || f->vq_dim > 64 || k % (uint64_t)f->vq_dim != 0 || eb <= 0)
        return 0;
    if (!qkc_mul_u64(k / (uint64_t)f->vq_dim, (uint64_t)f->vq_bits, &bits))
        return 0;
    *row_bytes = bits / 8 + (bits % 8 != 0);
    if (!qkc_mul_u64(n, *row_bytes, data) || !qkc_mul_u64((uint64_t)E * (uint64_t)f->vq_dim, (uint64_t)eb, &cb))
        return 0;
    *aux = cb;
    return 1;
}
