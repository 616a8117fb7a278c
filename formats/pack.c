/*
 * Packing format blobs into kernel layouts (pack.h, ir/klayout.h): the
 * generic driver. Each format's family reads its own source rows into the
 * layout's terms (formats/family.h: one code or dense value per element,
 * the scale / min / zero field bits of each chunk); this file checks the
 * arguments, writes the chunk records, the dense fallback, rows already in
 * place, k_perm and sparse outliers, and verifies the packed decode
 * against the reference dequantizer bit for bit.
 */
#include "formats/pack.h"

#include <stdint.h>
#include <string.h>

#include "core/context.h"
#include "core/spec_object.h"
#include "formats/family.h"

static const char *format_name(const qkc_format *f)
{
    return f->preset ? qkc_preset_get(f->preset)->keyword : qkc_dtype_keyword(f->dtype);
}

/* ---------------------------------------------------------- emission */

static void put_field(uint8_t *p, qkc_kfield kind, uint32_t v)
{
    switch (kind) {
    case QKC_KF_F16:
    case QKC_KF_I16: qkc_wr16(p, (uint16_t)v); break;
    case QKC_KF_F32:
    case QKC_KF_U32: qkc_wr32(p, v); break;
    case QKC_KF_E8M0: p[0] = (uint8_t)v; break;
    case QKC_KF_NONE: break;
    }
}

/* One packed row from the job's row buffers; every byte is written. */
static void emit_row(const qkc_pack_job *job, uint8_t *dst)
{
    const qkc_klayout *L = job->L;
    int half = L->chunk / 2;
    memset(dst, 0, (size_t)L->row_bytes);
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        uint8_t *rec = dst + (uint64_t)c * (uint64_t)L->chunk_bytes, *codes = rec + L->code_off;
        const uint32_t *cd = job->code + c * L->chunk;
        put_field(rec + L->scale_off, L->scale, L->scale != QKC_KF_NONE ? job->scale[c] : 0);
        put_field(rec + L->min_off, L->min, L->min != QKC_KF_NONE ? job->min[c] : 0);
        put_field(rec + L->zero_off, L->zero, L->zero != QKC_KF_NONE ? (uint32_t)job->zero[c] & 0xFFFFu : 0);
        put_field(rec + L->tidx_off, L->tidx, L->tidx != QKC_KF_NONE ? job->tidx[c] : 0);
        for (int i = 0; i < L->chunk; i++) {
            switch (L->code_bits) {
            case 4:
                if (i < half)
                    codes[i] = (uint8_t)((cd[i] & 15u) | (cd[i + half] & 15u) << 4);
                break;
            case 8: codes[i] = (uint8_t)cd[i]; break;
            case 16: qkc_wr16(codes + 2 * i, (uint16_t)cd[i]); break;
            default: qkc_wr32(codes + 4 * i, cd[i]); break;
            }
        }
    }
}


/* nrows (≤ P) rows of the row layout into one panel (klayout.h); rows
 * past nrows are zero. Every byte of the panel is written. A row's fields
 * move to P·off + r·size, and its codes in 4-byte groups: group g of row r
 * is bytes 4g .. 4g+3 of the row's record codes (for 4-bit codes the row
 * layout's byte i holds elements i and 16 + i, which is the panel's
 * nibble order too). */
static void rows_to_panel(const qkc_klayout *L, const uint8_t *rows, int64_t nrows, uint8_t *panel)
{
    static const uint8_t zero[8];
    const qkc_kfield kinds[3] = {L->scale, L->min, L->zero};
    const int offs[3] = {L->scale_off, L->min_off, L->zero_off};
    int P = L->panel, groups = L->chunk * L->code_bits / 8 / 4;
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        uint8_t *rec = panel + (uint64_t)c * (uint64_t)P * (uint64_t)L->chunk_bytes;
        for (int r = 0; r < P; r++) {
            const uint8_t *src = r < nrows ? rows + (uint64_t)r * L->row_bytes + (uint64_t)c * (uint64_t)L->chunk_bytes
                                           : NULL;
            for (int f = 0; f < 3; f++) {
                int size = qkc_kfield_bytes(kinds[f]);
                if (size)
                    memcpy(rec + P * offs[f] + r * size, src ? src + offs[f] : zero, (size_t)size);
            }
            for (int g = 0; g < groups; g++)
                memcpy(rec + P * L->code_off + g * 4 * P + r * 4, src ? src + L->code_off + 4 * g : zero, 4);
        }
    }
}

