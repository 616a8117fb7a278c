/*
 * The table of an AOT library (ir/kernel_abi.h: struct
 * qkc_aot_library and qkc_aot_row) as an object file of its own, its
 * LLVM types and constants built from the fields' list, ir/aot_table.def.
 */
#ifndef QKC_CODEGEN_AOT_TABLE_H
#define QKC_CODEGEN_AOT_TABLE_H

#include <stddef.h>

#include "ir/kernel_abi.h"
#include "qkc/qkc.h"
#include "ir/diag.h"
#include "targets/target.h"

/* The most rows a table holds (the rows' constants are built in an array
 * of this size on the stack: 32 KiB). */
#define QKC_AOT_TABLE_MAX_ROWS 4096

/* An object for target t defining `const struct qkc_aot_library <symbol>`
 * named `name`, whose rows are `rows` (each row's fn is the function named
 * by its symbol, declared external). 1 to QKC_AOT_TABLE_MAX_ROWS rows
 * (QKC_ERR_INVALID_ARGUMENT, QKC_ERR_LIMIT). *obj comes from `a` (the
 * caller's context's allocator) and is freed with it. */
qkc_status qkc_aot_table_object(const qkc_allocator *a, const qkc_target *t, const char *symbol, const char *name,
                                const qkc_aot_row *rows, int count, char **obj, size_t *len, qkc_diag *diag);

#endif
