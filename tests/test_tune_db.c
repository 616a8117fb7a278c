/*
 * The tuning database file: round trip, merge (the faster entry wins),
 * stale entries (another qkc version or other CPU features) ignored with a
 * note, malformed files rejected with the line number and nothing added.
 * Regressions: a FIFO or a directory refused at once (the loader used to
 * block in fopen on a FIFO); 100 000 entries, every one found and the
 * merge rules kept (the loader used to compare every entry with every
 * other); NUL bytes, CRLF, long and truncated lines; the schedule parser
 * on a buffer; every allocation of a load, merge and save through the
 * context's allocator, each one failed in turn (the loader used getline,
 * whose buffer came from malloc).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "core/context.h"
#include "cache/tune_db.h"
#include "targets/target.h"

/* ------------------------------------------------ malloc, watched
 *
 * The test program replaces malloc (glibc forwards every malloc of the
 * process, its own included, to the program's): while `watching` is set
 * on this thread, each call is counted as an allocation made behind the
 * context's back. The context allocator of the allocation test takes its
 * memory from glibc directly. Sanitizers bring their own malloc: there the
 * count is not taken, and the test says so. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer) && !__has_feature(memory_sanitizer)
#define WATCH_MALLOC 1
#endif
#else
#define WATCH_MALLOC 1
#endif
#endif

static _Thread_local int watching;
static _Thread_local long behind_back;

#ifdef WATCH_MALLOC
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);

void *malloc(size_t size)
{
    behind_back += watching;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    behind_back += watching;
    return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size)
{
    behind_back += watching;
    return __libc_realloc(ptr, size);
}

void free(void *ptr)
{
    __libc_free(ptr);
}

#define RAW_MALLOC __libc_malloc
#define RAW_FREE __libc_free
#else
#define RAW_MALLOC malloc
#define RAW_FREE free
#endif

/* A scratch directory for the files of the regression tests. */
static char dir[] = "/tmp/qkc-test-tune-db-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *in_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

typedef struct notes {
    int count;
    char last[1024];
} notes;

static void on_warn(const char *message, void *user)
{
    notes *n = user;
    n->count++;
    snprintf(n->last, sizeof n->last, "%s", message);
}

static qkc_context *make_ctx(notes *n)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .warn = on_warn, .warn_user = n};
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    return ctx;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    assert_non_null(f);
    assert_non_null(buf);
    assert_true(fread(buf, 1, (1 << 16) - 1, f) > 0);
    fclose(f);
    return buf;
}

static qkc_tune_entry entry(const char *spec, const char *bucket, const char *features, double us)
{
    qkc_tune_entry e;
    memset(&e, 0, sizeof e);
    e.spec = spec;
    e.m_bucket = bucket;
    e.target = "host";
    e.features = features;
    e.schedule = (qkc_schedule){1, 3, 2, 256, 2, 32};
    e.us = us;
    e.default_us = us * 1.5;
    e.date = "2025-01-02";
    return e;
}

static void host_features(char *buf, size_t size)
{
    qkc_target t;
    qkc_diag d;
    /* the target a context of this process compiles for */
    assert_int_equal(qkc_target_resolve(getenv("QKC_TARGET"), 0, &t, &d), QKC_OK);
    qkc_target_features_string(t.arch, t.features, buf, size);
}

static void test_buckets(void **state)
{
    (void)state;
    assert_string_equal(qkc_tune_m_bucket(1), "1");
    assert_string_equal(qkc_tune_m_bucket(2), "2-8");
    assert_string_equal(qkc_tune_m_bucket(8), "2-8");
    assert_string_equal(qkc_tune_m_bucket(9), "9-64");
    assert_string_equal(qkc_tune_m_bucket(64), "9-64");
    assert_string_equal(qkc_tune_m_bucket(65), "65+");
    assert_string_equal(qkc_tune_m_bucket(4096), "65+");
}

