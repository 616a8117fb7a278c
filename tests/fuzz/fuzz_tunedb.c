/*
 * libFuzzer harness: the tuning database's text file (cache/tune_db.c)
 * and the schedule text form (qkc_schedule_parse / _print, and
 * qkc_schedule_complete, which checks a schedule against a target) on
 * arbitrary bytes.
 *
 * The bytes are a database file: written to the process's scratch
 * directory and loaded (qkc_tune_db_load). A refused file must fail with
 * QKC_ERR_CORRUPT_DATA, a message, and add nothing. A loaded one must hold
 * canonical specs and valid buckets; every entry of this qkc's version
 * must be what a lookup of its key finds; every schedule must print to
 * text that parses back to it, and complete (for the entry's spec and
 * target, when qkc knows the target) to an in-range schedule that
 * completes to itself, or fail with a message. Then the round trip: saved,
 * loaded into a new database and saved again, the two files must be equal
 * and the entries the same (times to the 0.001 µs the file keeps).
 *
 * The bytes are also a schedule's text: one that parses must print to
 * text that parses back to it and prints the same.
 *
 * A crash, a sanitizer report, a failure without a message, a lookup that
 * misses, or a broken round trip is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/schedule.h"
#include "common.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "cache/tune_db.h"
#include "targets/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static qkc_context *ctx;
static char db_in[1024], db_out1[1024], db_out2[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    qkc_fuzz_path(db_in, sizeof db_in, "in.db");
    qkc_fuzz_path(db_out1, sizeof db_out1, "out1.db");
    qkc_fuzz_path(db_out2, sizeof db_out2, "out2.db");
    return 0;
}

static int same_schedule(const qkc_schedule *a, const qkc_schedule *b)
{
    return a->tile_m == b->tile_m && a->tile_n == b->tile_n && a->k_unroll == b->k_unroll &&
           a->vector_bits == b->vector_bits && a->prefetch == b->prefetch && a->n_block == b->n_block;
}

/* ----------------------------------------------------------- schedules */

static void schedule_round_trip(const qkc_schedule *s, const char *where)
{
    char p1[256], p2[256];
    qkc_schedule back;
    size_t n = qkc_schedule_print(s, p1, sizeof p1);
    if (n >= sizeof p1 || qkc_schedule_parse(ctx, p1, &back) != QKC_OK || !same_schedule(s, &back))
        qkc_fuzz_bug("%s: schedule '%s' does not parse back to itself (%s)", where, p1, qkc_context_last_error(ctx));
    qkc_schedule_print(&back, p2, sizeof p2);
    if (strcmp(p1, p2))
        qkc_fuzz_bug("%s: schedule '%s' prints again as '%s'", where, p1, p2);
}

/* Completing a schedule for a spec and target: in range and a fixed
 * point, or a failure with a message. */
static void schedule_complete(const qkc_schedule *given, const char *spec_text, const char *target_name)
{
    qkc_matmul mm;
    qkc_klayout L;
    qkc_target t;
    qkc_diag d;
    qkc_schedule s = *given, again;
    if (qkc_matmul_parse(spec_text, &mm, NULL, &d) != QKC_OK)
        qkc_fuzz_bug("a loaded spec does not parse: '%s': %s", spec_text, d.message);
    if (qkc_klayout_for(&mm.w, mm.n, mm.k, &L, &d) != QKC_OK || qkc_target_resolve(target_name, 0, &t, &d) != QKC_OK)
        return; /* no layout for this shape (limits), or a target qkc does not know */
    memset(&d, 0, sizeof d);
    if (qkc_schedule_complete(&s, &mm, &L, &t, &d) != QKC_OK) {
        if (!d.message[0])
            qkc_fuzz_bug("completing a schedule for '%s' on %s failed without a message", spec_text, target_name);
        return;
    }
    if (s.tile_m < 1 || s.tile_m > 8 || s.tile_n < 1 || s.tile_n > 8 || s.tile_m * s.tile_n > 32 || s.k_unroll < 1 ||
        s.k_unroll > 8 || s.prefetch < 0 || s.prefetch > 64 || s.n_block < 1 || s.n_block > (1 << 20) ||
        s.vector_bits < 128 || s.vector_bits > t.vector_bits)
        qkc_fuzz_bug("a completed schedule is out of range for '%s' on %s", spec_text, target_name);
    again = s;
    if (qkc_schedule_complete(&again, &mm, &L, &t, &d) != QKC_OK || !same_schedule(&s, &again))
        qkc_fuzz_bug("a completed schedule for '%s' on %s does not complete to itself", spec_text, target_name);
}

