/* The persistent kernel cache's files (see diskcache.h) and the public
 * qkc_cache_* calls. */
#include "cache/diskcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/context.h"
#include "core/io.h"
#include "cache/sha256.h"

static const char entry_magic[8] = {'Q', 'K', 'C', 'K', 'O', 'B', 'J', '\n'};
static const char bundle_magic[8] = {'Q', 'K', 'C', 'B', 'U', 'N', 'D', '\n'};
/* 2: the SHA-256 at the end replaced version 1's 64-bit checksum */
#define ENTRY_VERSION 2u
#define BUNDLE_VERSION 2u
/* A bundle holds at most this many entries (and is read whole). */
#define BUNDLE_MAX_ENTRIES 100000u
#define BUNDLE_MAX_BYTES ((uint64_t)1 << 30)
#define BUNDLE_HEADER 16
/* An entry file larger than this cannot be valid. */
#define ENTRY_MAX_FILE (QKC_DCACHE_MAX_BYTES + 65536)

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

void qkc_dcache_name(const char *key, char name[72])
{
    qkc_sha256_hex(key, strlen(key), name);
    memcpy(name + 64, QKC_DCACHE_EXT, sizeof QKC_DCACHE_EXT);
}

/* Whether raw is a version-1 entry (read as a miss, not as damage). */
static int is_version1(const uint8_t *raw, size_t len)
{
    return len >= 12 && !memcmp(raw, entry_magic, sizeof entry_magic) && rd32(raw + 8) == 1;
}

const char *qkc_dcache_check(const uint8_t *raw, size_t len, qkc_dcache_entry *e)
{
    uint32_t klen, slen;
    uint64_t olen;
    uint8_t digest[32];
    const uint8_t *key, *sym;
    if (len < QKC_DCACHE_HEADER + QKC_DCACHE_DIGEST)
        return "shorter than an entry header (truncated)";
    if (memcmp(raw, entry_magic, sizeof entry_magic))
        return "not a qkc cache entry (bad magic)";
    if (rd32(raw + 8) != ENTRY_VERSION)
        return "written by an incompatible qkc (entry version)";
    klen = rd32(raw + 12);
    slen = rd32(raw + 16);
    olen = rd64(raw + 24);
    /* each term is below 2^33: the sum cannot wrap */
    if (olen > QKC_DCACHE_MAX_BYTES || rd32(raw + 20) != 0 ||
        (uint64_t)QKC_DCACHE_HEADER + klen + slen + olen + QKC_DCACHE_DIGEST != len)
        return "its lengths do not match its size (truncated or damaged)";
    qkc_sha256(raw, len - QKC_DCACHE_DIGEST, digest);
    if (memcmp(digest, raw + len - QKC_DCACHE_DIGEST, sizeof digest))
        return "its SHA-256 does not match its contents (damaged or altered)";
    /* key and symbol each end with their NUL and hold no other */
    key = raw + QKC_DCACHE_HEADER;
    sym = key + klen;
    if (klen < 2 || slen < 2 || key[klen - 1] || sym[slen - 1] || memchr(key, 0, klen - 1) ||
        memchr(sym, 0, slen - 1))
        return "its key or symbol is malformed";
    e->key = (const char *)key;
    e->symbol = (const char *)sym;
    e->obj = sym + slen;
    e->obj_len = (size_t)olen;
    return NULL;
}

/* An entry's bytes, in memory from ctx. */
static uint8_t *encode_entry(qkc_context *ctx, const char *key, const char *symbol, const void *obj, size_t obj_len,
                             size_t *len)
{
    size_t klen = strlen(key) + 1, slen = strlen(symbol) + 1; /* with their NULs */
    uint8_t *raw;
    if (obj_len > QKC_DCACHE_MAX_BYTES || klen > UINT32_MAX / 2 || slen > UINT32_MAX / 2)
        return NULL;
    *len = QKC_DCACHE_HEADER + klen + slen + obj_len + QKC_DCACHE_DIGEST;
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
    qkc_sha256(raw, *len - QKC_DCACHE_DIGEST, raw + *len - QKC_DCACHE_DIGEST);
    return raw;
}

/* -------------------------------------------------------------- bundles */

