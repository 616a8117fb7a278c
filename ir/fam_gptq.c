/*
 * The GPTQ and AWQ families (family.h): GPTQ v1 (w=gptq[:BITS][:actorder])
 * and AWQ gemm (w=awq) — the verifier's rules, the blobs' sections and
 * their shared kernel layout. The bytes are in docs/formats.md.
 */
#include "ir/family.h"

#include <stdio.h>
#include <string.h>

#include "ir/checked.h"

#define FAIL QKC_VERIFY_FAIL

static qkc_status gptq_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    qkc_status st = qkc_preset_verify(mm, "gptq weights are 2, 3, 4 or 8 bits (w=gptq:BITS)", 1, diag, bad_key);
    int bits;
    int64_t kq;
    if (st != QKC_OK)
        return st;
    bits = qkc_dtype_get(f->dtype)->bits;
    kq = bits == 3 ? 32 : 32 / bits; /* values per packed run */
    if (mm->k % kq != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC, "gptq packs %lld %d-bit weights per int32 run along k; k=%lld is not a multiple of %lld",
             (long long)kq, bits, (long long)mm->k, (long long)kq);
    if (mm->n % kq != 0)
        FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "gptq packs %d-bit zero points along n; n=%lld is not a multiple of %lld",
             bits, (long long)mm->n, (long long)kq);
    return QKC_OK;
}

/* w=gptq[:2|3|4|8][:actorder]: the bit width (default 4), act-order. */
static qkc_status gptq_option(qkc_format *f, const char *s, size_t n, unsigned *seen, qkc_diag *diag)
{
    if (n >= 1 && s[0] >= '0' && s[0] <= '9') {
        qkc_dtype bits_dt = QKC_DTYPE_INVALID;
        if (n == 1 && s[0] == '2')
            bits_dt = QKC_DTYPE_UINT2;
        else if (n == 1 && s[0] == '3')
            bits_dt = QKC_DTYPE_UINT3;
        else if (n == 1 && s[0] == '4')
            bits_dt = QKC_DTYPE_UINT4;
        else if (n == 1 && s[0] == '8')
            bits_dt = QKC_DTYPE_UINT8;
        if (bits_dt == QKC_DTYPE_INVALID)
            return qkc_diag_set(diag, QKC_ERR_PARSE, "gptq:%.*s: gptq bits must be 2, 3, 4 or 8", (int)(n > 20 ? 20 : n),
                                s);
        if (*seen)
            return qkc_diag_set(diag, QKC_ERR_PARSE, "gptq: bits given twice");
        *seen = 1;
        f->dtype = bits_dt;
        return QKC_OK;
    }
    if (n == 8 && !memcmp(s, "actorder", 8) && !(f->flags & QKC_FORMAT_ACTORDER)) {
        f->flags |= QKC_FORMAT_ACTORDER;
        return QKC_OK;
    }
    return qkc_option_unknown(f, s, n, "2, 3, 4, 8 and actorder", diag);
}

static void gptq_print_options(const qkc_format *f, char *buf, size_t size)
{
    const qkc_dtype_desc *d = qkc_dtype_get(f->dtype);
    size_t n = 0;
    if (d && d->bits != 4)
        n += (size_t)snprintf(buf + n, size - n, "%d", d->bits);
    if (f->flags & QKC_FORMAT_ACTORDER)
        snprintf(buf + n, n < size ? size - n : 0, "%sactorder", n ? ":" : "");
}

static qkc_status awq_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    qkc_status st = qkc_preset_verify(mm, NULL, 0, diag, bad_key);
    if (st != QKC_OK)
        return st;
    if (mm->n % 8 != 0)
        FAIL(QKC_KEY_N, QKC_ERR_INVALID_SPEC, "awq packs 8 columns per int32; n=%lld is not a multiple of 8",
             (long long)mm->n);
    if (mm->k % f->group != 0)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "awq needs group to divide k; group=%lld does not divide k=%lld",
             (long long)f->group, (long long)mm->k);
    return QKC_OK;
}

