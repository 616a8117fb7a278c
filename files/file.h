/*
 * Checkpoint files (GGUF, safetensors) as the runtime sees them: one table
 * of tensors with, for each, the matrix it can run as (format, N, K) and
 * how its qkc weight blob is made (the file's bytes in place, or imported
 * from several named tensors). The readers (gguf.c, safetensors.c) fill
 * the table; file.c is the public face (qkc_file_*).
 *
 * Every count, size and offset the readers take from a file is checked
 * against the file size before it is used; a reader never reads outside
 * [data, data + size).
 */
#ifndef QKC_RUNTIME_FILE_H
#define QKC_RUNTIME_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "ir/checked.h"
#include "ir/format.h"
#include "qkc/qkc.h"

enum { QKC_FILE_GGUF = 1, QKC_FILE_SAFETENSORS = 2 };

/* How a runnable tensor's weight blob is made. */
typedef enum qkc_import {
    QKC_IMPORT_IN_PLACE = 0, /* the blob is the tensor's own bytes (DATA at 0, nothing else) */
    QKC_IMPORT_GPTQ = 1,     /* qweight, qzeros, scales, g_idx → gptq sections */
    QKC_IMPORT_AWQ = 2,      /* qweight, qzeros, scales → awq sections */
    QKC_IMPORT_BNB = 3,      /* weight, absmax, nested_absmax, nested_quant_map → nf4_bnb */
    QKC_IMPORT_FP8 = 4,      /* F8 weight, weight_scale or weight_scale_inv → fp8e4m3/fp8e5m2 with f32/bf16 scales */
    QKC_IMPORT_CT = 5        /* compressed-tensors pack-quantized: weight_packed, weight_scale, weight_zero_point → intB / uintB zero=int */
} qkc_import;

/* Member tensors of an import, by role (indices into the table, -1 absent). */
enum {
    QKC_MEMBER_QWEIGHT = 0, /* bnb: weight */
    QKC_MEMBER_QZEROS = 1,  /* bnb: quant_map */
    QKC_MEMBER_SCALES = 2,  /* bnb: absmax */
    QKC_MEMBER_GIDX = 3,    /* bnb: nested_absmax */
    QKC_MEMBER_EXTRA = 4,   /* bnb: nested_quant_map */
    QKC_MEMBER_COUNT = 5
};

typedef struct qkc_file_entry {
    const char *name;     /* NUL-terminated, in the file's arena */
    const char *dtype;    /* static: the file's type name */
    /* runnable: the spec fragment ("w=q4_k", "w=gptq:4:actorder group=128"),
     * static or in the arena. Not runnable: reason says why (static or in
     * the arena; NULL only while the readers classify). */
    const char *weights;
    const char *reason;
    int64_t shape[4];     /* outermost first (GGUF dims reversed) */
    uint64_t offset;      /* absolute byte offset of the data in the file */
    uint64_t bytes;
    int64_t n, k;         /* runnable: the N x K matrix */
    uint64_t blob_bytes;  /* runnable: bytes of the qkc weight blob */
    int64_t part_of;      /* index of the tensor this one is imported into, or -1 */
    int64_t member[QKC_MEMBER_COUNT];
    int n_dims;
    int runnable;
    qkc_import import;
    int gptq_v2;          /* qzeros hold zero, not zero − 1 */
    float nested_offset;  /* bnb dq */
    int fp8_block;        /* fp8 import: B of B x B block scales (weight_scale_inv), expanded per row; 0: none */
    int shard;            /* 0: this file; s: shard s − 1 of a sharded checkpoint (offset is in that file) */
    int64_t experts;      /* runnable: E matrices of blob_bytes each, back to back (a MoE expert stack); 0 or 1: one */
} qkc_file_entry;

typedef struct qkc_file_meta_rec {
    const char *key;      /* in the arena, NUL-terminated after key_bytes */
    const char *type;     /* static: "u32", "string", "array", ... */
    int64_t count;        /* array elements (1 for scalars) */
    const char *text;     /* printable value, in the arena, NUL-terminated after text_bytes */
    size_t key_bytes;     /* GGUF keys and strings have a length and may hold NUL bytes */
    size_t text_bytes;
} qkc_file_meta_rec;

