/*
 * What the JIT and the tuner share about tuning (runtime/tune_db.c,
 * runtime/tune.c): database lookups by resolved target, and the tuning
 * run a tiered kernel's background thread makes.
 */
#ifndef QKC_RUNTIME_TUNE_H
#define QKC_RUNTIME_TUNE_H

#include <stdatomic.h>
#include <stdint.h>

#include "qkc/qkc.h"

/* Lookup by canonical spec text and exact feature string (a resolved
 * target's); stale entries are noted as in qkc_tune_db_lookup. */
qkc_status qkc_tune_db_lookup_features(qkc_tune_db *db, const char *spec_text, int64_t m, const char *features,
                                       qkc_schedule *out, int *found);

#endif
