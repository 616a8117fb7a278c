/*
 * safetensors reader (formats.md §8): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
 * then the data; offsets are relative to the end of the header, shapes are
 * row-major (not reversed as in GGUF).
 *
 * The JSON is parsed with jansson (duplicate keys refused, integers kept
 * exact). jansson allocates with its own malloc hooks, which are process
 * global: qkc never changes them, so the parse tree (freed before the
 * reader returns) is the one allocation that does not go through the
 * context allocator.
 *
 * Importers: GPTQ (qweight, qzeros, scales, g_idx; v1 zero − 1 and v2),
 * AWQ gemm (qweight, qzeros, scales) and bitsandbytes NF4 (weight, absmax,
 * quant_map, nested_absmax, nested_quant_map, quant_state JSON). The
 * tensors of one quantized weight become one runnable entry, named by its
 * qweight / weight tensor; the other tensors are listed as its parts.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "file.h"
#include "ir/dtype.h"
#include "ref.h"

typedef struct st_dtype {
    const char *name;
    int bits;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", 8},    {"U8", 8},      {"I8", 8},      {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
    {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},   {"I32", 32},    {"U32", 32},
    {"F32", 32},    {"F64", 64},    {"I64", 64},    {"U64", 64},    {"F4", 4},      {"F6_E2M3", 6},
    {"F6_E3M2", 6},
};

#define MAX_HEADER (100u << 20) /* the safetensors library's own limit */

static const st_dtype *dtype_of(const char *s)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, s))
            return &st_dtypes[i];
    return NULL;
}

/* A JSON value as a non-negative exact integer. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static qkc_status read_entry(qkc_file *f, const char *name, json_t *v, uint64_t data_size, qkc_file_entry *t)
{
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    const st_dtype *d;
    uint64_t elems = 1, bits, begin, end;
    size_t nd;
    t->part_of = -1;
    for (int r = 0; r < QKC_MEMBER_COUNT; r++)
        t->member[r] = -1;
    if (!(t->name = qkc_file_strdup(f, name, strlen(name))))
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: out of memory");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': expected an object with dtype (string), shape (array) and "
                        "data_offsets (array)",
                        f->path, name);
    if (!(d = dtype_of(json_string_value(dt))))
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: tensor '%s': unknown dtype '%s'", f->path, name,
                        json_string_value(dt));
    t->dtype = d->name;
    nd = json_array_size(shape);
    if (nd > 4)
        return qkc_fail(f->ctx, QKC_ERR_UNSUPPORTED,
                        "safetensors: %s: tensor '%s': %zu dimensions (qkc reads at most 4)", f->path, name, nd);
    t->n_dims = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        uint64_t e;
        if (!json_u64(json_array_get(shape, i), &e) || e > (uint64_t)INT64_MAX)
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                            "safetensors: %s: tensor '%s': shape[%zu] is not a non-negative integer", f->path, name, i);
        t->shape[i] = (int64_t)e;
        if (!qkc_mul_u64(elems, e, &elems))
            return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: tensor '%s': shape overflows 64 bits",
                            f->path, name);
    }
    if (json_array_size(offs) != 2 || !json_u64(json_array_get(offs, 0), &begin) ||
        !json_u64(json_array_get(offs, 1), &end))
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': data_offsets must be two non-negative integers [begin, end]", f->path,
                        name);
    if (begin > end || end > data_size)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] lie outside the %" PRIu64
                        " data bytes of the file",
                        f->path, name, begin, end, data_size);
    if (!qkc_mul_u64(elems, (uint64_t)d->bits, &bits) || bits % 8 != 0 || bits / 8 != end - begin)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: tensor '%s': %" PRIu64 " bytes of data for %" PRIu64
                        " %s elements (the dtype needs %d bits each)",
                        f->path, name, end - begin, elems, d->name, d->bits);
    t->offset = begin;
    t->bytes = end - begin;
    return QKC_OK;
}

/* ------------------------------------------------------------ grouping */

static const qkc_file_entry *member(const qkc_file *f, const char *prefix, const char *suffix, int64_t *index)
{
    char name[1024];
    int len = snprintf(name, sizeof name, "%s%s", prefix, suffix);
    *index = len > 0 && (size_t)len < sizeof name ? qkc_file_lookup(f, name) : -1;
    return *index >= 0 ? &f->tensors[*index] : NULL;
}

