/*
 * The PLANAR family (family.h): qkc's own layout for dense floats, scaled
 * integers, fp8/fp4 minifloats and nf4/iq4nl codes — the verifier's rules,
 * the blob's sections and the kernel layout. The element dtype's
 * descriptor (dtype.c) decides how a code decodes; format.h gives the
 * bytes.
 */
#include "ir/family.h"

#include <stdio.h>
#include <string.h>

#include "ir/checked.h"

#define FAIL QKC_VERIFY_FAIL

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

/* ------------------------------------------------------------ verify */

static qkc_status planar_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
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
    if (f->vq_dim || f->vq_bits)
        FAIL(QKC_KEY_VQ, QKC_ERR_INVALID_SPEC, "vq= gives the vector codebook of w=vq; w=%s has none", wk);
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

/* ------------------------------------------------------------ layout */

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int qkc_planar_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    uint64_t *b = L->bytes;
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    uint64_t groups = (uint64_t)L->groups_per_row, t;

    if (!qkc_mul_u64(k, (uint64_t)dd->bits, &t))
        return 0;
    L->row_bytes = ceil_div(t, 8);
    if (!qkc_mul_u64(n, L->row_bytes, &b[QKC_SECTION_DATA]))
        return 0;
    if (f->granularity != QKC_GRAN_NONE) {
        uint64_t nscales = f->granularity == QKC_GRAN_TENSOR ? 1 : n * groups;
        if (!qkc_mul_u64(nscales, (uint64_t)qkc_dtype_storage_bytes(f->scale_dtype), &b[QKC_SECTION_SCALES]))
            return 0;
        if (f->scale2_dtype != QKC_DTYPE_INVALID) {
            uint64_t n2;
            if (!qkc_mul_u64(n, ceil_div(groups, (uint64_t)f->super_group), &n2) ||
                !qkc_mul_u64(n2, (uint64_t)qkc_dtype_storage_bytes(f->scale2_dtype), &b[QKC_SECTION_SCALES2]))
                return 0;
        }
        if (f->zero == QKC_ZERO_INT)
            b[QKC_SECTION_ZEROS] = nscales;
        else if (f->zero == QKC_ZERO_FLOAT)
            b[QKC_SECTION_ZEROS] = b[QKC_SECTION_SCALES];
    }
    if (f->outliers == QKC_OUTLIERS_SPARSE) {
        uint64_t cap = (uint64_t)(f->outlier_fraction * (double)k + 0.999999);
        uint64_t total, ptr_bytes, col_bytes, val_bytes, s;
        if (cap < 1)
            cap = 1;
        if (cap > k)
            cap = k;
        L->outlier_cap = (int64_t)cap;
        if (!qkc_mul_u64(n, cap, &total) || !qkc_mul_u64(n + 1, 4, &ptr_bytes) || !qkc_mul_u64(total, 4, &col_bytes) ||
            !qkc_mul_u64(total, 2, &val_bytes) || !qkc_align_u64(ptr_bytes, 64, &s) ||
            !qkc_align_u64(col_bytes, 64, &t) || !qkc_add_u64(s, t, &s) ||
            !qkc_add_u64(s, val_bytes, &b[QKC_SECTION_OUTLIERS]))
            return 0;
    }
    return 1;
}

/* ----------------------------------------------------- kernel layout */

/* Dense weights: the stored values themselves (tf32 is f32 bits with the
 * low 13 mantissa bits cleared on packing). */
static void set_dense(qkc_klayout *L, qkc_dtype dt)
{
    L->chunk = 32;
    if (dt == QKC_DTYPE_F16) {
        L->code_bits = 16;
        L->decode = QKC_KDEC_F16;
    } else if (dt == QKC_DTYPE_BF16) {
        L->code_bits = 16;
        L->decode = QKC_KDEC_BF16;
    } else {
        L->code_bits = 32;
        L->decode = QKC_KDEC_F32;
    }
}

static const char *planar_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                        size_t note_size)
{
    const qkc_dtype_desc *dd = qkc_dtype_get(f->dtype);
    char why[64];
    int chunk;

    (void)n, (void)k;
    if (f->granularity == QKC_GRAN_NONE) {
        set_dense(L, f->dtype);
        snprintf(note, note_size, "%s", dd->keyword);
        return note;
    }
    if (!(chunk = qkc_klayout_chunk(f, why, sizeof why))) {
        qkc_klayout_set_fallback(L, why);
        return NULL;
    }
    L->outliers = f->outliers == QKC_OUTLIERS_SPARSE; /* CSR arrays after the rows (place) */
    int code_bits = dd->bits <= 4 ? 4 : 8;
    if (dd->kind == QKC_KIND_INT) {
        /* Signed codes become offset binary so every code is unsigned;
         * zero_const takes the offset back out, exactly. */
        qkc_klayout_set_affine(L, chunk, code_bits, dd->is_signed ? 1 << (dd->bits - 1) : 0);
    } else if (f->dtype == QKC_DTYPE_FP8E4M3 || f->dtype == QKC_DTYPE_FP8E5M2) {
        L->chunk = chunk;
        L->code_bits = 8;
        L->decode = f->dtype == QKC_DTYPE_FP8E4M3 ? QKC_KDEC_FP8E4M3 : QKC_KDEC_FP8E5M2;
    } else {
        /* nf4, iq4nl, fp4: the dtype's own decode table (fp4 code 8 is −0,
         * as the reference decodes it). */
        qkc_klayout_set_dtype_table(L, chunk, f->dtype);
    }

    if (f->scale2_dtype != QKC_DTYPE_INVALID)
        L->scale = QKC_KF_F32; /* s2 · decode(code), computed once at packing */
    else if (f->scale_dtype == QKC_DTYPE_F16)
        L->scale = QKC_KF_F16;
    else if (f->scale_dtype == QKC_DTYPE_E8M0) {
        L->scale = QKC_KF_E8M0;
        L->e8m0_ff_is_nan = 1;
    } else
        L->scale = QKC_KF_F32; /* f32, and bf16 widened exactly */
    if (f->zero == QKC_ZERO_FLOAT)
        L->min = f->scale_dtype == QKC_DTYPE_F16 ? QKC_KF_F16 : QKC_KF_F32;
    else if (f->zero == QKC_ZERO_INT)
        L->zero = QKC_KF_I16;

    if (dd->kind == QKC_KIND_INT && dd->is_signed)
        snprintf(note, note_size, "%s, offset-binary codes", dd->keyword);
    else
        snprintf(note, note_size, "%s", dd->keyword);
    if (L->outliers) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", +sparse outliers");
    }
    if (f->granularity == QKC_GRAN_TENSOR || f->granularity == QKC_GRAN_CHANNEL) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", %s scale repeated",
                 f->granularity == QKC_GRAN_TENSOR ? "tensor" : "row");
    }
    if (f->scale2_dtype != QKC_DTYPE_INVALID) {
        size_t len = strlen(note);
        snprintf(note + len, note_size - len, ", scales resolved");
    }
    return note;
}

const qkc_family_ir qkc_family_planar_ir = {
    .name = "planar",
    .verify = planar_verify,
    .sections = qkc_planar_sections,
    .kernel_layout = planar_kernel_layout,
};
