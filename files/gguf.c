/*
 * GGUF reader (formats.md §1): header, metadata of every value type,
 * tensor infos, alignment and data offsets, over a buffer already in
 * memory (file.c maps the file). Every count, length and offset is checked
 * against the bytes that remain before it is used, so a hostile file can
 * make the reader fail but never read outside the buffer or allocate more
 * than the file could describe.
 *
 * Rules taken from ggml's own reader: versions 2 and 3 (1 is obsolete,
 * byte-swapped files are refused), no empty or duplicate keys, no nested
 * arrays, BOOL is 0 or 1, general.alignment a UINT32 power of two (default
 * 32), tensor names under 64 bytes and unique, at most 4 dimensions,
 * ne[0] a multiple of the type's block, offsets multiples of the
 * alignment. qkc also refuses tensors whose data overlap or leave the file
 * (ggml demands exact packing in declaration order; qkc accepts any
 * non-overlapping placement).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "files/file.h"

/* ---------------------------------------------------------- ggml types */

typedef struct ggml_type_row {
    const char *name;  /* NULL: the id was removed from ggml */
    int blck;          /* elements per block */
    int bytes;         /* bytes per block */
    const char *qkc;   /* spec fragment of a dense type qkc runs, else NULL */
    const char *why;   /* why qkc does not run it (without a qkc preset) */
} ggml_type_row;

#define GGML_TYPE_COUNT 43

static const ggml_type_row ggml_types[GGML_TYPE_COUNT] = {
    [0] = {"F32", 1, 4, "w=f32", NULL},
    [1] = {"F16", 1, 2, "w=f16", NULL},
    [2] = {"Q4_0", 32, 18, NULL, NULL},
    [3] = {"Q4_1", 32, 20, NULL, NULL},
    [6] = {"Q5_0", 32, 22, NULL, NULL},
    [7] = {"Q5_1", 32, 24, NULL, NULL},
    [8] = {"Q8_0", 32, 34, NULL, NULL},
    [9] = {"Q8_1", 32, 36, NULL, "Q8_1 is ggml's activation format, not a weight format"},
    [10] = {"Q2_K", 256, 84, NULL, NULL},
    [11] = {"Q3_K", 256, 110, NULL, NULL},
    [12] = {"Q4_K", 256, 144, NULL, NULL},
    [13] = {"Q5_K", 256, 176, NULL, NULL},
    [14] = {"Q6_K", 256, 210, NULL, NULL},
    [15] = {"Q8_K", 256, 292, NULL, "Q8_K is ggml's activation format, not a weight format"},
    [16] = {"IQ2_XXS", 256, 66, NULL, "qkc has no grid-based IQ formats"},
    [17] = {"IQ2_XS", 256, 74, NULL, "qkc has no grid-based IQ formats"},
    [18] = {"IQ3_XXS", 256, 98, NULL, "qkc has no grid-based IQ formats"},
    [19] = {"IQ1_S", 256, 50, NULL, "qkc has no grid-based IQ formats"},
    [20] = {"IQ4_NL", 32, 18, NULL, NULL},
    [21] = {"IQ3_S", 256, 110, NULL, "qkc has no grid-based IQ formats"},
    [22] = {"IQ2_S", 256, 82, NULL, "qkc has no grid-based IQ formats"},
    [23] = {"IQ4_XS", 256, 136, NULL, NULL},
    [24] = {"I8", 1, 1, NULL, "integer tensor (not a weight matrix format)"},
    [25] = {"I16", 1, 2, NULL, "integer tensor (not a weight matrix format)"},
    [26] = {"I32", 1, 4, NULL, "integer tensor (not a weight matrix format)"},
    [27] = {"I64", 1, 8, NULL, "integer tensor (not a weight matrix format)"},
    [28] = {"F64", 1, 8, NULL, "qkc has no f64 weights"},
    [29] = {"IQ1_M", 256, 56, NULL, "qkc has no grid-based IQ formats"},
    [30] = {"BF16", 1, 2, "w=bf16", NULL},
    [34] = {"TQ1_0", 256, 54, NULL, NULL},
    [35] = {"TQ2_0", 256, 66, NULL, NULL},
    [39] = {"MXFP4", 32, 17, NULL, NULL},
    [40] = {"NVFP4", 64, 36, NULL, "qkc has no nvfp4 preset yet"},
    [41] = {"Q1_0", 128, 18, NULL, "qkc has no q1_0 preset yet"},
    [42] = {"Q2_0", 64, 18, NULL, "qkc has no q2_0 preset yet"},
};

/* "w=KEYWORD" of each preset, in static storage: a ggml type runs as the
 * preset whose ggml_type it is (presets.def). */