/* Row `lane` of a compact panel (klayout.h: hi planes, two-level scales)
 * from the job's row buffers, into the panel at pan (zeroed first by the
 * caller, so rows past N stay zero). */
static void emit_compact_lane(const qkc_pack_job *job, uint8_t *pan, int lane)
{
    const qkc_klayout *L = job->L;
    int P = L->panel;
    for (int64_t c = 0; c < L->chunks_per_row; c++) {
        uint8_t *rec, *codes;
        const uint32_t *cd = job->code + c * 32;
        if (L->sub != QKC_KSUB_NONE) {
            int64_t b = c / 8;
            int j = (int)(c % 8);
            uint8_t *hdr = pan + (uint64_t)b * qkc_klayout_super_bytes(L);
            uint8_t *lo = hdr + P * QKC_KHDR_LO(L->sub);
            const uint8_t *sub = job->sub + 16 * b;
            rec = hdr + (uint64_t)P * (uint64_t)L->hdr_bytes + (uint64_t)j * (uint64_t)P * (uint64_t)L->chunk_bytes;
            if (j == 0) {
                qkc_wr16(hdr + P * QKC_KHDR_D + 2 * lane, job->sup[2 * b]);
                if (L->sub == QKC_KSUB_KQ) {
                    uint32_t hi = 0;
                    qkc_wr16(hdr + P * QKC_KHDR_DMIN + 2 * lane, job->sup[2 * b + 1]);
                    for (int i = 0; i < 8; i++) {
                        lo[i * P + lane] = (uint8_t)((sub[i] & 15u) | (sub[8 + i] & 15u) << 4);
                        hi |= (uint32_t)(sub[i] >> 4 & 3u) << (2 * i) | (uint32_t)(sub[8 + i] >> 4 & 3u) << (16 + 2 * i);
                    }
                    qkc_wr32(hdr + P * QKC_KHDR_HI(L->sub) + 4 * lane, hi);
                } else if (L->sub == QKC_KSUB_XS) {
                    uint32_t hi = 0;
                    for (int i = 0; i < 8; i++) {
                        lo[(i / 2) * P + lane] |= (uint8_t)((sub[i] & 15u) << (4 * (i % 2)));
                        hi |= (uint32_t)(sub[i] >> 4 & 3u) << (2 * i);
                    }
                    qkc_wr16(hdr + P * QKC_KHDR_HI(L->sub) + 2 * lane, (uint16_t)hi);
                } else {
                    for (int i = 0; i < 16; i++)
                        lo[i * P + lane] = sub[i];
                }
            }
        } else {
            rec = pan + (uint64_t)c * (uint64_t)P * (uint64_t)L->chunk_bytes;
            put_field(rec + P * L->scale_off + lane * qkc_kfield_bytes(L->scale), L->scale,
                      L->scale != QKC_KF_NONE ? job->scale[c] : 0);
            put_field(rec + P * L->min_off + lane * qkc_kfield_bytes(L->min), L->min,
                      L->min != QKC_KF_NONE ? job->min[c] : 0);
            put_field(rec + P * L->zero_off + lane * qkc_kfield_bytes(L->zero), L->zero,
                      L->zero != QKC_KF_NONE ? (uint32_t)job->zero[c] & 0xFFFFu : 0);
        }
        codes = rec + P * L->code_off;
        for (int i = 0; i < 16; i++)
            codes[(i / 4) * 4 * P + lane * 4 + i % 4] = (uint8_t)((cd[i] & 15u) | (cd[i + 16] & 15u) << 4);
        for (int j = 0; j < L->hi_bits; j++) {
            /* plane j: the hi bits of groups t = j, j + hi_bits, ... */
            uint32_t plane = 0;
            for (int i = 0; i < 32; i++) {
                int t = (i % 16) / 4 + 4 * (i >= 16);
                if (t % L->hi_bits == j)
                    plane |= (cd[i] >> 4 & ((1u << L->hi_bits) - 1)) << (8 * (i % 4) + L->hi_bits * (t / L->hi_bits));
            }
            qkc_wr32(codes + 16 * P + 4 * P * j + 4 * lane, plane);
        }
    }
}

