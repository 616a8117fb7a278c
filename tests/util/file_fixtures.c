/* Checkpoint fixtures (file_fixtures.h). */
#include "file_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/dtype.h"
#include "testutil.h"

static const qkc_gguf_type_case gguf_cases[] = {
    {0, "F32", "w=f32"},     {1, "F16", "w=f16"},     {30, "BF16", "w=bf16"},     {2, "Q4_0", "w=q4_0"},
    {3, "Q4_1", "w=q4_1"},   {6, "Q5_0", "w=q5_0"},   {7, "Q5_1", "w=q5_1"},      {8, "Q8_0", "w=q8_0"},
    {12, "Q4_K", "w=q4_k"},  {13, "Q5_K", "w=q5_k"},  {14, "Q6_K", "w=q6_k"},     {20, "IQ4_NL", "w=iq4_nl"},
    {39, "MXFP4", "w=mxfp4"},  {23, "IQ4_XS", "w=iq4_xs"}, {35, "TQ2_0", "w=tq2_0"}, {34, "TQ1_0", "w=tq1_0"}, {11, "Q3_K", "w=q3_k"}, {10, "Q2_K", "w=q2_k"},
};

const qkc_gguf_type_case *qkc_gguf_type_cases(size_t *count)
{
    *count = sizeof gguf_cases / sizeof gguf_cases[0];
    return gguf_cases;
}

int qkc_fixture_blob(qkc_context *ctx, const char *weights, int64_t n, int64_t k, const char *name, void **blob,
                     size_t *bytes)
{
    char text[256];
    qkc_spec *spec = NULL;
    float *w;
    qkc_rng r = qkc_rng_from_name(name);
    int rc = -1;
    snprintf(text, sizeof text, "matmul n=%lld k=%lld %s", (long long)n, (long long)k, weights);
    *blob = NULL;
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK || qkc_weights_bytes(ctx, spec, bytes) != QKC_OK)
        goto done;
    w = malloc((size_t)(n * k) * sizeof *w);
    *blob = malloc(*bytes);
    if (w && *blob) {
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&r) * 0.05f;
        rc = qkc_quantize(ctx, spec, w, k, *blob, *bytes) == QKC_OK ? 0 : -1;
    }
    free(w);
done:
    qkc_spec_destroy(spec);
    return rc;
}

/* --------------------------------------------------------------- packers */

/* Set `bits` bits at bit `pos` of a little-endian stream of 32-bit words,
 * word r at base + r·stride bytes (GPTQ's qweight columns and qzeros rows;
 * a 3-bit value may straddle two words). */
static void put_bits(uint8_t *base, size_t stride, uint64_t pos, int bits, uint32_t v)
{
    for (int b = 0; b < bits; b++, pos++) {
        uint8_t *byte = base + (pos / 32) * stride + (pos % 32) / 8;
        if ((v >> b) & 1u)
            *byte |= (uint8_t)(1u << (pos % 8));
    }
}

static uint16_t random_scale(qkc_rng *r)
{
    /* positive and negative f16 scales of varied magnitude */
    float s = qkc_rng_uniform(r, 0.002f, 0.1f) * (qkc_rng_below(r, 8) == 0 ? -1.0f : 1.0f);
    return qkc_f32_to_f16(s);
}

static void fixture_start(qkc_ckpt_fixture *fx, int64_t n, int64_t k)
{
    memset(fx, 0, sizeof *fx);
    qkc_st_init(&fx->st);
    fx->n = n;
    fx->k = k;
    fx->w = malloc((size_t)(n * k) * sizeof *fx->w);
}