static const char *const preset_weights[QKC_PRESET_END_] = {
#define QKC_PRESET(NAME, ID, KW, ...) [QKC_PRESET_##NAME] = "w=" KW,
#include "ir/presets.def"
#undef QKC_PRESET
};

/* -------------------------------------------------------------- cursor */

typedef struct cursor {
    qkc_file *f;
    const uint8_t *p;
    uint64_t size, pos;
} cursor;

#define FAIL(c, st, ...) qkc_fail((c)->f->ctx, st, __VA_ARGS__)

/* n bytes available at the cursor? Otherwise report a truncation. */
static qkc_status need(cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return FAIL(c, QKC_ERR_CORRUPT_DATA,
                    "gguf: %s: truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64 ", the file has %" PRIu64,
                    c->f->path, what, n, c->pos, c->size);
    return QKC_OK;
}

static uint64_t le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Outputs are written on every path (0, NULL on failure), so callers'
 * variables are never read uninitialised, and compilers see it. */
static qkc_status rd(cursor *c, int bytes, uint64_t *v, const char *what)
{
    qkc_status st = need(c, (uint64_t)bytes, what);
    *v = 0;
    if (st)
        return st;
    *v = le(c->p + c->pos, bytes);
    c->pos += (uint64_t)bytes;
    return QKC_OK;
}

/* A gguf_string_t: uint64 length, bytes. *s points into the buffer. */
static qkc_status rd_str(cursor *c, const char **s, uint64_t *len, const char *what)
{
    qkc_status st;
    *s = NULL;
    if ((st = rd(c, 8, len, what)))
        return st;
    if (*len > c->size - c->pos)
        return FAIL(c, QKC_ERR_CORRUPT_DATA,
                    "gguf: %s: %s: string length %" PRIu64 " at offset %" PRIu64 " runs past the end of the file (%" PRIu64
                    " bytes)",
                    c->f->path, what, *len, c->pos - 8, c->size);
    *s = (const char *)(c->p + c->pos);
    c->pos += *len;
    return QKC_OK;
}

/* ------------------------------------------------------------ metadata */

static const char *const value_type_names[13] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
static const int value_sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Format a scalar of type t at p (its bytes known to be in range). */
static void scalar_text(int t, const uint8_t *p, char *buf, size_t size)
{
    uint64_t v = le(p, value_sizes[t]);
    switch (t) {
    case 0: case 2: case 4: case 10: snprintf(buf, size, "%" PRIu64, v); break;
    case 1: snprintf(buf, size, "%d", (int)(int8_t)v); break;
    case 3: snprintf(buf, size, "%d", (int)(int16_t)v); break;
    case 5: snprintf(buf, size, "%" PRId32, (int32_t)(uint32_t)v); break;
    case 11: snprintf(buf, size, "%" PRId64, (int64_t)v); break;
    case 6: {
        uint32_t u = (uint32_t)v;
        float x;
        memcpy(&x, &u, 4);
        snprintf(buf, size, "%.9g", (double)x);
        break;
    }
    case 12: {
        double x;
        memcpy(&x, &v, 8);
        snprintf(buf, size, "%.17g", x);
        break;
    }
    case 7: snprintf(buf, size, "%s", v ? "true" : "false"); break;
    default: buf[0] = '\0'; break;
    }
}

/* One value of type t (not an array); text receives its printable form
 * when text != NULL. */
static qkc_status rd_value(cursor *c, int t, const char *key, char *text, size_t text_size, const char **str,
                           uint64_t *str_len)
{
    qkc_status st;
    if (t == 8) {
        const char *s;
        uint64_t len;
        if ((st = rd_str(c, &s, &len, key)))
            return st;
        if (str)
            *str = s, *str_len = len;
        return QKC_OK;
    }
    if ((st = need(c, (uint64_t)value_sizes[t], key)))
        return st;
    if (t == 7 && c->p[c->pos] > 1)
        return FAIL(c, QKC_ERR_CORRUPT_DATA, "gguf: %s: key '%s': bool value %u at offset %" PRIu64 " is neither 0 nor 1",
                    c->f->path, key, c->p[c->pos], c->pos);
    if (text)
        scalar_text(t, c->p + c->pos, text, text_size);
    c->pos += (uint64_t)value_sizes[t];
    return QKC_OK;
}

/* Keys by their bytes (a key may hold NUL bytes). */
static int cmp_key(const void *a, const void *b)
{
    const qkc_file_meta_rec *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->key_bytes < y->key_bytes ? x->key_bytes : y->key_bytes);
    return c ? c : (x->key_bytes > y->key_bytes) - (x->key_bytes < y->key_bytes);
}

