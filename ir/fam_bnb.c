/*
 * The BNB family (family.h): bitsandbytes nf4 (w=nf4_bnb[:dq]) — the
 * verifier's rules, the blob's sections and the kernel layout. The bytes
 * are in docs/formats.md.
 */
#include "ir/family.h"

#include <stdio.h>
#include <string.h>

#include "ir/checked.h"

#define FAIL QKC_VERIFY_FAIL

static int is_pow2(int64_t v)
{
    return v > 0 && (v & (v - 1)) == 0;
}

static qkc_status bnb_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    qkc_status st = qkc_preset_verify(mm, NULL, 0, diag, bad_key);
    if (st != QKC_OK)
        return st;
    if (!is_pow2(f->group) || f->group < 32 || f->group > 4096)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC,
             "nf4_bnb block size group=%lld must be a power of two from 32 to 4096", (long long)f->group);
    if (mm->k % f->group != 0)
        FAIL(QKC_KEY_K, QKC_ERR_INVALID_SPEC,
             "nf4_bnb blocks must stay inside a row: k=%lld is not a multiple of group=%lld",
             (long long)mm->k, (long long)f->group);
    return QKC_OK;
}

/* w=nf4_bnb:dq: the absmax double quantized, uint8 codes under an f32
 * absmax per 256 of them. */
static qkc_status bnb_option(qkc_format *f, const char *s, size_t n, unsigned *seen, qkc_diag *diag)
{
    (void)seen;
    if (n == 2 && !memcmp(s, "dq", 2) && !(f->flags & QKC_FORMAT_DQ)) {
        f->flags |= QKC_FORMAT_DQ;
        f->scale_dtype = QKC_DTYPE_UINT8;
        f->scale2_dtype = QKC_DTYPE_F32;
        f->super_group = 256;
        return QKC_OK;
    }
    return qkc_option_unknown(f, s, n, "dq", diag);
}

static void bnb_print_options(const qkc_format *f, char *buf, size_t size)
{
    if (f->flags & QKC_FORMAT_DQ)
        snprintf(buf, size, "dq");
}

/* DATA: N·K/2 bytes, element 2i in the HIGH nibble of byte i, blocks of
 * `group` consecutive row-major elements (in-row since K % G == 0).
 * SCALES: absmax f32 per block, or with dq: uint8 codes into the nested
 * map. SCALES2 (dq): nested_absmax f32 per 256 codes. AUX (dq):
 * nested_quant_map f32[256], then nested_offset f32. */
static int bnb_sections(const qkc_format *f, uint64_t n, uint64_t k, qkc_weight_layout *L)
{
    uint64_t *b = L->bytes, nk, blocks, G = f->granularity == QKC_GRAN_GROUP ? (uint64_t)f->group : k;
    if (!qkc_mul_u64(n, k, &nk))
        return 0;
    blocks = nk / G;
    b[QKC_SECTION_DATA] = nk / 2;
    L->row_bytes = k / 2;
    if (f->flags & QKC_FORMAT_DQ) {
        b[QKC_SECTION_SCALES] = blocks;
        b[QKC_SECTION_SCALES2] = (blocks / 256 + (blocks % 256 != 0)) * 4;
        b[QKC_SECTION_AUX] = 256 * 4 + 4;
    } else {
        b[QKC_SECTION_SCALES] = blocks * 4;
    }
    return 1;
}

/* nf4 codes through their table under the absmax, nested absmax resolved
 * to f32 by the packer. */
static const char *bnb_kernel_layout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *L, char *note,
                                     size_t note_size)
{
    char why[64];
    int chunk = qkc_klayout_chunk(f, why, sizeof why);
    (void)n, (void)k;
    if (!chunk) {
        qkc_klayout_set_fallback(L, why);
        return NULL;
    }
    qkc_klayout_set_dtype_table(L, chunk, f->dtype);
    L->scale = QKC_KF_F32;
    snprintf(note, note_size, "nf4_bnb%s, absmax resolved", (f->flags & QKC_FORMAT_DQ) ? ":dq" : "");
    return note;
}

const qkc_family_ir qkc_family_bnb_ir = {
    .name = "bnb",
    .verify = bnb_verify,
    .sections = bnb_sections,
    .kernel_layout = bnb_kernel_layout,
    .parse_option = bnb_option,
    .print_options = bnb_print_options,
};
