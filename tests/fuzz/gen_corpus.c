/*
 * The fuzzers' seed corpora and dictionaries, made by qkc's own code:
 *
 *   fuzz_gen_corpus DIR      (DIR: tests/fuzz; `ninja fuzz-corpus` runs it)
 *
 * writes, next to the hand-kept seeds already there,
 *
 *   corpus_spec/    one spec per preset (ir/presets.def), per dtype
 *                   (ir/dtypes.def: as weights, else in another role) and
 *                   per keyword value of the other keys;
 *   corpus_file/, corpus_open/, corpus_run/
 *                   a GGUF file with one small tensor of every GGUF type qkc
 *                   runs (tests/util/file_fixtures.c), one with metadata of
 *                   every value type, and safetensors files: dense f16,
 *                   bf16 and f32, GPTQ (4-bit, 8-bit act-order, v2), AWQ,
 *                   bitsandbytes NF4 (plain and double-quantized);
 *   corpus_cache/   the disk-cache entries of two small kernels
 *                   (x86_64-avx2) and the bundles qkc_cache_export makes of
 *                   them and of an empty cache;
 *   corpus_tunedb/  tuning databases qkc_tune_db_save writes, and schedule
 *                   texts qkc_schedule_print writes;
 *   spec.dict, file.dict, cache.dict, tunedb.dict
 *                   libFuzzer dictionaries: the spec language's keys and
 *                   words, GGUF's magic, keys and type ids (little-endian
 *                   u32), safetensors' JSON keys and dtypes, the cache's
 *                   magics and key lines, the database's fields.
 *
 * Every seed is named by what it holds; the output is the same on every
 * run with the same qkc and LLVM (cache entries hold machine code).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/dtype.h"
#include "ir/format.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "targets/target.h"
#include "util/file_fixtures.h"
#include "util/file_writer.h"

static const char *out_dir;
static int failures;

static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz_gen_corpus: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

static void save(const char *corpus, const char *name, const void *data, size_t size)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", out_dir, corpus);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, corpus, name);
    if (!(f = fopen(path, "wb")) || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        fail("cannot write %s: %s", path, strerror(errno));
}

/* The checkpoint seeds go to the three harnesses that open files. */
static void save_file(const char *name, const qkc_bytes *b)
{
    if (b->oom) {
        fail("%s: out of memory", name);
        return;
    }
    save("corpus_file", name, b->data, b->len);
    save("corpus_open", name, b->data, b->len);
    save("corpus_run", name, b->data, b->len);
}

/* ------------------------------------------------------------ dictionaries */

typedef struct dict {
    FILE *f;
    char **seen;
    size_t count;
} dict;

static int dict_open(dict *d, const char *name, const char *what)
{
    char path[1024];
    memset(d, 0, sizeof *d);
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    if (!(d->f = fopen(path, "w"))) {
        fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(d->f, "# libFuzzer dictionary: %s.\n# Written by tests/fuzz/gen_corpus.c (ninja fuzz-corpus); do not edit.\n",
            what);
    return 0;
}

/* One entry, quoted with \xNN escapes; each distinct entry once. */
static void dict_add(dict *d, const void *data, size_t size)
{
    const unsigned char *p = data;
    char line[512];
    size_t n = 0;
    if (!d->f || !size)
        return;
    line[n++] = '"';
    for (size_t i = 0; i < size && n < sizeof line - 8; i++) {
        if (p[i] == '"' || p[i] == '\\')
            n += (size_t)snprintf(line + n, sizeof line - n, "\\%c", p[i]);
        else if (p[i] >= 0x20 && p[i] < 0x7f)
            line[n++] = (char)p[i];
        else
            n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02X", p[i]);
    }
    line[n++] = '"';
    line[n] = '\0';
    for (size_t i = 0; i < d->count; i++)
        if (!strcmp(d->seen[i], line))
            return;
    d->seen = realloc(d->seen, (d->count + 1) * sizeof *d->seen);
    if (!d->seen || !(d->seen[d->count] = strdup(line))) {
        fail("out of memory");
        exit(1);
    }
    d->count++;
    fprintf(d->f, "%s\n", line);
}

static void dict_str(dict *d, const char *s)
{
    dict_add(d, s, strlen(s));
}

static void dict_u32(dict *d, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    dict_add(d, b, 4);
}

static void dict_close(dict *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->seen[i]);
    free(d->seen);
    if (d->f && fclose(d->f) != 0)
        fail("cannot write a dictionary");
}

