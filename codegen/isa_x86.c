/*
 * The x86-64 family's hooks (isa.h): AVX2 and AVX-512 (targets/x86_64.c).
 *
 * ISA assumptions: AVX2 and FMA always; 512-bit vectors with AVX512F and
 * AVX512BW. 16-entry tables: one vpermps over a zmm, or two over ymm
 * halves and a blend. The int8 path (lower_cpu.h: I8_*): vpdpbusd with
 * AVX512-VNNI (+VL for 256-bit vectors), two records per step with
 * 512-bit vectors, and with AVX512-VBMI a vpermb that unpacks two 4-bit
 * records at once; without VNNI vpmaddubsw + vpmaddwd, exact only for
 * unsigned codes up to 63 (no int16 saturation) or for signed weights
 * through vpsignb.
 */
#include "codegen/lower_cpu.h"

static int x86_vnni(const qkc_target *t)
{
    return (t->features & QKC_FEAT_AVX512_VNNI) && (t->features & QKC_FEAT_AVX512VL);
}

static int x86_registers(const qkc_target *t)
{
    return (t->features & QKC_FEAT_AVX512F) ? 32 : 16;
}

/* ------------------------------------------------------ 16-entry tables */

static void x86_table_constants(cg *g, const double v[16])
{
    qkc_emit *E = &g->e;
    LLVMValueRef e[16];
    for (int i = 0; i < 16; i++)
        e[i] = f32c(E, v[i]);
    if (g->V == 16) {
        g->table[0] = LLVMConstVector(e, 16);
    } else {
        g->table[0] = LLVMConstVector(e, 8);
        g->table[1] = LLVMConstVector(e + 8, 8);
    }
}

static void x86_table_load(cg *g, LLVMValueRef p)
{
    qkc_emit *E = &g->e;
    if (g->V == 16) {
        g->table[0] = load(E, LLVMVectorType(E->f32, 16), p, 4);
    } else {
        g->table[0] = load(E, LLVMVectorType(E->f32, 8), p, 4);
        g->table[1] = load(E, LLVMVectorType(E->f32, 8), gep8(E, p, i64c(E, 32)), 4);
    }
}

/* One vpermps on 512-bit vectors, two and a blend on 256-bit ones. */
/* vpermps over 16 lanes: one instruction; over 8 lanes (AVX2) two
 * permutes, a test of bit 3 and a blend. */
static int x86_table_lookup_is_one_op(cg *g)
{
    return g->V == 16;
}

static LLVMValueRef x86_table_lookup(cg *g, LLVMValueRef idx)
{
    qkc_emit *E = &g->e;
    if (g->V == 16) {
        LLVMValueRef args[2] = {g->table[0], idx};
        return intrinsic(E, "llvm.x86.avx512.permvar.sf.512", NULL, 0, args, 2);
    }
    LLVMValueRef a1[2] = {g->table[0], idx}, a2[2] = {g->table[1], idx};
    LLVMValueRef lo = intrinsic(E, "llvm.x86.avx2.permps", NULL, 0, a1, 2);
    LLVMValueRef hi = intrinsic(E, "llvm.x86.avx2.permps", NULL, 0, a2, 2);
    LLVMValueRef bit = LLVMBuildAnd(E->b, idx, vconst_i32(g, 8), "");
    LLVMValueRef use_hi = LLVMBuildICmp(E->b, LLVMIntNE, bit, vconst_i32(g, 0), "");
    return LLVMBuildSelect(E->b, use_hi, hi, lo, "");
}

/* ------------------------------------------------------------ int8 path */

/*   DIRECT  vpdpbusd (VNNI) over the unsigned codes u, or vpmaddubsw +
 *           vpmaddwd on AVX2 when u ≤ 63 (no int16 saturation);
 *   TABLE   VNNI: the code's integer table value + 128 as u8 (vpshufb),
 *           cc = 128;
 *   SIGNED  AVX2: vpmaddubsw(|v|, sign(q, v)) over signed weights v (an
 *           integer table, or 8-bit codes with zero_const 128), cc = 0.
 *           |v| is up to 128, which vpmaddubsw reads as unsigned, and
 *           the activations q are within ±127, so sign(q, v) never
 *           overflows (sign(v, q) would turn a weight of −128 into −128). */
