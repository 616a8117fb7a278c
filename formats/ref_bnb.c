/*
 * The BNB family's codec (formats/family.h): bitsandbytes nf4
 * (formats.md §3.3–3.4; blob layout in ir/fam_bnb.c), and its packer.
 *
 * Blocks are `group` consecutive elements of the row-major flattened W;
 * K % group == 0, so a block never leaves its row. Element 2i is the HIGH
 * nibble of byte i. Nested ("double") quantization compresses the f32
 * absmax of every block into one uint8 code of bitsandbytes' signed dynamic
 * map per block plus one f32 nested absmax per 256 codes and one offset.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/sort.h"
#include "formats/family.h"
#include "formats/ref.h"

#define NESTED_BLOCK 256 /* bitsandbytes' fixed nested block size */
#define MAP_SIZE 256

/* The row-major element e (0 <= e < N·K) of w with leading dimension ldw. */
static float elem(const float *w, int64_t ldw, int64_t k, int64_t e)
{
    return w[(e / k) * ldw + e % k];
}

/*
 * torch.linspace(start, end, steps) in float32, as ATen's scalar CPU kernel
 * computes it: step = (end − start) / (steps − 1) in f32; the first half of
 * the points counts up from start (start + step·i), the second half counts
 * down from end (end − step·(steps − 1 − i)), each operation rounded to f32.
 * (Older torch builds used a vectorized variant that may differ in the last
 * bit; that is why decoders read the map stored in the blob.)
 */
static void linspace_f32(float start, float end, int steps, float *out)
{
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    for (int i = 0; i < steps; i++) {
        if (i < halfway) {
            float t = step * (float)i;
            out[i] = start + t;
        } else {
            float t = step * (float)(steps - 1 - i);
            out[i] = end - t;
        }
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/*
 * bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8), restated: with 7 non-sign bits and 7 exponent bits there
 * are no "additional items". For each exponent i = 0..6 take the 2^i + 1
 * points linspace(0.1, 1) (float32), their 2^i pairwise means
 * (a + b) / 2 (float32), and scale them by 10^(i−6) — a Python double
 * that torch rounds to float32 before the float32 multiply — once positive
 * and once negative. That gives 127 + 127 values; add 0 and 1.0 and sort
 * ascending: 256 distinct values, map[127] = 0, map[255] = 1.
 */
static void dynamic_map(float map[MAP_SIZE])
{
    static const double decade[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    float lin[65];
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int points = (1 << i) + 1;
        float scale = (float)decade[i];
        linspace_f32(0.1f, 1.0f, points, lin);
        for (int j = 0; j + 1 < points; j++) {
            float sum = lin[j] + lin[j + 1];
            float mean = sum / 2.0f;
            float v = scale * mean;
            map[n++] = v;
            map[n++] = -v;
        }
    }
    map[n++] = 0.0f;
    map[n++] = 1.0f;
    qkc_sort(map, MAP_SIZE, sizeof map[0], cmp_float);
}

/*
 * Nearest code of x in a sorted 256-entry map, as bitsandbytes' CUDA
 * dQuantize<0> finds it: a 7-step binary search from index 127, then a
 * comparison against the midpoint (f32) with the neighbour on x's side;
 * strictly beyond the midpoint picks the neighbour, otherwise the last
 * pivot. At the ends the missing neighbour is map[0] / map[255].
 */
static uint8_t dynamic_encode(const float map[MAP_SIZE], float x)
{
    int pivot = 127, lower_pivot = 0, upper_pivot = 255;
    float lower = -1.0f, upper = 1.0f, val = map[pivot];
    for (int step = 64; step > 0; step >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += step;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= step;
        }
        val = map[pivot];
    }
    if (upper_pivot == 255)
        upper = map[255];
    if (lower_pivot == 0)
        lower = map[0];
    if (x > val) {
        float mid = (upper + val) * 0.5f;
        return (uint8_t)(x > mid ? upper_pivot : pivot);
    }
    float mid = (lower + val) * 0.5f;
    return (uint8_t)(x < mid ? lower_pivot : pivot);
}

/* Shape and layout checks shared by both directions. */
static qkc_status check(const qkc_ref_weights *rw, int64_t ldw, const void *a, const void *b,
                        uint64_t *blocks_out)
{
    const qkc_format *f = rw->format;
    const qkc_weight_layout *L = rw->layout;
    uint64_t nk, blocks;
    if (!f || !L || !a || !b || rw->n <= 0 || rw->k <= 0 || ldw < rw->k)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "nf4_bnb: invalid arguments");
    if (f->preset != QKC_PRESET_NF4_BNB || f->granularity != QKC_GRAN_GROUP || f->group <= 0 ||
        f->group % 2 != 0 || rw->k % f->group != 0)
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT,
                        "nf4_bnb: the format needs an even block size dividing k=%lld",
                        (long long)rw->k);
    nk = (uint64_t)rw->n * (uint64_t)rw->k;
    blocks = nk / (uint64_t)f->group;
    if (L->bytes[QKC_SECTION_DATA] < nk / 2 ||
        ((f->flags & QKC_FORMAT_DQ)
             ? (L->bytes[QKC_SECTION_SCALES] < blocks ||
                L->bytes[QKC_SECTION_SCALES2] < (blocks + NESTED_BLOCK - 1) / NESTED_BLOCK * 4 ||
                L->bytes[QKC_SECTION_AUX] < MAP_SIZE * 4 + 4)
             : L->bytes[QKC_SECTION_SCALES] < blocks * 4))
        return qkc_fail(rw->ctx, QKC_ERR_INVALID_ARGUMENT, "nf4_bnb: the layout does not match the format");
    *blocks_out = blocks;
    return QKC_OK;
}

