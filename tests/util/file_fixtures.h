/*
 * Checkpoint fixtures for the file tests: the GGUF types qkc runs, and
 * reference packers that write GPTQ, AWQ and bitsandbytes NF4 tensors the
 * way their checkpoints store them (formats.md §3.5, §8) from random
 * codes, scales and zeros, together with the weights the formats' own
 * decoders give. The packers restate the layouts independently of qkc's
 * importers, so a test compares two implementations.
 */
#ifndef QKC_TESTS_FILE_FIXTURES_H
#define QKC_TESTS_FILE_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"
#include "file_writer.h"

typedef struct qkc_gguf_type_case {
    uint32_t ggml_type;
    const char *name;    /* the file's type name, as qkc_tensor_info.dtype */
    const char *weights; /* the spec fragment qkc reports */
} qkc_gguf_type_case;

/* Every GGUF type qkc runs; *count receives the number. */
const qkc_gguf_type_case *qkc_gguf_type_cases(size_t *count);

/* Random normal weights (seeded by `name`) quantized into the blob of
 * "matmul n=N k=K <weights>"; *blob is malloc'd. 0 on success. */
int qkc_fixture_blob(qkc_context *ctx, const char *weights, int64_t n, int64_t k, const char *name, void **blob,
                     size_t *bytes);

/* A quantized weight in a checkpoint's own tensors, and its reference
 * dequantization W[N][K] (row n = output n). */
typedef struct qkc_ckpt_fixture {
    qkc_st_writer st;
    qkc_bytes file;
    int64_t n, k;
    float *w;             /* N×K, what the format's decoder gives */
    char head[160];       /* name of the qweight / weight tensor */
    char weights[96];     /* spec fragment qkc should report */
    void *buf[8];         /* tensor storage */
} qkc_ckpt_fixture;

/* GPTQ: bits 2/3/4/8, group gs (0: one group over K), act-order
 * (g_idx a permuted grouping), v2 (qzeros hold zero, and the metadata says
 * checkpoint_format gptq_v2 when v2_meta). Zeros in [1, maxq]. */
int qkc_fixture_gptq(qkc_ckpt_fixture *fx, const char *prefix, int bits, int64_t n, int64_t k, int64_t gs,
                     int actorder, int v2, int v2_meta, const char *seed);
/* AWQ gemm: 4-bit, N % 8 == 0, gs divides K. */
int qkc_fixture_awq(qkc_ckpt_fixture *fx, const char *prefix, int64_t n, int64_t k, int64_t gs, const char *seed);
/* bitsandbytes NF4, block size bs, nested (double) quantization when dq. */
int qkc_fixture_bnb(qkc_ckpt_fixture *fx, const char *prefix, int64_t n, int64_t k, int64_t bs, int dq,
                    const char *seed);
void qkc_fixture_free(qkc_ckpt_fixture *fx);

#endif