static int x86_int8_mode(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    int vnni = x86_vnni(t);
    const qkc_dtype_desc *dd = qkc_dtype_get(mm->w.dtype);
    if (L->decode == QKC_KDEC_AFFINE && (L->code_bits == 4 || L->code_bits == 8)) {
        if (vnni || dd->bits <= 6)
            return I8_DIRECT;
        if (L->code_bits == 8 && L->zero_const == 128 && L->zero == QKC_KF_NONE && L->min == QKC_KF_NONE)
            return I8_SIGNED;
        return I8_NONE;
    }
    if (L->decode == QKC_KDEC_TABLE && qkc_lower_int8_table_ok(L))
        return vnni ? I8_TABLE : I8_SIGNED;
    return I8_NONE;
}

static void x86_int8_setup(cg *g, i8ctx *x)
{
    const qkc_target *t = g->t;
    const qkc_klayout *L = g->L;
    x->vnni = x86_vnni(t);
    x->P = (x->vnni && g->s->vector_bits == 512) ? 2 : 1;
    x->vbmi_unpack = x->P == 2 && L->code_bits == 4 && (t->features & QKC_FEAT_AVX512_VBMI) &&
                     L->chunk_bytes + L->code_off + 16 <= 64;
    x->table_cc = 128;
}

/* <nb x i8> bytes as <nb/4 x i32> (the operand type of vpdpbusd in LLVM 19). */
static LLVMValueRef as_i32(cg *g, LLVMValueRef v, int nb)
{
    qkc_emit *E = &g->e;
    return LLVMBuildBitCast(E->b, v, LLVMVectorType(E->i32, (unsigned)(nb / 4)), "");
}

/* init + Σ over groups of 4 bytes of u8(u)·s8(q), as <8P x i32> (init may
 * be NULL for zero). VNNI accumulates into init for free. */
static LLVMValueRef dot_u8s8(cg *g, i8ctx *x, LLVMValueRef init, LLVMValueRef u, LLVMValueRef q)
{
    qkc_emit *E = &g->e;
    int nb = 32 * x->P;
    if (x->vnni) {
        LLVMValueRef args[3] = {init ? init : LLVMConstNull(x->vi32s), as_i32(g, u, nb), as_i32(g, q, nb)};
        return intrinsic(E, x->P == 2 ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256", NULL, 0,
                         args, 3);
    }
    {
        LLVMValueRef args[2] = {u, q};
        LLVMValueRef w16 = intrinsic(E, "llvm.x86.avx2.pmadd.ub.sw", NULL, 0, args, 2);
        LLVMValueRef ones[16];
        for (int i = 0; i < 16; i++)
            ones[i] = LLVMConstInt(E->i16, 1, 0);
        LLVMValueRef a2[2] = {w16, LLVMConstVector(ones, 16)};
        LLVMValueRef r = intrinsic(E, "llvm.x86.avx2.pmadd.wd", NULL, 0, a2, 2);
        return init ? LLVMBuildAdd(E->b, init, r, "") : r;
    }
}

/* Two adjacent 4-bit chunk records with VBMI: one masked 64-byte load
 * (it never touches bytes past the second record), one vpermb placing
 * [codes0, codes0, codes1, codes1], one vpsrlvw shifting the second copy of
 * each by 4, one and: 64 nibbles in k order. *raw: the bytes loaded. */
static LLVMValueRef step_codes_vbmi(cg *g, LLVMValueRef rec0, LLVMValueRef *raw)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int span = L->chunk_bytes + L->code_off + 16;
    LLVMValueRef mask[64], idx[64], sh[32], bytes, perm, words;
    LLVMTypeRef v64 = LLVMVectorType(E->i8, 64), v32w = LLVMVectorType(E->i16, 32);
    uint8_t fifteen[64];
    for (int i = 0; i < 64; i++) {
        mask[i] = LLVMConstInt(E->i1, i < span, 0);
        idx[i] = LLVMConstInt(E->i8, (unsigned)((i < 32 ? L->code_off : L->chunk_bytes + L->code_off) + (i % 16)), 0);
    }
    for (int i = 0; i < 32; i++)
        sh[i] = LLVMConstInt(E->i16, (i / 8) % 2 ? 4 : 0, 0);
    {
        LLVMTypeRef ov[2] = {v64, E->ptr};
        LLVMValueRef args[4] = {rec0, i32c(E, 1), LLVMConstVector(mask, 64), LLVMConstNull(v64)};
        bytes = intrinsic(E, "llvm.masked.load", ov, 2, args, 4);
        *raw = bytes;
    }
    {
        LLVMValueRef args[2] = {bytes, LLVMConstVector(idx, 64)};
        perm = intrinsic(E, "llvm.x86.avx512.permvar.qi.512", NULL, 0, args, 2);
    }
    words = LLVMBuildLShr(E->b, LLVMBuildBitCast(E->b, perm, v32w, ""), LLVMConstVector(sh, 32), "");
    memset(fifteen, 15, sizeof fifteen);
    return LLVMBuildAnd(E->b, LLVMBuildBitCast(E->b, words, v64, ""), cbytes(E, fifteen, 64), "");
}

