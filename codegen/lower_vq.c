/*
 * Decoding the VQ kernel layout (w=vq) for the CPU lowering (lower_cpu.h).
 *
 * A chunk record holds chunk/D u16 codeword indices (D = vq_dim); the
 * codebook (f32, D per codeword) follows the rows at table_offset. Each
 * vector of V lanes is built from V/D codeword loads of D floats (D ≤ V),
 * or one D-float slice of a codeword (D > V, NEON with D = 8), joined by
 * shuffles: no gather, no table registers.
 */
#include "codegen/lower_cpu.h"

void qkc_lower_vq_values(cg *g, LLVMValueRef chunk, LLVMValueRef *val)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int D = L->vq_dim, w = D < g->V ? D : g->V;
    LLVMTypeRef pt = w == 1 ? E->f32 : LLVMVectorType(E->f32, (unsigned)w);
    for (int sub = 0; sub < g->S; sub++) {
        LLVMValueRef parts[64];
        int np = g->V / w, width = w;
        for (int p = 0; p < np; p++) {
            int e0 = sub * g->V + p * w, slot = e0 / D, t0 = e0 % D;
            LLVMValueRef idx = LLVMBuildZExt(E->b, load(E, E->i16, gep8(E, chunk, i64c(E, L->code_off + 2 * slot)), 1),
                                             E->i64, "");
            LLVMValueRef off = LLVMBuildAdd(E->b, LLVMBuildMul(E->b, idx, i64c(E, (int64_t)D * 4), ""),
                                            i64c(E, (int64_t)L->table_offset + 4 * t0), "");
            parts[p] = load(E, pt, gep8(E, g->w, off), 4);
        }
        if (w == 1) {
            /* scalar codewords: insert lane by lane */
            LLVMValueRef v = LLVMGetUndef(g->vf);
            for (int p = 0; p < np; p++)
                v = LLVMBuildInsertElement(E->b, v, parts[p], i32c(E, p), "");
            val[sub] = v;
            continue;
        }
        while (np > 1) {
            LLVMValueRef mask[64];
            for (int i = 0; i < 2 * width; i++)
                mask[i] = i32c(E, i);
            for (int i = 0; i < np / 2; i++)
                parts[i] = LLVMBuildShuffleVector(E->b, parts[2 * i], parts[2 * i + 1],
                                                  LLVMConstVector(mask, (unsigned)(2 * width)), "");
            np /= 2;
            width *= 2;
        }
        val[sub] = parts[0];
    }
}
