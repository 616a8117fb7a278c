/*
 * The verifier: every rule a matmul description must satisfy before code is
 * generated for it. Each failure names the key and the rule, and says what
 * would be accepted. The rules are listed in docs/spec.md ("Rules").
 */
#include "ir/spec.h"
#include "ir/mixed.h"

#include <stdio.h>
#include <string.h>

#define FAIL(key, st, ...)                                                                         \
    do {                                                                                           \
        if (bad_key)                                                                               \
            *bad_key = (key);                                                                      \
        return qkc_diag_set(diag, (st), __VA_ARGS__);                                              \
    } while (0)

static int is_int(qkc_dtype d)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(d);
    return dd && dd->kind == QKC_KIND_INT;
}

static int is_dense_float(qkc_dtype d)
{
    return d == QKC_DTYPE_F32 || d == QKC_DTYPE_F16 || d == QKC_DTYPE_BF16 || d == QKC_DTYPE_TF32;
}

static int is_io_float(qkc_dtype d)
{
    return d == QKC_DTYPE_F32 || d == QKC_DTYPE_F16 || d == QKC_DTYPE_BF16;
}

static int is_pow2(int64_t v)
{
    return v > 0 && (v & (v - 1)) == 0;
}

static const char *gran_text(const qkc_format *f, char *buf, size_t n)
{
    switch (f->granularity) {
    case QKC_GRAN_NONE: return "none";
    case QKC_GRAN_TENSOR: return "tensor";
    case QKC_GRAN_CHANNEL: return "channel";
    case QKC_GRAN_GROUP: break;
    }
    snprintf(buf, n, "%lld", (long long)f->group);
    return buf;
}

/* The fields a preset fixes must match its expansion (with the options the
 * format carries); only group (where free) may differ. */
