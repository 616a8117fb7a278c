/*
 * The persistent kernel cache: a kernel compiled once is linked from disk
 * by a later context (no code generated) and still matches the reference;
 * damaged entries (truncated, a forged object byte only the SHA-256
 * catches, another kernel's entry under this name) are reported once and
 * rebuilt; entries others could have written (a group- or world-writable
 * entry or directory, a symbolic link, a FIFO, another user's file) are
 * refused with a warning; new directories are 0700 and entries 0600; the
 * key separates targets; list, clear, export and import, and the bundle
 * parser on memory; an unwritable directory only warns; and several
 * processes filling one directory at once leave a consistent cache.
 *
 * The processes are this program run again (`--fill DIR ID`), so each is a
 * fresh process with nothing shared but the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "cache/diskcache.h"
#include "cache/sha256.h"
#include "targets/target.h"
#include "util/testutil.h"

/* The children get this environment: QKC_TARGET among it, so they compile
 * for the same target, and fill the same entries, as this process. */
extern char **environ;

/* ------------------------------------------------------------ helpers */

typedef struct warnings {
    int count;
    char last[1024];
} warnings;

static void on_warn(const char *message, void *user)
{
    warnings *w = user;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", message);
}

static qkc_context *cache_context(const char *dir, warnings *w)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1};
    co.disk_cache = QKC_DISK_CACHE_ON;
    co.cache_dir = dir;
    co.warn = on_warn;
    co.warn_user = w;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    assert_string_equal(qkc_cache_dir(ctx), dir);
    return ctx;
}

/* A new empty directory (the name is malloc'd; remove_tree frees it). */
static char *scratch_dir(const char *tag)
{
    char *dir = malloc(256);
    assert_non_null(dir);
    snprintf(dir, 256, "/tmp/qkc-dcache-%s-%ld-XXXXXX", tag, (long)getpid());
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void remove_tree(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];
    if (!d) {
        free(dir);
        return;
    }
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
    free(dir);
}

/* Entry files (*.qko) and temporary files (.*.tmp) in dir. */
static void count_files(const char *dir, int *entries, int *temps)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t len;
    *entries = *temps = 0;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        len = strlen(de->d_name);
        if (len > 4 && !strcmp(de->d_name + len - 4, ".qko"))
            (*entries)++;
        else if (len > 4 && !strcmp(de->d_name + len - 4, ".tmp"))
            (*temps)++;
    }
    closedir(d);
}

/* The path of the only entry file in dir. */
static void only_entry(const char *dir, char *path, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strlen(de->d_name) > 4 && !strcmp(de->d_name + strlen(de->d_name) - 4, ".qko")) {
            snprintf(path, size, "%s/%s", dir, de->d_name);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 1);
}

/* Compile `text` on ctx (target may be NULL), check it against the
 * reference, and return whether it came from the disk cache. */
static int compile_check(qkc_context *ctx, const char *text, const char *target)
{
    qkc_spec *spec;
    qkc_kernel *k;
    qkc_kernel_info ki;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    char err[512] = "";
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    if (qkc_kernel_compile(ctx, spec, &opt, &k) != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(ctx));
    if (qkc_test_kernel_vs_reference(ctx, spec, k, text, 3, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
    return ki.from_disk;
}

static const char *const spec_a = "matmul n=64 k=256 w=q4_0 bias=f32 act=silu";

/* ------------------------------------------------------------- tests */

static void test_hit_in_a_new_context(void **state)
{
    (void)state;
    char *dir = scratch_dir("hit");
    warnings w = {0};
    int entries, temps;
    qkc_context *c1 = cache_context(dir, &w), *c2;
    assert_int_equal(compile_check(c1, spec_a, NULL), 0);
    count_files(dir, &entries, &temps);
    assert_int_equal(entries, 1);
    assert_int_equal(temps, 0);
    /* the same context answers from memory: from_disk stays as compiled */
    assert_int_equal(compile_check(c1, spec_a, NULL), 0);
    qkc_context_destroy(c1);
    c2 = cache_context(dir, &w);
    assert_int_equal(compile_check(c2, spec_a, NULL), 1);
    /* the int8 path too */
    assert_int_equal(compile_check(c2, "matmul n=40 k=512 w=q8_0 compute=int8", NULL), 0);
    qkc_context_destroy(c2);
    c2 = cache_context(dir, &w);
    assert_int_equal(compile_check(c2, "matmul n=40 k=512 w=q8_0 compute=int8", NULL), 1);
    qkc_context_destroy(c2);
    assert_int_equal(w.count, 0);
    remove_tree(dir);
}

/* Two named targets of this machine's architecture, the second a superset
 * of the first; 0 when the CPU does not run the second. */
static int two_host_targets(const char **lower, const char **higher)
{
    uint32_t host = qkc_target_host_features();
    if (qkc_target_host_arch() == QKC_ARCH_AARCH64) {
        *lower = "aarch64-neon";
        *higher = "aarch64-neon-dotprod";
        return (host & QKC_FEAT_DOTPROD) != 0;
    }
    *lower = "x86_64-avx2";
    *higher = "x86_64-avx512";
    return (host & QKC_FEAT_AVX512BW) != 0;
}

static void test_targets_have_their_own_entries(void **state)
{
    (void)state;
    const char *lower, *higher;
    if (!two_host_targets(&lower, &higher)) {
        print_message("skipped: this CPU does not run %s\n", higher);
        return;
    }
    char *dir = scratch_dir("targets");
    warnings w = {0};
    int entries, temps;
    qkc_context *c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, lower), 0);
    if (compile_check(c, spec_a, higher) != 0)
        fail_msg("a %s kernel came from the %s kernel's entry", higher, lower);
    count_files(dir, &entries, &temps);
    assert_int_equal(entries, 2);
    qkc_context_destroy(c);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, lower), 1);
    assert_int_equal(compile_check(c, spec_a, higher), 1);
    qkc_context_destroy(c);
    remove_tree(dir);
}

