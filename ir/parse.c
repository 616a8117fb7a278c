/*
 * Text spec parser. Grammar (docs/spec.md):
 *
 *   spec    := ws* "matmul" (ws+ pair)* ws*
 *   pair    := key "=" value
 *   ws      := space | tab | newline | comment;  comment := "#" to end of line
 *
 * Keys may come in any order, each at most once. The text is read in two
 * steps: collect every key=value with its place, then build the description
 * from them (a preset first, then the keys that refine it), then verify.
 */
#include "ir/spec.h"
#include "ir/family.h"
#include "ir/mixed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const key_names[QKC_KEY_COUNT] = {
    "m", "n", "k", "a", "w", "group", "scale", "zero", "outliers", "compute", "bias", "act", "out", "layout",
    "rotate", "lora", "ascale", "table", "vq", "bits",
};

const char *qkc_key_name(qkc_key key)
{
    return (unsigned)key < QKC_KEY_COUNT ? key_names[key] : "?";
}

typedef struct token {
    const char *s;
    size_t len;
    int line, col;
} token;

typedef struct raw_spec {
    token value[QKC_KEY_COUNT]; /* s == NULL when absent */
    token key[QKC_KEY_COUNT];
} raw_spec;

static qkc_status parse_fail(qkc_diag *diag, qkc_status st, int line, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#include <stdarg.h>

static qkc_status parse_fail(qkc_diag *diag, qkc_status st, int line, int col, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qkc_diag_set(diag, st, "%d:%d: %s", line, col, what);
}

static int tok_is(const token *t, const char *s)
{
    return strlen(s) == t->len && memcmp(t->s, s, t->len) == 0;
}

/* ----------------------------------------------------------------- lexing */

typedef struct lexer {
    const char *p;
    int line, col;
} lexer;

static void skip_space(lexer *lx)
{
    for (;;) {
        char c = *lx->p;
        if (c == '#') {
            while (*lx->p && *lx->p != '\n')
                lx->p++, lx->col++;
        } else if (c == '\n') {
            lx->p++, lx->line++, lx->col = 1;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx->p++, lx->col++;
        } else {
            return;
        }
    }
}

static int next_token(lexer *lx, token *t)
{
    skip_space(lx);
    if (!*lx->p)
        return 0;
    t->s = lx->p;
    t->line = lx->line;
    t->col = lx->col;
    while (*lx->p && *lx->p != ' ' && *lx->p != '\t' && *lx->p != '\r' && *lx->p != '\n' && *lx->p != '#')
        lx->p++, lx->col++;
    t->len = (size_t)(lx->p - t->s);
    return 1;
}

static qkc_status collect(const char *text, raw_spec *raw, qkc_diag *diag)
{
    lexer lx = {text, 1, 1};
    token t;
    memset(raw, 0, sizeof *raw);
    if (!next_token(&lx, &t))
        return parse_fail(diag, QKC_ERR_PARSE, lx.line, lx.col, "empty spec: expected 'matmul' followed by key=value pairs");
    if (!tok_is(&t, "matmul"))
        return parse_fail(diag, QKC_ERR_PARSE, t.line, t.col, "expected 'matmul' at the start of a spec, found '%.*s'",
                          (int)(t.len > 40 ? 40 : t.len), t.s);
    while (next_token(&lx, &t)) {
        const char *eq = memchr(t.s, '=', t.len);
        token key, val;
        int k;
        if (!eq)
            return parse_fail(diag, QKC_ERR_PARSE, t.line, t.col, "expected key=value, found '%.*s'",
                              (int)(t.len > 40 ? 40 : t.len), t.s);
        key = t;
        key.len = (size_t)(eq - t.s);
        val.s = eq + 1;
        val.len = t.len - key.len - 1;
        val.line = t.line;
        val.col = t.col + (int)key.len + 1;
        if (key.len == 0)
            return parse_fail(diag, QKC_ERR_PARSE, t.line, t.col, "expected a key before '='");
        for (k = 0; k < QKC_KEY_COUNT; k++)
            if (tok_is(&key, key_names[k]))
                break;
        if (k == QKC_KEY_COUNT)
            return parse_fail(diag, QKC_ERR_PARSE, key.line, key.col,
                              "unknown key '%.*s'; expected one of m n k a w group scale zero outliers "
                              "compute bias act out layout rotate lora ascale table vq bits",
                              (int)(key.len > 40 ? 40 : key.len), key.s);
        if (raw->value[k].s)
            return parse_fail(diag, QKC_ERR_PARSE, key.line, key.col, "key '%s' given twice (first at %d:%d)",
                              key_names[k], raw->key[k].line, raw->key[k].col);
        if (val.len == 0)
            return parse_fail(diag, QKC_ERR_PARSE, val.line, val.col, "missing value after '%s='", key_names[k]);
        raw->key[k] = key;
        raw->value[k] = val;
    }
    return QKC_OK;
}

/* ------------------------------------------------------------- values */

static qkc_status parse_int(const token *v, const char *what, int64_t *out, qkc_diag *diag)
{
    int64_t x = 0;
    if (v->len == 0)
        return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "%s: expected a decimal integer", what);
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c < '0' || c > '9')
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "%s=%.*s: expected a decimal integer", what,
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        if (x > (INT64_MAX - (c - '0')) / 10)
            return parse_fail(diag, QKC_ERR_LIMIT, v->line, v->col, "%s=%.*s is out of range (at most %lld)", what,
                              (int)(v->len > 40 ? 40 : v->len), v->s, (long long)QKC_MAX_DIM);
        x = x * 10 + (c - '0');
    }
    *out = x;
    return QKC_OK;
}

