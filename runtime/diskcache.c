/* The persistent kernel cache's files (see diskcache.h) and the public
 * qkc_cache_* calls. */
#include "runtime/diskcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/context.h"
#include "runtime/io.h"
#include "runtime/sha256.h"

static const char entry_magic[8] = {'Q', 'K', 'C', 'K', 'O', 'B', 'J', '\n'};
static const char bundle_magic[8] = {'Q', 'K', 'C', 'B', 'U', 'N', 'D', '\n'};
#define ENTRY_VERSION 1u
#define BUNDLE_VERSION 1u
/* A bundle holds at most this many entries (and is read whole). */
#define BUNDLE_MAX_ENTRIES 100000u
#define BUNDLE_MAX_BYTES ((uint64_t)1 << 30)

/* ------------------------------------------------------------ encoding */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* A fast 64-bit checksum: it catches truncation and damaged bytes (it is
 * not a defence against someone who writes the cache on purpose). */
static uint64_t checksum_update(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = (((h << 31) | (h >> 33)) ^ rd64(p + i)) * 0x9E3779B97F4A7C15ull;
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t entry_checksum(const uint8_t *raw, size_t len)
{
    uint64_t h = checksum_update(0x51C0C4EC0DEull, raw, 32);
    h = checksum_update(h, raw + QKC_DCACHE_HEADER, len - QKC_DCACHE_HEADER);
    h ^= (uint64_t)len;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    return h ^ (h >> 32);
}

void qkc_dcache_name(const char *key, char name[72])
{
    qkc_sha256_hex(key, strlen(key), name);
    memcpy(name + 64, QKC_DCACHE_EXT, sizeof QKC_DCACHE_EXT);
}

const char *qkc_dcache_check(const uint8_t *raw, size_t len, qkc_dcache_entry *e)
{
    uint32_t klen, slen;
    uint64_t olen;
    if (len < QKC_DCACHE_HEADER)
        return "shorter than an entry header (truncated)";
    if (memcmp(raw, entry_magic, sizeof entry_magic))
        return "not a qkc cache entry (bad magic)";
    if (rd32(raw + 8) != ENTRY_VERSION)
        return "written by an incompatible qkc (entry version)";
    klen = rd32(raw + 12);
    slen = rd32(raw + 16);
    olen = rd64(raw + 24);
    if (olen > QKC_DCACHE_MAX_BYTES || (uint64_t)QKC_DCACHE_HEADER + klen + slen + olen != len)
        return "its lengths do not match its size (truncated or damaged)";
    if (entry_checksum(raw, len) != rd64(raw + 32))
        return "checksum mismatch (damaged)";
    /* key and symbol each end with their NUL and hold no other */
    if (klen < 2 || slen < 2 || raw[QKC_DCACHE_HEADER + klen - 1] || raw[QKC_DCACHE_HEADER + klen + slen - 1] ||
        memchr(raw + QKC_DCACHE_HEADER, 0, klen - 1) || memchr(raw + QKC_DCACHE_HEADER + klen, 0, slen - 1))
        return "its key or symbol is malformed";
    e->key = (const char *)raw + QKC_DCACHE_HEADER;
    e->symbol = e->key + klen;
    e->obj = raw + QKC_DCACHE_HEADER + klen + slen;
    e->obj_len = (size_t)olen;
    return NULL;
}

/* ---------------------------------------------------------------- files */

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size;
}

/* ------------------------------------------------------------- entries */

qkc_status qkc_dcache_read(qkc_context *ctx, const char *dir, const char *key, qkc_dcache_entry *e,
                           const char **why)
{
    char name[72], path[4200];
    int err;
    memset(e, 0, sizeof *e);
    *why = NULL;
    qkc_dcache_name(key, name);
    if (!path_join(path, sizeof path, dir, name)) {
        *why = "path too long";
        return QKC_ERR_IO;
    }
    err = qkc_io_read_file(ctx, path, QKC_DCACHE_MAX_BYTES + 65536, &e->raw, &e->raw_len, NULL);
    if (err == ENOENT || err == ENOTDIR)
        return QKC_ERR_IO; /* no entry (or no directory) yet */
    if (err == EFBIG) {
        *why = "larger than any kernel";
        return QKC_ERR_CORRUPT_DATA;
    }
    if (err) {
        *why = qkc_io_strerror(err);
        return QKC_ERR_IO;
    }
    if ((*why = qkc_dcache_check(e->raw, e->raw_len, e)) == NULL && strcmp(e->key, key))
        *why = "it holds another kernel (its key differs)";
    if (*why) {
        qkc_dcache_entry_free(ctx, e);
        return QKC_ERR_CORRUPT_DATA;
    }
    return QKC_OK;
}

