/*
 * Targets: a table of descriptors. Generic code generation asks a target
 * only through this struct — its features, its vector width and a few emit
 * hooks — so adding a target is one file here and a row in the table.
 * Features are explicit bits, never ordered levels.
 */
#ifndef QKC_TARGETS_TARGET_H
#define QKC_TARGETS_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "ir/diag.h"

/* Architectures. A target's feature bits are read with its arch: each
 * architecture numbers its own features from bit 0. */
enum {
    QKC_ARCH_X86_64 = 0,
    QKC_ARCH_AARCH64 = 1,
    QKC_ARCH_NVPTX = 2
};

/* x86-64 features */
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
    QKC_FEAT_AVX512_VBMI = 1u << 12
};

/* NVIDIA GPU features (targets/nvptx.c): the compute capability a kernel
 * needs. */
enum { QKC_FEAT_SM_80 = 1u << 0, QKC_FEAT_SM_90 = 1u << 1 };

/* AArch64 features */
enum {
    QKC_FEAT_NEON = 1u << 0,    /* AdvSIMD (and fp-armv8) */
    QKC_FEAT_FP16 = 1u << 1,    /* FEAT_FP16: half-precision arithmetic */
    QKC_FEAT_DOTPROD = 1u << 2, /* FEAT_DotProd: sdot / udot */
    QKC_FEAT_I8MM = 1u << 3,    /* FEAT_I8MM: smmla / ummla / usmmla, usdot */
    QKC_FEAT_BF16 = 1u << 4     /* FEAT_BF16: bfdot / bfmmla / bfcvt */
};

typedef struct qkc_target {
    char name[32];          /* "x86_64-avx512", "aarch64-neon-dotprod", ...; "host" resolves to the host's */
    int arch;               /* QKC_ARCH_*: how `features` is read */
    const char *triple;
    char cpu[64];           /* LLVM CPU name */
    char llvm_features[512];/* "+avx2,+fma,..." passed to LLVM */
    uint32_t features;      /* QKC_FEAT_* of `arch` */
    int vector_bits;        /* widest vector register the kernels use: 256 or 512 (x86), 128 (NEON) */
} qkc_target;

/* The named targets, for `qkc targets`. */
int qkc_target_count(void);
const char *qkc_target_name(int index);

/* Resolve a target by name: "host" (or NULL/empty: the host) or one of
 * qkc_target_name's. (Callers with a context pass qkc_config_target's
 * answer, which honours QKC_TARGET.)
 * Fails with QKC_ERR_NO_DEVICE when `require_host` is set (a JIT must run
 * what it compiles) and the host is of another architecture or lacks a
 * named target's features. */
qkc_status qkc_target_resolve(const char *name, int require_host, qkc_target *out, qkc_diag *diag);

/* The architecture of the machine this runs on (QKC_ARCH_*; -1: one qkc
 * has no targets for) and its feature bits, read with that architecture. */
int qkc_target_host_arch(void);
uint32_t qkc_target_host_features(void);

/* Does this machine run code for target t (same arch, every feature)? */
int qkc_target_runs_here(const qkc_target *t);

/* "x86_64", "aarch64", "nvptx" */
const char *qkc_target_arch_name(int arch);

/* Feature names of `arch`: "avx2 fma f16c avx512f ...", "neon dotprod ..." */
void qkc_target_features_string(int arch, uint32_t features, char *buf, size_t size);

/* ------------------------------------------------ one file per family */

/* What targets/target.c asks each family (targets/x86_64.c,
 * targets/aarch64.c): its named targets, its host detection (0 features
 * on a host of another architecture), its feature names, and how to
 * fill a target. */
typedef struct qkc_target_family {
    int arch;
    int count;                          /* named targets */
    const char *(*name)(int index);     /* index < count */
    uint32_t (*host_features)(void);
    void (*features_string)(uint32_t features, char *buf, size_t size);
    /* Fill *out for one of its named targets: 1, or 0 when the name is
     * not one of the family's. */
    int (*fill_named)(const char *name, qkc_target *out);
    /* Fill *out with "host" when this machine is of the family's arch;
     * QKC_ERR_NO_DEVICE when it cannot run the family's kernels. */
    qkc_status (*fill_host)(qkc_target *out, qkc_diag *diag);
} qkc_target_family;

extern const qkc_target_family qkc_target_family_x86_64;
extern const qkc_target_family qkc_target_family_aarch64;
extern const qkc_target_family qkc_target_family_nvptx;

/* Writes "a, b, c" of every named target into buf (for messages). */
void qkc_target_names_list(char *buf, size_t size);

#endif
