/*
 * safetensors checkpoints made by the reference packers of
 * tests/util/file_fixtures.c (GPTQ v1 and v2, with and without act-order,
 * 2/3/4/8 bits; AWQ gemm; bitsandbytes NF4 with and without nested
 * quantization): qkc finds the weight, reports its format, imports the
 * named tensors into a qkc blob, and that blob dequantizes bit for bit to
 * what the format's own decoder gives. Runtime only (test_cg_file runs
 * the kernels).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "ir/dtype.h"
#include "qkc/qkc.h"
#include "util/file_fixtures.h"
#include "util/testutil.h"

/* Open the fixture, find its weight, import, dequantize, compare. */
static void check_fixture(qkc_context *ctx, qkc_ckpt_fixture *fx, const char *name, int gptq_version)
{
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = gptq_version};
    qkc_file *file = NULL;
    qkc_tensor_info ti;
    qkc_spec *spec = NULL;
    int64_t index;
    void *blob;
    float *w;
    QKC_CASE_CHECK("test_file_import", name,
                   qkc_file_open_memory(ctx, fx->file.data, fx->file.len, &fo, &file) == QKC_OK, "open: %s",
                   qkc_context_last_error(ctx));
    assert_int_equal(qkc_file_find(ctx, file, fx->head, &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    QKC_CASE_CHECK("test_file_import", name, ti.runnable, "not runnable: %s", ti.unsupported);
    QKC_CASE_CHECK("test_file_import", name, !strcmp(ti.weights, fx->weights), "format %s, expected %s", ti.weights,
                   fx->weights);
    assert_int_equal(ti.n, fx->n);
    assert_int_equal(ti.k, fx->k);
    assert_false(ti.in_place);
    blob = malloc(ti.weights_bytes);
    w = malloc((size_t)(fx->n * fx->k) * sizeof *w);
    assert_non_null(blob);
    assert_non_null(w);
    QKC_CASE_CHECK("test_file_import", name, qkc_file_weights(ctx, file, index, blob, ti.weights_bytes) == QKC_OK,
                   "import: %s", qkc_context_last_error(ctx));
    assert_int_equal(qkc_file_spec(ctx, file, index, NULL, &spec), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, ti.weights_bytes, w, fx->k), QKC_OK);
    for (int64_t i = 0; i < fx->n * fx->k; i++)
        QKC_CASE_CHECK("test_file_import", name, !memcmp(&w[i], &fx->w[i], 4),
                       "W[%lld][%lld] = %.9g, the format's decoder gives %.9g", (long long)(i / fx->k),
                       (long long)(i % fx->k), (double)w[i], (double)fx->w[i]);
    /* The other tensors of the weight are listed as its parts. */
    for (int64_t i = 0; i < fx->st.ntensors; i++) {
        qkc_tensor_info pi;
        int64_t pidx;
        if (!strcmp(fx->st.tensors[i].name, fx->head))
            continue;
        assert_int_equal(qkc_file_find(ctx, file, fx->st.tensors[i].name, &pidx), QKC_OK);
        assert_int_equal(qkc_file_tensor(file, pidx, &pi), QKC_OK);
        assert_false(pi.runnable);
        QKC_CASE_CHECK("test_file_import", name, strstr(pi.unsupported, "part of ") != NULL, "%s: %s",
                       fx->st.tensors[i].name, pi.unsupported);
    }
    /* The module prefix finds the weight too. */
    {
        char prefix[160];
        const char *dot = strrchr(fx->head, '.');
        int64_t pidx = -1;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - fx->head), fx->head);
        assert_int_equal(qkc_file_find(ctx, file, prefix, &pidx), QKC_OK);
        assert_int_equal(pidx, index);
    }
    free(blob);
    free(w);
    qkc_spec_destroy(spec);
    qkc_file_close(file);
}

typedef struct gptq_case {
    int bits;
    int64_t n, k, gs;
    int actorder, v2, v2_meta;
} gptq_case;

static const gptq_case gptq_cases[] = {
    {4, 96, 256, 64, 0, 0, 0},  {4, 96, 256, 64, 1, 0, 0},  {4, 96, 256, 64, 0, 1, 1}, {4, 96, 256, 64, 1, 1, 0},
    {4, 40, 320, 128, 0, 0, 0}, {4, 40, 320, 128, 1, 0, 0}, {4, 24, 128, 0, 0, 0, 0},  {3, 64, 256, 32, 0, 0, 0},
    {3, 64, 256, 32, 1, 1, 1},  {2, 48, 128, 32, 1, 0, 0},  {8, 36, 256, 128, 0, 1, 1},
};

