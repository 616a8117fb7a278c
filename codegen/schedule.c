/* Schedules: heuristic, checks, text form. */
#include "codegen/schedule.h"

#include <stdio.h>

#include "codegen/isa.h"

qkc_status qkc_schedule_complete(qkc_schedule *s, const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t,
                                 qkc_diag *diag)
{
    const qkc_isa *isa = qkc_isa_for(t);
    if (!isa)
        return qkc_diag_set(diag, QKC_ERR_UNSUPPORTED, "target %s: no code generator for its architecture", t->name);
    if (!s->vector_bits)
        s->vector_bits = L && L->panel ? 32 * L->panel : t->vector_bits;
    if (!qkc_isa_vector_width_ok(isa, s->vector_bits))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule vec=%d: vector width is %s", s->vector_bits,
                            isa->vector_widths_text);
    if (s->vector_bits > t->vector_bits)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule vec=%d: target %s has %d-bit vectors",
                            s->vector_bits, t->name, t->vector_bits);
    /* Register budget: accumulators tm*tn plus the decoded weights and the
     * activations of one vector step must fit the register file (the
     * ISA's vector_registers: 32 zmm, 16 ymm, or 32 NEON q registers, where
     * a 32-element chunk of floats takes 8 of them). */
    if (L && L->panel) {
        int dense = L->decode == QKC_KDEC_F32 || L->decode == QKC_KDEC_BF16;
        int f32p = mm->compute == QKC_COMPUTE_F32, user_tm = s->tile_m != 0, user_tn = s->tile_n != 0;
        /* panel kernels: tile_n panels of P rows; a tile's int32 and f32
         * accumulators (2·tm·tn), its decoded codes and broadcast
         * activations share the register file */
        /* 2 x 2 (32 zmm) and 2 x 1 (16 ymm) keep the record loop free of
         * vector spills (tests/test_cg_asm.c) */
        /* compact panels with sub-block scales decode their scales per
         * record and panel: tiles of 4 rows x 1 panel share that work
         * among more rows (q4_k 4096² M = 8: 1.5 -> 0.98 ms with AVX-512,
         * 2.1-2.7 -> 1.8-1.9 ms with AVX2, whose 16 ymm then spill a few
         * values to L1); q6_k's two sums a record and row (halves) keep
         * 2 rows */
        if (!s->tile_m)
            s->tile_m = mm->m == 1 ? 1 : L->sub == QKC_KSUB_KQ || L->sub == QKC_KSUB_XS ? 4 : 2;
        if (!s->tile_n)
            s->tile_n = s->vector_bits == 512 && L->sub == QKC_KSUB_NONE ? 2 : 1;
        /* the f32 panel kernels are FMA micro-kernels of tm x tn panels:
         * a value's decoding (none for dense f32) is shared by tm rows of
         * one FMA each. 8 x 2 zmm for dense values (16 accumulators),
         * 8 x 1 zmm for affine codes, 4 x 2 ymm. 4096², M = 512: w=f32
         * 78 -> 104 GFLOP/s (90% of the FMA peak) with AVX-512, 39 -> 83
         * with AVX2; w=q4_0 compute=f32 71 -> 108 and 36 -> 81 */
        if (f32p && mm->m != 1 && !user_tm)
            s->tile_m = s->vector_bits == 512 ? 8 : 4;
        if (f32p && !user_tn)
            s->tile_n = s->vector_bits == 512 && !dense ? 1 : 2;
        /* prefill (a fixed M of 32 or more, or such an m_hint, jit.c):
         * taller int8 tiles with 512-bit vectors: 6 x 1, but q4_k and q5_k
         * (a min and a scale per record) keep 4 x 1, which does not spill.
         * 4096², M = 512, GOP/s against the decode tiles: q4_0 311 against
         * 287 at 2 x 2, q8_0 322 against 312, q6_k 256 against 185 (and
         * 223 at 4 x 2, which spills), iq4_xs 293 against 249; q4_k 269
         * and q5_k 246 at 6 x 1 against 265 and 238 at 4 x 1 */
        if (!f32p && mm->m >= QKC_PREFILL_M && s->vector_bits == 512 && !user_tm && !user_tn &&
            L->sub != QKC_KSUB_KQ) {
            s->tile_m = 6;
            s->tile_n = 1;
        }
        /* the f32 panel loop is compute bound: with 512-bit vectors a
         * prefetch 16 records ahead hides DRAM behind it (q4_0 4096² M = 1
         * from DRAM 650 -> 580 µs); the int8 loop streams at the memory's
         * speed without one, and AVX2's f32 loop gains nothing (and
         * spills) */
        if (!s->prefetch && mm->compute == QKC_COMPUTE_F32 && s->vector_bits == 512)
            s->prefetch = 16;
    }
    if (!s->tile_m)
        s->tile_m = (mm->m == 1) ? 1 : (s->vector_bits == 512 ? 4 : 2);
    if (!s->tile_n)
        s->tile_n = s->vector_bits == 512 ? 4 : 2;
    if (!s->k_unroll)
        s->k_unroll = 1;
    if (!s->n_block)
        s->n_block = 64;
    /* Panel kernels: tile_n counts panels, and every thread's block of
     * columns starts at a panel: n_block is rounded up to whole panels. */
    if (L && L->panel && s->n_block % L->panel)
        s->n_block += L->panel - s->n_block % L->panel;
    if (s->tile_m < 1 || s->tile_m > 8)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule tm=%d: tile_m is 1 to 8", s->tile_m);
    if (s->tile_n < 1 || s->tile_n > 8)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule tn=%d: tile_n is 1 to 8", s->tile_n);
    if (s->tile_m * s->tile_n > 32)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule tm*tn=%d: at most 32 accumulators",
                            s->tile_m * s->tile_n);
    if (s->k_unroll < 1 || s->k_unroll > 8)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule ku=%d: k_unroll is 1 to 8", s->k_unroll);
    if (s->prefetch < 0 || s->prefetch > 64)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule pf=%d: prefetch distance is 0 to 64 chunks",
                            s->prefetch);
    if (s->n_block < 1 || s->n_block > (1 << 20))
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "schedule nb=%d: n_block is 1 to 2^20", s->n_block);
    if (L && L->panel) {
        if (s->tile_m > 8 || s->tile_n > 4 || s->tile_n * (32 * L->panel / s->vector_bits) > 8)
            return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT,
                                "schedule tm=%d tn=%d: panel kernels take tile_m up to 8 and tile_n up to 4 panels "
                                "(8 vectors of %d bits)",
                                s->tile_m, s->tile_n, s->vector_bits);
        if ((32 * L->panel) % s->vector_bits)
            return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT,
                                "schedule vec=%d: the weights are in panels of %d rows: vectors of %d bits or a "
                                "divisor",
                                s->vector_bits, L->panel, 32 * L->panel);
    }
    return QKC_OK;
}
