/* Checkpoint files: open (mmap, or read into memory), detect the format,
 * the tensor table, specs and weight blobs of runnable tensors (public
 * qkc_file_* API). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/context.h"
#include "core/sort.h"
#include "files/file.h"
#include "core/io.h"
#include "ir/spec.h"
#include "core/spec_object.h"

/* --------------------------------------------------------------- arena */

struct qkc_arena_block {
    qkc_arena_block *next;
    size_t used, cap;
    char data[];
};

#define ARENA_BLOCK 65536u

char *qkc_file_strdup(qkc_file *f, const char *s, size_t len)
{
    qkc_arena_block *b = f->arena;
    char *p;
    if (len >= SIZE_MAX / 2)
        return NULL;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        b = qkc_alloc(f->ctx, sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = f->arena;
        f->arena = b;
    }
    p = b->data + b->used;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

char *qkc_file_printf(qkc_file *f, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    return qkc_file_strdup(f, buf, strlen(buf));
}

qkc_status qkc_file_reason(qkc_file *f, qkc_file_entry *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->runnable = 0;
    t->weights = NULL;
    if (n < 0 || !(t->reason = qkc_file_strdup(f, buf, strlen(buf))))
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "%s: out of memory for the tensor table", f->path);
    return QKC_OK;
}

int qkc_file_grow(qkc_file *f, void **arr, size_t *cap, size_t elem, uint64_t i)
{
    void *n;
    size_t want;
    if (i < *cap)
        return 0;
    want = *cap ? *cap * 2 : 64;
    if (want > SIZE_MAX / elem || !(n = qkc_calloc(f->ctx, want, elem)))
        return -1;
    if (*arr)
        memcpy(n, *arr, *cap * elem);
    qkc_free(f->ctx, *arr);
    *arr = n;
    *cap = want;
    return 0;
}

/* -------------------------------------------------------------- tables */

/* The verifier's message without its "LINE:COL: " position, which refers
 * to qkc's own text. */
static const char *drop_position(const char *msg)
{
    size_t digits = strspn(msg, "0123456789");
    if (digits && msg[digits] == ':') {
        size_t d2 = strspn(msg + digits + 1, "0123456789");
        if (d2 && msg[digits + 1 + d2] == ':' && msg[digits + 2 + d2] == ' ')
            msg += digits + 3 + d2;
    }
    return msg;
}

static int parse_matrix(int64_t n, int64_t k, const char *weights, qkc_matmul *mm, qkc_weight_layout *layout,
                        qkc_diag *diag)
{
    char text[192];
    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s", (long long)n, (long long)k, weights);
    return qkc_matmul_parse(text, mm, NULL, diag) || qkc_format_layout(&mm->w, mm->n, mm->k, layout, diag);
}

qkc_status qkc_file_set_matrix(qkc_file *f, qkc_file_entry *t, int64_t n, int64_t k, const char *weights,
                               qkc_weight_layout *layout)
{
    qkc_matmul mm;
    qkc_diag diag;
    qkc_weight_layout lay;
    if (parse_matrix(n, k, weights, &mm, &lay, &diag))
        return qkc_file_reason(f, t, "as a %lld x %lld %.40s matrix: %.90s", (long long)n, (long long)k, weights,
                               drop_position(diag.message));
    t->runnable = 1;
    t->n = n;
    t->k = k;
    t->blob_bytes = lay.total;
    t->reason = NULL;
    t->weights = weights;
    if (layout)
        *layout = lay;
    return QKC_OK;
}

qkc_status qkc_file_layout(qkc_context *ctx, const qkc_file_entry *t, qkc_format *format, qkc_weight_layout *layout)
{
    qkc_matmul mm;
    qkc_diag diag;
    if (!t->runnable || parse_matrix(t->n, t->k, t->weights, &mm, layout, &diag))
        return qkc_fail(ctx, QKC_ERR_INTERNAL, "tensor '%s': no layout for '%s'", t->name,
                        t->weights ? t->weights : "");
    if (format)
        *format = mm.w;
    return QKC_OK;
}

