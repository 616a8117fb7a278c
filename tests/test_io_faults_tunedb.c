/*
 * The tuning database under I/O faults: for each kind (a short transfer,
 * EINTR, EIO, ENOSPC) and N = 1, 2, 3, … the N-th I/O call of a scenario
 * fails, until a pass in which nothing was injected. Scenarios: load a
 * database; save one over an existing file; merge (load a database, load
 * a second, merge it in and save over the first, as `qkc tune --db`
 * does). Every pass must give a status with a message or the right
 * result; leak nothing (a counting allocator); leave the database as
 * before a failed load; and leave on disk the old file or the whole new
 * one, with no temporary file (tests/util/io_fault.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "core/context.h"
#include "core/io.h"
#include "util/alloc_count.h"
#include "util/io_fault.h"

static char dir[] = "/tmp/qkc-test-io-tunedb-XXXXXX";

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

/* ------------------------------------------------------------ helpers */

static char *path_of(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* A database text of `count` entries, spec numbers from `first`, time
 * `us` (lower replaces higher). Free with free(). */
static char *db_text(long first, long count, int us)
{
    size_t cap = 64 + (size_t)count * 256, len;
    char *t = malloc(cap);
    assert_non_null(t);
    len = (size_t)snprintf(t, cap, "qkc-tune 1\n");
    for (long i = first; i < first + count; i++)
        len += (size_t)snprintf(t + len, cap - len,
                                "spec=matmul n=%ld k=256 a=f32 w=q8_0 out=f32\tm=%s\ttarget=host\tfeatures=avx2 fma\t"
                                "qkc=0.1.0\tschedule=tm=1 tn=%d ku=1 vec=256 pf=0 nb=32\tus=%d.250\tdefault_us=99.000\t"
                                "date=2026-02-03\n",
                                32 * (1 + i / 4), i % 4 == 0 ? "1" : i % 4 == 1 ? "2-8" : i % 4 == 2 ? "9-64" : "65+",
                                1 + (int)(i % 8), us);
    assert_true(len < cap);
    return t;
}

/* Every entry, one line each in index order. Free with free(). */
static char *dump(const qkc_tune_db *db)
{
    int n = qkc_tune_db_count(db);
    size_t cap = 64 + (size_t)n * 384, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        qkc_tune_entry e;
        char s[128];
        assert_int_equal(qkc_tune_db_get(db, i, &e), QKC_OK);
        qkc_schedule_print(&e.schedule, s, sizeof s);
        len += (size_t)snprintf(out + len, cap - len, "%s|%s|%s|%s|%s|%s|%.3f|%.3f|%s\n", e.spec, e.m_bucket,
                                e.target, e.features, e.version, s, e.us, e.default_us, e.date);
        assert_true(len < cap);
    }
    return out;
}

/* ---------------------------------------------------------- scenarios */

typedef enum scenario { LOAD, SAVE, MERGE, SCENARIO_COUNT } scenario;
static const char *const scenario_names[] = {"load", "save", "merge"};

typedef struct expect {
    char *before_db;   /* the database's entries before the scenario (load) */
    char *after_db;    /* after it, when it succeeds */
    char *old_file;    /* the file on disk before (save, merge) */
    size_t old_len;
    char *new_file;    /* and after a successful save */
    size_t new_len;
} expect;

/* Run scenario `sc` on a fresh context with the fault armed; check the
 * outcome. Returns 1 if the fault fired. */
static int run_once(scenario sc, qkc_test_io_kind kind, int n, const expect *x, int *faulted_ops)
{
    qkc_test_alloc_count c;
    qkc_allocator a = qkc_test_alloc_count_allocator(&c);
    qkc_context_options co = {.struct_size = sizeof co, .allocator = &a, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_context *ctx;
    qkc_tune_db *db, *src = NULL;
    qkc_test_io_fault f;
    qkc_status st = QKC_OK;
    const char *target = path_of("target.db");
    char *got;
    spit(target, x->old_file);
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    if (sc == SAVE) /* the database to save is read before the faults */
        assert_int_equal(qkc_tune_db_load(db, path_of("new.db")), QKC_OK);
    else
        assert_int_equal(qkc_tune_db_load(db, path_of("base.db")), QKC_OK);
    qkc_test_io_fault_arm(&f, kind, n);
    qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, &f);
    switch (sc) {
    case LOAD:
        st = qkc_tune_db_load(db, target);
        break;
    case SAVE:
        st = qkc_tune_db_save(db, target);
        break;
    default:
        /* qkc tune --db: the file, the results (here a second file), save */
        if (!(st = qkc_tune_db_create(ctx, &src)) && !(st = qkc_tune_db_load(db, target)) &&
            !(st = qkc_tune_db_load(src, path_of("other.db"))) && !(st = qkc_tune_db_merge(db, src)))
            st = qkc_tune_db_save(db, target);
        break;
    }
    qkc_context_set_io_fault(ctx, NULL, NULL);
    if (f.fired)
        faulted_ops[f.fired_op]++;
    if (st != QKC_OK) {
        const char *msg = qkc_context_last_error(ctx);
        if (kind == QKC_TEST_IO_SHORT || kind == QKC_TEST_IO_EINTR)
            fail_msg("%s, %s at call %d (%s): the layer must absorb it, got status %d: %s", scenario_names[sc],
                     qkc_test_io_kind_name(kind), n, qkc_test_io_op_name(f.fired_op), st, msg);
        if (st != QKC_ERR_IO || !strstr(msg, dir))
            fail_msg("%s, %s at call %d (%s): status %d, message '%s' (expected QKC_ERR_IO naming the file)",
                     scenario_names[sc], qkc_test_io_kind_name(kind), n, qkc_test_io_op_name(f.fired_op), st, msg);
    }
    /* the database: loaded whole or untouched */
    got = dump(db);
    if (sc == LOAD && strcmp(got, st ? x->before_db : x->after_db))
        fail_msg("load, %s at call %d: the database is %s", qkc_test_io_kind_name(kind), n,
                 st ? "changed by a failed load" : "not the file's");
    free(got);
    /* the file: the old one or the whole new one; no temporary file */
    {
        size_t len;
        char *disk = slurp(target, &len);
        int old = len == x->old_len && !memcmp(disk, x->old_file, len);
        int whole = x->new_file && len == x->new_len && !memcmp(disk, x->new_file, len);
        if (!(old || whole) || (st == QKC_OK && x->new_file && !whole))
            fail_msg("%s, %s at call %d (%s), status %d: the file on disk is %s", scenario_names[sc],
                     qkc_test_io_kind_name(kind), n, qkc_test_io_op_name(f.fired_op), st,
                     old || whole ? "the old one after a success" : "neither the old nor the new one");
        free(disk);
    }
    assert_int_equal(qkc_test_count_tmp_files(dir), 0);
    qkc_tune_db_destroy(src);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
    if (qkc_test_alloc_count_live(&c) != 0)
        fail_msg("%s, %s at call %d: %ld blocks leaked", scenario_names[sc], qkc_test_io_kind_name(kind), n,
                 qkc_test_alloc_count_live(&c));
    return f.fired;
}

