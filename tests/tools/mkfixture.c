/*
 * mkfixture KIND FILE: write a checkpoint file for the command-line tests
 * (tests/tools/cli_files.sh). Exit 0, or 1 with a message.
 *
 *   plain        GGUF: tensor "w", Q8_0 [8, 64] (runnable), seeded weights
 *   escapes      GGUF whose names and metadata hold terminal escapes, C1
 *                controls, a bidirectional override, invalid UTF-8, a
 *                newline and a key with a NUL byte inside
 *   gptq-broken  safetensors GPTQ module "m" whose scales and qzeros
 *                disagree on the groups (listed, does not run)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "util/file_fixtures.h"
#include "util/file_writer.h"

/* A string KV whose key is `klen` bytes (may hold NULs). */
static void kv_str_bytes(qkc_gguf_writer *w, const char *key, size_t klen, const char *value)
{
    qkc_bytes_u64(&w->kv, klen);
    qkc_bytes_put(&w->kv, key, klen);
    qkc_bytes_u32(&w->kv, QKC_GGUF_STRING);
    qkc_bytes_gguf_str(&w->kv, value);
    w->nkv++;
}

static int write_gguf(const char *kind, const char *path)
{
    qkc_context *ctx;
    qkc_gguf_writer w;
    qkc_bytes out;
    void *blob = NULL;
    size_t bytes = 0;
    uint64_t dims[2] = {64, 8};
    int rc = 1;
    if (qkc_context_create(NULL, &ctx) != QKC_OK)
        return 1;
    if (qkc_fixture_blob(ctx, "w=q8_0", 8, 64, kind, &blob, &bytes) != 0) {
        fprintf(stderr, "mkfixture: %s\n", qkc_context_last_error(ctx));
        goto done;
    }
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    if (!strcmp(kind, "escapes")) {
        static const char nul_key[] = "a\0hidden";
        qkc_gguf_kv_str(&w, "general.name", "red\x1b[31mtext\x9b");
        qkc_gguf_kv_str(&w, "x.lines", "line1\nline2");
        kv_str_bytes(&w, nul_key, sizeof nul_key - 1, "shown");
        qkc_gguf_add_tensor(&w, "evil\x1b]0;pwned\x07.w", 8, 2, dims, blob, bytes);
        qkc_gguf_add_tensor(&w, "bidi\xe2\x80\xaerevo.w", 8, 2, dims, blob, bytes);
        qkc_gguf_add_tensor(&w, "c1\xc2\x9b.w", 8, 2, dims, blob, bytes);
        qkc_gguf_add_tensor(&w, "raw\x9b.w", 8, 2, dims, blob, bytes);
    } else {
        qkc_gguf_add_tensor(&w, "w", 8, 2, dims, blob, bytes);
    }
    if (qkc_gguf_finish(&w, &out) != 0 || qkc_bytes_save(&out, path) != 0)
        fprintf(stderr, "mkfixture: cannot write %s\n", path);
    else
        rc = 0;
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
done:
    free(blob);
    qkc_context_destroy(ctx);
    return rc;
}

static int write_gptq_broken(const char *path)
{
    qkc_ckpt_fixture fx;
    int rc = 1;
    if (qkc_fixture_gptq(&fx, "m", 4, 32, 128, 32, 0, 0, 0, "mkfixture") != 0)
        return 1;
    fx.st.tensors[2].shape[0] = 3; /* scales: a group row too few */
    fx.st.tensors[2].bytes = 3 * 32 * 2;
    qkc_bytes_free(&fx.file);
    if (qkc_st_finish(&fx.st, &fx.file) == 0 && qkc_bytes_save(&fx.file, path) == 0)
        rc = 0;
    else
        fprintf(stderr, "mkfixture: cannot write %s\n", path);
    qkc_fixture_free(&fx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mkfixture plain|escapes|gptq-broken FILE\n");
        return 2;
    }
    if (!strcmp(argv[1], "plain") || !strcmp(argv[1], "escapes"))
        return write_gguf(argv[1], argv[2]);
    if (!strcmp(argv[1], "gptq-broken"))
        return write_gptq_broken(argv[2]);
    fprintf(stderr, "mkfixture: unknown kind '%s'\n", argv[1]);
    return 2;
}