int qkc_dcache_bundle_parse(const uint8_t *bytes, size_t len, qkc_dcache_bundle_fn fn, void *user, uint32_t *count,
                            char *why)
{
    uint32_t n;
    size_t off;
    why[0] = '\0';
    if (count)
        *count = 0;
    if (len < BUNDLE_HEADER || memcmp(bytes, bundle_magic, sizeof bundle_magic) || rd32(bytes + 8) != BUNDLE_VERSION) {
        snprintf(why, QKC_DCACHE_WHY, "not a qkc cache bundle (version %u)", BUNDLE_VERSION);
        return -1;
    }
    n = rd32(bytes + 12);
    if (count)
        *count = n;
    if (n > BUNDLE_MAX_ENTRIES) {
        snprintf(why, QKC_DCACHE_WHY, "%u entries, more than a bundle may hold (%u)", n, BUNDLE_MAX_ENTRIES);
        return -1;
    }
    /* Check every entry first: a bundle is taken whole or not at all. */
    for (int pass = 0; pass < 2; pass++) {
        off = BUNDLE_HEADER;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t elen;
            const char *bad;
            qkc_dcache_entry e;
            if (len - off < 8 || (elen = rd64(bytes + off)) > len - off - 8) {
                snprintf(why, QKC_DCACHE_WHY, "entry %u of %u is truncated", i + 1, n);
                return -1;
            }
            memset(&e, 0, sizeof e);
            if ((bad = qkc_dcache_check(bytes + off + 8, (size_t)elen, &e)) != NULL) {
                snprintf(why, QKC_DCACHE_WHY, "entry %u of %u: %s", i + 1, n, bad);
                return -1;
            }
            off += 8 + (size_t)elen;
            if (pass == 1 && fn) {
                int r = fn(&e, user);
                if (r)
                    return r;
            }
        }
        if (off != len) {
            snprintf(why, QKC_DCACHE_WHY, "%zu bytes after the last entry", len - off);
            return -1;
        }
        if (!fn)
            break;
    }
    return 0;
}

/* ---------------------------------------------------------------- trust */

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size;
}

/* Why a file or directory others could have written must not be trusted
 * (into why), or 0 when it is the effective user's and only theirs to
 * write. */
static int untrusted(const struct stat *st, char *why)
{
    uid_t me = geteuid();
    if (st->st_uid != me) {
        snprintf(why, QKC_DCACHE_WHY, "not trusted, it is owned by uid %ld, not by this user (uid %ld)",
                 (long)st->st_uid, (long)me);
        return 1;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, QKC_DCACHE_WHY, "not trusted, it is writable by group or others (mode %04o)",
                 (unsigned)(st->st_mode & 07777));
        return 1;
    }
    return 0;
}

int qkc_dcache_dir_check(const char *dir, char *why)
{
    struct stat st;
    why[0] = '\0';
    /* stat, not lstat: a cache directory that is a symbolic link (to
     * another disk) is fine; the directory it leads to is checked. */
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 1;
    return untrusted(&st, why) ? -1 : 0;
}

typedef enum load_result {
    LOAD_OK,      /* *raw holds the file */
    LOAD_NONE,    /* no such file */
    LOAD_REFUSED, /* a file is there, not trusted or not an entry: why */
    LOAD_IO       /* it could not be read: why, *err */
} load_result;

/* Read the entry file at path when it passes the trust checks (see
 * diskcache.h): lstat first, so a symbolic link or a FIFO is refused
 * before any open, then the open file's fstat, which must be the same
 * file, is checked again (a file swapped in between is refused). */
static load_result load_entry_file(qkc_context *ctx, const char *path, uint8_t **raw, size_t *len, struct stat *ls,
                                   int *err, char *why)
{
    struct stat fs;
    *raw = NULL;
    *len = 0;
    *err = 0;
    why[0] = '\0';
    if (lstat(path, ls) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return LOAD_NONE;
        *err = errno;
        snprintf(why, QKC_DCACHE_WHY, "cannot read it: %s", strerror(errno));
        return LOAD_IO;
    }
    if (S_ISLNK(ls->st_mode)) {
        snprintf(why, QKC_DCACHE_WHY, "not trusted, it is a symbolic link");
        return LOAD_REFUSED;
    }
    if (!S_ISREG(ls->st_mode)) {
        snprintf(why, QKC_DCACHE_WHY, "it is not a regular file");
        return LOAD_REFUSED;
    }
    if (untrusted(ls, why))
        return LOAD_REFUSED;
    *err = qkc_io_read_file(ctx, path, ENTRY_MAX_FILE, raw, len, &fs);
    if (*err == ENOENT)
        return LOAD_NONE; /* removed meanwhile */
    if (*err == EFBIG) {
        snprintf(why, QKC_DCACHE_WHY, "larger than any kernel");
        return LOAD_REFUSED;
    }
    if (*err == QKC_IO_NOT_REGULAR) {
        snprintf(why, QKC_DCACHE_WHY, "it is not a regular file");
        return LOAD_REFUSED;
    }
    if (*err) {
        snprintf(why, QKC_DCACHE_WHY, "cannot read it: %s", qkc_io_strerror(*err));
        return LOAD_IO;
    }
    if (fs.st_dev != ls->st_dev || fs.st_ino != ls->st_ino) {
        snprintf(why, QKC_DCACHE_WHY, "not trusted, it was replaced while being opened");
    } else if (!untrusted(&fs, why)) {
        return LOAD_OK;
    }
    qkc_free(ctx, *raw);
    *raw = NULL;
    return LOAD_REFUSED;
}