void qkc_dcache_entry_free(qkc_context *ctx, qkc_dcache_entry *e)
{
    qkc_free(ctx, e->raw);
    memset(e, 0, sizeof *e);
}

/* An entry's bytes, in memory from ctx. */
static uint8_t *encode_entry(qkc_context *ctx, const char *key, const char *symbol, const void *obj, size_t obj_len,
                             size_t *len)
{
    size_t klen = strlen(key) + 1, slen = strlen(symbol) + 1; /* with their NULs */
    uint8_t *raw;
    if (obj_len > QKC_DCACHE_MAX_BYTES || klen > UINT32_MAX / 2 || slen > UINT32_MAX / 2)
        return NULL;
    *len = QKC_DCACHE_HEADER + klen + slen + obj_len;
    raw = qkc_alloc(ctx, *len);
    if (!raw)
        return NULL;
    memcpy(raw, entry_magic, sizeof entry_magic);
    wr32(raw + 8, ENTRY_VERSION);
    wr32(raw + 12, (uint32_t)klen);
    wr32(raw + 16, (uint32_t)slen);
    wr32(raw + 20, 0);
    wr64(raw + 24, obj_len);
    memcpy(raw + QKC_DCACHE_HEADER, key, klen);
    memcpy(raw + QKC_DCACHE_HEADER + klen, symbol, slen);
    memcpy(raw + QKC_DCACHE_HEADER + klen + slen, obj, obj_len);
    wr64(raw + 32, entry_checksum(raw, *len));
    return raw;
}

qkc_status qkc_dcache_write(qkc_context *ctx, const char *dir, const char *key, const char *symbol, const void *obj,
                            size_t obj_len)
{
    char name[72], path[4200];
    size_t len;
    uint8_t *raw;
    qkc_status st;
    int err;
    qkc_dcache_name(key, name);
    if (!path_join(path, sizeof path, dir, name))
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: directory path too long: %s", dir);
    if ((err = qkc_io_mkdir_p(dir, 0755)) != 0)
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: cannot create directory %s: %s", dir, qkc_io_strerror(err));
    if (!(raw = encode_entry(ctx, key, symbol, obj, obj_len, &len)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "kernel cache: out of memory for a %zu-byte entry", obj_len);
    st = qkc_io_write_atomic(ctx, path, raw, len, 0644);
    qkc_free(ctx, raw);
    return st;
}

/* ---------------------------------------------------------- public calls */

static int is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int is_entry_name(const char *n)
{
    return strlen(n) == 64 + strlen(QKC_DCACHE_EXT) && is_hex64(n) && !strcmp(n + 64, QKC_DCACHE_EXT);
}

static int is_temp_name(const char *n)
{
    size_t len = strlen(n);
    return n[0] == '.' && len > 70 && is_hex64(n + 1) && !strcmp(n + len - 4, ".tmp");
}

static qkc_status need_dir(qkc_context *ctx, const char *what, const char **dir)
{
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    *dir = qkc_cache_dir(ctx);
    if (!*dir)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: the disk cache is off for this context", what);
    return QKC_OK;
}

/* The rest of the key line that starts with `tag` ("spec ") into buf. */
static void key_line(const char *key, const char *tag, char *buf, size_t size)
{
    size_t tl = strlen(tag);
    buf[0] = '\0';
    for (const char *p = key; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, tag, tl)) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p - tl) : strlen(p + tl);
            if (n >= size)
                n = size - 1;
            memcpy(buf, p + tl, n);
            buf[n] = '\0';
            return;
        }
    }
}