/* A whole file into malloc'd memory. */
static uint8_t *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long n;
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Overwrite a file's bytes in place (its mode and owner stay). */
static void write_bytes(const char *path, const uint8_t *p, size_t len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Change one byte in the middle of an entry's object the way a forger
 * would: magic, version, lengths, key and symbol stay consistent. Checked
 * here: qkc_dcache_check refuses it for its SHA-256, and the same bytes
 * with the digest recomputed pass, so no other field catches the change. */
static void forge_object_byte(const char *path)
{
    size_t len;
    uint8_t *raw = read_bytes(path, &len), *resealed;
    uint64_t klen, slen, olen, at;
    qkc_dcache_entry e;
    const char *why;
    assert_true(len > QKC_DCACHE_HEADER + QKC_DCACHE_DIGEST);
    assert_memory_equal(raw, "QKCKOBJ\n", 8);
    assert_int_equal(le32(raw + 8), 2);
    klen = le32(raw + 12);
    slen = le32(raw + 16);
    olen = le32(raw + 24) | (uint64_t)le32(raw + 28) << 32;
    assert_int_equal(QKC_DCACHE_HEADER + klen + slen + olen + QKC_DCACHE_DIGEST, len);
    assert_true(olen > 100);
    at = QKC_DCACHE_HEADER + klen + slen + olen / 2;
    raw[at] ^= 0x20;
    write_bytes(path, raw, len);
    why = qkc_dcache_check(raw, len, &e);
    assert_non_null(why);
    assert_string_equal(why, "its SHA-256 does not match its contents (damaged or altered)");
    resealed = malloc(len);
    assert_non_null(resealed);
    memcpy(resealed, raw, len);
    qkc_sha256(resealed, len - QKC_DCACHE_DIGEST, resealed + len - QKC_DCACHE_DIGEST);
    assert_null(qkc_dcache_check(resealed, len, &e));
    assert_int_equal(e.obj_len, olen);
    free(resealed);
    free(raw);
}

typedef enum damage { TRUNCATE, FLIP_OBJECT_BYTE, FLIP_HEADER_BYTE, EMPTY, OTHER_KERNEL } damage;

static void damaged_entry_is_rebuilt(damage how, const char *expect)
{
    char *dir = scratch_dir("damage"), path[512];
    warnings w = {0};
    qkc_context *c = cache_context(dir, &w);
    struct stat sb;
    FILE *f;
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    qkc_context_destroy(c);
    only_entry(dir, path, sizeof path);
    assert_int_equal(stat(path, &sb), 0);
    switch (how) {
    case TRUNCATE:
        assert_int_equal(truncate(path, sb.st_size / 2), 0);
        break;
    case EMPTY:
        assert_int_equal(truncate(path, 0), 0);
        break;
    case FLIP_OBJECT_BYTE:
        forge_object_byte(path);
        break;
    case FLIP_HEADER_BYTE: {
        long at = 13;
        int ch;
        f = fopen(path, "r+b");
        assert_non_null(f);
        fseek(f, at, SEEK_SET);
        ch = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(ch ^ 0x20, f);
        fclose(f);
        break;
    }
    case OTHER_KERNEL: {
        /* a valid entry of another kernel, renamed to this kernel's name */
        char *other = scratch_dir("other"), opath[512];
        c = cache_context(other, &w);
        assert_int_equal(compile_check(c, "matmul n=64 k=256 w=q8_0", NULL), 0);
        qkc_context_destroy(c);
        only_entry(other, opath, sizeof opath);
        assert_int_equal(rename(opath, path), 0);
        remove_tree(other);
        break;
    }
    }
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0); /* rebuilt, not linked */
    assert_int_equal(w.count, 1);
    if (!strstr(w.last, expect) || !strstr(w.last, "rebuilding"))
        fail_msg("warning '%s' does not say '%s' and rebuilding", w.last, expect);
    /* a second compile in this context is a memory hit: no second report */
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(w.count, 1);
    qkc_context_destroy(c);
    /* the rebuilt entry is whole again */
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 1);
    assert_int_equal(w.count, 1);
    qkc_context_destroy(c);
    remove_tree(dir);
}

