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

int qkc_nvptx_target_count(void)
{
    return (int)(sizeof gpus / sizeof gpus[0]);
}

const char *qkc_nvptx_target_name(int index)
{
    return index >= 0 && index < qkc_nvptx_target_count() ? gpus[index].name : NULL;
}

int qkc_nvptx_target_resolve(const char *name, qkc_target *out)
{
    for (int i = 0; name && i < qkc_nvptx_target_count(); i++) {
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
