/*
 * Canonical text of a matmul description: one line, keys in a fixed order,
 * every field that differs from what the w= word implies, nothing else.
 * Parsing the canonical text gives back an equal description.
 */
#include "ir/spec.h"
#include "ir/mixed.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out_buf {
    char *buf;
    size_t size, len;
} out_buf;

static void put(out_buf *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void put(out_buf *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL, o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* Shortest decimal that reads back as the same double. */
static void put_double(out_buf *o, double v)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    put(o, "%s", tmp);
}

static void put_group(out_buf *o, const qkc_format *f)
{
    switch (f->granularity) {
    case QKC_GRAN_NONE: break;
    case QKC_GRAN_TENSOR: put(o, " group=tensor"); break;
    case QKC_GRAN_CHANNEL: put(o, " group=channel"); break;
    case QKC_GRAN_GROUP: put(o, " group=%lld", (long long)f->group); break;
    }
}

size_t qkc_matmul_print(const qkc_matmul *mm, char *buf, size_t size)
{
    out_buf o = {buf, size, 0};
    const qkc_format *f = &mm->w;
    static const char *const zero_kw[] = {"none", "int", "float"};

    if (buf && size)
        buf[0] = '\0';
    put(&o, "matmul");
    if (mm->m)
        put(&o, " m=%lld", (long long)mm->m);
    put(&o, " n=%lld k=%lld a=%s", (long long)mm->n, (long long)mm->k, qkc_dtype_keyword(mm->a_dtype));
    if (f->preset != QKC_PRESET_NONE) {
        const qkc_preset_desc *pd = qkc_preset_get(f->preset);
        char opts[32];
        qkc_format def = qkc_preset_format(f->preset);
        qkc_format_options(f, opts, sizeof opts);
        put(&o, " w=%s%s%s", pd ? pd->keyword : "?", opts[0] ? ":" : "", opts);
        /* Only group may differ from the preset (verified). */
        if (f->granularity != def.granularity || f->group != def.group)
            put_group(&o, f);
        if (f->outliers == QKC_OUTLIERS_ACT) {
            put(&o, " outliers=act:");
            put_double(&o, f->act_threshold);
        }
    } else {
        if (f->mixed_blocks > 0) {
            char bits[200];
            qkc_mixed_print_bits(f, bits, sizeof bits);
            put(&o, " w=mixed bits=%s", bits);
        } else {
            put(&o, " w=%s", qkc_dtype_keyword(f->dtype));
        }
        put_group(&o, f);
        if (f->scale_dtype != QKC_DTYPE_INVALID) {
            put(&o, " scale=%s", qkc_dtype_keyword(f->scale_dtype));
            if (f->scale2_dtype != QKC_DTYPE_INVALID)
                put(&o, ":%s:%lld", qkc_dtype_keyword(f->scale2_dtype), (long long)f->super_group);
        }
        if (f->zero != QKC_ZERO_NONE && (unsigned)f->zero <= QKC_ZERO_FLOAT)
            put(&o, " zero=%s", zero_kw[f->zero]);
        if (f->outliers == QKC_OUTLIERS_SPARSE) {
            put(&o, " outliers=sparse:");
            put_double(&o, f->outlier_fraction);
        } else if (f->outliers == QKC_OUTLIERS_ACT) {
            put(&o, " outliers=act:");
            put_double(&o, f->act_threshold);
        }
        if (f->table_dtype != QKC_DTYPE_INVALID)
            put(&o, " table=%s", qkc_dtype_keyword(f->table_dtype));
        if (f->vq_dim || f->vq_bits)
            put(&o, " vq=%d:%d", f->vq_dim, f->vq_bits);
    }
    if (mm->rotate)
        put(&o, " rotate=hadamard:%d", (int)mm->rotate);
    if (mm->lora_rank)
        put(&o, " lora=%d:%s", (int)mm->lora_rank, qkc_dtype_keyword(mm->lora_dtype));
    if (mm->compute != qkc_default_compute(mm)) /* compute=f32 for w=q4_0: exact operands */
        put(&o, " compute=%s", qkc_compute_keyword(mm->compute));
    if (mm->ascale == QKC_ASCALE_STATIC || mm->ascale == QKC_ASCALE_STATIC_CHANNEL)
        put(&o, " ascale=%s", mm->ascale == QKC_ASCALE_STATIC ? "static" : "static:channel");
    if (mm->bias == QKC_BIAS_F32)
        put(&o, " bias=f32");
    if (mm->act != QKC_ACT_NONE)
        put(&o, " act=%s", qkc_act_keyword(mm->act));
    put(&o, " out=%s", qkc_dtype_keyword(mm->out_dtype));
    return o.len;
}
