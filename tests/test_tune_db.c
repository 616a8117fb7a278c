/*
 * The tuning database file: round trip, merge (the faster entry wins),
 * stale entries (another qkc version or other CPU features) ignored with a
 * note, malformed files rejected with the line number and nothing added.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "targets/target.h"

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
    assert_int_equal(qkc_target_resolve(NULL, 0, &t, &d), QKC_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_stale_entries_ignored_with_a_note),
        cmocka_unit_test(test_malformed_rejected_with_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