/* ------------------------------------------------------------ checks */

/* L must be what qkc_klayout_for gives for the spec (compared field by
 * field: struct padding is not part of the value). */
static int same_layout(const qkc_klayout *a, const qkc_klayout *b)
{
    return a->chunk == b->chunk && a->code_bits == b->code_bits && a->decode == b->decode &&
           memcmp(a->table, b->table, sizeof a->table) == 0 && a->zero_const == b->zero_const &&
           a->scale == b->scale && a->e8m0_half == b->e8m0_half && a->e8m0_ff_is_nan == b->e8m0_ff_is_nan &&
           a->min == b->min && a->zero == b->zero && a->scale_off == b->scale_off && a->min_off == b->min_off &&
           a->zero_off == b->zero_off && a->code_off == b->code_off && a->chunk_bytes == b->chunk_bytes &&
           a->chunks_per_row == b->chunks_per_row && a->row_bytes == b->row_bytes &&
           a->perm_offset == b->perm_offset && a->permute_k == b->permute_k && a->total_bytes == b->total_bytes &&
           a->fallback == b->fallback && a->in_place == b->in_place && a->outliers == b->outliers &&
           a->outlier_cap == b->outlier_cap && a->outlier_ptr_offset == b->outlier_ptr_offset &&
           a->outlier_col_offset == b->outlier_col_offset && a->outlier_val_offset == b->outlier_val_offset &&
           a->tidx == b->tidx && a->tidx_off == b->tidx_off && a->lut_tables == b->lut_tables &&
           a->vq_dim == b->vq_dim && a->vq_entries == b->vq_entries &&
           a->table_offset == b->table_offset && a->panel == b->panel && a->panel_bytes == b->panel_bytes &&
           a->hi_bits == b->hi_bits && a->sub == b->sub && a->hdr_bytes == b->hdr_bytes;
}

/* Every packed element against the reference dequantizer, bit for bit;
 * sparse outliers are added to their elements in CSR order, as the
 * reference does (the kernels add val·a instead: a difference of one
 * rounding per outlier, inside the kernel tolerance). */
static qkc_status verify_packed(qkc_pack_job *job, const qkc_spec *spec, const float *ref, const uint8_t *dst)
{
    const qkc_klayout *L = job->L;
    float *dec = qkc_alloc(job->ctx, (size_t)job->k * sizeof *dec);
    if (!dec)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack verify: no memory for a row of k=%lld", (long long)job->k);
    for (int64_t r = 0; r < job->n; r++) {
        for (int64_t j = 0; j < job->k; j++)
            dec[j] = qkc_klayout_decode_at(L, dst, r, j);
        if (L->outliers) {
            uint32_t e0 = qkc_rd32(dst + L->outlier_ptr_offset + (uint64_t)r * 4);
            uint32_t e1 = qkc_rd32(dst + L->outlier_ptr_offset + (uint64_t)r * 4 + 4);
            for (uint32_t e = e0; e < e1; e++)
                dec[qkc_rd32(dst + L->outlier_col_offset + (uint64_t)e * 4)] +=
                    qkc_f16_to_f32(qkc_rd16(dst + L->outlier_val_offset + (uint64_t)e * 2));
        }
        for (int64_t j = 0; j < job->k; j++) {
            int64_t col = job->perm ? job->perm[j] : j;
            float got = dec[j], want = ref[r * job->k + col];
            if (memcmp(&got, &want, sizeof got) != 0) {
                qkc_free(job->ctx, dec);
                return qkc_fail(job->ctx, QKC_ERR_INTERNAL,
                                "pack verify: %s (%s) row %lld column %lld%s: packed decode %.9g (0x%08x) != "
                                "reference %.9g (0x%08x)",
                                format_name(&spec->mm.w), L->description, (long long)r, (long long)col,
                                job->perm ? " (permuted)" : "", (double)got, (unsigned)qkc_f32_bits(got),
                                (double)want, (unsigned)qkc_f32_bits(want));
            }
        }
    }
    qkc_free(job->ctx, dec);
    return QKC_OK;
}

