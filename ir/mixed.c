/* The MIXED family (family.h): w=mixed, row blocks of different integer
 * widths in one tensor (mixed.h). */
#include "ir/mixed.h"

#include <stdio.h>
#include <string.h>

#include "ir/checked.h"
#include "ir/family.h"

#define FAIL QKC_VERIFY_FAIL

qkc_dtype qkc_mixed_dtype_of_bits(int bits)
{
    switch (bits) {
    case 2: return QKC_DTYPE_INT2;
    case 3: return QKC_DTYPE_INT3;
    case 4: return QKC_DTYPE_INT4;
    case 5: return QKC_DTYPE_INT5;
    case 6: return QKC_DTYPE_INT6;
    case 8: return QKC_DTYPE_INT8;
    default: return QKC_DTYPE_INVALID;
    }
}

qkc_format qkc_mixed_block_format(const qkc_format *f, int b)
{
    qkc_format g = *f;
    g.mixed_blocks = 0;
    memset(g.mixed_bits, 0, sizeof g.mixed_bits);
    memset(g.mixed_rows, 0, sizeof g.mixed_rows);
    g.dtype = (b >= 0 && b < f->mixed_blocks) ? qkc_mixed_dtype_of_bits(f->mixed_bits[b]) : QKC_DTYPE_INVALID;
    return g;
}

int64_t qkc_mixed_row0(const qkc_format *f, int b)
{
    int64_t r = 0;
    for (int i = 0; i < b && i < f->mixed_blocks; i++)
        r += f->mixed_rows[i];
    return r;
}

int qkc_mixed_block_of_row(const qkc_format *f, int64_t r)
{
    int64_t r0 = 0;
    for (int i = 0; i < f->mixed_blocks; i++) {
        if (r < r0 + f->mixed_rows[i])
            return i;
        r0 += f->mixed_rows[i];
    }
    return f->mixed_blocks - 1;
}

int qkc_mixed_format_equal(const qkc_format *a, const qkc_format *b)
{
    if (a->mixed_blocks != b->mixed_blocks)
        return 0;
    for (int i = 0; i < a->mixed_blocks && i < QKC_MAX_MIXED_BLOCKS; i++)
        if (a->mixed_bits[i] != b->mixed_bits[i] || a->mixed_rows[i] != b->mixed_rows[i])
            return 0;
    return 1;
}

qkc_status qkc_mixed_parse_bits(const char *s, size_t len, int64_t n, qkc_format *f, size_t *bad_off, qkc_diag *diag)
{
    size_t i = 0;
    int nb = 0, rest = 0;
    int64_t sum = 0;
    *bad_off = 0;
    while (i < len) {
        int64_t bits = 0, rows = 0;
        size_t start = i, bstart = i;
        if (nb == QKC_MAX_MIXED_BLOCKS) {
            *bad_off = i;
            return qkc_diag_set(diag, QKC_ERR_INVALID_SPEC, "bits=: at most %d row blocks", QKC_MAX_MIXED_BLOCKS);
        }
        while (i < len && s[i] >= '0' && s[i] <= '9' && bits < 1000)
            bits = bits * 10 + (s[i++] - '0');
        if (i == start || i >= len || s[i] != 'x') {
            *bad_off = i < len ? i : start;
            return qkc_diag_set(diag, QKC_ERR_PARSE,
                                "bits=%.*s: expected BITSxROWS[,BITSxROWS...], e.g. bits=4x96,8x32",
                                (int)(len > 40 ? 40 : len), s);
        }
        i++;
        start = i;
        if (i < len && s[i] == '*' && (i + 1 == len)) {
            /* the last block takes the rows the others leave */
            rest = 1;
            i++;
            rows = n - sum;
            if (rows < 1) {
                *bad_off = start;
                return qkc_diag_set(diag, QKC_ERR_INVALID_SPEC,
                                    "bits=%.*s: the blocks before x* already hold %lld of n=%lld rows; nothing is left",
                                    (int)(len > 40 ? 40 : len), s, (long long)sum, (long long)n);
            }
        }
        while (i < len && s[i] >= '0' && s[i] <= '9' && rows <= QKC_MAX_DIM)
            rows = rows * 10 + (s[i++] - '0');
        if ((i == start && !rest) || (i < len && s[i] != ','))  {
            *bad_off = i < len ? i : start;
            return qkc_diag_set(diag, QKC_ERR_PARSE,
                                "bits=%.*s: expected BITSxROWS[,BITSxROWS...], e.g. bits=4x96,8x32",
                                (int)(len > 40 ? 40 : len), s);
        }
        if (qkc_mixed_dtype_of_bits((int)bits) == QKC_DTYPE_INVALID) {
            *bad_off = bstart;
            return qkc_diag_set(diag, QKC_ERR_INVALID_SPEC,
                                "bits=: a %lld-bit block; w=mixed blocks are 2, 3, 4, 5, 6 or 8 bits", (long long)bits);
        }
        if (rows < 1 || rows > QKC_MAX_DIM) {
            *bad_off = start;
            return qkc_diag_set(diag, QKC_ERR_INVALID_SPEC, "bits=: a block of %lld rows; blocks hold 1 to %lld rows",
                                (long long)rows, (long long)QKC_MAX_DIM);
        }
        f->mixed_bits[nb] = (uint8_t)bits;
        f->mixed_rows[nb] = rows;
        sum += rows;
        nb++;
        if (i < len) {
            i++; /* ',' */
            if (i == len) {
                *bad_off = i - 1;
                return qkc_diag_set(diag, QKC_ERR_PARSE, "bits=: a trailing ','");
            }
        }
    }
    f->mixed_blocks = nb;
    return QKC_OK;
}