/* ------------------------------------------------------------- entries */

qkc_dcache_verdict qkc_dcache_read(qkc_context *ctx, const char *dir, const char *key, qkc_dcache_entry *e,
                                   char *why)
{
    char name[72], path[4200];
    const char *bad;
    struct stat ls;
    int err;
    memset(e, 0, sizeof *e);
    why[0] = '\0';
    switch (qkc_dcache_dir_check(dir, why)) {
    case 1: return QKC_DCACHE_MISS; /* no directory yet */
    case -1: return QKC_DCACHE_BAD_DIR;
    default: break;
    }
    qkc_dcache_name(key, name);
    if (!path_join(path, sizeof path, dir, name)) {
        snprintf(why, QKC_DCACHE_WHY, "its path is too long");
        return QKC_DCACHE_REFUSED;
    }
    switch (load_entry_file(ctx, path, &e->raw, &e->raw_len, &ls, &err, why)) {
    case LOAD_NONE: return QKC_DCACHE_MISS;
    case LOAD_REFUSED:
    case LOAD_IO: return QKC_DCACHE_REFUSED;
    case LOAD_OK: break;
    }
    if (is_version1(e->raw, e->raw_len)) {
        qkc_dcache_entry_free(ctx, e);
        return QKC_DCACHE_MISS; /* written before the SHA-256: rewritten, not reported */
    }
    if ((bad = qkc_dcache_check(e->raw, e->raw_len, e)) == NULL && strcmp(e->key, key))
        bad = "it holds another kernel (its key differs)";
    if (bad) {
        snprintf(why, QKC_DCACHE_WHY, "%s", bad);
        qkc_dcache_entry_free(ctx, e);
        return QKC_DCACHE_REFUSED;
    }
    return QKC_DCACHE_HIT;
}

void qkc_dcache_entry_free(qkc_context *ctx, qkc_dcache_entry *e)
{
    qkc_free(ctx, e->raw);
    memset(e, 0, sizeof *e);
}

