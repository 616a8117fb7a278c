/*
 * safetensors reader (formats.md §8): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
 * then the data; offsets are relative to the end of the header, shapes are
 * row-major (not reversed as in GGUF).
 *
 * The header is read by a strict streaming JSON reader of its own (RFC
 * 8259: UTF-8 checked, no \u0000, integers kept exact, nothing after the
 * object but whitespace) straight into the tensor table: time and memory
 * are linear in the header (at most 100 MiB, at most QKC_MAX_FILE_TENSORS
 * tensors), with every allocation from the context allocator and no parse
 * tree. Keys a tensor object does not need are checked and skipped.
 *
 * Importers: GPTQ (qweight, qzeros, scales, g_idx; v1 zero − 1 and v2),
 * AWQ gemm (qweight, qzeros, scales) and bitsandbytes NF4 (weight, absmax,
 * quant_map, nested_absmax, nested_quant_map, quant_state JSON). The
 * tensors of one quantized weight become one runnable entry, named by its
 * qweight / weight tensor; the other tensors are listed as its parts. The
 * quant_state JSON (one small tensor per weight, at most 1 MiB) is parsed
 * with jansson, which allocates with its own process-wide malloc hooks
 * (never changed by qkc) and is freed before the reader returns.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "files/file.h"
#include "ir/dtype.h"
#include "formats/ref.h"

typedef struct st_dtype {
    const char *name;
    int bits;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", 8},    {"U8", 8},      {"I8", 8},      {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
    {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},   {"I32", 32},    {"U32", 32},
    {"F32", 32},    {"F64", 64},    {"I64", 64},    {"U64", 64},    {"F4", 4},      {"F6_E2M3", 6},
    {"F6_E3M2", 6},
};

#define MAX_HEADER (100u << 20) /* the safetensors library's own limit */
#define MAX_DEPTH 128           /* nesting of the values a tensor object may carry beside its own */

static const st_dtype *dtype_of(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strlen(st_dtypes[i].name) == len && !memcmp(st_dtypes[i].name, s, len))
            return &st_dtypes[i];
    return NULL;
}

/* ------------------------------------------------------------ header JSON */

typedef struct jreader {
    qkc_file *f;
    const uint8_t *base, *p, *end; /* the header */
    char *buf;                     /* strings with escapes, decoded */
    size_t len, cap;
    int depth;
} jreader;

/* A syntax error at `at`, located by line and column (counted only now). */
static qkc_status jfail(jreader *r, const uint8_t *at, const char *what)
{
    int line = 1, col = 1;
    for (const uint8_t *q = r->base; q < at && q < r->end; q++) {
        if (*q == '\n')
            line++, col = 1;
        else
            col++;
    }
    return qkc_fail(r->f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: header JSON, line %d column %d: %s", r->f->path,
                    line, col, what);
}

static void jws(jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Expect character c (after whitespace). */
static qkc_status jexpect(jreader *r, char c, const char *what)
{
    jws(r);
    if (r->p >= r->end || *r->p != (uint8_t)c)
        return jfail(r, r->p, what);
    r->p++;
    return QKC_OK;
}

/* Length of the valid UTF-8 sequence at p (no overlongs, surrogates or
 * code points past U+10FFFF), or 0. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
    uint32_t c = p[0], min;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, c &= 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, c &= 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, c &= 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3Fu);
    }
    return c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) ? 0 : n;
}

static qkc_status jput(jreader *r, const void *p, size_t n)
{
    if (n == 0)
        return QKC_OK; /* an escape first in a string: nothing to copy, maybe no buffer yet */
    if (r->cap - r->len < n) {
        size_t cap = r->cap ? r->cap : 256;
        char *b;
        while (cap - r->len < n)
            cap *= 2;
        if (!(b = qkc_alloc(r->f->ctx, cap)))
            return qkc_fail(r->f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory reading the header",
                            r->f->path);
        if (r->len)
            memcpy(b, r->buf, r->len);
        qkc_free(r->f->ctx, r->buf);
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return QKC_OK;
}

static int hex4(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    *v = 0;
    if (end - p < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        uint32_t c = p[i], d = 16;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        if (d > 15)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* One escape after the backslash at q, appended decoded; *next past it. */
static qkc_status jescape(jreader *r, const uint8_t *q, const uint8_t **next)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;
    uint32_t c, lo;
    uint8_t u[4];
    size_t n;
    if (q + 1 >= r->end)
        return jfail(r, q, "unterminated string");
    if (q[1] != 'u') {
        if (!q[1] || !(hit = strchr(from, q[1])))
            return jfail(r, q, "invalid escape in a string");
        *next = q + 2;
        return jput(r, &to[hit - from], 1);
    }
    if (!hex4(q + 2, r->end, &c))
        return jfail(r, q, "invalid \\u escape");
    *next = q + 6;
    if (c >= 0xDC00 && c <= 0xDFFF)
        return jfail(r, q, "invalid Unicode escape (a lone low surrogate)");
    if (c >= 0xD800 && c <= 0xDBFF) {
        if (r->end - *next < 6 || (*next)[0] != '\\' || (*next)[1] != 'u' || !hex4(*next + 2, r->end, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return jfail(r, q, "invalid Unicode escape (a high surrogate without its low half)");
        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
        *next += 6;
    }
    if (c == 0)
        return jfail(r, q, "\\u0000 is not allowed in a string");
    if (c < 0x80)
        u[0] = (uint8_t)c, n = 1;
    else if (c < 0x800)
        u[0] = (uint8_t)(0xC0 | c >> 6), u[1] = (uint8_t)(0x80 | (c & 0x3F)), n = 2;
    else if (c < 0x10000)
        u[0] = (uint8_t)(0xE0 | c >> 12), u[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), u[2] = (uint8_t)(0x80 | (c & 0x3F)),
        n = 3;
    else
        u[0] = (uint8_t)(0xF0 | c >> 18), u[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F)),
        u[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), u[3] = (uint8_t)(0x80 | (c & 0x3F)), n = 4;
    return jput(r, u, n);
}

/* A string at r->p (after whitespace). *s is valid until the next string
 * is read: the header's own bytes, or the decoded copy when it has escapes.
 * No NUL can be in it (\u0000 is refused). */
static qkc_status jstring(jreader *r, const char **s, size_t *len)
{
    const uint8_t *q, *start;
    int escaped = 0;
    qkc_status st;
    jws(r);
    if (r->p >= r->end || *r->p != '"')
        return jfail(r, r->p, "expected a string");
    q = start = r->p + 1;
    r->len = 0;
    for (;;) {
        uint8_t c;
        if (q >= r->end)
            return jfail(r, r->p, "unterminated string");
        c = *q;
        if (c == '"')
            break;
        if (c < 0x20)
            return jfail(r, q, "control character in a string (escape it)");
        if (c == '\\') {
            if (!escaped && (st = jput(r, start, (size_t)(q - start))))
                return st;
            escaped = 1;
            if ((st = jescape(r, q, &q)))
                return st;
            continue;
        }
        {
            size_t n = c < 0x80 ? 1 : utf8_seq(q, r->end);
            if (!n)
                return jfail(r, q, "invalid UTF-8 in a string");
            if (escaped && (st = jput(r, q, n)))
                return st;
            q += n;
        }
    }
    if (escaped) {
        *s = r->buf;
        *len = r->len;
    } else {
        *s = (const char *)start;
        *len = (size_t)(q - start);
    }
    r->p = q + 1;
    return QKC_OK;
}

/* A number at r->p: *is_int says whether it is an integer (no fraction or
 * exponent), then in *v. Integers outside int64 are refused. */
static qkc_status jnumber(jreader *r, int *is_int, int64_t *v)
{
    const uint8_t *q = r->p, *start = r->p;
    uint64_t mag = 0;
    int neg = 0, over = 0;
    if (q < r->end && *q == '-')
        neg = 1, q++;
    if (q >= r->end || *q < '0' || *q > '9')
        return jfail(r, start, "invalid number");
    if (*q == '0') {
        q++;
        if (q < r->end && *q >= '0' && *q <= '9')
            return jfail(r, start, "invalid number (a leading zero)");
    } else {
        while (q < r->end && *q >= '0' && *q <= '9') {
            unsigned d = (unsigned)(*q++ - '0');
            if (mag > (UINT64_MAX - d) / 10)
                over = 1;
            else
                mag = mag * 10 + d;
        }
    }
    *is_int = 1;
    if (q < r->end && *q == '.') {
        *is_int = 0;
        if (++q >= r->end || *q < '0' || *q > '9')
            return jfail(r, start, "invalid number");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return jfail(r, start, "invalid number");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (*is_int) {
        if (over || mag > (uint64_t)INT64_MAX + (uint64_t)neg)
            return jfail(r, start, "integer out of range (64 bits)");
        *v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    }
    r->p = q;
    return QKC_OK;
}

static qkc_status jskip(jreader *r);

/* The members of a container after its opening bracket, each passed to
 * skip (objects: a key first). */
static qkc_status jskip_members(jreader *r, int object)
{
    char close = object ? '}' : ']';
    qkc_status st;
    const char *k;
    size_t kl;
    jws(r);
    if (r->p < r->end && *r->p == (uint8_t)close) {
        r->p++;
        return QKC_OK;
    }
    for (;;) {
        if (object && ((st = jstring(r, &k, &kl)) || (st = jexpect(r, ':', "expected ':'"))))
            return st;
        if ((st = jskip(r)))
            return st;
        jws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return jexpect(r, close, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* Check and step over any value. */
static qkc_status jskip(jreader *r)
{
    static const char *const words[] = {"true", "false", "null"};
    qkc_status st;
    jws(r);
    if (r->p >= r->end)
        return jfail(r, r->p, "unexpected end of the header");
    switch (*r->p) {
    case '"': {
        const char *s;
        size_t n;
        return jstring(r, &s, &n);
    }
    case '{':
    case '[':
        if (r->depth >= MAX_DEPTH)
            return jfail(r, r->p, "nested too deeply");
        r->depth++;
        r->p++;
        st = jskip_members(r, r->p[-1] == '{');
        r->depth--;
        return st;
    case '-':
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9': {
        int is_int;
        int64_t v;
        return jnumber(r, &is_int, &v);
    }
    default:
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(words[i]);
            if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, words[i], n)) {
                r->p += n;
                return QKC_OK;
            }
        }
        return jfail(r, r->p, "invalid value");
    }
}

/* An array of integers: the first `cap` elements into v[] with ok[i] set
 * when the element is a non-negative integer; *count receives the length;
 * *is_array 0 (and nothing read) when the value is not an array. */
static qkc_status jint_array(jreader *r, int *is_array, uint64_t *v, int *ok, size_t cap, size_t *count)
{
    qkc_status st;
    *count = 0;
    jws(r);
    if (r->p >= r->end || *r->p != '[') {
        *is_array = 0;
        return jskip(r);
    }
    *is_array = 1;
    r->p++;
    jws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return QKC_OK;
    }
    for (;;) {
        int is_int = 0, good = 0;
        int64_t x = 0;
        jws(r);
        if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))) {
            if ((st = jnumber(r, &is_int, &x)))
                return st;
            good = is_int && x >= 0;
        } else if ((st = jskip(r))) {
            return st;
        }
        if (*count < cap) {
            v[*count] = good ? (uint64_t)x : 0;
            ok[*count] = good;
        }
        ++*count;
        jws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return jexpect(r, ']', "expected ',' or ']'");
    }
}