static int key_is(const qkc_file_meta_rec *m, const char *word)
{
    return m->key_bytes == strlen(word) && !memcmp(m->key, word, m->key_bytes);
}

static qkc_status read_metadata(cursor *c, uint64_t nkv)
{
    qkc_file *f = c->f;
    qkc_status st;
    size_t cap = 0;
    f->alignment = 32;
    for (uint64_t i = 0; i < nkv; i++) {
        qkc_file_meta_rec *m;
        const char *ks, *sv = NULL;
        uint64_t klen, type, svlen = 0;
        char what[48], text[64];
        if (qkc_file_grow(f, (void **)&f->meta, &cap, sizeof *f->meta, i))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: %s: out of memory for metadata", f->path);
        m = &f->meta[i];
        snprintf(what, sizeof what, "metadata key %" PRIu64, i);
        if ((st = rd_str(c, &ks, &klen, what)))
            return st;
        if (klen == 0)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: metadata entry %" PRIu64 " has an empty key", f->path, i);
        if (klen > 65535)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: metadata key %" PRIu64 " is %" PRIu64
                            " bytes long (at most 65535)", f->path, i, klen);
        if (!(m->key = qkc_file_strdup(f, ks, (size_t)klen)))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: out of memory");
        m->key_bytes = (size_t)klen;
        if ((st = rd(c, 4, &type, m->key)))
            return st;
        if (type > 12)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: key '%s': unknown value type %" PRIu64 " (0..12)",
                            f->path, m->key, type);
        m->type = value_type_names[type];
        m->count = 1;
        text[0] = '\0';
        if (type == 9) {
            uint64_t et, count;
            if ((st = rd(c, 4, &et, m->key)) || (st = rd(c, 8, &count, m->key)))
                return st;
            if (et > 12)
                return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                "gguf: %s: key '%s': unknown array element type %" PRIu64, f->path, m->key, et);
            if (et == 9)
                return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: key '%s': nested arrays are not allowed",
                                f->path, m->key);
            /* Each element takes at least one byte (strings eight). */
            if (count > (c->size - c->pos) / (et == 8 ? 8u : (uint64_t)value_sizes[et]))
                return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                "gguf: %s: key '%s': array of %" PRIu64 " %s elements does not fit in the %" PRIu64
                                " bytes left in the file",
                                f->path, m->key, count, value_type_names[et], c->size - c->pos);
            if (et == 8) {
                for (uint64_t j = 0; j < count; j++)
                    if ((st = rd_value(c, 8, m->key, NULL, 0, NULL, NULL)))
                        return st;
            } else if (et == 7) {
                for (uint64_t j = 0; j < count; j++)
                    if ((st = rd_value(c, 7, m->key, NULL, 0, NULL, NULL)))
                        return st;
            } else {
                c->pos += count * (uint64_t)value_sizes[et];
            }
            m->count = (int64_t)count;
            snprintf(text, sizeof text, "[%s x %" PRIu64 "]", value_type_names[et], count);
            m->text = qkc_file_strdup(f, text, strlen(text));
            m->text_bytes = strlen(text);
        } else {
            if ((st = rd_value(c, (int)type, m->key, text, sizeof text, &sv, &svlen)))
                return st;
            m->text_bytes = type == 8 ? (size_t)svlen : strlen(text);
            m->text = type == 8 ? qkc_file_strdup(f, sv, (size_t)svlen) : qkc_file_strdup(f, text, strlen(text));
            if (key_is(m, "general.alignment")) {
                uint64_t a;
                if (type != 4)
                    return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                    "gguf: %s: general.alignment has type %s; it must be u32", f->path, m->type);
                a = le(c->p + c->pos - 4, 4);
                if (a == 0 || (a & (a - 1)) != 0)
                    return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                    "gguf: %s: general.alignment %" PRIu64 " is not a power of two", f->path, a);
                f->alignment = a;
            }
        }
        if (!m->text)
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: out of memory");
        f->nmeta = (int64_t)i + 1;
    }
    /* Duplicate keys: sort a copy of the records (O(n log n), any count). */
    if (nkv > 1) {
        qkc_file_meta_rec *s = qkc_calloc(f->ctx, (size_t)nkv, sizeof *s);
        if (!s)
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: out of memory");
        memcpy(s, f->meta, (size_t)nkv * sizeof *s);
        qkc_sort(s, (size_t)nkv, sizeof *s, cmp_key);
        for (uint64_t i = 1; i < nkv; i++)
            if (!cmp_key(&s[i - 1], &s[i])) {
                st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: duplicate metadata key '%s'", f->path, s[i].key);
                qkc_free(f->ctx, s);
                return st;
            }
        qkc_free(f->ctx, s);
    }
    return QKC_OK;
}