qkc_status qkc_dcache_write(qkc_context *ctx, const char *dir, const char *key, const char *symbol, const void *obj,
                            size_t obj_len)
{
    char name[72], path[4200], why[QKC_DCACHE_WHY];
    size_t len;
    uint8_t *raw;
    qkc_status st;
    int err;
    qkc_dcache_name(key, name);
    if (!path_join(path, sizeof path, dir, name))
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: directory path too long: %s", dir);
    /* 0700 for the directory and every parent created here: entries are
     * machine code, and only this user may put files beside them. */
    if ((err = qkc_io_mkdir_p(dir, 0700)) != 0)
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: cannot create directory %s: %s", dir, qkc_io_strerror(err));
    if (qkc_dcache_dir_check(dir, why) < 0)
        return qkc_fail(ctx, QKC_ERR_IO, "kernel cache: directory %s is %s: not written", dir, why);
    if (!(raw = encode_entry(ctx, key, symbol, obj, obj_len, &len)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "kernel cache: out of memory for a %zu-byte entry", obj_len);
    st = qkc_io_write_atomic(ctx, path, raw, len, 0600);
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
    char dir_why[QKC_DCACHE_WHY];
    int dir_bad;
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
    dir_bad = qkc_dcache_dir_check(dir, dir_why) < 0;
    if (dir_bad)
        qkc_warn(ctx, "kernel cache directory %s is %s: its entries are not used (it must be this user's and not "
                 "writable by group or others)", dir, dir_why);
    while ((de = readdir(d)) != NULL) {
        char path[4200], spec[2048], target[1024], versions[128], name[72], why[QKC_DCACHE_WHY];
        qkc_cache_entry_info info;
        qkc_dcache_entry e;
        struct stat ls;
        uint8_t *raw = NULL;
        size_t len = 0;
        int err;
        load_result lr;
        if (!is_entry_name(de->d_name) || !path_join(path, sizeof path, dir, de->d_name))
            continue;
        memset(&info, 0, sizeof info);
        spec[0] = target[0] = versions[0] = '\0';
        info.file = de->d_name;
        info.spec = spec;
        info.target = target;
        info.versions = versions;
        if (dir_bad) {
            if (lstat(path, &ls) != 0)
                continue; /* removed meanwhile */
            info.bytes = (uint64_t)ls.st_size;
            info.mtime = (int64_t)ls.st_mtime;
            info.problem = "in a kernel cache directory that is not trusted";
            fn(&info, user);
            continue;
        }
        lr = load_entry_file(ctx, path, &raw, &len, &ls, &err, why);
        if (lr == LOAD_NONE)
            continue;
        info.bytes = (uint64_t)ls.st_size;
        info.mtime = (int64_t)ls.st_mtime;
        if (lr != LOAD_OK) {
            info.problem = why;
        } else if (!(info.problem = qkc_dcache_check(raw, len, &e))) {
            key_line(e.key, "spec ", spec, sizeof spec);
            key_line(e.key, "target ", target, sizeof target);
            key_line(e.key, "qkc ", versions + 4, sizeof versions - 4);
            memcpy(versions, "qkc ", 4);
            qkc_dcache_name(e.key, name);
            if (strcmp(name, de->d_name))
                info.problem = "its name is not the hash of its key";
        }
        if (info.problem)
            qkc_warn(ctx, "kernel cache entry %s is unusable: %s", path, info.problem);
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
    char why[QKC_DCACHE_WHY];
    DIR *d;
    struct dirent *de;
    bytes b;
    uint8_t head[BUNDLE_HEADER];
    uint32_t n = 0;
    if (count)
        *count = 0;
    if (st)
        return st;
    if (!file)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_cache_export: NULL file");
    if (qkc_dcache_dir_check(dir, why) < 0)
        return qkc_fail(ctx, QKC_ERR_IO, "qkc_cache_export: kernel cache directory %s is %s: nothing exported", dir,
                        why);
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    memset(head, 0, sizeof head);
    bytes_put(&b, head, sizeof head); /* filled in at the end */
    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            char path[4200], name[72];
            const char *bad = NULL;
            uint8_t *raw = NULL, len8[8];
            size_t len = 0;
            struct stat ls;
            qkc_dcache_entry e;
            int err;
            load_result lr;
            if (!is_entry_name(de->d_name) || !path_join(path, sizeof path, dir, de->d_name))
                continue;
            lr = load_entry_file(ctx, path, &raw, &len, &ls, &err, why);
            if (lr == LOAD_NONE)
                continue;
            if (lr == LOAD_IO) {
                /* a bundle without an entry that is there would be a lie */
                closedir(d);
                qkc_free(ctx, b.p);
                return err == ENOMEM ? qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_cache_export: out of memory")
                                     : qkc_fail(ctx, QKC_ERR_IO, "qkc_cache_export: %s: %s", path, why);
            }
            if (lr == LOAD_REFUSED)
                bad = why;
            else if ((bad = qkc_dcache_check(raw, len, &e)) == NULL &&
                     (qkc_dcache_name(e.key, name), strcmp(name, de->d_name)))
                bad = "its name is not the hash of its key";
            else if (!bad && n >= BUNDLE_MAX_ENTRIES)
                bad = "the bundle is full";
            if (bad) {
                qkc_warn(ctx, "kernel cache entry %s is unusable: %s; not exported", path, bad);
            } else {
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
    st = qkc_io_write_atomic(ctx, file, b.p, b.len, 0600);
    qkc_free(ctx, b.p);
    if (!st && count)
        *count = n;
    return st;
}

typedef struct import_state {
    qkc_context *ctx;
    const char *dir;
    qkc_status status;
    size_t written;
} import_state;

static int import_one(const qkc_dcache_entry *e, void *user)
{
    import_state *s = user;
    /* Rewritten from its parts: the file name is the hash of the key. */
    s->status = qkc_dcache_write(s->ctx, s->dir, e->key, e->symbol, e->obj, e->obj_len);
    if (s->status)
        return 1;
    s->written++;
    return 0;
}

qkc_status qkc_cache_import(qkc_context *ctx, const char *file, size_t *count)
{
    const char *dir;
    qkc_status st = need_dir(ctx, "qkc_cache_import", &dir);
    char why[QKC_DCACHE_WHY];
    import_state s;
    uint8_t *raw = NULL;
    size_t len = 0;
    int err;
    if (count)
        *count = 0;
    if (st)
        return st;
    if (!file)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_cache_import: NULL file");
    if (qkc_dcache_dir_check(dir, why) < 0)
        return qkc_fail(ctx, QKC_ERR_IO, "qkc_cache_import: kernel cache directory %s is %s: nothing imported", dir,
                        why);
    if ((err = qkc_io_read_file(ctx, file, BUNDLE_MAX_BYTES, &raw, &len, NULL)) != 0) {
        if (err == ENOMEM)
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_cache_import: out of memory reading %s", file);
        return qkc_fail(ctx, err == EFBIG ? QKC_ERR_LIMIT : QKC_ERR_IO, "qkc_cache_import: cannot read %s: %s", file,
                        err == EFBIG ? "larger than 1 GiB" : qkc_io_strerror(err));
    }
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.dir = dir;
    /* every entry is checked before the first is written */
    err = qkc_dcache_bundle_parse(raw, len, import_one, &s, NULL, why);
    qkc_free(ctx, raw);
    if (count)
        *count = s.written;
    if (err < 0)
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "qkc_cache_import: %s: %s", file, why);
    return s.status;
}
