/*
 * Format families, IR half: the table of operations each family fills —
 * its verifier rules, the byte layout of its blob and its kernel layout —
 * and the helpers those operations share. The codec half (quantize,
 * dequantize, pack) is formats/family.h; both are indexed by qkc_family
 * (ir/format.h).
 *
 * A format's family is decided once, by qkc_format_family. qkc_matmul_verify,
 * qkc_format_layout and qkc_klayout_for call a family only through its
 * qkc_family_ir. Only a family's own files name its presets.
 *
 *   PLANAR  ir/fam_planar.c   dense floats, scaled integers, fp8/fp4, nf4/iq4nl
 *   LUT     ir/fam_lut.c      lut2/lut3/lut4
 *   VQ      ir/vq.c           vq
 *   MIXED   ir/mixed.c        w=mixed
 *   GGUF    ir/fam_gguf.c     q4_0 … q6_k, iq4_nl, mxfp4, mxfp8
 *   BNB     ir/fam_bnb.c      nf4_bnb
 *   GPTQ    ir/fam_gptq.c     gptq
 *   AWQ     ir/fam_gptq.c     awq
 */
#ifndef QKC_IR_FAMILY_H
#define QKC_IR_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"
#include "ir/format.h"
#include "ir/klayout.h"
#include "ir/spec.h"

typedef struct qkc_family_ir {
    const char *name;
    /* The family's format rules (the verifier's "Rules" for w= in
     * docs/spec.md). qkc_matmul_verify calls it after its common checks
     * (shape limits, a, out, compute, a known w dtype and in-range format
     * enums) and before the compute=int8 and outliers=act rules. On failure
     * returns the status with diag's message and sets *bad_key (may be
     * NULL) to the key the rule is about. */
    qkc_status (*verify)(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key);
    /* Blob layout of a verified format: the byte size of each section in
     * L->bytes, and L->row_bytes / L->outlier_cap where they apply.
     * L->groups_per_row comes set to ceil(k / group) (1 without groups).
     * Returns 0 when a size overflows 64 bits. qkc_format_layout places the
     * sections. */
    int (*sections)(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L);
    /* Kernel layout of a verified format: sets the chunk, code bits, element
     * decode and chunk fields of L (zeroed on entry) and returns the note of
     * its description, written into note; or returns NULL after
     * qkc_klayout_set_fallback. qkc_klayout_for places fields and sizes. */
    const char *(*kernel_layout)(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                 size_t note_size);
    /* Preset options, the ':'-separated words after the keyword
     * (w=gptq:8:actorder): apply one word to f, the preset's format so far;
     * *seen (0 before the first word) is the family's own, to refuse a
     * repeated word. On a word f's preset does not take: QKC_ERR_PARSE with
     * diag set (qkc_option_none, qkc_option_unknown). NULL: the family's
     * presets take no options. */
    qkc_status (*parse_option)(qkc_format *f, const char *word, size_t len, unsigned *seen, qkc_diag *diag);
    /* The canonical option words of a format of the family, ':'-separated
     * ("8:actorder", "dq", "e5m2"), snprintf-style into buf, which holds ""
     * on entry and keeps it when there are none. NULL: never any. */
    void (*print_options)(const qkc_format *f, char *buf, size_t size);
    /* A family built from other formats (mixed) lays out its whole blob and
     * kernel layout itself; its sections and kernel_layout are NULL. */
    qkc_status (*layout_whole)(const qkc_format *f, int64_t n, int64_t k, qkc_weight_layout *out, qkc_diag *diag);
    qkc_status (*kernel_layout_whole)(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *out,
                                      qkc_diag *diag);
} qkc_family_ir;

/* The family of a format: a preset's presets.def column; w=mixed; else by
 * the element dtype's kind (VQ, LUT, otherwise PLANAR). QKC_FAMILY_NONE for
 * an unknown preset or dtype. */
qkc_family qkc_format_family(const qkc_format *f);

/* A family's operations, NULL for QKC_FAMILY_NONE or out of range. */
const qkc_family_ir *qkc_family_ir_get(qkc_family family);

/* ------------------------------------------- for the families' hooks */

/* The verifier's failure: sets *bad_key and the diag, returns the status
 * (in functions with `diag` and `bad_key` in scope). */
#define QKC_VERIFY_FAIL(key, st, ...)                                                              \
    do {                                                                                           \
        if (bad_key)                                                                               \
            *bad_key = (key);                                                                      \
        return qkc_diag_set(diag, (st), __VA_ARGS__);                                              \
    } while (0)

/* The rules every preset follows (ir/verify.c): no table; the fields the
 * preset fixes equal its expansion with the format's options, only group
 * free where presets.def says so (group=channel too with channel_ok); no
 * sparse outliers; K a multiple of the block. dtype_rule, if not NULL, is
 * the message when the element dtype is not one the options can give
 * (checked before the group). */
qkc_status qkc_preset_verify(const qkc_matmul *mm, const char *dtype_rule, int channel_ok, qkc_diag *diag,
                             qkc_key *bad_key);

/* The parse errors of a preset option `word` (ir/parse.c): f's preset takes
 * no options, or `word` is not one of those `allowed` names, or repeats. */
qkc_status qkc_option_none(const qkc_format *f, const char *word, size_t len, qkc_diag *diag);
qkc_status qkc_option_unknown(const qkc_format *f, const char *word, size_t len, const char *allowed,
                              qkc_diag *diag);

/* The planar layout's sections (DATA, SCALES, SCALES2, ZEROS, OUTLIERS):
 * the PLANAR family's sizes, which LUT extends (ir/fam_planar.c). */
int qkc_planar_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L);

/* Kernel layout building blocks (ir/klayout.c). The chunk a format's
 * groups allow: 32, or 16 when the group is a multiple of 16 but not of 32
 * (a partial last group at the K tail starts on a group boundary too);
 * 0, saying why, when groups would straddle chunks. */
int qkc_klayout_chunk(const qkc_format *f, char *why, size_t why_size);
/* Dense f32 values because the format does not chunk (`why` says so). */
void qkc_klayout_set_fallback(qkc_klayout *L, const char *why);
/* AFFINE codes of code_bits under zero_const. */
void qkc_klayout_set_affine(qkc_klayout *L, int chunk, int code_bits, int zero_const);
/* TABLE: 4-bit codes through `table` (16 entries), or through the 16-entry
 * decode of dtype `dt`. */
void qkc_klayout_set_table(qkc_klayout *L, int chunk, const float *table);
void qkc_klayout_set_dtype_table(qkc_klayout *L, int chunk, qkc_dtype dt);

/* The families' operations (one definition each, in the files above). */
extern const qkc_family_ir qkc_family_planar_ir, qkc_family_lut_ir, qkc_family_vq_ir, qkc_family_mixed_ir,
    qkc_family_gguf_ir, qkc_family_bnb_ir, qkc_family_gptq_ir, qkc_family_awq_ir;

#endif /* QKC_IR_FAMILY_H */