size_t qkc_mixed_print_bits(const qkc_format *f, char *buf, size_t size)
{
    size_t pos = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < f->mixed_blocks; i++) {
        int w = snprintf(pos < size ? buf + pos : NULL, pos < size ? size - pos : 0, "%s%dx%lld", i ? "," : "",
                         (int)f->mixed_bits[i], (long long)f->mixed_rows[i]);
        if (w > 0)
            pos += (size_t)w;
    }
    return pos;
}

qkc_status qkc_mixed_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    const qkc_format *f = &mm->w;
    int64_t total = 0;
    if (f->mixed_blocks < 1 || f->mixed_blocks > QKC_MAX_MIXED_BLOCKS)
        FAIL(QKC_KEY_BITS, QKC_ERR_INVALID_SPEC, "w=mixed needs bits=BITSxROWS[,...] with 1 to %d row blocks",
             QKC_MAX_MIXED_BLOCKS);
    if (f->preset != QKC_PRESET_NONE || f->dtype != QKC_DTYPE_INT8)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "bits= gives the row blocks of w=mixed only");
    for (int i = 0; i < f->mixed_blocks; i++) {
        if (qkc_mixed_dtype_of_bits(f->mixed_bits[i]) == QKC_DTYPE_INVALID)
            FAIL(QKC_KEY_BITS, QKC_ERR_INVALID_SPEC, "bits=: block %d is %d-bit; w=mixed blocks are 2, 3, 4, 5, 6 or 8 bits",
                 i, (int)f->mixed_bits[i]);
        if (f->mixed_rows[i] < 1 || f->mixed_rows[i] > QKC_MAX_DIM)
            FAIL(QKC_KEY_BITS, QKC_ERR_INVALID_SPEC, "bits=: block %d has %lld rows; blocks hold at least 1 row", i,
                 (long long)f->mixed_rows[i]);
        total += f->mixed_rows[i];
    }
    if (total != mm->n) {
        char b[160];
        qkc_mixed_print_bits(f, b, sizeof b);
        FAIL(QKC_KEY_BITS, QKC_ERR_INVALID_SPEC, "bits=%s: the row blocks hold %lld rows; they must sum to n=%lld", b,
             (long long)total, (long long)mm->n);
    }
    if (f->granularity == QKC_GRAN_NONE)
        FAIL(QKC_KEY_GROUP, QKC_ERR_INVALID_SPEC, "w=mixed blocks are scaled integers; they need a group");
    if (f->outliers != QKC_OUTLIERS_NONE)
        FAIL(QKC_KEY_OUTLIERS, QKC_ERR_INVALID_SPEC, "w=mixed does not take outliers= (yet)");
    /* Each block is a planar format of its own: check each one. */
    for (int i = 0; i < f->mixed_blocks; i++) {
        qkc_matmul sub = *mm;
        qkc_diag d2;
        qkc_key k2 = QKC_KEY_COUNT;
        qkc_status st;
        sub.w = qkc_mixed_block_format(f, i);
        sub.n = f->mixed_rows[i];
        sub.lora_rank = 0;
        if ((st = qkc_matmul_verify(&sub, &d2, &k2)) != QKC_OK)
            FAIL(k2 == QKC_KEY_N ? QKC_KEY_BITS : k2, st, "w=mixed block %d (%d-bit, %lld rows): %s", i,
                 (int)f->mixed_bits[i], (long long)f->mixed_rows[i], d2.message);
    }
    return QKC_OK;
}

