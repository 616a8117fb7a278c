/*
 * 2-D vector codebooks (w=vq vq=V:B table=f16|f32, VPTQ/AQLM style): every
 * run of V consecutive weights of a row (along K) is one B-bit index into a
 * codebook of 2^B vectors of V entries, one codebook per tensor.
 *
 *   DATA  N rows of ceil((K/V)·B/8) bytes: index j of a row at bits
 *         [j·B, (j+1)·B) of the row's little-endian bit stream.
 *   AUX   the codebook: 2^B × V entries of the table dtype (f16: 2 bytes,
 *         f32: 4, little-endian), entry t of codeword i at (i·V + t)·bytes.
 *
 * W[n, j·V + t] = codebook[idx[n, j]][t] exactly (f16 widened).
 */
#ifndef QKC_IR_VQ_H
#define QKC_IR_VQ_H

#include <stdint.h>

#include "ir/format.h"

/* Codewords of a vq format (2^B), 0 if f is not vq. */
int64_t qkc_vq_entries(const qkc_format *f);

/* DATA and AUX sizes and the DATA row bytes of a vq format; 0 on overflow
 * or an invalid V, B or K. */
int qkc_vq_section_sizes(const qkc_format *f, uint64_t n, uint64_t k, uint64_t *data, uint64_t *aux,
                         uint64_t *row_bytes);

#endif /* QKC_IR_VQ_H */
