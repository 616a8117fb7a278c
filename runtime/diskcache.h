/*
 * The persistent kernel cache's files (no LLVM: the JIT decides what to
 * store and links what it gets back; this file only reads, checks and
 * writes entries).
 *
 * An entry file is named <sha256(key) in hex>.qko and holds
 *
 *     0   "QKCKOBJ\n"          magic
 *     8   u32 version (1)
 *     12  u32 key length        the key text (what was compiled, how, by what), with its NUL
 *     16  u32 symbol length     the kernel's symbol in the object, with its NUL
 *     20  u32 0
 *     24  u64 object length
 *     32  u64 checksum          of bytes 0..31 and everything after byte 39
 *     40  key, symbol, object
 *
 * little-endian. A reader checks the magic, the version, that the lengths
 * add up to the file's size, the checksum, and that the key is the one it
 * looked for (so a hash collision or a renamed file cannot pass).
 * Writers write a temporary file in the same directory and rename it into
 * place, so readers see a whole entry or none, and concurrent writers of
 * one key leave one of their (equal) entries.
 */
#ifndef QKC_RUNTIME_DISKCACHE_H
#define QKC_RUNTIME_DISKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"

#define QKC_DCACHE_EXT ".qko"
#define QKC_DCACHE_HEADER 40
/* Entries above this are refused (kernels are tens of kilobytes). */
#define QKC_DCACHE_MAX_BYTES ((uint64_t)64 << 20)

typedef struct qkc_dcache_entry {
    const char *key;
    const char *symbol;
    const uint8_t *obj;
    size_t obj_len;
    uint8_t *raw; /* the whole file, from the context's allocator */
    size_t raw_len;
} qkc_dcache_entry;

/* The entry file name for a key: 64 hex digits, ".qko", NUL. */
void qkc_dcache_name(const char *key, char name[72]);

/* Check an entry's bytes in place; on success fill e's pointers into raw
 * (e->raw is not set). NULL when valid, else why not (a static string). */
const char *qkc_dcache_check(const uint8_t *raw, size_t len, qkc_dcache_entry *e);

/* Read the entry for `key` from `dir`. QKC_OK with *e filled (free with
 * qkc_dcache_entry_free); QKC_ERR_IO when there is none; QKC_ERR_CORRUPT_DATA
 * when the file is there but not a valid entry for this key (*why says
 * why). Sets no context error: the caller decides what to report. */
qkc_status qkc_dcache_read(qkc_context *ctx, const char *dir, const char *key, qkc_dcache_entry *e,
                           const char **why);

void qkc_dcache_entry_free(qkc_context *ctx, qkc_dcache_entry *e);

/* Write an entry (creating the directory), atomically. On failure the
 * status comes with a message on the context. */
qkc_status qkc_dcache_write(qkc_context *ctx, const char *dir, const char *key, const char *symbol, const void *obj,
                            size_t obj_len);

#endif