qkc_status qkc_cache_list(qkc_context *ctx, void (*fn)(const qkc_cache_entry_info *entry, void *user), void *user)
{
    const char *dir;
    qkc_status st = need_dir(ctx, "qkc_cache_list", &dir);
    DIR *d;
    struct dirent *de;
    if (st)
        return st;
    if (!fn)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_cache_list: NULL callback");
    if (!(d = opendir(dir))) {
        if (errno == ENOENT)
            return QKC_OK; /* nothing cached yet */
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: cannot read directory %s: %s", dir, strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        char path[4200], spec[2048], target[1024], versions[128], name[72];
        qkc_cache_entry_info info;
        qkc_dcache_entry e;
        struct stat sb;
        uint8_t *raw = NULL;
        size_t len = 0;
        int err;
        if (!is_entry_name(de->d_name) || !path_join(path, sizeof path, dir, de->d_name))
            continue;
        memset(&info, 0, sizeof info);
        spec[0] = target[0] = versions[0] = '\0';
        info.file = de->d_name;
        info.spec = spec;
        info.target = target;
        info.versions = versions;
        if (stat(path, &sb) == 0) {
            info.bytes = (uint64_t)sb.st_size;
            info.mtime = (int64_t)sb.st_mtime;
        }
        err = qkc_io_read_file(ctx, path, QKC_DCACHE_MAX_BYTES + 65536, &raw, &len, NULL);
        if (err == ENOENT)
            continue; /* removed meanwhile */
        if (err) {
            info.problem = err == EFBIG ? "larger than any kernel" : qkc_io_strerror(err);
        } else if (!(info.problem = qkc_dcache_check(raw, len, &e))) {
            key_line(e.key, "spec ", spec, sizeof spec);
            key_line(e.key, "target ", target, sizeof target);
            key_line(e.key, "qkc ", versions + 4, sizeof versions - 4);
            memcpy(versions, "qkc ", 4);
            qkc_dcache_name(e.key, name);
            if (strcmp(name, de->d_name))
                info.problem = "its name is not the hash of its key";
        }
        fn(&info, user);
        qkc_free(ctx, raw);
    }
    closedir(d);
    return QKC_OK;
}

qkc_status qkc_cache_clear(qkc_context *ctx, size_t *removed)
{
    const char *dir;
    qkc_status st = need_dir(ctx, "qkc_cache_clear", &dir);
    DIR *d;
    struct dirent *de;
    size_t n = 0;
    if (removed)
        *removed = 0;
    if (st)
        return st;
    if (!(d = opendir(dir)))
        return errno == ENOENT ? QKC_OK
                               : qkc_fail(ctx, QKC_ERR_IO, "kernel cache: cannot read directory %s: %s", dir,
                                          strerror(errno));
    while ((de = readdir(d)) != NULL) {
        char path[4200];
        if ((is_entry_name(de->d_name) || is_temp_name(de->d_name)) && path_join(path, sizeof path, dir, de->d_name) &&
            unlink(path) == 0 && is_entry_name(de->d_name))
            n++;
    }
    closedir(d);
    if (removed)
        *removed = n;
    return QKC_OK;
}

/* Growable byte buffer on the context's allocator. */
typedef struct bytes {
    qkc_context *ctx;
    uint8_t *p;
    size_t len, cap;
    int failed;
} bytes;