/* One tensor object: its fields as read, checked afterwards in a fixed
 * order so the message does not depend on the order of the keys. */
typedef struct jtensor {
    int is_object, has_dtype, has_shape, has_offsets;
    const st_dtype *dtype;
    char dtype_text[48];  /* an unknown dtype, for the message */
    size_t nd, noffs;
    uint64_t shape[4], offs[2];
    int shape_ok[4], offs_ok[2];
} jtensor;

static int key_is(const char *k, size_t kl, const char *word)
{
    return kl == strlen(word) && !memcmp(k, word, kl);
}

static qkc_status jtensor_read(jreader *r, const char *name, jtensor *t)
{
    qkc_status st;
    const char *k, *s;
    size_t kl, sl;
    memset(t, 0, sizeof *t);
    jws(r);
    if (r->p >= r->end || *r->p != '{')
        return jskip(r); /* not an object: reported with the others below */
    t->is_object = 1;
    r->p++;
    jws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return QKC_OK;
    }
    for (;;) {
        int which;
        if ((st = jstring(r, &k, &kl)) || (st = jexpect(r, ':', "expected ':'")))
            return st;
        which = key_is(k, kl, "dtype") ? 1 : key_is(k, kl, "shape") ? 2 : key_is(k, kl, "data_offsets") ? 3 : 0;
        if ((which == 1 && t->has_dtype) || (which == 2 && t->has_shape) || (which == 3 && t->has_offsets))
            return qkc_fail(r->f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: tensor '%s': duplicate key '%s'",
                            r->f->path, name, which == 1 ? "dtype" : which == 2 ? "shape" : "data_offsets");
        if (which == 1) {
            jws(r);
            if (r->p < r->end && *r->p == '"') {
                if ((st = jstring(r, &s, &sl)))
                    return st;
                t->has_dtype = 1;
                if (!(t->dtype = dtype_of(s, sl)))
                    snprintf(t->dtype_text, sizeof t->dtype_text, "%.*s", (int)(sl < 40 ? sl : 40), s);
            } else {
                t->has_dtype = 2; /* present, not a string */
                if ((st = jskip(r)))
                    return st;
            }
        } else if (which == 2) {
            int arr;
            if ((st = jint_array(r, &arr, t->shape, t->shape_ok, 4, &t->nd)))
                return st;
            t->has_shape = arr ? 1 : 2;
        } else if (which == 3) {
            int arr;
            if ((st = jint_array(r, &arr, t->offs, t->offs_ok, 2, &t->noffs)))
                return st;
            t->has_offsets = arr ? 1 : 2;
        } else if ((st = jskip(r))) {
            return st;
        }
        jws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return jexpect(r, '}', "expected ',' or '}'");
    }
}

/* The entry of a tensor object read by jtensor_read (name already set). */
static qkc_status tensor_entry(qkc_file *f, const char *name, const jtensor *j, uint64_t data_size, qkc_file_entry *t)
{
    uint64_t elems = 1, bits, begin, end;
    const st_dtype *d = j->dtype;
    if (!j->is_object || j->has_dtype != 1 || j->has_shape != 1 || j->has_offsets != 1)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': expected an object with dtype (string), shape (array) and "
                        "data_offsets (array)",
                        f->path, name);
    if (!d)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: tensor '%s': unknown dtype '%s'", f->path, name,
                        j->dtype_text);
    t->dtype = d->name;
    if (j->nd > 4)
        return qkc_fail(f->ctx, QKC_ERR_UNSUPPORTED,
                        "safetensors: %s: tensor '%s': %zu dimensions (qkc reads at most 4)", f->path, name, j->nd);
    t->n_dims = (int)j->nd;
    for (size_t i = 0; i < j->nd; i++) {
        if (!j->shape_ok[i])
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "safetensors: %s: tensor '%s': shape[%zu] is not a non-negative integer", f->path, name, i);
        t->shape[i] = (int64_t)j->shape[i];
        if (!qkc_mul_u64(elems, j->shape[i], &elems))
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: tensor '%s': shape overflows 64 bits",
                            f->path, name);
    }
    if (j->noffs != 2 || !j->offs_ok[0] || !j->offs_ok[1])
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': data_offsets must be two non-negative integers [begin, end]", f->path,
                        name);
    begin = j->offs[0], end = j->offs[1];
    if (begin > end || end > data_size)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] lie outside the %" PRIu64
                        " data bytes of the file",
                        f->path, name, begin, end, data_size);
    if (!qkc_mul_u64(elems, (uint64_t)d->bits, &bits) || bits % 8 != 0 || bits / 8 != end - begin)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': %" PRIu64 " bytes of data for %" PRIu64
                        " %s elements (the dtype needs %d bits each)",
                        f->path, name, end - begin, elems, d->name, d->bits);
    t->offset = begin;
    t->bytes = end - begin;
    return QKC_OK;
}