static void test_round_trip(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    qkc_tune_db *a, *b;
    qkc_tune_entry e1 = entry("matmul k=256 n=64 w=q4_0", "1", "avx2 fma", 12.5), e2 = entry("matmul n=64 k=256 w=q8_0", "9-64", "avx2 fma", 40.25), got;
    char *t1, *t2;
    assert_int_equal(qkc_tune_db_create(ctx, &a), QKC_OK);
    assert_int_equal(qkc_tune_db_add(a, &e1), QKC_OK);
    assert_int_equal(qkc_tune_db_add(a, &e2), QKC_OK);
    assert_int_equal(qkc_tune_db_count(a), 2);
    assert_int_equal(qkc_tune_db_save(a, "tune-rt.db"), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &b), QKC_OK);
    assert_int_equal(qkc_tune_db_load(b, "tune-rt.db"), QKC_OK);
    assert_int_equal(qkc_tune_db_count(b), 2);
    assert_int_equal(qkc_tune_db_get(b, 0, &got), QKC_OK);
    /* specs are stored canonical, entries sorted */
    assert_string_equal(got.spec, "matmul n=64 k=256 a=f32 w=q4_0 out=f32");
    assert_string_equal(got.m_bucket, "1");
    assert_string_equal(got.features, "avx2 fma");
    assert_string_equal(got.version, qkc_version_string());
    assert_string_equal(got.date, "2025-01-02");
    assert_int_equal(got.schedule.tile_n, 3);
    assert_int_equal(got.schedule.n_block, 32);
    assert_true(got.us == 12.5 && got.default_us == 18.75);
    assert_int_equal(qkc_tune_db_save(b, "tune-rt2.db"), QKC_OK);
    t1 = read_file("tune-rt.db");
    t2 = read_file("tune-rt2.db");
    assert_string_equal(t1, t2);
    assert_non_null(strstr(t1, "qkc-tune 1\n"));
    assert_non_null(strstr(t1, "spec=matmul n=64 k=256 a=f32 w=q8_0 out=f32\tm=9-64\ttarget=host\t"));
    free(t1);
    free(t2);
    qkc_tune_db_destroy(a);
    qkc_tune_db_destroy(b);
    assert_int_equal(n.count, 0);
    qkc_context_destroy(ctx);
}

static void test_merge(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    qkc_tune_db *a, *b;
    qkc_tune_entry e, got;
    assert_int_equal(qkc_tune_db_create(ctx, &a), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &b), QKC_OK);
    e = entry("matmul n=64 k=256 w=q4_0", "1", "avx2", 10);
    assert_int_equal(qkc_tune_db_add(a, &e), QKC_OK);
    e = entry("matmul n=64 k=256 w=q4_0", "2-8", "avx2", 30);
    assert_int_equal(qkc_tune_db_add(a, &e), QKC_OK);
    e = entry("matmul n=64 k=256 w=q4_0", "1", "avx2", 8); /* faster: replaces */
    e.schedule.tile_n = 6;
    assert_int_equal(qkc_tune_db_add(b, &e), QKC_OK);
    e = entry("matmul n=64 k=256 w=q4_0", "2-8", "avx2", 35); /* slower: dropped */
    e.schedule.tile_n = 8;
    assert_int_equal(qkc_tune_db_add(b, &e), QKC_OK);
    e = entry("matmul n=64 k=256 w=q4_0", "1", "avx2 avx512f", 5); /* other features: a new entry */
    assert_int_equal(qkc_tune_db_add(b, &e), QKC_OK);
    assert_int_equal(qkc_tune_db_save(b, "tune-b.db"), QKC_OK);
    assert_int_equal(qkc_tune_db_load(a, "tune-b.db"), QKC_OK); /* load adds: a merge */
    assert_int_equal(qkc_tune_db_count(a), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qkc_tune_db_get(a, i, &got), QKC_OK);
        if (!strcmp(got.m_bucket, "1") && !strcmp(got.features, "avx2"))
            assert_true(got.us == 8 && got.schedule.tile_n == 6);
        else if (!strcmp(got.m_bucket, "2-8"))
            assert_true(got.us == 30 && got.schedule.tile_n == 3);
        else
            assert_string_equal(got.features, "avx2 avx512f");
    }
    assert_int_equal(qkc_tune_db_merge(b, a), QKC_OK);
    assert_int_equal(qkc_tune_db_count(b), 3);
    qkc_tune_db_destroy(a);
    qkc_tune_db_destroy(b);
    qkc_context_destroy(ctx);
}

