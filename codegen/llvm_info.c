/*
 * The one place LLVM's version reaches qkc: everything else in codegen/
 * goes through the compat layer as it grows (codegen/llvm_*.c).
 */
#include "codegen/llvm_info.h"

#include <llvm-c/Core.h>
#include <stdio.h>

const char *qkc_llvm_version(char *buf, size_t size)
{
    unsigned major = 0, minor = 0, patch = 0;
    LLVMGetVersion(&major, &minor, &patch);
    snprintf(buf, size, "%u.%u.%u", major, minor, patch);
    return buf;
}