static qkc_status verify_preset(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    const qkc_preset_desc *pd = qkc_preset_get(f->preset);
    const char *kw = pd->keyword;
    char opts[32], word[64];
    qkc_format want;
    qkc_diag d2;
    char g1[32], g2[32];

    qkc_format_options(f, opts, sizeof opts);
    snprintf(word, sizeof word, "%s%s%s", kw, opts[0] ? ":" : "", opts);
    if (qkc_format_from_words(kw, strlen(kw), opts, strlen(opts), &want, &d2))
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=%s: %s", word, d2.message);
    if (f->preset == QKC_PRESET_GPTQ && !(f->dtype == QKC_DTYPE_UINT2 || f->dtype == QKC_DTYPE_UINT3 ||
                                          f->dtype == QKC_DTYPE_UINT4 || f->dtype == QKC_DTYPE_UINT8))
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "gptq weights are 2, 3, 4 or 8 bits (w=gptq:BITS)");
    if (pd->group_is_free) {
        int channel_ok = f->preset == QKC_PRESET_GPTQ;
        if (!(f->granularity == QKC_GRAN_GROUP || (channel_ok && f->granularity == QKC_GRAN_CHANNEL)))
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=%s needs group=SIZE%s, not group=%s", word,
                 channel_ok ? " or group=channel" : "", gran_text(f, g1, sizeof g1));
        if (f->granularity == QKC_GRAN_GROUP && f->group < 1)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld: a group holds at least one weight", (long long)f->group);
        if (f->granularity == QKC_GRAN_GROUP && f->group > mm->k)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld exceeds k=%lld%s", (long long)f->group,
                 (long long)mm->k, channel_ok ? "; use group=channel for one group per row" : "");
        want.granularity = f->granularity;
        want.group = f->group;
    } else if (f->granularity != want.granularity || f->group != want.group) {
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=%s fixes group=%s; group=%s contradicts it", word,
             gran_text(&want, g2, sizeof g2), gran_text(f, g1, sizeof g1));
    }
    if (f->scale_dtype != want.scale_dtype || f->scale2_dtype != want.scale2_dtype ||
        f->super_group != want.super_group)
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "w=%s fixes its scales (%s%s%s); remove scale=", word,
             qkc_dtype_keyword(want.scale_dtype), want.scale2_dtype ? " under " : "",
             want.scale2_dtype ? qkc_dtype_keyword(want.scale2_dtype) : "");
    if (f->zero != want.zero)
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=%s fixes zero=%s; remove zero=", word,
             want.zero == QKC_ZERO_NONE ? "none" : want.zero == QKC_ZERO_INT ? "int" : "float");
    if (f->outliers == QKC_OUTLIERS_SPARSE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC,
             "sparse outliers are supported on qkc's planar layout only, not on w=%s", word);
    if (f->outliers == QKC_OUTLIERS_ACT) {
        /* activation outliers store nothing: any preset takes them */
        want.outliers = f->outliers;
        want.act_threshold = f->act_threshold;
    }
    if (!qkc_format_equal(f, &want))
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=%s: the format fields do not match the preset", word);

    /* Shape rules of each external layout. */
    if (pd->block_elems > 0 && mm->k % pd->block_elems != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "w=%s stores blocks of %lld weights along k; k=%lld is not a multiple of %lld",
             word, (long long)pd->block_elems, (long long)mm->k, (long long)pd->block_elems);
    switch (f->preset) {
    case QKC_PRESET_NF4_BNB:
        if (!is_pow2(f->group) || f->group < 32 || f->group > 4096)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC,
                 "nf4_bnb block size group=%lld must be a power of two from 32 to 4096", (long long)f->group);
        if (mm->k % f->group != 0)
            FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC,
                 "nf4_bnb blocks must stay inside a row: k=%lld is not a multiple of group=%lld",
                 (long long)mm->k, (long long)f->group);
        break;
    case QKC_PRESET_GPTQ: {
        int bits = qkc_dtype_get(f->dtype)->bits;
        int64_t kq = bits == 3 ? 32 : 32 / bits; /* values per packed run */
        if (mm->k % kq != 0)
            FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "gptq packs %lld %d-bit weights per int32 run along k; k=%lld is not a multiple of %lld",
                 (long long)kq, bits, (long long)mm->k, (long long)kq);
        if (mm->n % kq != 0)
            FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "gptq packs %d-bit zero points along n; n=%lld is not a multiple of %lld",
                 bits, (long long)mm->n, (long long)kq);
        break;
    }
    case QKC_PRESET_AWQ:
        if (mm->n % 8 != 0)
            FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "awq packs 8 columns per int32; n=%lld is not a multiple of 8",
                 (long long)mm->n);
        if (mm->k % f->group != 0)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "awq needs group to divide k; group=%lld does not divide k=%lld",
                 (long long)f->group, (long long)mm->k);
        break;
    default: break;
    }
    return QKC_OK;
}

/* lut2/lut3/lut4: a table per tensor, row or group; no scale, zero or
 * outliers (the table already holds the values). */
static qkc_status verify_lut(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    const char *wk = qkc_dtype_keyword(f->dtype);
    if (f->table_dtype != QKC_DTYPE_F16 && f->table_dtype != QKC_DTYPE_F32)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=%s needs table=f16 or table=f32 (the dtype of its codebook entries)",
             wk);
    if (f->granularity == QKC_GRAN_NONE)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=%s needs a table granularity: group=SIZE, channel or tensor", wk);
    if (f->granularity == QKC_GRAN_GROUP && (f->group < 1 || f->group > mm->k))
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld: a table group holds 1 to k=%lld weights",
             (long long)f->group, (long long)mm->k);
    if (f->scale_dtype != QKC_DTYPE_INVALID || f->scale2_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC,
             "w=%s takes no scale: its table holds the weight values; remove scale=", wk);
    if (f->zero != QKC_ZERO_NONE)
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=%s has no zero point (the table holds the values); remove zero=", wk);
    if (f->outliers != QKC_OUTLIERS_NONE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=%s does not take outliers", wk);
    if (f->flags != 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "preset options need a preset");
    if (mm->compute == QKC_COMPUTE_INT8)
        FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC,
             "compute=int8 needs integer weight codes; w=%s decodes through a float table (use compute=f32, bf16, f16 "
             "or tf32)",
             wk);
    return QKC_OK;
}