static void test_stale_entries_ignored_with_a_note(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    qkc_tune_db *db;
    qkc_spec *spec;
    qkc_schedule s;
    int found = -1;
    char feats[256], text[4096];
    host_features(feats, sizeof feats);
    snprintf(text, sizeof text,
             "qkc-tune 1\n# stale: another version, other features\n"
             "spec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=%s\tqkc=0.0.1\tschedule=tm=1 tn=2 ku=1 vec=256 "
             "pf=0 nb=16\tus=5\tdefault_us=6\tdate=2024-01-01\n"
             "spec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=sse4.2\tqkc=%s\tschedule=tm=1 tn=2 ku=1 "
             "vec=256 pf=0 nb=16\tus=5\tdefault_us=6\tdate=2024-01-01\n",
             feats, qkc_version_string());
    write_file("tune-stale.db", text);
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    assert_int_equal(qkc_tune_db_load(db, "tune-stale.db"), QKC_OK);
    assert_int_equal(qkc_tune_db_count(db), 2); /* kept */
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_tune_db_lookup(db, spec, 1, NULL, &s, &found), QKC_OK);
    assert_int_equal(found, 0);
    assert_int_equal(n.count, 2);
    assert_non_null(strstr(n.last, "ignored"));
    assert_non_null(strstr(n.last, "tune-stale.db"));
    /* noted once per entry */
    assert_int_equal(qkc_tune_db_lookup(db, spec, 1, NULL, &s, &found), QKC_OK);
    assert_int_equal(n.count, 2);
    /* another bucket: nothing to note */
    assert_int_equal(qkc_tune_db_lookup(db, spec, 16, NULL, &s, &found), QKC_OK);
    assert_int_equal(found, 0);
    assert_int_equal(n.count, 2);
    /* a current entry is found */
    {
        qkc_tune_entry e = entry("matmul n=64 k=256 w=q4_0", "1", feats, 4);
        e.target = "host";
        e.version = NULL;
        assert_int_equal(qkc_tune_db_add(db, &e), QKC_OK);
        assert_int_equal(qkc_tune_db_lookup(db, spec, 1, NULL, &s, &found), QKC_OK);
        assert_int_equal(found, 1);
        assert_int_equal(s.tile_n, 3);
        assert_int_equal(s.k_unroll, 2);
    }
    qkc_spec_destroy(spec);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
}

static void expect_bad(qkc_context *ctx, qkc_tune_db *db, const char *text, const char *message)
{
    write_file("tune-bad.db", text);
    assert_int_equal(qkc_tune_db_load(db, "tune-bad.db"), QKC_ERR_CORRUPT_DATA);
    if (!strstr(qkc_context_last_error(ctx), message))
        fail_msg("expected '%s' in '%s'", message, qkc_context_last_error(ctx));
}

#define GOOD "spec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=1 tn=2 ku=1 vec=256 pf=0 nb=16\tus=5\tdefault_us=6\tdate=2024-01-01\n"

static void test_malformed_rejected_with_line(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    qkc_tune_db *db;
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    expect_bad(ctx, db, GOOD, "tune-bad.db:1: expected the header line 'qkc-tune 1'");
    expect_bad(ctx, db, "qkc-tune 1\n" GOOD "# c\nspec=matmul n=64 k=256 w=q4_0\tm=3\n", "tune-bad.db:4: m=3: expected a bucket");
    expect_bad(ctx, db, "qkc-tune 1\n\n" GOOD "spec=matmul n=64 k=250 w=q4_0\tm=1\n", "tune-bad.db:4: spec:");
    expect_bad(ctx, db, "qkc-tune 1\n" GOOD GOOD "spec=matmul n=64 k=256 w=q4_0 m=1\n", "tune-bad.db:4:");
    expect_bad(ctx, db, "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=1 tn=2\tus=5\n",
               "tune-bad.db:2: schedule: all of");
    expect_bad(ctx, db, "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=1 tn=2 ku=1 vec=256 pf=0 nb=16\tus=fast\n",
               "tune-bad.db:2: us=fast");
    expect_bad(ctx, db, "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tqkc=0.1.0\tschedule=tm=1 tn=2 ku=1 vec=256 pf=0 nb=16\tus=5\n",
               "tune-bad.db:2: field features= is missing");
    assert_int_equal(qkc_tune_db_count(db), 0); /* nothing of a bad file is added */
    assert_int_equal(qkc_tune_db_load(db, "no-such-dir/tune.db"), QKC_ERR_IO);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
}

/* ------------------------------------------------------ regressions */

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Every entry of db, one line each in index order: two databases with
 * the same dump hold the same entries. Free with free(). */
static char *dump(const qkc_tune_db *db)
{
    int n = qkc_tune_db_count(db);
    size_t cap = 256 + (size_t)n * 512, len = 0;
    char *out = RAW_MALLOC(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        qkc_tune_entry e;
        char sched[128];
        assert_int_equal(qkc_tune_db_get(db, i, &e), QKC_OK);
        qkc_schedule_print(&e.schedule, sched, sizeof sched);
        len += (size_t)snprintf(out + len, cap - len, "%s|%s|%s|%s|%s|%s|%.3f|%.3f|%s\n", e.spec, e.m_bucket, e.target,
                                e.features, e.version, sched, e.us, e.default_us, e.date);
        assert_true(len < cap);
    }
    return out;
}

/* A FIFO named as the database is refused at once, without waiting for a
 * writer, by every way a database is read: qkc_tune_db_load, the loader
 * qkc_tune (--db) uses, which takes a missing file for an empty one, and a
 * context's tune_db option or $QKC_TUNE_DB (noted, then ignored). So is a
 * directory. */