static void x86_int8_weights(cg *g, i8ctx *x, LLVMValueRef *chunks, int present, i8w *out)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int nb = 32 * x->P;
    LLVMValueRef raw = NULL, w;
    out->svec = out->wabs = NULL;
    w = (x->vbmi_unpack && present == 2) ? step_codes_vbmi(g, chunks[0], &raw)
                                         : qkc_lower_step_codes(g, x, chunks, present);
    if (raw && L->scale == QKC_KF_F16 && L->scale_off % 2 == 0 && L->chunk_bytes % 2 == 0) {
        /* Both f16 scales are in the bytes just loaded: one word
         * permute and one conversion give the per-lane scale vector. */
        LLVMValueRef sel[16];
        for (int l = 0; l < 16; l++)
            sel[l] = i32c(E, (l < 8 ? L->scale_off : L->chunk_bytes + L->scale_off) / 2);
        LLVMValueRef words = LLVMBuildBitCast(E->b, raw, LLVMVectorType(E->i16, 32), "");
        LLVMValueRef h = LLVMBuildShuffleVector(E->b, words, LLVMGetUndef(LLVMVectorType(E->i16, 32)),
                                                LLVMConstVector(sel, 16), "");
        out->svec = LLVMBuildFPExt(E->b, LLVMBuildBitCast(E->b, h, LLVMVectorType(E->f16, 16), ""), x->vfs, "");
    }
    if (L->decode == QKC_KDEC_TABLE) {
        /* vpshufb: 16-byte table in every 128-bit lane. */
        uint8_t tb[64];
        for (int i = 0; i < nb; i++) {
            int v = (int)L->table[i % 16];
            tb[i] = (uint8_t)(x->mode == I8_TABLE ? v + x->table_cc : v);
        }
        LLVMValueRef args[2] = {cbytes(E, tb, nb), w};
        w = intrinsic(E, nb == 64 ? "llvm.x86.avx512.pshuf.b.512" : "llvm.x86.avx2.pshuf.b", NULL, 0, args, 2);
    } else if (x->mode == I8_SIGNED) {
        uint8_t flip[64];
        memset(flip, 0x80, sizeof flip);
        w = LLVMBuildXor(E->b, w, cbytes(E, flip, nb), ""); /* u - 128 as s8 */
    }
    if (x->mode == I8_SIGNED) {
        /* |v| once per weight vector; |−128| is 0x80, 128 as u8 */
        LLVMTypeRef ty = x->vbytes;
        LLVMValueRef args[2] = {w, LLVMConstInt(E->i1, 0, 0)};
        out->wabs = intrinsic(E, "llvm.abs", &ty, 1, args, 2);
    }
    out->w = w;
}

static LLVMValueRef x86_int8_dot(cg *g, i8ctx *x, LLVMValueRef init, const i8w *w, LLVMValueRef q)
{
    if (x->mode == I8_SIGNED) {
        LLVMValueRef sargs[2] = {q, w->w};
        LLVMValueRef signed_q = intrinsic(&g->e, "llvm.x86.avx2.psign.b", NULL, 0, sargs, 2);
        return dot_u8s8(g, x, init, w->wabs, signed_q);
    }
    return dot_u8s8(g, x, init, w->w, q);
}

static LLVMValueRef x86_int8_sum(cg *g, i8ctx *x, LLVMValueRef u, LLVMValueRef q)
{
    return dot_u8s8(g, x, NULL, u, q);
}

/* ------------------------------------------------------- weight panels */