/* __metadata__: an object of strings, appended to f->meta. */
static qkc_status read_metadata(jreader *r, size_t *cap)
{
    qkc_file *f = r->f;
    qkc_status st;
    const char *k, *s;
    size_t kl, sl;
    jws(r);
    if (r->p >= r->end || *r->p != '{')
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: __metadata__ must be an object of strings",
                        f->path);
    r->p++;
    jws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return QKC_OK;
    }
    for (;;) {
        qkc_file_meta_rec *m;
        char *key;
        if ((st = jstring(r, &k, &kl)))
            return st;
        if (!(key = qkc_file_strdup(f, k, kl)))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for metadata", f->path);
        if ((st = jexpect(r, ':', "expected ':'")))
            return st;
        jws(r);
        if (r->p >= r->end || *r->p != '"')
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: __metadata__ value of '%.200s' is not a string",
                            f->path, key);
        if (f->nmeta >= QKC_MAX_FILE_TENSORS)
            return qkc_fail(f->ctx, QKC_ERR_LIMIT, "safetensors: %s: more than %lld metadata entries (QKC_MAX_FILE_TENSORS)",
                            f->path, (long long)QKC_MAX_FILE_TENSORS);
        if (qkc_file_grow(f, (void **)&f->meta, cap, sizeof *f->meta, (uint64_t)f->nmeta))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for metadata", f->path);
        if ((st = jstring(r, &s, &sl)))
            return st;
        m = &f->meta[f->nmeta];
        m->key = key;
        m->key_bytes = kl;
        m->type = "string";
        m->count = 1;
        m->text_bytes = sl;
        if (!(m->text = qkc_file_strdup(f, s, sl)))
            return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for metadata", f->path);
        f->nmeta++;
        jws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return jexpect(r, '}', "expected ',' or '}'");
    }
}

/* First pass over the header: check its syntax and count the members of
 * the top-level object and of __metadata__, so that the tables are
 * allocated once, at their size. */
static qkc_status jcount(jreader *r, size_t *members, size_t *meta)
{
    qkc_status st;
    const char *k;
    size_t kl;
    *members = *meta = 0;
    if ((st = jexpect(r, '{', "the header is not a JSON object")))
        return st;
    jws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
    } else {
        for (;;) {
            int is_meta;
            if ((st = jstring(r, &k, &kl)) || (st = jexpect(r, ':', "expected ':'")))
                return st;
            is_meta = key_is(k, kl, "__metadata__");
            jws(r);
            if (is_meta && r->p < r->end && *r->p == '{') {
                /* count its members on a copy, then step over it */
                jreader c = *r;
                c.p++;
                jws(&c);
                if (c.p < c.end && *c.p != '}')
                    for (;;) {
                        if ((st = jstring(&c, &k, &kl)) || (st = jexpect(&c, ':', "expected ':'")) || (st = jskip(&c)))
                            break;
                        ++*meta;
                        jws(&c);
                        if (c.p >= c.end || *c.p != ',')
                            break;
                        c.p++;
                    }
                r->buf = c.buf, r->cap = c.cap;
                if (st)
                    return st;
            }
            if ((st = jskip(r)))
                return st;
            ++*members;
            jws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if ((st = jexpect(r, '}', "expected ',' or '}'")))
                return st;
            break;
        }
    }
    jws(r);
    if (r->p != r->end)
        return jfail(r, r->p, "end of the header expected after the object");
    return QKC_OK;
}

/* The whole header: tensors and metadata into the file's tables. */
static qkc_status read_header(jreader *r, uint64_t data_start)
{
    qkc_file *f = r->f;
    qkc_status st;
    size_t tcap = 0, mcap = 0, members, nmeta;
    int have_meta = 0;
    const char *k;
    size_t kl;
    {
        jreader c = *r;
        st = jcount(&c, &members, &nmeta);
        r->buf = c.buf, r->cap = c.cap;
        if (st)
            return st;
    }
    if (members > (size_t)QKC_MAX_FILE_TENSORS || nmeta > (size_t)QKC_MAX_FILE_TENSORS)
        return qkc_fail(f->ctx, QKC_ERR_LIMIT,
                        "safetensors: %s: %zu tensors and %zu metadata entries: qkc reads at most %lld of each "
                        "(QKC_MAX_FILE_TENSORS)",
                        f->path, members, nmeta, (long long)QKC_MAX_FILE_TENSORS);
    if ((members && !(f->tensors = qkc_calloc(f->ctx, members, sizeof *f->tensors))) ||
        (nmeta && !(f->meta = qkc_calloc(f->ctx, nmeta, sizeof *f->meta))))
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for the tensor table", f->path);
    tcap = members, mcap = nmeta;
    if ((st = jexpect(r, '{', "the header is not a JSON object")))
        return st;
    jws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
    } else {
        for (;;) {
            if ((st = jstring(r, &k, &kl)))
                return st;
            if (key_is(k, kl, "__metadata__")) {
                if (have_meta)
                    return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: duplicate key '__metadata__'",
                                    f->path);
                have_meta = 1;
                if ((st = jexpect(r, ':', "expected ':'")) || (st = read_metadata(r, &mcap)))
                    return st;
            } else {
                qkc_file_entry *t;
                jtensor j;
                if (f->ntensors >= QKC_MAX_FILE_TENSORS)
                    return qkc_fail(f->ctx, QKC_ERR_LIMIT, "safetensors: %s: more than %lld tensors (QKC_MAX_FILE_TENSORS)",
                                    f->path, (long long)QKC_MAX_FILE_TENSORS);
                if (qkc_file_grow(f, (void **)&f->tensors, &tcap, sizeof *f->tensors, (uint64_t)f->ntensors))
                    return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for the tensor table",
                                    f->path);
                t = &f->tensors[f->ntensors];
                t->part_of = -1;
                for (int m = 0; m < QKC_MEMBER_COUNT; m++)
                    t->member[m] = -1;
                if (!(t->name = qkc_file_strdup(f, k, kl)))
                    return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for the tensor table",
                                    f->path);
                if ((st = jexpect(r, ':', "expected ':'")) || (st = jtensor_read(r, t->name, &j)) ||
                    (st = tensor_entry(f, t->name, &j, f->size - data_start, t)))
                    return st;
                t->offset += data_start;
                f->ntensors++;
            }
            jws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if ((st = jexpect(r, '}', "expected ',' or '}'")))
                return st;
            break;
        }
    }
    jws(r);
    if (r->p != r->end)
        return jfail(r, r->p, "end of the header expected after the object");
    return QKC_OK;
}

static int cmp_key(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Metadata keys are unique (as JSON object keys should be). */
static qkc_status check_meta_keys(qkc_file *f)
{
    const char **keys;
    qkc_status st = QKC_OK;
    if (f->nmeta < 2)
        return QKC_OK;
    if (!(keys = qkc_calloc(f->ctx, (size_t)f->nmeta, sizeof *keys)))
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for metadata", f->path);
    for (int64_t i = 0; i < f->nmeta; i++)
        keys[i] = f->meta[i].key;
    qkc_sort(keys, (size_t)f->nmeta, sizeof *keys, cmp_key);
    for (int64_t i = 1; i < f->nmeta; i++)
        if (!strcmp(keys[i - 1], keys[i])) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: duplicate key '%.200s' in __metadata__",
                          f->path, keys[i]);
            break;
        }
    qkc_free(f->ctx, keys);
    return st;
}

/* ------------------------------------------------------------ grouping */