static void test_truncated_entry(void **state)
{
    (void)state;
    damaged_entry_is_rebuilt(TRUNCATE, "truncated");
}

static void test_empty_entry(void **state)
{
    (void)state;
    damaged_entry_is_rebuilt(EMPTY, "truncated");
}

/* Regression: a forged entry ran as machine code. An object byte changed
 * with every other field left consistent is caught by the SHA-256 alone
 * (forge_object_byte checks that nothing else could catch it). */
static void test_regression_forged_object_byte(void **state)
{
    (void)state;
    damaged_entry_is_rebuilt(FLIP_OBJECT_BYTE, "its SHA-256 does not match its contents");
}

static void test_flipped_header_byte(void **state)
{
    (void)state;
    damaged_entry_is_rebuilt(FLIP_HEADER_BYTE, "lengths");
}

static void test_other_kernels_entry(void **state)
{
    (void)state;
    damaged_entry_is_rebuilt(OTHER_KERNEL, "another kernel");
}

typedef struct listing {
    int valid, invalid;
    char spec[512];
} listing;

static void on_entry(const qkc_cache_entry_info *e, void *user)
{
    listing *l = user;
    if (e->problem) {
        l->invalid++;
        return;
    }
    l->valid++;
    snprintf(l->spec, sizeof l->spec, "%s", e->spec);
    assert_true(e->bytes > 64);
    assert_non_null(strstr(e->versions, qkc_version_string()));
    assert_non_null(strstr(e->target, qkc_target_arch_name(qkc_target_host_arch())));
}