static int is2d(const qkc_file_entry *t, const char *dtype)
{
    return t && t->n_dims == 2 && !strcmp(t->dtype, dtype);
}

/* Mark the parts of an import (whether or not the head runs). */
static void mark_parts(qkc_file *f, int64_t head, const int64_t *idx, int count)
{
    for (int i = 0; i < count; i++)
        if (idx[i] >= 0 && idx[i] != head) {
            qkc_file_entry *p = &f->tensors[idx[i]];
            p->part_of = head;
            snprintf(p->reason, sizeof p->reason, "part of %.140s", f->tensors[head].name);
        }
}

/* Every extent in [1, 2^40], so that shape arithmetic cannot overflow. */
static int sane(const qkc_file_entry *t)
{
    if (!t)
        return 1;
    for (int i = 0; i < t->n_dims; i++)
        if (t->shape[i] < 1 || t->shape[i] > ((int64_t)1 << 40))
            return 0;
    return 1;
}

static uint32_t rd_i32(const uint8_t *p)
{
    return qkc_rd32(p);
}

/* After qkc_file_set_matrix: does each member fill its section exactly? */
static void check_sections(qkc_file_entry *t, const qkc_file_entry *const parts[], const int sections[], int count)
{
    if (!t->runnable)
        return;
    for (int i = 0; i < count; i++) {
        uint64_t have = parts[i] ? parts[i]->bytes : 0;
        if (have != t->layout.bytes[sections[i]]) {
            t->runnable = 0;
            snprintf(t->reason, sizeof t->reason, "%.60s holds %" PRIu64 " bytes, %.50s needs %" PRIu64,
                     parts[i] ? parts[i]->name : "a missing tensor", have, t->weights,
                     (uint64_t)t->layout.bytes[sections[i]]);
            return;
        }
    }
}

static const char *meta_value(const qkc_file *f, const char *key)
{
    for (int64_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key))
            return f->meta[i].text;
    return NULL;
}