static const qkc_file_entry *member(const qkc_file *f, const char *prefix, const char *suffix, int64_t *index)
{
    char name[1024];
    int len = snprintf(name, sizeof name, "%s%s", prefix, suffix);
    *index = len > 0 && (size_t)len < sizeof name ? qkc_file_lookup(f, name) : -1;
    return *index >= 0 ? &f->tensors[*index] : NULL;
}

static int is2d(const qkc_file_entry *t, const char *dtype)
{
    return t && t->n_dims == 2 && !strcmp(t->dtype, dtype);
}

static qkc_status no_memory(qkc_file *f)
{
    return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: %s: out of memory for the tensor table", f->path);
}

/* Mark the parts of an import (whether or not the head runs); they share
 * one "part of HEAD" text. */
static qkc_status mark_parts(qkc_file *f, int64_t head, const int64_t *idx, int count)
{
    const char *why = NULL;
    for (int i = 0; i < count; i++)
        if (idx[i] >= 0 && idx[i] != head) {
            qkc_file_entry *p = &f->tensors[idx[i]];
            if (!why && !(why = qkc_file_printf(f, "part of %.200s", f->tensors[head].name)))
                return no_memory(f);
            p->part_of = head;
            p->runnable = 0;
            p->reason = why;
        }
    return QKC_OK;
}

/* Every extent in [1, 2^40], so that shape arithmetic cannot overflow. */
static int sane(const qkc_file_entry *t)
{
    if (!t)
        return 1;
    for (int i = 0; i < t->n_dims; i++)
        if (t->shape[i] < 1 || t->shape[i] > ((int64_t)1 << 40))
            return 0;
    return 1;
}

static uint32_t rd_i32(const uint8_t *p)
{
    return qkc_rd32(p);
}

/* After qkc_file_set_matrix: does each member fill its section exactly? */
static qkc_status check_sections(qkc_file *f, qkc_file_entry *t, const qkc_weight_layout *lay,
                                 const qkc_file_entry *const parts[], const int sections[], int count)
{
    if (!t->runnable)
        return QKC_OK;
    for (int i = 0; i < count; i++) {
        uint64_t have = parts[i] ? parts[i]->bytes : 0;
        if (have != lay->bytes[sections[i]])
            return qkc_file_reason(f, t, "%.60s holds %" PRIu64 " bytes, %.50s needs %" PRIu64,
                                   parts[i] ? parts[i]->name : "a missing tensor", have, t->weights,
                                   (uint64_t)lay->bytes[sections[i]]);
    }
    return QKC_OK;
}

/* `text` made the entry's own (the arena) and set as its matrix. */
static qkc_status set_matrix_text(qkc_file *f, qkc_file_entry *t, int64_t n, int64_t k, const char *text,
                                  qkc_weight_layout *lay)
{
    const char *w = qkc_file_strdup(f, text, strlen(text));
    if (!w)
        return no_memory(f);
    return qkc_file_set_matrix(f, t, n, k, w, lay);
}

static qkc_status classify_qweight(qkc_file *f, int64_t hi, const char *prefix, int meta_v2)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t idx[4];
    const qkc_file_entry *qz = member(f, prefix, ".qzeros", &idx[1]), *sc = member(f, prefix, ".scales", &idx[2]),
                          *gi = member(f, prefix, ".g_idx", &idx[3]);
    char text[96];
    int64_t G, N, K;
    qkc_weight_layout lay;
    qkc_status st;
    idx[0] = hi;
    if ((st = mark_parts(f, hi, idx, 4)))
        return st;
    if (!sane(t) || !sane(qz) || !sane(sc)) {
        t->reason = "qweight, qzeros and scales need extents from 1 to 2^40";
        return QKC_OK;
    }
    if (!is2d(t, "I32") || !is2d(qz, "I32") || !sc || sc->n_dims != 2) {
        t->reason = "a quantized weight needs 2-D I32 qweight and qzeros and 2-D scales";
        return QKC_OK;
    }
    if (strcmp(sc->dtype, "F16"))
        return qkc_file_reason(f, t, "scales are %s; qkc's gptq and awq presets read F16 scales", sc->dtype);
    G = sc->shape[0], N = sc->shape[1];
    if (G < 1 || N < 1 || qz->shape[0] != G)
        return qkc_file_reason(f, t, "scales [%lld, %lld] and qzeros [%lld, %lld] disagree on the groups", (long long)G,
                               (long long)N, (long long)qz->shape[0], (long long)qz->shape[1]);
    if (t->shape[1] == N && !(gi == NULL && t->shape[1] * 8 == N)) {
        /* GPTQ: qweight [K·bits/32, N], qzeros [G, N·bits/32]. */
        int64_t bits = qz->shape[1] * 32 / N, gs, actorder = 0;
        if (qz->shape[1] * 32 % N != 0 || (bits != 2 && bits != 3 && bits != 4 && bits != 8))
            return qkc_file_reason(f, t, "qzeros [%lld, %lld] give no GPTQ bit width for N=%lld",
                                   (long long)qz->shape[0], (long long)qz->shape[1], (long long)N);
        K = t->shape[0] * 32 / bits;
        if (t->shape[0] * 32 % bits != 0 || K < 1)
            return qkc_file_reason(f, t, "qweight rows %lld hold no whole number of %lld-bit inputs",
                                   (long long)t->shape[0], (long long)bits);
        gs = K % G == 0 ? K / G : K / G + 1;
        if ((K + gs - 1) / gs != G)
            return qkc_file_reason(f, t, "%lld scale rows fit no group size for K=%lld", (long long)G, (long long)K);
        if (gi) {
            const uint8_t *g = qkc_file_tensor_data(f, gi);
            if (gi->n_dims != 1 || strcmp(gi->dtype, "I32") || gi->shape[0] != K)
                return qkc_file_reason(f, t, "g_idx must be I32 [%lld]", (long long)K);
            /* Without act-order g_idx[k] = k / group: the group size is
             * the run of leading zeros, which also covers a partial last
             * group that K / G would not reveal. */
            int64_t lead = 0;
            while (lead < K && rd_i32(g + 4 * lead) == 0)
                lead++;
            if (lead > 0 && (K + lead - 1) / lead == G) {
                int mono = 1;
                for (int64_t k = 0; k < K && mono; k++)
                    mono = (int64_t)(int32_t)rd_i32(g + 4 * k) == k / lead;
                if (mono)
                    gs = lead;
            }
            for (int64_t k = 0; k < K && !actorder; k++)
                actorder = (int64_t)(int32_t)rd_i32(g + 4 * k) != k / gs;
            if (actorder && G > 1) {
                /* Act-order permutes the inputs, not the group sizes: group 0
                 * has a full group's members. */
                int64_t zeros = 0;
                for (int64_t k = 0; k < K; k++)
                    zeros += rd_i32(g + 4 * k) == 0;
                if (zeros > 0 && (K + zeros - 1) / zeros == G)
                    gs = zeros;
            }
        }
        t->gptq_v2 = f->gptq_version ? f->gptq_version == 2 : meta_v2;
        if (G == 1 && !actorder)
            snprintf(text, sizeof text, "w=gptq:%lld group=channel", (long long)bits);
        else
            snprintf(text, sizeof text, "w=gptq:%lld%s group=%lld", (long long)bits, actorder ? ":actorder" : "",
                     (long long)gs);
        if ((st = set_matrix_text(f, t, N, K, text, &lay)))
            return st;
        {
            const qkc_file_entry *parts[4] = {t, sc, qz, actorder ? gi : NULL};
            const int sections[4] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_ZEROS, QKC_SECTION_AUX};
            if ((st = check_sections(f, t, &lay, parts, sections, 4)))
                return st;
        }
        t->import = QKC_IMPORT_GPTQ;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_QZEROS] = idx[1];
        t->member[QKC_MEMBER_SCALES] = idx[2], t->member[QKC_MEMBER_GIDX] = actorder ? idx[3] : -1;
    } else if (t->shape[1] * 8 == N && !gi) {
        /* AWQ gemm: qweight [K, N/8], qzeros [G, N/8]. */
        K = t->shape[0];
        if (K < 1 || K % G != 0 || qz->shape[1] * 8 != N)
            return qkc_file_reason(f, t,
                                   "AWQ shapes: qweight [%lld, %lld], qzeros [%lld, %lld], scales [%lld, %lld] are "
                                   "inconsistent",
                                   (long long)t->shape[0], (long long)t->shape[1], (long long)qz->shape[0],
                                   (long long)qz->shape[1], (long long)G, (long long)N);
        snprintf(text, sizeof text, "w=awq group=%lld", (long long)(K / G));
        if ((st = set_matrix_text(f, t, N, K, text, &lay)))
            return st;
        {
            const qkc_file_entry *parts[3] = {t, sc, qz};
            const int sections[3] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_ZEROS};
            if ((st = check_sections(f, t, &lay, parts, sections, 3)))
                return st;
        }
        t->import = QKC_IMPORT_AWQ;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_QZEROS] = idx[1];
        t->member[QKC_MEMBER_SCALES] = idx[2];
    } else {
        t->reason = "shapes match neither GPTQ (qweight [K*bits/32, N]) nor AWQ (qweight [K, N/8])";
    }
    return QKC_OK;
}