/* vq: one codebook per tensor of 2^B vectors of V weights; K a multiple
 * of V; no scale, zero or outliers. */
static qkc_status verify_vq(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    if (f->vq_dim == 0 && f->vq_bits == 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=vq needs vq=V:B (V = 2, 4 or 8 weights per index, B = 4 .. 12 bits)");
    if (f->vq_dim != 2 && f->vq_dim != 4 && f->vq_dim != 8)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq=%d:%d: a codeword holds V = 2, 4 or 8 weights", f->vq_dim, f->vq_bits);
    if (f->vq_bits < 4 || f->vq_bits > 12)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq=%d:%d: an index has B = 4 .. 12 bits (16 .. 4096 codewords)",
             f->vq_dim, f->vq_bits);
    if (mm->k % f->vq_dim != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "k=%lld is not a multiple of the vq vector length %d", (long long)mm->k,
             f->vq_dim);
    if (f->table_dtype != QKC_DTYPE_F16 && f->table_dtype != QKC_DTYPE_F32)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=vq needs table=f16 or table=f32 (the dtype of its codebook)");
    if (f->granularity != QKC_GRAN_TENSOR)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC,
             "w=vq has one codebook per tensor: group=tensor (per-row or per-group codebooks are not supported)");
    if (f->scale_dtype != QKC_DTYPE_INVALID || f->scale2_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "w=vq takes no scale: its codebook holds the weight values; remove scale=");
    if (f->zero != QKC_ZERO_NONE)
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=vq has no zero point; remove zero=");
    if (f->outliers != QKC_OUTLIERS_NONE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=vq does not take outliers");
    if (f->flags != 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "preset options need a preset");
    if (mm->compute == QKC_COMPUTE_INT8)
        FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC,
             "compute=int8 needs integer weight codes; w=vq decodes through a float codebook (use compute=f32, bf16, "
             "f16 or tf32)");
    return QKC_OK;
}

