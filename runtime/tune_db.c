/*
 * The tuning database: one text file, a header line "qkc-tune 1", '#'
 * comments, then one entry per line as tab-separated key=value fields
 * (docs/tuning.md):
 *
 *   spec=<canonical spec> m=<bucket> target=<name> features=<list>
 *   qkc=<version> schedule=<text> us=<median> default_us=<median> date=<ISO>
 *
 * The key of an entry is (spec, bucket, features, version); adding an
 * entry whose key is present keeps the faster. Lookups take only entries
 * of this qkc version and the target's exact features; other entries of
 * the same spec and bucket are stale: kept in the file, ignored with a
 * note. No LLVM here: part of the runtime library.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "io.h"
#include "ir/spec.h"
#include "spec_object.h"
#include "targets/target.h"
#include "tune.h"

typedef struct db_entry {
    char spec[1024];
    char bucket[8];
    char target[32];
    char features[256];
    char version[16];
    char date[16];
    qkc_schedule schedule;
    double us, default_us;
    int warned; /* a stale entry already reported */
} db_entry;

struct qkc_tune_db {
    qkc_context *ctx;
    pthread_mutex_t lock; /* guards `warned` (lookups from several threads) */
    db_entry *entries;
    int count, cap;
    char path[512]; /* the last file loaded, for notes */
};

static const char *const buckets[] = {"1", "2-8", "9-64", "65+"};

const char *qkc_tune_m_bucket(int64_t m)
{
    return m <= 1 ? buckets[0] : m <= 8 ? buckets[1] : m <= 64 ? buckets[2] : buckets[3];
}

static int bucket_index(const char *b)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(b, buckets[i]))
            return i;
    return -1;
}

qkc_status qkc_tune_db_create(qkc_context *ctx, qkc_tune_db **out)
{
    qkc_tune_db *db;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_create: out is NULL");
    db = qkc_calloc(ctx, 1, sizeof *db);
    if (!db)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "tuning database: out of memory");
    db->ctx = ctx;
    if (pthread_mutex_init(&db->lock, NULL) != 0) {
        qkc_free(ctx, db);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "tuning database: no mutex");
    }
    *out = db;
    return QKC_OK;
}

void qkc_tune_db_destroy(qkc_tune_db *db)
{
    if (!db)
        return;
    pthread_mutex_destroy(&db->lock);
    qkc_free(db->ctx, db->entries);
    qkc_free(db->ctx, db);
}

static int same_key(const db_entry *a, const db_entry *b)
{
    return !strcmp(a->spec, b->spec) && !strcmp(a->bucket, b->bucket) && !strcmp(a->features, b->features) &&
           !strcmp(a->version, b->version);
}

/* Add or replace (keeping the faster). */
static qkc_status put(qkc_tune_db *db, const db_entry *e)
{
    for (int i = 0; i < db->count; i++)
        if (same_key(&db->entries[i], e)) {
            if (e->us < db->entries[i].us)
                db->entries[i] = *e;
            return QKC_OK;
        }
    if (db->count == db->cap) {
        int cap = db->cap ? db->cap * 2 : 16;
        db_entry *n = qkc_calloc(db->ctx, (size_t)cap, sizeof *n);
        if (!n)
            return qkc_fail(db->ctx, QKC_ERR_NO_MEMORY, "tuning database: out of memory");
        if (db->count)
            memcpy(n, db->entries, (size_t)db->count * sizeof *n);
        qkc_free(db->ctx, db->entries);
        db->entries = n;
        db->cap = cap;
    }
    db->entries[db->count++] = *e;
    return QKC_OK;
}

static void today(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(buf, size, "%Y-%m-%d", &tm);
    else
        snprintf(buf, size, "1970-01-01");
}

static int copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size || strpbrk(src, "\t\n\r"))
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Canonical text of a spec text; -1 if it does not parse. */
static int canonical_spec(const char *text, char *out, size_t size, char *why, size_t why_size)
{
    qkc_matmul mm;
    qkc_diag diag;
    if (qkc_matmul_parse(text, &mm, NULL, &diag) || qkc_matmul_verify(&mm, &diag, NULL)) {
        snprintf(why, why_size, "spec: %.200s", diag.message);
        return -1;
    }
    if (qkc_matmul_print(&mm, out, size) >= size) {
        snprintf(why, why_size, "spec too long");
        return -1;
    }
    return 0;
}

