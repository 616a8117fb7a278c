/*
 * x86-64 targets.
 *
 * ISA assumptions: every target has SSE4.2; "x86_64-avx2" adds AVX2, FMA
 * and F16C and uses 256-bit vectors; "x86_64-avx512" adds AVX-512
 * F/BW/VL/DQ and uses 512-bit vectors; "x86_64-avx512-vnni" adds
 * AVX512_VNNI (vpdpbusd on zmm for the int8 path). AVX512_VBMI (vpermb)
 * is used when the host has it (unpacking two 4-bit chunks at once in the
 * int8 path); no named target requires it. "host" is the machine
 * we run on, with exactly its features. Kernels compiled for a named
 * target get that target's generic CPU (x86-64-v3 / x86-64-v4) and an
 * explicit feature list, so LLVM never uses an instruction the target
 * does not name — that is what lets one machine test every lower path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets/target.h"

typedef struct named_target {
    const char *name;
    const char *cpu;
    uint32_t features;
} named_target;

#define BASE_AVX2 (QKC_FEAT_SSE42 | QKC_FEAT_AVX2 | QKC_FEAT_FMA | QKC_FEAT_F16C)
#define BASE_AVX512 (BASE_AVX2 | QKC_FEAT_AVX512F | QKC_FEAT_AVX512BW | QKC_FEAT_AVX512VL | QKC_FEAT_AVX512DQ)

static const named_target named[] = {
    {"x86_64-avx2", "x86-64-v3", BASE_AVX2},
    {"x86_64-avx512", "x86-64-v4", BASE_AVX512},
    {"x86_64-avx512-vnni", "x86-64-v4", BASE_AVX512 | QKC_FEAT_AVX512_VNNI},
};

static const struct {
    uint32_t bit;
    const char *name;     /* qkc's name */
    const char *llvm;     /* LLVM feature */
} feature_names[] = {
    {QKC_FEAT_SSE42, "sse4.2", "sse4.2"},       {QKC_FEAT_AVX2, "avx2", "avx2"},
    {QKC_FEAT_FMA, "fma", "fma"},               {QKC_FEAT_F16C, "f16c", "f16c"},
    {QKC_FEAT_AVX512F, "avx512f", "avx512f"},   {QKC_FEAT_AVX512BW, "avx512bw", "avx512bw"},
    {QKC_FEAT_AVX512VL, "avx512vl", "avx512vl"}, {QKC_FEAT_AVX512DQ, "avx512dq", "avx512dq"},
    {QKC_FEAT_AVX512_VNNI, "avx512_vnni", "avx512vnni"}, {QKC_FEAT_AVX512_BF16, "avx512_bf16", "avx512bf16"},
    {QKC_FEAT_AVX512_FP16, "avx512_fp16", "avx512fp16"}, {QKC_FEAT_AVX_VNNI, "avx_vnni", "avxvnni"},
    {QKC_FEAT_AVX512_VBMI, "avx512_vbmi", "avx512vbmi"},
    {QKC_FEAT_SM_80, "sm_80", NULL},             {QKC_FEAT_SM_90, "sm_90", NULL}, /* nvptx.c */
};

int qkc_target_count(void)
{
    return (int)(sizeof named / sizeof named[0]) + 1 + qkc_nvptx_target_count();
}

const char *qkc_target_name(int index)
{
    if (index == 0)
        return "host";
    if (index > 0 && index <= (int)(sizeof named / sizeof named[0]))
        return named[index - 1].name;
    return qkc_nvptx_target_name(index - 1 - (int)(sizeof named / sizeof named[0]));
}