static qkc_status verify_planar(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    const char *wk = dd->keyword;

    if (f->dtype == QKC_DTYPE_E8M0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=e8m0: e8m0 is a scale-only dtype; use it as scale=e8m0");
    if (is_dense_float(f->dtype)) {
        if (f->granularity != QKC_GRAN_NONE || f->scale_dtype != QKC_DTYPE_INVALID)
            FAIL(f->scale_dtype != QKC_DTYPE_INVALID ? QKC_KEY_SCALE : QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC,
                 "w=%s weights are stored unscaled; remove group= and scale=", wk);
        if (f->zero != QKC_ZERO_NONE)
            FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "w=%s weights have no zero point; remove zero=", wk);
        if (f->outliers != QKC_OUTLIERS_NONE)
            FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=%s weights are dense floats; outliers do not apply", wk);
        return QKC_OK;
    }
    if (dd->kind == QKC_KIND_VQ)
        return verify_vq(mm, diag, bad_key);
    if (f->vq_dim || f->vq_bits)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq= gives the vector codebook of w=vq; w=%s has none", wk);
    if (dd->kind == QKC_KIND_LUT) {
        qkc_status st = verify_lut(mm, diag, bad_key);
        if (st)
            return st;
        return QKC_OK;
    }
    if (f->table_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "table= gives the codebook of w=lut2, lut3 or lut4; w=%s has no table", wk);
    if (f->granularity == QKC_GRAN_NONE || f->scale_dtype == QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=%s weights need a scale granularity: group=SIZE, channel or tensor", wk);
    if (f->granularity == QKC_GRAN_GROUP) {
        if (f->group < 1)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld: a group holds at least one weight", (long long)f->group);
        if (f->group > mm->k)
            FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "group=%lld exceeds k=%lld; use group=channel for one scale per row",
                 (long long)f->group, (long long)mm->k);
    }

    /* Scales. */
    if (f->scale2_dtype == QKC_DTYPE_INVALID) {
        if (f->super_group != 0)
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "a super-group needs a second-level scale dtype");
        if (!(is_io_float(f->scale_dtype) || f->scale_dtype == QKC_DTYPE_E8M0)) {
            if (is_int(f->scale_dtype) || qkc_dtype_get(f->scale_dtype)->kind == QKC_KIND_MINIFLOAT)
                FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC,
                     "scale=%s is a quantized scale and needs a second level, e.g. scale=%s:f32:16",
                     qkc_dtype_keyword(f->scale_dtype), qkc_dtype_keyword(f->scale_dtype));
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "scale=%s: scales are f32, f16, bf16 or e8m0",
                 qkc_dtype_keyword(f->scale_dtype));
        }
    } else {
        const qkc_dtype_desc *sd = qkc_dtype_get(f->scale_dtype);
        if (!(is_int(f->scale_dtype) || sd->kind == QKC_KIND_MINIFLOAT) || f->scale_dtype == QKC_DTYPE_FP4)
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC,
                 "double quantization quantizes scales to an integer or fp8 dtype, not %s", sd->keyword);
        if (!is_io_float(f->scale2_dtype))
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "the second-level scale is f32, f16 or bf16, not %s",
                 qkc_dtype_keyword(f->scale2_dtype));
        if (f->super_group < 1 || f->super_group > QKC_MAX_SUPER_GROUP)
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "the super-group holds 1 to %d groups, not %lld",
                 QKC_MAX_SUPER_GROUP, (long long)f->super_group);
        if (f->granularity != QKC_GRAN_GROUP)
            FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "double quantization needs group=SIZE granularity");
    }

    /* Zero points. */
    if (f->zero == QKC_ZERO_INT && !is_int(f->dtype))
        FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "zero=int needs integer weights; %s weights have no integer zero point", wk);
    if (f->zero == QKC_ZERO_FLOAT) {
        if (!is_int(f->dtype))
            FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC, "zero=float (x = d*q + m) needs integer weights, not %s", wk);
        if (!is_io_float(f->scale_dtype) || f->scale2_dtype != QKC_DTYPE_INVALID)
            FAIL(QKC_KEY_ZERO, QKC_ERR_INVALID_SPEC,
                 "zero=float stores minima in the scale dtype, which must then be f32, f16 or bf16");
    }

    /* Outliers. */
    if (f->outliers == QKC_OUTLIERS_SPARSE &&
        !(f->outlier_fraction > 0.0 && f->outlier_fraction <= QKC_MAX_OUTLIER_FRACTION))
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "outliers=sparse:%g: the fraction must be in (0, %g]",
             f->outlier_fraction, QKC_MAX_OUTLIER_FRACTION);
    if (f->flags != 0)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "preset options need a preset");
    return QKC_OK;
}

