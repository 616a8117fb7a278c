/*
 * libFuzzer harness: the persistent kernel cache's files (runtime/
 * diskcache.c) on arbitrary bytes, as an entry and as a bundle.
 *
 *  - As an entry: qkc_dcache_check on the bytes. Most mutations break the
 *    SHA-256, so the bytes are checked a second time with their digest
 *    made right (the harness restates the digest; its initialisation
 *    compares that with an entry qkc writes). A valid entry must point
 *    inside the bytes, and written again (qkc_dcache_write) it must read
 *    back (qkc_dcache_read) to the same key, symbol and object, byte for
 *    byte when the reserved field is 0. Placed in the cache directory as a
 *    file, qkc_cache_list reports it (valid or not, never a crash) and
 *    qkc_cache_export takes it exactly when it is valid and named by its
 *    key's hash.
 *  - As a bundle: written to a file and imported (qkc_cache_import) into
 *    an empty cache directory, raw and with every entry's digest made
 *    right. An import either fails with QKC_ERR_CORRUPT_DATA, a message
 *    and nothing written, or imports every entry: then the cache lists
 *    one valid entry per distinct key, exports them all, and the export
 *    imports again into an emptied cache to the same entries.
 *
 * A crash, a sanitizer report, a failure without a message, a partial
 * import or a broken round trip is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "qkc/qkc.h"
#include "cache/diskcache.h"
#include "cache/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static qkc_context *ctx;
static char cache_dir[1024], bundle_in[1024], bundle_out[1024];

static const uint8_t entry_magic[8] = {'Q', 'K', 'C', 'K', 'O', 'B', 'J', '\n'};
static const uint8_t bundle_magic[8] = {'Q', 'K', 'C', 'B', 'U', 'N', 'D', '\n'};

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Make the digest of the entry at p (len bytes) right, if it looks like
 * one: the SHA-256 of everything before the last 32 bytes, as
 * cache/diskcache.h lays an entry out. */
static void fix_entry(uint8_t *p, size_t len)
{
    if (len >= QKC_DCACHE_HEADER + QKC_DCACHE_DIGEST && !memcmp(p, entry_magic, sizeof entry_magic))
        qkc_sha256(p, len - QKC_DCACHE_DIGEST, p + len - QKC_DCACHE_DIGEST);
}

static qkc_context *new_context(void)
{
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_ON,
                              .warn = qkc_fuzz_no_warning, .cache_dir = cache_dir};
    qkc_context *c = NULL;
    if (qkc_context_create(&co, &c) != QKC_OK)
        qkc_fuzz_bug("no context");
    return c;
}

/* The harness's fix_entry leaves an entry qkc wrote unchanged. */
static int digest_is_qkcs(const qkc_dcache_entry *e)
{
    uint8_t *copy = malloc(e->raw_len);
    int same;
    if (!copy)
        return 0;
    memcpy(copy, e->raw, e->raw_len);
    memset(copy + e->raw_len - QKC_DCACHE_DIGEST, 0, QKC_DCACHE_DIGEST);
    fix_entry(copy, e->raw_len);
    same = !memcmp(copy, e->raw, e->raw_len);
    free(copy);
    return same;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qkc_dcache_entry e;
    char why[QKC_DCACHE_WHY];
    (void)argc, (void)argv;
    qkc_fuzz_path(cache_dir, sizeof cache_dir, "cache");
    qkc_fuzz_path(bundle_in, sizeof bundle_in, "in.bundle");
    qkc_fuzz_path(bundle_out, sizeof bundle_out, "out.bundle");
    ctx = new_context();
    /* the restated digest is qkc's */
    if (qkc_dcache_write(ctx, cache_dir, "spec matmul n=1 k=32 w=q4_0", "qkc_kernel", "\x7f" "ELF object", 11) ||
        qkc_dcache_read(ctx, cache_dir, "spec matmul n=1 k=32 w=q4_0", &e, why) != QKC_DCACHE_HIT || !digest_is_qkcs(&e))
        qkc_fuzz_bug("the harness's entry digest is not cache/diskcache.c's: update fuzz_cache.c");
    qkc_dcache_entry_free(ctx, &e);
    qkc_fuzz_empty_dir(cache_dir);
    qkc_context_destroy(ctx);
    ctx = NULL;
    return 0;
}

/* ------------------------------------------------------------ entries */