static int schedule_text(const char *s, qkc_schedule *out, char *why, size_t why_size)
{
    static const char *const keys[] = {"tm", "tn", "ku", "vec", "pf", "nb"};
    int *fields[6];
    int seen = 0;
    memset(out, 0, sizeof *out);
    fields[0] = &out->tile_m, fields[1] = &out->tile_n, fields[2] = &out->k_unroll;
    fields[3] = &out->vector_bits, fields[4] = &out->prefetch, fields[5] = &out->n_block;
    while (*s) {
        int k;
        char *end;
        long v;
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        for (k = 0; k < 6; k++) {
            size_t n = strlen(keys[k]);
            if (!strncmp(s, keys[k], n) && s[n] == '=')
                break;
        }
        if (k == 6 || (seen & (1 << k))) {
            snprintf(why, why_size, "schedule: expected tm=, tn=, ku=, vec=, pf= and nb= once each at '%.20s'", s);
            return -1;
        }
        seen |= 1 << k;
        s += strlen(keys[k]) + 1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > (1 << 20) || (*end && *end != ' ')) {
            snprintf(why, why_size, "schedule: bad value for %s", keys[k]);
            return -1;
        }
        *fields[k] = (int)v;
        s = end;
    }
    if (seen != 63) {
        snprintf(why, why_size, "schedule: all of tm, tn, ku, vec, pf and nb are required");
        return -1;
    }
    return 0;
}

static int number(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return (end == s || *end || errno || !(*out >= 0) || *out > 1e12) ? -1 : 0;
}

/* Parse one entry line (modified in place). */
static int parse_line(char *line, db_entry *e, char *why, size_t why_size)
{
    static const char *const keys[] = {"spec", "m", "target", "features", "qkc", "schedule", "us", "default_us", "date"};
    int seen = 0;
    char *p = line;
    memset(e, 0, sizeof *e);
    while (p) {
        char *tab = strchr(p, '\t'), *eq;
        int k;
        if (tab)
            *tab = '\0';
        eq = strchr(p, '=');
        for (k = 0; eq && k < 9; k++)
            if ((size_t)(eq - p) == strlen(keys[k]) && !strncmp(p, keys[k], (size_t)(eq - p)))
                break;
        if (!eq || k == 9) {
            snprintf(why, why_size, "unknown field '%.40s' (expected key=value fields separated by tabs)", p);
            return -1;
        }
        if (seen & (1 << k)) {
            snprintf(why, why_size, "field %s given twice", keys[k]);
            return -1;
        }
        seen |= 1 << k;
        eq++;
        switch (k) {
        case 0:
            if (canonical_spec(eq, e->spec, sizeof e->spec, why, why_size))
                return -1;
            break;
        case 1:
            if (bucket_index(eq) < 0 || copy_field(e->bucket, sizeof e->bucket, eq)) {
                snprintf(why, why_size, "m=%.20s: expected a bucket 1, 2-8, 9-64 or 65+", eq);
                return -1;
            }
            break;
        case 2:
            if (copy_field(e->target, sizeof e->target, eq) || !*eq) {
                snprintf(why, why_size, "bad target");
                return -1;
            }
            break;
        case 3:
            if (copy_field(e->features, sizeof e->features, eq)) {
                snprintf(why, why_size, "features too long");
                return -1;
            }
            break;
        case 4:
            if (copy_field(e->version, sizeof e->version, eq) || !*eq) {
                snprintf(why, why_size, "bad qkc version");
                return -1;
            }
            break;
        case 5:
            if (schedule_text(eq, &e->schedule, why, why_size))
                return -1;
            break;
        case 6:
        case 7:
            if (number(eq, k == 6 ? &e->us : &e->default_us)) {
                snprintf(why, why_size, "%s=%.20s: expected a non-negative number of microseconds", keys[k], eq);
                return -1;
            }
            break;
        default:
            if (copy_field(e->date, sizeof e->date, eq)) {
                snprintf(why, why_size, "bad date");
                return -1;
            }
            break;
        }
        p = tab ? tab + 1 : NULL;
    }
    for (int k = 0; k < 9; k++)
        if (!(seen & (1 << k)) && k != 7 && k != 8) {
            snprintf(why, why_size, "field %s= is missing", keys[k]);
            return -1;
        }
    return 0;
}