typedef struct qkc_arena_block qkc_arena_block;

struct qkc_file {
    qkc_context *ctx;
    int kind;
    int version;
    const uint8_t *data;
    size_t size;
    void *map;            /* mmap'd region to release, or NULL */
    size_t map_bytes;
    void *buffer;         /* read mode: the allocation holding data, or NULL */
    uint64_t alignment;   /* GGUF */
    int gptq_version;     /* option: 0 auto, 1, 2 */
    const char *path;     /* for messages */
    qkc_file_entry *tensors;
    int64_t ntensors;
    qkc_file_meta_rec *meta;
    int64_t nmeta;
    int64_t *by_name;     /* tensor indices sorted by name */
    qkc_arena_block *arena;
    /* a sharded safetensors checkpoint (data: its index JSON): the shards,
     * each an open safetensors file owned by this one */
    struct qkc_file **shards;
    int nshards;
};

/* The bytes of tensor t, in this file or in its shard. */
static inline const uint8_t *qkc_file_tensor_data(const struct qkc_file *f, const qkc_file_entry *t)
{
    return (t->shard ? f->shards[t->shard - 1]->data : f->data) + t->offset;
}

/* A copy of s[0..len) plus NUL in the file's arena; NULL when out of memory. */
char *qkc_file_strdup(qkc_file *f, const char *s, size_t len);
/* printf into the arena (at most 511 bytes). */
char *qkc_file_printf(qkc_file *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Mark t not runnable, with the reason printf'd into the arena. QKC_OK, or
 * QKC_ERR_NO_MEMORY with the context message set. */
qkc_status qkc_file_reason(qkc_file *f, qkc_file_entry *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Fill the table from f->data/f->size. Return a status with the context
 * message set; the caller frees what was allocated either way. */
qkc_status qkc_gguf_read(qkc_file *f);
qkc_status qkc_safetensors_read(qkc_file *f);
/* A sharded safetensors checkpoint from its index (f->data: the JSON of
 * model.safetensors.index.json; f->path its path): every shard its
 * weight_map names is opened with `options` from the index's folder, and
 * their tensors are classified as one table (entries carry their shard). */
qkc_status qkc_safetensors_read_index(qkc_file *f, const qkc_file_options *options);

/* Mark t runnable as format text `weights` (static storage, e.g. "w=q4_k",
 * or in the arena) for an N×K matrix, or record why not (the verifier's
 * message). Sets blob_bytes; *layout (may be NULL) receives the blob's
 * layout when runnable. QKC_OK, or QKC_ERR_NO_MEMORY for the reason. */
qkc_status qkc_file_set_matrix(qkc_file *f, qkc_file_entry *t, int64_t n, int64_t k, const char *weights,
                               qkc_weight_layout *layout);

/* The format and blob layout of a runnable tensor (computed again from its
 * spec fragment, so entries stay small). QKC_ERR_INTERNAL if it does not
 * parse, which classification rules out. */
qkc_status qkc_file_layout(qkc_context *ctx, const qkc_file_entry *t, qkc_format *format, qkc_weight_layout *layout);

/* Refuse tensors whose data overlap (zero-byte tensors overlap nothing). */
qkc_status qkc_file_check_overlap(qkc_file *f, const char *format_name);

/* Sort the names into by_name; refuses duplicate names (CORRUPT_DATA). */
qkc_status qkc_file_index_names(qkc_file *f, const char *format_name);

/* Index of the tensor named `name`, or -1 (needs by_name). */
int64_t qkc_file_lookup(const qkc_file *f, const char *name);

/* Make room for record i of a table that grows as the file is read (so a
 * count the file does not back costs no memory): *arr is replaced by a
 * larger zero-filled copy when needed. 0, or -1 when out of memory (*arr
 * is then unchanged and still owned by the caller). */
int qkc_file_grow(qkc_file *f, void **arr, size_t *cap, size_t elem, uint64_t i);

/* Write the blob of an imported tensor into dst (dst_bytes >= blob_bytes). */
qkc_status qkc_safetensors_import(qkc_context *ctx, const qkc_file *f, const qkc_file_entry *t, uint8_t *dst);

#endif /* QKC_RUNTIME_FILE_H */