static void test_list_clear_export_import(void **state)
{
    (void)state;
    char *d1 = scratch_dir("export"), bundle[300];
    warnings w = {0};
    listing l = {0};
    size_t n = 0;
    int entries, temps;
    qkc_context *c = cache_context(d1, &w), *c2;
    FILE *f;
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(compile_check(c, "matmul n=32 k=64 w=f16", NULL), 0);
    assert_int_equal(qkc_cache_list(c, on_entry, &l), QKC_OK);
    assert_int_equal(l.valid, 2);
    assert_int_equal(l.invalid, 0);
    snprintf(bundle, sizeof bundle, "%s.bundle", d1);
    assert_int_equal(qkc_cache_export(c, bundle, &n), QKC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(qkc_cache_clear(c, &n), QKC_OK);
    assert_int_equal(n, 2);
    count_files(d1, &entries, &temps);
    assert_int_equal(entries, 0);
    qkc_context_destroy(c);

    /* import into another directory: the kernels come from disk there */
    {
        char *d2 = scratch_dir("import");
        c2 = cache_context(d2, &w);
        assert_int_equal(qkc_cache_import(c2, bundle, &n), QKC_OK);
        assert_int_equal(n, 2);
        assert_int_equal(compile_check(c2, spec_a, NULL), 1);
        assert_int_equal(compile_check(c2, "matmul n=32 k=64 w=f16", NULL), 1);
        memset(&l, 0, sizeof l);
        assert_int_equal(qkc_cache_list(c2, on_entry, &l), QKC_OK);
        assert_int_equal(l.valid, 2);
        qkc_context_destroy(c2);
        remove_tree(d2);
    }

    /* a damaged bundle is refused whole: nothing is written */
    {
        struct stat sb;
        char *d3 = scratch_dir("badimport");
        assert_int_equal(stat(bundle, &sb), 0);
        f = fopen(bundle, "r+b");
        assert_non_null(f);
        fseek(f, (long)sb.st_size - 10, SEEK_SET);
        fputc(0x5A ^ fgetc(f), f);
        fclose(f);
        c2 = cache_context(d3, &w);
        assert_int_equal(qkc_cache_import(c2, bundle, &n), QKC_ERR_CORRUPT_DATA);
        assert_non_null(strstr(qkc_context_last_error(c2), "entry 2 of 2"));
        count_files(d3, &entries, &temps);
        assert_int_equal(entries + temps, 0);
        assert_int_equal(truncate(bundle, sb.st_size - 1), 0);
        assert_int_equal(qkc_cache_import(c2, bundle, &n), QKC_ERR_CORRUPT_DATA);
        assert_non_null(strstr(qkc_context_last_error(c2), "truncated"));
        assert_int_equal(qkc_cache_import(c2, "/nonexistent/qkc.bundle", &n), QKC_ERR_IO);
        assert_int_equal(qkc_cache_import(c2, d3, &n), QKC_ERR_IO); /* a directory */
        qkc_context_destroy(c2);
        remove_tree(d3);
    }
    unlink(bundle);
    remove_tree(d1);
    assert_int_equal(w.count, 0);
}

static void test_unwritable_directory_warns_once(void **state)
{
    (void)state;
    char *dir = scratch_dir("ro"), file[300];
    warnings w = {0};
    qkc_context *c;
    FILE *f;
    /* the cache "directory" is a regular file: nothing can be created in it */
    snprintf(file, sizeof file, "%s/plain-file", dir);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    c = cache_context(file, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(compile_check(c, "matmul n=32 k=64 w=f16", NULL), 0);
    assert_int_equal(w.count, 1);
    if (!strstr(w.last, "cannot create directory"))
        fail_msg("warning: %s", w.last);
    qkc_context_destroy(c);
    remove_tree(dir);
}

static void test_cache_off(void **state)
{
    (void)state;
    qkc_context *c;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    size_t n;
    assert_int_equal(qkc_context_create(&co, &c), QKC_OK);
    assert_null(qkc_cache_dir(c));
    assert_int_equal(qkc_cache_clear(c, &n), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(c), "disk cache is off"));
    qkc_context_destroy(c);
    co.disk_cache = 7;
    assert_int_equal(qkc_context_create(&co, &c), QKC_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------- trust */

static const char *const spec_b = "matmul n=32 k=64 w=f16";

/* A scratch directory holding one entry (spec_a's), its path in path. */
static char *dir_with_entry(const char *tag, char *path, size_t size)
{
    char *dir = scratch_dir(tag);
    warnings w = {0};
    qkc_context *c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    qkc_context_destroy(c);
    assert_int_equal(w.count, 0);
    only_entry(dir, path, size);
    return dir;
}

static void expect_warning(const warnings *w, const char *a, const char *b)
{
    if (!strstr(w->last, a) || (b && !strstr(w->last, b)))
        fail_msg("warning '%s' does not say '%s'%s%s", w->last, a, b ? " and " : "", b ? b : "");
}

/* An entry refused for who may write it (made so by `spoil`) is rebuilt
 * with one warning saying `expect`, rewritten as this user's 0600 regular
 * file, and linked from disk by the next context. */
static void refused_entry_is_rebuilt(const char *tag, void (*spoil)(const char *dir, const char *path),
                                     const char *expect)
{
    char path[512];
    char *dir = dir_with_entry(tag, path, sizeof path);
    warnings w = {0};
    struct stat sb;
    qkc_context *c;
    spoil(dir, path);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0); /* compiled, and checked against the reference */
    assert_int_equal(w.count, 1);
    expect_warning(&w, expect, "; rebuilding it");
    expect_warning(&w, "kernel cache entry ", path);
    qkc_context_destroy(c);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(sb.st_uid, geteuid());
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 1);
    assert_int_equal(w.count, 1);
    qkc_context_destroy(c);
    remove_tree(dir);
}

static void spoil_mode_0666(const char *dir, const char *path)
{
    (void)dir;
    assert_int_equal(chmod(path, 0666), 0);
}

/* Regression: entries were 0644 and anyone's; a group- or world-writable
 * entry is refused, rebuilt and rewritten 0600. */
static void test_regression_writable_entry_refused(void **state)
{
    (void)state;
    refused_entry_is_rebuilt("mode", spoil_mode_0666, "unusable: not trusted, it is writable by group or others "
                                                      "(mode 0666)");
}

/* the entry moved out of the cache, a symbolic link left in its place */
static void spoil_symlink(const char *dir, const char *path)
{
    char real[600];
    snprintf(real, sizeof real, "%s/elsewhere.bin", dir);
    assert_int_equal(rename(path, real), 0);
    assert_int_equal(symlink(real, path), 0);
}

/* Regression: an entry that is a symbolic link (to a file of anyone's)
 * was followed; it is refused, and the rewrite replaces the link, not the
 * file it led to. */
static void test_regression_symlinked_entry_refused(void **state)
{
    (void)state;
    refused_entry_is_rebuilt("symlink", spoil_symlink, "unusable: not trusted, it is a symbolic link");
}

static void spoil_owner(const char *dir, const char *path)
{
    (void)dir;
    assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
}

/* Regression: an entry of another user is refused. Only root can give a
 * file away, so the test needs root; the directory of another user is
 * refused too. */
static void test_regression_other_users_entry_refused(void **state)
{
    (void)state;
    char path[512], expect[160], *dir;
    warnings w = {0};
    qkc_context *c;
    if (geteuid() != 0) {
        print_message("skipped: only root can give a cache entry to another user (this is uid %ld)\n",
                      (long)geteuid());
        return;
    }
    refused_entry_is_rebuilt("owner", spoil_owner, "unusable: not trusted, it is owned by uid 65534, not by this "
                                                   "user (uid 0)");
    dir = dir_with_entry("ownerdir", path, sizeof path);
    assert_int_equal(chown(dir, 65534, (gid_t)-1), 0);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(w.count, 1);
    snprintf(expect, sizeof expect, "kernel cache directory %s is not trusted, it is owned by uid 65534", dir);
    expect_warning(&w, expect, "its entries are not used and none are written");
    qkc_context_destroy(c);
    remove_tree(dir);
}

static void count_entry(const qkc_cache_entry_info *e, void *user)
{
    listing *l = user;
    if (e->problem) {
        l->invalid++;
        snprintf(l->spec, sizeof l->spec, "%s", e->problem);
    } else {
        l->valid++;
    }
}

/* Regression: a world-writable cache directory (anyone could put entries
 * in it) was used. Its entries are not read and none are written, said
 * once per context; list marks its entries, export and import refuse it;
 * once the directory is 0700 again its entry is used. */
static void test_regression_writable_directory_refused(void **state)
{
    (void)state;
    char path[512], expect[600], bundle[600];
    char *dir = dir_with_entry("dirmode", path, sizeof path);
    warnings w = {0};
    listing l = {0};
    int entries, temps;
    size_t n = 7;
    qkc_context *c;
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(expect, sizeof expect,
             "kernel cache directory %s is not trusted, it is writable by group or others (mode 0777)", dir);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(compile_check(c, spec_b, NULL), 0);
    assert_int_equal(w.count, 1); /* once for the context */
    expect_warning(&w, expect, "its entries are not used and none are written");
    count_files(dir, &entries, &temps);
    assert_int_equal(entries, 1);
    assert_int_equal(temps, 0);
    assert_int_equal(qkc_cache_list(c, count_entry, &l), QKC_OK);
    assert_int_equal(l.valid, 0);
    assert_int_equal(l.invalid, 1);
    assert_string_equal(l.spec, "in a kernel cache directory that is not trusted");
    assert_int_equal(w.count, 2);
    expect_warning(&w, expect, "its entries are not used");
    snprintf(bundle, sizeof bundle, "%s.bundle", dir);
    assert_int_equal(qkc_cache_export(c, bundle, &n), QKC_ERR_IO);
    assert_int_equal(n, 0);
    if (!strstr(qkc_context_last_error(c), "mode 0777") || !strstr(qkc_context_last_error(c), "nothing exported"))
        fail_msg("export: %s", qkc_context_last_error(c));
    assert_int_equal(access(bundle, F_OK), -1);
    assert_int_equal(qkc_cache_import(c, bundle, &n), QKC_ERR_IO);
    if (!strstr(qkc_context_last_error(c), "mode 0777") || !strstr(qkc_context_last_error(c), "nothing imported"))
        fail_msg("import: %s", qkc_context_last_error(c));
    qkc_context_destroy(c);
    /* group-writable is refused the same way */
    assert_int_equal(chmod(dir, 0770), 0);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(w.count, 3);
    expect_warning(&w, "writable by group or others (mode 0770)", NULL);
    qkc_context_destroy(c);
    assert_int_equal(chmod(dir, 0700), 0);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 1);
    assert_int_equal(w.count, 3);
    qkc_context_destroy(c);
    remove_tree(dir);
}