/* *out is written on every path (QKC_DTYPE_INVALID on failure). */
static qkc_status parse_dtype(const token *v, const char *what, qkc_dtype *out, qkc_diag *diag)
{
    qkc_dtype d = qkc_dtype_from_keyword(v->s, v->len);
    *out = d;
    if (d == QKC_DTYPE_INVALID)
        return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "%s=%.*s: unknown dtype; expected %s", what,
                          (int)(v->len > 40 ? 40 : v->len), v->s,
                          (!strcmp(what, "a") || !strcmp(what, "out")) ? "f32, f16 or bf16"
                                                                       : "a dtype such as f32, f16, bf16 or e8m0");
    return QKC_OK;
}

static qkc_status parse_enum(const token *v, const char *what, const char *const *names, int count, int *out,
                             const char *expected, qkc_diag *diag)
{
    for (int i = 0; i < count; i++)
        if (names[i] && tok_is(v, names[i])) {
            *out = i;
            return QKC_OK;
        }
    return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "%s=%.*s: expected %s", what,
                      (int)(v->len > 40 ? 40 : v->len), v->s, expected);
}

static const char *const compute_names[] = {NULL, "f32", "int8", "bf16", "f16", "tf32"};
static const char *const act_names[] = {"none", "relu", "gelu", "silu"};
static const char *const bias_names[] = {"none", "f32"};
static const char *const zero_names[] = {"none", "int", "float"};

const char *qkc_compute_keyword(qkc_compute c)
{
    return (c >= QKC_COMPUTE_F32 && c <= QKC_COMPUTE_TF32) ? compute_names[c] : "?";
}

const char *qkc_act_keyword(qkc_act a)
{
    return (unsigned)a <= QKC_ACT_SILU ? act_names[a] : "?";
}

/* ------------------------------------------------------------ formats */

static int dense_float(qkc_dtype d)
{
    return d == QKC_DTYPE_F32 || d == QKC_DTYPE_F16 || d == QKC_DTYPE_BF16 || d == QKC_DTYPE_TF32;
}

qkc_status qkc_option_none(const qkc_format *f, const char *word, size_t len, qkc_diag *diag)
{
    return qkc_diag_set(diag, QKC_ERR_PARSE, "%s takes no options (found ':%.*s')", qkc_preset_get(f->preset)->keyword,
                        (int)(len > 20 ? 20 : len), word);
}

qkc_status qkc_option_unknown(const qkc_format *f, const char *word, size_t len, const char *allowed,
                              qkc_diag *diag)
{
    return qkc_diag_set(diag, QKC_ERR_PARSE, "unknown or repeated option '%.*s' for %s; options are %s",
                        (int)(len > 20 ? 20 : len), word, qkc_preset_get(f->preset)->keyword, allowed);
}