typedef struct span {
    uint64_t begin, end;
    int64_t index;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

qkc_status qkc_file_check_overlap(qkc_file *f, const char *format_name)
{
    span *s;
    int64_t n = 0;
    qkc_status st = QKC_OK;
    if (f->ntensors < 2)
        return QKC_OK;
    s = qkc_calloc(f->ctx, (size_t)f->ntensors, sizeof *s);
    if (!s)
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "%s: out of memory", format_name);
    for (int64_t i = 0; i < f->ntensors; i++)
        if (f->tensors[i].bytes)
            s[n++] = (span){f->tensors[i].offset, f->tensors[i].offset + f->tensors[i].bytes, i};
    qkc_sort(s, (size_t)n, sizeof *s, cmp_span);
    for (int64_t i = 1; i < n; i++)
        if (s[i].begin < s[i - 1].end) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                          "%s: %s: the data of tensors '%s' and '%s' overlap (bytes %" PRIu64 "..%" PRIu64 " and %" PRIu64
                          "..%" PRIu64 ")",
                          format_name, f->path, f->tensors[s[i - 1].index].name, f->tensors[s[i].index].name,
                          s[i - 1].begin, s[i - 1].end, s[i].begin, s[i].end);
            break;
        }
    qkc_free(f->ctx, s);
    return st;
}

/* qsort has no context argument: sort pointers to the tensors. */
static int cmp_name(const void *a, const void *b)
{
    const qkc_file_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

qkc_status qkc_file_index_names(qkc_file *f, const char *format_name)
{
    const qkc_file_entry **p;
    qkc_status st = QKC_OK;
    if (!f->ntensors)
        return QKC_OK;
    p = qkc_calloc(f->ctx, (size_t)f->ntensors, sizeof *p);
    f->by_name = qkc_calloc(f->ctx, (size_t)f->ntensors, sizeof *f->by_name);
    if (!p || !f->by_name) {
        qkc_free(f->ctx, p);
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "%s: out of memory", format_name);
    }
    for (int64_t i = 0; i < f->ntensors; i++)
        p[i] = &f->tensors[i];
    qkc_sort(p, (size_t)f->ntensors, sizeof *p, cmp_name);
    for (int64_t i = 0; i < f->ntensors; i++) {
        f->by_name[i] = p[i] - f->tensors;
        if (i && !strcmp(p[i - 1]->name, p[i]->name)) {
            st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "%s: %s: two tensors are named '%s'", format_name, f->path,
                          p[i]->name);
            break;
        }
    }
    qkc_free(f->ctx, p);
    return st;
}

int64_t qkc_file_lookup(const qkc_file *f, const char *name)
{
    int64_t lo = 0, hi = f->ntensors;
    if (!f->by_name)
        return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->by_name[mid]].name, name);
        if (c == 0)
            return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---------------------------------------------------------------- open */

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Options that both open functions read; *load receives the load mode
 * the caller asked for (QKC_FILE_LOAD_DEFAULT when it did not). */
static qkc_status check_options(qkc_context *ctx, const qkc_file_options *o, const char *fn, int *gptq, int *load)
{
    *gptq = 0;
    *load = QKC_FILE_LOAD_DEFAULT;
    if (!o)
        return QKC_OK;
    if (o->struct_size < sizeof(size_t) + sizeof(int) || o->gptq_version < 0 || o->gptq_version > 2)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: bad options (struct_size, or gptq_version not 0, 1 or 2)",
                        fn);
    *gptq = o->gptq_version;
    if (o->struct_size >= offsetof(qkc_file_options, load) + sizeof o->load) {
        if (o->load < QKC_FILE_LOAD_DEFAULT || o->load > QKC_FILE_LOAD_READ)
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                            "%s: bad options: load is %d (QKC_FILE_LOAD_DEFAULT, _MMAP or _READ)", fn, o->load);
        *load = o->load;
    }
    return QKC_OK;
}

