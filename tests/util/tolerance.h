/*
 * The tolerance table: every error bound the tests use, in one place.
 *
 * Round-trip bounds (quantize then dequantize, standard-normal weights,
 * 64 x 1024): the NMSE — sum((dequant(quant(w)) - w)^2) / sum(w^2) — must
 * stay at or below `max_nmse`. Each bound is 1.5x the value measured when
 * the format's codec was written (the measured value is in the comment), so
 * a codec that loses a bit of precision fails the test.
 */
#ifndef QKC_TESTS_TOLERANCE_H
#define QKC_TESTS_TOLERANCE_H

#include <stddef.h>

typedef struct qkc_tol_roundtrip {
    const char *weights; /* the w=... part of a spec, with its format keys */
    double max_nmse;
} qkc_tol_roundtrip;

const qkc_tol_roundtrip *qkc_tol_roundtrip_table(size_t *count);

#endif
