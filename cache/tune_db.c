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
 *
 * In memory, every distinct string (spec, target, features, version,
 * date) is kept once in one arena, found through an open-addressing
 * table; an entry holds string ids, 72 bytes in all. Each distinct spec
 * has a record chaining its entries in index order (the stale notes of a
 * lookup walk it). An open-addressing table of entry indices finds an
 * entry by its key, for adding and lookups alike. Tables are at most half
 * full and double when they would not be; all memory comes from the
 * context's allocator. Files are read through core/io.c a chunk at a
 * time, so a file is never held whole.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/context.h"
#include "core/io.h"
#include "ir/spec.h"
#include "core/spec_object.h"
#include "targets/target.h"
#include "cache/tune_db.h"
#include "core/config.h"

/* Field limits, the same for files and qkc_tune_db_add (bytes, NUL
 * excluded). */
enum {
    SPEC_TEXT_MAX = 4095,  /* a spec as written in a file */
    SPEC_CANON_MAX = 1023, /* its canonical form */
    TARGET_MAX = 31,
    FEATURES_MAX = 255,
    VERSION_MAX = 15,
    DATE_MAX = 15,
    NUMBER_MAX = 63,
    READ_CHUNK = 1 << 20 /* bytes read from a file at a time */
};

/* Strings live in the arena NUL-terminated; a string's id is its offset.
 * Offset 1 is the empty string; 0 is no string (a free slot). */
#define STR_NONE 0u
#define STR_EMPTY 1u

typedef struct str_slot {
    uint32_t offset; /* STR_NONE: free */
    uint32_t hash;
    uint32_t spec;   /* 1 + its spec record when the string is a canonical spec text, else 0 */
} str_slot;

/* A distinct canonical spec and the chain of its entries (every bucket). */
typedef struct spec_rec {
    uint32_t text;       /* string id */
    uint32_t head, tail; /* 1 + first and last entry; 0: none */
} spec_rec;

typedef struct db_entry {
    uint32_t spec;                            /* spec record */
    uint32_t target, features, version, date; /* string ids */
    uint32_t next;                            /* 1 + the spec's next entry; 0: none */
    qkc_schedule schedule;
    double us, default_us;
    uint8_t bucket; /* index in buckets[] */
    uint8_t warned; /* a stale entry already noted (under lock) */
} db_entry;

/* A slot of the key table: the entry with that key, and the key's hash. */
typedef struct key_slot {
    uint32_t entry; /* 1 + entry index; 0: free */
    uint32_t hash;
} key_slot;

/* What a failed load or merge must put back (see tx_end). */
typedef struct undo_rec {
    uint32_t index;
    db_entry old;
} undo_rec;

struct qkc_tune_db {
    qkc_context *ctx;
    pthread_mutex_t lock; /* guards `warned` (lookups from several threads) */

    char *str; /* the string arena */
    size_t str_len, str_cap;
    str_slot *str_slots; /* str_mask + 1 slots, a power of two */
    size_t str_mask, str_count;

    spec_rec *specs;
    uint32_t spec_count, spec_cap;

    db_entry *entries;
    uint32_t count, cap;
    key_slot *keys; /* key_mask + 1 slots, a power of two */
    size_t key_mask;

    /* A load or merge in progress: the state before it, for a rollback. */
    int tx;
    uint32_t tx_count, tx_spec_count;
    size_t tx_str_len;
    undo_rec *undo;
    size_t undo_count, undo_cap;

    char path[512]; /* the last file loaded, for notes */
};

static const char *const buckets[] = {"1", "2-8", "9-64", "65+"};

static int bucket_of(int64_t m)
{
    return m <= 1 ? 0 : m <= 8 ? 1 : m <= 64 ? 2 : 3;
}

const char *qkc_tune_m_bucket(int64_t m)
{
    return buckets[bucket_of(m)];
}

static int bucket_index_n(const char *b, size_t n)
{
    for (int i = 0; i < 4; i++)
        if (n && *b == *buckets[i] && !strncmp(b, buckets[i], n) && !buckets[i][n])
            return i;
    return -1;
}

static qkc_status no_memory(const qkc_tune_db *db)
{
    return qkc_fail(db->ctx, QKC_ERR_NO_MEMORY, "tuning database: out of memory");
}

/* An array of `count` elements of `size` bytes with room for one more:
 * `array` itself, or a new block of twice its capacity (`first` when
 * empty) with its elements, the old block freed and *cap updated. NULL
 * when out of memory (message set; `array` kept). qkc_alloc, not calloc:
 * the unused half is not touched, so it costs address space rather than
 * memory. */
static void *grow_array(qkc_tune_db *db, void *array, uint32_t count, uint32_t *cap, size_t size, uint32_t first)
{
    uint32_t n = *cap ? *cap * 2 : first;
    void *a;
    if (count < *cap)
        return array;
    if (!(a = qkc_alloc(db->ctx, (size_t)n * size))) {
        no_memory(db);
        return NULL;
    }
    if (count)
        memcpy(a, array, (size_t)count * size);
    qkc_free(db->ctx, array);
    *cap = n;
    return a;
}

/* ------------------------------------------------------------- hashing */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(0x100000001b3);
    return (uint32_t)mix64(h);
}

static uint32_t key_hash(uint32_t spec, int bucket, uint32_t features, uint32_t version)
{
    return (uint32_t)mix64(((uint64_t)spec << 32 | features) ^ mix64((uint64_t)version << 8 | (uint64_t)bucket));
}

/* ------------------------------------------------------------- strings */

static const char *str_at(const qkc_tune_db *db, uint32_t id)
{
    return db->str + id;
}

static const char *spec_text(const qkc_tune_db *db, uint32_t spec)
{
    return db->str + db->specs[spec].text;
}