static void test_fifo_and_directory_refused(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n), *c2;
    qkc_tune_db *db;
    char fifo[256], sub[256];
    const char *paths[2];
    in_dir(fifo, sizeof fifo, "fifo.db");
    in_dir(sub, sizeof sub, "dir.db");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    paths[0] = fifo;
    paths[1] = sub;
    alarm(20); /* a regression blocks in open() */
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(qkc_tune_db_load(db, paths[i]), QKC_ERR_IO);
        assert_non_null(strstr(qkc_context_last_error(ctx), "not a regular file"));
        assert_non_null(strstr(qkc_context_last_error(ctx), paths[i]));
        assert_int_equal(qkc_tune_db_load_file(db, paths[i], 1), QKC_ERR_IO);
        assert_non_null(strstr(qkc_context_last_error(ctx), "not a regular file"));
    }
    assert_int_equal(qkc_tune_db_count(db), 0);
    /* a missing file is an empty database only where asked for */
    assert_int_equal(qkc_tune_db_load_file(db, "no-such-file.db", 1), QKC_OK);
    assert_int_equal(qkc_tune_db_load_file(db, "no-such-file.db", 0), QKC_ERR_IO);
    qkc_tune_db_destroy(db);
    /* the context's database: the option, then the environment */
    for (int way = 0; way < 2; way++) {
        notes n2 = {0};
        qkc_context_options co = {.struct_size = sizeof co, .warn = on_warn, .warn_user = &n2};
        if (way == 0)
            co.tune_db = fifo;
        else
            assert_int_equal(setenv("QKC_TUNE_DB", fifo, 1), 0);
        assert_int_equal(qkc_context_create(&co, &c2), QKC_OK);
        assert_null(qkc_context_tune_db(c2));
        assert_int_equal(n2.count, 1);
        assert_non_null(strstr(n2.last, "not a regular file"));
        qkc_context_destroy(c2);
    }
    unsetenv("QKC_TUNE_DB");
    alarm(0);
    qkc_context_destroy(ctx);
}

/* Canonical spec text of spec number s (distinct for every s < 2^22). */
static void big_spec(long s, char *buf, size_t size, int canonical)
{
    long n = 32 * (1 + s % 2048), k = 32 * (1 + s / 2048);
    if (canonical)
        snprintf(buf, size, "matmul n=%ld k=%ld a=f32 w=q8_0 out=f32", n, k);
    else
        snprintf(buf, size, "matmul k=%ld w=q8_0 n=%ld", k, n); /* the same spec, as a person writes it */
}

/* 100 000 entries (25 000 specs in four buckets, a tenth of them given
 * twice, the faster or the slower first, some specs written
 * non-canonically, the lines in an order no sort gives) and 100 stale
 * ones: all load, every key is found with the faster schedule, the stale
 * ones are noted once each, and a save and reload gives the same. */
