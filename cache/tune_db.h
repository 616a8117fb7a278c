/*
 * What the JIT and the tuner share about tuning (cache/tune_db.c,
 * compiler/tune.c): database lookups by resolved target, the tuning run a
 * tiered kernel's background thread makes, and the two text parsers of
 * tuning (a database text, a schedule text), callable on a buffer so that
 * they can be fuzzed without files or a compiler.
 */
#ifndef QKC_RUNTIME_TUNE_H
#define QKC_RUNTIME_TUNE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"

/* Limits of a tuning database (docs/tuning.md, "Limits"). A file larger
 * than QKC_TUNE_DB_MAX_BYTES is refused with QKC_ERR_LIMIT before any of
 * it is read; a line longer than QKC_TUNE_DB_MAX_LINE bytes (without its
 * end of line) is QKC_ERR_CORRUPT_DATA; a database holds at most
 * QKC_TUNE_DB_MAX_ENTRIES entries and 4 GiB of distinct strings
 * (QKC_ERR_LIMIT). */
#define QKC_TUNE_DB_MAX_BYTES (UINT64_C(1) << 30)
#define QKC_TUNE_DB_MAX_LINE 65536
#define QKC_TUNE_DB_MAX_ENTRIES (1 << 28)

/* Lookup by canonical spec text and exact feature string (a resolved
 * target's); stale entries are noted as in qkc_tune_db_lookup. Constant
 * time in the size of the database. */
qkc_status qkc_tune_db_lookup_features(qkc_tune_db *db, const char *spec_text, int64_t m, const char *features,
                                       qkc_schedule *out, int *found);

/* Add the entries of a database text: text[0..len), which need not be
 * NUL-terminated and may hold any bytes (it is only read, never past len).
 * The same parser qkc_tune_db_load streams a file through; `name` (not
 * NULL) stands for the file in messages ("NAME:LINE: what is wrong") and
 * in later stale-entry notes.
 *
 * All or nothing: on any error the database is as before the call.
 * Accepted: the format of docs/tuning.md; CRLF line ends; a last line
 * without an end of line; an empty text or one of comments only (no
 * entries). Errors: QKC_ERR_CORRUPT_DATA (a malformed line, a NUL byte, a
 * line over QKC_TUNE_DB_MAX_LINE), QKC_ERR_NO_MEMORY, QKC_ERR_LIMIT; each
 * with a message on db's context. Allocates only through db's context;
 * no I/O. Not thread-safe on one db. Time linear in len (plus one spec
 * parse per distinct non-canonical spec text). */
qkc_status qkc_tune_db_parse(qkc_tune_db *db, const char *text, size_t len, const char *name);

/* qkc_tune_db_load, where a missing file (ENOENT) is no error when
 * missing_ok is 1: nothing is added and QKC_OK returned. Any other
 * failure to read it, a FIFO or directory included, is QKC_ERR_IO. */
qkc_status qkc_tune_db_load_file(qkc_tune_db *db, const char *path, int missing_ok);

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

/* The context's tuning database (the tune_db option or $QKC_TUNE_DB),
 * loaded on first use; NULL when there is none or it could not be read
 * (reported once through the warning hook). Read-only after loading. */
qkc_tune_db *qkc_context_tune_db(qkc_context *ctx);

#endif