static qkc_status classify_bnb(qkc_file *f, int64_t hi, const char *prefix, const qkc_file_entry *qs, int64_t qsi)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t idx[6];
    const qkc_file_entry *am = member(f, prefix, ".absmax", &idx[1]), *qm = member(f, prefix, ".quant_map", &idx[2]),
                          *na = member(f, prefix, ".nested_absmax", &idx[3]),
                          *nm = member(f, prefix, ".nested_quant_map", &idx[4]);
    json_t *root, *v;
    json_error_t err;
    int64_t n, k, bs;
    int dq;
    char text[96];
    qkc_weight_layout lay;
    qkc_status st;
    idx[0] = hi, idx[5] = qsi;
    if ((st = mark_parts(f, hi, idx, 6)))
        return st;
    if (strcmp(qs->dtype, "U8") || qs->bytes > (1u << 20))
        return qkc_file_reason(f, t, "%.80s.quant_state.bitsandbytes__nf4 is not a U8 JSON tensor", prefix);
    root = json_loadb((const char *)qkc_file_tensor_data(f, qs), (size_t)qs->bytes, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(root)) {
        st = qkc_file_reason(f, t, "quant_state JSON: %.100s", root ? "not an object" : err.text);
        json_decref(root);
        return st;
    }
    v = json_object_get(root, "quant_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "nf4")) {
        t->reason = "quant_state: quant_type is not \"nf4\"";
        goto done;
    }
    v = json_object_get(root, "shape");
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
        !json_is_integer(json_array_get(v, 1)) || !json_is_integer(json_object_get(root, "blocksize"))) {
        t->reason = "quant_state: needs shape [out, in] and blocksize integers";
        goto done;
    }
    n = (int64_t)json_integer_value(json_array_get(v, 0));
    k = (int64_t)json_integer_value(json_array_get(v, 1));
    bs = (int64_t)json_integer_value(json_object_get(root, "blocksize"));
    dq = na != NULL;
    if (n < 1 || k < 1 || bs < 1 || n > (1 << 24) || k > (1 << 24) || bs > (1 << 24)) {
        st = qkc_file_reason(f, t, "quant_state: shape [%lld, %lld] or blocksize %lld out of range", (long long)n,
                             (long long)k, (long long)bs);
        goto done;
    }
    if (!qm || qm->bytes != 64 || strcmp(qm->dtype, "F32")) {
        st = qkc_file_reason(f, t, "%.100s.quant_map must be F32 [16]", prefix);
        goto done;
    }
    for (int i = 0; i < 16; i++)
        if (qkc_rd32(qkc_file_tensor_data(f, qm) + 4 * i) != qkc_f32_bits(qkc_dtype_decode(QKC_DTYPE_NF4, (uint32_t)i))) {
            st = qkc_file_reason(f, t, "quant_map entry %d differs from the NF4 code book", i);
            goto done;
        }
    if (dq) {
        json_t *off = json_object_get(root, "nested_offset"), *nb = json_object_get(root, "nested_blocksize");
        if (!json_is_number(off) || (nb && (!json_is_integer(nb) || json_integer_value(nb) != 256))) {
            t->reason = "quant_state: nested quantization needs nested_offset and nested_blocksize 256";
            goto done;
        }
        t->nested_offset = (float)json_number_value(off);
        if (!nm || nm->bytes != 1024 || strcmp(nm->dtype, "F32") || strcmp(na->dtype, "F32") || !am ||
            strcmp(am->dtype, "U8")) {
            t->reason = "nested quantization needs U8 absmax, F32 nested_absmax and F32 nested_quant_map [256]";
            goto done;
        }
    } else if (!am || strcmp(am->dtype, "F32")) {
        st = qkc_file_reason(f, t, "%.100s.absmax must be F32", prefix);
        goto done;
    }
    snprintf(text, sizeof text, "w=nf4_bnb%s group=%lld", dq ? ":dq" : "", (long long)bs);
    if ((st = set_matrix_text(f, t, n, k, text, &lay)))
        goto done;
    {
        const qkc_file_entry *parts[3] = {t, am, na};
        const int sections[3] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_SCALES2};
        if ((st = check_sections(f, t, &lay, parts, sections, 3)))
            goto done;
    }
    t->import = QKC_IMPORT_BNB;
    t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_SCALES] = idx[1], t->member[QKC_MEMBER_QZEROS] = idx[2];
    t->member[QKC_MEMBER_GIDX] = idx[3], t->member[QKC_MEMBER_EXTRA] = idx[4];
done:
    json_decref(root);
    return st;
}

static int ends_with(const char *s, const char *suffix, size_t *prefix_len)
{
    size_t a = strlen(s), b = strlen(suffix);
    if (a < b || strcmp(s + a - b, suffix))
        return 0;
    *prefix_len = a - b;
    return 1;
}

/* compressed-tensors "pack-quantized" (vLLM's llm-compressor): P.weight_packed
 * I32 [N, ceil(K/f)] holding f = 32/b codes of b = 4 or 8 bits per word,
 * element k at bits b·(k mod f) of word k/f, stored as q + 2^(b-1);
 * P.weight_shape [2] = N, K; P.weight_scale [N, G] (G groups of K/G, or one
 * per output) in F32/F16/BF16; without P.weight_zero_point the weight is
 * q·s (symmetric: qkc's signed intB), with it (q − zp)·s, zp packed the
 * same way along N ([ceil(N/f), G]): qkc's uintB with zero=int on the
 * stored codes, whose offsets cancel. P.weight_g_idx (activation order) is
 * not imported. */
