/*
 * NVIDIA GPU targets (LLVM's NVPTX backend).
 *
 * ISA assumptions: "nvptx-sm80" is compute capability 8.0 (A100) and
 * later, "nvptx-sm90" 9.0 (H100). Both emit PTX ISA 7.8 (+ptx78: the first
 * version that knows sm_90, accepted by every CUDA driver since 11.8 and by
 * ptxas 12 and 13) for the 64-bit triple nvptx64-nvidia-cuda. Kernels use
 * 128-bit global loads through the non-coherent path (ld.global.nc),
 * warp shuffles (shfl.sync, sm_30+ with PTX 6.0) and ex2.approx; nothing
 * they emit needs more than sm_80, so the sm_90 target differs only in
 * the cubin the driver builds. NVPTX targets never run as CPU code: the
 * JIT sends them to the CUDA driver layer (runtime/cuda.c). vector_bits
 * is 256 only to satisfy the CPU schedule checks; GPU kernels read
 * tile_m (rows of A per pass over a weight row) and nothing else.
 */
#include <stdio.h>
#include <string.h>

#include "targets/target.h"

static const struct {
    const char *name;
    const char *cpu;
    uint32_t features;
} gpus[] = {
    {"nvptx-sm80", "sm_80", QKC_FEAT_SM_80},
    {"nvptx-sm90", "sm_90", QKC_FEAT_SM_80 | QKC_FEAT_SM_90},
};

static const char *gpu_name(int index)
{
    return index >= 0 && index < (int)(sizeof gpus / sizeof gpus[0]) ? gpus[index].name : NULL;
}

static int gpu_fill_named(const char *name, qkc_target *out)
{
    for (size_t i = 0; name && i < sizeof gpus / sizeof gpus[0]; i++) {
        if (strcmp(name, gpus[i].name))
            continue;
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", gpus[i].name);
        out->arch = QKC_ARCH_NVPTX;
        out->triple = "nvptx64-nvidia-cuda";
        snprintf(out->cpu, sizeof out->cpu, "%s", gpus[i].cpu);
        snprintf(out->llvm_features, sizeof out->llvm_features, "+ptx78");
        out->features = gpus[i].features;
        out->vector_bits = 256;
        return 1;
    }
    return 0;
}

/* No CPU is a GPU: the host is never of this family. */
static uint32_t gpu_host_features(void)
{
    return 0;
}

static qkc_status gpu_fill_host(qkc_target *out, qkc_diag *diag)
{
    (void)out;
    return qkc_diag_set(diag, QKC_ERR_NO_DEVICE, "the host is a CPU, not an NVIDIA GPU");
}

static void gpu_features_string(uint32_t features, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s", (features & QKC_FEAT_SM_80) ? "sm_80" : "",
             (features & QKC_FEAT_SM_80) && (features & QKC_FEAT_SM_90) ? " " : "",
             (features & QKC_FEAT_SM_90) ? "sm_90" : "");
}

const qkc_target_family qkc_target_family_nvptx = {
    QKC_ARCH_NVPTX, (int)(sizeof gpus / sizeof gpus[0]), gpu_name, gpu_host_features, gpu_features_string,
    gpu_fill_named, gpu_fill_host,
};