qkc_status qkc_matmul_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_dtype_desc *wd;
    if (bad_key)
        *bad_key = QKC_KEY_COUNT;
    if (mm->n == 0 && mm->k == 0 && mm->w.dtype == QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "n=, k= and w= are required");
    if (mm->n <= 0)
        FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "n=%lld: n is required and must be at least 1", (long long)mm->n);
    if (mm->k <= 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "k=%lld: k is required and must be at least 1", (long long)mm->k);
    if (mm->m < 0)
        FAIL(QKC_KEY_M, QKC_ERR_INVALID_SPEC, "m=%lld: m must be at least 1", (long long)mm->m);
    if (mm->n > QKC_MAX_DIM)
        FAIL(QKC_KEY_N, QKC_ERR_LIMIT, "n=%lld exceeds the limit of %lld", (long long)mm->n, (long long)QKC_MAX_DIM);
    if (mm->k > QKC_MAX_DIM)
        FAIL(QKC_KEY_K, QKC_ERR_LIMIT, "k=%lld exceeds the limit of %lld", (long long)mm->k, (long long)QKC_MAX_DIM);
    if (mm->m > QKC_MAX_DIM)
        FAIL(QKC_KEY_M, QKC_ERR_LIMIT, "m=%lld exceeds the limit of %lld", (long long)mm->m, (long long)QKC_MAX_DIM);
    if (mm->n * mm->k > QKC_MAX_WEIGHTS) /* both <= 2^24: no overflow */
        FAIL(QKC_KEY_K, QKC_ERR_LIMIT, "n*k = %lld weights exceeds the limit of 2^36 = %lld", (long long)(mm->n * mm->k),
             (long long)QKC_MAX_WEIGHTS);
    if (!is_io_float(mm->a_dtype))
        FAIL(QKC_KEY_A, QKC_ERR_INVALID_SPEC, "a=%s: activations are f32, f16 or bf16", qkc_dtype_keyword(mm->a_dtype));
    if (!is_io_float(mm->out_dtype))
        FAIL(QKC_KEY_OUT, QKC_ERR_INVALID_SPEC, "out=%s: outputs are f32, f16 or bf16", qkc_dtype_keyword(mm->out_dtype));
    if (mm->compute < QKC_COMPUTE_F32 || mm->compute > QKC_COMPUTE_TF32)
        FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC, "compute: unknown compute type");
    if (mm->bias != QKC_BIAS_NONE && mm->bias != QKC_BIAS_F32)
        FAIL(QKC_KEY_BIAS, QKC_ERR_INVALID_SPEC, "bias: expected none or f32");
    if ((unsigned)mm->act > QKC_ACT_SILU)
        FAIL(QKC_KEY_ACT, QKC_ERR_INVALID_SPEC, "act: expected none, relu, gelu or silu");
    if (mm->rotate) {
        if (mm->rotate < 2 || mm->rotate > QKC_MAX_ROTATE_BLOCK || (mm->rotate & (mm->rotate - 1)))
            FAIL(QKC_KEY_ROTATE, QKC_ERR_INVALID_SPEC, "rotate=hadamard:%d: the block is a power of two from 2 to %d",
                 (int)mm->rotate, QKC_MAX_ROTATE_BLOCK);
        if (mm->k % mm->rotate)
            FAIL(QKC_KEY_ROTATE, QKC_ERR_INVALID_SPEC,
                 "rotate=hadamard:%d: the block must divide k=%lld (the rotation is block-diagonal along k)",
                 (int)mm->rotate, (long long)mm->k);
    }
    if (mm->lora_rank) {
        if (mm->lora_rank < 1 || mm->lora_rank > QKC_MAX_LORA_RANK)
            FAIL(QKC_KEY_LORA, QKC_ERR_INVALID_SPEC, "lora=%d:...: the rank is 1 .. %d", (int)mm->lora_rank,
                 QKC_MAX_LORA_RANK);
        if (!is_io_float(mm->lora_dtype))
            FAIL(QKC_KEY_LORA, QKC_ERR_INVALID_SPEC, "lora=%d:%s: adapters are f32, f16 or bf16", (int)mm->lora_rank,
                 qkc_dtype_keyword(mm->lora_dtype));
        if (mm->lora_rank > mm->k || mm->lora_rank > mm->n)
            FAIL(QKC_KEY_LORA, QKC_ERR_INVALID_SPEC,
                 "lora=%d:%s: the rank exceeds min(n, k) = %lld (a merged update of that rank costs less)",
                 (int)mm->lora_rank, qkc_dtype_keyword(mm->lora_dtype), (long long)(mm->n < mm->k ? mm->n : mm->k));
    }
    if ((unsigned)mm->ascale > QKC_ASCALE_STATIC_CHANNEL)
        FAIL(QKC_KEY_ASCALE, QKC_ERR_INVALID_SPEC, "ascale: expected dynamic, static or static:channel");
    if (mm->ascale != QKC_ASCALE_DYNAMIC && mm->compute != QKC_COMPUTE_INT8)
        FAIL(QKC_KEY_ASCALE, QKC_ERR_INVALID_SPEC,
             "ascale=%s scales int8-quantized activations; it needs compute=int8 (compute=%s)",
             mm->ascale == QKC_ASCALE_STATIC ? "static" : "static:channel", qkc_compute_keyword(mm->compute));
    wd = qkc_dtype_get(mm->w.dtype);
    if (!wd)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w= is required (a dtype such as int4 or a preset such as q4_0)");
    if (mm->w.scale_dtype != QKC_DTYPE_INVALID && !qkc_dtype_get(mm->w.scale_dtype))
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "scale: unknown dtype");
    if (mm->w.scale2_dtype != QKC_DTYPE_INVALID && !qkc_dtype_get(mm->w.scale2_dtype))
        FAIL(QKC_KEY_SCALE, QKC_ERR_INVALID_SPEC, "scale: unknown second-level dtype");
    if ((unsigned)mm->w.zero > QKC_ZERO_FLOAT || (unsigned)mm->w.outliers > QKC_OUTLIERS_ACT ||
        (unsigned)mm->w.granularity > QKC_GRAN_GROUP)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w: a format field holds an unknown value");

    if (mm->w.preset != QKC_PRESET_NONE) {
        qkc_status st;
        if (!qkc_preset_get(mm->w.preset))
            FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w: unknown preset");
        if (mm->w.table_dtype != QKC_DTYPE_INVALID)
            FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=%s has no table; table= is for w=lut2, lut3 or lut4",
                 qkc_preset_get(mm->w.preset)->keyword);
        if ((st = verify_preset(mm, diag, bad_key)))
            return st;
    } else {
        qkc_status st = verify_planar(mm, diag, bad_key);
        if (st)
            return st;
        if (mm->w.mixed_blocks && (st = qkc_mixed_verify(mm, diag, bad_key)))
            return st;
    }

    /* Compute type against the weights. */
    if (mm->compute == QKC_COMPUTE_INT8) {
        int ok = wd->kind == QKC_KIND_INT || mm->w.dtype == QKC_DTYPE_IQ4NL || mm->w.dtype == QKC_DTYPE_FP4;
        if (!ok)
            FAIL(QKC_KEY_COMPUTE, QKC_ERR_INVALID_SPEC,
                 "compute=int8 multiplies integer weight codes; %s weights are not integers (use compute=f32, bf16 or f16)",
                 wd->keyword);
    }
    if (mm->w.outliers == QKC_OUTLIERS_ACT) {
        if (mm->compute != QKC_COMPUTE_INT8)
            FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC,
                 "outliers=act:%g keeps activation outlier columns out of the int8 product; it needs compute=int8",
                 mm->w.act_threshold);
        if (!(mm->w.act_threshold > 0.0 && mm->w.act_threshold <= QKC_MAX_ACT_THRESHOLD))
            FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "outliers=act:%g: the threshold must be in (0, %g]",
                 mm->w.act_threshold, QKC_MAX_ACT_THRESHOLD);
        if (mm->ascale != QKC_ASCALE_DYNAMIC)
            FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC,
                 "outliers=act:%g splits dynamically quantized activations; it does not combine with ascale=%s",
                 mm->w.act_threshold, mm->ascale == QKC_ASCALE_STATIC ? "static" : "static:channel");
    } else if (mm->w.act_threshold != 0.0) {
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w: an activation threshold without outliers=act");
    }
    return QKC_OK;
}

int qkc_matmul_equal(const qkc_matmul *a, const qkc_matmul *b)
{
    return a->m == b->m && a->n == b->n && a->k == b->k && a->a_dtype == b->a_dtype &&
           qkc_format_equal(&a->w, &b->w) && a->compute == b->compute && a->bias == b->bias &&
           a->act == b->act && a->out_dtype == b->out_dtype && a->rotate == b->rotate &&
           a->lora_rank == b->lora_rank && (!a->lora_rank || a->lora_dtype == b->lora_dtype) && a->ascale == b->ascale;
}