typedef struct listing {
    size_t entries, valid;
} listing;

static void count_entry(const qkc_cache_entry_info *info, void *user)
{
    listing *l = user;
    if (!info->file || !info->spec || !info->target || !info->versions)
        qkc_fuzz_bug("qkc_cache_list gave a NULL string");
    l->entries++;
    l->valid += !info->problem;
}

static listing list_cache(void)
{
    listing l = {0, 0};
    if (qkc_cache_list(ctx, count_entry, &l) != QKC_OK)
        qkc_fuzz_bug("qkc_cache_list failed: %s", qkc_context_last_error(ctx));
    return l;
}

static void check_fields(const qkc_dcache_entry *e, const uint8_t *raw, size_t len)
{
    const uint8_t *end = raw + len;
    size_t klen = strlen(e->key) + 1, slen;
    if ((const uint8_t *)e->key != raw + QKC_DCACHE_HEADER || (const uint8_t *)e->key + klen > end)
        qkc_fuzz_bug("an entry's key is not where the header says");
    slen = strlen(e->symbol) + 1;
    if ((const uint8_t *)e->symbol != (const uint8_t *)e->key + klen || (const uint8_t *)e->symbol + slen > end ||
        e->obj != (const uint8_t *)e->symbol + slen || e->obj_len != (size_t)(end - QKC_DCACHE_DIGEST - e->obj))
        qkc_fuzz_bug("an entry's symbol or object is not where the header says");
}

/* A valid entry, written again and read back. */
static void entry_round_trip(const qkc_dcache_entry *e, const uint8_t *raw, size_t len)
{
    qkc_dcache_entry back;
    char why[QKC_DCACHE_WHY];
    int reserved_zero = !raw[20] && !raw[21] && !raw[22] && !raw[23];
    if (qkc_dcache_write(ctx, cache_dir, e->key, e->symbol, e->obj, e->obj_len) != QKC_OK)
        qkc_fuzz_bug("a valid entry cannot be written again: %s", qkc_context_last_error(ctx));
    if (qkc_dcache_read(ctx, cache_dir, e->key, &back, why) != QKC_DCACHE_HIT)
        qkc_fuzz_bug("a valid entry written again does not read back: %s", why);
    if (strcmp(back.key, e->key) || strcmp(back.symbol, e->symbol) || back.obj_len != e->obj_len ||
        memcmp(back.obj, e->obj, e->obj_len))
        qkc_fuzz_bug("a valid entry written again reads back different");
    if (reserved_zero && (back.raw_len != len || memcmp(back.raw, raw, len)))
        qkc_fuzz_bug("a valid entry written again has other bytes");
    qkc_dcache_entry_free(ctx, &back);
    qkc_fuzz_empty_dir(cache_dir);
}

/* The bytes as an entry file in the cache directory: listed, exported
 * when valid and named right. */
static void entry_in_cache(const uint8_t *raw, size_t len, const qkc_dcache_entry *e)
{
    char name[72], path[1200];
    size_t exported = 0;
    listing l;
    if (e)
        qkc_dcache_name(e->key, name);
    else
        snprintf(name, sizeof name, "%064d%s", 0, QKC_DCACHE_EXT);
    if (snprintf(path, sizeof path, "%s/%s", cache_dir, name) >= (int)sizeof path)
        qkc_fuzz_bug("path too long");
    qkc_fuzz_write_file(path, raw, len);
    l = list_cache();
    if (l.entries != 1 || l.valid != (e != NULL))
        qkc_fuzz_bug("an entry file %s listed as %zu entries, %zu valid", e ? "valid" : "invalid", l.entries,
                     l.valid);
    if (qkc_cache_export(ctx, bundle_out, &exported) != QKC_OK || exported != (e != NULL))
        qkc_fuzz_bug("export of a cache with one %s entry: %zu exported (%s)", e ? "valid" : "invalid", exported,
                     qkc_context_last_error(ctx));
    qkc_fuzz_empty_dir(cache_dir);
}

static void fuzz_entry(const uint8_t *raw, size_t len)
{
    qkc_dcache_entry e;
    memset(&e, 0, sizeof e);
    if (qkc_dcache_check(raw, len, &e) != NULL) {
        entry_in_cache(raw, len, NULL);
        return;
    }
    check_fields(&e, raw, len);
    entry_round_trip(&e, raw, len);
    entry_in_cache(raw, len, &e);
}