/* The expected outcomes, computed without faults. */
static void expectations(scenario sc, expect *x)
{
    qkc_context *ctx;
    qkc_tune_db *db, *src;
    char *base = db_text(0, 120, 50), *target = db_text(100, 100, 40), *other = db_text(180, 60, 30),
         *fresh = db_text(0, 200, 20);
    memset(x, 0, sizeof *x);
    spit(path_of("base.db"), base);
    spit(path_of("other.db"), other);
    spit(path_of("new.db"), fresh);
    x->old_file = sc == SAVE ? base : target; /* what lies in target.db before */
    x->old_len = strlen(x->old_file);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    assert_int_equal(qkc_tune_db_create(ctx, &src), QKC_OK);
    if (sc == LOAD) {
        assert_int_equal(qkc_tune_db_load(db, path_of("base.db")), QKC_OK);
        x->before_db = dump(db);
        spit(path_of("target.db"), target);
        assert_int_equal(qkc_tune_db_load(db, path_of("target.db")), QKC_OK);
        x->after_db = dump(db);
        assert_int_equal(qkc_tune_db_count(db), 200); /* 20 entries replaced */
    } else {
        if (sc == SAVE) {
            assert_int_equal(qkc_tune_db_load(db, path_of("new.db")), QKC_OK);
        } else {
            spit(path_of("target.db"), target);
            assert_int_equal(qkc_tune_db_load(db, path_of("base.db")), QKC_OK);
            assert_int_equal(qkc_tune_db_load(db, path_of("target.db")), QKC_OK);
            assert_int_equal(qkc_tune_db_load(src, path_of("other.db")), QKC_OK);
            assert_int_equal(qkc_tune_db_merge(db, src), QKC_OK);
        }
        assert_int_equal(qkc_tune_db_save(db, path_of("expected.db")), QKC_OK);
        x->new_file = slurp(path_of("expected.db"), &x->new_len);
        assert_true(x->new_len != x->old_len || memcmp(x->new_file, x->old_file, x->old_len));
    }
    qkc_tune_db_destroy(src);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
    if (sc == SAVE)
        free(target);
    else
        free(base);
    free(other);
    free(fresh);
}

static void faults_in(scenario sc)
{
    expect x;
    expectations(sc, &x);
    for (int kind = 0; kind < QKC_TEST_IO_KIND_COUNT; kind++) {
        int ops[QKC_IO_OP_COUNT] = {0}, passes = 0;
        for (int n = 1;; n++) {
            passes++;
            if (!run_once(sc, (qkc_test_io_kind)kind, n, &x, ops))
                break;
        }
        print_message("tune db %-5s %-6s %2d calls faulted one at a time (open %d, read %d, write %d, fsync %d, "
                      "rename %d)\n",
                      scenario_names[sc], qkc_test_io_kind_name((qkc_test_io_kind)kind), passes - 1, ops[QKC_IO_OPEN],
                      ops[QKC_IO_READ], ops[QKC_IO_WRITE], ops[QKC_IO_FSYNC], ops[QKC_IO_RENAME]);
        /* the calls there are, by kind (short, EINTR, EIO, ENOSPC): a
         * load opens and reads to the end (2 reads); a save opens a
         * temporary file, writes, syncs, renames and syncs the directory;
         * the merge loads two files and saves */
        {
            static const int least[SCENARIO_COUNT][QKC_TEST_IO_KIND_COUNT] = {
                {1, 3, 3, 0}, {1, 5, 5, 2}, {3, 11, 11, 3}};
            if (passes - 1 < least[sc][kind])
                fail_msg("%s, %s: %d calls faulted, expected at least %d: an I/O call bypasses core/io.c",
                         scenario_names[sc], qkc_test_io_kind_name((qkc_test_io_kind)kind), passes - 1,
                         least[sc][kind]);
        }
    }
    free(x.before_db);
    free(x.after_db);
    free(x.old_file);
    free(x.new_file);
}

static void load_under_faults(void **state)
{
    (void)state;
    faults_in(LOAD);
}

static void save_over_existing_under_faults(void **state)
{
    (void)state;
    faults_in(SAVE);
}

static void merge_under_faults(void **state)
{
    (void)state;
    faults_in(MERGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_under_faults),
        cmocka_unit_test(save_over_existing_under_faults),
        cmocka_unit_test(merge_under_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