qkc_status qkc_format_from_words(const char *word, size_t len, const char *options, size_t olen,
                                 qkc_format *out, qkc_diag *diag)
{
    qkc_preset p = qkc_preset_from_keyword(word, len);
    const qkc_family_ir *fam;
    qkc_format f;
    if (p == QKC_PRESET_NONE) {
        qkc_dtype d = qkc_dtype_from_keyword(word, len);
        if (d == QKC_DTYPE_INVALID) {
            char presets[256];
            size_t n = 0;
            presets[0] = '\0';
            for (int i = 1; i < QKC_PRESET_END_ && n < sizeof presets; i++)
                if (qkc_preset_get((qkc_preset)i))
                    n += (size_t)snprintf(presets + n, sizeof presets - n, "%s%s", n ? " " : "",
                                          qkc_preset_get((qkc_preset)i)->keyword);
            return qkc_diag_set(diag, QKC_ERR_PARSE,
                                "unknown weight format '%.*s'; expected a dtype (int8 uint8 int4 uint4 int3 int2 "
                                "nf4 fp4 fp8e4m3 fp8e5m2 bf16 f16 tf32 f32 ...) or a preset (%s)",
                                (int)(len > 40 ? 40 : len), word, presets);
        }
        if (olen)
            return qkc_diag_set(diag, QKC_ERR_PARSE, "%s takes no options (found ':%.*s')", qkc_dtype_keyword(d),
                                (int)(olen > 40 ? 40 : olen), options);
        memset(&f, 0, sizeof f);
        f.dtype = d;
        if (!dense_float(d)) {
            f.granularity = QKC_GRAN_CHANNEL;
            f.scale_dtype = QKC_DTYPE_F32;
        }
        if (qkc_dtype_get(d)->kind == QKC_KIND_LUT || d == QKC_DTYPE_VQ) {
            f.scale_dtype = QKC_DTYPE_INVALID; /* the table carries the magnitudes */
            f.table_dtype = QKC_DTYPE_F16;
        }
        if (d == QKC_DTYPE_VQ)
            f.granularity = QKC_GRAN_TENSOR; /* one codebook per tensor */
        *out = f;
        return QKC_OK;
    }
    f = qkc_preset_format(p);
    fam = qkc_family_ir_get(qkc_format_family(&f));
    /* Options: ':'-separated words after the preset keyword, each the
     * family's to read. */
    {
        const char *s = options, *end = options ? options + olen : NULL; /* no NULL + 0 */
        unsigned seen = 0;
        while (s && s < end) {
            const char *e = memchr(s, ':', (size_t)(end - s));
            size_t n = e ? (size_t)(e - s) : (size_t)(end - s);
            qkc_status st = fam && fam->parse_option ? fam->parse_option(&f, s, n, &seen, diag)
                                                     : qkc_option_none(&f, s, n, diag);
            if (st != QKC_OK)
                return st;
            s = e ? e + 1 : end;
        }
    }
    *out = f;
    return QKC_OK;
}

void qkc_format_options(const qkc_format *f, char *buf, size_t size)
{
    const qkc_family_ir *fam = f->preset != QKC_PRESET_NONE ? qkc_family_ir_get(qkc_format_family(f)) : NULL;
    buf[0] = '\0';
    if (fam && fam->print_options)
        fam->print_options(f, buf, size);
}

static const char *const ascale_names[] = {"dynamic", "static", "static:channel"};

/* lora=none | lora=R:DTYPE */
static qkc_status parse_lora(const token *v, qkc_matmul *mm, qkc_diag *diag)
{
    const char *colon = memchr(v->s, ':', v->len);
    token dt;
    long r = 0;
    size_t i;
    if (tok_is(v, "none"))
        return QKC_OK;
    if (!colon || colon == v->s || (size_t)(colon - v->s) > 6)
        return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "lora=%.*s: expected none or R:DTYPE (e.g. 16:bf16)",
                          (int)(v->len > 40 ? 40 : v->len), v->s);
    for (i = 0; v->s + i < colon; i++) {
        if (v->s[i] < '0' || v->s[i] > '9')
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "lora=%.*s: the rank R is a decimal number",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        r = r * 10 + (v->s[i] - '0');
    }
    dt = *v;
    dt.s = colon + 1;
    dt.len = v->len - (size_t)(colon + 1 - v->s);
    dt.col = v->col + (int)(colon + 1 - v->s);
    mm->lora_dtype = qkc_dtype_from_keyword(dt.s, dt.len);
    if (mm->lora_dtype == QKC_DTYPE_INVALID)
        return parse_fail(diag, QKC_ERR_PARSE, dt.line, dt.col, "lora=%.*s: unknown adapter dtype; expected f32, f16 or bf16",
                          (int)(v->len > 40 ? 40 : v->len), v->s);
    if (r < 1)
        return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col, "lora=%.*s: the rank is 1 .. %d (lora=none for no adapter)",
                          (int)(v->len > 40 ? 40 : v->len), v->s, QKC_MAX_LORA_RANK);
    mm->lora_rank = (int32_t)r; /* at most 6 digits; the verifier checks the range */
    return QKC_OK;
}

