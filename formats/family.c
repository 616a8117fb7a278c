/* Format families, codec half (family.h): the table of their operations. */
#include "formats/family.h"

const qkc_family_codec *qkc_family_codec_get(qkc_family family)
{
    static const qkc_family_codec *const table[QKC_FAMILY_END_] = {
        [QKC_FAMILY_PLANAR] = &qkc_family_planar_codec, [QKC_FAMILY_LUT] = &qkc_family_lut_codec,
        [QKC_FAMILY_VQ] = &qkc_family_vq_codec,         [QKC_FAMILY_MIXED] = &qkc_family_mixed_codec,
        [QKC_FAMILY_GGUF] = &qkc_family_gguf_codec,     [QKC_FAMILY_BNB] = &qkc_family_bnb_codec,
        [QKC_FAMILY_GPTQ] = &qkc_family_gptq_codec,     [QKC_FAMILY_AWQ] = &qkc_family_awq_codec,
    };
    if ((int)family <= 0 || family >= QKC_FAMILY_END_)
        return NULL;
    return table[family];
}