static void fuzz_schedule_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    qkc_schedule s;
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    if (qkc_schedule_parse(ctx, text, &s) == QKC_OK)
        schedule_round_trip(&s, "schedule text");
    else if (!qkc_context_last_error(ctx)[0])
        qkc_fuzz_bug("a schedule refused without a message");
    free(text);
}

/* ------------------------------------------------------------ database */

static int64_t bucket_m(const char *bucket)
{
    return !strcmp(bucket, "1") ? 1 : !strcmp(bucket, "2-8") ? 2 : !strcmp(bucket, "9-64") ? 9 : 65;
}

/* The entry of b with a's key, or -1. */
static int find_key(const qkc_tune_db *b, const qkc_tune_entry *a)
{
    for (int i = 0; i < qkc_tune_db_count(b); i++) {
        qkc_tune_entry e;
        qkc_tune_db_get(b, i, &e);
        if (!strcmp(e.spec, a->spec) && !strcmp(e.m_bucket, a->m_bucket) && !strcmp(e.features, a->features) &&
            !strcmp(e.version, a->version))
            return i;
    }
    return -1;
}

static void check_entries(qkc_tune_db *db)
{
    for (int i = 0; i < qkc_tune_db_count(db); i++) {
        qkc_tune_entry e;
        qkc_spec *spec = NULL;
        char canon[1024], where[64];
        if (qkc_tune_db_get(db, i, &e) != QKC_OK || !e.spec || !e.m_bucket || !e.target || !e.features ||
            !e.version || !e.date)
            qkc_fuzz_bug("entry %d cannot be read", i);
        /* the spec is canonical */
        if (qkc_spec_parse(ctx, e.spec, &spec) != QKC_OK)
            qkc_fuzz_bug("entry %d: spec '%s' does not parse: %s", i, e.spec, qkc_context_last_error(ctx));
        qkc_spec_print(spec, canon, sizeof canon, NULL);
        qkc_spec_destroy(spec);
        if (strcmp(canon, e.spec))
            qkc_fuzz_bug("entry %d: spec '%s' is not canonical ('%s')", i, e.spec, canon);
        if (strcmp(qkc_tune_m_bucket(bucket_m(e.m_bucket)), e.m_bucket))
            qkc_fuzz_bug("entry %d: bucket '%s'", i, e.m_bucket);
        if (!(e.us >= 0) || !(e.default_us >= 0) || !e.target[0] || !e.version[0])
            qkc_fuzz_bug("entry %d: a field is out of range", i);
        /* an entry of this qkc is what a lookup of its key finds */
        if (!strcmp(e.version, qkc_version_string())) {
            qkc_schedule got;
            int found = 0;
            if (qkc_tune_db_lookup_features(db, e.spec, bucket_m(e.m_bucket), e.features, &got, &found) != QKC_OK ||
                !found || !same_schedule(&got, &e.schedule))
                qkc_fuzz_bug("entry %d ('%s' m=%s features '%s') is not found by a lookup", i, e.spec, e.m_bucket,
                             e.features);
        }
        snprintf(where, sizeof where, "entry %d", i);
        schedule_round_trip(&e.schedule, where);
        schedule_complete(&e.schedule, e.spec, e.target);
    }
}

