/*
 * Mixed precision within one tensor (w=mixed bits=B1xR1,B2xR2,...): an
 * EXL2-like map giving consecutive blocks of output rows different integer
 * widths. Block i holds R_i rows of signed B_i-bit integers (B_i in 2, 3,
 * 4, 5, 6, 8), the R_i sum to n, and every block takes the same group,
 * scale and zero keys, so each block is the planar format intB_i of R_i
 * rows (qkc_mixed_block_format).
 *
 * Blob: the blocks' planar blobs back to back, block i at the 64-byte
 * aligned end of block i − 1 (block 0 at offset 0). Dequantization is the
 * planar codec of each block.
 *
 * Kernel layout: each block packed in its own kernel layout (chunk sizes
 * and record sizes may differ), back to back at 64-byte aligned offsets.
 * A kernel knows the map at compile time and runs one n-loop per block,
 * each clamped to the call's [n_begin, n_end).
 */
#ifndef QKC_IR_MIXED_H
#define QKC_IR_MIXED_H

#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"
#include "ir/format.h"
#include "ir/klayout.h"
#include "ir/spec.h"

/* The signed integer dtype of a block width, INVALID if not allowed. */
qkc_dtype qkc_mixed_dtype_of_bits(int bits);

/* Block b of a mixed format as a planar format of its own. */
qkc_format qkc_mixed_block_format(const qkc_format *f, int b);

/* First row of block b (b = mixed_blocks gives the total). */
int64_t qkc_mixed_row0(const qkc_format *f, int b);

/* The block holding row r. */
int qkc_mixed_block_of_row(const qkc_format *f, int64_t r);

/* The mixed fields of two formats are equal. */
int qkc_mixed_format_equal(const qkc_format *a, const qkc_format *b);

/* Parse the value of bits= ("4x96,8x32"; the last block may be "Bx*", the
 * rows the others leave of n) into f. On failure *bad_off is
 * the offset in s of the offending character. */
qkc_status qkc_mixed_parse_bits(const char *s, size_t len, int64_t n, qkc_format *f, size_t *bad_off, qkc_diag *diag);

/* The canonical bits= value (snprintf semantics). */
size_t qkc_mixed_print_bits(const qkc_format *f, char *buf, size_t size);

/* The w=mixed rules (called by qkc_matmul_verify). */
qkc_status qkc_mixed_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key);

/* Blob layout: total only (sections are per block). */
qkc_status qkc_mixed_format_layout(const qkc_format *f, int64_t n, int64_t k, qkc_weight_layout *out,
                                   qkc_diag *diag);

/* Block b's blob: its planar layout and its offset in the mixed blob. */
qkc_status qkc_mixed_block_blob(const qkc_format *f, int64_t k, int b, qkc_weight_layout *wl, uint64_t *offset,
                                qkc_diag *diag);

/* The kernel layout of a mixed format (block 0's fields, mixed set,
 * total_bytes of all blocks). */
qkc_status qkc_mixed_klayout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *out, qkc_diag *diag);

/* Block b's kernel layout and its offset in the packed blob. */
qkc_status qkc_mixed_block_klayout(const qkc_format *f, int64_t k, int b, qkc_klayout *out, uint64_t *offset,
                                   qkc_diag *diag);

#endif /* QKC_IR_MIXED_H */
