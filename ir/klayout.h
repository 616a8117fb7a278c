/*
 * Kernel layout: how compiled CPU kernels read weights. Every weight format
 * maps to one kernel layout (qkc_klayout_for); qkc_weights_pack turns a
 * format blob into it once, and kernels read nothing else.
 *
 * A packed blob is N rows of `row_bytes`; row n holds ceil(K / chunk)
 * chunk records of `chunk_bytes` back to back (the last chunk of a row is
 * padded with code 0; kernels mask the matching activations to zero). A
 * chunk record is
 *
 *     [scale][min][zero][tidx] [codes]
 *
 * with each field present or absent by kind, at the offsets given here:
 *
 *   scale  F16 (2 bytes), F32 (4), E8M0 (1 byte; value 2^(e-127), or
 *          2^(e-128) with `e8m0_half`, which pairs with a doubled table so
 *          that decoding equals ggml's MXFP4 bit for bit; e = 0xFF gives
 *          the reference's value, NaN or 2^127, via `e8m0_ff_is_nan`)
 *   min    F16 or F32: x = v·s + min (one rounding each, in that order)
 *   zero   I16: v = code − zero (exact in f32), in addition to zero_const
 *   tidx   U32: LUT only, the index of the chunk's table (see lut_tables)
 *   codes  code_bits = 4: chunk/2 bytes, the low nibble of byte i is
 *          element i and the high nibble element i + chunk/2;
 *          code_bits = 8: one byte per element; 16 (f16/bf16) or 32 (f32)
 *          for dense values.
 *
 * Element value, by decode kind:
 *   AFFINE    v = (float)(code − zero_const − zero);   x = v·s (+ min)
 *   TABLE     x = table[code]·s
 *   LUT       x = tables[tidx][code] (the tables are part of the packed blob)
 *   FP8E4M3 / FP8E5M2    x = fp8(code)·s
 *   F32 / F16 / BF16     x = the dense value (no scale)
 * With no scale field, s is absent (x = v, or x = table[code]).
 *
 * Packing checks, row by row, that decoding the packed row this way gives
 * exactly the reference dequantizer's floats; the layout is chosen so that
 * it does. Formats whose groups straddle chunks (a group size that is not a
 * multiple of the chunk) use the FALLBACK layout: dense f32 values.
 *
 * GPTQ act-order: packing sorts the K columns by group (stable), so groups
 * become contiguous; `k_perm` (K int32, after the N rows) gives for packed
 * column j the original column, and the runtime permutes A the same way.
 */
#ifndef QKC_IR_KLAYOUT_H
#define QKC_IR_KLAYOUT_H

#include <stdint.h>

#include "ir/diag.h"
#include "ir/format.h"

typedef enum qkc_kdecode {
    QKC_KDEC_AFFINE = 1,
    QKC_KDEC_TABLE = 2,
    QKC_KDEC_FP8E4M3 = 3,
    QKC_KDEC_FP8E5M2 = 4,
    QKC_KDEC_F32 = 5,
    QKC_KDEC_F16 = 6,
    QKC_KDEC_BF16 = 7,
    QKC_KDEC_LUT = 8, /* x = tables[tidx][code]: a table that comes with the weights */
    QKC_KDEC_VQ = 9   /* x = codebook[index][k % vq_dim]: u16 indices, codebook after the rows */
} qkc_kdecode;

typedef enum qkc_kfield {
    QKC_KF_NONE = 0,
    QKC_KF_F16 = 1,
    QKC_KF_F32 = 2,
    QKC_KF_E8M0 = 3,
    QKC_KF_I16 = 4,
    QKC_KF_U32 = 5 /* a table index (LUT) */
} qkc_kfield;

/* Two-level scales of compact panels (klayout.h), per super record of 8
 * records and row: the header fields, and each record j's scale s (and
 * min) as the reference computes it, one rounding each:
 *   KQ  q4_k, q5_k: f16 d, f16 dmin, 6-bit sc_j and m_j:
 *       s = d·sc_j, min = −(dmin·m_j)
 *   XS  iq4_xs: f16 d, 6-bit ls_j: s = d·(ls_j − 32)
 *   Q6  q6_k: f16 d, int8 sc per 16 elements: elements 16h .. 16h+15 of
 *       record j take s = d·sc_{2j+h} (two scales per record) */