/* --------------------------------------------------------------- tensors */

static qkc_status read_tensors(cursor *c, uint64_t nt)
{
    qkc_file *f = c->f;
    qkc_status st;
    uint64_t data_start, data_size;
    size_t cap = 0;
    for (uint64_t i = 0; i < nt; i++) {
        qkc_file_entry *t;
        const char *ns;
        uint64_t nlen, nd, type, off, ne[4] = {1, 1, 1, 1}, elems = 1, rows, row_bytes, bytes;
        qkc_preset preset;
        const char *weights;
        char what[48];
        if (qkc_file_grow(f, (void **)&f->tensors, &cap, sizeof *f->tensors, i))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: %s: out of memory for tensor infos", f->path);
        t = &f->tensors[i];
        snprintf(what, sizeof what, "tensor info %" PRIu64, i);
        t->part_of = -1;
        for (int r = 0; r < QKC_MEMBER_COUNT; r++)
            t->member[r] = -1;
        if ((st = rd_str(c, &ns, &nlen, what)))
            return st;
        if (nlen == 0 || nlen >= 64)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "gguf: %s: tensor %" PRIu64 ": name of %" PRIu64 " bytes (GGUF names have 1 to 63)", f->path, i,
                            nlen);
        /* ggml keeps names as C strings: one with a NUL byte would be
         * another tensor's name, or none. */
        if (memchr(ns, 0, (size_t)nlen))
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: tensor %" PRIu64 ": the name holds a NUL byte",
                            f->path, i);
        if (!(t->name = qkc_file_strdup(f, ns, (size_t)nlen)))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "gguf: out of memory");
        f->ntensors = (int64_t)i + 1;
        if ((st = rd(c, 4, &nd, t->name)))
            return st;
        if (nd < 1 || nd > 4)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: tensor '%s': %" PRIu64 " dimensions (1 to 4 allowed)",
                            f->path, t->name, nd);
        for (uint64_t d = 0; d < nd; d++) {
            if ((st = rd(c, 8, &ne[d], t->name)))
                return st;
            if (ne[d] > (uint64_t)INT64_MAX || !qkc_mul_u64(elems, ne[d], &elems) || elems > (uint64_t)INT64_MAX)
                return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                "gguf: %s: tensor '%s': dimensions overflow 64-bit element counts", f->path, t->name);
        }
        if ((st = rd(c, 4, &type, t->name)) || (st = rd(c, 8, &off, t->name)))
            return st;
        if (type >= GGML_TYPE_COUNT)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: tensor '%s': unknown ggml type id %" PRIu64
                            " (ids 0..%d)", f->path, t->name, type, GGML_TYPE_COUNT - 1);
        if (!ggml_types[type].name)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "gguf: %s: tensor '%s': ggml type id %" PRIu64 " was removed from ggml and cannot appear in a file",
                            f->path, t->name, type);
        t->dtype = ggml_types[type].name;
        t->n_dims = (int)nd;
        for (uint64_t d = 0; d < nd; d++)
            t->shape[d] = (int64_t)ne[nd - 1 - d];
        if (ne[0] % (uint64_t)ggml_types[type].blck != 0)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "gguf: %s: tensor '%s': ne[0]=%" PRIu64 " is not a multiple of the %s block of %d", f->path,
                            t->name, ne[0], t->dtype, ggml_types[type].blck);
        rows = elems / (ne[0] ? ne[0] : 1);
        if (ne[0] == 0)
            rows = 0;
        if (!qkc_mul_u64(ne[0] / (uint64_t)ggml_types[type].blck, (uint64_t)ggml_types[type].bytes, &row_bytes) ||
            !qkc_mul_u64(row_bytes, rows, &bytes))
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "gguf: %s: tensor '%s': byte size overflows", f->path, t->name);
        if (off % f->alignment != 0)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "gguf: %s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, f->path,
                            t->name, off, f->alignment);
        t->offset = off; /* relative for now */
        t->bytes = bytes;
        /* As a matrix: ne[0] = K (blocks run along it), the rest rows. */
        preset = qkc_preset_from_ggml_type((int)type);
        weights = preset != QKC_PRESET_NONE ? preset_weights[preset] : ggml_types[type].qkc;
        /* A 3-D tensor [E, N, K] (ggml ne = K, N, E) is a MoE expert stack:
         * E matrices, each a blob of its own, back to back. */
        if (weights && (nd == 1 || ne[3] != 1 || (ne[2] != 1 && (ne[0] == 0 || ne[1] == 0 || ne[2] == 0)))) {
            t->reason = nd == 1   ? "1-D tensor, not a matrix"
                        : nd == 4 ? "4-D tensor, not a matrix or a stack of experts"
                                  : "empty stack of experts";
        } else if (weights) {
            if ((st = qkc_file_set_matrix(f, t, (int64_t)ne[1], (int64_t)ne[0], weights, NULL)))
                return st;
            t->experts = (int64_t)ne[2];
            if (t->runnable && t->blob_bytes * ne[2] != t->bytes &&
                (st = qkc_file_reason(f, t, "internal: blob of %" PRIu64 " bytes for %" PRIu64 " in the file",
                                      t->blob_bytes, t->bytes / ne[2])))
                return st;
        } else {
            t->reason = ggml_types[type].why;
        }
    }
    /* The data section starts at the next multiple of the alignment. */
    data_start = c->pos + (f->alignment - c->pos % f->alignment) % f->alignment;
    if (nt > 0 && data_start > c->size)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "gguf: %s: truncated: the tensor data would start at offset %" PRIu64 ", past the end of the file (%" PRIu64
                        " bytes)",
                        f->path, data_start, c->size);
    data_size = nt > 0 ? c->size - data_start : 0;
    for (uint64_t i = 0; i < nt; i++) {
        qkc_file_entry *t = &f->tensors[i];
        if (t->offset > data_size || t->bytes > data_size - t->offset)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "gguf: %s: tensor '%s': data [%" PRIu64 ", +%" PRIu64 ") lies outside the %" PRIu64
                            " bytes of tensor data in the file",
                            f->path, t->name, t->offset, t->bytes, data_size);
        t->offset += data_start;
    }
    if ((st = qkc_file_check_overlap(f, "gguf")))
        return st;
    return qkc_file_index_names(f, "gguf");
}

