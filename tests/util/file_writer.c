/* Test writers for GGUF and safetensors files (file_writer.h). */
#include "file_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qkc_bytes_put(qkc_bytes *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *d;
        while (cap - b->len < n)
            cap *= 2;
        if (!(d = realloc(b->data, cap))) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void qkc_bytes_u8(qkc_bytes *b, uint8_t v)
{
    qkc_bytes_put(b, &v, 1);
}

static void put_le(qkc_bytes *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    qkc_bytes_put(b, t, (size_t)n);
}

void qkc_bytes_u16(qkc_bytes *b, uint16_t v) { put_le(b, v, 2); }
void qkc_bytes_u32(qkc_bytes *b, uint32_t v) { put_le(b, v, 4); }
void qkc_bytes_u64(qkc_bytes *b, uint64_t v) { put_le(b, v, 8); }

void qkc_bytes_gguf_str(qkc_bytes *b, const char *s)
{
    qkc_bytes_u64(b, strlen(s));
    qkc_bytes_put(b, s, strlen(s));
}

void qkc_bytes_free(qkc_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void qkc_bytes_set_u32(qkc_bytes *b, size_t pos, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->data[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
}

void qkc_bytes_set_u64(qkc_bytes *b, size_t pos, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b->data[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
}

int qkc_bytes_save(const qkc_bytes *b, const char *path)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f)
        return -1;
    ok = fwrite(b->data, 1, b->len, f) == b->len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* ------------------------------------------------------------------ GGUF */

void qkc_gguf_init(qkc_gguf_writer *w)
{
    memset(w, 0, sizeof *w);
    w->version = 3;
    w->alignment = 32;
}

void qkc_gguf_kv_raw(qkc_gguf_writer *w, const char *key, uint32_t type, const void *value, size_t bytes)
{
    qkc_bytes_gguf_str(&w->kv, key);
    qkc_bytes_u32(&w->kv, type);
    qkc_bytes_put(&w->kv, value, bytes);
    w->nkv++;
}

void qkc_gguf_kv_u32(qkc_gguf_writer *w, const char *key, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    qkc_gguf_kv_raw(w, key, QKC_GGUF_U32, t, 4);
}

void qkc_gguf_kv_str(qkc_gguf_writer *w, const char *key, const char *v)
{
    qkc_bytes s = {0};
    qkc_bytes_gguf_str(&s, v);
    qkc_gguf_kv_raw(w, key, QKC_GGUF_STRING, s.data, s.len);
    qkc_bytes_free(&s);
}

int qkc_gguf_add_tensor(qkc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *dims,
                        const void *data, size_t bytes)
{
    qkc_gguf_tensor *t;
    if (w->ntensors >= QKC_WRITER_MAX_TENSORS || n_dims > 4)
        return -1;
    t = &w->tensors[w->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->dims, dims, n_dims * sizeof *dims);
    t->data = data;
    t->bytes = bytes;
    return 0;
}

static size_t pad(size_t x, size_t a)
{
    return (a - x % a) % a;
}

int qkc_gguf_finish(qkc_gguf_writer *w, qkc_bytes *out)
{
    static const uint8_t zeros[64];
    uint64_t off = 0;
    memset(out, 0, sizeof *out);
    qkc_bytes_put(out, "GGUF", 4);
    qkc_bytes_u32(out, w->version);
    qkc_bytes_u64(out, (uint64_t)w->ntensors);
    qkc_bytes_u64(out, w->nkv);
    w->kv_pos = out->len;
    qkc_bytes_put(out, w->kv.data, w->kv.len);
    for (int i = 0; i < w->ntensors; i++) {
        qkc_gguf_tensor *t = &w->tensors[i];
        w->info_pos[i] = out->len;
        qkc_bytes_gguf_str(out, t->name);
        qkc_bytes_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            qkc_bytes_u64(out, t->dims[d]);
        qkc_bytes_u32(out, t->type);
        qkc_bytes_u64(out, off);
        off += t->bytes + pad(t->bytes, w->alignment);
    }
    qkc_bytes_put(out, zeros, pad(out->len, w->alignment));
    w->data_start = out->len;
    for (int i = 0; i < w->ntensors; i++) {
        qkc_gguf_tensor *t = &w->tensors[i];
        w->data_pos[i] = out->len;
        qkc_bytes_put(out, t->data, t->bytes);
        for (size_t p = pad(t->bytes, w->alignment); p > 0; p -= p < 64 ? p : 64)
            qkc_bytes_put(out, zeros, p < 64 ? p : 64);
    }
    return out->oom || w->kv.oom ? -1 : 0;
}

void qkc_gguf_free(qkc_gguf_writer *w)
{
    qkc_bytes_free(&w->kv);
}

/* ----------------------------------------------------------- safetensors */

void qkc_st_init(qkc_st_writer *w)
{
    memset(w, 0, sizeof *w);
}

int qkc_st_add(qkc_st_writer *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
               const void *data, size_t bytes)
{
    qkc_st_tensor *t;
    if (w->ntensors >= QKC_WRITER_MAX_TENSORS || n_dims > 4 || n_dims < 0)
        return -1;
    t = &w->tensors[w->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    t->data = data;
    t->bytes = bytes;
    return 0;
}

void qkc_st_meta(qkc_st_writer *w, const char *key, const char *value)
{
    if (w->nmeta < 8) {
        snprintf(w->meta_key[w->nmeta], sizeof w->meta_key[0], "%s", key);
        snprintf(w->meta_value[w->nmeta], sizeof w->meta_value[0], "%s", value);
        w->nmeta++;
    }
}

static void put_str(qkc_bytes *b, const char *s)
{
    qkc_bytes_put(b, s, strlen(s));
}

int qkc_st_finish(qkc_st_writer *w, qkc_bytes *out)
{
    qkc_bytes h = {0};
    char buf[256];
    size_t off = 0;
    put_str(&h, "{");
    if (w->nmeta) {
        put_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            snprintf(buf, sizeof buf, "%s\"%s\":\"%s\"", i ? "," : "", w->meta_key[i], w->meta_value[i]);
            put_str(&h, buf);
        }
        put_str(&h, "}");
    }
    for (int i = 0; i < w->ntensors; i++) {
        qkc_st_tensor *t = &w->tensors[i];
        snprintf(buf, sizeof buf, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (i || w->nmeta) ? "," : "", t->name,
                 t->dtype);
        put_str(&h, buf);
        for (int d = 0; d < t->n_dims; d++) {
            snprintf(buf, sizeof buf, "%s%" PRId64, d ? "," : "", t->shape[d]);
            put_str(&h, buf);
        }
        snprintf(buf, sizeof buf, "],\"data_offsets\":[%zu,%zu]}", off, off + t->bytes);
        put_str(&h, buf);
        off += t->bytes;
    }
    put_str(&h, "}");
    while (h.len % 8)
        put_str(&h, " ");
    memset(out, 0, sizeof *out);
    qkc_bytes_u64(out, h.len);
    qkc_bytes_put(out, h.data, h.len);
    w->header_len = h.len;
    off = out->len;
    for (int i = 0; i < w->ntensors; i++) {
        w->data_pos[i] = out->len;
        qkc_bytes_put(out, w->tensors[i].data, w->tensors[i].bytes);
    }
    (void)off;
    qkc_bytes_free(&h);
    return out->oom ? -1 : 0;
}

int qkc_st_many(qkc_bytes *out, int64_t tensors, int64_t meta)
{
    qkc_bytes h = {0};
    char buf[160];
    memset(out, 0, sizeof *out);
    put_str(&h, "{");
    if (meta) {
        put_str(&h, "\"__metadata__\":{");
        for (int64_t i = 0; i < meta; i++) {
            snprintf(buf, sizeof buf, "%s\"k%" PRId64 "\":\"v%" PRId64 "\"", i ? "," : "", i, i);
            put_str(&h, buf);
        }
        put_str(&h, "}");
    }
    for (int64_t i = 0; i < tensors; i++) {
        snprintf(buf, sizeof buf, "%s\"l.%" PRId64 ".w\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[%" PRId64
                 ",%" PRId64 "]}",
                 (i || meta) ? "," : "", i, 4 * i, 4 * i + 4);
        put_str(&h, buf);
    }
    put_str(&h, "}");
    while (h.len % 8)
        put_str(&h, " ");
    qkc_bytes_u64(out, h.len);
    qkc_bytes_put(out, h.data, h.len);
    for (int64_t i = 0; i < tensors; i++)
        qkc_bytes_u32(out, (uint32_t)i);
    if (h.oom)
        out->oom = 1;
    qkc_bytes_free(&h);
    return out->oom ? -1 : 0;
}