static void classify_qweight(qkc_file *f, int64_t hi, const char *prefix)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t idx[4];
    const qkc_file_entry *qz = member(f, prefix, ".qzeros", &idx[1]), *sc = member(f, prefix, ".scales", &idx[2]),
                          *gi = member(f, prefix, ".g_idx", &idx[3]);
    char text[96];
    int64_t G, N, K;
    idx[0] = hi;
    mark_parts(f, hi, idx, 4);
    if (!sane(t) || !sane(qz) || !sane(sc)) {
        snprintf(t->reason, sizeof t->reason, "%s", "qweight, qzeros and scales need extents from 1 to 2^40");
        return;
    }
    if (!is2d(t, "I32") || !is2d(qz, "I32") || !sc || sc->n_dims != 2) {
        snprintf(t->reason, sizeof t->reason, "%s", "a quantized weight needs 2-D I32 qweight and qzeros and 2-D scales");
        return;
    }
    if (strcmp(sc->dtype, "F16")) {
        snprintf(t->reason, sizeof t->reason, "scales are %s; qkc's gptq and awq presets read F16 scales", sc->dtype);
        return;
    }
    G = sc->shape[0], N = sc->shape[1];
    if (G < 1 || N < 1 || qz->shape[0] != G) {
        snprintf(t->reason, sizeof t->reason, "scales [%lld, %lld] and qzeros [%lld, %lld] disagree on the groups",
                 (long long)G, (long long)N, (long long)qz->shape[0], (long long)qz->shape[1]);
        return;
    }
    if (t->shape[1] == N && !(gi == NULL && t->shape[1] * 8 == N)) {
        /* GPTQ: qweight [K·bits/32, N], qzeros [G, N·bits/32]. */
        int64_t bits = qz->shape[1] * 32 / N, gs, actorder = 0;
        const char *fmt;
        if (qz->shape[1] * 32 % N != 0 || (bits != 2 && bits != 3 && bits != 4 && bits != 8)) {
            snprintf(t->reason, sizeof t->reason, "qzeros [%lld, %lld] give no GPTQ bit width for N=%lld",
                     (long long)qz->shape[0], (long long)qz->shape[1], (long long)N);
            return;
        }
        K = t->shape[0] * 32 / bits;
        if (t->shape[0] * 32 % bits != 0 || K < 1) {
            snprintf(t->reason, sizeof t->reason, "qweight rows %lld hold no whole number of %lld-bit inputs",
                     (long long)t->shape[0], (long long)bits);
            return;
        }
        gs = K % G == 0 ? K / G : K / G + 1;
        if ((K + gs - 1) / gs != G) {
            snprintf(t->reason, sizeof t->reason, "%lld scale rows fit no group size for K=%lld", (long long)G,
                     (long long)K);
            return;
        }
        if (gi) {
            const uint8_t *g = f->data + gi->offset;
            if (gi->n_dims != 1 || strcmp(gi->dtype, "I32") || gi->shape[0] != K) {
                snprintf(t->reason, sizeof t->reason, "g_idx must be I32 [%lld]", (long long)K);
                return;
            }
            /* Without act-order g_idx[k] = k / group: the group size is
             * the run of leading zeros, which also covers a partial last
             * group that K / G would not reveal. */
            int64_t lead = 0;
            while (lead < K && rd_i32(g + 4 * lead) == 0)
                lead++;
            if (lead > 0 && (K + lead - 1) / lead == G) {
                int mono = 1;
                for (int64_t k = 0; k < K && mono; k++)
                    mono = (int64_t)(int32_t)rd_i32(g + 4 * k) == k / lead;
                if (mono)
                    gs = lead;
            }
            for (int64_t k = 0; k < K && !actorder; k++)
                actorder = (int64_t)(int32_t)rd_i32(g + 4 * k) != k / gs;
            if (actorder && G > 1) {
                /* Act-order permutes the inputs, not the group sizes: group 0
                 * has a full group's members. */
                int64_t zeros = 0;
                for (int64_t k = 0; k < K; k++)
                    zeros += rd_i32(g + 4 * k) == 0;
                if (zeros > 0 && (K + zeros - 1) / zeros == G)
                    gs = zeros;
            }
        }
        fmt = f->gptq_version ? (f->gptq_version == 2 ? "gptq_v2" : "gptq") : meta_value(f, "checkpoint_format");
        t->gptq_v2 = fmt && !strcmp(fmt, "gptq_v2");
        if (G == 1 && !actorder)
            snprintf(text, sizeof text, "w=gptq:%lld group=channel", (long long)bits);
        else
            snprintf(text, sizeof text, "w=gptq:%lld%s group=%lld", (long long)bits, actorder ? ":actorder" : "",
                     (long long)gs);
        qkc_file_set_matrix(t, N, K, text);
        {
            const qkc_file_entry *parts[4] = {t, sc, qz, actorder ? gi : NULL};
            const int sections[4] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_ZEROS, QKC_SECTION_AUX};
            check_sections(t, parts, sections, 4);
        }
        t->import = QKC_IMPORT_GPTQ;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_QZEROS] = idx[1];
        t->member[QKC_MEMBER_SCALES] = idx[2], t->member[QKC_MEMBER_GIDX] = actorder ? idx[3] : -1;
    } else if (t->shape[1] * 8 == N && !gi) {
        /* AWQ gemm: qweight [K, N/8], qzeros [G, N/8]. */
        K = t->shape[0];
        if (K < 1 || K % G != 0 || qz->shape[1] * 8 != N) {
            snprintf(t->reason, sizeof t->reason, "AWQ shapes: qweight [%lld, %lld], qzeros [%lld, %lld], scales [%lld, %lld] "
                     "are inconsistent", (long long)t->shape[0], (long long)t->shape[1], (long long)qz->shape[0],
                     (long long)qz->shape[1], (long long)G, (long long)N);
            return;
        }
        snprintf(text, sizeof text, "w=awq group=%lld", (long long)(K / G));
        qkc_file_set_matrix(t, N, K, text);
        {
            const qkc_file_entry *parts[3] = {t, sc, qz};
            const int sections[3] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_ZEROS};
            check_sections(t, parts, sections, 3);
        }
        t->import = QKC_IMPORT_AWQ;
        t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_QZEROS] = idx[1];
        t->member[QKC_MEMBER_SCALES] = idx[2];
    } else {
        snprintf(t->reason, sizeof t->reason, "%s",
                 "shapes match neither GPTQ (qweight [K*bits/32, N]) nor AWQ (qweight [K, N/8])");
    }
}

