/*
 * Format families, codec half: the table of operations each family fills
 * on the formats side — quantize and dequantize (the reference codecs,
 * ref.h) and pack (a format blob into its kernel layout, pack.h) — and what
 * the families' packers share. The IR half (verify, blob layout, kernel
 * layout) is ir/family.h; both are indexed by qkc_family (ir/format.h).
 *
 *   PLANAR  formats/ref_planar.c   LUT   formats/ref_lut.c
 *   VQ      formats/ref_vq.c       MIXED formats/ref_mixed.c
 *   GGUF    formats/ref_gguf.c     BNB   formats/ref_bnb.c
 *   GPTQ, AWQ  formats/ref_gptq.c
 *
 * A family's packer restates its source layout (docs/formats.md) on its
 * own, not through the codec's helpers, and resolves multi-level scales
 * with the reference's own f32 operations, so that the packed decode
 * repeats the reference bit for bit; qkc_pack_weights(verify) checks
 * exactly that against the codec.
 */
#ifndef QKC_FORMATS_FAMILY_H
#define QKC_FORMATS_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "formats/ref.h"
#include "ir/family.h"
#include "ir/klayout.h"
#include "qkc/qkc.h"

/* One packing (qkc_pack_weights): the source blob, its layout and the
 * kernel layout, and per-row scratch in layout terms. */
typedef struct qkc_pack_job {
    qkc_context *ctx;
    const qkc_format *f;
    const qkc_weight_layout *wl; /* source blob layout */
    const qkc_klayout *L;
    const uint8_t *src;
    int64_t n, k;
    /* One row in layout terms (qkc_pack_rows allocates them): code[] has
     * chunks·chunk entries (codes, or dense f16/bf16/f32 bits; 0 in the
     * tail padding); scale/min field bits and zero values per chunk; the
     * table of each chunk (LUT). */
    uint32_t *code, *scale, *min;
    int32_t *zero;
    uint32_t *tidx;
    /* Two-level scales for compact panels (ir/klayout.h sub), per
     * super-block of 256 elements when the layout has them (else NULL):
     * sup[2b], sup[2b+1] the f16 bits of d and dmin; sub[16b ..] the
     * sub-block values (KQ: sc[8] then m[8]; XS: ls[8]; Q6: sc[16]). */
    uint16_t *sup;
    uint8_t *sub;
    /* Family state: GPTQ act-order's g_idx (validated) and the packed →
     * original column map (perm, which qkc_pack_weights writes as k_perm
     * and verifies with); nf4_bnb dq's nested map and offset. qkc_pack_weights
     * frees the arrays. */
    int32_t *gidx, *perm;
    float map[256], map_offset;
} qkc_pack_job;

typedef struct qkc_family_codec {
    const char *name;
    /* The reference codec of the family's formats (ref.h). */
    qkc_status (*quantize)(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob);
    qkc_status (*dequantize)(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw);
    /* Write the packed rows of job->src at out, and what the family keeps
     * after the rows (LUT tables, the vq codebook); GPTQ act-order also sets
     * job->perm. qkc_pack_weights has checked the layout and the buffers
     * and itself handles the dense fallback, rows already in place, k_perm,
     * sparse outliers and verification. Errors as qkc_pack_weights. */
    qkc_status (*pack)(qkc_pack_job *job, uint8_t *out);
    /* A family built from other formats (mixed) packs the whole blob
     * instead (same contract as qkc_pack_weights); its pack is NULL. */
    qkc_status (*pack_whole)(qkc_context *ctx, const qkc_spec *spec, const qkc_klayout *L, const void *src,
                             size_t src_bytes, void *dst, size_t dst_bytes, int verify);
} qkc_family_codec;

/* A family's codec operations, NULL for QKC_FAMILY_NONE or out of range. */
const qkc_family_codec *qkc_family_codec_get(qkc_family family);

/* Allocate the job's row buffers, then for each row r read it with
 * read_row (filling code / scale / min / zero / tidx) and write its chunk
 * records at out + r·row_bytes, every byte. QKC_ERR_NO_MEMORY if the
 * buffers cannot be had. */
qkc_status qkc_pack_rows(qkc_pack_job *job, uint8_t *out, void (*read_row)(qkc_pack_job *job, int64_t r));

/* Element k of a planar row: bits [k·bits, (k+1)·bits), LSB first. */
static inline uint32_t qkc_pack_planar_code(const uint8_t *row, int64_t k, int bits)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits, v = 0;
    size_t byte = (size_t)(bit >> 3);
    int shift = (int)(bit & 7);
    for (int i = 0; i * 8 < shift + bits; i++)
        v |= (uint64_t)row[byte + (size_t)i] << (8 * i);
    return (uint32_t)((v >> shift) & ((UINT64_C(1) << bits) - 1));
}

/* A 1-, 2- or 4-byte little-endian field. */
static inline uint32_t qkc_pack_rd(const uint8_t *p, int bytes)
{
    return bytes == 1 ? p[0] : bytes == 2 ? qkc_rd16(p) : qkc_rd32(p);
}

/* The families' codec operations (one definition each, in the files above). */
extern const qkc_family_codec qkc_family_planar_codec, qkc_family_lut_codec, qkc_family_vq_codec,
    qkc_family_mixed_codec, qkc_family_gguf_codec, qkc_family_bnb_codec, qkc_family_gptq_codec,
    qkc_family_awq_codec;

#endif /* QKC_FORMATS_FAMILY_H */
