/*
 * The weight format: element dtype × granularity × scales × zero points ×
 * outliers × layout, and the byte layout of a quantized weight blob.
 *
 * Conventions (the semantics every codec, kernel and test follows):
 *
 * - W is N×K, row n holds the K weights of output n. Groups run along K
 *   inside one row: group g of row n covers k in [g·G, min((g+1)·G, K)).
 *   A partial last group is allowed in the planar layout.
 * - A weight blob is a set of sections (DATA, SCALES, SCALES2, ZEROS, AUX,
 *   OUTLIERS) placed back to back at 64-byte aligned offsets in that order;
 *   absent sections have 0 bytes. All multi-byte fields are little-endian.
 *
 * Planar layout (qkc's own, used when no preset is named):
 * - DATA: N rows of ceil(K·bits/8) bytes. Inside a row element k occupies
 *   bits [k·bits, (k+1)·bits) of a little-endian bit stream (LSB first):
 *   for 4 bits, element 2j is the low nibble of byte j. Signed ints are two's
 *   complement in `bits` bits. Dense f16/bf16/f32/tf32 rows are plain arrays.
 * - SCALES: one scale per (row, group) in row-major order (channel: one per
 *   row; tensor: one in all), each stored in the scale dtype.
 * - SCALES2 (double quantization): one second-level scale per (row, super
 *   group of S consecutive groups), in the second-level dtype.
 * - ZEROS: zero=int — one byte per scale holding the zero code in the
 *   element's bits (two's complement for signed dtypes); zero=float — one
 *   minimum per scale in the scale dtype.
 * - OUTLIERS (sparse): row_ptr uint32[N+1] (CSR, entries of row n are
 *   [row_ptr[n], row_ptr[n+1])), then col uint32[N·cap], then val f16[N·cap],
 *   each sub-array 64-byte aligned; cap = per-row capacity from the fraction.
 *
 * Dequantization (planar), in f32 with one rounding per operation (no FMA):
 *   s  = decode(scale)                     single-level
 *   s  = s2 · decode(scale)                double quantization
 *   x  = (float)q · s                      integer, zero=none
 *   x  = (float)(q − z) · s                integer, zero=int (q − z exact)
 *   x  = (float)q · s + m                  integer, zero=float (x = d·q + m)
 *   x  = decode(q) · s                     fp8/fp4/nf4/iq4nl codes
 *   x  = decode(q)                         dense f32/f16/bf16/tf32
 *   x += val (f16→f32) for each outlier (n, col) of row n
 *
 * Preset layouts are the external formats byte for byte (formats.md):
 * GGUF types are rows of ggml blocks in DATA; mxfp8 is rows of 33-byte
 * blocks [e8m0 scale][32 fp8 codes]; nf4_bnb, gptq and awq are described
 * next to their layout code in their family files (ir/fam_bnb.c,
 * ir/fam_gptq.c; ir/family.h lists them) and in docs/formats.md.
 */
#ifndef QKC_IR_FORMAT_H
#define QKC_IR_FORMAT_H

#include <stdint.h>

#include "ir/diag.h"
#include "ir/dtype.h"

typedef enum qkc_preset {
    QKC_PRESET_NONE = 0, /* qkc's planar layout */
#define QKC_PRESET(NAME, ID, ...) QKC_PRESET_##NAME = ID,
#include "ir/presets.def"
#undef QKC_PRESET
    QKC_PRESET_END_
} qkc_preset;

/*
 * Format families: each is the code that implements a kind of format, one
 * table of operations on each side of the library (ir/family.h: verify,
 * blob layout, kernel layout; formats/family.h: quantize, dequantize,
 * pack). A preset's family is its presets.def column; any other format's
 * follows from its dtype (qkc_format_family, ir/family.h). Not serialized.
 */
typedef enum qkc_family {
    QKC_FAMILY_NONE = 0,   /* not a valid format */
    QKC_FAMILY_PLANAR = 1, /* qkc's planar layout: dense floats, scaled integers, fp8/fp4, nf4/iq4nl codes */
    QKC_FAMILY_LUT = 2,    /* lut2/lut3/lut4: codes into tables stored with the weights */
    QKC_FAMILY_VQ = 3,     /* vq: vector codebooks (ir/vq.h) */
    QKC_FAMILY_MIXED = 4,  /* w=mixed: row blocks of planar integers of different widths (ir/mixed.h) */
    QKC_FAMILY_GGUF = 5,   /* rows of fixed blocks: the GGUF types and mxfp8 */
    QKC_FAMILY_BNB = 6,    /* bitsandbytes nf4 */
    QKC_FAMILY_GPTQ = 7,   /* GPTQ v1 */
    QKC_FAMILY_AWQ = 8,    /* AWQ gemm */
    QKC_FAMILY_END_
} qkc_family;

typedef enum qkc_granularity {
    QKC_GRAN_NONE = 0, /* unscaled dense float weights */
    QKC_GRAN_TENSOR = 1,
    QKC_GRAN_CHANNEL = 2,
    QKC_GRAN_GROUP = 3
} qkc_granularity;

typedef enum qkc_zero { QKC_ZERO_NONE = 0, QKC_ZERO_INT = 1, QKC_ZERO_FLOAT = 2 } qkc_zero;