/* --------------------------------------------------------------- build */

static qkc_status build(const raw_spec *raw, qkc_matmul *mm, qkc_diag *diag)
{
    qkc_status st;
    const token *v;
    memset(mm, 0, sizeof *mm);
    mm->a_dtype = QKC_DTYPE_F32;
    mm->out_dtype = QKC_DTYPE_F32;
    mm->compute = QKC_COMPUTE_F32; /* until the end: without compute=, qkc_default_compute */

    if (raw->value[QKC_KEY_M].s && (st = parse_int(&raw->value[QKC_KEY_M], "m", &mm->m, diag)))
        return st;
    if (raw->value[QKC_KEY_N].s && (st = parse_int(&raw->value[QKC_KEY_N], "n", &mm->n, diag)))
        return st;
    if (raw->value[QKC_KEY_K].s && (st = parse_int(&raw->value[QKC_KEY_K], "k", &mm->k, diag)))
        return st;
    if (raw->value[QKC_KEY_M].s && mm->m == 0)
        return parse_fail(diag, QKC_ERR_INVALID_SPEC, raw->value[QKC_KEY_M].line, raw->value[QKC_KEY_M].col,
                          "m must be at least 1 (omit m= for an M given at run time)");
    if (raw->value[QKC_KEY_A].s && (st = parse_dtype(&raw->value[QKC_KEY_A], "a", &mm->a_dtype, diag)))
        return st;
    if (raw->value[QKC_KEY_OUT].s && (st = parse_dtype(&raw->value[QKC_KEY_OUT], "out", &mm->out_dtype, diag)))
        return st;
    if ((v = &raw->value[QKC_KEY_COMPUTE])->s) {
        int c = 0;
        if ((st = parse_enum(v, "compute", compute_names, 6, &c, "f32, int8, bf16, f16 or tf32", diag)))
            return st;
        mm->compute = (qkc_compute)c;
    }
    if ((v = &raw->value[QKC_KEY_BIAS])->s) {
        int b = 0;
        if ((st = parse_enum(v, "bias", bias_names, 2, &b, "none or f32", diag)))
            return st;
        mm->bias = (qkc_bias)b;
    }
    if ((v = &raw->value[QKC_KEY_ACT])->s) {
        int a = 0;
        if ((st = parse_enum(v, "act", act_names, 4, &a, "none, relu, gelu or silu", diag)))
            return st;
        mm->act = (qkc_act)a;
    }
    if ((v = &raw->value[QKC_KEY_ROTATE])->s) {
        if (tok_is(v, "none")) {
            mm->rotate = 0;
        } else if (v->len > 9 && !memcmp(v->s, "hadamard:", 9)) {
            char num[16];
            char *end;
            long b;
            size_t nl = v->len - 9;
            if (nl >= sizeof num)
                nl = sizeof num - 1;
            memcpy(num, v->s + 9, nl);
            num[nl] = '\0';
            errno = 0;
            b = strtol(num, &end, 10);
            if (*end || errno || end == num || b < 0 || b > QKC_MAX_ROTATE_BLOCK || v->len - 9 >= sizeof num)
                return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                                  "rotate=%.*s: expected hadamard:B with B a power of two up to %d", (int)v->len, v->s,
                                  QKC_MAX_ROTATE_BLOCK);
            mm->rotate = (int32_t)b;
            if (b < 2)
                return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col,
                                  "rotate=hadamard:%ld: the block is a power of two from 2 to %d", b,
                                  QKC_MAX_ROTATE_BLOCK);
        } else {
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "rotate=%.*s: expected none or hadamard:B",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        }
    }

    if ((v = &raw->value[QKC_KEY_LORA])->s && (st = parse_lora(v, mm, diag)))
        return st;
    if ((v = &raw->value[QKC_KEY_ASCALE])->s) {
        int s = 0;
        if ((st = parse_enum(v, "ascale", ascale_names, 3, &s, "dynamic, static or static:channel", diag)))
            return st;
        mm->ascale = (qkc_ascale)s;
    }

    /* The weight format: the w= word first, then the keys refining it. */
    if (!(v = &raw->value[QKC_KEY_W])->s)
        return parse_fail(diag, QKC_ERR_INVALID_SPEC, 1, 1, "w= is required (a dtype such as int4 or a preset such as q4_0)");
    {
        const char *colon = memchr(v->s, ':', v->len);
        size_t wl = colon ? (size_t)(colon - v->s) : v->len;
        qkc_diag d2;
        int is_mixed = wl == 5 && !memcmp(v->s, "mixed", 5) && !colon;
        if (is_mixed) {
            if (qkc_format_from_words("int8", 4, NULL, 0, &mm->w, &d2))
                return parse_fail(diag, d2.status, v->line, v->col, "%s", d2.message);
            mm->w.mixed_blocks = -1; /* bits= fills the blocks */
        } else
        if (qkc_format_from_words(v->s, wl, colon ? colon + 1 : NULL, colon ? v->len - wl - 1 : 0, &mm->w, &d2))
            return parse_fail(diag, d2.status, v->line, v->col, "%s", d2.message);
    }
    if ((v = &raw->value[QKC_KEY_LAYOUT])->s) {
        if (!tok_is(v, "planar"))
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                              "layout=%.*s: unknown layout; expected planar (presets carry their own layout)",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        if (mm->w.preset != QKC_PRESET_NONE)
            return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col,
                              "layout=planar conflicts with w=%s, which has its own layout",
                              qkc_preset_get(mm->w.preset)->keyword);
    }
    if ((v = &raw->value[QKC_KEY_GROUP])->s) {
        if (tok_is(v, "channel")) {
            mm->w.granularity = QKC_GRAN_CHANNEL;
            mm->w.group = 0;
        } else if (tok_is(v, "tensor")) {
            mm->w.granularity = QKC_GRAN_TENSOR;
            mm->w.group = 0;
        } else {
            int64_t g;
            if (v->s[0] < '0' || v->s[0] > '9')
                return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                                  "group=%.*s: expected a group size, channel or tensor",
                                  (int)(v->len > 40 ? 40 : v->len), v->s);
            if ((st = parse_int(v, "group", &g, diag)))
                return st;
            mm->w.granularity = QKC_GRAN_GROUP;
            mm->w.group = g;
        }
        if (mm->w.scale_dtype == QKC_DTYPE_INVALID && mm->w.granularity != QKC_GRAN_NONE &&
            mm->w.preset == QKC_PRESET_NONE && !dense_float(mm->w.dtype) &&
            mm->w.table_dtype == QKC_DTYPE_INVALID)
            mm->w.scale_dtype = QKC_DTYPE_F32;
    }
    if ((v = &raw->value[QKC_KEY_SCALE])->s) {
        const char *c1 = memchr(v->s, ':', v->len);
        qkc_dtype s1, s2 = QKC_DTYPE_INVALID;
        int64_t sg = 0;
        token t1 = *v;
        if (c1)
            t1.len = (size_t)(c1 - v->s);
        if ((st = parse_dtype(&t1, "scale", &s1, diag)))
            return st;
        if (c1) {
            const char *rest = c1 + 1, *end = v->s + v->len;
            const char *c2 = memchr(rest, ':', (size_t)(end - rest));
            token t2 = *v, t3 = *v;
            if (!c2)
                return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                                  "scale=%.*s: expected scale=DTYPE or scale=DTYPE:DTYPE:GROUPS (double quantization, "
                                  "e.g. int8:f32:16)",
                                  (int)(v->len > 40 ? 40 : v->len), v->s);
            t2.s = rest, t2.len = (size_t)(c2 - rest), t2.col = v->col + (int)(rest - v->s);
            t3.s = c2 + 1, t3.len = (size_t)(end - c2 - 1), t3.col = v->col + (int)(c2 + 1 - v->s);
            if ((st = parse_dtype(&t2, "scale", &s2, diag)) || (st = parse_int(&t3, "scale super-group", &sg, diag)))
                return st;
        }
        mm->w.scale_dtype = s1;
        mm->w.scale2_dtype = s2;
        mm->w.super_group = sg;
        if (mm->w.granularity == QKC_GRAN_NONE && mm->w.preset == QKC_PRESET_NONE)
            mm->w.granularity = QKC_GRAN_CHANNEL;
    }
    if ((v = &raw->value[QKC_KEY_ZERO])->s) {
        int z = 0;
        if ((st = parse_enum(v, "zero", zero_names, 3, &z, "none, int or float", diag)))
            return st;
        mm->w.zero = (qkc_zero)z;
    }
    if ((v = &raw->value[QKC_KEY_OUTLIERS])->s) {
        if (tok_is(v, "none")) {
            mm->w.outliers = QKC_OUTLIERS_NONE;
        } else if (v->len >= 6 && !memcmp(v->s, "sparse", 6)) {
            double frac = 0.01;
            if (v->len > 6) {
                char buf[64];
                char *end;
                size_t n = v->len - 7;
                if (v->s[6] != ':' || n == 0 || n >= sizeof buf)
                    return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                                      "outliers=%.*s: expected sparse or sparse:FRACTION (e.g. sparse:0.01)",
                                      (int)(v->len > 40 ? 40 : v->len), v->s);
                memcpy(buf, v->s + 7, n);
                buf[n] = '\0';
                errno = 0;
                frac = strtod(buf, &end);
                if (*end || errno || buf[0] == '-' || buf[0] == '+' || buf[0] == ' ')
                    return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col + 7,
                                      "outliers=%.*s: expected a fraction such as sparse:0.01",
                                      (int)(v->len > 40 ? 40 : v->len), v->s);
            }
            mm->w.outliers = QKC_OUTLIERS_SPARSE;
            mm->w.outlier_fraction = frac;
        } else if (v->len >= 4 && !memcmp(v->s, "act:", 4)) {
            /* outliers=act:T, LLM.int8 activation outlier columns */
            char buf[64];
            char *end;
            size_t n = v->len - 4;
            double t;
            if (n == 0 || n >= sizeof buf)
                return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "outliers=%.*s: expected act:THRESHOLD (e.g. act:6)",
                                  (int)(v->len > 40 ? 40 : v->len), v->s);
            memcpy(buf, v->s + 4, n);
            buf[n] = '\0';
            errno = 0;
            t = strtod(buf, &end);
            if (*end || errno || !(buf[0] >= '0' && buf[0] <= '9'))
                return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col + 4,
                                  "outliers=%.*s: expected a threshold such as act:6.0", (int)(v->len > 40 ? 40 : v->len),
                                  v->s);
            mm->w.outliers = QKC_OUTLIERS_ACT;
            mm->w.act_threshold = t;
        } else {
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "outliers=%.*s: expected none or sparse[:FRACTION], or act:THRESHOLD",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        }
    }
    if ((v = &raw->value[QKC_KEY_TABLE])->s) {
        /* lut tables: f16 or f32 entries (the verifier checks the dtype) */
        if (tok_is(v, "f16"))
            mm->w.table_dtype = QKC_DTYPE_F16;
        else if (tok_is(v, "f32"))
            mm->w.table_dtype = QKC_DTYPE_F32;
        else
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col, "table=%.*s: expected f16 or f32",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        if (mm->w.preset != QKC_PRESET_NONE ||
            (qkc_dtype_get(mm->w.dtype)->kind != QKC_KIND_LUT && mm->w.dtype != QKC_DTYPE_VQ))
            return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col,
                              "table= gives the codebook entries of w=lut2, lut3, lut4 or vq; w=%s has no table",
                              mm->w.preset ? qkc_preset_get(mm->w.preset)->keyword : qkc_dtype_keyword(mm->w.dtype));
    }
    if ((v = &raw->value[QKC_KEY_VQ])->s) {
        /* vq=V:B, the numbers checked by the verifier */
        char buf[32], *end;
        long d = 0, b = 0;
        int ok = v->len > 0 && v->len < sizeof buf;
        if (ok) {
            memcpy(buf, v->s, v->len);
            buf[v->len] = '\0';
            errno = 0;
            d = strtol(buf, &end, 10);
            ok = end != buf && *end == ':' && buf[0] >= '0' && buf[0] <= '9' && !errno;
            if (ok) {
                const char *bs = end + 1;
                b = strtol(bs, &end, 10);
                ok = end != bs && *end == '\0' && bs[0] >= '0' && bs[0] <= '9' && !errno && d <= 1024 && b <= 1024;
            }
        }
        if (!ok)
            return parse_fail(diag, QKC_ERR_PARSE, v->line, v->col,
                              "vq=%.*s: expected V:B (V = 2, 4 or 8 weights per index, B = 4 .. 12 index bits)",
                              (int)(v->len > 40 ? 40 : v->len), v->s);
        if (mm->w.preset != QKC_PRESET_NONE || mm->w.dtype != QKC_DTYPE_VQ)
            return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col, "vq= gives the vector codebook of w=vq; w=%s",
                              mm->w.preset ? qkc_preset_get(mm->w.preset)->keyword : qkc_dtype_keyword(mm->w.dtype));
        mm->w.vq_dim = (int)d;
        mm->w.vq_bits = (int)b;
    }
    if ((v = &raw->value[QKC_KEY_BITS])->s) {
        size_t off = 0;
        qkc_diag d2;
        if (mm->w.mixed_blocks != -1)
            return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col,
                              "bits= gives the row blocks of w=mixed; w=%s has one width",
                              mm->w.preset ? qkc_preset_get(mm->w.preset)->keyword : qkc_dtype_keyword(mm->w.dtype));
        if ((st = qkc_mixed_parse_bits(v->s, v->len, mm->n, &mm->w, &off, &d2)))
            return parse_fail(diag, st, v->line, v->col + (int)off, "%s", d2.message);
    } else if (mm->w.mixed_blocks == -1) {
        v = &raw->value[QKC_KEY_W];
        return parse_fail(diag, QKC_ERR_INVALID_SPEC, v->line, v->col,
                          "w=mixed needs bits=BITSxROWS[,BITSxROWS...] (row blocks summing to n), e.g. bits=4x96,8x32");
    }
    /* Without compute=, the default of the description as built: it
     * depends on w= and a=, whichever order the keys came in. */
    if (!raw->value[QKC_KEY_COMPUTE].s)
        mm->compute = qkc_default_compute(mm);
    return QKC_OK;
}