/* The slot holding s[0..n) (n > 0, no NUL), or the free slot where it
 * would go. */
static size_t str_slot_for(const qkc_tune_db *db, const char *s, size_t n, uint32_t h)
{
    for (size_t i = h & db->str_mask;; i = (i + 1) & db->str_mask) {
        const str_slot *sl = &db->str_slots[i];
        /* strncmp stops at the stored string's NUL; s has no NUL in n bytes */
        if (!sl->offset || (sl->hash == h && !strncmp(db->str + sl->offset, s, n) && !db->str[sl->offset + n]))
            return i;
    }
}

/* The slot of s[0..n) (no NUL bytes), or NULL if the database lacks it. */
static const str_slot *str_find(const qkc_tune_db *db, const char *s, size_t n)
{
    static const str_slot empty = {STR_EMPTY, 0, 0};
    const str_slot *sl;
    if (!n)
        return &empty;
    sl = &db->str_slots[str_slot_for(db, s, n, hash_bytes(s, n))];
    return sl->offset ? sl : NULL;
}

static str_slot *str_insert_slot(qkc_tune_db *db, uint32_t offset, uint32_t h)
{
    size_t i = h & db->str_mask;
    while (db->str_slots[i].offset)
        i = (i + 1) & db->str_mask;
    db->str_slots[i].offset = offset;
    db->str_slots[i].hash = h;
    db->str_slots[i].spec = 0;
    return &db->str_slots[i];
}

/* The slot of s[0..n) (n > 0, no NUL bytes), the string added if new.
 * The pointer is valid until the next string is added. */
static qkc_status str_intern_slot(qkc_tune_db *db, const char *s, size_t n, str_slot **out)
{
    uint32_t h = hash_bytes(s, n);
    size_t i = str_slot_for(db, s, n, h);
    if (db->str_slots[i].offset) {
        *out = &db->str_slots[i];
        return QKC_OK;
    }
    if ((db->str_count + 1) * 2 > db->str_mask + 1) { /* keep the table at most half full */
        size_t slots = (db->str_mask + 1) * 2, old_slots = db->str_mask + 1;
        str_slot *t = qkc_calloc(db->ctx, slots, sizeof *t), *old = db->str_slots;
        if (!t)
            return no_memory(db);
        db->str_slots = t;
        db->str_mask = slots - 1;
        for (size_t k = 0; k < old_slots; k++)
            if (old[k].offset)
                str_insert_slot(db, old[k].offset, old[k].hash)->spec = old[k].spec;
        qkc_free(db->ctx, old);
    }
    if (n > UINT32_MAX - 1 - db->str_len)
        return qkc_fail(db->ctx, QKC_ERR_LIMIT, "tuning database: more than 4 GiB of distinct strings");
    if (db->str_len + n + 1 > db->str_cap) {
        size_t cap = db->str_cap * 2;
        char *a;
        while (cap < db->str_len + n + 1)
            cap *= 2;
        if (cap > (size_t)UINT32_MAX + 1)
            cap = (size_t)UINT32_MAX + 1;
        if (!(a = qkc_alloc(db->ctx, cap)))
            return no_memory(db);
        memcpy(a, db->str, db->str_len);
        qkc_free(db->ctx, db->str);
        db->str = a;
        db->str_cap = cap;
    }
    memcpy(db->str + db->str_len, s, n);
    db->str[db->str_len + n] = '\0';
    *out = str_insert_slot(db, (uint32_t)db->str_len, h);
    db->str_len += n + 1;
    db->str_count++;
    return QKC_OK;
}

static qkc_status str_intern(qkc_tune_db *db, const char *s, size_t n, uint32_t *id)
{
    str_slot *sl;
    qkc_status st;
    if (!n) {
        *id = STR_EMPTY;
        return QKC_OK;
    }
    if ((st = str_intern_slot(db, s, n, &sl)))
        return st;
    *id = sl->offset;
    return QKC_OK;
}

/* The spec record of the canonical spec text s[0..n), added if new. */
static qkc_status spec_intern(qkc_tune_db *db, const char *s, size_t n, uint32_t *spec)
{
    str_slot *sl;
    qkc_status st;
    if ((st = str_intern_slot(db, s, n, &sl)))
        return st;
    if (!sl->spec) {
        spec_rec *specs = grow_array(db, db->specs, db->spec_count, &db->spec_cap, sizeof *specs, 16);
        if (!specs)
            return QKC_ERR_NO_MEMORY; /* the string stays, as no spec: harmless */
        db->specs = specs;
        db->specs[db->spec_count].text = sl->offset;
        db->specs[db->spec_count].head = db->specs[db->spec_count].tail = 0;
        sl->spec = ++db->spec_count;
    }
    *spec = sl->spec - 1;
    return QKC_OK;
}

/* ---------------------------------------------------------------- life */

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
    db->str_cap = 256;
    db->str = qkc_alloc(ctx, db->str_cap);
    db->str_slots = qkc_calloc(ctx, 16, sizeof *db->str_slots);
    db->keys = qkc_calloc(ctx, 16, sizeof *db->keys);
    if (!db->str || !db->str_slots || !db->keys || pthread_mutex_init(&db->lock, NULL) != 0) {
        qkc_free(ctx, db->str);
        qkc_free(ctx, db->str_slots);
        qkc_free(ctx, db->keys);
        qkc_free(ctx, db);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "tuning database: out of memory");
    }
    db->str[0] = db->str[1] = '\0'; /* unused; the empty string */
    db->str_len = 2;
    db->str_mask = db->key_mask = 15;
    *out = db;
    return QKC_OK;
}