static qkc_status open_common(qkc_context *ctx, qkc_file *f, const char *path, const qkc_file_options *options)
{
    if (path && has_suffix(path, ".index.json"))
        return qkc_safetensors_read_index(f, options);
    if (f->size >= 4 && !memcmp(f->data, "GGUF", 4))
        return qkc_gguf_read(f);
    if (f->size >= 9 && f->data[8] == '{')
        return qkc_safetensors_read(f);
    if (path && has_suffix(path, ".gguf"))
        return qkc_gguf_read(f);
    if (path && has_suffix(path, ".safetensors"))
        return qkc_safetensors_read(f);
    return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA,
                    "%s: neither a GGUF file (magic 'GGUF') nor a safetensors file (8-byte header length, then '{')",
                    f->path);
}

static qkc_file *file_new(qkc_context *ctx, const char *path)
{
    qkc_file *f = qkc_calloc(ctx, 1, sizeof *f);
    if (!f)
        return NULL;
    f->ctx = ctx;
    f->path = qkc_file_strdup(f, path, strlen(path));
    if (!f->path) {
        qkc_free(ctx, f);
        return NULL;
    }
    return f;
}

qkc_status qkc_file_open_memory(qkc_context *ctx, const void *data, size_t bytes, const qkc_file_options *options,
                                qkc_file **out)
{
    qkc_file *f;
    qkc_status st;
    int gptq, load;
    if (!ctx || !out)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_open_memory: out is NULL")
                   : QKC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!data && bytes)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_open_memory: data is NULL");
    if ((st = check_options(ctx, options, "qkc_file_open_memory", &gptq, &load)))
        return st;
    if (!(f = file_new(ctx, "(memory)")))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_file_open_memory: out of memory");
    f->gptq_version = gptq;
    f->data = data ? data : (const uint8_t *)"";
    f->size = bytes;
    if ((st = open_common(ctx, f, NULL, NULL))) {
        qkc_file_close(f);
        return st;
    }
    *out = f;
    return QKC_OK;
}

/* The load mode: the option, else QKC_FILE_MMAP from the environment
 * ("0" reads, "1" or nothing maps; anything else maps, with a warning). */
static int read_mode(qkc_context *ctx, int load)
{
    const char *env;
    if (load != QKC_FILE_LOAD_DEFAULT)
        return load == QKC_FILE_LOAD_READ;
    env = qkc_context_config(ctx)->file_mmap;
    if (!env || !*env || !strcmp(env, "1"))
        return 0;
    if (!strcmp(env, "0"))
        return 1;
    qkc_warn(ctx, "QKC_FILE_MMAP=%.40s: expected 0 (read files into memory) or 1 (map them); mapping", env);
    return 0;
}

/* Map the open file read-only (the fault hook may fail the mmap). */
static qkc_status map_file(qkc_context *ctx, qkc_file *f, int fd, const char *path)
{
    void *map = MAP_FAILED;
    int err;
    do {
        err = qkc_context_io_fault(ctx, QKC_IO_MMAP, path, NULL);
        if (err == 0) {
            map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
            err = map == MAP_FAILED ? errno : 0;
        }
    } while (err == EINTR);
    if (err)
        return qkc_fail(ctx, QKC_ERR_IO, "%s: cannot map: %s", path, strerror(err));
    f->map = map;
    f->map_bytes = f->size;
    f->data = map;
    return QKC_OK;
}

/* Read the whole open file into memory of the context (read mode). The
 * copy starts 64-byte aligned whatever the allocator's alignment, so the
 * tensors the file aligns stay aligned for in-place kernels. */
static qkc_status read_file(qkc_context *ctx, qkc_file *f, int fd, const char *path)
{
    size_t got = 0;
    uint8_t *base;
    int err;
    if (f->size > SIZE_MAX - 64)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "%s: too large to read into memory", path);
    if (!(f->buffer = qkc_alloc(ctx, f->size + 64)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "%s: out of memory for the %zu bytes of the file (read mode)", path,
                        f->size);
    base = (uint8_t *)f->buffer + (64 - (uintptr_t)f->buffer % 64) % 64;
    if ((err = qkc_io_pread_full(ctx, fd, base, f->size, 0, &got)) != 0)
        return qkc_fail(ctx, QKC_ERR_IO, "%s: cannot read: %s", path, qkc_io_strerror(err));
    if (got != f->size)
        return qkc_fail(ctx, QKC_ERR_IO, "%s: the file shrank while it was read (%zu of %zu bytes)", path, got,
                        f->size);
    f->data = base;
    return QKC_OK;
}