qkc_status qkc_tune_db_load(qkc_tune_db *db, const char *path)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int header = 0;
    qkc_tune_db *tmp;
    qkc_status st = QKC_OK;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!path)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_load: path is NULL");
    f = fopen(path, "r");
    if (!f)
        return qkc_fail(db->ctx, QKC_ERR_IO, "tuning database %s: %s", path, strerror(errno));
    /* Parse into a scratch database: a bad line adds nothing. */
    if ((st = qkc_tune_db_create(db->ctx, &tmp))) {
        fclose(f);
        return st;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *p = line, why[256];
        db_entry e;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        while (*p == ' ')
            p++;
        if (!*p || *p == '#')
            continue;
        if (!header) {
            if (strcmp(p, "qkc-tune 1")) {
                st = qkc_fail(db->ctx, QKC_ERR_CORRUPT_DATA, "%s:%ld: expected the header line 'qkc-tune 1'", path,
                              lineno);
                break;
            }
            header = 1;
            continue;
        }
        if (parse_line(p, &e, why, sizeof why)) {
            st = qkc_fail(db->ctx, QKC_ERR_CORRUPT_DATA, "%s:%ld: %s", path, lineno, why);
            break;
        }
        if (!*e.date)
            today(e.date, sizeof e.date);
        if ((st = put(tmp, &e)))
            break;
    }
    if (!st && ferror(f))
        st = qkc_fail(db->ctx, QKC_ERR_IO, "tuning database %s: read error", path);
    free(line);
    fclose(f);
    if (!st)
        st = qkc_tune_db_merge(db, tmp);
    if (!st)
        snprintf(db->path, sizeof db->path, "%s", path);
    qkc_tune_db_destroy(tmp);
    return st;
}

static int entry_order(const void *pa, const void *pb)
{
    const db_entry *a = pa, *b = pb;
    int c = strcmp(a->spec, b->spec);
    if (!c)
        c = bucket_index(a->bucket) - bucket_index(b->bucket);
    if (!c)
        c = strcmp(a->features, b->features);
    if (!c)
        c = strcmp(a->version, b->version);
    return c;
}

qkc_status qkc_tune_db_save(const qkc_tune_db *db, const char *path)
{
    size_t cap = 256, len = 0;
    char *buf;
    db_entry *sorted;
    qkc_status st;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!path)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_save: path is NULL");
    sorted = qkc_calloc(db->ctx, (size_t)db->count + 1, sizeof *sorted);
    buf = qkc_alloc(db->ctx, cap + (size_t)db->count * 2048);
    if (!sorted || !buf) {
        qkc_free(db->ctx, sorted);
        qkc_free(db->ctx, buf);
        return qkc_fail(db->ctx, QKC_ERR_NO_MEMORY, "tuning database: out of memory");
    }
    if (db->count)
        memcpy(sorted, db->entries, (size_t)db->count * sizeof *sorted);
    qsort(sorted, (size_t)db->count, sizeof *sorted, entry_order);
    len += (size_t)sprintf(buf, "qkc-tune 1\n# qkc tuning database (docs/tuning.md): one entry per line, "
                                "tab-separated key=value fields\n");
    for (int i = 0; i < db->count; i++) {
        const db_entry *e = &sorted[i];
        char sched[128];
        qkc_schedule_print(&e->schedule, sched, sizeof sched);
        len += (size_t)snprintf(buf + len, 2048,
                                "spec=%s\tm=%s\ttarget=%s\tfeatures=%s\tqkc=%s\tschedule=%s\tus=%.3f\tdefault_us=%.3f"
                                "\tdate=%s\n",
                                e->spec, e->bucket, e->target, e->features, e->version, sched, e->us, e->default_us,
                                e->date);
    }
    st = qkc_io_write_atomic(db->ctx, path, buf, len, 0644);
    qkc_free(db->ctx, sorted);
    qkc_free(db->ctx, buf);
    return st;
}

