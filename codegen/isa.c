/* The ISA tables by architecture (see isa.h). */
#include "codegen/isa.h"

const qkc_isa *qkc_isa_for(const qkc_target *t)
{
    switch (t->arch) {
    case QKC_ARCH_X86_64: return &qkc_isa_x86_64;
    case QKC_ARCH_AARCH64: return &qkc_isa_aarch64;
    case QKC_ARCH_NVPTX: return &qkc_isa_nvptx;
    default: return NULL;
    }
}

int qkc_isa_vector_width_ok(const qkc_isa *isa, int bits)
{
    for (int i = 0; isa->vector_widths[i]; i++)
        if (isa->vector_widths[i] == bits)
            return 1;
    return 0;
}
