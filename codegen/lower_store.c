/* Output conversion (see lower_store.h). */
#include "codegen/lower_store.h"

void qkc_lower_store_out(LLVMBuilderRef b, qkc_dtype out, LLVMValueRef v, LLVMValueRef c, LLVMValueRef idx)
{
    LLVMContextRef ctx = LLVMGetTypeContext(LLVMTypeOf(v));
    LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), f16 = LLVMHalfTypeInContext(ctx);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), i16 = LLVMInt16TypeInContext(ctx);
    if (out == QKC_DTYPE_F32) {
        LLVMBuildStore(b, v, LLVMBuildGEP2(b, f32, c, &idx, 1, ""));
    } else if (out == QKC_DTYPE_F16) {
        LLVMBuildStore(b, LLVMBuildFPTrunc(b, v, f16, ""), LLVMBuildGEP2(b, f16, c, &idx, 1, ""));
    } else {
        LLVMValueRef u = LLVMBuildBitCast(b, v, i32, "");
        LLVMValueRef lsb = LLVMBuildAnd(b, LLVMBuildLShr(b, u, LLVMConstInt(i32, 16, 0), ""), LLVMConstInt(i32, 1, 0), "");
        LLVMValueRef r = LLVMBuildAdd(b, u, LLVMBuildAdd(b, LLVMConstInt(i32, 0x7FFF, 0), lsb, ""), "");
        LLVMValueRef nanv = LLVMBuildOr(b, u, LLVMConstInt(i32, 0x00400000, 0), "");
        r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, v, v, ""), nanv, r, "");
        LLVMBuildStore(b, LLVMBuildTrunc(b, LLVMBuildLShr(b, r, LLVMConstInt(i32, 16, 0), ""), i16, ""),
                       LLVMBuildGEP2(b, i16, c, &idx, 1, ""));
    }
}