/* DATA: qweight int32 [K·bits/32][N] (packed along K, LSB first; 3-bit:
 * 96-bit little-endian runs of 32 values). ZEROS: qzeros int32
 * [groups][N·bits/32] packed along N, stored value = zero − 1. SCALES:
 * f16 [groups][N]. AUX (actorder): g_idx int32[K]. */
static int gptq_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    uint64_t *b = L->bytes, bits = (uint64_t)qkc_dtype_get(f->dtype)->bits, groups = (uint64_t)L->groups_per_row;
    if (!qkc_mul_u64(k * bits / 32, n * 4, &b[QKC_SECTION_DATA]) ||
        !qkc_mul_u64(groups, n * bits / 32 * 4, &b[QKC_SECTION_ZEROS]) ||
        !qkc_mul_u64(groups, n * 2, &b[QKC_SECTION_SCALES]))
        return 0;
    if (f->flags & QKC_FORMAT_ACTORDER)
        b[QKC_SECTION_AUX] = k * 4;
    return 1;
}

/* DATA: qweight int32 [K][N/8], nibble i of word c = column 8c + ORDER[i],
 * ORDER = 0,2,4,6,1,3,5,7. ZEROS: qzeros int32 [K/G][N/8], same
 * interleave, stored as is. SCALES: f16 [K/G][N]. */
static int awq_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    uint64_t *b = L->bytes, groups = (uint64_t)L->groups_per_row;
    (void)f;
    return qkc_mul_u64(k, n / 8 * 4, &b[QKC_SECTION_DATA]) && qkc_mul_u64(groups, n / 8 * 4, &b[QKC_SECTION_ZEROS]) &&
           qkc_mul_u64(groups, n * 2, &b[QKC_SECTION_SCALES]);
}

/* 4- or 8-bit codes minus an i16 zero under an f16 scale. Act-order
 * falls back unpermuted (dense values need no grouping); one group over
 * all of K (channel, or group >= k) needs no permutation either: every
 * valid g_idx is then 0. */
static int zero_scale_layout(const qkc_format *f, int64_t k, int actorder, qkc_klayout *L)
{
    char why[64];
    int chunk = qkc_klayout_chunk(f, why, sizeof why);
    if (!chunk) {
        qkc_klayout_set_fallback(L, why);
        return 0;
    }
    qkc_klayout_set_affine(L, chunk, qkc_dtype_get(f->dtype)->bits <= 4 ? 4 : 8, 0);
    L->scale = QKC_KF_F16;
    L->zero = QKC_KF_I16;
    if (actorder && f->granularity == QKC_GRAN_GROUP && f->group < k)
        L->permute_k = 1;
    return 1;
}

static const char *gptq_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                      size_t note_size)
{
    int actorder = (f->flags & QKC_FORMAT_ACTORDER) != 0;
    (void)n;
    if (!zero_scale_layout(f, k, actorder, L))
        return NULL;
    snprintf(note, note_size, "gptq %d-bit%s, zero = field + 1", qkc_dtype_get(f->dtype)->bits,
             actorder ? " act-order" : "");
    return note;
}

static const char *awq_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                     size_t note_size)
{
    (void)n;
    if (!zero_scale_layout(f, k, 0, L))
        return NULL;
    snprintf(note, note_size, "awq");
    return note;
}

const qkc_family_ir qkc_family_gptq_ir = {
    .name = "gptq",
    .verify = gptq_verify,
    .sections = gptq_sections,
    .kernel_layout = gptq_kernel_layout,
    .parse_option = gptq_option,
    .print_options = gptq_print_options,
};

const qkc_family_ir qkc_family_awq_ir = {
    .name = "awq",
    .verify = awq_verify,
    .sections = awq_sections,
    .kernel_layout = awq_kernel_layout,
};