/* The whole matrix through qkc_dequantize (fallback packing, verify). */
static qkc_status dequantize_all(qkc_pack_job *job, const qkc_spec *spec, size_t src_bytes, float **out)
{
    uint64_t nk = (uint64_t)job->n * (uint64_t)job->k;
    *out = NULL;
    if (nk > SIZE_MAX / sizeof(float))
        return qkc_fail(job->ctx, QKC_ERR_LIMIT, "pack: %llu weights do not fit in memory sizes",
                        (unsigned long long)nk);
    *out = qkc_alloc(job->ctx, (size_t)nk * sizeof(float));
    if (!*out)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory to dequantize %llu weights",
                        (unsigned long long)nk);
    return qkc_dequantize(job->ctx, spec, job->src, src_bytes, *out, job->k);
}

/* Sparse outliers: the format's CSR arrays after the packed rows, checked
 * first (kernels index with them unchecked): row pointers non-decreasing
 * from 0 up to N·cap, columns inside k. Padding bytes are zero. */
static qkc_status copy_outliers(qkc_pack_job *job, uint8_t *out)
{
    const qkc_klayout *L = job->L;
    const qkc_weight_layout *wl = job->wl;
    const uint8_t *rp = job->src + wl->offset[QKC_SECTION_OUTLIERS];
    uint64_t entries = (uint64_t)job->n * (uint64_t)L->outlier_cap, start = L->row_bytes * (uint64_t)job->n;
    uint32_t prev = 0;
    if (L->permute_k)
        start = L->perm_offset + (uint64_t)job->k * 4;
    for (int64_t r = 0; r <= job->n; r++) {
        uint32_t p = qkc_rd32(rp + (uint64_t)r * 4);
        if (p < prev || p > entries || (r == 0 && p != 0))
            return qkc_fail(job->ctx, QKC_ERR_CORRUPT_DATA,
                            "pack: outlier row pointer %lld is %u (after %u; at most %llu entries)", (long long)r, p,
                            prev, (unsigned long long)entries);
        prev = p;
    }
    for (uint64_t e = 0; e < prev; e++) {
        uint32_t col = qkc_rd32(job->src + wl->outlier_col_offset + e * 4);
        if (col >= (uint64_t)job->k)
            return qkc_fail(job->ctx, QKC_ERR_CORRUPT_DATA, "pack: outlier %llu has column %u, outside k=%lld",
                            (unsigned long long)e, col, (long long)job->k);
    }
    memset(out + start, 0, (size_t)(L->total_bytes - start));
    memcpy(out + L->outlier_ptr_offset, rp, (size_t)((uint64_t)job->n + 1) * 4);
    memcpy(out + L->outlier_col_offset, job->src + wl->outlier_col_offset, (size_t)entries * 4);
    memcpy(out + L->outlier_val_offset, job->src + wl->outlier_val_offset, (size_t)entries * 2);
    return QKC_OK;
}

/* --------------------------------------------------------------- pack */

