/*
 * The verifier: every rule a matmul description must satisfy before code is
 * generated for it. Each failure names the key and the rule, and says what
 * would be accepted. The rules are listed in docs/spec.md ("Rules"). The
 * rules of each weight format are its family's (family.h); the rules every
 * preset shares are here (qkc_preset_verify).
 */
#include "ir/spec.h"
#include "ir/family.h"

#include <stdio.h>
#include <string.h>

#define FAIL QKC_VERIFY_FAIL

static int is_io_float(qkc_dtype d)
{
    return d == QKC_DTYPE_F32 || d == QKC_DTYPE_F16 || d == QKC_DTYPE_BF16;
}

/* compute=int8 multiplies integer weight codes: integer dtypes (and the
 * presets built on them), iq4nl (integer table entries) and fp4 (E2M1
 * values are integers after doubling). */
static int int8_weights(const qkc_format *w)
{
    const qkc_dtype_desc *wd = qkc_dtype_get(w->dtype);
    return wd && (wd->kind == QKC_KIND_INT || w->dtype == QKC_DTYPE_IQ4NL || w->dtype == QKC_DTYPE_FP4);
}

qkc_compute qkc_default_compute(const qkc_matmul *mm)
{
    const qkc_preset_desc *pd = qkc_preset_get(mm->w.preset);
    /* The verifier's compute=int8 rules: activations it reads (every
     * activation dtype) and integer weight codes. The rules that need
     * compute=int8 (ascale=static, outliers=act) only favour it. */
    if (pd && pd->vec_dot_type[0] && is_io_float(mm->a_dtype) && int8_weights(&mm->w))
        return QKC_COMPUTE_INT8;
    return QKC_COMPUTE_F32;
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
qkc_status qkc_preset_verify(const qkc_matmul *mm, const char *dtype_rule, int channel_ok, qkc_diag *diag,
                             qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    const qkc_preset_desc *pd = qkc_preset_get(f->preset);
    const char *kw = pd->keyword;
    char opts[32], word[64];
    qkc_format want;
    qkc_diag d2;
    char g1[32], g2[32];

    if (f->table_dtype != QKC_DTYPE_INVALID)
        FAIL(QKC_KEY_TABLE, QKC_ERR_INVALID_SPEC, "w=%s has no table; table= is for w=lut2, lut3 or lut4", kw);
    qkc_format_options(f, opts, sizeof opts);
    snprintf(word, sizeof word, "%s%s%s", kw, opts[0] ? ":" : "", opts);
    if (qkc_format_from_words(kw, strlen(kw), opts, strlen(opts), &want, &d2))
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w=%s: %s", word, d2.message);
    if (dtype_rule && f->dtype != want.dtype)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "%s", dtype_rule);
    if (pd->group_is_free) {
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
    if (pd->block_elems > 0 && mm->k % pd->block_elems != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "w=%s stores blocks of %lld weights along k; k=%lld is not a multiple of %lld",
             word, (long long)pd->block_elems, (long long)mm->k, (long long)pd->block_elems);
    return QKC_OK;
}

qkc_status qkc_matmul_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_dtype_desc *wd;
    const qkc_family_ir *fam;
    qkc_status st;
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

    if (!(fam = qkc_family_ir_get(qkc_format_family(&mm->w))))
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "w: unknown preset");
    if ((st = fam->verify(mm, diag, bad_key)) != QKC_OK)
        return st;

    /* Compute type against the weights. */
    if (mm->compute == QKC_COMPUTE_INT8) {
        if (!int8_weights(&mm->w))
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