static void test_100k_entries(void **state)
{
    enum { SPECS = 25000, ENTRIES = 4 * SPECS, STALE = 100 };
    static const char *const bk[] = {"1", "2-8", "9-64", "65+"};
    static const int64_t bm[] = {1, 5, 33, 100};
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    qkc_tune_db *db, *again;
    size_t cap = (size_t)(ENTRIES + ENTRIES / 10 + STALE) * 256, len = 0;
    char *text = RAW_MALLOC(cap), path[256], *d1, *d2;
    const char *v = qkc_version_string();
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "qkc-tune 1\n");
    for (long j = 0; j < ENTRIES; j++) {
        long i = (j * 7919) % ENTRIES; /* 7919 is prime to ENTRIES: a permutation */
        long s = i / 4;
        int b = (int)(i % 4), twice = i % 10 == 0, faster_first = i % 20 == 0;
        char spec[128];
        big_spec(s, spec, sizeof spec, s % 3 != 0);
        /* the schedule's tn encodes which line must win: 1 */
        for (int copy = 0; copy < 1 + twice; copy++) {
            int winner = !twice || (copy == 0) == faster_first;
            len += (size_t)snprintf(text + len, cap - len,
                                    "spec=%s\tm=%s\ttarget=host\tfeatures=avx2 fma\tqkc=%s\tschedule=tm=%d tn=%d ku=1 "
                                    "vec=256 pf=%ld nb=32\tus=%ld.%03d\tdefault_us=900\tdate=2026-01-02\n",
                                    spec, bk[b], v, 1 + b, winner ? 1 : 2, s % 9, 100 + s % 500 + (winner ? 0 : 1),
                                    (int)(i % 1000));
        }
    }
    for (long i = 0; i < STALE; i++) {
        char spec[128];
        big_spec(i * 97, spec, sizeof spec, 1);
        len += (size_t)snprintf(text + len, cap - len,
                                "spec=%s\tm=1\ttarget=host\tfeatures=%s\tqkc=%s\tschedule=tm=1 tn=7 ku=1 vec=256 pf=0 "
                                "nb=32\tus=1\n",
                                spec, i % 2 ? "sse4.2" : "avx2 fma", i % 2 ? v : "0.0.1");
    }
    assert_true(len < cap);
    write_bytes(in_dir(path, sizeof path, "big.db"), text, len);
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    assert_int_equal(qkc_tune_db_load(db, path), QKC_OK);
    assert_int_equal(qkc_tune_db_count(db), ENTRIES + STALE);
    for (long i = 0; i < ENTRIES; i++) {
        char spec[128];
        qkc_schedule got;
        int found = 0;
        big_spec(i / 4, spec, sizeof spec, 1);
        assert_int_equal(qkc_tune_db_lookup_features(db, spec, bm[i % 4], "avx2 fma", &got, &found), QKC_OK);
        if (!found || got.tile_m != 1 + (int)(i % 4) || got.tile_n != 1 || got.prefetch != (int)((i / 4) % 9))
            fail_msg("entry %ld (%s m=%s): found %d, tm=%d tn=%d pf=%d", i, spec, bk[i % 4], found, got.tile_m,
                     got.tile_n, got.prefetch);
    }
    assert_int_equal(n.count, STALE); /* each stale entry noted once, with its spec's bucket-1 lookup */
    /* the parse of a memory buffer is the same parser */
    assert_int_equal(qkc_tune_db_create(ctx, &again), QKC_OK);
    assert_int_equal(qkc_tune_db_parse(again, text, len, "big"), QKC_OK);
    d1 = dump(db);
    d2 = dump(again);
    assert_string_equal(d1, d2);
    RAW_FREE(d2);
    qkc_tune_db_destroy(again);
    /* saved (sorted) and read back: the same entries, saved alike */
    assert_int_equal(qkc_tune_db_save(db, in_dir(path, sizeof path, "big2.db")), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &again), QKC_OK);
    assert_int_equal(qkc_tune_db_load(again, path), QKC_OK);
    assert_int_equal(qkc_tune_db_count(again), ENTRIES + STALE);
    assert_int_equal(qkc_tune_db_save(again, in_dir(path, sizeof path, "big3.db")), QKC_OK);
    {
        char p2[256], p3[256], cmd[600];
        snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", in_dir(p2, sizeof p2, "big2.db"),
                 in_dir(p3, sizeof p3, "big3.db"));
        assert_int_equal(system(cmd), 0);
    }
    RAW_FREE(d1);
    RAW_FREE(text);
    qkc_tune_db_destroy(again);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
}

#define ENTRY_A "spec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=host\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=1 tn=2 ku=1 vec=256 pf=0 nb=16\tus=5\tdefault_us=6\tdate=2024-01-01"
#define ENTRY_B "spec=matmul n=64 k=256 w=q8_0\tm=2-8\ttarget=host\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=2 tn=2 ku=1 vec=256 pf=0 nb=16\tus=7\tdefault_us=8\tdate=2024-01-01"

/* Load `len` bytes as a file and parse them from memory: both give
 * `want`, and on an error the message holds `message`, with the file's
 * name for the file. Returns the entries loaded. */
static int load_both(qkc_context *ctx, const char *name, const void *data, size_t len, qkc_status want,
                     const char *message)
{
    qkc_tune_db *db;
    char path[256];
    int count;
    write_bytes(in_dir(path, sizeof path, name), data, len);
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    for (int way = 0; way < 2; way++) {
        qkc_status st = way ? qkc_tune_db_parse(db, data, len, path) : qkc_tune_db_load(db, path);
        if (st != want)
            fail_msg("%s (%s): status %d, expected %d: %s", name, way ? "parse" : "load", st, want,
                     qkc_context_last_error(ctx));
        if (want && message && !strstr(qkc_context_last_error(ctx), message))
            fail_msg("%s: expected '%s' in '%s'", name, message, qkc_context_last_error(ctx));
        if (want)
            assert_int_equal(qkc_tune_db_count(db), 0); /* nothing of a bad file */
    }
    count = qkc_tune_db_count(db);
    qkc_tune_db_destroy(db);
    return count;
}

/* NUL bytes, CRLF, long lines, a truncated last line: a clear error with
 * the line, or the documented acceptance; never a crash. */
