/* The AOT library table as LLVM constants (see aot_table.h). */
#include "codegen/aot_table.h"

#include <stdlib.h>
#include <string.h>

#include "codegen/llvm_compat.h"
#include "qkc/qkc.h"

static LLVMValueRef const_string(LLVMModuleRef m, LLVMContextRef c, const char *s)
{
    LLVMValueRef init = LLVMConstStringInContext(c, s, (unsigned)strlen(s), 0);
    LLVMValueRef g = LLVMAddGlobal(m, LLVMTypeOf(init), ".qkc.str");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

qkc_status qkc_aot_table_object(const qkc_allocator *a, const qkc_target *t, const char *symbol, const char *name,
                                const qkc_aot_row *rows, int count, char **obj, size_t *len, qkc_diag *diag)
{
    LLVMContextRef c;
    LLVMModuleRef m;
    LLVMTargetMachineRef tm;
    LLVMTypeRef ptr, i32, row_ty, lib_ty, fn_ty, fields[10];
    LLVMValueRef *vals, rows_g, lib_g, lib_fields[6];
    LLVMMemoryBufferRef buf = NULL;
    qkc_status st;

    if (count < 1)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "an AOT library needs at least one kernel");
    if ((st = qkc_llvm_target_machine(t, LLVMCodeGenLevelNone, &tm, diag)))
        return st;
    vals = a->alloc((size_t)count * sizeof *vals, a->user);
    if (!vals) {
        LLVMDisposeTargetMachine(tm);
        return qkc_diag_set(diag, QKC_ERR_NO_MEMORY, "out of memory for the AOT table");
    }
    c = LLVMContextCreate();
    m = LLVMModuleCreateWithNameInContext("qkc_aot_table", c);
    LLVMSetTarget(m, t->triple);
    {
        LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
        char *dl = LLVMCopyStringRepOfTargetData(td);
        LLVMSetDataLayout(m, dl);
        LLVMDisposeMessage(dl);
        LLVMDisposeTargetData(td);
    }
    ptr = LLVMPointerTypeInContext(c, 0);
    i32 = LLVMInt32TypeInContext(c);
    for (int i = 0; i < 6; i++)
        fields[i] = ptr;
    fields[6] = i32;
    fields[7] = i32;
    fields[8] = i32;
    fields[9] = LLVMArrayType2(i32, 6);
    row_ty = LLVMStructTypeInContext(c, fields, 10, 0);
    {
        LLVMTypeRef arg = ptr;
        fn_ty = LLVMFunctionType(LLVMVoidTypeInContext(c), &arg, 1, 0);
    }
    for (int r = 0; r < count; r++) {
        const qkc_aot_row *row = &rows[r];
        LLVMValueRef f[10], sched[6];
        LLVMValueRef fn = LLVMGetNamedFunction(m, row->symbol);
        if (!fn)
            fn = LLVMAddFunction(m, row->symbol, fn_ty);
        f[0] = const_string(m, c, row->spec);
        f[1] = const_string(m, c, row->target);
        f[2] = const_string(m, c, row->features);
        f[3] = const_string(m, c, row->symbol);
        f[4] = const_string(m, c, row->schedule);
        f[5] = fn;
        f[6] = LLVMConstInt(i32, row->feature_bits, 0);
        f[7] = LLVMConstInt(i32, (unsigned long long)row->int8_dot, 0);
        for (int i = 0; i < 6; i++)
            sched[i] = LLVMConstInt(i32, (unsigned long long)(uint32_t)row->sched[i], 0);
        f[8] = LLVMConstInt(i32, (unsigned long long)(uint32_t)row->arch, 0);
        f[9] = LLVMConstArray2(i32, sched, 6);
        vals[r] = LLVMConstStructInContext(c, f, 10, 0);
    }
    rows_g = LLVMAddGlobal(m, LLVMArrayType2(row_ty, (uint64_t)count), ".qkc.rows");
    LLVMSetInitializer(rows_g, LLVMConstArray2(row_ty, vals, (uint64_t)count));
    LLVMSetGlobalConstant(rows_g, 1);
    LLVMSetLinkage(rows_g, LLVMPrivateLinkage);
    {
        LLVMTypeRef lf[6] = {i32, i32, i32, i32, ptr, ptr};
        lib_ty = LLVMStructTypeInContext(c, lf, 6, 0);
    }
    lib_fields[0] = LLVMConstInt(i32, QKC_AOT_MAGIC, 0);
    lib_fields[1] = LLVMConstInt(i32, QKC_AOT_ABI, 0);
    lib_fields[2] = LLVMConstInt(i32, QKC_VERSION, 0);
    lib_fields[3] = LLVMConstInt(i32, (unsigned long long)count, 0);
    lib_fields[4] = const_string(m, c, name);
    lib_fields[5] = rows_g;
    lib_g = LLVMAddGlobal(m, lib_ty, symbol);
    LLVMSetInitializer(lib_g, LLVMConstStructInContext(c, lib_fields, 6, 0));
    LLVMSetGlobalConstant(lib_g, 1);
    a->free(vals, a->user);
    st = qkc_llvm_verify(m, diag);
    if (!st)
        st = qkc_llvm_emit(m, tm, 0, &buf, diag);
    if (!st) {
        *len = LLVMGetBufferSize(buf);
        *obj = a->alloc(*len ? *len : 1, a->user);
        if (*obj)
            memcpy(*obj, LLVMGetBufferStart(buf), *len);
        else
            st = qkc_diag_set(diag, QKC_ERR_NO_MEMORY, "out of memory for the AOT table");
        LLVMDisposeMemoryBuffer(buf);
    }
    LLVMDisposeModule(m);
    LLVMContextDispose(c);
    LLVMDisposeTargetMachine(tm);
    return st;
}