int qkc_fixture_gptq(qkc_ckpt_fixture *fx, const char *prefix, int bits, int64_t n, int64_t k, int64_t gs,
                     int actorder, int v2, int v2_meta, const char *seed)
{
    qkc_rng r = qkc_rng_from_name(seed);
    int64_t G, maxq = (1 << bits) - 1, kw = k * bits / 32, nz = n * bits / 32;
    uint8_t *qweight, *qzeros;
    uint16_t *scales;
    int32_t *gidx, *perm;
    uint8_t *q, *z;
    char name[200];
    fixture_start(fx, n, k);
    if (gs <= 0)
        gs = k;
    G = (k + gs - 1) / gs;
    qweight = calloc((size_t)(kw * n), 4);
    qzeros = calloc((size_t)(G * nz), 4);
    scales = malloc((size_t)(G * n) * 2);
    gidx = malloc((size_t)k * 4);
    perm = malloc((size_t)k * 4);
    q = malloc((size_t)(k * n));
    z = malloc((size_t)(G * n));
    fx->buf[0] = qweight, fx->buf[1] = qzeros, fx->buf[2] = scales, fx->buf[3] = gidx, fx->buf[4] = perm;
    fx->buf[5] = q, fx->buf[6] = z;
    if (!fx->w || !qweight || !qzeros || !scales || !gidx || !perm || !q || !z)
        return -1;
    for (int64_t i = 0; i < k; i++)
        perm[i] = (int32_t)i;
    if (actorder) /* Fisher-Yates: the order GPTQ visited the inputs in */
        for (int64_t i = k - 1; i > 0; i--) {
            int64_t j = (int64_t)qkc_rng_below(&r, (uint64_t)i + 1);
            int32_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
    for (int64_t j = 0; j < k; j++)
        gidx[perm[j]] = (int32_t)(j / gs);
    for (int64_t i = 0; i < k * n; i++)
        q[i] = (uint8_t)qkc_rng_below(&r, (uint64_t)maxq + 1);
    for (int64_t i = 0; i < G * n; i++) {
        z[i] = (uint8_t)(1 + qkc_rng_below(&r, (uint64_t)maxq));
        scales[i] = random_scale(&r);
    }
    /* qweight [K·bits/32][N]: column n's words along K form one stream. */
    for (int64_t kk = 0; kk < k; kk++)
        for (int64_t nn = 0; nn < n; nn++)
            put_bits(qweight + nn * 4, (size_t)n * 4, (uint64_t)kk * (uint64_t)bits, bits, q[kk * n + nn]);
    /* qzeros [G][N·bits/32]: each row one stream along N; v1 stores zero − 1. */
    for (int64_t g = 0; g < G; g++)
        for (int64_t nn = 0; nn < n; nn++)
            put_bits(qzeros + g * nz * 4, 4, (uint64_t)nn * (uint64_t)bits, bits,
                     (uint32_t)(z[g * n + nn] - (v2 ? 0 : 1)));
    for (int64_t nn = 0; nn < n; nn++)
        for (int64_t kk = 0; kk < k; kk++) {
            int64_t g = gidx[kk];
            fx->w[nn * k + kk] = qkc_f16_to_f32(scales[g * n + nn]) * (float)((int)q[kk * n + nn] - (int)z[g * n + nn]);
        }
    {
        int64_t s_qw[2] = {kw, n}, s_qz[2] = {G, nz}, s_sc[2] = {G, n}, s_gi[1] = {k};
        snprintf(name, sizeof name, "%s.qweight", prefix);
        qkc_st_add(&fx->st, name, "I32", 2, s_qw, qweight, (size_t)(kw * n) * 4);
        snprintf(fx->head, sizeof fx->head, "%.150s", name);
        snprintf(name, sizeof name, "%s.qzeros", prefix);
        qkc_st_add(&fx->st, name, "I32", 2, s_qz, qzeros, (size_t)(G * nz) * 4);
        snprintf(name, sizeof name, "%s.scales", prefix);
        qkc_st_add(&fx->st, name, "F16", 2, s_sc, scales, (size_t)(G * n) * 2);
        snprintf(name, sizeof name, "%s.g_idx", prefix);
        qkc_st_add(&fx->st, name, "I32", 1, s_gi, gidx, (size_t)k * 4);
    }
    if (v2 && v2_meta)
        qkc_st_meta(&fx->st, "checkpoint_format", "gptq_v2");
    qkc_st_meta(&fx->st, "format", "pt");
    if (G == 1 && !actorder)
        snprintf(fx->weights, sizeof fx->weights, "w=gptq:%d group=channel", bits);
    else
        snprintf(fx->weights, sizeof fx->weights, "w=gptq:%d%s group=%lld", bits, actorder ? ":actorder" : "",
                 (long long)gs);
    return qkc_st_finish(&fx->st, &fx->file);
}

int qkc_fixture_awq(qkc_ckpt_fixture *fx, const char *prefix, int64_t n, int64_t k, int64_t gs, const char *seed)
{
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    qkc_rng r = qkc_rng_from_name(seed);
    int64_t G = k / gs, w8 = n / 8;
    uint32_t *qweight, *qzeros;
    uint16_t *scales;
    uint8_t *q, *z;
    char name[200];
    fixture_start(fx, n, k);
    qweight = calloc((size_t)(k * w8), 4);
    qzeros = calloc((size_t)(G * w8), 4);
    scales = malloc((size_t)(G * n) * 2);
    q = malloc((size_t)(k * n));
    z = malloc((size_t)(G * n));
    fx->buf[0] = qweight, fx->buf[1] = qzeros, fx->buf[2] = scales, fx->buf[3] = q, fx->buf[4] = z;
    if (!fx->w || !qweight || !qzeros || !scales || !q || !z)
        return -1;
    for (int64_t i = 0; i < k * n; i++)
        q[i] = (uint8_t)qkc_rng_below(&r, 16);
    for (int64_t i = 0; i < G * n; i++) {
        z[i] = (uint8_t)qkc_rng_below(&r, 16);
        scales[i] = random_scale(&r);
    }
    /* nibble i of word c holds column 8c + ORDER[i] (host is little-endian) */
    for (int64_t kk = 0; kk < k; kk++)
        for (int64_t c = 0; c < w8; c++)
            for (int i = 0; i < 8; i++)
                qweight[kk * w8 + c] |= (uint32_t)q[kk * n + 8 * c + order[i]] << (4 * i);
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < w8; c++)
            for (int i = 0; i < 8; i++)
                qzeros[g * w8 + c] |= (uint32_t)z[g * n + 8 * c + order[i]] << (4 * i);
    for (int64_t nn = 0; nn < n; nn++)
        for (int64_t kk = 0; kk < k; kk++) {
            int64_t g = kk / gs;
            fx->w[nn * k + kk] = (float)((int)q[kk * n + nn] - (int)z[g * n + nn]) * qkc_f16_to_f32(scales[g * n + nn]);
        }
    {
        int64_t s_qw[2] = {k, w8}, s_qz[2] = {G, w8}, s_sc[2] = {G, n};
        snprintf(name, sizeof name, "%s.qweight", prefix);
        qkc_st_add(&fx->st, name, "I32", 2, s_qw, qweight, (size_t)(k * w8) * 4);
        snprintf(fx->head, sizeof fx->head, "%.150s", name);
        snprintf(name, sizeof name, "%s.qzeros", prefix);
        qkc_st_add(&fx->st, name, "I32", 2, s_qz, qzeros, (size_t)(G * w8) * 4);
        snprintf(name, sizeof name, "%s.scales", prefix);
        qkc_st_add(&fx->st, name, "F16", 2, s_sc, scales, (size_t)(G * n) * 2);
    }
    snprintf(fx->weights, sizeof fx->weights, "w=awq group=%lld", (long long)gs);
    return qkc_st_finish(&fx->st, &fx->file);
}