typedef enum qkc_ksub { QKC_KSUB_NONE = 0, QKC_KSUB_KQ = 1, QKC_KSUB_XS = 2, QKC_KSUB_Q6 = 3 } qkc_ksub;

typedef struct qkc_klayout {
    int chunk;     /* elements per chunk: 16 or 32 */
    int code_bits; /* 4, 8, 16 or 32 */
    qkc_kdecode decode;
    float table[16];     /* TABLE */
    int zero_const;      /* AFFINE: constant subtracted from every code */
    qkc_kfield scale;    /* NONE, F16, F32, E8M0 */
    int e8m0_half;       /* E8M0 scale decodes as 2^(e-128) */
    int e8m0_ff_is_nan;  /* E8M0 0xFF decodes as NaN (else 2^127, ggml) */
    qkc_kfield min;      /* NONE, F16, F32 */
    qkc_kfield zero;     /* NONE, I16 */
    int scale_off, min_off, zero_off, code_off; /* byte offsets in a chunk */
    int chunk_bytes;
    int64_t chunks_per_row;
    uint64_t row_bytes;
    uint64_t perm_offset; /* act-order: offset of int32 k_perm[K], else 0 */
    int permute_k;
    uint64_t total_bytes;
    int fallback;          /* dense f32 because the format does not chunk */
    int in_place;          /* the format blob already is this layout */
    char description[96];  /* e.g. "4-bit affine, f16 scale per 32 (q4_0 in place)" */
    /* Sparse weight outliers (outliers=sparse:F on a chunked layout): the
     * format's CSR arrays follow the rows (and k_perm), each 64-byte
     * aligned: row_ptr uint32[N+1] at outlier_ptr_offset, col uint32[N·cap]
     * at outlier_col_offset, val f16[N·cap] at outlier_val_offset. Kernels
     * add val·a[col] for each entry of a row to that row's dense dot
     * product (packing checks row_ptr and col first). The fallback layout
     * folds outliers into its dense values instead (outliers = 0). */
    int outliers;
    int64_t outlier_cap;
    uint64_t outlier_ptr_offset, outlier_col_offset, outlier_val_offset;
    /* LUT: `lut_tables` tables of 16 f32 (64 bytes each, 2- and 3-bit tables
     * padded with +0) at `table_offset` (64-byte aligned, after the rows);
     * each chunk record holds the U32 index of its table at tidx_off, or no
     * index when there is one table (tidx NONE: table 0). */
    qkc_kfield tidx;
    int tidx_off;
    int64_t lut_tables;
    uint64_t table_offset;
    /* VQ (w=vq): a chunk record holds chunk/vq_dim u16 codeword indices
     * (code_bits 16, one per vq_dim elements; no other fields); the codebook,
     * vq_entries × vq_dim f32, follows the rows at table_offset (64-byte
     * aligned), codeword i at table_offset + i·vq_dim·4. */
    int vq_dim;
    int64_t vq_entries;
    /* w=mixed: the row blocks are packed one after another, each in its own
     * layout (ir/mixed.h, qkc_mixed_block_klayout); mixed_format and mixed_k
     * let decode find them. The other fields describe block 0. */
    int mixed;
    int64_t mixed_k;
    qkc_format mixed_format;
    /* Weight panels (panel = P > 0, qkc_klayout_set_panel): P rows
     * interleaved per chunk, so that one vector lane holds one row. The
     * blob is ceil(N / P) panels of panel_bytes; panel p holds rows
     * [pP, pP + P) (rows past N are zero) as chunks_per_row records of
     * P·chunk_bytes, record c of every row of the panel together:
     *
     *     [P scales][P mins][P zeros] [codes]
     *
     * each field of row r of the panel at P·off + r·size (off, size: the
     * row layout's). The codes come in groups of 4 elements per row, P·4
     * bytes a group, row r's 4 bytes at r·4:
     *   code_bits 8: group g holds elements 4g .. 4g+3, one byte each;
     *   code_bits 4: group g (0..3) holds elements 4g .. 4g+3 in the low
     *                nibbles and 16+4g .. 16+4g+3 in the high nibbles;
     *   code_bits 16 (dense f16, bf16): group g holds elements 2g, 2g+1;
     *   code_bits 32 (dense f32): group g is element g, so that the P
     *                rows' values of one k are one vector.
     * Values decode as in the row layout. row_bytes is the bytes of one
     * row (panel_bytes / P).
     *
     * Compact panels keep the file's bit planes and two-level scales, so
     * that a panel takes no more bytes than the file's blocks (GGUF q5_0,
     * q5_1, q4_k, q5_k, q6_k, iq4_xs). The family describes them in the
     * row layout (hi_bits, sub, panel_note; ignored until set_panel), and
     * set_panel applies them: code_bits becomes 4 and
     *   hi_bits = 1 or 2: a code is its nibble (as code_bits 4) | hi << 4,
     *          hi (hi_bits bits) from hi_bits planes after the nibble
     *          groups, plane j of row r a u32 at P·code_off + 16P + 4P·j +
     *          4r: element 4t + i's hi (t = 0..7, i = 0..3) is in plane
     *          t % hi_bits at bit 8i + hi_bits·(t / hi_bits), so that one
     *          shift and one mask place a group's hi bits;
     *   sub != NONE: super records of 8 records (256 elements of K; K is
     *          a multiple of 256): a header of P·hdr_bytes (klayout.c),
     *          then the 8 records, which hold codes only (code_off 0, no
     *          fields); each record's scale (and min) comes from the
     *          header as the reference computes it (qkc_ksub).
     * chunk_bytes is then the bytes of one row's codes in a record. */
    int panel;
    uint64_t panel_bytes;
    int hi_bits;
    qkc_ksub sub;
    int hdr_bytes;        /* sub: header bytes per row of a super record */
    char panel_note[48];  /* the compact panel form's note (description) */
} qkc_klayout;

