#ifndef QKC_CODEGEN_LLVM_INFO_H
#define QKC_CODEGEN_LLVM_INFO_H

#include <stddef.h>

/* LLVM's run-time version as "19.1.7", written into buf. */
const char *qkc_llvm_version(char *buf, size_t size);

#endif