void qkc_tune_db_destroy(qkc_tune_db *db)
{
    if (!db)
        return;
    pthread_mutex_destroy(&db->lock);
    qkc_free(db->ctx, db->str);
    qkc_free(db->ctx, db->str_slots);
    qkc_free(db->ctx, db->specs);
    qkc_free(db->ctx, db->entries);
    qkc_free(db->ctx, db->keys);
    qkc_free(db->ctx, db->undo);
    qkc_free(db->ctx, db);
}

/* ------------------------------------------------------------- entries */

static uint32_t entry_key_hash(const db_entry *e)
{
    return key_hash(e->spec, e->bucket, e->features, e->version);
}

/* The key slot of e's key with hash h: the entry's, or the free slot
 * where it would go. The stored hash spares most probes a visit to the
 * entry. */
static size_t key_find(const qkc_tune_db *db, const db_entry *e, uint32_t h)
{
    for (size_t i = h & db->key_mask;; i = (i + 1) & db->key_mask) {
        const key_slot *sl = &db->keys[i];
        const db_entry *o;
        if (!sl->entry)
            return i;
        if (sl->hash != h)
            continue;
        o = &db->entries[sl->entry - 1];
        if (o->spec == e->spec && o->bucket == e->bucket && o->features == e->features && o->version == e->version)
            return i;
    }
}

static void key_insert(key_slot *t, size_t mask, uint32_t entry, uint32_t h)
{
    size_t i = h & mask;
    while (t[i].entry)
        i = (i + 1) & mask;
    t[i].entry = entry;
    t[i].hash = h;
}

/* Index entry `index`, whose key is absent, in the key table (which has
 * a free slot) and last in its spec's chain. */
static void index_entry(qkc_tune_db *db, uint32_t index)
{
    db_entry *e = &db->entries[index];
    spec_rec *r = &db->specs[e->spec];
    key_insert(db->keys, db->key_mask, index + 1, entry_key_hash(e));
    e->next = 0;
    if (r->tail)
        db->entries[r->tail - 1].next = index + 1;
    else
        r->head = index + 1;
    r->tail = index + 1;
}

/* Rebuild the tables and chains from the entries, specs and arena (after
 * a rollback shortened them): no allocation, the tables only get emptier. */
static void rebuild_tables(qkc_tune_db *db)
{
    memset(db->str_slots, 0, (db->str_mask + 1) * sizeof *db->str_slots);
    db->str_count = 0;
    for (size_t o = 2; o < db->str_len; db->str_count++) { /* the strings after the empty one */
        size_t n = strlen(db->str + o);
        str_insert_slot(db, (uint32_t)o, hash_bytes(db->str + o, n));
        o += n + 1;
    }
    for (uint32_t i = 0; i < db->spec_count; i++) {
        const char *t = spec_text(db, i);
        db->str_slots[str_slot_for(db, t, strlen(t), hash_bytes(t, strlen(t)))].spec = i + 1;
        db->specs[i].head = db->specs[i].tail = 0;
    }
    memset(db->keys, 0, (db->key_mask + 1) * sizeof *db->keys);
    for (uint32_t i = 0; i < db->count; i++)
        index_entry(db, i);
}

static void tx_begin(qkc_tune_db *db)
{
    db->tx = 1;
    db->tx_count = db->count;
    db->tx_spec_count = db->spec_count;
    db->tx_str_len = db->str_len;
    db->undo_count = 0;
}

/* End a load or merge: keep it (st == QKC_OK) or put everything back. */
static qkc_status tx_end(qkc_tune_db *db, qkc_status st)
{
    if (st) {
        for (size_t i = db->undo_count; i-- > 0;)
            db->entries[db->undo[i].index] = db->undo[i].old;
        db->count = db->tx_count;
        db->spec_count = db->tx_spec_count;
        db->str_len = db->tx_str_len;
        rebuild_tables(db);
    }
    db->tx = 0;
    qkc_free(db->ctx, db->undo);
    db->undo = NULL;
    db->undo_count = db->undo_cap = 0;
    return st;
}

/* Remember entry `index` as it was before a load or merge replaces it. */
static qkc_status tx_save(qkc_tune_db *db, uint32_t index)
{
    if (!db->tx || index >= db->tx_count)
        return QKC_OK; /* not there before: a rollback drops it anyway */
    if (db->undo_count == db->undo_cap) {
        size_t cap = db->undo_cap ? db->undo_cap * 2 : 16;
        undo_rec *u = qkc_alloc(db->ctx, cap * sizeof *u);
        if (!u)
            return no_memory(db);
        if (db->undo_count)
            memcpy(u, db->undo, db->undo_count * sizeof *u);
        qkc_free(db->ctx, db->undo);
        db->undo = u;
        db->undo_cap = cap;
    }
    db->undo[db->undo_count].index = index;
    db->undo[db->undo_count++].old = db->entries[index];
    return QKC_OK;
}

/* Add or replace (keeping the faster). e's strings and spec are db's. On
 * failure the database is unchanged. */