typedef enum qkc_outliers {
    QKC_OUTLIERS_NONE = 0,
    QKC_OUTLIERS_SPARSE = 1, /* sparse f16 weights beside the dense part (OUTLIERS section) */
    QKC_OUTLIERS_ACT = 2     /* LLM.int8 activation outlier columns (ir/spec.h); no bytes */
} qkc_outliers;

/* Preset options (w=gptq:8:actorder, w=nf4_bnb:dq, w=mxfp8:e5m2). */
enum {
    QKC_FORMAT_ACTORDER = 1u << 0, /* gptq: g_idx gives the group of each k */
    QKC_FORMAT_DQ = 1u << 1        /* nf4_bnb: nested (double) quantized absmax */
};

/* Most row blocks of w=mixed. */
#define QKC_MAX_MIXED_BLOCKS 16

typedef struct qkc_format {
    qkc_preset preset; /* QKC_PRESET_NONE: planar */
    qkc_dtype dtype;   /* element dtype */
    qkc_granularity granularity;
    int64_t group;          /* elements per group along K (GROUP), else 0 */
    qkc_dtype scale_dtype;  /* INVALID when granularity is NONE */
    qkc_dtype scale2_dtype; /* second-level scale dtype, INVALID if none */
    int64_t super_group;    /* groups per second-level scale, 0 if none */
    qkc_zero zero;
    qkc_outliers outliers;
    double outlier_fraction; /* sparse: max fraction of K per row, (0, 0.5] */
    unsigned flags;          /* QKC_FORMAT_* */
    double act_threshold;    /* outliers=act:T: the threshold T (> 0), else 0 */
    qkc_dtype table_dtype;   /* lut2..lut4: table entry dtype (f16, f32), else INVALID */
    int vq_dim, vq_bits;     /* vq: V weights per index (2, 4, 8), B index bits (4..12), else 0 */
    /* w=mixed (bits=B1xR1,B2xR2,...): consecutive row blocks, block i holding
     * mixed_rows[i] rows of signed mixed_bits[i]-bit integers that share
     * the group, scale and zero keys (ir/mixed.h); 0 blocks: not mixed.
     * dtype is int8 then (the widest block type the rules are checked for). */
    int mixed_blocks;
    uint8_t mixed_bits[QKC_MAX_MIXED_BLOCKS];
    int64_t mixed_rows[QKC_MAX_MIXED_BLOCKS];
} qkc_format;

/* Static facts about a preset: its row of presets.def. */
typedef struct qkc_preset_desc {
    qkc_preset preset;
    const char *keyword;
    int ggml_type;            /* -1 if not a GGUF type */
    const char *vec_dot_type; /* llama.cpp's activation type ("q8_0"); "" for none */
    int64_t block_elems;      /* K must be a multiple of this (0: no rule) */
    int64_t block_bytes;      /* bytes per block for block-row layouts, else 0 */
    int group_is_free;        /* the spec may choose group= (a preset without blocks) */
    qkc_family family;
    const char *about;        /* what `qkc formats` adds ("" for nothing) */
} qkc_preset_desc;

/* NULL for QKC_PRESET_NONE or an unknown value. */
const qkc_preset_desc *qkc_preset_get(qkc_preset preset);
/* QKC_PRESET_NONE when no preset has that keyword or GGUF type id. */
qkc_preset qkc_preset_from_keyword(const char *s, size_t len);
qkc_preset qkc_preset_from_ggml_type(int ggml_type);

/* The format a preset expands to with its default options. */
qkc_format qkc_preset_format(qkc_preset preset);

/* Structural equality (the IR round-trip test substrate). */
int qkc_format_equal(const qkc_format *a, const qkc_format *b);

enum {
    QKC_SECTION_DATA = 0,
    QKC_SECTION_SCALES = 1,
    QKC_SECTION_SCALES2 = 2,
    QKC_SECTION_ZEROS = 3,
    QKC_SECTION_AUX = 4,
    QKC_SECTION_OUTLIERS = 5,
    QKC_SECTION_COUNT = 6
};

typedef struct qkc_weight_layout {
    uint64_t offset[QKC_SECTION_COUNT];
    uint64_t bytes[QKC_SECTION_COUNT];
    uint64_t total;
    int64_t groups_per_row;  /* scales per row (tensor: 1 for the matrix) */
    uint64_t row_bytes;      /* DATA bytes per row for row-major layouts */
    int64_t outlier_cap;     /* per-row outlier capacity (sparse) */
    uint64_t outlier_col_offset, outlier_val_offset; /* absolute offsets */
} qkc_weight_layout;

/* Compute the layout of an N×K blob. Checks every size against overflow;
 * assumes the format already passed the verifier for this N, K. */
qkc_status qkc_format_layout(const qkc_format *f, int64_t n, int64_t k,
                             qkc_weight_layout *out, qkc_diag *diag);

/* Arbitrary codebooks (lut2/lut3/lut4, planar, no scale): AUX holds
 * `tables` tables of 2^bits entries in table_dtype, back to back: one for the
 * tensor (group=tensor), one per row (channel) or one per (row, group) in
 * row-major order; x = table[t][code] exactly (f16 entries widened). Returns
 * the table count, 0 if f is not a lut format. */
int64_t qkc_format_lut_tables(const qkc_format *f, int64_t n, int64_t k);

/* Bytes of one stored scale/zero of a dtype (bits rounded up to bytes). */
int qkc_dtype_storage_bytes(qkc_dtype dtype);

#endif /* QKC_IR_FORMAT_H */
