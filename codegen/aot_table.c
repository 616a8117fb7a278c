/* The AOT library table as LLVM constants (see aot_table.h). */
#include "codegen/aot_table.h"

#include <string.h>

#include "codegen/llvm_compat.h"
#include "qkc/qkc.h"

/* The field kinds of ir/aot_table.def. */
enum { KIND_STR, KIND_FN, KIND_ROWS, KIND_U32, KIND_I32 };

typedef struct table {
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMTypeRef ptr, i32, fn_ty;
    LLVMValueRef rows; /* the rows' global */
} table;

static LLVMValueRef const_string(table *T, const char *s)
{
    LLVMValueRef init = LLVMConstStringInContext(T->c, s, (unsigned)strlen(s), 0);
    LLVMValueRef g = LLVMAddGlobal(T->m, LLVMTypeOf(init), ".qkc.str");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

/* A field of `size` bytes: a pointer, or 32-bit integers (an array of
 * them when size is more than 4). */
static LLVMTypeRef field_type(table *T, int kind, size_t size)
{
    if (kind == KIND_STR || kind == KIND_FN || kind == KIND_ROWS)
        return T->ptr;
    return size == 4 ? T->i32 : LLVMArrayType2(T->i32, size / 4);
}

/* The constant of a field at p (size bytes) of a row or library. */
static LLVMValueRef field_value(table *T, int kind, const void *p, size_t size, const qkc_aot_row *row)
{
    switch (kind) {
    case KIND_STR: {
        const char *s;
        memcpy(&s, p, sizeof s);
        return const_string(T, s);
    }
    case KIND_FN: {
        /* the function the row's symbol names, declared external */
        LLVMValueRef fn = LLVMGetNamedFunction(T->m, row->symbol);
        return fn ? fn : LLVMAddFunction(T->m, row->symbol, T->fn_ty);
    }
    case KIND_ROWS: return T->rows;
    default: {
        LLVMValueRef v[8]; /* sched[6] is the longest */
        uint32_t u;
        for (size_t i = 0; i < size / 4; i++) {
            memcpy(&u, (const char *)p + 4 * i, 4);
            v[i] = LLVMConstInt(T->i32, u, 0);
        }
        return size == 4 ? v[0] : LLVMConstArray2(T->i32, v, size / 4);
    }
    }
}

#define ROW_FIELD(field, c_type, dims, kind, comment) +1
enum { ROW_FIELDS = 0
#define QKC_AOT_ROW ROW_FIELD
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
};
enum { LIBRARY_FIELDS = 0
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)
#define QKC_AOT_LIBRARY ROW_FIELD
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
};
#undef ROW_FIELD

static LLVMTypeRef row_type(table *T)
{
    LLVMTypeRef f[ROW_FIELDS];
    int n = 0;
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)                                                            \
    f[n++] = field_type(T, KIND_##kind, sizeof((qkc_aot_row *)0)->field);
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
    return LLVMStructTypeInContext(T->c, f, ROW_FIELDS, 0);
}

static LLVMValueRef row_value(table *T, const qkc_aot_row *row)
{
    LLVMValueRef f[ROW_FIELDS];
    int n = 0;
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)                                                            \
    f[n++] = field_value(T, KIND_##kind, &row->field, sizeof row->field, row);
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
    return LLVMConstStructInContext(T->c, f, ROW_FIELDS, 0);
}

static LLVMValueRef library_value(table *T, const struct qkc_aot_library *lib, LLVMTypeRef *type)
{
    LLVMTypeRef t[LIBRARY_FIELDS];
    LLVMValueRef f[LIBRARY_FIELDS];
    int n = 0;
#define QKC_AOT_ROW(field, c_type, dims, kind, comment)
#define QKC_AOT_LIBRARY(field, c_type, dims, kind, comment)                                                        \
    t[n] = field_type(T, KIND_##kind, sizeof lib->field);                                                          \
    f[n++] = field_value(T, KIND_##kind, &lib->field, sizeof lib->field, NULL);
#include "ir/aot_table.def"
#undef QKC_AOT_ROW
#undef QKC_AOT_LIBRARY
    *type = LLVMStructTypeInContext(T->c, t, LIBRARY_FIELDS, 0);
    return LLVMConstStructInContext(T->c, f, LIBRARY_FIELDS, 0);
}

qkc_status qkc_aot_table_object(const qkc_allocator *a, const qkc_target *t, const char *symbol, const char *name,
                                const qkc_aot_row *rows, int count, char **obj, size_t *len, qkc_diag *diag)
{
    LLVMValueRef vals[QKC_AOT_TABLE_MAX_ROWS], lib_g, init;
    LLVMTypeRef row_ty, lib_ty;
    LLVMTargetMachineRef tm;
    LLVMMemoryBufferRef buf = NULL;
    struct qkc_aot_library lib;
    table T;
    qkc_status st;

    if (count < 1)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "an AOT library needs at least one kernel");
    if (count > QKC_AOT_TABLE_MAX_ROWS)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "%d kernels: an AOT library holds at most %d", count,
                            QKC_AOT_TABLE_MAX_ROWS);
    if ((st = qkc_llvm_target_machine(t, LLVMCodeGenLevelNone, &tm, diag)))
        return st;
    memset(&T, 0, sizeof T);
    T.c = LLVMContextCreate();
    T.m = LLVMModuleCreateWithNameInContext("qkc_aot_table", T.c);
    LLVMSetTarget(T.m, t->triple);
    {
        LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
        char *dl = LLVMCopyStringRepOfTargetData(td);
        LLVMSetDataLayout(T.m, dl);
        LLVMDisposeMessage(dl);
        LLVMDisposeTargetData(td);
    }
    T.ptr = LLVMPointerTypeInContext(T.c, 0);
    T.i32 = LLVMInt32TypeInContext(T.c);
    T.fn_ty = LLVMFunctionType(LLVMVoidTypeInContext(T.c), &T.ptr, 1, 0);
    row_ty = row_type(&T);
    for (int r = 0; r < count; r++)
        vals[r] = row_value(&T, &rows[r]);
    T.rows = LLVMAddGlobal(T.m, LLVMArrayType2(row_ty, (uint64_t)count), ".qkc.rows");
    LLVMSetInitializer(T.rows, LLVMConstArray2(row_ty, vals, (uint64_t)count));
    LLVMSetGlobalConstant(T.rows, 1);
    LLVMSetLinkage(T.rows, LLVMPrivateLinkage);
    memset(&lib, 0, sizeof lib);
    lib.magic = QKC_AOT_MAGIC;
    lib.abi = QKC_AOT_ABI;
    lib.version = QKC_VERSION;
    lib.count = count;
    lib.name = name;
    lib.rows = rows;
    init = library_value(&T, &lib, &lib_ty);
    lib_g = LLVMAddGlobal(T.m, lib_ty, symbol);
    LLVMSetInitializer(lib_g, init);
    LLVMSetGlobalConstant(lib_g, 1);
    st = qkc_llvm_verify(T.m, diag);
    if (!st)
        st = qkc_llvm_emit(T.m, tm, 0, &buf, diag);
    if (!st) {
        *len = LLVMGetBufferSize(buf);
        *obj = a->alloc(*len ? *len : 1, a->user);
        if (*obj)
            memcpy(*obj, LLVMGetBufferStart(buf), *len);
        else
            st = qkc_diag_set(diag, QKC_ERR_NO_MEMORY, "out of memory for the AOT table");
        LLVMDisposeMemoryBuffer(buf);
    }
    LLVMDisposeModule(T.m);
    LLVMContextDispose(T.c);
    LLVMDisposeTargetMachine(tm);
    return st;
}
