/* The VQ family (family.h): 2-D vector codebooks — format sizes, the
 * verifier's rules and the kernel layout (see vq.h). */
#include "ir/vq.h"

#include <stdio.h>

#include "ir/checked.h"
#include "ir/dtype.h"
#include "ir/family.h"

#define FAIL QKC_VERIFY_FAIL

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

/* One codebook per tensor of 2^B vectors of V weights; K a multiple of V;
 * no scale, zero or outliers. */
static qkc_status vq_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    if (f->vq_dim == 0 && f->vq_bits == 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=vq needs vq=V:B (V = 2, 4 or 8 weights per index, B = 4 .. 12 bits)");
    if (f->vq_dim != 2 && f->vq_dim != 4 && f->vq_dim != 8)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq=%d:%d: a codeword holds V = 2, 4 or 8 weights", f->vq_dim, f->vq_bits);
    if (f->vq_bits < 4 || f->vq_bits > 12)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq=%d:%d: an index has B = 4 .. 12 bits (16 .. 4096 codewords)",
             f->vq_dim, f->vq_bits);
    if (mm->k % f->vq_dim != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "k=%lld is not a multiple of the vq vector length %d", (long long)mm->k,
             f->vq_dim);
    if (f->table_dtype != QKC_DTYPE_F16 && f->table_dtype != QKC_DTYPE_F32)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=vq needs table=f16 or table=f32 (the dtype of its codebook)");
    if (f->granularity != QKC_GRAN_TENSOR)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC,
             "w=vq has one codebook per tensor: group=tensor (per-row or per-group codebooks are not supported)");
    if (f->scale_dtype != QKC_DTYPE_INVALID || f->scale2_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "w=vq takes no scale: its codebook holds the weight values; remove scale=");
    if (f->zero != QKC_ZERO_NONE)
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=vq has no zero point; remove zero=");
    if (f->outliers != QKC_OUTLIERS_NONE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=vq does not take outliers");
    if (f->flags != 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "preset options need a preset");
    if (mm->compute == QKC_COMPUTE_INT8)
        FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC,
             "compute=int8 needs integer weight codes; w=vq decodes through a float codebook (use compute=f32, bf16, "
             "f16 or tf32)");
    return QKC_OK;
}

static int vq_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    return qkc_vq_section_sizes(f, n, k, &L->bytes[QKC_SECTION_DATA], &L->bytes[QKC_SECTION_AUX], &L->row_bytes);
}

/* u16 indices per chunk of 32, the codebook widened to f32. */
static const char *vq_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                    size_t note_size)
{
    (void)n, (void)k;
    L->chunk = 32;
    L->code_bits = 16;
    L->decode = QKC_KDEC_VQ;
    L->vq_dim = f->vq_dim;
    L->vq_entries = (int64_t)1 << f->vq_bits;
    snprintf(note, note_size, "vq %d:%d, %lld %s codewords", f->vq_dim, f->vq_bits, (long long)L->vq_entries,
             qkc_dtype_keyword(f->table_dtype));
    return note;
}

const qkc_family_ir qkc_family_vq_ir = {
    .name = "vq",
    .verify = vq_verify,
    .sections = vq_sections,
    .kernel_layout = vq_kernel_layout,
};