/* Nested quantization of absmax[0..blocks) into the blob (§3.4). */
static void quantize_absmax(const float *absmax, uint64_t blocks, const qkc_weight_layout *L, uint8_t *blob)
{
    float map[MAP_SIZE];
    double sum = 0.0;
    float offset;
    uint8_t *codes = blob + L->offset[QKC_SECTION_SCALES];
    uint8_t *nested = blob + L->offset[QKC_SECTION_SCALES2];
    uint8_t *aux = blob + L->offset[QKC_SECTION_AUX];

    dynamic_map(map);
    /* offset = mean(absmax): summed in double, divided, rounded once to
     * f32 (torch sums in f32 with its own order; the mean is an offset
     * that is stored, so any choice decodes exactly). */
    for (uint64_t b = 0; b < blocks; b++)
        sum += (double)absmax[b];
    offset = (float)(sum / (double)blocks);

    for (uint64_t j = 0; j * NESTED_BLOCK < blocks; j++) {
        uint64_t b0 = j * NESTED_BLOCK, b1 = b0 + NESTED_BLOCK < blocks ? b0 + NESTED_BLOCK : blocks;
        float amax = 0.0f, inv;
        for (uint64_t b = b0; b < b1; b++) {
            float v = absmax[b] - offset;
            amax = fmaxf(amax, fabsf(v));
        }
        inv = 1.0f / amax;
        for (uint64_t b = b0; b < b1; b++) {
            float v = absmax[b] - offset;
            /* amax == 0: every v is 0 and 0·inf would be NaN; code 0.0. */
            codes[b] = dynamic_encode(map, amax > 0.0f ? v * inv : 0.0f);
        }
        qkc_wr32(nested + j * 4, qkc_f32_bits(amax));
    }
    for (int i = 0; i < MAP_SIZE; i++)
        qkc_wr32(aux + i * 4, qkc_f32_bits(map[i]));
    qkc_wr32(aux + MAP_SIZE * 4, qkc_f32_bits(offset));
}

qkc_status qkc_ref_bnb_quantize(const qkc_ref_weights *rw, const float *w, int64_t ldw, uint8_t *blob)
{
    const qkc_weight_layout *L = rw ? rw->layout : NULL;
    uint64_t blocks;
    int64_t G;
    int dq;
    float *absmax = NULL;
    uint8_t *data;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = check(rw, ldw, w, blob, &blocks)) != QKC_OK)
        return st;
    G = rw->format->group;
    dq = (rw->format->flags & QKC_FORMAT_DQ) != 0;
    if (dq) {
        if (blocks <= SIZE_MAX / sizeof *absmax)
            absmax = qkc_alloc(rw->ctx, (size_t)blocks * sizeof *absmax);
        if (!absmax)
            return qkc_fail(rw->ctx, QKC_ERR_NO_MEMORY, "nf4_bnb: no memory for %llu absmax values",
                            (unsigned long long)blocks);
    }
    memset(blob, 0, (size_t)L->total);
    data = blob + L->offset[QKC_SECTION_DATA];

    for (uint64_t b = 0; b < blocks; b++) {
        int64_t e0 = (int64_t)b * G;
        float amax = 0.0f, inv;
        for (int64_t i = 0; i < G; i++)
            amax = fmaxf(amax, fabsf(elem(w, ldw, rw->k, e0 + i)));
        /* The reciprocal once, in f32, as bitsandbytes does. */
        inv = 1.0f / amax;
        for (int64_t i = 0; i < G; i++) {
            int64_t e = e0 + i;
            uint32_t code = 7; /* absmax == 0: every element is NF4 0.0 */
            if (amax > 0.0f)
                code = qkc_dtype_encode(QKC_DTYPE_NF4, elem(w, ldw, rw->k, e) * inv, 0);
            data[e / 2] |= (uint8_t)(e % 2 == 0 ? code << 4 : code);
        }
        if (dq)
            absmax[b] = amax;
        else
            qkc_wr32(blob + L->offset[QKC_SECTION_SCALES] + b * 4, qkc_f32_bits(amax));
    }
    if (dq) {
        quantize_absmax(absmax, blocks, L, blob);
        qkc_free(rw->ctx, absmax);
    }
    return QKC_OK;
}