static void test_odd_bytes_and_lines(void **state)
{
    (void)state;
    notes n = {0};
    qkc_context *ctx = make_ctx(&n);
    static const char nul_in_line[] = "qkc-tune 1\n" ENTRY_A "\0junk\n" ENTRY_B "\n";
    static const char nul_alone[] = "qkc-tune 1\n\0\n" ENTRY_A "\n";
    static const char crlf[] = "qkc-tune 1\r\n# a comment\r\n" ENTRY_A "\r\n" ENTRY_B "\r\n";
    static const char no_final_newline[] = "qkc-tune 1\n" ENTRY_A "\n" ENTRY_B;
    static const char cut_in_a_field[] = "qkc-tune 1\n" ENTRY_A "\nspec=matmul n=64 k=256 w=q8_0\tm=2-8\ttarget=ho";
    static const char cut_after_tab[] = "qkc-tune 1\n" ENTRY_A "\n" ENTRY_B "\t";
    static const char cr_inside[] = "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0\tm=1\ttarget=ho\rst\tfeatures=avx2\tqkc=0.1.0\tschedule=tm=1 tn=2 ku=1 vec=256 pf=0 nb=16\tus=5\n";
    size_t big = (size_t)QKC_TUNE_DB_MAX_LINE + 100, huge = (size_t)3 << 20;
    char *text = RAW_MALLOC(huge + 4096);
    size_t len;
    assert_non_null(text);

    load_both(ctx, "nul1.db", nul_in_line, sizeof nul_in_line - 1, QKC_ERR_CORRUPT_DATA, "nul1.db:2: NUL byte");
    load_both(ctx, "nul2.db", nul_alone, sizeof nul_alone - 1, QKC_ERR_CORRUPT_DATA, ":2: NUL byte");
    assert_int_equal(load_both(ctx, "crlf.db", crlf, sizeof crlf - 1, QKC_OK, NULL), 2);
    assert_int_equal(load_both(ctx, "eof.db", no_final_newline, sizeof no_final_newline - 1, QKC_OK, NULL), 2);
    load_both(ctx, "cut.db", cut_in_a_field, sizeof cut_in_a_field - 1, QKC_ERR_CORRUPT_DATA, "cut.db:3: field");
    load_both(ctx, "tab.db", cut_after_tab, sizeof cut_after_tab - 1, QKC_ERR_CORRUPT_DATA, "tab.db:3: unknown field");
    load_both(ctx, "cr.db", cr_inside, sizeof cr_inside - 1, QKC_ERR_CORRUPT_DATA, "cr.db:2: bad target");

    /* a comment line over the limit: too long, though it says nothing */
    len = (size_t)snprintf(text, 4096, "qkc-tune 1\n" ENTRY_A "\n#");
    memset(text + len, 'x', big);
    len += big;
    memcpy(text + len, "\n" ENTRY_B "\n", sizeof ENTRY_B + 1);
    len += sizeof ENTRY_B + 1;
    load_both(ctx, "long.db", text, len, QKC_ERR_CORRUPT_DATA, ":3: line longer than 65536 bytes");
    /* one of 3 MiB, longer than a read: cut by the reader's chunks */
    len = (size_t)snprintf(text, 4096, "qkc-tune 1\n" ENTRY_A "\n" ENTRY_B "\t");
    memset(text + len, 'y', huge);
    len += huge;
    load_both(ctx, "huge.db", text, len, QKC_ERR_CORRUPT_DATA, ":3: line longer than 65536 bytes");
    /* a line just at the limit is read (and rejected for what it says) */
    len = (size_t)snprintf(text, 4096, "qkc-tune 1\n" ENTRY_A "\tdate=");
    memset(text + len, 'z', (size_t)QKC_TUNE_DB_MAX_LINE - sizeof ENTRY_A - 5);
    len += (size_t)QKC_TUNE_DB_MAX_LINE - sizeof ENTRY_A - 5;
    assert_int_equal(len - 11, QKC_TUNE_DB_MAX_LINE);
    load_both(ctx, "limit.db", text, len, QKC_ERR_CORRUPT_DATA, ":2: field date given twice");
    /* fields over their limits */
    len = (size_t)snprintf(text, 4096, "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0");
    memset(text + len, ' ', 5000);
    len += 5000;
    len += (size_t)snprintf(text + len, 4096, "\tm=1\n");
    load_both(ctx, "spec.db", text, len, QKC_ERR_CORRUPT_DATA, ":2: spec: longer than 4095 bytes");
    len = (size_t)snprintf(text, 4096, "qkc-tune 1\nspec=matmul n=64 k=256 w=q4_0\tm=1\tfeatures=");
    memset(text + len, 'f', 300);
    len += 300;
    load_both(ctx, "feat.db", text, len, QKC_ERR_CORRUPT_DATA, ":2: bad features");
    /* an empty text, comments only: no entries */
    assert_int_equal(load_both(ctx, "empty.db", "", 0, QKC_OK, NULL), 0);
    assert_int_equal(load_both(ctx, "comments.db", "# nothing\n\n   \n", 15, QKC_OK, NULL), 0);
    RAW_FREE(text);
    qkc_context_destroy(ctx);
}