static void test_gptq(void **state)
{
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof gptq_cases / sizeof gptq_cases[0]; i++) {
        const gptq_case *c = &gptq_cases[i];
        qkc_ckpt_fixture fx;
        char name[160];
        snprintf(name, sizeof name, "gptq|bits=%d|n=%lld|k=%lld|g=%lld|act=%d|v2=%d|meta=%d", c->bits, (long long)c->n,
                 (long long)c->k, (long long)c->gs, c->actorder, c->v2, c->v2_meta);
        if (!qkc_case_selected(name))
            continue;
        assert_int_equal(qkc_fixture_gptq(&fx, "model.layers.0.self_attn.q_proj", c->bits, c->n, c->k, c->gs,
                                          c->actorder, c->v2, c->v2_meta, name),
                         0);
        /* v2 without the metadata key needs the option */
        check_fixture(ctx, &fx, name, c->v2 && !c->v2_meta ? 2 : 0);
        qkc_fixture_free(&fx);
    }
    qkc_context_destroy(ctx);
}

/* A v2 file read as v1 decodes differently (the convention matters), and
 * a v2 zero of 0 has no v1 encoding: refused with a message. */
static void test_gptq_v2_zero(void **state)
{
    qkc_context *ctx;
    qkc_ckpt_fixture fx;
    qkc_file *file;
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = 2};
    int64_t index;
    qkc_tensor_info ti;
    uint8_t *blob;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_fixture_gptq(&fx, "m", 4, 32, 128, 32, 0, 1, 0, "gptq-v2-zero"), 0);
    /* zero of group 1, output 5 := 0: nibble 5 of qzeros word 0 of row 1 */
    {
        uint8_t *qz = fx.file.data + fx.st.data_pos[1] + 16 /* row 1: 32·4/32 words of 4 bytes */;
        qz[2] &= 0x0F;
    }
    assert_int_equal(qkc_file_open_memory(ctx, fx.file.data, fx.file.len, &fo, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, "m", &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    blob = malloc(ti.weights_bytes);
    assert_int_equal(qkc_file_weights(ctx, file, index, blob, ti.weights_bytes), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "GPTQ v2 zero 0 (group 1, output 5)"));
    free(blob);
    qkc_file_close(file);
    qkc_fixture_free(&fx);
    qkc_context_destroy(ctx);
}

static void test_awq(void **state)
{
    static const int64_t cases[][3] = {{64, 256, 64}, {24, 384, 128}, {16, 128, 128}, {8, 64, 32}};
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkc_ckpt_fixture fx;
        char name[96];
        snprintf(name, sizeof name, "awq|n=%lld|k=%lld|g=%lld", (long long)cases[i][0], (long long)cases[i][1],
                 (long long)cases[i][2]);
        if (!qkc_case_selected(name))
            continue;
        assert_int_equal(qkc_fixture_awq(&fx, "model.layers.3.mlp.gate_proj", cases[i][0], cases[i][1], cases[i][2],
                                         name),
                         0);
        check_fixture(ctx, &fx, name, 0);
        qkc_fixture_free(&fx);
    }
    qkc_context_destroy(ctx);
}

static void test_bnb(void **state)
{
    /* n, k, block, dq: 600·512/64 = 4800 blocks → 19 nested runs, the last short */
    static const int64_t cases[][4] = {{8, 256, 64, 0}, {33, 128, 32, 0}, {8, 256, 64, 1}, {600, 512, 64, 1},
                                       {5, 4096, 4096, 1}};
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkc_ckpt_fixture fx;
        char name[96];
        snprintf(name, sizeof name, "bnb|n=%lld|k=%lld|bs=%lld|dq=%lld", (long long)cases[i][0],
                 (long long)cases[i][1], (long long)cases[i][2], (long long)cases[i][3]);
        if (!qkc_case_selected(name))
            continue;
        assert_int_equal(qkc_fixture_bnb(&fx, "model.layers.1.mlp.down_proj", cases[i][0], cases[i][1], cases[i][2],
                                         (int)cases[i][3], name),
                         0);
        check_fixture(ctx, &fx, name, 0);
        qkc_fixture_free(&fx);
    }
    qkc_context_destroy(ctx);
}

/* Dense F16/BF16/F32 safetensors tensors [N, K] run in place; others are
 * listed with why. */