/* ------------------------------------------------------------------ specs */

static const char *const preset_keywords[] = {
#define QKC_PRESET(NAME, ID, KW, ...) KW,
#include "ir/presets.def"
#undef QKC_PRESET
};

static const char *const dtype_keywords[] = {
#define QKC_DTYPE(NAME, ID, KW, BITS, KIND, SIGNED, EB, MB, BIAS) KW,
#include "ir/dtypes.def"
#undef QKC_DTYPE
};

#define COUNT(a) (sizeof(a) / sizeof(a)[0])

/* Values of keys that are neither dtypes nor numbers (ir/parse.c). */
static const char *const spec_values[] = {
    "compute=f32", "compute=int8", "compute=bf16", "compute=f16", "compute=tf32", "bias=none", "bias=f32",
    "act=none", "act=relu", "act=gelu", "act=silu", "group=channel", "group=tensor", "group=32", "zero=none",
    "zero=int", "zero=float", "outliers=none", "outliers=sparse", "outliers=sparse:0.01", "outliers=act:6",
    "layout=planar", "rotate=none", "rotate=hadamard:32", "lora=none", "lora=16:bf16", "ascale=dynamic",
    "ascale=static", "ascale=static:channel", "table=f16", "table=f32", "vq=4:8", "bits=4x32,8x32", "m=1",
};

static int spec_ok(qkc_context *ctx, const char *text)
{
    qkc_spec *spec = NULL;
    int ok = qkc_spec_parse(ctx, text, &spec) == QKC_OK;
    qkc_spec_destroy(spec);
    return ok;
}

/* The first of the candidate texts (printf formats of one %s) that
 * parses, saved as corpus_spec/<name>. */
static void spec_seed(qkc_context *ctx, const char *name, const char *word, const char *const *forms, size_t nforms)
{
    char text[256];
    for (size_t i = 0; i < nforms; i++) {
        snprintf(text, sizeof text, forms[i], word);
        if (spec_ok(ctx, text)) {
            strcat(text, "\n");
            save("corpus_spec", name, text, strlen(text));
            return;
        }
    }
    fail("no spec parses for %s", name);
}

static void spec_seeds(qkc_context *ctx)
{
    static const char *const preset_forms[] = {
        "matmul n=64 k=256 w=%s",           "matmul n=64 k=256 w=%s group=128",
        "matmul n=64 k=256 w=%s group=64",  "matmul n=64 k=256 w=%s group=32",
    };
    /* a dtype as the weights, else in the other roles a dtype plays */
    static const char *const dtype_forms[] = {
        "matmul n=64 k=256 w=%s",
        "matmul n=64 k=256 w=%s group=32",
        "matmul n=64 k=256 w=%s group=32 table=f16",
        "matmul n=64 k=256 w=%s vq=4:8",
        "matmul n=64 k=256 w=%s vq=4:8 table=f16",
        "matmul n=64 k=256 a=%s w=q8_0",
        "matmul n=64 k=256 w=fp4 group=32 scale=%s",
        "matmul n=64 k=256 w=int4 group=32 scale=%s",
        "matmul n=64 k=256 w=int4 group=32 scale=%s:f32:8",
    };
    static const char *const value_forms[] = {
        "matmul n=64 k=256 w=q8_0 %s",
        "matmul n=64 k=256 w=int8 %s",
        "matmul n=64 k=256 w=int4 group=32 %s",
        "matmul n=64 k=256 w=q4_0 compute=int8 %s",
        "matmul n=64 k=256 w=lut4 group=32 %s",
        "matmul n=64 k=256 w=vq %s",
        "matmul n=64 k=256 w=mixed %s",
    };
    /* the presets' options (ir/parse.c, qkc_format_from_words) */
    static const char *const options[][2] = {
        {"preset-gptq-8-actorder", "gptq:8:actorder group=128"}, {"preset-gptq-3", "gptq:3 group=32"},
        {"preset-gptq-2", "gptq:2 group=channel"},               {"preset-nf4_bnb-dq", "nf4_bnb:dq group=64"},
        {"preset-mxfp8-e5m2", "mxfp8:e5m2"},                     {"preset-mxfp8-e4m3", "mxfp8:e4m3"},
    };
    static const char *const option_form[] = {"matmul n=64 k=256 w=%s"};
    char name[64];
    for (size_t i = 0; i < COUNT(preset_keywords); i++) {
        snprintf(name, sizeof name, "preset-%s", preset_keywords[i]);
        spec_seed(ctx, name, preset_keywords[i], preset_forms, COUNT(preset_forms));
    }
    for (size_t i = 0; i < COUNT(options); i++)
        spec_seed(ctx, options[i][0], options[i][1], option_form, 1);
    for (size_t i = 0; i < COUNT(dtype_keywords); i++) {
        snprintf(name, sizeof name, "dtype-%s", dtype_keywords[i]);
        spec_seed(ctx, name, dtype_keywords[i], dtype_forms, COUNT(dtype_forms));
    }
    for (size_t i = 0; i < COUNT(spec_values); i++) {
        snprintf(name, sizeof name, "key-%s", spec_values[i]);
        for (char *p = name; *p; p++)
            if (*p == ':' || *p == ',' || *p == '=')
                *p = '_';
        spec_seed(ctx, name, spec_values[i], value_forms, COUNT(value_forms));
    }
}

