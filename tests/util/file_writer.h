/*
 * Writers of checkpoint files for tests: a small GGUF writer (formats.md
 * §1) and a safetensors writer (§8), so tests make their own files. They
 * write exactly what they are told (names, types, dims, offsets), which is
 * also how the malformed-file suite builds its corruptions: write a valid
 * file, then patch the bytes at the recorded positions.
 */
#ifndef QKC_TESTS_FILE_WRITER_H
#define QKC_TESTS_FILE_WRITER_H

#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. Appends after an allocation failure are ignored
 * and set `oom`. */
typedef struct qkc_bytes {
    uint8_t *data;
    size_t len, cap;
    int oom;
} qkc_bytes;

void qkc_bytes_put(qkc_bytes *b, const void *p, size_t n);
void qkc_bytes_u8(qkc_bytes *b, uint8_t v);
void qkc_bytes_u16(qkc_bytes *b, uint16_t v);
void qkc_bytes_u32(qkc_bytes *b, uint32_t v);
void qkc_bytes_u64(qkc_bytes *b, uint64_t v);
/* A GGUF string: uint64 length, then the bytes (no NUL). */
void qkc_bytes_gguf_str(qkc_bytes *b, const char *s);
void qkc_bytes_free(qkc_bytes *b);
/* Overwrite little-endian fields at an offset (the buffer must hold them). */
void qkc_bytes_set_u32(qkc_bytes *b, size_t pos, uint32_t v);
void qkc_bytes_set_u64(qkc_bytes *b, size_t pos, uint64_t v);
/* Write to a file; 0 on success. */
int qkc_bytes_save(const qkc_bytes *b, const char *path);

/* ------------------------------------------------------------------ GGUF */

#define QKC_WRITER_MAX_TENSORS 64

/* GGUF metadata value type ids (formats.md §1.2). */
enum {
    QKC_GGUF_U8 = 0, QKC_GGUF_I8 = 1, QKC_GGUF_U16 = 2, QKC_GGUF_I16 = 3, QKC_GGUF_U32 = 4, QKC_GGUF_I32 = 5,
    QKC_GGUF_F32 = 6, QKC_GGUF_BOOL = 7, QKC_GGUF_STRING = 8, QKC_GGUF_ARRAY = 9, QKC_GGUF_U64 = 10,
    QKC_GGUF_I64 = 11, QKC_GGUF_F64 = 12
};

typedef struct qkc_gguf_tensor {
    char name[128];
    uint32_t type;       /* ggml type id */
    uint32_t n_dims;
    uint64_t dims[4];    /* ggml order: dims[0] = ne[0], the contiguous one */
    const void *data;
    size_t bytes;
} qkc_gguf_tensor;

typedef struct qkc_gguf_writer {
    uint32_t version;    /* default 3 */
    uint32_t alignment;  /* padding of the data; default 32. Add general.alignment yourself if not 32. */
    qkc_bytes kv;        /* encoded key/value pairs */
    uint64_t nkv;
    qkc_gguf_tensor tensors[QKC_WRITER_MAX_TENSORS];
    int ntensors;
    /* Filled by qkc_gguf_finish: where things landed in the output. */
    size_t kv_pos;                               /* first KV pair */
    size_t info_pos[QKC_WRITER_MAX_TENSORS];     /* each tensor info record (its name length) */
    size_t data_start;
    size_t data_pos[QKC_WRITER_MAX_TENSORS];     /* absolute position of each tensor's data */
} qkc_gguf_writer;

void qkc_gguf_init(qkc_gguf_writer *w);
void qkc_gguf_kv_u32(qkc_gguf_writer *w, const char *key, uint32_t v);
void qkc_gguf_kv_str(qkc_gguf_writer *w, const char *key, const char *v);
/* A KV with a value of `type` whose encoding (after the type id) is the
 * raw bytes given: for any scalar, array or deliberately broken value. */
void qkc_gguf_kv_raw(qkc_gguf_writer *w, const char *key, uint32_t type, const void *value, size_t bytes);
/* 0 on success, -1 when the table is full. Data is not copied. */
int qkc_gguf_add_tensor(qkc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *dims,
                        const void *data, size_t bytes);
/* Header, KVs, tensor infos (offsets packed in order, each aligned), then
 * the data, each tensor padded with zeros to the alignment. */
int qkc_gguf_finish(qkc_gguf_writer *w, qkc_bytes *out);
void qkc_gguf_free(qkc_gguf_writer *w);

/* ----------------------------------------------------------- safetensors */

typedef struct qkc_st_tensor {
    char name[160];
    char dtype[16];      /* "F16", "I32", "U8", ... */
    int n_dims;
    int64_t shape[4];    /* row-major, outermost first */
    const void *data;
    size_t bytes;
} qkc_st_tensor;

typedef struct qkc_st_writer {
    qkc_st_tensor tensors[QKC_WRITER_MAX_TENSORS];
    int ntensors;
    char meta_key[8][64], meta_value[8][64];
    int nmeta;
    size_t data_pos[QKC_WRITER_MAX_TENSORS]; /* absolute, after finish */
    size_t header_len;
} qkc_st_writer;

void qkc_st_init(qkc_st_writer *w);
int qkc_st_add(qkc_st_writer *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
               const void *data, size_t bytes);
void qkc_st_meta(qkc_st_writer *w, const char *key, const char *value);
/* The 8-byte length, the JSON header padded with spaces to a multiple of
 * 8, the data back to back in the order added. */
int qkc_st_finish(qkc_st_writer *w, qkc_bytes *out);

/* A large safetensors file for header tests: `tensors` BF16 [2, 1]
 * tensors named "l.<i>.w", whose 4 data bytes hold i (little-endian), and
 * `meta` metadata entries "k<i>": "v<i>" (first), in a header of about
 * 70 bytes per tensor. 0 on success. */
int qkc_st_many(qkc_bytes *out, int64_t tensors, int64_t meta);

#endif