qkc_status qkc_file_open(qkc_context *ctx, const char *path, const qkc_file_options *options, qkc_file **out)
{
    qkc_file *f;
    qkc_status st;
    struct stat sb;
    int fd, err, gptq, load;
    if (!ctx || !out)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_open: out is NULL") : QKC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!path)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_open: path is NULL");
    if ((st = check_options(ctx, options, "qkc_file_open", &gptq, &load)))
        return st;
    /* Non-blocking, and refused unless regular: a FIFO must not hang us. */
    if ((err = qkc_io_open_read(ctx, path, &fd, &sb)) != 0)
        return qkc_fail(ctx, QKC_ERR_IO, "%s: cannot open: %s", path, qkc_io_strerror(err));
    if ((uint64_t)sb.st_size > QKC_MAX_FILE_BYTES || (uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return qkc_fail(ctx, QKC_ERR_LIMIT, "%s: %lld bytes is over the limit of %" PRIu64 " bytes (QKC_MAX_FILE_BYTES)",
                        path, (long long)sb.st_size, (uint64_t)QKC_MAX_FILE_BYTES);
    }
    if (sb.st_size == 0) {
        close(fd);
        return qkc_fail(ctx, QKC_ERR_CORRUPT_DATA, "%s: empty file", path);
    }
    if (!(f = file_new(ctx, path))) {
        close(fd);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_file_open: out of memory");
    }
    f->gptq_version = gptq;
    f->size = (size_t)sb.st_size;
    st = read_mode(ctx, load) ? read_file(ctx, f, fd, path) : map_file(ctx, f, fd, path);
    close(fd);
    if (st || (st = open_common(ctx, f, path, options))) {
        qkc_file_close(f);
        return st;
    }
    *out = f;
    return QKC_OK;
}

void qkc_file_close(qkc_file *f)
{
    qkc_arena_block *b;
    if (!f)
        return;
    for (int s = 0; s < f->nshards; s++)
        qkc_file_close(f->shards[s]);
    qkc_free(f->ctx, f->shards);
    if (f->map)
        munmap(f->map, f->map_bytes);
    qkc_free(f->ctx, f->buffer);
    qkc_free(f->ctx, f->tensors);
    qkc_free(f->ctx, f->meta);
    qkc_free(f->ctx, f->by_name);
    b = f->arena;
    while (b) {
        qkc_arena_block *next = b->next;
        qkc_free(f->ctx, b);
        b = next;
    }
    qkc_free(f->ctx, f);
}

/* --------------------------------------------------------------- query */

qkc_status qkc_file_query(const qkc_file *f, qkc_file_info *out)
{
    if (!f || !out)
        return QKC_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->format = f->kind == QKC_FILE_GGUF ? "gguf" : "safetensors";
    out->version = f->version;
    out->tensors = f->ntensors;
    out->metadata = f->nmeta;
    out->alignment = f->kind == QKC_FILE_GGUF ? f->alignment : 0;
    out->bytes = f->size;
    for (int s = 0; s < f->nshards; s++)
        out->bytes += f->shards[s]->size;
    return QKC_OK;
}

qkc_status qkc_file_metadata(const qkc_file *f, int64_t index, qkc_file_meta *out)
{
    if (!f || !out)
        return QKC_ERR_INVALID_ARGUMENT;
    if (index < 0 || index >= f->nmeta)
        return qkc_fail(f->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_metadata: index %lld is outside [0, %lld)",
                        (long long)index, (long long)f->nmeta);
    out->key = f->meta[index].key;
    out->type = f->meta[index].type;
    out->count = f->meta[index].count;
    out->value = f->meta[index].text;
    return QKC_OK;
}

qkc_status qkc_file_metadata_bytes(const qkc_file *f, int64_t index, size_t *key_bytes, size_t *value_bytes)
{
    if (!f || !key_bytes || !value_bytes)
        return QKC_ERR_INVALID_ARGUMENT;
    if (index < 0 || index >= f->nmeta)
        return qkc_fail(f->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_metadata_bytes: index %lld is outside [0, %lld)",
                        (long long)index, (long long)f->nmeta);
    *key_bytes = f->meta[index].key_bytes;
    *value_bytes = f->meta[index].text_bytes;
    return QKC_OK;
}