qkc_status qkc_tune_db_add(qkc_tune_db *db, const qkc_tune_entry *entry)
{
    db_entry e;
    char why[256];
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!entry || !entry->spec || !entry->m_bucket || !entry->target || !entry->features)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_add: NULL field");
    memset(&e, 0, sizeof e);
    if (canonical_spec(entry->spec, e.spec, sizeof e.spec, why, sizeof why))
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_add: %s", why);
    if (bucket_index(entry->m_bucket) < 0 || copy_field(e.bucket, sizeof e.bucket, entry->m_bucket) ||
        copy_field(e.target, sizeof e.target, entry->target) ||
        copy_field(e.features, sizeof e.features, entry->features) ||
        copy_field(e.version, sizeof e.version, entry->version ? entry->version : qkc_version_string()) ||
        (entry->date && copy_field(e.date, sizeof e.date, entry->date)) || !(entry->us >= 0) ||
        !(entry->default_us >= 0))
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_add: a field is malformed or too long");
    if (!entry->date)
        today(e.date, sizeof e.date);
    e.schedule = entry->schedule;
    e.us = entry->us;
    e.default_us = entry->default_us;
    return put(db, &e);
}

qkc_status qkc_tune_db_merge(qkc_tune_db *db, const qkc_tune_db *src)
{
    qkc_status st = QKC_OK;
    if (!db || !src)
        return db ? qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_merge: NULL argument")
                  : QKC_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < src->count && !st; i++)
        st = put(db, &src->entries[i]);
    return st;
}

int qkc_tune_db_count(const qkc_tune_db *db)
{
    return db ? db->count : 0;
}

qkc_status qkc_tune_db_get(const qkc_tune_db *db, int index, qkc_tune_entry *out)
{
    const db_entry *e;
    if (!db || !out || index < 0 || index >= db->count)
        return QKC_ERR_INVALID_ARGUMENT;
    e = &db->entries[index];
    out->spec = e->spec;
    out->m_bucket = e->bucket;
    out->target = e->target;
    out->features = e->features;
    out->version = e->version;
    out->schedule = e->schedule;
    out->us = e->us;
    out->default_us = e->default_us;
    out->date = e->date;
    return QKC_OK;
}

qkc_status qkc_tune_db_lookup_features(qkc_tune_db *db, const char *spec_text, int64_t m, const char *features,
                                       qkc_schedule *out, int *found)
{
    const char *bucket = qkc_tune_m_bucket(m), *version = qkc_version_string();
    *found = 0;
    for (int i = 0; i < db->count; i++) {
        db_entry *e = &db->entries[i];
        int warn = 0;
        if (strcmp(e->spec, spec_text) || strcmp(e->bucket, bucket))
            continue;
        if (!strcmp(e->features, features) && !strcmp(e->version, version)) {
            *out = e->schedule;
            *found = 1;
            continue;
        }
        pthread_mutex_lock(&db->lock);
        warn = !e->warned;
        e->warned = 1;
        pthread_mutex_unlock(&db->lock);
        if (warn)
            qkc_warn(db->ctx,
                     "tuning database%s%s: the entry for '%s' m=%s was tuned by qkc %s for features '%s', not qkc %s "
                     "with '%s': ignored",
                     *db->path ? " " : "", db->path, e->spec, e->bucket, e->version, e->features, version, features);
    }
    return QKC_OK;
}

qkc_status qkc_tune_db_lookup(qkc_tune_db *db, const qkc_spec *spec, int64_t m, const char *target,
                              qkc_schedule *out, int *found)
{
    qkc_target t;
    qkc_diag diag;
    char text[1024], feats[256];
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !out || !found)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_lookup: NULL argument");
    if (qkc_target_resolve(target, 0, &t, &diag))
        return qkc_fail_diag(db->ctx, &diag);
    qkc_matmul_print(&spec->mm, text, sizeof text);
    qkc_target_features_string(t.arch, t.features, feats, sizeof feats);
    return qkc_tune_db_lookup_features(db, text, m, feats, out, found);
}