/* Bytes of a file, malloc'd (NULL and 0 when it cannot be read). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return buf;
}

static void round_trip(const qkc_tune_db *db)
{
    qkc_tune_db *back = NULL, *merged = NULL;
    char *f1, *f2;
    size_t l1, l2;
    if (qkc_tune_db_save(db, db_out1) != QKC_OK)
        qkc_fuzz_bug("a loaded database cannot be saved: %s", qkc_context_last_error(ctx));
    if (qkc_tune_db_create(ctx, &back) != QKC_OK || qkc_tune_db_load(back, db_out1) != QKC_OK)
        qkc_fuzz_bug("a saved database does not load: %s", qkc_context_last_error(ctx));
    if (qkc_tune_db_count(back) != qkc_tune_db_count(db))
        qkc_fuzz_bug("%d entries saved, %d loaded back", qkc_tune_db_count(db), qkc_tune_db_count(back));
    for (int i = 0; i < qkc_tune_db_count(db); i++) {
        qkc_tune_entry a, b;
        char us[64], dus[64];
        int j;
        qkc_tune_db_get(db, i, &a);
        if ((j = find_key(back, &a)) < 0)
            qkc_fuzz_bug("entry %d ('%s' m=%s) is missing after a save and load", i, a.spec, a.m_bucket);
        qkc_tune_db_get(back, j, &b);
        /* the file keeps microseconds to three decimals */
        snprintf(us, sizeof us, "%.3f", a.us);
        snprintf(dus, sizeof dus, "%.3f", a.default_us);
        if (strcmp(a.target, b.target) || strcmp(a.date, b.date) || !same_schedule(&a.schedule, &b.schedule) ||
            b.us != strtod(us, NULL) || b.default_us != strtod(dus, NULL))
            qkc_fuzz_bug("entry %d ('%s' m=%s) changed in a save and load", i, a.spec, a.m_bucket);
    }
    if (qkc_tune_db_save(back, db_out2) != QKC_OK)
        qkc_fuzz_bug("a reloaded database cannot be saved: %s", qkc_context_last_error(ctx));
    f1 = slurp(db_out1, &l1);
    f2 = slurp(db_out2, &l2);
    if (!f1 || !f2 || l1 != l2 || memcmp(f1, f2, l1))
        qkc_fuzz_bug("a saved database saves differently after a load");
    free(f1);
    free(f2);
    /* merging into an empty database copies every entry */
    if (qkc_tune_db_create(ctx, &merged) != QKC_OK || qkc_tune_db_merge(merged, db) != QKC_OK ||
        qkc_tune_db_count(merged) != qkc_tune_db_count(db))
        qkc_fuzz_bug("a merge into an empty database lost entries");
    qkc_tune_db_destroy(merged);
    qkc_tune_db_destroy(back);
}

static void fuzz_database(const uint8_t *data, size_t size)
{
    qkc_tune_db *db = NULL;
    qkc_status st;
    qkc_fuzz_write_file(db_in, data, size);
    if (qkc_tune_db_create(ctx, &db) != QKC_OK)
        qkc_fuzz_bug("no database");
    st = qkc_tune_db_load(db, db_in);
    if (st != QKC_OK) {
        /* refused whole: a corrupt file, explained, nothing added */
        if (st != QKC_ERR_CORRUPT_DATA || !qkc_context_last_error(ctx)[0] || qkc_tune_db_count(db))
            qkc_fuzz_bug("a refused database file: status %d, '%s', %d entries added", (int)st,
                         qkc_context_last_error(ctx), qkc_tune_db_count(db));
    } else {
        check_entries(db);
        round_trip(db);
    }
    qkc_tune_db_destroy(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a context per input: its last error is this input's */
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF,
                              .warn = qkc_fuzz_no_warning};
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        qkc_fuzz_bug("no context");
    fuzz_schedule_text(data, size);
    fuzz_database(data, size);
    qkc_context_destroy(ctx);
    ctx = NULL;
    return 0;
}