static void spec_dict(void)
{
    dict d;
    char buf[64];
    if (dict_open(&d, "spec.dict", "the spec language (ir/parse.c, ir/presets.def, ir/dtypes.def)"))
        return;
    dict_str(&d, "matmul");
    for (int k = 0; k < QKC_KEY_COUNT; k++) {
        snprintf(buf, sizeof buf, "%s=", qkc_key_name((qkc_key)k));
        dict_str(&d, buf);
    }
    for (size_t i = 0; i < COUNT(preset_keywords); i++)
        dict_str(&d, preset_keywords[i]);
    for (size_t i = 0; i < COUNT(dtype_keywords); i++)
        dict_str(&d, dtype_keywords[i]);
    for (size_t i = 0; i < COUNT(spec_values); i++)
        dict_str(&d, strchr(spec_values[i], '=') + 1);
    {
        static const char *const words[] = {"mixed", "actorder", "dq", "e4m3", "e5m2", "sparse", "act:", "hadamard:",
                                            "static:channel", "none", ":", ",", "x", "#", "\n", "\t", "65536",
                                            "4294967296", "9223372036854775807"};
        for (size_t i = 0; i < COUNT(words); i++)
            dict_str(&d, words[i]);
    }
    dict_close(&d);
}

/* ------------------------------------------------------------ checkpoints */