static qkc_status classify_ct(qkc_file *f, int64_t hi, const char *prefix)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t shi = -1, si = -1, zi = -1, gi = -1, N, K, G, bits = 0, group, idx[5];
    const qkc_file_entry *shp = member(f, prefix, ".weight_shape", &shi), *s = member(f, prefix, ".weight_scale", &si),
                         *z = member(f, prefix, ".weight_zero_point", &zi), *g = member(f, prefix, ".weight_g_idx", &gi);
    const char *sd, *w;
    qkc_status st;
    idx[0] = hi, idx[1] = shi, idx[2] = si, idx[3] = zi, idx[4] = gi;
    if ((st = mark_parts(f, hi, idx, 5)))
        return st;
    if (!shp || !s)
        return qkc_file_reason(f, t, "pack-quantized weight without %s.weight_%s", prefix, shp ? "scale" : "shape");
    if (g)
        return qkc_file_reason(f, t, "%.100s.weight_g_idx: activation order is not imported yet", prefix);
    if (strcmp(t->dtype, "I32") || t->n_dims != 2 || !sane(t) || shp->n_dims != 1 || shp->shape[0] != 2 ||
        (strcmp(shp->dtype, "I32") && strcmp(shp->dtype, "I64")))
        return qkc_file_reason(f, t, "weight_packed must be I32 [N, K/f] and weight_shape I32 or I64 [2]");
    {
        const uint8_t *p = qkc_file_tensor_data(f, shp);
        int wide = !strcmp(shp->dtype, "I64");
        N = wide ? (int64_t)(qkc_rd32(p) | (uint64_t)qkc_rd32(p + 4) << 32) : (int32_t)qkc_rd32(p);
        K = wide ? (int64_t)(qkc_rd32(p + 8) | (uint64_t)qkc_rd32(p + 12) << 32) : (int32_t)qkc_rd32(p + 4);
    }
    if (N != t->shape[0] || K < 1 || K > ((int64_t)1 << 40))
        return qkc_file_reason(f, t, "weight_shape [%lld, %lld] does not match weight_packed [%lld, %lld]",
                               (long long)N, (long long)K, (long long)t->shape[0], (long long)t->shape[1]);
    if ((K + 7) / 8 == t->shape[1])
        bits = 4;
    else if ((K + 3) / 4 == t->shape[1])
        bits = 8;
    else
        return qkc_file_reason(f, t, "weight_packed has %lld words a row: K=%lld in neither 4- nor 8-bit codes",
                               (long long)t->shape[1], (long long)K);
    if ((strcmp(s->dtype, "F32") && strcmp(s->dtype, "F16") && strcmp(s->dtype, "BF16")) || s->n_dims != 2 ||
        s->shape[0] != N || s->shape[1] < 1 || s->shape[1] > K)
        return qkc_file_reason(f, t, "weight_scale must be F32, F16 or BF16 [N=%lld, groups]", (long long)N);
    G = s->shape[1];
    group = K / G;
    if (G > 1 && K % G)
        return qkc_file_reason(f, t, "%lld scale columns divide K=%lld in no group size", (long long)G, (long long)K);
    if (z && (strcmp(z->dtype, "I32") || z->n_dims != 2 || z->shape[0] != (N + 32 / bits - 1) / (32 / bits) ||
              z->shape[1] != G))
        return qkc_file_reason(f, t, "weight_zero_point must be I32 [%lld, %lld] (packed along N)",
                               (long long)((N + 32 / bits - 1) / (32 / bits)), (long long)G);
    sd = !strcmp(s->dtype, "F32") ? "f32" : !strcmp(s->dtype, "F16") ? "f16" : "bf16";
    if (G == 1)
        w = qkc_file_printf(f, "w=%sint%lld group=channel scale=%s%s", z ? "u" : "", (long long)bits, sd,
                            z ? " zero=int" : "");
    else
        w = qkc_file_printf(f, "w=%sint%lld group=%lld scale=%s%s", z ? "u" : "", (long long)bits, (long long)group,
                            sd, z ? " zero=int" : "");
    if (!w)
        return no_memory(f);
    {
        qkc_weight_layout lay;
        const qkc_file_entry *parts[1] = {s};
        const int sections[1] = {QKC_SECTION_SCALES};
        if ((st = qkc_file_set_matrix(f, t, N, K, w, &lay)) || (st = check_sections(f, t, &lay, parts, sections, 1)))
            return st;
        if (t->runnable && (lay.bytes[QKC_SECTION_DATA] != (uint64_t)N * (uint64_t)((K * bits + 7) / 8) ||
                            (z && lay.bytes[QKC_SECTION_ZEROS] != (uint64_t)N * (uint64_t)G)))
            return qkc_file_reason(f, t, "internal: the %s sections are not as imported", w);
    }
    if (t->runnable) {
        t->import = QKC_IMPORT_CT;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_SCALES] = si, t->member[QKC_MEMBER_QZEROS] = zi;
    }
    return QKC_OK;
}

/* FP8 weights as Hugging Face checkpoints store them: P.weight, F8_E4M3
 * or F8_E5M2 [N, K], and its scale, by which it is multiplied:
 * P.weight_scale (F32 or BF16, one value [] or [1]: per tensor; N values
 * [N] or [N, 1]: per output channel), or P.weight_scale_inv (F32 or BF16
 * [ceil(N/B), ceil(K/B)]: one per B x B block, B = 128 in DeepSeek-V3 and
 * its kind; qkc expands each block's scale to its B rows, group=B along
 * K). P.input_scale (a static activation scale) is listed as a part; qkc
 * quantizes activations itself. */
static qkc_status classify_fp8(qkc_file *f, int64_t hi)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t si = -1, ii = -1, N = t->shape[0], K = t->shape[1], count, idx[3];
    const qkc_file_entry *s = member(f, t->name, "_scale", &si);
    const char *elem = !strcmp(t->dtype, "F8_E4M3") ? "fp8e4m3" : "fp8e5m2", *sd, *w;
    int inv = 0, block = 0;
    qkc_status st;
    if (!s && (s = member(f, t->name, "_scale_inv", &si)))
        inv = 1;
    if (!s)
        return QKC_OK; /* no scale: the dense pass says why it does not run */
    {
        char prefix[1024];
        size_t pl = strlen(t->name) - strlen(".weight");
        snprintf(prefix, sizeof prefix, "%.*s", (int)pl, t->name);
        member(f, prefix, ".input_scale", &ii);
    }
    idx[0] = hi, idx[1] = si, idx[2] = ii;
    if ((st = mark_parts(f, hi, idx, ii >= 0 ? 3 : 2)))
        return st;
    if (t->n_dims != 2 || N < 1 || K < 1)
        return qkc_file_reason(f, t, "FP8 weight of %d dimensions, not a matrix", t->n_dims);
    if (strcmp(s->dtype, "F32") && strcmp(s->dtype, "BF16"))
        return qkc_file_reason(f, t, "%s is %s; FP8 scales are F32 or BF16", s->name, s->dtype);
    sd = strcmp(s->dtype, "F32") ? "bf16" : "f32";
    count = 1;
    for (int d = 0; d < s->n_dims; d++)
        count *= s->shape[d];
    if (!inv && count == 1 && s->n_dims <= 1) {
        w = qkc_file_printf(f, "w=%s group=tensor scale=%s", elem, sd);
    } else if (!inv && count == N && (s->n_dims == 1 || (s->n_dims == 2 && s->shape[1] == 1))) {
        w = qkc_file_printf(f, "w=%s group=channel scale=%s", elem, sd);
    } else if (s->n_dims == 2) {
        /* the block size both dimensions agree on, 128 first */
        static const int sizes[] = {128, 64, 256, 32, 512, 16};
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0] && !block; b++)
            if ((N + sizes[b] - 1) / sizes[b] == s->shape[0] && (K + sizes[b] - 1) / sizes[b] == s->shape[1])
                block = sizes[b];
        if (!block)
            return qkc_file_reason(f, t, "%s [%lld, %lld] is no block grid of N=%lld x K=%lld", s->name,
                                   (long long)s->shape[0], (long long)s->shape[1], (long long)N, (long long)K);
        w = qkc_file_printf(f, "w=%s group=%d scale=%s", elem, block, sd);
    } else {
        return qkc_file_reason(f, t, "%s of %lld values fits neither one per tensor, one per output (N=%lld) nor "
                               "a block grid", s->name, (long long)count, (long long)N);
    }
    if (!w)
        return no_memory(f);
    {
        /* the weight fills DATA; stored scales fill SCALES, blocks once
         * each of their B rows has its copy */
        qkc_weight_layout lay;
        const qkc_file_entry *parts[2] = {t, s};
        const int sections[2] = {QKC_SECTION_DATA, QKC_SECTION_SCALES};
        if ((st = qkc_file_set_matrix(f, t, N, K, w, &lay)) ||
            (st = check_sections(f, t, &lay, parts, sections, block ? 1 : 2)))
            return st;
        if (t->runnable && block &&
            lay.bytes[QKC_SECTION_SCALES] != (uint64_t)N * (uint64_t)s->shape[1] * (strcmp(sd, "f32") ? 2u : 4u))
            return qkc_file_reason(f, t, "internal: block scales do not fill the %s scales", w);
    }
    if (t->runnable) {
        t->import = QKC_IMPORT_FP8;
        t->fp8_block = block;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_SCALES] = si;
    }
    return QKC_OK;
}

