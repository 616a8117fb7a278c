/*
 * AArch64 targets.
 *
 * ISA assumptions: every target has AdvSIMD (NEON) and fp-armv8, and the
 * kernels use 128-bit vectors (NEON's q registers; SVE is not used).
 * "aarch64-neon" is Armv8.0-A (Cortex-A53 and up): the int8 path widens
 * and multiplies. "aarch64-neon-dotprod" adds FEAT_DotProd (sdot: four
 * int8 products summed into each int32 lane; Cortex-A55/A76, Neoverse
 * N1 and later). "aarch64-neon-dotprod-i8mm" adds FEAT_I8MM (smmla, the
 * 2x8 by 8x2 int8 matrix product, for tiles of two rows and columns;
 * usdot and usmmla, mixed sign, for 8-bit unsigned codes; Neoverse V1/N2,
 * Apple M2 and later).
 * FP16 and BF16 are detected on the host and named in its features, but
 * no named target requires them and the kernels do not use them (f16
 * values are widened with fcvtl, base NEON). Kernels compiled for a named
 * target get LLVM's "generic" CPU and an explicit feature list in which
 * every feature qkc describes is either on or off ("-dotprod"), so LLVM
 * never uses an instruction the target does not name. "host" is the
 * machine we run on, detected with getauxval(AT_HWCAP / AT_HWCAP2).
 */
#include <stdio.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "targets/target.h"

typedef struct named_target {
    const char *name;
    uint32_t features;
} named_target;

static const named_target named[] = {
    {"aarch64-neon", QKC_FEAT_NEON},
    {"aarch64-neon-dotprod", QKC_FEAT_NEON | QKC_FEAT_DOTPROD},
    {"aarch64-neon-dotprod-i8mm", QKC_FEAT_NEON | QKC_FEAT_DOTPROD | QKC_FEAT_I8MM},
};

static const struct {
    uint32_t bit;
    const char *name; /* qkc's name */
    const char *llvm; /* LLVM feature */
} feature_names[] = {
    {QKC_FEAT_NEON, "neon", "neon"},          {QKC_FEAT_FP16, "fp16", "fullfp16"},
    {QKC_FEAT_DOTPROD, "dotprod", "dotprod"}, {QKC_FEAT_I8MM, "i8mm", "i8mm"},
    {QKC_FEAT_BF16, "bf16", "bf16"},
};

#define ALL_FEATURES (QKC_FEAT_NEON | QKC_FEAT_FP16 | QKC_FEAT_DOTPROD | QKC_FEAT_I8MM | QKC_FEAT_BF16)

static const char *a64_name(int index)
{
    return index >= 0 && index < (int)(sizeof named / sizeof named[0]) ? named[index].name : NULL;
}

static uint32_t a64_host_features(void)
{
    uint32_t f = 0;
#if defined(__aarch64__) && defined(__linux__)
    /* Linux's hwcap bits (arch/arm64/include/uapi/asm/hwcap.h). */
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if ((hw & (1ul << 0)) && (hw & (1ul << 1))) /* FP, ASIMD */
        f |= QKC_FEAT_NEON;
    if ((hw & (1ul << 9)) && (hw & (1ul << 10))) /* FPHP, ASIMDHP */
        f |= QKC_FEAT_FP16;
    if (hw & (1ul << 20)) /* ASIMDDP */
        f |= QKC_FEAT_DOTPROD;
    if (hw2 & (1ul << 13)) /* HWCAP2_I8MM */
        f |= QKC_FEAT_I8MM;
    if (hw2 & (1ul << 14)) /* HWCAP2_BF16 */
        f |= QKC_FEAT_BF16;
#endif
    return f;
}

static void a64_features_string(uint32_t features, char *buf, size_t size)
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
    int w = snprintf(buf, size, "+fp-armv8");
    if (w > 0)
        n = (size_t)w;
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++) {
        w = snprintf(buf + n, n < size ? size - n : 0, ",%c%s", (features & feature_names[i].bit) ? '+' : '-',
                     feature_names[i].llvm);
        if (w > 0)
            n += (size_t)w;
    }
    /* Off, so nothing beyond the named features slips in: SVE (other
     * vector lengths), the bf16/i8mm matrix forms' cousins. */
    snprintf(buf + n, n < size ? size - n : 0, ",-sve,-sve2,-sme");
}

static void fill(qkc_target *t, const char *name, uint32_t features)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->arch = QKC_ARCH_AARCH64;
    t->triple = "aarch64-unknown-linux-gnu";
    snprintf(t->cpu, sizeof t->cpu, "generic");
    t->features = features;
    t->vector_bits = 128;
    llvm_feature_string(features, t->llvm_features, sizeof t->llvm_features);
}

static int a64_fill_named(const char *name, qkc_target *out)
{
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (!strcmp(name, named[i].name)) {
            fill(out, named[i].name, named[i].features);
            return 1;
        }
    return 0;
}

static qkc_status a64_fill_host(qkc_target *out, qkc_diag *diag)
{
    uint32_t host = a64_host_features();
    if (!(host & QKC_FEAT_NEON))
        return qkc_diag_set(diag, QKC_ERR_NO_DEVICE, "this CPU lacks AdvSIMD (NEON), which every qkc aarch64 kernel "
                                                     "needs");
    fill(out, "host", host & ALL_FEATURES);
    return QKC_OK;
}

const qkc_target_family qkc_target_family_aarch64 = {
    QKC_ARCH_AARCH64, (int)(sizeof named / sizeof named[0]), a64_name, a64_host_features, a64_features_string,
    a64_fill_named, a64_fill_host,
};