static void gguf_seeds(qkc_context *ctx)
{
    size_t ncases;
    const qkc_gguf_type_case *cases = qkc_gguf_type_cases(&ncases);
    for (size_t i = 0; i < ncases; i++) {
        /* 4 x 256: a whole super-block row for the K-quants */
        int64_t n = 4, k = 256;
        qkc_gguf_writer w;
        qkc_bytes out = {0};
        void *blob = NULL;
        size_t bytes = 0;
        uint64_t dims[2] = {(uint64_t)k, (uint64_t)n};
        char name[64];
        if (qkc_fixture_blob(ctx, cases[i].weights, n, k, cases[i].name, &blob, &bytes)) {
            fail("no %s blob: %s", cases[i].name, qkc_context_last_error(ctx));
            continue;
        }
        qkc_gguf_init(&w);
        qkc_gguf_kv_str(&w, "general.architecture", "llama");
        qkc_gguf_kv_u32(&w, "general.alignment", 32);
        qkc_gguf_add_tensor(&w, "blk.0.attn_q.weight", cases[i].ggml_type, 2, dims, blob, bytes);
        if (!strcmp(cases[i].name, "Q4_0") || !strcmp(cases[i].name, "MXFP4")) {
            /* and the same rows as a stack of 2 experts of 2 rows (MoE) */
            uint64_t d3[3] = {(uint64_t)k, 2, 2};
            qkc_gguf_add_tensor(&w, "blk.0.ffn_up_exps.weight", cases[i].ggml_type, 3, d3, blob, bytes);
        }
        if (qkc_gguf_finish(&w, &out) == 0) {
            snprintf(name, sizeof name, "gguf-%s", cases[i].name);
            for (char *p = name; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            save_file(name, &out);
        } else {
            fail("cannot write a %s GGUF file", cases[i].name);
        }
        qkc_gguf_free(&w);
        qkc_bytes_free(&out);
        free(blob);
    }
}

/* A GGUF file with a value of every metadata type and an array. */
static void gguf_metadata_seed(qkc_context *ctx)
{
    qkc_gguf_writer w;
    qkc_bytes out = {0}, arr = {0};
    void *blob = NULL;
    size_t bytes = 0;
    uint64_t dims[2] = {32, 2};
    unsigned char v8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (qkc_fixture_blob(ctx, "w=q8_0", 2, 32, "gguf-metadata", &blob, &bytes)) {
        fail("no q8_0 blob");
        return;
    }
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    qkc_gguf_kv_str(&w, "general.name", "qkc seed");
    qkc_gguf_kv_u32(&w, "general.file_type", 7);
    qkc_gguf_kv_u32(&w, "general.quantization_version", 2);
    qkc_gguf_kv_raw(&w, "llama.block_count", QKC_GGUF_U8, v8, 1);
    qkc_gguf_kv_raw(&w, "llama.rope.dimension_count", QKC_GGUF_I8, v8, 1);
    qkc_gguf_kv_raw(&w, "llama.attention.head_count", QKC_GGUF_U16, v8, 2);
    qkc_gguf_kv_raw(&w, "llama.attention.head_count_kv", QKC_GGUF_I16, v8, 2);
    qkc_gguf_kv_raw(&w, "llama.context_length", QKC_GGUF_I32, v8, 4);
    qkc_gguf_kv_raw(&w, "llama.rope.freq_base", QKC_GGUF_F32, v8, 4);
    qkc_gguf_kv_raw(&w, "tokenizer.ggml.add_bos_token", QKC_GGUF_BOOL, v8, 1);
    qkc_gguf_kv_raw(&w, "llama.embedding_length", QKC_GGUF_U64, v8, 8);
    qkc_gguf_kv_raw(&w, "llama.feed_forward_length", QKC_GGUF_I64, v8, 8);
    qkc_gguf_kv_raw(&w, "llama.attention.layer_norm_rms_epsilon", QKC_GGUF_F64, v8, 8);
    qkc_gguf_kv_str(&w, "tokenizer.ggml.model", "llama");
    /* tokenizer.ggml.tokens: an array of two strings */
    qkc_bytes_u32(&arr, QKC_GGUF_STRING);
    qkc_bytes_u64(&arr, 2);
    qkc_bytes_gguf_str(&arr, "<s>");
    qkc_bytes_gguf_str(&arr, "</s>");
    qkc_gguf_kv_raw(&w, "tokenizer.ggml.tokens", QKC_GGUF_ARRAY, arr.data, arr.len);
    qkc_bytes_free(&arr);
    qkc_bytes_u32(&arr, QKC_GGUF_F32);
    qkc_bytes_u64(&arr, 2);
    qkc_bytes_u32(&arr, 0);
    qkc_bytes_u32(&arr, 0x3f800000);
    qkc_gguf_kv_raw(&w, "tokenizer.ggml.scores", QKC_GGUF_ARRAY, arr.data, arr.len);
    qkc_bytes_free(&arr);
    qkc_gguf_add_tensor(&w, "token_embd.weight", 8, 2, dims, blob, bytes);
    if (qkc_gguf_finish(&w, &out) == 0)
        save_file("gguf-metadata", &out);
    else
        fail("cannot write the metadata GGUF file");
    qkc_gguf_free(&w);
    qkc_bytes_free(&out);
    free(blob);
}

static void safetensors_seeds(qkc_context *ctx)
{
    static const struct {
        const char *dtype, *weights;
    } dense[] = {{"F16", "w=f16"}, {"BF16", "w=bf16"}, {"F32", "w=f32"}};
    qkc_ckpt_fixture fx;
    for (size_t i = 0; i < COUNT(dense); i++) {
        qkc_st_writer w;
        qkc_bytes out = {0};
        void *blob = NULL;
        size_t bytes = 0;
        int64_t shape[2] = {4, 32};
        char name[64];
        if (qkc_fixture_blob(ctx, dense[i].weights, 4, 32, dense[i].dtype, &blob, &bytes)) {
            fail("no %s blob", dense[i].dtype);
            continue;
        }
        qkc_st_init(&w);
        qkc_st_meta(&w, "format", "pt");
        qkc_st_add(&w, "model.layers.0.mlp.up_proj.weight", dense[i].dtype, 2, shape, blob, bytes);
        if (qkc_st_finish(&w, &out) == 0) {
            snprintf(name, sizeof name, "st-dense-%s", dense[i].weights + 2);
            save_file(name, &out);
        } else {
            fail("cannot write a dense safetensors file");
        }
        qkc_bytes_free(&out);
        free(blob);
    }
    if (qkc_fixture_gptq(&fx, "l.q", 4, 8, 64, 32, 0, 0, 0, "fuzz|gptq4") == 0)
        save_file("st-gptq4", &fx.file);
    else
        fail("no GPTQ 4-bit fixture");
    qkc_fixture_free(&fx);
    if (qkc_fixture_gptq(&fx, "l.q", 8, 8, 128, 32, 1, 0, 0, "fuzz|gptq8-actorder") == 0)
        save_file("st-gptq8-actorder", &fx.file);
    else
        fail("no GPTQ 8-bit act-order fixture");
    qkc_fixture_free(&fx);
    if (qkc_fixture_gptq(&fx, "l.q", 3, 8, 64, 32, 0, 1, 1, "fuzz|gptq3-v2") == 0)
        save_file("st-gptq3-v2", &fx.file);
    else
        fail("no GPTQ v2 fixture");
    qkc_fixture_free(&fx);
    if (qkc_fixture_awq(&fx, "l.o", 8, 64, 32, "fuzz|awq") == 0)
        save_file("st-awq", &fx.file);
    else
        fail("no AWQ fixture");
    qkc_fixture_free(&fx);
    if (qkc_fixture_bnb(&fx, "l.up", 4, 64, 64, 0, "fuzz|nf4") == 0)
        save_file("st-nf4", &fx.file);
    else
        fail("no NF4 fixture");
    qkc_fixture_free(&fx);
    if (qkc_fixture_bnb(&fx, "l.up", 4, 128, 64, 1, "fuzz|nf4-dq") == 0)
        save_file("st-nf4-dq", &fx.file);
    else
        fail("no NF4 double-quantized fixture");
    qkc_fixture_free(&fx);
}

/* Sharded-checkpoint indexes for fuzz_open, which writes an input whose
 * size leaves 3 over 4 as model.safetensors.index.json beside two shards
 * (a.safetensors: a.weight; b.safetensors: b.weight, b.bias): padded with
 * spaces to such a size. */
static void index_seeds(void)
{
    static const struct {
        const char *name, *json;
    } seeds[] = {
        {"index-ab", "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {\"a.weight\": \"a.safetensors\", "
                     "\"b.weight\": \"b.safetensors\", \"b.bias\": \"b.safetensors\"}}"},
        {"index-b", "{\"weight_map\": {\"b.weight\": \"b.safetensors\", \"b.bias\": \"b.safetensors\"}}"},
    };
    for (size_t i = 0; i < COUNT(seeds); i++) {
        char buf[512];
        size_t len = strlen(seeds[i].json);
        memcpy(buf, seeds[i].json, len);
        while (len % 4 != 3)
            buf[len++] = ' ';
        save("corpus_open", seeds[i].name, buf, len);
    }
}

static void file_dict(void)
{
    static const char *const keys[] = {
        /* GGUF (docs/formats.md §1) */
        "general.architecture", "general.alignment", "general.name", "general.file_type",
        "general.quantization_version", "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "llama.block_count",
        "llama.context_length", "llama.embedding_length", "llama.attention.head_count", "token_embd.weight",
        "output.weight", "blk.0.attn_q.weight", "blk.0.ffn_up.weight",
        /* safetensors (§8): JSON tokens, keys and dtypes */
        "{", "}", "[", "]", ":", ",", "\"", "\\u0000", "true", "false", "null", "-1", "1e400", "18446744073709551616",
        "__metadata__", "dtype", "shape", "data_offsets", "format", "pt", "F64", "F32", "F16", "BF16", "F8_E4M3",
        "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
        "BOOL",
        /* quantized checkpoints: tensor suffixes, metadata, quant_state */
        ".qweight", ".qzeros", ".scales", ".g_idx", ".weight", ".bias", ".absmax", ".quant_map", ".nested_absmax",
        ".nested_quant_map", ".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4",
        "model.layers.0.mlp.up_proj", "checkpoint_format", "gptq", "gptq_v2", "quant_method", "awq", "bits",
        "group_size", "desc_act", "sym", "zero_point", "quant_type", "nf4", "fp4", "blocksize", "nested_blocksize",
        "nested_offset", "quantization_config",
        /* sharded checkpoints: the index (fuzz_open) */
        "weight_map", "metadata", "total_size", "a.safetensors", "b.safetensors", "a.weight", "b.weight", "b.bias",
        "model-00001-of-00002.safetensors", "../",
    };
    dict d;
    if (dict_open(&d, "file.dict", "checkpoint files: GGUF magic, keys, value and tensor type ids; safetensors JSON"))
        return;
    dict_str(&d, "GGUF");
    dict_u32(&d, 2); /* versions */
    dict_u32(&d, 3);
    /* metadata value types (0..12) and ggml tensor types (0..42), as u32 */
    for (uint32_t t = 0; t <= 42; t++)
        dict_u32(&d, t);
    dict_u32(&d, 0xffffffffu);
    for (size_t i = 0; i < COUNT(keys); i++)
        dict_str(&d, keys[i]);
    dict_close(&d);
}

/* ------------------------------------------------------------------ cache */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return buf;
}