qkc_status qkc_pack_rows(qkc_pack_job *job, uint8_t *out, void (*read_row)(qkc_pack_job *job, int64_t r))
{
    const qkc_klayout *L = job->L;
    /* a compact panel's readers fill the row layout's fields, which may
     * come per 16 elements (q6_k) */
    size_t padded = (size_t)L->chunks_per_row * (size_t)L->chunk, chunks = (size_t)L->chunks_per_row;
    if (L->panel && (L->hi_bits || L->sub != QKC_KSUB_NONE))
        chunks = padded / 16;
    job->code = qkc_calloc(job->ctx, padded, sizeof *job->code);
    job->scale = qkc_calloc(job->ctx, chunks, sizeof *job->scale);
    job->min = qkc_calloc(job->ctx, chunks, sizeof *job->min);
    job->zero = qkc_calloc(job->ctx, chunks, sizeof *job->zero);
    job->tidx = qkc_calloc(job->ctx, chunks, sizeof *job->tidx);
    if (L->panel && L->sub != QKC_KSUB_NONE) {
        size_t supers = (size_t)L->chunks_per_row / 8;
        job->sup = qkc_calloc(job->ctx, 2 * supers, sizeof *job->sup);
        job->sub = qkc_calloc(job->ctx, 16 * supers, 1);
        if (!job->sup || !job->sub)
            return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory for a row of k=%lld", (long long)job->k);
    }
    if (!job->code || !job->scale || !job->min || !job->zero || !job->tidx)
        return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory for a row of k=%lld", (long long)job->k);
    if (L->panel && (L->hi_bits || L->sub != QKC_KSUB_NONE)) {
        /* compact panels: each row straight into its lane */
        for (int64_t r0 = 0; r0 < job->n; r0 += L->panel) {
            uint8_t *pan = out + (uint64_t)(r0 / L->panel) * L->panel_bytes;
            memset(pan, 0, (size_t)L->panel_bytes);
            for (int64_t r = r0; r < job->n && r < r0 + L->panel; r++) {
                read_row(job, r);
                emit_compact_lane(job, pan, (int)(r - r0));
            }
        }
        return QKC_OK;
    }
    if (L->panel) {
        /* P rows at a time in the row layout, then into their panel */
        uint8_t *rows = qkc_alloc(job->ctx, (size_t)L->row_bytes * (size_t)L->panel);
        if (!rows)
            return qkc_fail(job->ctx, QKC_ERR_NO_MEMORY, "pack: no memory for a panel of k=%lld", (long long)job->k);
        for (int64_t r0 = 0; r0 < job->n; r0 += L->panel) {
            int64_t nrows = job->n - r0 < L->panel ? job->n - r0 : L->panel;
            for (int64_t r = 0; r < nrows; r++) {
                read_row(job, r0 + r);
                emit_row(job, rows + (uint64_t)r * L->row_bytes);
            }
            rows_to_panel(L, rows, nrows, out + (uint64_t)(r0 / L->panel) * L->panel_bytes);
        }
        qkc_free(job->ctx, rows);
        return QKC_OK;
    }
    for (int64_t r = 0; r < job->n; r++) {
        read_row(job, r);
        emit_row(job, out + (uint64_t)r * L->row_bytes);
    }
    return QKC_OK;
}