/* The schedule parser the database uses, on a buffer: it reads no byte
 * past len, takes a NUL as a byte like any other, and says which keys it
 * saw. */
static void test_schedule_text_on_a_buffer(void **state)
{
    static const char text[] = "tm=1 tn=2,ku=4\tvec=512 pf=8 nb=16tm=9";
    static const char *const bad[] = {"tm=+1", "tm=-0", "tm= 1", "tm=1x", "nb=1048577", "tm=1 tm=1", "tile=2", "="};
    qkc_schedule s, t;
    unsigned present = 0;
    char why[128];
    (void)state;
    /* the first 33 bytes only: the "tm=9" after them is not read */
    assert_int_equal(qkc_schedule_parse_text(text, 33, &s, &present, why, sizeof why), 0);
    assert_int_equal(present, 63);
    assert_true(s.tile_m == 1 && s.tile_n == 2 && s.k_unroll == 4 && s.vector_bits == 512 && s.prefetch == 8 &&
                s.n_block == 16);
    assert_int_equal(qkc_schedule_parse_text("nb=1048576 pf=0", 15, &t, &present, why, sizeof why), 0);
    assert_int_equal(present, 48);
    assert_int_equal(t.n_block, 1 << 20);
    assert_int_equal(qkc_schedule_parse_text("", 0, &t, &present, why, sizeof why), 0);
    assert_int_equal(present, 0);
    assert_int_equal(qkc_schedule_parse_text("tm=1\0tn=2", 9, &t, &present, why, sizeof why), -1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = s;
        present = 7;
        if (qkc_schedule_parse_text(bad[i], strlen(bad[i]), &t, &present, why, sizeof why) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_memory_equal(&t, &s, sizeof s); /* untouched */
        assert_int_equal(present, 7);
        assert_non_null(strstr(why, "schedule: '"));
    }
    /* a message cut to fit */
    assert_int_equal(qkc_schedule_parse_text("tile=2", 6, &t, NULL, why, 8), -1);
    assert_int_equal(strlen(why), 7);
}

/* --------------------------------------------- every allocation failed */

typedef struct counting {
    long calls;   /* allocations since armed */
    long fail_at; /* fail this one (1-based); 0: none */
    int injected;
    long live; /* blocks allocated and not freed */
} counting;

#define HDR 16

static void *count_alloc(size_t bytes, void *user)
{
    counting *c = user;
    unsigned char *p;
    if (++c->calls == c->fail_at) {
        c->injected = 1;
        return NULL;
    }
    if (bytes > SIZE_MAX - HDR || !(p = RAW_MALLOC(bytes + HDR)))
        return NULL;
    c->live++;
    return p + HDR;
}

static void count_free(void *ptr, void *user)
{
    counting *c = user;
    if (!ptr)
        return;
    c->live--;
    RAW_FREE((unsigned char *)ptr - HDR);
}

/* A database of `count` entries for the allocation test: spec numbers
 * from `first`, us `us` (a file that replaces entries of another gives
 * them a lower us). */
static void small_db_text(char *buf, size_t cap, long first, long count, int us)
{
    size_t len = (size_t)snprintf(buf, cap, "qkc-tune 1\n");
    for (long i = first; i < first + count; i++) {
        char spec[128];
        big_spec(i / 2, spec, sizeof spec, i % 3 != 0);
        len += (size_t)snprintf(buf + len, cap - len,
                                "spec=%s\tm=%s\ttarget=host\tfeatures=%s\tqkc=0.1.0\tschedule=tm=1 tn=%d ku=1 vec=256 "
                                "pf=0 nb=32\tus=%d.5\tdefault_us=99\tdate=2026-01-0%ld\n",
                                spec, i % 2 ? "9-64" : "1", i % 5 ? "avx2 fma" : "avx2 fma avx512f", us, us,
                                1 + i % 9);
        assert_true(len < cap);
    }
}

/* Load a file into a database that has entries (some replaced), merge a
 * second database in, save: failing the N-th allocation for every N. Each
 * step gives QKC_OK with the right entries or QKC_ERR_NO_MEMORY with the
 * database as before it; nothing stays allocated; and no allocation of
 * the sequence bypasses the context's allocator. */
static void test_every_allocation_through_the_context(void **state)
{
    enum { CAP = 1 << 18 };
    char *text = RAW_MALLOC(CAP), base[256], file[256], other[256], out[256];
    char *want_base, *want_loaded, *want_merged;
    long foreign = 0;
    int passes = 0;
    (void)state;
    assert_non_null(text);
    small_db_text(text, CAP, 0, 150, 50);
    write_bytes(in_dir(base, sizeof base, "alloc-base.db"), text, strlen(text));
    small_db_text(text, CAP, 100, 300, 40); /* 50 replace entries of base */
    write_bytes(in_dir(file, sizeof file, "alloc-file.db"), text, strlen(text));
    small_db_text(text, CAP, 350, 200, 30);
    write_bytes(in_dir(other, sizeof other, "alloc-other.db"), text, strlen(text));
    in_dir(out, sizeof out, "alloc-out.db");
    /* what each step must give */
    {
        qkc_context *ctx;
        qkc_tune_db *db, *src;
        assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
        assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
        assert_int_equal(qkc_tune_db_create(ctx, &src), QKC_OK);
        assert_int_equal(qkc_tune_db_load(db, base), QKC_OK);
        want_base = dump(db);
        assert_int_equal(qkc_tune_db_load(db, file), QKC_OK);
        want_loaded = dump(db);
        assert_int_equal(qkc_tune_db_load(src, other), QKC_OK);
        assert_int_equal(qkc_tune_db_merge(db, src), QKC_OK);
        want_merged = dump(db);
        assert_int_equal(qkc_tune_db_count(db), 150 + 250 + 150);
        qkc_tune_db_destroy(src);
        qkc_tune_db_destroy(db);
        qkc_context_destroy(ctx);
    }
    for (long fail = 1;; fail++) {
        counting c = {0};
        qkc_allocator a = {.alloc = count_alloc, .free = count_free, .user = &c};
        qkc_context_options co = {.struct_size = sizeof co, .allocator = &a};
        qkc_context *ctx;
        qkc_tune_db *db, *src;
        qkc_status st;
        char *got;
        const char *step = "load";
        assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
        assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
        assert_int_equal(qkc_tune_db_create(ctx, &src), QKC_OK);
        assert_int_equal(qkc_tune_db_load(db, base), QKC_OK);
        assert_int_equal(qkc_tune_db_load(src, other), QKC_OK);
        c.calls = 0;
        c.fail_at = fail;
        watching = 1;
        st = qkc_tune_db_load(db, file);
        if (!st) {
            step = "merge";
            st = qkc_tune_db_merge(db, src);
        }
        if (!st) {
            step = "save";
            st = qkc_tune_db_save(db, out);
        }
        watching = 0;
        foreign += behind_back;
        behind_back = 0;
        if (st != QKC_OK && st != QKC_ERR_NO_MEMORY)
            fail_msg("fail=%ld: %s gave %d: %s", fail, step, st, qkc_context_last_error(ctx));
        if (st)
            assert_non_null(strstr(qkc_context_last_error(ctx), "out of memory"));
        got = dump(db);
        /* a failed step leaves the database as the step before left it */
        if (strcmp(got, st && !strcmp(step, "load") ? want_base : st && !strcmp(step, "merge") ? want_loaded
                                                                                              : want_merged))
            fail_msg("fail=%ld: after %s (status %d) the database is not what it should be", fail, step, st);
        RAW_FREE(got);
        qkc_tune_db_destroy(src);
        qkc_tune_db_destroy(db);
        qkc_context_destroy(ctx);
        if (c.live != 0)
            fail_msg("fail=%ld: %ld blocks leaked (%s)", fail, c.live, step);
        passes++;
        if (!c.injected)
            break;
    }
    print_message("tune db: load, merge and save: %d allocations failed one at a time\n", passes - 1);
    assert_true(passes > 10);
#ifdef WATCH_MALLOC
    if (foreign)
        fail_msg("%ld allocations bypassed the context's allocator", foreign);
#else
    (void)foreign;
    print_message("tune db: malloc not watched in a sanitizer build (the sanitizer owns malloc)\n");
#endif
    RAW_FREE(want_base);
    RAW_FREE(want_loaded);
    RAW_FREE(want_merged);
    RAW_FREE(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_stale_entries_ignored_with_a_note),
        cmocka_unit_test(test_malformed_rejected_with_line),
        cmocka_unit_test(test_fifo_and_directory_refused),
        cmocka_unit_test(test_100k_entries),
        cmocka_unit_test(test_odd_bytes_and_lines),
        cmocka_unit_test(test_schedule_text_on_a_buffer),
        cmocka_unit_test(test_every_allocation_through_the_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