typedef struct entry_list {
    char names[4][128];
    int count;
} entry_list;

static void list_entry(const qkc_cache_entry_info *e, void *user)
{
    entry_list *l = user;
    if (l->count < 4)
        snprintf(l->names[l->count++], sizeof l->names[0], "%s", e->file);
}

static void cache_seeds(void)
{
    static const char *const specs[] = {"matmul n=8 k=32 w=q4_0 compute=f32", "matmul n=16 k=64 w=q8_0 compute=int8"};
    static const char *const seeds[] = {"entry-q4_0", "entry-q8_0-int8"};
    char dir[] = "/tmp/qkc-fuzz-corpus-XXXXXX", cache[256], bundle[256];
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .disk_cache = QKC_DISK_CACHE_ON};
    qkc_context *ctx = NULL;
    entry_list l;
    size_t len;
    char *raw;
    if (!mkdtemp(dir)) {
        fail("no temporary directory");
        return;
    }
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(bundle, sizeof bundle, "%s/b.bundle", dir);
    co.cache_dir = cache;
    if (qkc_context_create(&co, &ctx) != QKC_OK) {
        fail("no context");
        return;
    }
    /* an empty cache's bundle */
    if (qkc_cache_export(ctx, bundle, NULL) == QKC_OK && (raw = read_all(bundle, &len))) {
        save("corpus_cache", "bundle-empty", raw, len);
        free(raw);
    } else {
        fail("no empty bundle: %s", qkc_context_last_error(ctx));
    }
    for (size_t i = 0; i < COUNT(specs); i++) {
        qkc_spec *spec = NULL;
        qkc_kernel *kern = NULL;
        qkc_compile_options opt = {.struct_size = sizeof opt, .target = "x86_64-avx2"};
        char path[512];
        /* each entry alone in the cache, so the listing names it */
        qkc_cache_clear(ctx, NULL);
        memset(&l, 0, sizeof l);
        if (qkc_spec_parse(ctx, specs[i], &spec) != QKC_OK || qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK ||
            qkc_cache_list(ctx, list_entry, &l) != QKC_OK || l.count != 1) {
            fail("%s: no cache entry: %s", specs[i], qkc_context_last_error(ctx));
        } else {
            snprintf(path, sizeof path, "%s/%s", cache, l.names[0]);
            if ((raw = read_all(path, &len))) {
                save("corpus_cache", seeds[i], raw, len);
                free(raw);
            }
        }
        qkc_kernel_destroy(kern);
        qkc_spec_destroy(spec);
    }
    /* both entries in one bundle */
    qkc_cache_clear(ctx, NULL);
    qkc_context_destroy(ctx);
    ctx = NULL;
    if (qkc_context_create(&co, &ctx) == QKC_OK) {
        for (size_t i = 0; i < COUNT(specs); i++) {
            qkc_spec *spec = NULL;
            qkc_kernel *kern = NULL;
            qkc_compile_options opt = {.struct_size = sizeof opt, .target = "x86_64-avx2"};
            if (qkc_spec_parse(ctx, specs[i], &spec) != QKC_OK || qkc_kernel_compile(ctx, spec, &opt, &kern) != QKC_OK)
                fail("%s: %s", specs[i], qkc_context_last_error(ctx));
            qkc_kernel_destroy(kern);
            qkc_spec_destroy(spec);
        }
        if (qkc_cache_export(ctx, bundle, NULL) == QKC_OK && (raw = read_all(bundle, &len))) {
            save("corpus_cache", "bundle-2", raw, len);
            free(raw);
        } else {
            fail("no bundle: %s", qkc_context_last_error(ctx));
        }
        qkc_cache_clear(ctx, NULL);
    }
    qkc_context_destroy(ctx);
    remove(bundle);
    rmdir(cache);
    rmdir(dir);
}