uint32_t qkc_target_host_features(void)
{
    uint32_t f = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        f |= QKC_FEAT_SSE42;
    if (__builtin_cpu_supports("avx2"))
        f |= QKC_FEAT_AVX2;
    if (__builtin_cpu_supports("fma"))
        f |= QKC_FEAT_FMA;
    if (__builtin_cpu_supports("avx512f"))
        f |= QKC_FEAT_AVX512F;
    if (__builtin_cpu_supports("avx512bw"))
        f |= QKC_FEAT_AVX512BW;
    if (__builtin_cpu_supports("avx512vl"))
        f |= QKC_FEAT_AVX512VL;
    if (__builtin_cpu_supports("avx512dq"))
        f |= QKC_FEAT_AVX512DQ;
    if (__builtin_cpu_supports("avx512vnni"))
        f |= QKC_FEAT_AVX512_VNNI;
    if (__builtin_cpu_supports("avx512bf16"))
        f |= QKC_FEAT_AVX512_BF16;
#if !defined(__clang__) || __clang_major__ >= 16
    /* clang before 16 has no name for these two (the fuzz builds use
     * Debian's clang 14): such a build leaves them off */
    if (__builtin_cpu_supports("avx512fp16"))
        f |= QKC_FEAT_AVX512_FP16;
    if (__builtin_cpu_supports("avxvnni"))
        f |= QKC_FEAT_AVX_VNNI;
#endif
    if (__builtin_cpu_supports("avx512vbmi"))
        f |= QKC_FEAT_AVX512_VBMI;
    /* F16C has no __builtin_cpu_supports name in every GCC; every CPU with
     * AVX2 and FMA that qkc targets has it (Haswell and later, Zen). */
    if (f & QKC_FEAT_AVX2)
        f |= QKC_FEAT_F16C;
#endif
    return f;
}

void qkc_target_features_string(uint32_t features, char *buf, size_t size)
{
    size_t n = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (features & feature_names[i].bit) {
            int w = snprintf(buf + n, n < size ? size - n : 0, "%s%s", n ? " " : "", feature_names[i].name);
            if (w > 0)
                n += (size_t)w;
        }
}

static void llvm_feature_string(uint32_t features, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++) {
        int w;
        if (!feature_names[i].llvm)
            continue; /* not an x86 feature */
        w = snprintf(buf + n, n < size ? size - n : 0, "%s%c%s", n ? "," : "",
                         (features & feature_names[i].bit) ? '+' : '-', feature_names[i].llvm);
        if (w > 0)
            n += (size_t)w;
    }
    /* Parts of x86-64-v4 qkc does not describe: keep them off unless the
     * AVX-512 base is on, so an AVX2 target can never emit them. */
    if (!(features & QKC_FEAT_AVX512F))
        snprintf(buf + n, n < size ? size - n : 0, ",-avx512cd,-avx512ifma,-avx512vbmi2,-avx512bitalg,"
                                                   "-avx512vpopcntdq");
}

static void fill(qkc_target *t, const char *name, const char *cpu, uint32_t features)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->arch = QKC_ARCH_X86_64;
    t->triple = "x86_64-unknown-linux-gnu";
    snprintf(t->cpu, sizeof t->cpu, "%s", cpu);
    t->features = features;
    t->vector_bits = (features & QKC_FEAT_AVX512F) && (features & QKC_FEAT_AVX512BW) ? 512 : 256;
    llvm_feature_string(features, t->llvm_features, sizeof t->llvm_features);
}

qkc_status qkc_target_resolve(const char *name, int require_host, qkc_target *out, qkc_diag *diag)
{
    uint32_t host = qkc_target_host_features();
    if (!name || !*name)
        name = getenv("QKC_TARGET");
    if (!name || !*name || !strcmp(name, "host")) {
        if (!(host & QKC_FEAT_AVX2) || !(host & QKC_FEAT_FMA))
            return qkc_diag_set(diag, QKC_ERR_NO_DEVICE,
                                "this CPU lacks AVX2 and FMA, which every qkc x86-64 kernel needs");
        /* The host: its exact features, with the generic CPU of its level. */
        fill(out, "host", (host & QKC_FEAT_AVX512F) ? "x86-64-v4" : "x86-64-v3",
             host & (BASE_AVX512 | QKC_FEAT_AVX512_VNNI | QKC_FEAT_AVX512_BF16 | QKC_FEAT_AVX512_FP16 |
                     QKC_FEAT_AVX_VNNI | QKC_FEAT_AVX512_VBMI));
        return QKC_OK;
    }
    if (qkc_nvptx_target_resolve(name, out))
        return QKC_OK; /* never "runs here": the JIT sends it to the CUDA driver */
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strcmp(name, named[i].name))
            continue;
        if (require_host && (named[i].features & ~host)) {
            char missing[256];
            qkc_target_features_string(named[i].features & ~host, missing, sizeof missing);
            return qkc_diag_set(diag, QKC_ERR_NO_DEVICE, "target %s needs CPU features this machine lacks: %s",
                                named[i].name, missing);
        }
        fill(out, named[i].name, named[i].cpu, named[i].features);
        return QKC_OK;
    }
    return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT,
                        "unknown target '%s'; expected host, x86_64-avx2, x86_64-avx512, x86_64-avx512-vnni, nvptx-sm80 or "
                        "nvptx-sm90", name);
}