static void bytes_put(bytes *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *q;
        while (cap - b->len < n)
            cap *= 2;
        if (!(q = qkc_alloc(b->ctx, cap))) {
            b->failed = 1;
            return;
        }
        if (b->len)
            memcpy(q, b->p, b->len);
        qkc_free(b->ctx, b->p);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

qkc_status qkc_cache_export(qkc_context *ctx, const char *file, size_t *count)
{
    const char *dir;
    qkc_status st = need_dir(ctx, "qkc_cache_export", &dir);
    DIR *d;
    struct dirent *de;
    bytes b;
    uint8_t head[16];
    uint32_t n = 0;
    if (count)
        *count = 0;
    if (st)
        return st;
    if (!file)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_cache_export: NULL file");
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    memset(head, 0, sizeof head);
    bytes_put(&b, head, sizeof head); /* filled in at the end */
    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            char path[4200], name[72];
            uint8_t *raw = NULL, len8[8];
            size_t len = 0;
            qkc_dcache_entry e;
            if (!is_entry_name(de->d_name) || !path_join(path, sizeof path, dir, de->d_name) ||
                qkc_io_read_file(ctx, path, QKC_DCACHE_MAX_BYTES + 65536, &raw, &len, NULL))
                continue;
            if (!qkc_dcache_check(raw, len, &e) && (qkc_dcache_name(e.key, name), !strcmp(name, de->d_name)) &&
                n < BUNDLE_MAX_ENTRIES) {
                wr64(len8, len);
                bytes_put(&b, len8, 8);
                bytes_put(&b, raw, len);
                n++;
            }
            qkc_free(ctx, raw);
        }
        closedir(d);
    } else if (errno != ENOENT) {
        qkc_free(ctx, b.p);
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: cannot read directory %s: %s", dir, strerror(errno));
    }
    if (b.failed) {
        qkc_free(ctx, b.p);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_cache_export: out of memory");
    }
    memcpy(b.p, bundle_magic, 8);
    wr32(b.p + 8, BUNDLE_VERSION);
    wr32(b.p + 12, n);
    st = qkc_io_write_atomic(ctx, file, b.p, b.len, 0644);
    qkc_free(ctx, b.p);
    if (!st && count)
        *count = n;
    return st;
}

qkc_status qkc_cache_import(qkc_context *ctx, const char *file, size_t *count)
{
    const char *dir;
    qkc_status st = need_dir(ctx, "qkc_cache_import", &dir);
    uint8_t *raw = NULL;
    size_t len = 0, off;
    uint32_t n;
    int err;
    if (count)
        *count = 0;
    if (st)
        return st;
    if (!file)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_cache_import: NULL file");
    if ((err = qkc_io_read_file(ctx, file, BUNDLE_MAX_BYTES, &raw, &len, NULL)) != 0)
        return qkc_fail(ctx, err == EFBIG ? QKC_ERR_LIMIT : QKC_ERR_IO, "qkc_cache_import: cannot read %s: %s", file,
                        err == EFBIG ? "larger than 1 GiB" : qkc_io_strerror(err));
    if (len < 16 || memcmp(raw, bundle_magic, 8) || rd32(raw + 8) != BUNDLE_VERSION) {
        qkc_free(ctx, raw);
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_cache_import: %s is not a qkc cache bundle (version %u)", file,
                        BUNDLE_VERSION);
    }
    n = rd32(raw + 12);
    /* Check every entry first: a bundle is taken whole or not at all. */
    off = 16;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t elen;
        const char *why;
        qkc_dcache_entry e;
        if (len - off < 8 || (elen = rd64(raw + off)) > len - off - 8) {
            qkc_free(ctx, raw);
            return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_cache_import: %s: entry %u of %u is truncated", file, i + 1,
                            n);
        }
        if ((why = qkc_dcache_check(raw + off + 8, (size_t)elen, &e)) != NULL) {
            qkc_free(ctx, raw);
            return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_cache_import: %s: entry %u of %u: %s", file, i + 1, n, why);
        }
        off += 8 + (size_t)elen;
    }
    if (off != len) {
        qkc_free(ctx, raw);
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_cache_import: %s: %zu bytes after the last entry", file,
                        len - off);
    }
    off = 16;
    for (uint32_t i = 0; i < n && !st; i++) {
        size_t elen = (size_t)rd64(raw + off);
        qkc_dcache_entry e;
        qkc_dcache_check(raw + off + 8, elen, &e);
        /* Rewritten from its parts: the file name is the hash of the key. */
        st = qkc_dcache_write(ctx, dir, e.key, e.symbol, e.obj, e.obj_len);
        off += 8 + elen;
        if (!st && count)
            (*count)++;
    }
    qkc_free(ctx, raw);
    return st;
}