qkc_status qkc_matmul_parse(const char *text, qkc_matmul *out, qkc_spec_positions *positions, qkc_diag *diag)
{
    raw_spec raw;
    qkc_matmul mm;
    qkc_status st;
    qkc_key bad = QKC_KEY_COUNT;
    qkc_diag vd;
    if (!text || !out)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "1:1: no spec text given");
    /* line and column counters are ints: bound the text well below that */
    if (strnlen(text, (size_t)QKC_MAX_SPEC_BYTES + 1) > QKC_MAX_SPEC_BYTES)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "1:1: the spec text is longer than the limit of %u bytes",
                            (unsigned)QKC_MAX_SPEC_BYTES);
    if ((st = collect(text, &raw, diag)))
        return st;
    if (positions) {
        for (int k = 0; k < QKC_KEY_COUNT; k++) {
            positions->line[k] = raw.key[k].s ? raw.key[k].line : 0;
            positions->col[k] = raw.key[k].s ? raw.key[k].col : 0;
        }
    }
    if ((st = build(&raw, &mm, diag)))
        return st;
    if ((st = qkc_matmul_verify(&mm, &vd, &bad))) {
        int line = 1, col = 1;
        if (bad < QKC_KEY_COUNT && raw.value[bad].s) {
            line = raw.value[bad].line;
            col = raw.value[bad].col;
        } else if (bad == QKC_KEY_GROUP && raw.value[QKC_KEY_W].s) {
            /* A preset's implied group: point at w=. */
            line = raw.value[QKC_KEY_W].line;
            col = raw.value[QKC_KEY_W].col;
        }
        return qkc_diag_set(diag, st, "%d:%d: %s", line, col, vd.message);
    }
    *out = mm;
    return QKC_OK;
}