static qkc_status put(qkc_tune_db *db, const db_entry *e)
{
    uint32_t h = entry_key_hash(e);
    size_t slot = key_find(db, e, h);
    db_entry *entries;
    qkc_status st;
    if (db->keys[slot].entry) {
        uint32_t index = db->keys[slot].entry - 1;
        db_entry *old = &db->entries[index];
        uint32_t next = old->next;
        if (!(e->us < old->us))
            return QKC_OK;
        if ((st = tx_save(db, index)))
            return st;
        *old = *e;
        old->next = next; /* its place in the chain stays */
        old->warned = 0;
        return QKC_OK;
    }
    if (db->count >= QKC_TUNE_DB_MAX_ENTRIES)
        return qkc_fail(db->ctx, QKC_ERR_LIMIT, "tuning database: more than %d entries", QKC_TUNE_DB_MAX_ENTRIES);
    if (((size_t)db->count + 1) * 2 > db->key_mask + 1) { /* keep the table at most half full */
        size_t slots = (db->key_mask + 1) * 2;
        key_slot *t = qkc_calloc(db->ctx, slots, sizeof *t);
        if (!t)
            return no_memory(db);
        for (size_t i = 0; i <= db->key_mask; i++)
            if (db->keys[i].entry)
                key_insert(t, slots - 1, db->keys[i].entry, db->keys[i].hash);
        qkc_free(db->ctx, db->keys);
        db->keys = t;
        db->key_mask = slots - 1;
    }
    /* a grown table is only bigger: nothing to undo if this fails */
    if (!(entries = grow_array(db, db->entries, db->count, &db->cap, sizeof *entries, 16)))
        return QKC_ERR_NO_MEMORY;
    db->entries = entries;
    db->entries[db->count] = *e;
    db->entries[db->count].warned = 0;
    index_entry(db, db->count);
    db->count++;
    return QKC_OK;
}

/* ---------------------------------------------------------- field rules */

static void today(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(buf, size, "%Y-%m-%d", &tm);
    else
        snprintf(buf, size, "1970-01-01");
}

/* A text field: at most max bytes, no tab, CR, LF or NUL; non-empty if
 * required. */