qkc_status qkc_file_tensor(const qkc_file *f, int64_t index, qkc_tensor_info *out)
{
    const qkc_file_entry *t;
    if (!f || !out)
        return QKC_ERR_INVALID_ARGUMENT;
    if (index < 0 || index >= f->ntensors)
        return qkc_fail(f->ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_tensor: index %lld is outside [0, %lld)",
                        (long long)index, (long long)f->ntensors);
    t = &f->tensors[index];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = t->dtype;
    out->n_dims = t->n_dims;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->offset = t->offset;
    out->bytes = (size_t)t->bytes;
    out->data = qkc_file_tensor_data(f, t);
    out->runnable = t->runnable;
    out->n = t->runnable ? t->n : 0;
    out->k = t->runnable ? t->k : 0;
    out->weights = t->runnable ? t->weights : "";
    out->unsupported = t->runnable ? "" : t->reason ? t->reason : "";
    out->in_place = t->runnable && t->import == QKC_IMPORT_IN_PLACE;
    out->weights_bytes = t->runnable ? (size_t)t->blob_bytes : 0;
    return QKC_OK;
}

/* Edit distance of a and b (insertions, deletions, substitutions), or
 * `cap` + 1 once it must pass cap: one row of the table, names of up to
 * 255 bytes compared (longer ones are not suggested). */
static int edit_distance(const char *a, const char *b, int cap)
{
    int la = (int)strlen(a), lb = (int)strlen(b), row[256];
    if (la > 255 || lb > 255 || abs(la - lb) > cap)
        return cap + 1;
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0], best;
        row[0] = best = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            diag = up;
            row[j] = v;
            if (v < best)
                best = v;
        }
        if (best > cap)
            return cap + 1;
    }
    return row[lb];
}

/* ", did you mean 'x' or 'y'?" for the up to three names closest to
 * `name` (names that contain it first, then by edit distance within a
 * third of its length), or "" when none is close. */
static void suggest(const qkc_file *f, const char *name, char *out, size_t size)
{
    int64_t best[3] = {-1, -1, -1};
    int score[3] = {0, 0, 0}, cap = (int)strlen(name) / 3 + 1;
    size_t len = 0;
    out[0] = '\0';
    if (cap > 12)
        cap = 12;
    for (int64_t i = 0; i < f->ntensors; i++) {
        const char *t = f->tensors[i].name;
        int s = *name && strstr(t, name) ? 0 : 1 + edit_distance(name, t, cap);
        if (s > cap)
            continue;
        for (int r = 0; r < 3; r++)
            if (best[r] < 0 || s < score[r]) {
                for (int q = 2; q > r; q--)
                    best[q] = best[q - 1], score[q] = score[q - 1];
                best[r] = i, score[r] = s;
                break;
            }
    }
    for (int r = 0; r < 3 && best[r] >= 0 && len < size; r++)
        len += (size_t)snprintf(out + len, size - len, "%s'%.200s'", r == 0 ? "; did you mean " : r == 2 || best[r + 1] < 0 ? " or " : ", ",
                                f->tensors[best[r]].name);
    if (len && len < size)
        snprintf(out + len, size - len, "?");
}

qkc_status qkc_file_find(qkc_context *ctx, const qkc_file *f, const char *name, int64_t *index)
{
    static const char *const suffixes[] = {".qweight", ".weight"};
    int64_t i;
    if (!ctx || !f || !name || !index)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_find: NULL argument") : QKC_ERR_INVALID_ARGUMENT;
    if ((i = qkc_file_lookup(f, name)) >= 0) {
        *index = i;
        return QKC_OK;
    }
    /* A module prefix: its runnable weight first; else the weight that
     * does not run, so that the caller learns why (qkc_tensor_info's
     * unsupported, or the error of qkc_file_spec) instead of "no tensor". */
    {
        int64_t found = -1;
        for (size_t s = 0; s < 2; s++) {
            char buf[1024];
            int len = snprintf(buf, sizeof buf, "%s%s", name, suffixes[s]);
            if (len > 0 && (size_t)len < sizeof buf && (i = qkc_file_lookup(f, buf)) >= 0) {
                if (f->tensors[i].runnable) {
                    *index = i;
                    return QKC_OK;
                }
                if (found < 0)
                    found = i;
            }
        }
        if (found >= 0) {
            *index = found;
            return QKC_OK;
        }
    }
    {
        char hint[800];
        suggest(f, name, hint, sizeof hint);
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: no tensor named '%s'%s", f->path, name, hint);
    }
}

