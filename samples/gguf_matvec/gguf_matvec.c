/*
 * Run every linear weight of a GGUF (or safetensors) file.
 *
 *   gguf_matvec [FILE]
 *   gguf_matvec --write FILE    (only write the sample file)
 *
 * Opens FILE with qkc_file_open (memory-mapped, validated), and for every
 * tensor qkc can run as a weight matrix: JIT-compiles its kernel, computes
 * y = W x for one activation row with qkc_file_run (the weights are read in
 * place from the mapping when the kernel's layout allows), and checks y
 * against qkc_reference_matmul. Tensors qkc does not run are listed with
 * the reason. Without FILE it first writes a small GGUF file of its own
 * (a q4_0, a q8_0, a q6_k and an f16 weight plus a norm vector) to a
 * temporary file, quantized with qkc_quantize, and uses that.
 *
 * Exits 1 on any error or mismatch.
 *
 * Build outside the tree (see README.md):
 *   cc -std=c11 -O2 gguf_matvec.c -o gguf_matvec $(pkg-config --cflags --libs qkc)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qkc/qkc.h>

/* ------------------------------------------------ a minimal GGUF writer */

static void put(FILE *f, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        fputc((int)((v >> (8 * i)) & 0xFF), f);
}

static void put_str(FILE *f, const char *s)
{
    put(f, strlen(s), 8);
    fwrite(s, 1, strlen(s), f);
}

typedef struct sample_tensor {
    const char *name;
    unsigned ggml_type; /* 2 q4_0, 8 q8_0, 14 q6_k, 1 f16, 0 f32 */
    const char *spec_w; /* the same format in spec text */
    int64_t n, k;       /* n = 0: a 1-D vector of k */
    void *data;
    size_t bytes;
} sample_tensor;

