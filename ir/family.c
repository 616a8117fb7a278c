/* Format families, IR half (family.h): which family a format belongs to, and
 * the table of their operations. */
#include "ir/family.h"

qkc_family qkc_format_family(const qkc_format *f)
{
    const qkc_dtype_desc *dd;
    if (f->preset != QKC_PRESET_NONE) {
        const qkc_preset_desc *pd = qkc_preset_get(f->preset);
        return pd ? pd->family : QKC_FAMILY_NONE;
    }
    if (f->mixed_blocks)
        return QKC_FAMILY_MIXED;
    if (!(dd = qkc_dtype_get(f->dtype)))
        return QKC_FAMILY_NONE;
    if (dd->kind == QKC_KIND_VQ)
        return QKC_FAMILY_VQ;
    if (dd->kind == QKC_KIND_LUT)
        return QKC_FAMILY_LUT;
    return QKC_FAMILY_PLANAR;
}

const qkc_family_ir *qkc_family_ir_get(qkc_family family)
{
    static const qkc_family_ir *const table[QKC_FAMILY_END_] = {
        [QKC_FAMILY_PLANAR] = &qkc_family_planar_ir, [QKC_FAMILY_LUT] = &qkc_family_lut_ir,
        [QKC_FAMILY_VQ] = &qkc_family_vq_ir,         [QKC_FAMILY_MIXED] = &qkc_family_mixed_ir,
        [QKC_FAMILY_GGUF] = &qkc_family_gguf_ir,     [QKC_FAMILY_BNB] = &qkc_family_bnb_ir,
        [QKC_FAMILY_GPTQ] = &qkc_family_gptq_ir,     [QKC_FAMILY_AWQ] = &qkc_family_awq_ir,
    };
    if ((int)family <= 0 || family >= QKC_FAMILY_END_)
        return NULL;
    return table[family];
}