qkc_status qkc_mixed_block_blob(const qkc_format *f, int64_t k, int b, qkc_weight_layout *wl, uint64_t *offset,
                                qkc_diag *diag)
{
    uint64_t pos = 0;
    for (int i = 0; i <= b; i++) {
        qkc_format g = qkc_mixed_block_format(f, i);
        qkc_status st = qkc_format_layout(&g, f->mixed_rows[i], k, wl, diag);
        if (st != QKC_OK)
            return st;
        if (!qkc_align_u64(pos, 64, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "weight blob size overflows");
        if (i == b)
            break;
        if (!qkc_add_u64(pos, wl->total, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "weight blob size overflows");
    }
    *offset = pos;
    return QKC_OK;
}

qkc_status qkc_mixed_format_layout(const qkc_format *f, int64_t n, int64_t k, qkc_weight_layout *out,
                                   qkc_diag *diag)
{
    qkc_weight_layout L, bl;
    uint64_t off = 0;
    qkc_status st;
    if (f->mixed_blocks < 1 || f->mixed_blocks > QKC_MAX_MIXED_BLOCKS || qkc_mixed_row0(f, f->mixed_blocks) != n)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "layout: invalid mixed row blocks");
    if ((st = qkc_mixed_block_blob(f, k, f->mixed_blocks - 1, &bl, &off, diag)) != QKC_OK)
        return st;
    memset(&L, 0, sizeof L);
    if (!qkc_add_u64(off, bl.total, &L.total) || L.total > QKC_MAX_BLOB_BYTES)
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "the weight blob of n=%lld k=%lld is over the limit of 2^40",
                            (long long)n, (long long)k);
    L.groups_per_row = bl.groups_per_row;
    *out = L;
    return QKC_OK;
}

qkc_status qkc_mixed_block_klayout(const qkc_format *f, int64_t k, int b, qkc_klayout *out, uint64_t *offset,
                                   qkc_diag *diag)
{
    uint64_t pos = 0;
    for (int i = 0; i <= b; i++) {
        qkc_format g = qkc_mixed_block_format(f, i);
        qkc_status st = qkc_klayout_for(&g, f->mixed_rows[i], k, out, diag);
        if (st != QKC_OK)
            return st;
        if (!qkc_align_u64(pos, 64, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weight size overflows");
        if (i == b)
            break;
        if (!qkc_add_u64(pos, out->total_bytes, &pos))
            return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weight size overflows");
    }
    *offset = pos;
    return QKC_OK;
}

qkc_status qkc_mixed_klayout(const qkc_format *f, int64_t n, int64_t k, qkc_klayout *out, qkc_diag *diag)
{
    qkc_klayout L, last;
    uint64_t off = 0, total;
    qkc_status st;
    char *d;
    size_t pos;
    if (f->mixed_blocks < 1 || f->mixed_blocks > QKC_MAX_MIXED_BLOCKS || qkc_mixed_row0(f, f->mixed_blocks) != n)
        return qkc_diag_set(diag, QKC_ERR_INVALID_ARGUMENT, "klayout: invalid mixed row blocks");
    if ((st = qkc_mixed_block_klayout(f, k, 0, &L, &off, diag)) != QKC_OK ||
        (st = qkc_mixed_block_klayout(f, k, f->mixed_blocks - 1, &last, &off, diag)) != QKC_OK)
        return st;
    if (!qkc_add_u64(off, last.total_bytes, &total))
        return qkc_diag_set(diag, QKC_ERR_LIMIT, "packed weight size overflows");
    L.total_bytes = total;
    L.in_place = 0;
    L.mixed = f->mixed_blocks;
    L.mixed_k = k;
    L.mixed_format = *f;
    d = L.description;
    pos = (size_t)snprintf(d, sizeof L.description, "mixed rows ");
    for (int i = 0; i < f->mixed_blocks && pos < sizeof L.description; i++)
        pos += (size_t)snprintf(d + pos, sizeof L.description - pos, "%s%dx%lld", i ? "," : "", (int)f->mixed_bits[i],
                                (long long)f->mixed_rows[i]);
    if (pos < sizeof L.description)
        snprintf(d + pos, sizeof L.description - pos, ", each in its own layout");
    *out = L;
    return QKC_OK;
}

/* The rules of the format as one block (its own family's), then the
 * mixed rules. */
static qkc_status mixed_family_verify(const qkc_matmul *mm, qkc_diag *diag, qkc_key *bad_key)
{
    qkc_matmul one = *mm;
    const qkc_family_ir *fam;
    qkc_status st;
    one.w.mixed_blocks = 0;
    fam = qkc_family_ir_get(qkc_format_family(&one.w));
    if (!fam)
        FAIL(QKC_KEY_W, QKC_ERR_INVALID_SPEC, "bits= gives the row blocks of w=mixed only");
    if ((st = fam->verify(&one, diag, bad_key)) != QKC_OK)
        return st;
    return qkc_mixed_verify(mm, diag, bad_key);
}

const qkc_family_ir qkc_family_mixed_ir = {
    .name = "mixed",
    .verify = mixed_family_verify,
    .layout_whole = qkc_mixed_format_layout,
    .kernel_layout_whole = qkc_mixed_klayout,
};