qkc_status qkc_ref_bnb_dequantize(const qkc_ref_weights *rw, const uint8_t *blob, float *w, int64_t ldw)
{
    const qkc_weight_layout *L = rw ? rw->layout : NULL;
    const uint8_t *data;
    uint64_t blocks;
    int64_t G;
    int dq;
    float map[MAP_SIZE], offset = 0.0f;
    qkc_status st;

    if (!rw)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((st = check(rw, ldw, blob, w, &blocks)) != QKC_OK)
        return st;
    G = rw->format->group;
    dq = (rw->format->flags & QKC_FORMAT_DQ) != 0;
    data = blob + L->offset[QKC_SECTION_DATA];
    if (dq) {
        /* The map comes from the blob: files carry their own. */
        const uint8_t *aux = blob + L->offset[QKC_SECTION_AUX];
        for (int i = 0; i < MAP_SIZE; i++)
            map[i] = qkc_f32_from_bits(qkc_rd32(aux + i * 4));
        offset = qkc_f32_from_bits(qkc_rd32(aux + MAP_SIZE * 4));
    }

    for (uint64_t b = 0; b < blocks; b++) {
        int64_t e0 = (int64_t)b * G;
        float amax;
        if (dq) {
            uint8_t q = blob[L->offset[QKC_SECTION_SCALES] + b];
            float na = qkc_f32_from_bits(qkc_rd32(blob + L->offset[QKC_SECTION_SCALES2] + b / NESTED_BLOCK * 4));
            float t = map[q] * na; /* multiply, then add: two roundings */
            amax = t + offset;
        } else {
            amax = qkc_f32_from_bits(qkc_rd32(blob + L->offset[QKC_SECTION_SCALES] + b * 4));
        }
        for (int64_t i = 0; i < G; i++) {
            int64_t e = e0 + i;
            uint8_t byte = data[e / 2];
            uint32_t code = e % 2 == 0 ? byte >> 4 : byte & 15u;
            w[(e / rw->k) * ldw + e % rw->k] = qkc_dtype_decode(QKC_DTYPE_NF4, code) * amax;
        }
    }
    return QKC_OK;
}

/* ------------------------------------------------------------ packing */

static void read_bnb(qkc_pack_job *job, int64_t r)
{
    const qkc_weight_layout *wl = job->wl;
    const uint8_t *data = job->src + wl->offset[QKC_SECTION_DATA];
    int64_t k = job->k, G = job->f->group;
    int dq = (job->f->flags & QKC_FORMAT_DQ) != 0;

    /* Element e of the flattened matrix: byte e/2, even e in the HIGH
     * nibble (bitsandbytes' order). */
    for (int64_t i = 0; i < k; i++) {
        uint64_t e = (uint64_t)r * (uint64_t)k + (uint64_t)i;
        uint8_t byte = data[e / 2];
        job->code[i] = e % 2 == 0 ? (uint32_t)byte >> 4 : byte & 15u;
    }
    for (int64_t c = 0; c < job->L->chunks_per_row; c++) {
        uint64_t b = ((uint64_t)r * (uint64_t)k + (uint64_t)(c * job->L->chunk)) / (uint64_t)G;
        float amax;
        if (dq) {
            uint8_t q = job->src[wl->offset[QKC_SECTION_SCALES] + b];
            float na = qkc_f32_from_bits(qkc_rd32(job->src + wl->offset[QKC_SECTION_SCALES2] + b / 256 * 4));
            float t = job->map[q] * na; /* the reference's two roundings */
            amax = t + job->map_offset;
        } else {
            amax = qkc_f32_from_bits(qkc_rd32(job->src + wl->offset[QKC_SECTION_SCALES] + b * 4));
        }
        job->scale[c] = qkc_f32_bits(amax);
    }
}

/* nf4_bnb with dq: the nested map and offset are read from AUX, as the
 * reference decoder reads them. */
static void prepare_bnb(qkc_pack_job *job)
{
    const uint8_t *aux = job->src + job->wl->offset[QKC_SECTION_AUX];
    if (!(job->f->flags & QKC_FORMAT_DQ))
        return;
    for (int i = 0; i < 256; i++)
        job->map[i] = qkc_f32_from_bits(qkc_rd32(aux + i * 4));
    job->map_offset = qkc_f32_from_bits(qkc_rd32(aux + 256 * 4));
}

static qkc_status bnb_pack(qkc_pack_job *job, uint8_t *out)
{
    prepare_bnb(job);
    return qkc_pack_rows(job, out, read_bnb);
}

const qkc_family_codec qkc_family_bnb_codec = {
    .name = "bnb",
    .quantize = qkc_ref_bnb_quantize,
    .dequantize = qkc_ref_bnb_dequantize,
    .pack = bnb_pack,
};