static void cache_dict(void)
{
    dict d;
    if (dict_open(&d, "cache.dict", "disk-cache entries and bundles (cache/diskcache.h)"))
        return;
    dict_str(&d, "QKCKOBJ\n");
    dict_str(&d, "QKCBUND\n");
    dict_u32(&d, 1); /* versions */
    dict_u32(&d, 0);
    dict_u32(&d, 0xffffffffu);
    dict_add(&d, "\0\0\0\0\0\0\0\0", 8);
    dict_add(&d, "\0\0\0\x04\0\0\0\0", 8); /* 64 MiB, the entry limit */
    /* the key's lines (compiler/jit.c) and the object */
    {
        static const char *const words[] = {"qkc ", " codegen ", " llvm ", "\nspec ", "\nschedule ", "\ntarget ",
                                            "\nfeatures ", "matmul n=8 k=32 a=f32 w=q4_0 out=f32", "qkc_kernel",
                                            "\177ELF", "x86_64-avx2", "x86_64-unknown-linux-gnu"};
        for (size_t i = 0; i < COUNT(words); i++)
            dict_str(&d, words[i]);
    }
    dict_str(&d, qkc_version_string());
    dict_close(&d);
}

/* ---------------------------------------------------------- tuning database */

static void tunedb_seeds(void)
{
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_context *ctx = NULL;
    qkc_tune_db *db = NULL;
    char dir[] = "/tmp/qkc-fuzz-corpus-XXXXXX", path[256], text[128];
    qkc_schedule s = {4, 4, 1, 512, 0, 64}, partial = {2, 0, 0, 0, 0, 32};
    size_t len;
    char *raw;
    static const struct {
        const char *spec, *bucket, *target, *features, *version;
        qkc_schedule s;
        double us;
    } entries[] = {
        {"matmul n=4096 k=4096 w=q4_0", "1", "x86_64-avx2", "avx2 fma f16c", NULL, {1, 3, 1, 256, 0, 32}, 812.5},
        {"matmul n=4096 k=4096 w=q4_0", "2-8", "x86_64-avx2", "avx2 fma f16c", NULL, {2, 2, 2, 256, 4, 64}, 1900},
        {"matmul k=4096 n=4096 a=bf16 w=bf16", "9-64", "x86_64-avx512", "avx2 fma f16c avx512f avx512bw", NULL,
         {4, 4, 1, 512, 0, 128}, 20000.25},
        {"matmul n=64 k=256 w=q4_k compute=int8", "65+", "aarch64-neon-dotprod", "neon dotprod", "0.0.9",
         {2, 4, 1, 128, 0, 64}, 33.001},
    };
    if (!mkdtemp(dir) || qkc_context_create(&co, &ctx) != QKC_OK || qkc_tune_db_create(ctx, &db) != QKC_OK) {
        fail("no tuning database");
        return;
    }
    snprintf(path, sizeof path, "%s/t.db", dir);
    for (size_t i = 0; i < COUNT(entries); i++) {
        qkc_tune_entry e = {entries[i].spec, entries[i].bucket, entries[i].target, entries[i].features,
                            entries[i].version, entries[i].s, entries[i].us, entries[i].us * 1.25, "2026-12-07"};
        if (qkc_tune_db_add(db, &e) != QKC_OK)
            fail("tuning entry %zu: %s", i, qkc_context_last_error(ctx));
        if (i == 0 && qkc_tune_db_save(db, path) == QKC_OK && (raw = read_all(path, &len))) {
            save("corpus_tunedb", "db-1", raw, len);
            free(raw);
        }
    }
    if (qkc_tune_db_save(db, path) == QKC_OK && (raw = read_all(path, &len))) {
        save("corpus_tunedb", "db-4", raw, len);
        free(raw);
    } else {
        fail("no tuning database file: %s", qkc_context_last_error(ctx));
    }
    qkc_schedule_print(&s, text, sizeof text);
    save("corpus_tunedb", "schedule-full", text, strlen(text));
    qkc_schedule_print(&partial, text, sizeof text);
    save("corpus_tunedb", "schedule-zeros", text, strlen(text));
    save("corpus_tunedb", "schedule-partial", "tm=2,nb=32\ttn=1", 15);
    remove(path);
    rmdir(dir);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
}