static qkc_status classify(qkc_file *f, int meta_v2)
{
    char prefix[1024];
    qkc_status st;
    for (int64_t i = 0; i < f->ntensors; i++) {
        qkc_file_entry *t = &f->tensors[i];
        size_t pl;
        int64_t qsi;
        if (ends_with(t->name, ".qweight", &pl) && pl < sizeof prefix) {
            memcpy(prefix, t->name, pl), prefix[pl] = '\0';
            if ((st = classify_qweight(f, i, prefix, meta_v2)))
                return st;
        } else if (ends_with(t->name, ".weight_packed", &pl) && pl < sizeof prefix) {
            memcpy(prefix, t->name, pl), prefix[pl] = '\0';
            if ((st = classify_ct(f, i, prefix)))
                return st;
        } else if ((!strcmp(t->dtype, "F8_E4M3") || !strcmp(t->dtype, "F8_E5M2")) && ends_with(t->name, ".weight", &pl)) {
            if ((st = classify_fp8(f, i)))
                return st;
        } else if (!strcmp(t->dtype, "U8") && strlen(t->name) + 1 < sizeof prefix &&
                   (member(f, t->name, ".quant_state.bitsandbytes__nf4", &qsi) ||
                    member(f, t->name, ".quant_state.bitsandbytes__fp4", &qsi))) {
            if (strstr(f->tensors[qsi].name, "__fp4")) {
                t->reason = "bitsandbytes FP4 is not supported (NF4 is)";
                f->tensors[qsi].part_of = i;
            } else if ((st = classify_bnb(f, i, t->name, &f->tensors[qsi], qsi))) {
                return st;
            }
        }
    }
    /* What is left: dense 2-D float tensors run in place, [N, K] row-major. */
    for (int64_t i = 0; i < f->ntensors; i++) {
        qkc_file_entry *t = &f->tensors[i];
        const char *w = !strcmp(t->dtype, "F32") ? "w=f32" : !strcmp(t->dtype, "F16") ? "w=f16"
                                                          : !strcmp(t->dtype, "BF16") ? "w=bf16" : NULL;
        if (t->runnable || t->reason)
            continue;
        if (!w)
            st = qkc_file_reason(f, t, "%s tensor that is not part of a quantized weight qkc imports", t->dtype);
        else if (t->n_dims != 2)
            st = qkc_file_reason(f, t, "%d-D tensor, not a matrix", t->n_dims);
        else
            st = qkc_file_set_matrix(f, t, t->shape[0], t->shape[1], w, NULL);
        if (st)
            return st;
    }
    return QKC_OK;
}

qkc_status qkc_safetensors_read(qkc_file *f)
{
    uint64_t hlen, data_start;
    jreader r;
    qkc_status st;
    int meta_v2 = 0;
    f->kind = QKC_FILE_SAFETENSORS;
    if (f->size < 8)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: truncated: %zu bytes, the header length alone takes 8", f->path, f->size);
    hlen = qkc_rd32(f->data) | (uint64_t)qkc_rd32(f->data + 4) << 32;
    if (hlen > f->size - 8)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: truncated: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                        f->path, hlen, f->size);
    if (hlen > MAX_HEADER)
        return qkc_fail(f->ctx, QKC_ERR_LIMIT, "safetensors: %s: header of %" PRIu64 " bytes is over the 100 MiB limit",
                        f->path, hlen);
    if (hlen < 2 || f->data[8] != '{')
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: the header is not a JSON object", f->path);
    data_start = 8 + hlen;
    memset(&r, 0, sizeof r);
    r.f = f;
    r.base = r.p = f->data + 8;
    r.end = r.base + hlen;
    st = read_header(&r, data_start);
    qkc_free(f->ctx, r.buf);
    if (st || (st = check_meta_keys(f)) || (st = qkc_file_index_names(f, "safetensors")) ||
        (st = qkc_file_check_overlap(f, "safetensors")))
        return st;
    /* GPTQ's zero convention from the metadata, looked up once. */
    for (int64_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, "checkpoint_format"))
            meta_v2 = !strcmp(f->meta[i].text, "gptq_v2");
    return classify(f, meta_v2);
}

/* ---------------------------------------------------------------- import */

static void copy_member(const qkc_file *f, const qkc_file_entry *t, const qkc_weight_layout *lay, int role,
                        uint8_t *dst, int section)
{
    int64_t i = t->member[role];
    if (i >= 0)
        memcpy(dst + lay->offset[section], qkc_file_tensor_data(f, &f->tensors[i]), (size_t)f->tensors[i].bytes);
}