/* formats.md §3.1, as fp32 bit patterns */
static const uint32_t nf4_bits[16] = {0xBF800000, 0xBF3239B1, 0xBF066B30, 0xBECA32A0, 0xBE91A24D, 0xBE3D353F,
                                      0xBDBA7871, 0x00000000, 0x3DA2FAFF, 0x3E24CAE3, 0x3E7C04DD, 0x3EAD033A,
                                      0x3EE1A4B8, 0x3F1007AB, 0x3F3913B3, 0x3F800000};

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int qkc_fixture_bnb(qkc_ckpt_fixture *fx, const char *prefix, int64_t n, int64_t k, int64_t bs, int dq,
                    const char *seed)
{
    qkc_rng r = qkc_rng_from_name(seed);
    int64_t nk = n * k, blocks = nk / bs, nested = (blocks + 255) / 256;
    uint8_t *weight, *codes, *amax_q;
    float *absmax, *qmap, *nabs, *nmap, offset = 0.0f;
    char name[220], *json;
    fixture_start(fx, n, k);
    weight = calloc((size_t)nk / 2, 1);
    codes = malloc((size_t)nk);
    absmax = malloc((size_t)blocks * 4);
    amax_q = malloc((size_t)blocks);
    qmap = malloc(16 * 4);
    nabs = malloc((size_t)nested * 4);
    nmap = malloc(256 * 4);
    json = malloc(512);
    fx->buf[0] = weight, fx->buf[1] = codes, fx->buf[2] = absmax, fx->buf[3] = amax_q, fx->buf[4] = qmap;
    fx->buf[5] = nabs, fx->buf[6] = nmap, fx->buf[7] = json;
    if (!fx->w || !weight || !codes || !absmax || !amax_q || !qmap || !nabs || !nmap || !json)
        return -1;
    for (int i = 0; i < 16; i++)
        qmap[i] = f32_of(nf4_bits[i]);
    for (int64_t e = 0; e < nk; e++) {
        codes[e] = (uint8_t)qkc_rng_below(&r, 16);
        weight[e / 2] |= (uint8_t)(e % 2 ? codes[e] : codes[e] << 4); /* element 2i in the high nibble */
    }
    if (dq) {
        for (int i = 0; i < 256; i++)
            nmap[i] = -1.0f + 2.0f * (float)i / 255.0f;
        for (int64_t j = 0; j < nested; j++)
            nabs[j] = qkc_rng_uniform(&r, 0.01f, 0.05f);
        offset = qkc_rng_uniform(&r, 0.03f, 0.06f);
        for (int64_t b = 0; b < blocks; b++) {
            amax_q[b] = (uint8_t)qkc_rng_below(&r, 256);
            absmax[b] = nmap[amax_q[b]] * nabs[b / 256];
            absmax[b] = absmax[b] + offset;
        }
    } else {
        for (int64_t b = 0; b < blocks; b++)
            absmax[b] = qkc_rng_uniform(&r, 0.01f, 0.2f);
    }
    for (int64_t e = 0; e < nk; e++)
        fx->w[e] = qmap[codes[e]] * absmax[e / bs];
    {
        int64_t s_w[2] = {nk / 2, 1}, s_a[1] = {blocks}, s_m[1] = {16}, s_n[1] = {nested}, s_nm[1] = {256}, s_j[1];
        snprintf(name, sizeof name, "%s.weight", prefix);
        snprintf(fx->head, sizeof fx->head, "%.150s", name);
        qkc_st_add(&fx->st, name, "U8", 2, s_w, weight, (size_t)nk / 2);
        snprintf(name, sizeof name, "%s.weight.absmax", prefix);
        if (dq)
            qkc_st_add(&fx->st, name, "U8", 1, s_a, amax_q, (size_t)blocks);
        else
            qkc_st_add(&fx->st, name, "F32", 1, s_a, absmax, (size_t)blocks * 4);
        snprintf(name, sizeof name, "%s.weight.quant_map", prefix);
        qkc_st_add(&fx->st, name, "F32", 1, s_m, qmap, 64);
        if (dq) {
            snprintf(name, sizeof name, "%s.weight.nested_absmax", prefix);
            qkc_st_add(&fx->st, name, "F32", 1, s_n, nabs, (size_t)nested * 4);
            snprintf(name, sizeof name, "%s.weight.nested_quant_map", prefix);
            qkc_st_add(&fx->st, name, "F32", 1, s_nm, nmap, 1024);
            snprintf(json, 512,
                     "{\"quant_type\": \"nf4\", \"blocksize\": %lld, \"dtype\": \"bfloat16\", \"shape\": [%lld, %lld], "
                     "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": %.17g}",
                     (long long)bs, (long long)n, (long long)k, (double)offset);
        } else {
            snprintf(json, 512,
                     "{\"quant_type\": \"nf4\", \"blocksize\": %lld, \"dtype\": \"bfloat16\", \"shape\": [%lld, %lld]}",
                     (long long)bs, (long long)n, (long long)k);
        }
        s_j[0] = (int64_t)strlen(json);
        snprintf(name, sizeof name, "%s.weight.quant_state.bitsandbytes__nf4", prefix);
        qkc_st_add(&fx->st, name, "U8", 1, s_j, json, strlen(json));
    }
    snprintf(fx->weights, sizeof fx->weights, "w=nf4_bnb%s group=%lld", dq ? ":dq" : "", (long long)bs);
    return qkc_st_finish(&fx->st, &fx->file);
}

void qkc_fixture_free(qkc_ckpt_fixture *fx)
{
    free(fx->w);
    for (int i = 0; i < 8; i++)
        free(fx->buf[i]);
    qkc_bytes_free(&fx->file);
}