static void tunedb_dict(void)
{
    static const char *const words[] = {
        "qkc-tune 1", "#", "\t", "\n", "\r\n", "spec=", "m=", "target=", "features=", "qkc=", "schedule=", "us=",
        "default_us=", "date=", "1", "2-8", "9-64", "65+", "tm=", "tn=", "ku=", "vec=", "pf=", "nb=", "256", "512",
        "128", "1048576", "2026-12-07", "matmul n=64 k=256 w=q4_0", "0.000", "1e12", "host",
    };
    dict d;
    char feats[256];
    if (dict_open(&d, "tunedb.dict", "the tuning database (cache/tune_db.c) and schedule text"))
        return;
    for (size_t i = 0; i < COUNT(words); i++)
        dict_str(&d, words[i]);
    dict_str(&d, qkc_version_string());
    for (int i = 0; i < qkc_target_count(); i++)
        dict_str(&d, qkc_target_name(i));
    for (int arch = 0; arch <= QKC_ARCH_AARCH64; arch++)
        for (int bit = 0; bit < 32; bit++) {
            qkc_target_features_string(arch, 1u << bit, feats, sizeof feats);
            if (feats[0])
                dict_str(&d, feats);
        }
    dict_close(&d);
}

int main(int argc, char **argv)
{
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_context *ctx = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus DIR (tests/fuzz)\n");
        return 2;
    }
    out_dir = argv[1];
    if (qkc_context_create(&co, &ctx) != QKC_OK) {
        fail("no context");
        return 1;
    }
    spec_seeds(ctx);
    spec_dict();
    gguf_seeds(ctx);
    gguf_metadata_seed(ctx);
    safetensors_seeds(ctx);
    index_seeds();
    file_dict();
    cache_seeds();
    cache_dict();
    tunedb_seeds();
    tunedb_dict();
    qkc_context_destroy(ctx);
    if (failures)
        fprintf(stderr, "fuzz_gen_corpus: %d failures\n", failures);
    return failures ? 1 : 0;
}