/* Choose the kernel layout for a verified format and shape. Never fails
 * for a verified format (the fallback always applies); the status reports
 * size overflow only. */
qkc_status qkc_klayout_for(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *out, qkc_diag *diag);

/* Bytes of a chunk field of this kind (0 for NONE). */
int qkc_kfield_bytes(qkc_kfield f);

/* Reference decode of one element of a packed row (the kernels' semantics,
 * in scalar C). `row` points at the row's first chunk. */
float qkc_klayout_decode(const qkc_klayout *L, const uint8_t *row, int64_t k);

/* The same for element (n, k) of a whole packed blob: works for every
 * decode kind, LUT included (its tables live outside the rows). */
float qkc_klayout_decode_at(const qkc_klayout *L, const uint8_t *blob, int64_t n, int64_t k);

/* Can L (a row layout from qkc_klayout_for) take panels? 32-element
 * records of 4- or 8-bit codes (or a compact panel form), AFFINE or
 * TABLE, or of dense f32, f16 or bf16 values; no k permutation, no sparse
 * outliers, not mixed, not the fallback. */
int qkc_klayout_panel_ok(const qkc_klayout *L);

/* A compact panel's super-record header (klayout.c), per panel: field
 * offsets in units of P bytes (row r's field at P·off + r·size). */
#define QKC_KHDR_D 0                                        /* f16 d */
#define QKC_KHDR_DMIN 2                                     /* KQ: f16 dmin */
#define QKC_KHDR_HI(sub) ((sub) == QKC_KSUB_KQ ? 4 : 2)     /* KQ: u32, XS: u16 */
#define QKC_KHDR_LO(sub) ((sub) == QKC_KSUB_KQ ? 8 : (sub) == QKC_KSUB_XS ? 4 : 2) /* byte planes */

/* Bytes of one super record of a compact panel with sub (P rows). */
uint64_t qkc_klayout_super_bytes(const qkc_klayout *L);

/* Turn L (qkc_klayout_for's, for n rows) into its panel form of P rows
 * (P in 1..64; qkc_klayout_panel_ok must hold): the compact form where
 * the family gives one, sizes for ceil(n / P) panels, in_place cleared,
 * the description says so. */
qkc_status qkc_klayout_set_panel(qkc_klayout *L, int p, int64_t n, qkc_diag *diag);

#endif /* QKC_IR_KLAYOUT_H */
