/*
 * The persistent kernel cache's files (no LLVM: the JIT decides what to
 * store and links what it gets back; this file only reads, checks and
 * writes entries and bundles).
 *
 * An entry file is named <sha256(key) in hex>.qko and holds
 *
 *     0       "QKCKOBJ\n"       magic
 *     8       u32 version (2)
 *     12      u32 key length    the key text (what was compiled, how, by what), with its NUL
 *     16      u32 symbol length the kernel's symbol in the object, with its NUL
 *     20      u32 0
 *     24      u64 object length
 *     32      key, symbol, object
 *     len-32  SHA-256 of bytes 0 .. len-33 (everything before it)
 *
 * little-endian. Version 1 (a 40-byte header with a 64-bit checksum at
 * byte 32) is no longer read: such an entry is a miss and gets rewritten.
 * A reader checks the magic, the version, that the lengths add up to the
 * file's size, the SHA-256, and that the key is the one it looked for (so
 * a hash collision or a renamed file cannot pass).
 *
 * Trust. The SHA-256 catches damage; it cannot stop someone who may write
 * the file (they can recompute it). What stops another local user from
 * planting machine code is who may write: the cache directory and the
 * parents qkc creates are made 0700 and entries 0600, and a reader uses an
 * entry only when
 *   - the directory (followed if it is a symbolic link) is owned by the
 *     process's effective user and not writable by group or others, and
 *   - the entry itself is not a symbolic link, is a regular file (checked
 *     with lstat before the open and with fstat of the opened file, which
 *     must be the same file), is owned by the effective user and is not
 *     writable by group or others.
 * A directory that fails is neither read nor written (qkc does not change
 * the modes of a directory it did not create); an entry that fails is
 * refused like a damaged one and rewritten. Nothing guards against the
 * same user (or root) writing entries: they may run code as that user
 * anyway.
 *
 * Writers write a temporary file in the same directory and rename it into
 * place, so readers see a whole entry or none, and concurrent writers of
 * one key leave one of their (equal) entries.
 *
 * A bundle (qkc cache export / import) is
 *
 *     0   "QKCBUND\n"   magic
 *     8   u32 version (2)
 *     12  u32 entry count
 *     16  per entry: u64 length, then the entry's bytes as above
 *
 * and nothing after the last entry.
 */
#ifndef QKC_RUNTIME_DISKCACHE_H
#define QKC_RUNTIME_DISKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"

#define QKC_DCACHE_EXT ".qko"
#define QKC_DCACHE_HEADER 32
#define QKC_DCACHE_DIGEST 32 /* the SHA-256 at the end of an entry */
/* Entries above this are refused (kernels are tens of kilobytes). */
#define QKC_DCACHE_MAX_BYTES ((uint64_t)64 << 20)
/* Room for any reason the functions below give. */
#define QKC_DCACHE_WHY 256

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

/* Check an entry's bytes in memory (any bytes, any length: no read outside
 * raw[0 .. len), no allocation, no context; fit for a fuzz harness). On
 * success fill e's pointers into raw (e->raw is not set) and return NULL;
 * else return why not (a static string) and leave e untouched. It does not
 * compare the key with anything: callers do. */
const char *qkc_dcache_check(const uint8_t *raw, size_t len, qkc_dcache_entry *e);

/* Whether the cache directory may be used (see "Trust" above): 0 when it
 * is a directory of the effective user that group and others cannot
 * write; 1 when there is nothing there to use yet (no such directory, or
 * something that is not a directory: reads miss and the write reports
 * it); -1 when it is a directory that must not be used, with why (a
 * sentence naming the directory and what to do) in why[QKC_DCACHE_WHY]. */
int qkc_dcache_dir_check(const char *dir, char *why);

typedef enum qkc_dcache_verdict {
    QKC_DCACHE_HIT,       /* *e holds the entry */
    QKC_DCACHE_MISS,      /* no entry (or a version-1 one): compile and write it */
    QKC_DCACHE_REFUSED,   /* an entry is there but unusable (damaged, not
                           * trusted, unreadable): why says why; compile and
                           * rewrite it */
    QKC_DCACHE_BAD_DIR    /* the directory is not trusted (why, as from
                           * qkc_dcache_dir_check): neither read nor write it */
} qkc_dcache_verdict;

/* Read the entry for `key` from `dir`, checking the directory, the entry
 * file and its bytes (the key must be the one asked for). On a hit free
 * *e with qkc_dcache_entry_free; otherwise *e holds nothing. why has room
 * for QKC_DCACHE_WHY bytes. Sets no context error and warns nothing: the
 * caller decides what to report. Never blocks on a FIFO. */
qkc_dcache_verdict qkc_dcache_read(qkc_context *ctx, const char *dir, const char *key, qkc_dcache_entry *e,
                                   char *why);

/* Free an entry's bytes (a zeroed or freed entry is fine). */
void qkc_dcache_entry_free(qkc_context *ctx, qkc_dcache_entry *e);

/* Write an entry (creating the directory and its parents 0700; the entry
 * is 0600), atomically. A directory that qkc_dcache_dir_check refuses is
 * not written (QKC_ERR_IO). On failure the status comes with a message on
 * the context. */
qkc_status qkc_dcache_write(qkc_context *ctx, const char *dir, const char *key, const char *symbol, const void *obj,
                            size_t obj_len);

/* Called for each entry of a bundle, in order; a non-zero return stops
 * the walk and becomes qkc_dcache_bundle_parse's result. */
typedef int (*qkc_dcache_bundle_fn)(const qkc_dcache_entry *e, void *user);

/* Parse a bundle in memory (any bytes, any length; no allocation, no
 * context; fit for a fuzz harness): check the header, every entry
 * (qkc_dcache_check) and that nothing follows the last one, and only when
 * all of it is valid call fn (may be NULL) for each entry in order. *count
 * (may be NULL) receives the number of entries the bundle holds.
 * Returns 0 when the bundle is valid and fn accepted every entry; -1 when
 * it is not valid (why[QKC_DCACHE_WHY] says why, naming the entry, and fn
 * was not called); else what fn returned. */
int qkc_dcache_bundle_parse(const uint8_t *bytes, size_t len, qkc_dcache_bundle_fn fn, void *user, uint32_t *count,
                            char *why);

#endif