static void classify_bnb(qkc_file *f, int64_t hi, const char *prefix, const qkc_file_entry *qs, int64_t qsi)
{
    qkc_file_entry *t = &f->tensors[hi];
    int64_t idx[6];
    const qkc_file_entry *am = member(f, prefix, ".absmax", &idx[1]), *qm = member(f, prefix, ".quant_map", &idx[2]),
                          *na = member(f, prefix, ".nested_absmax", &idx[3]),
                          *nm = member(f, prefix, ".nested_quant_map", &idx[4]);
    json_t *root, *v;
    json_error_t err;
    int64_t n, k, bs;
    int dq;
    char text[96];
    idx[0] = hi, idx[5] = qsi;
    mark_parts(f, hi, idx, 6);
    if (strcmp(qs->dtype, "U8") || qs->bytes > (1u << 20)) {
        snprintf(t->reason, sizeof t->reason, "%.80s.quant_state.bitsandbytes__nf4 is not a U8 JSON tensor", prefix);
        return;
    }
    root = json_loadb((const char *)f->data + qs->offset, (size_t)qs->bytes, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(root)) {
        snprintf(t->reason, sizeof t->reason, "quant_state JSON: %.100s", root ? "not an object" : err.text);
        json_decref(root);
        return;
    }
    v = json_object_get(root, "quant_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "nf4")) {
        snprintf(t->reason, sizeof t->reason, "quant_state: quant_type is not \"nf4\"");
        goto done;
    }
    v = json_object_get(root, "shape");
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
        !json_is_integer(json_array_get(v, 1)) || !json_is_integer(json_object_get(root, "blocksize"))) {
        snprintf(t->reason, sizeof t->reason, "quant_state: needs shape [out, in] and blocksize integers");
        goto done;
    }
    n = (int64_t)json_integer_value(json_array_get(v, 0));
    k = (int64_t)json_integer_value(json_array_get(v, 1));
    bs = (int64_t)json_integer_value(json_object_get(root, "blocksize"));
    dq = na != NULL;
    if (n < 1 || k < 1 || bs < 1 || n > (1 << 24) || k > (1 << 24) || bs > (1 << 24)) {
        snprintf(t->reason, sizeof t->reason, "quant_state: shape [%lld, %lld] or blocksize %lld out of range",
                 (long long)n, (long long)k, (long long)bs);
        goto done;
    }
    if (!qm || qm->bytes != 64 || strcmp(qm->dtype, "F32")) {
        snprintf(t->reason, sizeof t->reason, "%.100s.quant_map must be F32 [16]", prefix);
        goto done;
    }
    for (int i = 0; i < 16; i++)
        if (qkc_rd32(f->data + qm->offset + 4 * i) != qkc_f32_bits(qkc_dtype_decode(QKC_DTYPE_NF4, (uint32_t)i))) {
            snprintf(t->reason, sizeof t->reason, "quant_map entry %d differs from the NF4 code book", i);
            goto done;
        }
    if (dq) {
        json_t *off = json_object_get(root, "nested_offset"), *nb = json_object_get(root, "nested_blocksize");
        if (!json_is_number(off) || (nb && (!json_is_integer(nb) || json_integer_value(nb) != 256))) {
            snprintf(t->reason, sizeof t->reason, "quant_state: nested quantization needs nested_offset and "
                     "nested_blocksize 256");
            goto done;
        }
        t->nested_offset = (float)json_number_value(off);
        if (!nm || nm->bytes != 1024 || strcmp(nm->dtype, "F32") || strcmp(na->dtype, "F32") || !am ||
            strcmp(am->dtype, "U8")) {
            snprintf(t->reason, sizeof t->reason, "nested quantization needs U8 absmax, F32 nested_absmax and F32 "
                     "nested_quant_map [256]");
            goto done;
        }
    } else if (!am || strcmp(am->dtype, "F32")) {
        snprintf(t->reason, sizeof t->reason, "%.100s.absmax must be F32", prefix);
        goto done;
    }
    snprintf(text, sizeof text, "w=nf4_bnb%s group=%lld", dq ? ":dq" : "", (long long)bs);
    qkc_file_set_matrix(t, n, k, text);
    {
        const qkc_file_entry *parts[3] = {t, am, na};
        const int sections[3] = {QKC_SECTION_DATA, QKC_SECTION_SCALES, QKC_SECTION_SCALES2};
        check_sections(t, parts, sections, 3);
    }
    t->import = QKC_IMPORT_BNB;
    t->member[QKC_MEMBER_QWEIGHT] = hi, t->member[QKC_MEMBER_SCALES] = idx[1], t->member[QKC_MEMBER_QZEROS] = idx[2];
    t->member[QKC_MEMBER_GIDX] = idx[3], t->member[QKC_MEMBER_EXTRA] = idx[4];