static void test_dense(void **state)
{
    static uint16_t h[6 * 64];
    static float f[3 * 32];
    static int32_t ints[4];
    qkc_st_writer w;
    qkc_bytes out;
    qkc_context *ctx;
    qkc_file *file;
    qkc_tensor_info ti;
    qkc_file_info fi;
    int64_t s1[2] = {6, 64}, s2[2] = {3, 32}, s3[1] = {4}, idx;
    (void)state;
    for (int i = 0; i < 6 * 64; i++)
        h[i] = (uint16_t)(0x3C00 + i);
    qkc_st_init(&w);
    qkc_st_add(&w, "lm_head.weight", "BF16", 2, s1, h, sizeof h);
    qkc_st_add(&w, "proj.weight", "F32", 2, s2, f, sizeof f);
    qkc_st_add(&w, "positions", "I32", 1, s3, ints, sizeof ints);
    qkc_st_meta(&w, "format", "pt");
    assert_int_equal(qkc_st_finish(&w, &out), 0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_string_equal(fi.format, "safetensors");
    assert_int_equal(fi.metadata, 1);
    assert_int_equal(qkc_file_find(ctx, file, "lm_head.weight", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_true(ti.runnable);
    assert_true(ti.in_place);
    assert_string_equal(ti.weights, "w=bf16");
    assert_int_equal(ti.n, 6);
    assert_int_equal(ti.k, 64);
    assert_ptr_equal(ti.data, out.data + w.data_pos[0]);
    assert_memory_equal(ti.data, h, sizeof h);
    assert_int_equal(qkc_file_find(ctx, file, "proj.weight", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_string_equal(ti.weights, "w=f32");
    assert_int_equal(qkc_file_find(ctx, file, "positions", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "I32 tensor"));
    qkc_file_close(file);
    qkc_bytes_free(&out);
    qkc_context_destroy(ctx);
}

/* Regression: a GPTQ module whose parts disagree was looked up by its
 * prefix as "no tensor named 'm'"; the prefix now finds the weight, which
 * says why it does not run, and so does qkc_file_spec. */
static void test_module_that_does_not_run(void **state)
{
    qkc_context *ctx;
    qkc_ckpt_fixture fx;
    qkc_file *file;
    qkc_tensor_info ti;
    qkc_spec *spec = NULL;
    int64_t idx = -1;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_fixture_gptq(&fx, "m", 4, 32, 128, 32, 0, 0, 0, "module-not-run"), 0);
    fx.st.tensors[2].shape[0] = 3; /* scales: one group row too few for qzeros */
    fx.st.tensors[2].bytes = 3 * 32 * 2;
    qkc_bytes_free(&fx.file);
    assert_int_equal(qkc_st_finish(&fx.st, &fx.file), 0);
    assert_int_equal(qkc_file_open_memory(ctx, fx.file.data, fx.file.len, NULL, &file), QKC_OK);
    assert_int_equal(qkc_file_find(ctx, file, "m", &idx), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, idx, &ti), QKC_OK);
    assert_string_equal(ti.name, "m.qweight");
    assert_false(ti.runnable);
    assert_non_null(strstr(ti.unsupported, "disagree on the groups"));
    assert_int_equal(qkc_file_spec(ctx, file, idx, NULL, &spec), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "tensor 'm.qweight' (I32) does not run in qkc: scales"));
    /* a prefix of nothing is still "no tensor" */
    assert_int_equal(qkc_file_find(ctx, file, "n", &idx), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "no tensor named 'n'"));
    qkc_file_close(file);
    qkc_fixture_free(&fx);
    qkc_context_destroy(ctx);
}

/* ------------------------------------------------- sharded checkpoints */

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    FILE *fp;
    assert_true((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}


/* Remove a test's folder of plain files. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        assert_true((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path);
        assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* The fixture's tensors dealt round-robin over `shards` safetensors files
 * (an import's members end up in different shards), and the index that
 * Hugging Face writes beside them: {"metadata": {"total_size": ..},
 * "weight_map": {tensor: shard file}}. */
static void write_sharded(const char *dir, const qkc_ckpt_fixture *fx, int shards)
{
    char index[16384], shard[8][64];
    size_t len = 0;
    len += (size_t)snprintf(index + len, sizeof index - len, "{\"metadata\": {\"total_size\": %zu}, \"weight_map\": {",
                            fx->file.len);
    for (int s = 0; s < shards; s++) {
        qkc_st_writer w;
        qkc_bytes b = {0};
        snprintf(shard[s], sizeof shard[s], "model-%05d-of-%05d.safetensors", s + 1, shards);
        qkc_st_init(&w);
        for (int i = s; i < fx->st.ntensors; i += shards) {
            const qkc_st_tensor *t = &fx->st.tensors[i];
            assert_int_equal(qkc_st_add(&w, t->name, t->dtype, t->n_dims, t->shape, t->data, t->bytes), 0);
            len += (size_t)snprintf(index + len, sizeof index - len, "%s\"%s\": \"%s\"", len && index[len - 1] == '{' ? "" : ", ",
                                    t->name, shard[s]);
        }
        for (int m = 0; m < fx->st.nmeta; m++)
            qkc_st_meta(&w, fx->st.meta_key[m], fx->st.meta_value[m]);
        assert_int_equal(qkc_st_finish(&w, &b), 0);
        write_file(dir, shard[s], b.data, b.len);
        qkc_bytes_free(&b);
    }
    snprintf(index + len, sizeof index - len, "}}");
    write_text(dir, "model.safetensors.index.json", index);
}

/* A checkpoint split over shards imports bit for bit as the single file
 * does, whichever shard each member sits in. */
static void test_sharded(void **state)
{
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (int c = 0; c < 3; c++) {
        qkc_ckpt_fixture fx;
        char dir[] = "/tmp/qkc-shards-XXXXXX", path[512];
        qkc_file *one = NULL, *split = NULL;
        qkc_tensor_info t1, t2;
        qkc_file_info info;
        int64_t i1, i2;
        uint8_t *b1, *b2;
        const char *what = c == 0 ? "gptq" : c == 1 ? "bnb" : "awq";
        if (c == 0)
            assert_int_equal(qkc_fixture_gptq(&fx, "model.layers.3.mlp.up_proj", 4, 96, 256, 64, 1, 0, 0, "shard"), 0);
        else if (c == 1)
            assert_int_equal(qkc_fixture_bnb(&fx, "model.layers.3.mlp.up_proj", 64, 256, 64, 1, "shard"), 0);
        else
            assert_int_equal(qkc_fixture_awq(&fx, "model.layers.3.mlp.up_proj", 64, 256, 64, "shard"), 0);
        assert_non_null(mkdtemp(dir));
        write_sharded(dir, &fx, c == 1 ? 3 : 2);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        assert_int_equal(qkc_file_open_memory(ctx, fx.file.data, fx.file.len, NULL, &one), QKC_OK);
        if (qkc_file_open(ctx, path, NULL, &split) != QKC_OK)
            fail_msg("%s: %s", what, qkc_context_last_error(ctx));
        assert_int_equal(qkc_file_query(split, &info), QKC_OK);
        assert_string_equal(info.format, "safetensors");
        assert_int_equal(info.tensors, fx.st.ntensors);
        assert_int_equal(qkc_file_find(ctx, one, fx.head, &i1), QKC_OK);
        assert_int_equal(qkc_file_find(ctx, split, fx.head, &i2), QKC_OK);
        {
            /* a misspelt name gets the closest names */
            char typo[200], want[220];
            int64_t none = -1;
            snprintf(typo, sizeof typo, "%sx", fx.head);
            snprintf(want, sizeof want, "did you mean '%s'", fx.head);
            assert_int_equal(qkc_file_find(ctx, split, typo, &none), QKC_ERR_INVALID_ARGUMENT);
            if (!strstr(qkc_context_last_error(ctx), want))
                fail_msg("%s: %s", what, qkc_context_last_error(ctx));
        }
        assert_int_equal(qkc_file_tensor(one, i1, &t1), QKC_OK);
        assert_int_equal(qkc_file_tensor(split, i2, &t2), QKC_OK);
        if (!t2.runnable)
            fail_msg("%s: not runnable when sharded: %s", what, t2.unsupported);
        assert_string_equal(t2.weights, t1.weights);
        assert_int_equal(t2.weights_bytes, t1.weights_bytes);
        b1 = malloc(t1.weights_bytes);
        b2 = malloc(t2.weights_bytes);
        assert_non_null(b1);
        assert_non_null(b2);
        assert_int_equal(qkc_file_weights(ctx, one, i1, b1, t1.weights_bytes), QKC_OK);
        assert_int_equal(qkc_file_weights(ctx, split, i2, b2, t2.weights_bytes), QKC_OK);
        if (memcmp(b1, b2, t1.weights_bytes))
            fail_msg("%s: the sharded import differs from the single file's", what);
        /* every tensor's bytes are its own shard's */
        for (int64_t i = 0; i < fx.st.ntensors; i++) {
            qkc_tensor_info ti;
            int64_t idx;
            assert_int_equal(qkc_file_find(ctx, split, fx.st.tensors[i].name, &idx), QKC_OK);
            assert_int_equal(qkc_file_tensor(split, idx, &ti), QKC_OK);
            assert_int_equal(ti.bytes, fx.st.tensors[i].bytes);
            if (memcmp(ti.data, fx.st.tensors[i].data, ti.bytes))
                fail_msg("%s: tensor %s: the bytes differ", what, fx.st.tensors[i].name);
        }
        free(b1);
        free(b2);
        qkc_file_close(one);
        qkc_file_close(split);
        qkc_fixture_free(&fx);
        if (getenv("QKC_KEEP_SHARDS"))
            print_message("%s: kept %s\n", what, dir);
        else
            remove_dir(dir);
    }
    qkc_context_destroy(ctx);
}

/* A bad index or a shard that disagrees with it: a clear error, nothing
 * opened. */
static void test_sharded_malformed(void **state)
{
    static const struct {
        const char *index, *expect;
    } cases[] = {
        {"[1, 2]", "not a JSON object"},
        {"{\"weight_map\": ", "safetensors index"},
        {"{\"metadata\": {}}", "no \"weight_map\""},
        {"{\"weight_map\": {}}", "no \"weight_map\""},
        {"{\"weight_map\": {\"a.weight\": 3}}", "is not the file name of a shard"},
        {"{\"weight_map\": {\"a.weight\": \"../a.safetensors\"}}", "is not the file name of a shard"},
        {"{\"weight_map\": {\"a.weight\": \"..\"}}", "is not the file name of a shard"},
        {"{\"weight_map\": {\"a.weight\": \"missing.safetensors\"}}", "missing.safetensors: cannot open"},
        /* c.safetensors holds a.weight too */
        {"{\"weight_map\": {\"c.weight\": \"c.safetensors\"}}", "is in c.safetensors but the index does not list it"},
        {"{\"weight_map\": {\"a.weight\": \"a.safetensors\", \"b.weight\": \"a.safetensors\"}}", "is not in a.safetensors"},
        {"{\"weight_map\": {\"a.weight\": \"a.safetensors\", \"a.weight\": \"a.safetensors\"}}", "duplicate"},
        /* the same tensor name in two shards */
        {"{\"weight_map\": {\"a.weight\": \"a.safetensors\", \"b.weight\": \"b.safetensors\", \"c.weight\": "
         "\"c.safetensors\"}}",
         "'a.weight' is in c.safetensors but the index names a.safetensors"},
        {"{\"weight_map\": {\"a.weight\": \"a.safetensors\", \"b.weight\": \"notst.safetensors\"}}", "notst"},
    };
    char dir[] = "/tmp/qkc-badshards-XXXXXX", path[512];
    qkc_context *ctx;
    uint16_t h[4] = {0x3c00, 0x3c00, 0x3c00, 0x3c00};
    int64_t shape[2] = {2, 2};
    (void)state;
    assert_non_null(mkdtemp(dir));
    /* a.safetensors: a.weight; b.safetensors: b.weight; c.safetensors: a
     * second a.weight (and c.weight) */
    for (int s = 0; s < 3; s++) {
        qkc_st_writer w;
        qkc_bytes b = {0};
        char name[32];
        qkc_st_init(&w);
        snprintf(name, sizeof name, "%c.weight", "aba"[s]);
        assert_int_equal(qkc_st_add(&w, name, "F16", 2, shape, h, sizeof h), 0);
        if (s == 2)
            assert_int_equal(qkc_st_add(&w, "c.weight", "F16", 2, shape, h, sizeof h), 0);
        assert_int_equal(qkc_st_finish(&w, &b), 0);
        snprintf(name, sizeof name, "%c.safetensors", "abc"[s]);
        write_file(dir, name, b.data, b.len);
        qkc_bytes_free(&b);
    }
    write_text(dir, "notst.safetensors", "GGUF but not really");
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkc_file *f = (qkc_file *)1;
        write_text(dir, "model.safetensors.index.json", cases[i].index);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (qkc_file_open(ctx, path, NULL, &f) == QKC_OK)
            fail_msg("index %s: opened", cases[i].index);
        assert_null(f);
        if (!strstr(qkc_context_last_error(ctx), cases[i].expect))
            fail_msg("index %s: message '%s' does not say '%s'", cases[i].index, qkc_context_last_error(ctx),
                     cases[i].expect);
    }
    /* the same index runs when it lists every tensor where it is */
    {
        qkc_file *f = NULL;
        write_text(dir, "model.safetensors.index.json",
                   "{\"weight_map\": {\"a.weight\": \"a.safetensors\", \"b.weight\": \"b.safetensors\"}}");
        if (qkc_file_open(ctx, path, NULL, &f) != QKC_OK)
            fail_msg("good index: %s", qkc_context_last_error(ctx));
        qkc_file_close(f);
    }
    remove_dir(dir);
    qkc_context_destroy(ctx);
}

/* Tensor `index` imported and dequantized: W[n][k], malloc'd. */
static float *import_dequantized(qkc_context *ctx, qkc_file *file, int64_t index)
{
    qkc_tensor_info ti;
    qkc_spec *spec = NULL;
    void *blob;
    float *w;
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    blob = malloc(ti.weights_bytes);
    w = malloc((size_t)(ti.n * ti.k) * sizeof *w);
    assert_true(blob && w);
    assert_int_equal(qkc_file_weights(ctx, file, index, blob, ti.weights_bytes), QKC_OK);
    assert_int_equal(qkc_file_spec(ctx, file, index, NULL, &spec), QKC_OK);
    assert_int_equal(qkc_dequantize(ctx, spec, blob, ti.weights_bytes, w, ti.k), QKC_OK);
    qkc_spec_destroy(spec);
    free(blob);
    return w;
}

/* FP8 weights with their scales as Hugging Face checkpoints store them:
 * per tensor, per output channel, and DeepSeek-V3's 128 x 128 blocks
 * (weight_scale_inv, N and K off the block): the imported blob dequantizes
 * to decode(code) x scale in f32 exactly. */
static void test_fp8(void **state)
{
    static const struct {
        const char *dtype, *scale_name, *scale_dtype, *weights;
        int64_t n, k, s0, s1;
        int s_dims;
    } cases[] = {
        {"F8_E4M3", "weight_scale", "F32", "w=fp8e4m3 group=tensor scale=f32", 40, 96, 1, 0, 1},
        {"F8_E4M3", "weight_scale", "F32", "w=fp8e4m3 group=tensor scale=f32", 40, 96, 0, 0, 0},
        {"F8_E5M2", "weight_scale", "BF16", "w=fp8e5m2 group=channel scale=bf16", 40, 96, 40, 1, 2},
        {"F8_E4M3", "weight_scale", "F32", "w=fp8e4m3 group=channel scale=f32", 40, 96, 40, 0, 1},
        {"F8_E4M3", "weight_scale_inv", "F32", "w=fp8e4m3 group=128 scale=f32", 200, 300, 2, 3, 2},
        {"F8_E4M3", "weight_scale_inv", "BF16", "w=fp8e4m3 group=128 scale=bf16", 128, 256, 1, 2, 2},
        /* refused, with the reason */
        {"F8_E4M3", "weight_scale_inv", "F32", "is no block grid", 200, 300, 3, 3, 2},
        {"F8_E4M3", "weight_scale", "I32", "FP8 scales are F32 or BF16", 40, 96, 1, 0, 1},
        {"F8_E4M3", "weight_scale", "F32", "fits neither", 40, 96, 7, 0, 1},
    };
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n = cases[c].n, k = cases[c].k;
        int e5 = !strcmp(cases[c].dtype, "F8_E5M2"), bf = !strcmp(cases[c].scale_dtype, "BF16");
        int64_t ns = cases[c].s_dims == 0 ? 1 : cases[c].s0 * (cases[c].s_dims == 2 ? cases[c].s1 : 1);
        int64_t wshape[2] = {n, k}, sshape[2] = {cases[c].s0, cases[c].s1}, one = 1, index;
        size_t es = bf ? 2 : 4;
        uint8_t *codes = malloc((size_t)(n * k)), *scales = malloc((size_t)ns * es);
        float in_scale = 0.5f, *w;
        char sname[96];
        qkc_st_writer sw;
        qkc_bytes out = {0};
        qkc_file *file = NULL;
        qkc_tensor_info ti;
        qkc_rng r = qkc_rng_from_name(cases[c].weights);
        assert_true(codes && scales);
        for (int64_t i = 0; i < n * k; i++) {
            uint8_t v = (uint8_t)(qkc_rng_u64(&r) >> 24);
            /* finite codes: E4M3 NaN is S.1111.111, E5M2 NaN/Inf S.11111.xx */
            if (e5 ? (v & 0x7c) == 0x7c : (v & 0x7f) == 0x7f)
                v ^= 0x40;
            codes[i] = v;
        }
        for (int64_t i = 0; i < ns; i++) {
            float s = 0.001f + (float)qkc_rng_below(&r, 1000) * 1e-5f;
            if (bf) {
                uint16_t h = (uint16_t)(qkc_f32_bits(s) >> 16);
                memcpy(scales + i * 2, &h, 2);
            } else {
                memcpy(scales + i * 4, &s, 4);
            }
        }
        qkc_st_init(&sw);
        assert_int_equal(qkc_st_add(&sw, "model.layers.1.mlp.gate_proj.weight", cases[c].dtype, 2, wshape, codes,
                                    (size_t)(n * k)),
                         0);
        snprintf(sname, sizeof sname, "model.layers.1.mlp.gate_proj.%s", cases[c].scale_name);
        assert_int_equal(qkc_st_add(&sw, sname, cases[c].scale_dtype, cases[c].s_dims, sshape, scales, (size_t)ns * es),
                         0);
        assert_int_equal(qkc_st_add(&sw, "model.layers.1.mlp.gate_proj.input_scale", "F32", 0, &one, &in_scale, 4),
                         0);
        assert_int_equal(qkc_st_finish(&sw, &out), 0);
        if (qkc_file_open_memory(ctx, out.data, out.len, NULL, &file) != QKC_OK)
            fail_msg("case %zu: %s", c, qkc_context_last_error(ctx));
        assert_int_equal(qkc_file_find(ctx, file, "model.layers.1.mlp.gate_proj", &index), QKC_OK);
        assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
        if (strncmp(cases[c].weights, "w=", 2)) {
            if (ti.runnable || !strstr(ti.unsupported, cases[c].weights))
                fail_msg("case %zu: runnable %d, '%s', expected the reason '%s'", c, ti.runnable, ti.unsupported,
                         cases[c].weights);
        } else {
            int64_t pi;
            qkc_tensor_info part;
            if (!ti.runnable || strcmp(ti.weights, cases[c].weights))
                fail_msg("case %zu: '%s' (%s), expected %s", c, ti.weights, ti.unsupported, cases[c].weights);
            assert_false(ti.in_place);
            assert_int_equal(qkc_file_find(ctx, file, "model.layers.1.mlp.gate_proj.input_scale", &pi), QKC_OK);
            assert_int_equal(qkc_file_tensor(file, pi, &part), QKC_OK);
            assert_non_null(strstr(part.unsupported, "part of model.layers.1.mlp.gate_proj.weight"));
            w = import_dequantized(ctx, file, index);
            for (int64_t row = 0; row < n; row++)
                for (int64_t col = 0; col < k; col++) {
                    int64_t si = cases[c].s_dims == 2 && cases[c].s1 > 1 ? (row / 128) * cases[c].s1 + col / 128
                                 : ns == 1                               ? 0
                                                                         : row;
                    float s, want;
                    if (bf) {
                        uint16_t h;
                        memcpy(&h, scales + si * 2, 2);
                        s = qkc_bf16_to_f32(h);
                    } else {
                        memcpy(&s, scales + si * 4, 4);
                    }
                    want = qkc_dtype_decode(e5 ? QKC_DTYPE_FP8E5M2 : QKC_DTYPE_FP8E4M3, codes[row * k + col]) * s;
                    if (memcmp(&want, &w[row * k + col], 4))
                        fail_msg("case %zu: W[%lld][%lld] = %.9g, decode x scale = %.9g", c, (long long)row,
                                 (long long)col, (double)w[row * k + col], (double)want);
                }
            free(w);
        }
        qkc_file_close(file);
        qkc_bytes_free(&out);
        free(codes);
        free(scales);
    }
    qkc_context_destroy(ctx);
}

