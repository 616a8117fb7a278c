/*
 * What the JIT and the tuner share about tuning (runtime/tune_db.c,
 * runtime/tune.c): database lookups by resolved target, the tuning run a
 * tiered kernel's background thread makes, and the schedule text parser,
 * callable on a buffer so that it can be fuzzed.
 */
#ifndef QKC_RUNTIME_TUNE_H
#define QKC_RUNTIME_TUNE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"

/* Lookup by canonical spec text and exact feature string (a resolved
 * target's); stale entries are noted as in qkc_tune_db_lookup. */
qkc_status qkc_tune_db_lookup_features(qkc_tune_db *db, const char *spec_text, int64_t m, const char *features,
                                       qkc_schedule *out, int *found);

/* Parse a schedule's text form from text[0..len) (need not be
 * NUL-terminated; any bytes): words separated by spaces, tabs or commas,
 * each key=value with key one of tm tn ku vec pf nb, at most once, and
 * value decimal digits 0..1048576 (no sign). On success returns 0, sets
 * *out (keys not given: 0) and, when present is not NULL, *present (bit
 * k set for the k-th key of tm tn ku vec pf nb given). On failure returns
 * -1, leaves *out and *present untouched and writes a message naming the
 * word to why (why_size > 0; truncated to fit). No allocation, no
 * context, thread-safe; the public qkc_schedule_parse and the database
 * reader both use it (runtime/api.c). */
int qkc_schedule_parse_text(const char *text, size_t len, qkc_schedule *out, unsigned *present, char *why,
                            size_t why_size);

#endif