/* ------------------------------------------------------------ bundles */

/* Distinct keys among the n entries of a bundle that passed import's checks. */
static size_t distinct_keys(const uint8_t *raw, size_t len)
{
    uint32_t n = (uint32_t)raw[12] | (uint32_t)raw[13] << 8 | (uint32_t)raw[14] << 16 | (uint32_t)raw[15] << 24;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    size_t off = 16, distinct = 0;
    if (!keys)
        qkc_fuzz_bug("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        size_t elen = (size_t)rd64(raw + off);
        qkc_dcache_entry e;
        int seen = 0;
        if (off + 8 + elen > len || qkc_dcache_check(raw + off + 8, elen, &e))
            qkc_fuzz_bug("an imported bundle has an entry its import should have refused");
        for (size_t j = 0; j < distinct && !seen; j++)
            seen = !strcmp(keys[j], e.key);
        if (!seen)
            keys[distinct++] = e.key;
        off += 8 + elen;
    }
    free(keys);
    return distinct;
}

static void import_bundle(const uint8_t *raw, size_t len)
{
    size_t count = 0, exported = 0, again = 0;
    qkc_status st;
    listing l;
    qkc_fuzz_write_file(bundle_in, raw, len);
    st = qkc_cache_import(ctx, bundle_in, &count);
    l = list_cache();
    if (st != QKC_OK) {
        /* refused whole: nothing written */
        if (st != QKC_ERR_CORRUPT_DATA || !qkc_context_last_error(ctx)[0] || count || l.entries)
            qkc_fuzz_bug("a refused import: status %d, '%s', %zu counted, %zu entries written", (int)st,
                         qkc_context_last_error(ctx), count, l.entries);
        return;
    }
    if (len < 16 || count != ((size_t)raw[12] | (size_t)raw[13] << 8 | (size_t)raw[14] << 16 | (size_t)raw[15] << 24))
        qkc_fuzz_bug("an import counted %zu entries, the bundle has others", count);
    if (l.entries != l.valid || l.entries != distinct_keys(raw, len))
        qkc_fuzz_bug("an import of %zu entries left %zu entries, %zu valid", count, l.entries, l.valid);
    if (qkc_cache_export(ctx, bundle_out, &exported) != QKC_OK || exported != l.entries)
        qkc_fuzz_bug("export after an import: %zu of %zu entries (%s)", exported, l.entries,
                     qkc_context_last_error(ctx));
    qkc_fuzz_empty_dir(cache_dir);
    if (qkc_cache_import(ctx, bundle_out, &again) != QKC_OK || again != exported || list_cache().valid != exported)
        qkc_fuzz_bug("an exported bundle of %zu entries imports as %zu: %s", exported, again,
                     qkc_context_last_error(ctx));
    qkc_fuzz_empty_dir(cache_dir);
}

/* The bundle with every entry's digest made right (walking it as import
 * does, as far as the lengths allow); NULL when that changes nothing. */
static uint8_t *fix_bundle(const uint8_t *raw, size_t len)
{
    uint8_t *p;
    size_t off = 16;
    if (len < 16 || memcmp(raw, bundle_magic, sizeof bundle_magic) || !(p = malloc(len)))
        return NULL;
    memcpy(p, raw, len);
    while (len - off >= 8) {
        uint64_t elen = rd64(p + off);
        if (elen > len - off - 8)
            break;
        fix_entry(p + off + 8, (size_t)elen);
        off += 8 + (size_t)elen;
    }
    if (!memcmp(p, raw, len)) {
        free(p);
        return NULL;
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *fixed;
    ctx = new_context(); /* a context per input: its last error is this input's */
    fuzz_entry(data, size);
    if (size >= QKC_DCACHE_HEADER && !memcmp(data, entry_magic, sizeof entry_magic) && (fixed = malloc(size))) {
        memcpy(fixed, data, size);
        fix_entry(fixed, size);
        if (memcmp(fixed, data, size))
            fuzz_entry(fixed, size);
        free(fixed);
    }
    import_bundle(data, size);
    if ((fixed = fix_bundle(data, size)) != NULL) {
        import_bundle(fixed, size);
        free(fixed);
    }
    qkc_context_destroy(ctx);
    ctx = NULL;
    return 0;
}