static int text_field_ok(const char *s, size_t n, size_t max, int required)
{
    if (n > max || (required && !n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

static int us_ok(double us)
{
    return us >= 0 && us <= 1e12;
}

static int schedule_ok(const qkc_schedule *s)
{
    const int v[6] = {s->tile_m, s->tile_n, s->k_unroll, s->vector_bits, s->prefetch, s->n_block};
    for (int i = 0; i < 6; i++)
        if (v[i] < 0 || v[i] > (1 << 20))
            return 0;
    return 1;
}

/* The spec record of the spec text s[0..n) (no NUL bytes): a text the
 * database holds as a canonical spec is taken as it is, anything else is
 * parsed, verified and printed. QKC_ERR_CORRUPT_DATA with why set if it
 * does not parse (no message on the context). */
static qkc_status spec_of(qkc_tune_db *db, const char *s, size_t n, uint32_t *spec, char *why, size_t why_size)
{
    char text[SPEC_TEXT_MAX + 1], canon[SPEC_CANON_MAX + 1];
    qkc_matmul mm;
    qkc_diag diag;
    const str_slot *known;
    if (n > SPEC_TEXT_MAX) {
        snprintf(why, why_size, "spec: longer than %d bytes", SPEC_TEXT_MAX);
        return QKC_ERR_CORRUPT_DATA;
    }
    if ((known = str_find(db, s, n)) && known->spec) {
        *spec = known->spec - 1;
        return QKC_OK;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (qkc_matmul_parse(text, &mm, NULL, &diag) || qkc_matmul_verify(&mm, &diag, NULL)) {
        snprintf(why, why_size, "spec: %.200s", diag.message);
        return QKC_ERR_CORRUPT_DATA;
    }
    if (qkc_matmul_print(&mm, canon, sizeof canon) >= sizeof canon) {
        snprintf(why, why_size, "spec: its canonical form is longer than %d bytes", SPEC_CANON_MAX);
        return QKC_ERR_CORRUPT_DATA;
    }
    return spec_intern(db, canon, strlen(canon), spec);
}

/* ------------------------------------------------------------- parsing */

/* A string field's previous value: a file repeats the same target,
 * features, version and date on every line. */
typedef struct str_memo {
    uint32_t id; /* 0: none yet */
    size_t len;
} str_memo;

typedef struct parser {
    qkc_tune_db *db;
    const char *name;
    long line;
    int header;
    uint32_t last_spec; /* 1 + the previous line's spec record; 0: none */
    size_t last_spec_len;
    char last_spec_text[256]; /* its text as written */
    str_memo target, features, version, date; /* the previous line's strings */
    uint32_t today;                           /* string id of today's date; 0: not yet needed */
} parser;

static qkc_status parse_error(parser *p, const char *why)
{
    return qkc_fail(p->db->ctx, QKC_ERR_CORRUPT_DATA, "%s:%ld: %s", p->name, p->line, why);
}

/* The id of a text field's value v[0..n), checked as text_field_ok(max,
 * required) unless it is the previous line's; `what` names it in the
 * error. */
static qkc_status parse_string(parser *p, str_memo *memo, const char *v, size_t n, size_t max, int required,
                               const char *what, uint32_t *id)
{
    qkc_status st;
    if (memo->id && memo->len == n && !memcmp(p->db->str + memo->id, v, n)) {
        *id = memo->id;
        return QKC_OK;
    }
    if (!text_field_ok(v, n, max, required)) {
        char why[96];
        snprintf(why, sizeof why, "%s: empty, longer than %zu bytes or with a CR", what, max);
        return parse_error(p, why);
    }
    if ((st = str_intern(p->db, v, n, id)))
        return st;
    memo->id = *id;
    memo->len = n;
    return QKC_OK;
}

/* A time in microseconds: strtod's value, and a fast path for what
 * qkc_tune_db_save writes (digits, a point, digits): with at most 15
 * significant digits, the integer of the digits and 10^decimals are both
 * exact doubles, so their quotient is the correctly rounded value, the
 * same strtod gives. */
static qkc_status parse_number(const char *s, size_t n, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    char buf[NUMBER_MAX + 1], *end;
    uint64_t digits = 0;
    int count = 0, decimals = -1;
    size_t i;
    for (i = 0; i < n && count <= 15; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            digits = digits * 10 + (uint64_t)(s[i] - '0');
            count++;
            decimals += decimals >= 0;
        } else if (s[i] == '.' && decimals < 0 && count) {
            decimals = 0;
        } else {
            break;
        }
    }
    if (i == n && count && count <= 15) {
        *out = (double)digits / pow10[decimals > 0 ? decimals : 0];
        return us_ok(*out) ? QKC_OK : QKC_ERR_CORRUPT_DATA;
    }
    if (n > NUMBER_MAX)
        return QKC_ERR_CORRUPT_DATA;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    return (end == buf || *end || errno || !us_ok(*out)) ? QKC_ERR_CORRUPT_DATA : QKC_OK;
}

/* Start fetching the key slot put() will read for e: in a big database it
 * is a cache miss, which then overlaps the parsing of the line's other
 * fields. */
static void prefetch_slots(const qkc_tune_db *db, const db_entry *e)
{
#if defined(__GNUC__)
    __builtin_prefetch(&db->keys[entry_key_hash(e) & db->key_mask]);
#else
    (void)db, (void)e;
#endif
}

/* One line s[0..n), without its '\n'. */
static qkc_status parse_line(parser *p, const char *s, size_t n)
{
    static const char *const keys[] = {"spec", "m", "target", "features", "qkc", "schedule", "us", "default_us", "date"};
    static const unsigned char key_len[] = {4, 1, 6, 8, 3, 8, 2, 10, 4};
    qkc_tune_db *db = p->db;
    char why[320];
    unsigned seen = 0;
    int prefetched = 0;
    db_entry e;
    qkc_status st;
    p->line++;
    if (n > QKC_TUNE_DB_MAX_LINE) {
        snprintf(why, sizeof why, "line longer than %d bytes", QKC_TUNE_DB_MAX_LINE);
        return parse_error(p, why);
    }
    while (n && s[n - 1] == '\r') /* CRLF */
        n--;
    if (memchr(s, '\0', n))
        return parse_error(p, "NUL byte in the line");
    while (n && *s == ' ')
        s++, n--;
    if (!n || *s == '#')
        return QKC_OK;
    if (!p->header) {
        if (n != 10 || memcmp(s, "qkc-tune 1", 10))
            return parse_error(p, "expected the header line 'qkc-tune 1'");
        p->header = 1;
        return QKC_OK;
    }
    memset(&e, 0, sizeof e);
    while (n) {
        const char *tab = memchr(s, '\t', n), *eq, *v;
        size_t fn = tab ? (size_t)(tab - s) : n, vn;
        int k, shown = fn > 40 ? 40 : (int)fn;
        /* keys are at most 10 bytes: look no further for the '=' */
        for (eq = s; eq < s + fn && eq < s + 11 && *eq != '='; eq++)
            ;
        if (eq == s + fn || *eq != '=')
            eq = NULL;
        for (k = 0; eq && k < 9; k++)
            if ((size_t)(eq - s) == key_len[k] && *s == *keys[k] && !memcmp(s, keys[k], key_len[k]))
                break;
        if (!eq || k == 9) {
            snprintf(why, sizeof why, "unknown field '%.*s' (expected key=value fields separated by tabs)", shown, s);
            return parse_error(p, why);
        }
        if (seen & (1u << k)) {
            snprintf(why, sizeof why, "field %s given twice", keys[k]);
            return parse_error(p, why);
        }
        seen |= 1u << k;
        v = eq + 1;
        vn = fn - (size_t)(v - s);
        shown = vn > 20 ? 20 : (int)vn;
        switch (k) {
        case 0:
            /* the lines of one spec follow each other in a saved file */
            if (p->last_spec && p->last_spec_len == vn && !memcmp(p->last_spec_text, v, vn)) {
                e.spec = p->last_spec - 1;
                break;
            }
            if ((st = spec_of(db, v, vn, &e.spec, why, sizeof why)))
                return st == QKC_ERR_CORRUPT_DATA ? parse_error(p, why) : st;
            /* the text as written, which need not be canonical */
            if (vn <= sizeof p->last_spec_text) {
                memcpy(p->last_spec_text, v, vn);
                p->last_spec_len = vn;
                p->last_spec = e.spec + 1;
            } else {
                p->last_spec = 0;
            }
            break;
        case 1: {
            int b = bucket_index_n(v, vn);
            if (b < 0) {
                snprintf(why, sizeof why, "m=%.*s: expected a bucket 1, 2-8, 9-64 or 65+", shown, v);
                return parse_error(p, why);
            }
            e.bucket = (uint8_t)b;
            break;
        }
        case 2:
            if ((st = parse_string(p, &p->target, v, vn, TARGET_MAX, 1, "bad target", &e.target)))
                return st;
            break;
        case 3:
            if ((st = parse_string(p, &p->features, v, vn, FEATURES_MAX, 0, "bad features", &e.features)))
                return st;
            break;
        case 4:
            if ((st = parse_string(p, &p->version, v, vn, VERSION_MAX, 1, "bad qkc version", &e.version)))
                return st;
            break;
        case 5: {
            unsigned present = 0;
            if (qkc_schedule_parse_text(v, vn, &e.schedule, &present, why, sizeof why))
                return parse_error(p, why);
            if (present != 63)
                return parse_error(p, "schedule: all of tm, tn, ku, vec, pf and nb are required");
            break;
        }
        case 6:
        case 7:
            if (parse_number(v, vn, k == 6 ? &e.us : &e.default_us)) {
                snprintf(why, sizeof why, "%s=%.*s: expected a non-negative number of microseconds", keys[k], shown,
                         v);
                return parse_error(p, why);
            }
            break;
        default:
            if ((st = parse_string(p, &p->date, v, vn, DATE_MAX, 0, "bad date", &e.date)))
                return st;
            break;
        }
        if ((seen & 0x1b) == 0x1b && !prefetched) { /* spec, m, features and qkc known */
            prefetch_slots(db, &e);
            prefetched = 1;
        }
        s += fn;
        n -= fn;
        if (tab) {
            s++, n--;
            if (!n) /* a field was promised after the tab */
                return parse_error(p, "unknown field '' (expected key=value fields separated by tabs)");
        }
    }
    for (int k = 0; k < 7; k++)
        if (!(seen & (1u << k))) {
            snprintf(why, sizeof why, "field %s= is missing", keys[k]);
            return parse_error(p, why);
        }
    if (!(seen & (1u << 8)) || e.date == STR_EMPTY) { /* no date: today's */
        if (!p->today) {
            char d[16];
            today(d, sizeof d);
            if ((st = str_intern(db, d, strlen(d), &p->today)))
                return st;
        }
        e.date = p->today;
    }
    return put(db, &e);
}

/* Parse every complete line of text[0..len) ('\n'-terminated), and with
 * `last` also what follows the last '\n' as a final line. *used is the
 * bytes consumed. */
static qkc_status parse_lines(parser *p, const char *text, size_t len, int last, size_t *used)
{
    size_t at = 0;
    qkc_status st = QKC_OK;
    const char *nl;
    while (!st && at < len && (nl = memchr(text + at, '\n', len - at))) {
        st = parse_line(p, text + at, (size_t)(nl - (text + at)));
        at = (size_t)(nl - text) + 1;
    }
    if (!st && last && at < len) {
        st = parse_line(p, text + at, len - at);
        at = len;
    }
    *used = at;
    return st;
}

static void parser_init(parser *p, qkc_tune_db *db, const char *name)
{
    memset(p, 0, sizeof *p);
    p->db = db;
    p->name = name;
}

qkc_status qkc_tune_db_parse(qkc_tune_db *db, const char *text, size_t len, const char *name)
{
    parser p;
    size_t used;
    qkc_status st;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((!text && len) || !name)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_parse: NULL argument");
    parser_init(&p, db, name);
    tx_begin(db);
    st = tx_end(db, parse_lines(&p, text ? text : "", len, 1, &used));
    if (!st)
        snprintf(db->path, sizeof db->path, "%s", name);
    return st;
}

qkc_status qkc_tune_db_load_file(qkc_tune_db *db, const char *path, int missing_ok)
{
    struct stat sb;
    uint64_t total = 0;
    size_t have = 0;
    char *buf;
    parser p;
    qkc_status st = QKC_OK;
    int fd, err;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!path)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_load: path is NULL");
    /* non-blocking, regular files only: a FIFO is refused at once */
    if ((err = qkc_io_open_read(db->ctx, path, &fd, &sb)) != 0) {
        if (err == ENOENT && missing_ok)
            return QKC_OK;
        return qkc_fail(db->ctx, QKC_ERR_IO, "tuning database %s: %s", path, qkc_io_strerror(err));
    }
    if ((uint64_t)sb.st_size > QKC_TUNE_DB_MAX_BYTES) {
        close(fd);
        return qkc_fail(db->ctx, QKC_ERR_LIMIT, "tuning database %s: %llu bytes, more than the limit of %llu",
                        path, (unsigned long long)sb.st_size, (unsigned long long)QKC_TUNE_DB_MAX_BYTES);
    }
    if (!(buf = qkc_alloc(db->ctx, READ_CHUNK))) {
        close(fd);
        return no_memory(db);
    }
    /* Stream the file through the parser a chunk at a time: a line cut by
     * the chunk's end moves to the front (it is at most MAX_LINE bytes,
     * else an error), and the next read appends to it. */
    parser_init(&p, db, path);
    tx_begin(db);
    for (;;) {
        size_t want = READ_CHUNK - have, got, used;
        if ((err = qkc_io_read_full(db->ctx, fd, buf + have, want, &got)) != 0) {
            st = qkc_fail(db->ctx, QKC_ERR_IO, "tuning database %s: cannot read: %s", path, qkc_io_strerror(err));
            break;
        }
        total += got;
        if (total > QKC_TUNE_DB_MAX_BYTES) { /* it grew while read */
            st = qkc_fail(db->ctx, QKC_ERR_LIMIT, "tuning database %s: more than the limit of %llu bytes", path,
                          (unsigned long long)QKC_TUNE_DB_MAX_BYTES);
            break;
        }
        have += got;
        if ((st = parse_lines(&p, buf, have, got < want, &used)) || got < want)
            break;
        if (have - used > QKC_TUNE_DB_MAX_LINE) {
            char why[64];
            p.line++;
            snprintf(why, sizeof why, "line longer than %d bytes", QKC_TUNE_DB_MAX_LINE);
            st = parse_error(&p, why);
            break;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    close(fd);
    qkc_free(db->ctx, buf);
    st = tx_end(db, st);
    if (!st)
        snprintf(db->path, sizeof db->path, "%s", path);
    return st;
}

qkc_status qkc_tune_db_load(qkc_tune_db *db, const char *path)
{
    return qkc_tune_db_load_file(db, path, 0);
}

/* -------------------------------------------------------------- saving */

/* The file's order: spec, bucket, features, version (the key: a total
 * order, so the file does not depend on the order of adding). */
static int entry_order(const qkc_tune_db *db, uint32_t ia, uint32_t ib)
{
    const db_entry *a = &db->entries[ia], *b = &db->entries[ib];
    int c = a->spec == b->spec ? 0 : strcmp(spec_text(db, a->spec), spec_text(db, b->spec));
    if (!c)
        c = a->bucket - b->bucket;
    if (!c && a->features != b->features)
        c = strcmp(str_at(db, a->features), str_at(db, b->features));
    if (!c && a->version != b->version)
        c = strcmp(str_at(db, a->version), str_at(db, b->version));
    return c;
}

/* Sort entry indices v[0..n) by entry_order: a bottom-up merge sort
 * through tmp[0..n) (qsort may take its buffer from malloc). */
static void sort_entries(const qkc_tune_db *db, uint32_t *v, uint32_t *tmp, size_t n)
{
    uint32_t *from = v, *to = tmp, *t;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                to[k++] = entry_order(db, from[i], from[j]) <= 0 ? from[i++] : from[j++];
            while (i < mid)
                to[k++] = from[i++];
            while (j < hi)
                to[k++] = from[j++];
        }
        t = from, from = to, to = t;
    }
    if (from != v)
        memcpy(v, from, n * sizeof *v);
}

/* Bytes of an entry's line beyond its strings: keys, tabs, the schedule
 * (six values of at most 7 digits) and two numbers of at most 1e12 with
 * three decimals. */
enum { LINE_FIXED = 256 };

qkc_status qkc_tune_db_save(const qkc_tune_db *db, const char *path)
{
    static const char header[] = "qkc-tune 1\n# qkc tuning database (docs/tuning.md): one entry per line, "
                                 "tab-separated key=value fields\n";
    size_t cap = sizeof header, len;
    char *buf;
    uint32_t *order;
    qkc_status st;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!path)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_save: path is NULL");
    if (!(order = qkc_alloc(db->ctx, ((size_t)db->count * 2 + 1) * sizeof *order)))
        return no_memory(db);
    for (uint32_t i = 0; i < db->count; i++) {
        const db_entry *e = &db->entries[i];
        order[i] = i;
        /* cannot overflow: at most 2^28 lines of at most 1 KiB + LINE_FIXED */
        cap += strlen(spec_text(db, e->spec)) + strlen(str_at(db, e->target)) + strlen(str_at(db, e->features)) +
               strlen(str_at(db, e->version)) + strlen(str_at(db, e->date)) + LINE_FIXED;
    }
    sort_entries(db, order, order + db->count, db->count);
    if (!(buf = qkc_alloc(db->ctx, cap))) {
        qkc_free(db->ctx, order);
        return no_memory(db);
    }
    memcpy(buf, header, sizeof header - 1);
    len = sizeof header - 1;
    for (uint32_t i = 0; i < db->count; i++) {
        const db_entry *e = &db->entries[order[i]];
        char sched[128];
        int n;
        qkc_schedule_print(&e->schedule, sched, sizeof sched);
        n = snprintf(buf + len, cap - len,
                     "spec=%s\tm=%s\ttarget=%s\tfeatures=%s\tqkc=%s\tschedule=%s\tus=%.3f\tdefault_us=%.3f\tdate=%s\n",
                     spec_text(db, e->spec), buckets[e->bucket], str_at(db, e->target), str_at(db, e->features),
                     str_at(db, e->version), sched, e->us, e->default_us, str_at(db, e->date));
        if (n < 0 || (size_t)n >= cap - len) { /* the bound above is wrong: a bug */
            qkc_free(db->ctx, order);
            qkc_free(db->ctx, buf);
            return qkc_fail(db->ctx, QKC_ERR_INTERNAL, "qkc_tune_db_save: line %u does not fit its bound", i + 1);
        }
        len += (size_t)n;
    }
    qkc_free(db->ctx, order);
    /* temporary file, fsync, rename, directory fsync: the old file or the
     * whole new one, whatever happens */
    st = qkc_io_write_atomic(db->ctx, path, buf, len, 0644);
    qkc_free(db->ctx, buf);
    return st;
}

/* ----------------------------------------------------- adding, merging */

qkc_status qkc_tune_db_add(qkc_tune_db *db, const qkc_tune_entry *entry)
{
    db_entry e;
    char why[320];
    const char *version, *date;
    char day[16];
    int b;
    qkc_status st;
    if (!db)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!entry || !entry->spec || !entry->m_bucket || !entry->target || !entry->features)
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_add: NULL field");
    version = entry->version ? entry->version : qkc_version_string();
    date = entry->date;
    if (!date) {
        today(day, sizeof day);
        date = day;
    }
    b = bucket_index_n(entry->m_bucket, strlen(entry->m_bucket));
    /* what a file may hold, so that every saved database loads again */
    if (b < 0 || !text_field_ok(entry->target, strlen(entry->target), TARGET_MAX, 1) ||
        !text_field_ok(entry->features, strlen(entry->features), FEATURES_MAX, 0) ||
        !text_field_ok(version, strlen(version), VERSION_MAX, 1) || !text_field_ok(date, strlen(date), DATE_MAX, 0) ||
        !us_ok(entry->us) || !us_ok(entry->default_us) || !schedule_ok(&entry->schedule))
        return qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_tune_db_add: a field is malformed or too long (times are 0..1e12 us, schedule "
                        "values 0..1048576)");
    memset(&e, 0, sizeof e);
    if ((st = spec_of(db, entry->spec, strlen(entry->spec), &e.spec, why, sizeof why)))
        return st == QKC_ERR_CORRUPT_DATA ? qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_add: %s", why)
                                          : st;
    e.bucket = (uint8_t)b;
    if ((st = str_intern(db, entry->target, strlen(entry->target), &e.target)) ||
        (st = str_intern(db, entry->features, strlen(entry->features), &e.features)) ||
        (st = str_intern(db, version, strlen(version), &e.version)) ||
        (st = str_intern(db, date, strlen(date), &e.date)))
        return st;
    e.schedule = entry->schedule;
    e.us = entry->us;
    e.default_us = entry->default_us;
    return put(db, &e);
}