/* A panel's rows, for the int8 and the f32 panel kernels alike: the int32
 * lanes of the target's vectors, 16 with AVX-512, 8 with AVX2. */
static int x86_panel_rows(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    (void)mm, (void)L;
    return t->vector_bits / 32;
}

/* The f32 panel kernel: the layouts it reads (lower_panel.c; the others
 * keep the row layout on that path). */
static int x86_f32_panel_rows(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    return qkc_lower_f32_panel_layout(L) ? x86_panel_rows(mm, L, t) : 0;
}

/* Σ w·q of one panel record for tm rows (isa.h). The 8 groups of 4
 * elements: group t is elements 4t .. 4t+3 of every row, lane r (4 bytes)
 * for row r, against the broadcast 4 activation bytes at q + 4t.
 *   VNNI      vpdpbusd per group, two chains;
 *   DIRECT    vpmaddubsw per group, summed in int16 for as many groups as
 *             cannot overflow (8 for 4-bit codes: 8·2·15·127 < 2^15),
 *             then one vpmaddwd;
 *   SIGNED    vpmaddubsw(|w|, q·sign(w)) and vpmaddwd per group. */
static void x86_int8_panel_dot(cg *g, i8ctx *x, LLVMValueRef codes, int stride, LLVMValueRef *q, int tm,
                               LLVMValueRef *acc)
{
    qkc_emit *E = &g->e;
    const qkc_klayout *L = g->L;
    int P = x->pv, nb = 4 * P, wide = P == 16, nh = x->halves ? 2 : 1;
    /* groups in the order their bytes load: a 4-bit group's low nibbles
     * (t < 4) next to its high ones (t + 4) */
    static const int order4[8] = {0, 4, 1, 5, 2, 6, 3, 7}, order8[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int *order = L->code_bits == 4 ? order4 : order8;
    const char *maddubs = wide ? "llvm.x86.avx512.pmaddubs.w.512" : "llvm.x86.avx2.pmadd.ub.sw";
    const char *maddwd = wide ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd";
    int maxu = L->code_bits == 4 ? (16 << L->hi_bits) - 1 : (1 << qkc_dtype_get(g->mm->w.dtype)->bits) - 1;
    int steps = x->mode == I8_SIGNED ? 1 : 32767 / (2 * maxu * 127);
    LLVMValueRef raw = NULL, ones16, chain[8][2], sum16[8][2] = {{0}}, planes[2] = {0};
    int done[2] = {0, 0}, total[2] = {nh == 2 ? 4 : 8, 4};
    uint8_t bytes[64], table[64];
    {
        LLVMValueRef o[32];
        for (int i = 0; i < 2 * P; i++)
            o[i] = LLVMConstInt(E->i16, 1, 0);
        ones16 = LLVMConstVector(o, (unsigned)(2 * P));
    }
    if (steps < 1)
        steps = 1;
    for (int i = 0; i < nb; i++) {
        int v = (int)L->table[i % 16];
        table[i] = (uint8_t)(x->mode == I8_TABLE ? v + x->table_cc : v);
    }
    /* two chains: the record's halves with x->halves, else even and odd
     * groups (VNNI) summed at the end */
    for (int i = 0; i < tm; i++)
        chain[i][0] = acc[nh * i], chain[i][1] = nh == 2 ? acc[nh * i + 1] : LLVMConstNull(x->pi32);
    qkc_lower_panel_planes(g, x, codes, stride, planes);
    /* group by group, every row: a group's operand dies after its rows */
    for (int n = 0; n < 8; n++) {
        int t = order[n], hf = nh == 2 ? t >= 4 : 0;
        LLVMValueRef w, wabs = NULL;
        if (L->code_bits == 4) {
            if (t < 4) {
                raw = load(E, x->pbytes, gep8(E, codes, i64c(E, (int64_t)t * stride)), 1);
                memset(bytes, 15, sizeof bytes);
                w = LLVMBuildAnd(E->b, raw, cbytes(E, bytes, nb), "");
            } else {
                memset(bytes, 4, sizeof bytes);
                w = LLVMBuildLShr(E->b, raw, cbytes(E, bytes, nb), "");
            }
            if (L->hi_bits)
                w = qkc_lower_panel_hi(g, x, w, planes, t);
        } else {
            w = load(E, x->pbytes, gep8(E, codes, i64c(E, (int64_t)t * stride)), 1);
        }
        if (L->decode == QKC_KDEC_TABLE) {
            /* vpshufb: the 16-byte table in every 128-bit lane */
            LLVMValueRef args[2] = {cbytes(E, table, nb), w};
            w = intrinsic(E, wide ? "llvm.x86.avx512.pshuf.b.512" : "llvm.x86.avx2.pshuf.b", NULL, 0, args, 2);
        } else if (x->mode == I8_SIGNED) {
            memset(bytes, 0x80, sizeof bytes);
            w = LLVMBuildXor(E->b, w, cbytes(E, bytes, nb), ""); /* code − 128 as s8 */
        }
        if (x->mode == I8_SIGNED) {
            LLVMTypeRef ty = x->pbytes;
            LLVMValueRef args[2] = {w, LLVMConstInt(E->i1, 0, 0)};
            wabs = intrinsic(E, "llvm.abs", &ty, 1, args, 2);
        }
        done[hf]++;
        for (int i = 0; i < tm; i++) {
            LLVMValueRef qt = LLVMBuildBitCast(
                E->b, splat(E, load(E, E->i32, gep8(E, q[i], i64c(E, 4 * t)), 1), P), x->pbytes, "");
            if (x->vnni) {
                int ch = nh == 2 ? hf : n % 2;
                LLVMValueRef args[3] = {chain[i][ch], LLVMBuildBitCast(E->b, w, x->pi32, ""),
                                        LLVMBuildBitCast(E->b, qt, x->pi32, "")};
                chain[i][ch] = intrinsic(E, wide ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256",
                                         NULL, 0, args, 3);
                continue;
            }
            LLVMValueRef u = w, sq = qt, p16;
            if (x->mode == I8_SIGNED) {
                u = wabs;
                if (wide) {
                    LLVMValueRef neg = LLVMBuildICmp(E->b, LLVMIntSLT, w, LLVMConstNull(x->pbytes), "");
                    sq = LLVMBuildSelect(E->b, neg, LLVMBuildNeg(E->b, sq, ""), sq, "");
                } else {
                    LLVMValueRef sargs[2] = {sq, w};
                    sq = intrinsic(E, "llvm.x86.avx2.psign.b", NULL, 0, sargs, 2);
                }
            }
            {
                LLVMValueRef margs[2] = {u, sq};
                p16 = intrinsic(E, maddubs, NULL, 0, margs, 2);
            }
            sum16[i][hf] = sum16[i][hf] ? LLVMBuildAdd(E->b, sum16[i][hf], p16, "") : p16;
            if (done[hf] % steps == 0 || done[hf] == total[hf]) {
                LLVMValueRef wargs[2] = {sum16[i][hf], ones16};
                chain[i][hf] = LLVMBuildAdd(E->b, chain[i][hf], intrinsic(E, maddwd, NULL, 0, wargs, 2), "");
                sum16[i][hf] = NULL;
            }
        }
    }
    for (int i = 0; i < tm; i++) {
        if (nh == 2)
            acc[2 * i] = chain[i][0], acc[2 * i + 1] = chain[i][1];
        else
            acc[i] = x->vnni ? LLVMBuildAdd(E->b, chain[i][0], chain[i][1], "") : chain[i][0];
    }
}

const qkc_isa qkc_isa_x86_64 = {
    .name = "x86_64",
    .arch = QKC_ARCH_X86_64,
    .vector_widths = {256, 512, 0},
    .vector_widths_text = "256 or 512",
    .vector_registers = x86_registers,
    .lower = qkc_lower,
    .takes_int8 = qkc_lower_uses_int8_dot,
    .lane_sum = qkc_emit_vector_sum,
    .table_constants = x86_table_constants,
    .table_load = x86_table_load,
    .table_lookup = x86_table_lookup,
    .table_lookup_is_one_op = x86_table_lookup_is_one_op,
    .int8_mode = x86_int8_mode,
    .int8_setup = x86_int8_setup,
    .int8_weights = x86_int8_weights,
    .int8_dot = x86_int8_dot,
    .int8_sum = x86_int8_sum,
    .int8_panel_rows = x86_panel_rows,
    .int8_panel_dot = x86_int8_panel_dot,
    .f32_panel_rows = x86_f32_panel_rows,
};