/* compressed-tensors pack-quantized checkpoints, packed here by the
 * format's published rules (codes q + 2^(b-1), f = 32/b to an int32 word,
 * element k at bits b·(k mod f) of word k/f, rows padded to whole words;
 * zero points packed along N): the import dequantizes to (q − zp)·s in f32
 * exactly, symmetric or not, 4 and 8 bits, group and channel scales, K off
 * the word. */
static void test_compressed_tensors(void **state)
{
    static const struct {
        int bits, zp;
        int64_t n, k, groups;
        const char *sdtype, *weights;
    } cases[] = {
        {4, 0, 40, 256, 2, "BF16", "w=int4 group=128 scale=bf16"},
        {4, 1, 37, 300, 3, "F16", "w=uint4 group=100 scale=f16 zero=int"},
        {8, 0, 24, 130, 1, "F32", "w=int8 group=channel scale=f32"},
        {8, 1, 9, 64, 2, "BF16", "w=uint8 group=32 scale=bf16 zero=int"},
    };
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int bits = cases[c].bits, pf = 32 / bits, off = 1 << (bits - 1);
        const int64_t n = cases[c].n, k = cases[c].k, G = cases[c].groups, words = (k + pf - 1) / pf;
        const int64_t zrows = (n + pf - 1) / pf;
        int8_t *q = malloc((size_t)(n * k)), *zp = malloc((size_t)(n * G));
        uint32_t *packed = calloc((size_t)(n * words), 4), *zpacked = calloc((size_t)(zrows * G), 4);
        float *s = malloc((size_t)(n * G) * sizeof *s), *w;
        uint16_t *s16 = malloc((size_t)(n * G) * 2);
        int32_t shape[2] = {(int32_t)n, (int32_t)k};
        int64_t pshape[2] = {n, words}, sshape[2] = {n, G}, zshape[2] = {zrows, G}, two = 2, index;
        int f16 = !strcmp(cases[c].sdtype, "F16"), bf = !strcmp(cases[c].sdtype, "BF16");
        qkc_rng r = qkc_rng_from_name(cases[c].weights);
        qkc_st_writer sw;
        qkc_bytes out = {0};
        qkc_file *file = NULL;
        qkc_tensor_info ti;
        assert_true(q && zp && packed && zpacked && s && s16);
        for (int64_t i = 0; i < n * k; i++) {
            q[i] = (int8_t)((int)qkc_rng_below(&r, (uint64_t)(2 * off)) - off);
            packed[(i / k) * words + (i % k) / pf] |= (uint32_t)(q[i] + off) << (bits * ((i % k) % pf));
        }
        for (int64_t i = 0; i < n * G; i++) {
            float v = qkc_rng_uniform(&r, 0.001f, 0.02f);
            zp[i] = cases[c].zp ? (int8_t)((int)qkc_rng_below(&r, (uint64_t)(2 * off)) - off) : 0;
            zpacked[(i / G / pf) * G + i % G] |= (uint32_t)(zp[i] + off) << (bits * ((i / G) % pf));
            s16[i] = f16 ? qkc_f32_to_f16(v) : (uint16_t)(qkc_f32_bits(v) >> 16);
            s[i] = f16 ? qkc_f16_to_f32(s16[i]) : bf ? qkc_bf16_to_f32(s16[i]) : v;
        }
        qkc_st_init(&sw);
        assert_int_equal(qkc_st_add(&sw, "model.layers.2.self_attn.o_proj.weight_packed", "I32", 2, pshape, packed,
                                    (size_t)(n * words) * 4),
                         0);
        assert_int_equal(qkc_st_add(&sw, "model.layers.2.self_attn.o_proj.weight_scale", cases[c].sdtype, 2, sshape,
                                    f16 || bf ? (const void *)s16 : (const void *)s,
                                    (size_t)(n * G) * (f16 || bf ? 2 : 4)),
                         0);
        assert_int_equal(qkc_st_add(&sw, "model.layers.2.self_attn.o_proj.weight_shape", "I32", 1, &two, shape, 8), 0);
        if (cases[c].zp)
            assert_int_equal(qkc_st_add(&sw, "model.layers.2.self_attn.o_proj.weight_zero_point", "I32", 2, zshape,
                                        zpacked, (size_t)(zrows * G) * 4),
                             0);
        assert_int_equal(qkc_st_finish(&sw, &out), 0);
        assert_int_equal(qkc_file_open_memory(ctx, out.data, out.len, NULL, &file), QKC_OK);
        assert_int_equal(qkc_file_find(ctx, file, "model.layers.2.self_attn.o_proj.weight_packed", &index), QKC_OK);
        assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
        if (!ti.runnable || strcmp(ti.weights, cases[c].weights))
            fail_msg("case %zu: '%s' (%s), expected %s", c, ti.weights, ti.unsupported, cases[c].weights);
        assert_int_equal(ti.n, n);
        assert_int_equal(ti.k, k);
        w = import_dequantized(ctx, file, index);
        for (int64_t i = 0; i < n * k; i++) {
            int64_t g = (i % k) / (k / G);
            float want = (float)(q[i] - zp[(i / k) * G + g]) * s[(i / k) * G + g];
            if (memcmp(&want, &w[i], 4))
                fail_msg("case %zu: W[%lld][%lld] = %.9g, (q - zp)·s = %.9g", c, (long long)(i / k),
                         (long long)(i % k), (double)w[i], (double)want);
        }
        free(w), free(q), free(zp), free(packed), free(zpacked), free(s), free(s16);
        qkc_file_close(file);
        qkc_bytes_free(&out);
    }
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq), cmocka_unit_test(test_gptq_v2_zero), cmocka_unit_test(test_awq),
        cmocka_unit_test(test_bnb),  cmocka_unit_test(test_dense), cmocka_unit_test(test_module_that_does_not_run),
        cmocka_unit_test(test_sharded), cmocka_unit_test(test_sharded_malformed),
        cmocka_unit_test(test_fp8),
        cmocka_unit_test(test_compressed_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