qkc_status qkc_pack_weights(qkc_context *ctx, const qkc_spec *spec, const qkc_klayout *L, const void *src,
                            size_t src_bytes, void *dst, size_t dst_bytes, int verify)
{
    qkc_pack_job job;
    const qkc_family_codec *fam;
    qkc_klayout want;
    int in_place_rows;
    qkc_diag diag;
    qkc_status st;
    float *ref = NULL;
    uint8_t *out = dst;

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !L || !src || !dst)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_pack_weights: NULL argument");
    fam = qkc_family_codec_get(qkc_format_family(&spec->mm.w));
    if (fam && fam->pack_whole)
        return fam->pack_whole(ctx, spec, L, src, src_bytes, dst, dst_bytes, verify);
    memset(&job, 0, sizeof job);
    job.ctx = ctx;
    job.f = &spec->mm.w;
    job.wl = &spec->layout;
    job.L = L;
    job.src = src;
    job.n = spec->mm.n;
    job.k = spec->mm.k;

    if ((st = qkc_klayout_for(job.f, job.n, job.k, &want, &diag)) != QKC_OK)
        return qkc_fail_diag(ctx, &diag);
    in_place_rows = want.in_place;
    if (L->panel && (st = qkc_klayout_set_panel(&want, L->panel, job.n, &diag)) != QKC_OK)
        return qkc_fail_diag(ctx, &diag);
    if (!same_layout(L, &want))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_pack_weights: the layout is not the one qkc_klayout_for gives for %s n=%lld k=%lld (%s)",
                        format_name(job.f), (long long)job.n, (long long)job.k, want.description);
    if (src_bytes < spec->layout.total)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL, "qkc_pack_weights: src holds %zu bytes, the %s blob needs %llu",
                        src_bytes, format_name(job.f), (unsigned long long)spec->layout.total);
    if (L->total_bytes > SIZE_MAX || dst_bytes < L->total_bytes)
        return qkc_fail(ctx, QKC_ERR_BUFFER_TOO_SMALL,
                        "qkc_pack_weights: dst holds %zu bytes, the packed %s weights need %llu", dst_bytes,
                        format_name(job.f), (unsigned long long)L->total_bytes);

    if (L->fallback) {
        /* Dense f32: the reference's own floats, rows padded with +0. */
        if ((st = dequantize_all(&job, spec, src_bytes, &ref)) != QKC_OK)
            goto done;
        for (int64_t r = 0; r < job.n; r++) {
            uint8_t *row = out + (uint64_t)r * L->row_bytes;
            memset(row, 0, (size_t)L->row_bytes);
            for (int64_t i = 0; i < job.k; i++)
                qkc_wr32(row + L->code_off + i * 4, qkc_f32_bits(ref[r * job.k + i]));
        }
        if (verify)
            st = verify_packed(&job, spec, ref, out);
        goto done;
    }

    if (L->in_place) {
        /* The source rows already are chunk records. */
        if (spec->layout.row_bytes != L->row_bytes) {
            st = qkc_fail(ctx, QKC_ERR_INTERNAL, "pack: %s rows are %llu bytes, the in-place layout says %llu",
                          format_name(job.f), (unsigned long long)spec->layout.row_bytes,
                          (unsigned long long)L->row_bytes);
            goto done;
        }
        memcpy(out, job.src + spec->layout.offset[QKC_SECTION_DATA], (size_t)(L->row_bytes * (uint64_t)job.n));
    } else if (in_place_rows) {
        /* The source rows are records of the row layout: into panels. */
        const uint8_t *rows = job.src + spec->layout.offset[QKC_SECTION_DATA];
        for (int64_t r0 = 0; r0 < job.n; r0 += L->panel)
            rows_to_panel(L, rows + (uint64_t)r0 * L->row_bytes, job.n - r0 < L->panel ? job.n - r0 : L->panel,
                          out + (uint64_t)(r0 / L->panel) * L->panel_bytes);
    } else if (!fam || !fam->pack) {
        st = qkc_fail(ctx, QKC_ERR_INTERNAL, "pack: no packer for %s", format_name(job.f));
        goto done;
    } else if ((st = fam->pack(&job, out)) != QKC_OK) {
        goto done;
    }
    if (L->permute_k) {
        uint64_t rows = L->row_bytes * (uint64_t)job.n;
        memset(out + rows, 0, (size_t)(L->perm_offset - rows));
        for (int64_t j = 0; j < job.k; j++)
            qkc_wr32(out + L->perm_offset + (uint64_t)j * 4, (uint32_t)job.perm[j]);
    }
    if (L->outliers && (st = copy_outliers(&job, out)) != QKC_OK)
        goto done;
    if (verify) {
        if ((st = dequantize_all(&job, spec, src_bytes, &ref)) != QKC_OK)
            goto done;
        st = verify_packed(&job, spec, ref, out);
    }
done:
    qkc_free(ctx, ref);
    qkc_free(ctx, job.code);
    qkc_free(ctx, job.scale);
    qkc_free(ctx, job.min);
    qkc_free(ctx, job.zero);
    qkc_free(ctx, job.tidx);
    qkc_free(ctx, job.sup);
    qkc_free(ctx, job.sub);
    qkc_free(ctx, job.gidx);
    qkc_free(ctx, job.perm);
    return st;
}