/* GGUF v3: header, one metadata entry, tensor infos, data aligned to 32. */
static int write_gguf(const char *path, sample_tensor *t, int count)
{
    FILE *f = fopen(path, "wb");
    uint64_t off = 0;
    long pos;
    if (!f)
        return -1;
    fwrite("GGUF", 1, 4, f);
    put(f, 3, 4);
    put(f, (uint64_t)count, 8);
    put(f, 1, 8);
    put_str(f, "general.architecture");
    put(f, 8, 4);
    put_str(f, "sample");
    for (int i = 0; i < count; i++) {
        put_str(f, t[i].name);
        put(f, t[i].n ? 2 : 1, 4);
        put(f, (uint64_t)t[i].k, 8); /* ne[0]: the contiguous (input) dimension */
        if (t[i].n)
            put(f, (uint64_t)t[i].n, 8);
        put(f, t[i].ggml_type, 4);
        put(f, off, 8);
        off += (t[i].bytes + 31) / 32 * 32;
    }
    for (pos = ftell(f); pos % 32; pos++)
        fputc(0, f);
    for (int i = 0; i < count; i++) {
        fwrite(t[i].data, 1, t[i].bytes, f);
        for (size_t p = t[i].bytes; p % 32; p++)
            fputc(0, f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

/* Quantize random weights into each tensor's format. */
static int make_sample_file(qkc_context *ctx, const char *path)
{
    sample_tensor t[] = {
        {"blk.0.attn_q.weight", 2, "w=q4_0", 96, 256, NULL, 0},
        {"blk.0.ffn_up.weight", 8, "w=q8_0", 173, 256, NULL, 0},
        {"blk.0.ffn_down.weight", 14, "w=q6_k", 64, 512, NULL, 0},
        {"output.weight", 1, "w=f16", 50, 64, NULL, 0},
        {"blk.0.attn_norm.weight", 0, NULL, 0, 256, NULL, 0},
    };
    int count = (int)(sizeof t / sizeof t[0]), rc = -1;
    uint64_t seed = 42;
    for (int i = 0; i < count; i++) {
        int64_t rows = t[i].n ? t[i].n : 1;
        float *w = malloc((size_t)(rows * t[i].k) * sizeof *w);
        if (!w)
            goto done;
        for (int64_t j = 0; j < rows * t[i].k; j++)
            w[j] = rnd(&seed) * 0.1f;
        if (!t[i].spec_w) { /* the f32 norm vector is stored as it is */
            t[i].data = w;
            t[i].bytes = (size_t)t[i].k * sizeof *w;
            continue;
        }
        {
            char text[128];
            qkc_spec *spec = NULL;
            snprintf(text, sizeof text, "matmul n=%lld k=%lld %s", (long long)t[i].n, (long long)t[i].k, t[i].spec_w);
            if (qkc_spec_parse(ctx, text, &spec) != QKC_OK || qkc_weights_bytes(ctx, spec, &t[i].bytes) != QKC_OK ||
                !(t[i].data = malloc(t[i].bytes)) ||
                qkc_quantize(ctx, spec, w, t[i].k, t[i].data, t[i].bytes) != QKC_OK) {
                fprintf(stderr, "error: %s\n", qkc_context_last_error(ctx));
                qkc_spec_destroy(spec);
                free(w);
                goto done;
            }
            qkc_spec_destroy(spec);
            free(w);
        }
    }
    rc = write_gguf(path, t, count);
done:
    for (int i = 0; i < count; i++)
        free(t[i].data);
    return rc;
}

/* ---------------------------------------------------------- the program */

/* y = W x with the kernel and with the reference; 0 when they agree. */
static int run_tensor(qkc_context *ctx, qkc_file *file, int64_t index, const qkc_tensor_info *ti)
{
    qkc_spec *spec = NULL;
    float *x = malloc((size_t)ti->k * sizeof *x), *y = malloc((size_t)ti->n * sizeof *y),
          *yr = malloc((size_t)ti->n * sizeof *yr);
    void *blob = NULL;
    uint64_t seed = (uint64_t)index + 1;
    double err = 0, ref = 0;
    int rc = 1;
    if (!x || !y || !yr)
        goto done;
    for (int64_t i = 0; i < ti->k; i++)
        x[i] = rnd(&seed);
    {
        qkc_matmul_args args = {x, ti->k, NULL, 0, NULL, y, ti->n, 1};
        if (qkc_file_run(ctx, file, index, "auto", &args, NULL, NULL) != QKC_OK)
            goto fail;
    }
    /* The reference reads the weight blob: the file's bytes in place, or
     * an import (GPTQ, AWQ, NF4) into memory of our own. */
    if (qkc_file_spec(ctx, file, index, NULL, &spec) != QKC_OK)
        goto fail;
    if (!ti->in_place) {
        if (!(blob = malloc(ti->weights_bytes)) ||
            qkc_file_weights(ctx, file, index, blob, ti->weights_bytes) != QKC_OK)
            goto fail;
    }
    {
        qkc_matmul_args args = {x, ti->k, ti->in_place ? ti->data : blob, ti->weights_bytes, NULL, yr, ti->n, 1};
        if (qkc_reference_matmul(ctx, spec, &args) != QKC_OK)
            goto fail;
    }
    for (int64_t i = 0; i < ti->n; i++) {
        err += ((double)y[i] - yr[i]) * ((double)y[i] - yr[i]);
        ref += (double)yr[i] * yr[i];
    }
    rc = ref > 0 ? (err / ref <= 1e-10 ? 0 : 1) : (err == 0 ? 0 : 1);
    printf("  %-28s n=%-6lld k=%-6lld %-28s %-9s nmse %.2e %s\n", ti->name, (long long)ti->n, (long long)ti->k,
           ti->weights, ti->in_place ? "in place" : "imported", ref > 0 ? err / ref : err, rc ? "MISMATCH" : "ok");
    goto done;
fail:
    fprintf(stderr, "error: %s: %s\n", ti->name, qkc_context_last_error(ctx));
done:
    qkc_spec_destroy(spec);
    free(blob);
    free(x), free(y), free(yr);
    return rc;
}

int main(int argc, char **argv)
{
    qkc_context *ctx = NULL;
    qkc_file *file = NULL;
    qkc_file_info fi;
    char tmp[] = "/tmp/qkc_gguf_matvec_XXXXXX";
    const char *path = argc > 1 ? argv[1] : NULL;
    int failures = 0, ran = 0;
    if (qkc_context_create(NULL, &ctx) != QKC_OK)
        return 1;
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        /* only write the sample file (for qkc inspect, qkc run) */
        int rc = make_sample_file(ctx, argv[2]) == 0 ? 0 : 1;
        qkc_context_destroy(ctx);
        return rc;
    }
    if (!path) {
        int fd = mkstemp(tmp);
        if (fd < 0 || close(fd) != 0 || make_sample_file(ctx, tmp) != 0) {
            fprintf(stderr, "error: cannot write the sample file %s\n", tmp);
            qkc_context_destroy(ctx);
            return 1;
        }
        path = tmp;
    }
    if (qkc_file_open(ctx, path, NULL, &file) != QKC_OK) {
        fprintf(stderr, "error: %s\n", qkc_context_last_error(ctx));
        failures = 1;
        goto done;
    }
    qkc_file_query(file, &fi);
    printf("%s: %s, %lld tensors\n", argc > 1 ? path : "(sample file)", fi.format, (long long)fi.tensors);
    for (int64_t i = 0; i < fi.tensors; i++) {
        qkc_tensor_info ti;
        qkc_file_tensor(file, i, &ti);
        if (!ti.runnable) {
            printf("  %-28s skipped: %s\n", ti.name, ti.unsupported);
            continue;
        }
        failures += run_tensor(ctx, file, i, &ti);
        ran++;
    }
    printf("%d weights run, %d mismatches\n", ran, failures);
    if (!ran)
        failures++;
done:
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    if (path == tmp)
        unlink(tmp);
    return failures ? 1 : 0;
}