/* The id in db of string `id` of src. */
static qkc_status str_copy(qkc_tune_db *db, const qkc_tune_db *src, uint32_t id, uint32_t *out)
{
    const char *t = str_at(src, id);
    return str_intern(db, t, strlen(t), out);
}

qkc_status qkc_tune_db_merge(qkc_tune_db *db, const qkc_tune_db *src)
{
    qkc_status st = QKC_OK;
    uint32_t n;
    if (!db || !src)
        return db ? qkc_fail(db->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune_db_merge: NULL argument")
                  : QKC_ERR_INVALID_ARGUMENT;
    if (db == src) /* every entry is already there, with its own time */
        return QKC_OK;
    n = src->count;
    tx_begin(db);
    for (uint32_t i = 0; i < n && !st; i++) {
        const db_entry *s = &src->entries[i];
        db_entry e = *s;
        const char *t = spec_text(src, s->spec);
        if ((st = spec_intern(db, t, strlen(t), &e.spec)) || (st = str_copy(db, src, s->target, &e.target)) ||
            (st = str_copy(db, src, s->features, &e.features)) || (st = str_copy(db, src, s->version, &e.version)) ||
            (st = str_copy(db, src, s->date, &e.date)))
            break;
        st = put(db, &e);
    }
    return tx_end(db, st);
}

/* ------------------------------------------------------------ queries */

int qkc_tune_db_count(const qkc_tune_db *db)
{
    return db ? (int)db->count : 0;
}

qkc_status qkc_tune_db_get(const qkc_tune_db *db, int index, qkc_tune_entry *out)
{
    const db_entry *e;
    if (!db || !out || index < 0 || (uint32_t)index >= db->count)
        return QKC_ERR_INVALID_ARGUMENT;
    e = &db->entries[index];
    out->spec = spec_text(db, e->spec);
    out->m_bucket = buckets[e->bucket];
    out->target = str_at(db, e->target);
    out->features = str_at(db, e->features);
    out->version = str_at(db, e->version);
    out->schedule = e->schedule;
    out->us = e->us;
    out->default_us = e->default_us;
    out->date = str_at(db, e->date);
    return QKC_OK;
}

qkc_status qkc_tune_db_lookup_features(qkc_tune_db *db, const char *spec, int64_t m, const char *features,
                                       qkc_schedule *out, int *found)
{
    const char *version = qkc_version_string();
    const str_slot *sl = str_find(db, spec, strlen(spec)), *fs, *vs;
    int bucket = bucket_of(m);
    uint32_t feats, vers;
    *found = 0;
    if (!sl || !sl->spec)
        return QKC_OK;
    fs = str_find(db, features, strlen(features));
    vs = str_find(db, version, strlen(version));
    feats = fs ? fs->offset : STR_NONE;
    vers = vs ? vs->offset : STR_NONE;
    /* The spec's chain holds its entries of every bucket, features and
     * version: a handful. The exact key could be found through the key
     * table too, but the others of its bucket are noted as stale. */
    for (uint32_t i = db->specs[sl->spec - 1].head; i; i = db->entries[i - 1].next) {
        db_entry *e = &db->entries[i - 1];
        int warn;
        if (e->bucket != bucket)
            continue;
        if (e->features == feats && e->version == vers) {
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
                     *db->path ? " " : "", db->path, spec_text(db, e->spec), buckets[e->bucket],
                     str_at(db, e->version), str_at(db, e->features), version, features);
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
    if (qkc_target_resolve(qkc_config_target(db->ctx, target), 0, &t, &diag))
        return qkc_fail_diag(db->ctx, &diag);
    qkc_matmul_print(&spec->mm, text, sizeof text);
    qkc_target_features_string(t.arch, t.features, feats, sizeof feats);
    return qkc_tune_db_lookup_features(db, text, m, feats, out, found);
}

/* ------------------------------------------------ the context's database */

/* The context's slot holds this even when the database could not be
 * read, so the load (and its warning) happens once. */
typedef struct ctx_tune_db {
    qkc_context *ctx;
    qkc_tune_db *db;
} ctx_tune_db;

static void ctx_tune_db_destroy(void *state)
{
    ctx_tune_db *c = state;
    qkc_context *ctx = c->ctx;
    qkc_tune_db_destroy(c->db);
    qkc_free(ctx, c);
}

static void *ctx_tune_db_create(qkc_context *ctx, qkc_status *st)
{
    const char *path = qkc_context_tune_db_path(ctx);
    char saved[1024];
    ctx_tune_db *c = qkc_calloc(ctx, 1, sizeof *c);
    if (!c) {
        *st = QKC_ERR_NO_MEMORY;
        return NULL;
    }
    c->ctx = ctx;
    if (!path)
        return c;
    /* A failed load must not leave its message as the caller's error. */
    qkc_context_copy_error(ctx, saved, sizeof saved);
    if (qkc_tune_db_create(ctx, &c->db) == QKC_OK && qkc_tune_db_load(c->db, path) != QKC_OK) {
        char msg[1024];
        qkc_context_copy_error(ctx, msg, sizeof msg);
        qkc_warn(ctx, "tuning database not used, kernels get the heuristic's schedules: %s", msg);
        qkc_tune_db_destroy(c->db);
        c->db = NULL;
    }
    qkc_fail(ctx, QKC_OK, "%s", saved);
    return c;
}

qkc_tune_db *qkc_context_tune_db(qkc_context *ctx)
{
    qkc_status st;
    ctx_tune_db *c = qkc_context_slot(ctx, QKC_SLOT_TUNE_DB, ctx_tune_db_create, ctx_tune_db_destroy, &st);
    return c ? c->db : NULL;
}
