/*
 * The target families (one file each: x86_64.c, aarch64.c, nvptx.c) behind one
 * list of names, one resolver and the host's architecture. A target names
 * its architecture; its feature bits are read with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets/target.h"

static const qkc_target_family *const families[] = {
    &qkc_target_family_x86_64,
    &qkc_target_family_aarch64,
    &qkc_target_family_nvptx,
};
#define NFAMILIES ((int)(sizeof families / sizeof families[0]))

static const qkc_target_family *family_of(int arch)
{
    for (int i = 0; i < NFAMILIES; i++)
        if (families[i]->arch == arch)
            return families[i];
    return NULL;
}

int qkc_target_host_arch(void)
{
#if defined(__x86_64__)
    return QKC_ARCH_X86_64;
#elif defined(__aarch64__)
    return QKC_ARCH_AARCH64;
#else
    return -1;
#endif
}

uint32_t qkc_target_host_features(void)
{
    const qkc_target_family *f = family_of(qkc_target_host_arch());
    return f ? f->host_features() : 0;
}

int qkc_target_runs_here(const qkc_target *t)
{
    return t->arch == qkc_target_host_arch() && !(t->features & ~qkc_target_host_features());
}

const char *qkc_target_arch_name(int arch)
{
    switch (arch) {
    case QKC_ARCH_X86_64: return "x86_64";
    case QKC_ARCH_AARCH64: return "aarch64";
    case QKC_ARCH_NVPTX: return "nvptx";
    default: return "unknown";
    }
}

void qkc_target_features_string(int arch, uint32_t features, char *buf, size_t size)
{
    const qkc_target_family *f = family_of(arch);
    if (f)
        f->features_string(features, buf, size);
    else if (size)
        buf[0] = '\0';
}

int qkc_target_count(void)
{
    int n = 1;
    for (int i = 0; i < NFAMILIES; i++)
        n += families[i]->count;
    return n;
}

const char *qkc_target_name(int index)
{
    if (index == 0)
        return "host";
    index--;
    for (int i = 0; i < NFAMILIES && index >= 0; i++) {
        if (index < families[i]->count)
            return families[i]->name(index);
        index -= families[i]->count;
    }
    return NULL;
}

void qkc_target_names_list(char *buf, size_t size)
{
    size_t n = 0;
    int count = qkc_target_count();
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < count; i++) {
        int w = snprintf(buf + n, n < size ? size - n : 0, "%s%s", i == 0 ? "" : i == count - 1 ? " or " : ", ",
                         qkc_target_name(i));
        if (w > 0)
            n += (size_t)w;
    }
}

qkc_status qkc_target_resolve(const char *name, int require_host, qkc_target *out, qkc_diag *diag)
{
    char list[512];
    if (!name || !*name || !strcmp(name, "host")) {
        const qkc_target_family *f = family_of(qkc_target_host_arch());
        if (!f)
            return qkc_diag_set(diag, QKC_ERR_NO_DEVICE, "qkc has no kernels for this machine's architecture");
        return f->fill_host(out, diag);
    }
    for (int i = 0; i < NFAMILIES; i++) {
        if (!families[i]->fill_named(name, out))
            continue;
        if (out->arch == QKC_ARCH_NVPTX)
            return QKC_OK; /* never CPU code: the JIT sends it to the CUDA driver layer */
        if (require_host && out->arch != qkc_target_host_arch())
            return qkc_diag_set(diag, QKC_ERR_NO_DEVICE,
                                "target %s is for %s CPUs and this machine is not one: it cannot run here (compile "
                                "for it ahead of time: qkc compile --target %s --emit obj|lib)",
                                name, qkc_target_arch_name(out->arch), name);
        if (require_host && (out->features & ~qkc_target_host_features())) {
            char missing[256];
            qkc_target_features_string(out->arch, out->features & ~qkc_target_host_features(), missing,
                                       sizeof missing);
            return qkc_diag_set(diag, QKC_ERR_NO_DEVICE, "target %s needs CPU features this machine lacks: %s", name,
                                missing);
        }
        return QKC_OK;
    }
    qkc_target_names_list(list, sizeof list);
    return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "unknown target '%s'; expected %s", name, list);
}