qkc_status qkc_safetensors_import(qkc_context *ctx, const qkc_file *f, const qkc_file_entry *t, uint8_t *dst)
{
    qkc_format format;
    qkc_weight_layout layout, *lay = &layout;
    qkc_status st = qkc_file_layout(ctx, t, &format, &layout);
    if (st)
        return st;
    memset(dst, 0, (size_t)t->blob_bytes);
    copy_member(f, t, lay, QKC_MEMBER_QWEIGHT, dst, QKC_SECTION_DATA);
    switch (t->import) {
    case QKC_IMPORT_GPTQ:
    case QKC_IMPORT_AWQ:
        copy_member(f, t, lay, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        copy_member(f, t, lay, QKC_MEMBER_GIDX, dst, QKC_SECTION_AUX);
        copy_member(f, t, lay, QKC_MEMBER_QZEROS, dst, QKC_SECTION_ZEROS);
        if (t->gptq_v2) {
            /* v2 stores the zero itself; qkc's gptq blob holds zero − 1 (v1).
             * A qzeros row is one little-endian bit stream over N. */
            const qkc_dtype_desc *dd = qkc_dtype_get(format.dtype);
            unsigned bits = (unsigned)dd->bits;
            uint64_t row_bytes = (uint64_t)t->n * bits / 8, rows = lay->bytes[QKC_SECTION_ZEROS] / row_bytes;
            uint8_t *z = dst + lay->offset[QKC_SECTION_ZEROS];
            for (uint64_t g = 0; g < rows; g++)
                for (int64_t n = 0; n < t->n; n++) {
                    uint64_t pos = (uint64_t)n * bits;
                    uint32_t v = qkc_stream_field(z + g * row_bytes, 4, pos, bits);
                    if (v == 0)
                        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED,
                                        "safetensors: %s: %s: GPTQ v2 zero 0 (group %" PRIu64 ", output %lld) has no v1 "
                                        "encoding (v1 stores zero - 1 in %u bits)",
                                        f->path, t->name, g, (long long)n, bits);
                    v -= 1;
                    for (unsigned b = 0; b < bits; b++, pos++) {
                        uint8_t *byte = z + g * row_bytes + pos / 8;
                        *byte = (uint8_t)((*byte & ~(1u << (pos % 8))) | (((v >> b) & 1u) << (pos % 8)));
                    }
                }
        }
        break;
    case QKC_IMPORT_CT: {
        /* rows of codes without the words' padding; symmetric codes
         * made two's complement (the stored q + 2^(b-1) with its top bit
         * flipped); zero points unpacked to a byte each */
        const qkc_dtype_desc *dd = qkc_dtype_get(format.dtype);
        const qkc_file_entry *q = &f->tensors[t->member[QKC_MEMBER_QWEIGHT]];
        const uint8_t *src = qkc_file_tensor_data(f, q);
        int bits = dd->bits, pf = 32 / bits;
        size_t row = (size_t)((t->k * bits + 7) / 8), words = (size_t)q->shape[1] * 4;
        uint8_t flip = t->member[QKC_MEMBER_QZEROS] >= 0 ? 0 : bits == 4 ? 0x88 : 0x80;
        uint8_t *out = dst + lay->offset[QKC_SECTION_DATA];
        for (int64_t n = 0; n < t->n; n++)
            for (size_t j = 0; j < row; j++)
                out[(size_t)n * row + j] = (uint8_t)(src[(size_t)n * words + j] ^ flip);
        if ((t->k * bits) % 8)
            for (int64_t n = 0; n < t->n; n++) /* the last byte's unused nibble */
                out[(size_t)n * row + row - 1] &= 0x0f;
        if (t->member[QKC_MEMBER_QZEROS] >= 0) {
            const qkc_file_entry *z = &f->tensors[t->member[QKC_MEMBER_QZEROS]];
            const uint8_t *zs = qkc_file_tensor_data(f, z);
            int64_t G = z->shape[1];
            uint8_t *zo = dst + lay->offset[QKC_SECTION_ZEROS];
            for (int64_t n = 0; n < t->n; n++)
                for (int64_t g = 0; g < G; g++)
                    zo[n * G + g] = (uint8_t)((qkc_rd32(zs + (size_t)((n / pf) * G + g) * 4) >> (bits * (n % pf))) &
                                              ((1u << bits) - 1));
        }
        copy_member(f, t, lay, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        break;
    }
    case QKC_IMPORT_FP8: {
        /* per tensor or channel: the scales as stored; B x B blocks: each
         * block's scale for each of its B rows */
        const qkc_file_entry *s = &f->tensors[t->member[QKC_MEMBER_SCALES]];
        if (!t->fp8_block) {
            copy_member(f, t, lay, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        } else {
            const uint8_t *src = qkc_file_tensor_data(f, s);
            size_t es = strcmp(s->dtype, "F32") ? 2 : 4;
            int64_t G = s->shape[1];
            uint8_t *out = dst + lay->offset[QKC_SECTION_SCALES];
            for (int64_t n = 0; n < t->n; n++)
                memcpy(out + (size_t)(n * G) * es, src + (size_t)((n / t->fp8_block) * G) * es, (size_t)G * es);
        }
        break;
    }
    case QKC_IMPORT_BNB:
        copy_member(f, t, lay, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        if (format.flags & QKC_FORMAT_DQ) {
            copy_member(f, t, lay, QKC_MEMBER_GIDX, dst, QKC_SECTION_SCALES2);
            copy_member(f, t, lay, QKC_MEMBER_EXTRA, dst, QKC_SECTION_AUX);
            qkc_wr32(dst + lay->offset[QKC_SECTION_AUX] + 1024, qkc_f32_bits(t->nested_offset));
        }
        break;
    default: break;
    }
    return QKC_OK;
}

/* ------------------------------------------------------- sharded index */

#define MAX_SHARDS 4096

/* A shard's name from the index: a plain file name in the index's folder
 * (no path separator, not "." or ".."), as Hugging Face writes them. */
static int plain_name(const char *s)
{
    return *s && strlen(s) < 256 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

qkc_status qkc_safetensors_read_index(qkc_file *f, const qkc_file_options *options)
{
    json_error_t err;
    json_t *root, *map;
    const char *key, **names = NULL, *slash;
    json_t *v;
    size_t nmap, nnames = 0, dirlen;
    int64_t total = 0, at = 0;
    qkc_status st = QKC_OK;
    int meta_v2 = 0;

    f->kind = QKC_FILE_SAFETENSORS;
    root = json_loadb((const char *)f->data, f->size, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(root)) {
        st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors index: %s: %s", f->path,
                      root ? "not a JSON object" : err.text);
        goto done;
    }
    map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || !(nmap = json_object_size(map))) {
        st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors index: %s: no \"weight_map\" object of tensor names",
                      f->path);
        goto done;
    }
    /* the shards, each named once, sorted */
    if (!(names = qkc_calloc(f->ctx, nmap, sizeof *names))) {
        st = qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors index: %s: out of memory", f->path);
        goto done;
    }
    json_object_foreach(map, key, v) {
        if (!json_is_string(v) || !plain_name(json_string_value(v))) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                          "safetensors index: %s: weight_map[\"%.200s\"] is not the file name of a shard in the "
                          "index's folder",
                          f->path, key);
            goto done;
        }
        names[nnames++] = json_string_value(v);
    }
    qkc_sort(names, nnames, sizeof *names, cmp_cstr);
    {
        size_t u = 0;
        for (size_t i = 0; i < nnames; i++)
            if (!u || strcmp(names[u - 1], names[i]))
                names[u++] = names[i];
        nnames = u;
    }
    if (nnames > MAX_SHARDS) {
        st = qkc_fail(f->ctx, QKC_ERR_LIMIT, "safetensors index: %s: %zu shards, over the limit of %d", f->path,
                      nnames, MAX_SHARDS);
        goto done;
    }
    if (!(f->shards = qkc_calloc(f->ctx, nnames, sizeof *f->shards))) {
        st = qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors index: %s: out of memory", f->path);
        goto done;
    }
    slash = strrchr(f->path, '/');
    dirlen = slash ? (size_t)(slash - f->path) + 1 : 0;
    for (size_t s = 0; s < nnames; s++) {
        char *path = qkc_file_printf(f, "%.*s%s", (int)dirlen, f->path, names[s]);
        qkc_file *shard = NULL;
        if (!path) {
            st = qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors index: %s: out of memory", f->path);
            goto done;
        }
        if ((st = qkc_file_open(f->ctx, path, options, &shard)))
            goto done; /* the shard's own message names it */
        f->shards[f->nshards++] = shard;
        if (shard->kind != QKC_FILE_SAFETENSORS || shard->nshards) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors index: %s: shard %s is not a safetensors file",
                          f->path, path);
            goto done;
        }
        total += shard->ntensors;
    }
    if (!(f->tensors = qkc_calloc(f->ctx, total ? (size_t)total : 1, sizeof *f->tensors))) {
        st = no_memory(f);
        goto done;
    }
    /* one table: each shard's entries as its header gave them, to be
     * classified again together (an import's members may sit in
     * different shards) */
    for (int s = 0; s < f->nshards; s++) {
        const qkc_file *sh = f->shards[s];
        for (int64_t i = 0; i < sh->ntensors; i++) {
            qkc_file_entry *t = &f->tensors[at++];
            const char *mapped = json_string_value(json_object_get(map, sh->tensors[i].name));
            *t = sh->tensors[i];
            t->weights = NULL;
            t->reason = NULL;
            t->runnable = 0;
            t->n = t->k = 0;
            t->blob_bytes = 0;
            t->part_of = -1;
            for (int m = 0; m < QKC_MEMBER_COUNT; m++)
                t->member[m] = -1;
            t->import = QKC_IMPORT_IN_PLACE;
            t->shard = s + 1;
            if (!mapped || strcmp(mapped, names[s])) {
                st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                              "safetensors index: %s: tensor '%.200s' is in %s but the index %s%.200s", f->path,
                              t->name, names[s], mapped ? "names " : "does not list it", mapped ? mapped : "");
                goto done;
            }
        }
    }
    f->ntensors = at;
    if ((st = qkc_file_index_names(f, "safetensors")))
        goto done;
    json_object_foreach(map, key, v) {
        if (qkc_file_lookup(f, key) < 0) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors index: %s: tensor '%.200s' is not in %s",
                          f->path, key, json_string_value(v));
            goto done;
        }
    }
    /* the metadata of the first shard (Hugging Face writes the same in each) */
    f->meta = NULL;
    if (f->shards[0]->nmeta) {
        if (!(f->meta = qkc_calloc(f->ctx, (size_t)f->shards[0]->nmeta, sizeof *f->meta))) {
            st = no_memory(f);
            goto done;
        }
        memcpy(f->meta, f->shards[0]->meta, (size_t)f->shards[0]->nmeta * sizeof *f->meta);
        f->nmeta = f->shards[0]->nmeta;
    }
    for (int64_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, "checkpoint_format"))
            meta_v2 = !strcmp(f->meta[i].text, "gptq_v2");
    st = classify(f, meta_v2);
done:
    qkc_free(f->ctx, names);
    json_decref(root);
    return st;
}
