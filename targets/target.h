/*
 * Targets: a table of descriptors. Generic code generation asks a target
 * only through this struct — its features, its vector width and a few emit
 * hooks — so adding a target is one file here and a row in the table.
 * Features are explicit bits, never ordered levels.
 */
#ifndef QKC_TARGETS_TARGET_H
#define QKC_TARGETS_TARGET_H

#include <stdint.h>

#include "ir/diag.h"

enum {
    QKC_FEAT_SSE42 = 1u << 0,
    QKC_FEAT_AVX2 = 1u << 1,
    QKC_FEAT_FMA = 1u << 2,
    QKC_FEAT_F16C = 1u << 3,
    QKC_FEAT_AVX512F = 1u << 4,
    QKC_FEAT_AVX512BW = 1u << 5,
    QKC_FEAT_AVX512VL = 1u << 6,
    QKC_FEAT_AVX512DQ = 1u << 7,
    QKC_FEAT_AVX512_VNNI = 1u << 8,
    QKC_FEAT_AVX512_BF16 = 1u << 9,
    QKC_FEAT_AVX512_FP16 = 1u << 10,
    QKC_FEAT_AVX_VNNI = 1u << 11,
    QKC_FEAT_AVX512_VBMI = 1u << 12,
    /* NVIDIA GPUs (targets/nvptx.c): the compute capability a kernel needs. */
    QKC_FEAT_SM_80 = 1u << 24,
    QKC_FEAT_SM_90 = 1u << 25
};

/* The architecture family of a target. */
enum { QKC_ARCH_X86_64 = 0, QKC_ARCH_AARCH64 = 1, QKC_ARCH_NVPTX = 2 };

typedef struct qkc_target {
    char name[32];          /* "x86_64-avx512", "x86_64-avx2", "host" resolves to one of them */
    int arch;               /* QKC_ARCH_* */
    const char *triple;
    char cpu[64];           /* LLVM CPU name */
    char llvm_features[512];/* "+avx2,+fma,..." passed to LLVM */
    uint32_t features;      /* QKC_FEAT_* */
    int vector_bits;        /* widest vector register the kernels use: 256 or 512 */
} qkc_target;

/* The named targets, for `qkc targets`. */
int qkc_target_count(void);
const char *qkc_target_name(int index);

/* Resolve a target by name: "host" (or NULL/empty: the QKC_TARGET
 * environment variable, else the host), "x86_64-avx512", "x86_64-avx2".
 * Fails with QKC_ERR_NO_DEVICE when the host lacks a named target's
 * features and `require_host` is set (a JIT must run what it compiles). */
qkc_status qkc_target_resolve(const char *name, int require_host, qkc_target *out, qkc_diag *diag);

/* NVIDIA targets (targets/nvptx.c), hooked into the list above: how many,
 * their names, and resolving one (returns 1 and fills *out when `name`
 * is an NVPTX target, else 0). They never run as CPU code. */
int qkc_nvptx_target_count(void);
const char *qkc_nvptx_target_name(int index);
int qkc_nvptx_target_resolve(const char *name, qkc_target *out);

/* Feature bits of the machine this runs on. */
uint32_t qkc_target_host_features(void);

/* "avx2 fma f16c avx512f ..." */
void qkc_target_features_string(uint32_t features, char *buf, size_t size);

#endif