static qkc_status runnable_or_fail(qkc_context *ctx, const qkc_file *f, int64_t index, const char *fn)
{
    if (!f)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: file is NULL", fn);
    if (index < 0 || index >= f->ntensors)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "%s: index %lld is outside [0, %lld)", fn, (long long)index,
                        (long long)f->ntensors);
    if (!f->tensors[index].runnable)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "%s: tensor '%s' (%s) does not run in qkc: %s", fn,
                        f->tensors[index].name, f->tensors[index].dtype,
                        f->tensors[index].reason ? f->tensors[index].reason : "");
    return QKC_OK;
}

qkc_status qkc_file_spec(qkc_context *ctx, const qkc_file *f, int64_t index, const char *extra, qkc_spec **out)
{
    const qkc_file_entry *t;
    char *text;
    size_t len;
    qkc_status st;
    if (!ctx || !out)
        return ctx ? qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_spec: out is NULL") : QKC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if ((st = runnable_or_fail(ctx, f, index, "qkc_file_spec")))
        return st;
    t = &f->tensors[index];
    len = strlen(t->weights) + (extra ? strlen(extra) : 0) + 64;
    if (!(text = qkc_alloc(ctx, len)))
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_file_spec: out of memory");
    snprintf(text, len, "matmul n=%lld k=%lld %s %s", (long long)t->n, (long long)t->k, t->weights, extra ? extra : "");
    st = qkc_spec_parse(ctx, text, out);
    qkc_free(ctx, text);
    return st;
}

qkc_status qkc_file_weights(qkc_context *ctx, const qkc_file *f, int64_t index, void *dst, size_t dst_bytes)
{
    const qkc_file_entry *t;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = runnable_or_fail(ctx, f, index, "qkc_file_weights")))
        return st;
    t = &f->tensors[index];
    if (t->experts > 1)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_file_weights: '%s' is a stack of %lld experts: each has a blob of its own "
                        "(qkc_file_expert)",
                        t->name, (long long)t->experts);
    if (!dst)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_weights: dst is NULL");
    if (dst_bytes < t->blob_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "qkc_file_weights: dst holds %zu bytes, '%s' needs %" PRIu64,
                        dst_bytes, t->name, t->blob_bytes);
    if (t->import == QKC_IMPORT_IN_PLACE) {
        memcpy(dst, qkc_file_tensor_data(f, t), (size_t)t->blob_bytes);
        return QKC_OK;
    }
    return qkc_safetensors_import(ctx, f, t, (uint8_t *)dst);
}

qkc_status qkc_file_expert(qkc_context *ctx, const qkc_file *f, int64_t index, int64_t expert, const void **data,
                           int64_t *count)
{
    const qkc_file_entry *t;
    qkc_status st;
    int64_t e;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = runnable_or_fail(ctx, f, index, "qkc_file_expert")))
        return st;
    t = &f->tensors[index];
    e = t->experts > 1 ? t->experts : 1;
    if (expert < 0 || expert >= e)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_expert: expert %lld of '%s', which has %lld (0..%lld)",
                        (long long)expert, t->name, (long long)e, (long long)(e - 1));
    if (e > 1 && data)
        *data = qkc_file_tensor_data(f, t) + (size_t)expert * (size_t)t->blob_bytes;
    else if (data)
        *data = t->import == QKC_IMPORT_IN_PLACE ? qkc_file_tensor_data(f, t) : NULL;
    if (count)
        *count = e;
    return QKC_OK;
}