qkc_status qkc_gguf_read(qkc_file *f)
{
    cursor c = {f, f->data, f->size, 0};
    uint64_t magic, version, nt, nkv;
    qkc_status st;
    f->kind = QKC_FILE_GGUF;
    if ((st = rd(&c, 4, &magic, "the magic")))
        return st;
    if (magic != 0x46554747u)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "gguf: %s: bad magic %02x %02x %02x %02x (a GGUF file starts with 'GGUF')", f->path, f->data[0],
                        f->data[1], f->data[2], f->data[3]);
    if ((st = rd(&c, 4, &version, "the version")))
        return st;
    if ((version & 0xFFFFu) == 0 && version != 0)
        return qkc_fail(f->ctx, QKC_ERR_UNSUPPORTED,
                        "gguf: %s: version field 0x%08" PRIx64 " looks byte-swapped: big-endian GGUF files are not supported",
                        f->path, version);
    if (version == 1)
        return qkc_fail(f->ctx, QKC_ERR_UNSUPPORTED, "gguf: %s: GGUF version 1 is obsolete (versions 2 and 3 are read)",
                        f->path);
    if (version != 2 && version != 3)
        return qkc_fail(f->ctx, QKC_ERR_UNSUPPORTED, "gguf: %s: unknown GGUF version %" PRIu64 " (versions 2 and 3 are read)",
                        f->path, version);
    f->version = (int)version;
    if ((st = rd(&c, 8, &nt, "the tensor count")) || (st = rd(&c, 8, &nkv, "the metadata count")))
        return st;
    /* A tensor info takes at least 8+1+4+8+4+8 bytes, a metadata entry 8+1+4+1. */
    if (nt > (c.size - c.pos) / 33)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "gguf: %s: tensor count %" PRIu64 " is more than the %" PRIu64 "-byte file can describe", f->path, nt,
                        c.size);
    if (nkv > (c.size - c.pos) / 14)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "gguf: %s: metadata count %" PRIu64 " is more than the %" PRIu64 "-byte file can describe", f->path, nkv,
                        c.size);
    if (nt > (uint64_t)QKC_MAX_FILE_TENSORS || nkv > (uint64_t)QKC_MAX_FILE_TENSORS)
        return qkc_fail(f->ctx, QKC_ERR_LIMIT,
                        "gguf: %s: %" PRIu64 " tensors and %" PRIu64 " metadata entries: qkc reads at most %lld of each "
                        "(QKC_MAX_FILE_TENSORS)",
                        f->path, nt, nkv, (long long)QKC_MAX_FILE_TENSORS);
    if ((st = read_metadata(&c, nkv)))
        return st;
    return read_tensors(&c, nt);
}