done:
    json_decref(root);
}

static int ends_with(const char *s, const char *suffix, size_t *prefix_len)
{
    size_t a = strlen(s), b = strlen(suffix);
    if (a < b || strcmp(s + a - b, suffix))
        return 0;
    *prefix_len = a - b;
    return 1;
}

static void classify(qkc_file *f)
{
    char prefix[1024];
    for (int64_t i = 0; i < f->ntensors; i++) {
        qkc_file_entry *t = &f->tensors[i];
        size_t pl;
        int64_t qsi;
        if (ends_with(t->name, ".qweight", &pl) && pl < sizeof prefix) {
            memcpy(prefix, t->name, pl), prefix[pl] = '\0';
            classify_qweight(f, i, prefix);
        } else if (!strcmp(t->dtype, "U8") && strlen(t->name) + 1 < sizeof prefix &&
                   (member(f, t->name, ".quant_state.bitsandbytes__nf4", &qsi) ||
                    member(f, t->name, ".quant_state.bitsandbytes__fp4", &qsi))) {
            if (strstr(f->tensors[qsi].name, "__fp4")) {
                snprintf(t->reason, sizeof t->reason, "bitsandbytes FP4 is not supported (NF4 is)");
                f->tensors[qsi].part_of = i;
            } else {
                classify_bnb(f, i, t->name, &f->tensors[qsi], qsi);
            }
        }
    }
    /* What is left: dense 2-D float tensors run in place, [N, K] row-major. */
    for (int64_t i = 0; i < f->ntensors; i++) {
        qkc_file_entry *t = &f->tensors[i];
        const char *w = !strcmp(t->dtype, "F32") ? "w=f32" : !strcmp(t->dtype, "F16") ? "w=f16"
                                                          : !strcmp(t->dtype, "BF16") ? "w=bf16" : NULL;
        if (t->runnable || t->reason[0])
            continue;
        if (!w)
            snprintf(t->reason, sizeof t->reason, "%s tensor that is not part of a quantized weight qkc imports",
                     t->dtype);
        else if (t->n_dims != 2)
            snprintf(t->reason, sizeof t->reason, "%d-D tensor, not a matrix", t->n_dims);
        else
            qkc_file_set_matrix(t, t->shape[0], t->shape[1], w);
    }
}

qkc_status qkc_safetensors_read(qkc_file *f)
{
    uint64_t hlen, data_start;
    json_t *root;
    json_error_t err;
    const char *key;
    json_t *v;
    size_t count = 0;
    qkc_status st = QKC_OK;
    f->kind = QKC_FILE_SAFETENSORS;
    if (f->size < 8)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: truncated: %zu bytes, the header length alone takes 8", f->path, f->size);
    hlen = qkc_rd32(f->data) | (uint64_t)qkc_rd32(f->data + 4) << 32;
    if (hlen > f->size - 8)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                        "safetensors: %s: truncated: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                        f->path, hlen, f->size);
    if (hlen > MAX_HEADER)
        return qkc_fail(f->ctx, QKC_ERR_LIMIT, "safetensors: %s: header of %" PRIu64 " bytes is over the 100 MiB limit",
                        f->path, hlen);
    if (hlen < 2 || f->data[8] != '{')
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: the header is not a JSON object", f->path);
    data_start = 8 + hlen;
    root = json_loadb((const char *)f->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: header JSON, line %d column %d: %s", f->path,
                        err.line, err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: the header is not a JSON object", f->path);
    }
    f->tensors = qkc_calloc(f->ctx, json_object_size(root) + 1, sizeof *f->tensors);
    if (!f->tensors) {
        json_decref(root);
        return qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: out of memory");
    }
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) {
                st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA, "safetensors: %s: __metadata__ must be an object of strings",
                              f->path);
                break;
            }
            f->meta = qkc_calloc(f->ctx, json_object_size(v) + 1, sizeof *f->meta);
            if (!f->meta) {
                st = qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: out of memory");
                break;
            }
            json_object_foreach(v, mk, mv) {
                qkc_file_meta_rec *m = &f->meta[f->nmeta];
                if (!json_is_string(mv)) {
                    st = qkc_fail(f->ctx, QKC_ERR_CORRUPT_DATA,
                                  "safetensors: %s: __metadata__ value of '%s' is not a string", f->path, mk);
                    break;
                }
                m->key = qkc_file_strdup(f, mk, strlen(mk));
                m->text = qkc_file_strdup(f, json_string_value(mv), json_string_length(mv));
                m->type = "string";
                m->count = 1;
                if (!m->key || !m->text) {
                    st = qkc_fail(f->ctx, QKC_ERR_NO_MEMORY, "safetensors: out of memory");
                    break;
                }
                f->nmeta++;
            }
            if (st)
                break;
            continue;
        }
        if ((st = read_entry(f, key, v, f->size - data_start, &f->tensors[count])))
            break;
        f->tensors[count].offset += data_start;
        f->ntensors = (int64_t)++count;
    }
    json_decref(root);
    if (st || (st = qkc_file_check_overlap(f, "safetensors")) || (st = qkc_file_index_names(f, "safetensors")))
        return st;
    classify(f);
    return QKC_OK;
}