/* The cache directory and the parents qkc creates are 0700, entries and
 * exported bundles 0600, whatever the umask lets through. */
static void test_new_directory_and_entry_modes(void **state)
{
    (void)state;
    char *base = scratch_dir("newmodes"), a[300], b[320], cache[340], path[512], bundle[512];
    warnings w = {0};
    struct stat sb;
    size_t n;
    mode_t old = umask(022);
    qkc_context *c;
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", a);
    snprintf(cache, sizeof cache, "%s/cache", b);
    c = cache_context(cache, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    snprintf(bundle, sizeof bundle, "%s/out.bundle", base);
    assert_int_equal(qkc_cache_export(c, bundle, &n), QKC_OK);
    assert_int_equal(n, 1);
    qkc_context_destroy(c);
    umask(old);
    assert_int_equal(w.count, 0);
    assert_int_equal(stat(a, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(stat(cache, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    only_entry(cache, path, sizeof path);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(stat(bundle, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    unlink(path);
    unlink(bundle);
    rmdir(cache);
    rmdir(b);
    rmdir(a);
    remove_tree(base);
}

/* An entry of version 1 (before the SHA-256) is a miss, not damage: no
 * warning, rebuilt, rewritten as version 2. */
static void test_version1_entry_is_a_quiet_miss(void **state)
{
    (void)state;
    char path[512];
    char *dir = dir_with_entry("v1", path, sizeof path);
    const uint8_t one[4] = {1, 0, 0, 0};
    warnings w = {0};
    listing l = {0};
    size_t len;
    uint8_t *raw;
    qkc_context *c;
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 8, SEEK_SET);
    assert_int_equal(fwrite(one, 1, 4, f), 4);
    fclose(f);
    c = cache_context(dir, &w);
    assert_int_equal(qkc_cache_list(c, count_entry, &l), QKC_OK);
    assert_int_equal(l.invalid, 1);
    assert_string_equal(l.spec, "written by an incompatible qkc (entry version)");
    assert_int_equal(w.count, 1); /* list says it */
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(w.count, 1); /* the compile does not */
    qkc_context_destroy(c);
    raw = read_bytes(path, &len);
    assert_int_equal(le32(raw + 8), 2);
    free(raw);
    c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 1);
    qkc_context_destroy(c);
    remove_tree(dir);
}

/* Regression: a FIFO named like a cache entry hung a compile and `qkc
 * cache list` in open(). The alarm ends the test if anything blocks. The
 * FIFO is listed as not a regular file, the compile warns and rebuilds
 * (the rename replaces the FIFO), and a FIFO given as the bundle to import
 * is refused. */
static void test_regression_fifo_entry_does_not_hang(void **state)
{
    (void)state;
    char path[512], fifo[600];
    char *dir = dir_with_entry("fifo", path, sizeof path);
    warnings w = {0};
    listing l = {0};
    struct stat sb;
    size_t n = 7;
    qkc_context *c;
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(60);
    c = cache_context(dir, &w);
    assert_int_equal(qkc_cache_list(c, count_entry, &l), QKC_OK);
    assert_int_equal(l.invalid, 1);
    assert_string_equal(l.spec, "it is not a regular file");
    assert_int_equal(w.count, 1);
    expect_warning(&w, path, "is unusable: it is not a regular file");
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(w.count, 2);
    expect_warning(&w, path, "is unusable: it is not a regular file; rebuilding it");
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    snprintf(fifo, sizeof fifo, "%s/bundle.fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(qkc_cache_import(c, fifo, &n), QKC_ERR_IO);
    assert_int_equal(n, 0);
    if (!strstr(qkc_context_last_error(c), "not a regular file"))
        fail_msg("import: %s", qkc_context_last_error(c));
    alarm(0);
    qkc_context_destroy(c);
    remove_tree(dir);
}

typedef struct walk {
    int calls;
    int stop_at; /* return 7 at this call (1-based); 0: never */
    char specs[2][256];
} walk;

static int on_bundle_entry(const qkc_dcache_entry *e, void *user)
{
    walk *wk = user;
    char line[256];
    const char *s = strstr(e->key, "\nspec ");
    assert_non_null(s);
    snprintf(line, sizeof line, "%.*s", (int)strcspn(s + 6, "\n"), s + 6);
    if (wk->calls < 2)
        snprintf(wk->specs[wk->calls], sizeof wk->specs[0], "%s", line);
    assert_non_null(e->symbol);
    assert_true(e->obj_len > 0);
    return ++wk->calls == wk->stop_at ? 7 : 0;
}

/* The bundle parser on memory (the entry point for a fuzz harness): a
 * bundle exported from a cache parses and walks its two entries in order;
 * every prefix of it, a damaged second entry and a trailing byte are
 * refused with a reason and no entry walked; a callback stops the walk. */
static void test_bundle_parse_in_memory(void **state)
{
    (void)state;
    char *dir = scratch_dir("parse"), bundle[300], why[QKC_DCACHE_WHY];
    warnings w = {0};
    walk wk;
    uint32_t count = 0;
    size_t len, n;
    uint8_t *raw, *copy;
    qkc_context *c = cache_context(dir, &w);
    assert_int_equal(compile_check(c, spec_a, NULL), 0);
    assert_int_equal(compile_check(c, spec_b, NULL), 0);
    snprintf(bundle, sizeof bundle, "%s.bundle", dir);
    assert_int_equal(qkc_cache_export(c, bundle, &n), QKC_OK);
    assert_int_equal(n, 2);
    qkc_context_destroy(c);
    raw = read_bytes(bundle, &len);
    unlink(bundle);

    memset(&wk, 0, sizeof wk);
    assert_int_equal(qkc_dcache_bundle_parse(raw, len, on_bundle_entry, &wk, &count, why), 0);
    assert_int_equal(count, 2);
    assert_int_equal(wk.calls, 2);
    /* in the directory's order: one each */
    assert_true((strstr(wk.specs[0], "w=q4_0") && strstr(wk.specs[1], "w=f16")) ||
                (strstr(wk.specs[0], "w=f16") && strstr(wk.specs[1], "w=q4_0")));
    assert_int_equal(qkc_dcache_bundle_parse(raw, len, NULL, NULL, NULL, why), 0);
    memset(&wk, 0, sizeof wk);
    wk.stop_at = 1;
    assert_int_equal(qkc_dcache_bundle_parse(raw, len, on_bundle_entry, &wk, NULL, why), 7);
    assert_int_equal(wk.calls, 1);

    /* prefixes (each copied to a buffer of its own length, so a read past
     * it is a sanitizer error): a sample through the body, every one of
     * the last 80 bytes */
    for (size_t cut = 0; cut < len; cut += cut + 80 < len ? (len - 80 - cut < 997 ? len - 80 - cut : 997) : 1) {
        copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, raw, cut);
        memset(&wk, 0, sizeof wk);
        if (qkc_dcache_bundle_parse(copy, cut, on_bundle_entry, &wk, NULL, why) != -1 || !why[0] || wk.calls)
            fail_msg("a bundle cut to %zu of %zu bytes was not refused (%s)", cut, len, why);
        free(copy);
    }
    /* a byte of the second entry's object changed */
    copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, raw, len);
    copy[len - 100] ^= 1;
    memset(&wk, 0, sizeof wk);
    assert_int_equal(qkc_dcache_bundle_parse(copy, len, on_bundle_entry, &wk, NULL, why), -1);
    assert_int_equal(wk.calls, 0);
    assert_string_equal(why, "entry 2 of 2: its SHA-256 does not match its contents (damaged or altered)");
    /* one byte too many */
    memcpy(copy, raw, len);
    copy[len] = 0;
    assert_int_equal(qkc_dcache_bundle_parse(copy, len + 1, on_bundle_entry, &wk, NULL, why), -1);
    assert_string_equal(why, "1 bytes after the last entry");
    assert_int_equal(qkc_dcache_bundle_parse((const uint8_t *)"QKCBUND\n", 8, NULL, NULL, NULL, why), -1);
    assert_string_equal(why, "not a qkc cache bundle (version 2)");
    assert_int_equal(wk.calls, 0);
    free(copy);
    free(raw);
    remove_tree(dir);
}

/* --------------------------------------------- several processes at once */

enum { PROCS = 2, ROUNDS = 3 };

static const char *const fill_specs[] = {
    "matmul n=64 k=256 w=q4_0 compute=f32",
    "matmul n=48 k=256 w=q8_0 compute=int8",
    "matmul n=40 k=250 w=int4 group=50 scale=f16 zero=int",
    "matmul n=33 k=256 w=nf4_bnb:dq act=silu bias=f32",
    "matmul n=32 k=256 w=gptq group=64 out=bf16",
    "matmul n=17 k=512 w=q4_k compute=int8",
    "matmul n=24 k=128 w=q5_1",
    "matmul n=16 k=256 w=mxfp4",
    "matmul n=20 k=64 w=f16 act=relu",
    "matmul n=8 k=256 w=q6_k",
};
#define NFILL (int)(sizeof fill_specs / sizeof fill_specs[0])

/* A child: compile (from the cache or not) and check every spec, in an
 * order of its own, then exit 0 only when all matched the reference. */
static int fill(const char *dir, int id)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1};
    int bad = 0;
    co.disk_cache = QKC_DISK_CACHE_ON;
    co.cache_dir = dir;
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return 2;
    for (int i = 0; i < NFILL; i++) {
        const char *text = fill_specs[(i * (id % 2 ? 3 : 7) + id) % NFILL];
        qkc_spec *spec = NULL;
        qkc_kernel *k = NULL;
        char err[512];
        if (qkc_spec_parse(ctx, text, &spec) != QKC_OK || qkc_kernel_compile(ctx, spec, NULL, &k) != QKC_OK) {
            fprintf(stderr, "fill %d: %s: %s\n", id, text, qkc_context_last_error(ctx));
            bad = 1;
        } else if (qkc_test_kernel_vs_reference(ctx, spec, k, text, 1 + i % 4, err, sizeof err)) {
            fprintf(stderr, "fill %d: %s\n", id, err);
            bad = 1;
        }
        qkc_kernel_destroy(k);
        qkc_spec_destroy(spec);
    }
    qkc_context_destroy(ctx);
    return bad;
}

/* Whether this program can run itself again: not under qemu-user without
 * binfmt_misc, where the kernel cannot execute the program's machine code. */
static int can_run_self(char *self)
{
    char *args[] = {self, "--probe", NULL};
    pid_t pid;
    int status = 0;
    if (posix_spawn(&pid, self, NULL, NULL, args, environ) != 0)
        return 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_processes_fill_one_directory(void **state)
{
    (void)state;
    char *dir = scratch_dir("procs"), self[4096], ids[PROCS][8];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    warnings w = {0};
    listing l = {0};
    int entries, temps;
    qkc_context *c;
    assert_true(sl > 0);
    self[sl] = '\0';
    if (!can_run_self(self)) {
        print_message("skipped: %s cannot run itself again here (qemu-user without binfmt_misc?)\n", self);
        remove_tree(dir);
        return;
    }
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid[PROCS];
        if (round == 2) {
            /* damage every entry: both processes find them bad at once */
            DIR *d = opendir(dir);
            struct dirent *de;
            char path[600];
            while ((de = readdir(d)) != NULL)
                if (strstr(de->d_name, ".qko")) {
                    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
                    assert_int_equal(truncate(path, 100), 0);
                }
            closedir(d);
        }
        for (int p = 0; p < PROCS; p++) {
            char *args[] = {self, "--fill", dir, ids[p], NULL};
            snprintf(ids[p], sizeof ids[p], "%d", p + PROCS * round);
            assert_int_equal(posix_spawn(&pid[p], self, NULL, NULL, args, environ), 0);
        }
        for (int p = 0; p < PROCS; p++) {
            int status = 0;
            while (waitpid(pid[p], &status, 0) < 0 && errno == EINTR) {
            }
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("round %d: process %d failed (status %d)", round, p, status);
        }
        count_files(dir, &entries, &temps);
        assert_int_equal(entries, NFILL);
        assert_int_equal(temps, 0);
    }
    c = cache_context(dir, &w);
    assert_int_equal(qkc_cache_list(c, on_entry, &l), QKC_OK);
    assert_int_equal(l.valid, NFILL);
    assert_int_equal(l.invalid, 0);
    /* and every kernel now comes from disk */
    for (int i = 0; i < NFILL; i++)
        assert_int_equal(compile_check(c, fill_specs[i], NULL), 1);
    qkc_context_destroy(c);
    remove_tree(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_in_a_new_context),
        cmocka_unit_test(test_targets_have_their_own_entries),
        cmocka_unit_test(test_truncated_entry),
        cmocka_unit_test(test_empty_entry),
        cmocka_unit_test(test_regression_forged_object_byte),
        cmocka_unit_test(test_flipped_header_byte),
        cmocka_unit_test(test_other_kernels_entry),
        cmocka_unit_test(test_list_clear_export_import),
        cmocka_unit_test(test_unwritable_directory_warns_once),
        cmocka_unit_test(test_cache_off),
        cmocka_unit_test(test_regression_writable_entry_refused),
        cmocka_unit_test(test_regression_symlinked_entry_refused),
        cmocka_unit_test(test_regression_other_users_entry_refused),
        cmocka_unit_test(test_regression_writable_directory_refused),
        cmocka_unit_test(test_new_directory_and_entry_modes),
        cmocka_unit_test(test_version1_entry_is_a_quiet_miss),
        cmocka_unit_test(test_regression_fifo_entry_does_not_hang),
        cmocka_unit_test(test_bundle_parse_in_memory),
        cmocka_unit_test(test_processes_fill_one_directory),
    };
    if (argc == 4 && !strcmp(argv[1], "--fill"))
        return fill(argv[2], atoi(argv[3]));
    if (argc == 2 && !strcmp(argv[1], "--probe"))
        return 0;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