/* ---------------------------------------------------------------- import */

static void copy_member(const qkc_file *f, const qkc_file_entry *t, int role, uint8_t *dst, int section)
{
    int64_t i = t->member[role];
    if (i >= 0)
        memcpy(dst + t->layout.offset[section], f->data + f->tensors[i].offset, (size_t)f->tensors[i].bytes);
}

qkc_status qkc_safetensors_import(qkc_context *ctx, const qkc_file *f, const qkc_file_entry *t, uint8_t *dst)
{
    memset(dst, 0, (size_t)t->blob_bytes);
    copy_member(f, t, QKC_MEMBER_QWEIGHT, dst, QKC_SECTION_DATA);
    switch (t->import) {
    case QKC_IMPORT_GPTQ:
    case QKC_IMPORT_AWQ:
        copy_member(f, t, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        copy_member(f, t, QKC_MEMBER_GIDX, dst, QKC_SECTION_AUX);
        copy_member(f, t, QKC_MEMBER_QZEROS, dst, QKC_SECTION_ZEROS);
        if (t->gptq_v2) {
            /* v2 stores the zero itself; qkc's gptq blob holds zero − 1 (v1).
             * A qzeros row is one little-endian bit stream over N. */
            const qkc_dtype_desc *dd = qkc_dtype_get(t->format.dtype);
            unsigned bits = (unsigned)dd->bits;
            uint64_t row_bytes = (uint64_t)t->n * bits / 8, rows = t->layout.bytes[QKC_SECTION_ZEROS] / row_bytes;
            uint8_t *z = dst + t->layout.offset[QKC_SECTION_ZEROS];
            for (uint64_t g = 0; g < rows; g++)
                for (int64_t n = 0; n < t->n; n++) {
                    uint64_t pos = (uint64_t)n * bits;
                    uint32_t v = qkc_stream_field(z + g * row_bytes, 4, pos, bits);
                    if (v == 0)
                        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED,
                                        "safetensors: %s: %s: GPTQ v2 zero 0 (group %" PRIu64 ", output %lld) has no v1 "
                                        "encoding (v1 stores zero - 1 in %u bits)",
                                        f->path, t->name, g, (long long)n, bits);
                    v -= 1;
                    for (unsigned b = 0; b < bits; b++, pos++) {
                        uint8_t *byte = z + g * row_bytes + pos / 8;
                        *byte = (uint8_t)((*byte & ~(1u << (pos % 8))) | (((v >> b) & 1u) << (pos % 8)));
                    }
                }
        }
        break;
    case QKC_IMPORT_BNB:
        copy_member(f, t, QKC_MEMBER_SCALES, dst, QKC_SECTION_SCALES);
        if (t->format.flags & QKC_FORMAT_DQ) {
            copy_member(f, t, QKC_MEMBER_GIDX, dst, QKC_SECTION_SCALES2);
            copy_member(f, t, QKC_MEMBER_EXTRA, dst, QKC_SECTION_AUX);
            qkc_wr32(dst + t->layout.offset[QKC_SECTION_AUX] + 1024, qkc_f32_bits(t->nested_offset));
        }
        break;
    default: break;
    }
    return QKC_OK;
}
