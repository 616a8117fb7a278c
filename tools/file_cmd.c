/*
 * qkc inspect FILE, qkc run SPEC|auto --weights FILE:TENSOR ...: the
 * subcommands over checkpoint files (GGUF, safetensors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "tools/tool.h"

static int has_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

static int parse_gptq(const char *s, int *out)
{
    if (!strcmp(s, "v1") || !strcmp(s, "1"))
        return *out = 1, 1;
    if (!strcmp(s, "v2") || !strcmp(s, "2"))
        return *out = 2, 1;
    if (!strcmp(s, "auto"))
        return *out = 0, 1;
    return 0;
}

/* -------------------------------------------------------------- inspect */

/* Everything inspect and run print from a file (names, metadata, reasons
 * that quote them, messages) goes through qkc_escape: a tensor named
 * "\x1b]0;...\x07" must not retitle the terminal. */
#define ESC(buf, s) qkc_escape(buf, sizeof buf, (s), strlen(s))

int qkc_cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int metadata = 0, gptq = 0, runnable = 0, no_mmap = 0;
    qkc_file_options fo = {.struct_size = sizeof fo};
    qkc_context *ctx = NULL;
    qkc_file *file = NULL;
    qkc_file_info fi;
    char e1[1200], e2[1200], e3[400];
    int rc = 1;
    if (has_help(argc, argv)) {
        qkc_print_help("inspect");
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--metadata")) {
            metadata = 1;
        } else if (!strcmp(argv[i], "--no-mmap")) {
            no_mmap = 1;
        } else if (!strcmp(argv[i], "--gptq") && i + 1 < argc) {
            if (!parse_gptq(argv[++i], &gptq)) {
                fprintf(stderr, "error: --gptq takes v1, v2 or auto\n");
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: unknown option %s (see qkc inspect --help)\n", ESC(e1, argv[i]));
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "error: qkc inspect takes one file\n");
            return 2;
        }
    }
    if (!path) {
        qkc_print_help("inspect");
        return 2;
    }
    fo.gptq_version = gptq;
    if (no_mmap)
        fo.load = QKC_FILE_LOAD_READ;
    if (qkc_context_create(NULL, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    if (qkc_file_open(ctx, path, &fo, &file) != QKC_OK || qkc_file_query(file, &fi) != QKC_OK) {
        qkc_report("error: ", qkc_context_last_error(ctx));
        goto done;
    }
    printf("%s: %s", ESC(e1, path), fi.format);
    if (fi.version)
        printf(" v%d, alignment %llu", fi.version, (unsigned long long)fi.alignment);
    printf(", %zu bytes, %lld tensors, %lld metadata entries\n", fi.bytes, (long long)fi.tensors,
           (long long)fi.metadata);
    if (metadata)
        for (int64_t i = 0; i < fi.metadata; i++) {
            qkc_file_meta m;
            size_t kb, vb;
            if (qkc_file_metadata(file, i, &m) != QKC_OK || qkc_file_metadata_bytes(file, i, &kb, &vb) != QKC_OK) {
                qkc_report("error: ", qkc_context_last_error(ctx));
                goto done;
            }
            /* by length: a GGUF key or string may hold NUL bytes */
            printf("  meta %s (%s) = %s%s\n", qkc_escape(e1, sizeof e1, m.key, kb), m.type,
                   qkc_escape(e2, sizeof e2, m.value, vb < 200 ? vb : 200), vb > 200 ? "..." : "");
        }
    for (int64_t i = 0; i < fi.tensors; i++) {
        qkc_tensor_info t;
        char shape[96];
        int len = 0;
        if (qkc_file_tensor(file, i, &t) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto done;
        }
        shape[0] = '\0';
        for (int d = 0; d < t.n_dims && len >= 0 && (size_t)len < sizeof shape; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", d ? ", " : "", (long long)t.shape[d]);
        printf("%-48s %-7s [%s] %zu bytes", ESC(e1, t.name), ESC(e3, t.dtype), shape, t.bytes);
        if (t.runnable) {
            int64_t experts = 1;
            qkc_file_expert(ctx, file, i, 0, NULL, &experts);
            printf("  runs: n=%lld k=%lld %s (%s)", (long long)t.n, (long long)t.k, ESC(e2, t.weights),
                   t.in_place ? "in place" : "imported");
            if (experts > 1)
                printf(" x %lld experts (--expert 0..%lld)", (long long)experts, (long long)experts - 1);
            printf("\n");
            runnable++;
        } else {
            printf("  -- %s\n", ESC(e2, t.unsupported));
        }
    }
    printf("%d of %lld tensors run in qkc\n", runnable, (long long)fi.tensors);
    rc = 0;
done:
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    return rc;
}

/* ------------------------------------------------------------------ run */

static void *read_all(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) != NULL) {
        if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        } else {
            *bytes = (size_t)len;
        }
    }
    fclose(f);
    return buf;
}

int qkc_cmd_run(int argc, char **argv)
{
    const char *weights = NULL, *input = NULL, *output = NULL, *compute = "?";
    char **words = calloc((size_t)argc + 1, sizeof *words), *spec = NULL, *path = NULL, *tensor;
    long long m = 0, expert = -1;
    int nwords = 0, rc = 1, gptq = 0, no_mmap = 0;
    char e1[1200], e2[1200];
    qkc_file_options fo = {.struct_size = sizeof fo};
    qkc_context *ctx = NULL;
    qkc_file *file = NULL;
    qkc_tensor_info t;
    int64_t index;
    float *x = NULL, *y = NULL;
    size_t xbytes = 0;
    if (!words)
        return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            qkc_print_help("run");
            free(words);
            return 0;
        } else if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            weights = argv[++i];
        } else if (!strcmp(argv[i], "--input") && i + 1 < argc) {
            input = argv[++i];
        } else if (!strcmp(argv[i], "--output") && i + 1 < argc) {
            output = argv[++i];
        } else if (!strcmp(argv[i], "--no-mmap")) {
            no_mmap = 1;
        } else if (!strcmp(argv[i], "--m") && i + 1 < argc) {
            if (qkc_parse_int(argv[++i], 1, 1 << 24, &m)) {
                fprintf(stderr, "error: --m takes an integer from 1 to 16777216\n");
                free(words);
                return 2;
            }
        } else if (!strcmp(argv[i], "--expert") && i + 1 < argc) {
            if (qkc_parse_int(argv[++i], 0, INT64_MAX, &expert)) {
                fprintf(stderr, "error: --expert takes an expert's number, from 0\n");
                free(words);
                return 2;
            }
        } else if (!strcmp(argv[i], "--gptq") && i + 1 < argc) {
            if (!parse_gptq(argv[++i], &gptq)) {
                fprintf(stderr, "error: --gptq takes v1, v2 or auto\n");
                free(words);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: unknown option %s (see qkc run --help)\n", ESC(e1, argv[i]));
            free(words);
            return 2;
        } else {
            words[nwords++] = argv[i];
        }
    }
    if (!nwords || !weights || !input || !output) {
        fprintf(stderr, "error: qkc run needs SPEC|auto, --weights FILE:TENSOR, --input X.f32 and --output Y.f32 "
                        "(see qkc run --help)\n");
        free(words);
        return 2;
    }
    if (!(spec = qkc_join_words(nwords, words)))
        goto done;
    path = malloc(strlen(weights) + 1);
    if (!path || qkc_context_create(NULL, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    strcpy(path, weights);
    tensor = strrchr(path, ':');
    if (!tensor || tensor == path || !tensor[1]) {
        fprintf(stderr, "error: --weights takes FILE:TENSOR\n");
        rc = 2;
        goto done;
    }
    *tensor++ = '\0';
    fo.gptq_version = gptq;
    if (no_mmap)
        fo.load = QKC_FILE_LOAD_READ;
    if (qkc_file_open(ctx, path, &fo, &file) != QKC_OK || qkc_file_find(ctx, file, tensor, &index) != QKC_OK ||
        qkc_file_tensor(file, index, &t) != QKC_OK) {
        qkc_report("error: ", qkc_context_last_error(ctx));
        goto done;
    }
    if (!t.runnable) {
        fprintf(stderr, "error: tensor '%s' (%s) does not run in qkc: ", ESC(e1, t.name), ESC(e2, t.dtype));
        qkc_report("", t.unsupported);
        goto done;
    }
    {
        /* the spec that runs ("auto": the tensor's, with its format's
         * default compute), checked for what the f32 files hold */
        qkc_spec *s = NULL;
        qkc_spec_info si;
        if ((strcmp(spec, "auto") ? qkc_spec_parse(ctx, spec, &s)
                                  : qkc_file_spec(ctx, file, index, "a=f32 out=f32", &s)) != QKC_OK) {
            qkc_report(strcmp(spec, "auto") ? "" : "error: ", qkc_context_last_error(ctx));
            goto done;
        }
        if (qkc_spec_query(s, &si) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            qkc_spec_destroy(s);
            goto done;
        }
        compute = si.compute_type; /* a static keyword */
        qkc_spec_destroy(s);
        if (strcmp(si.a_type, "f32") || strcmp(si.out_type, "f32")) {
            fprintf(stderr, "error: qkc run reads and writes f32 files: the spec needs a=f32 out=f32\n");
            goto done;
        }
        if (si.has_bias) {
            fprintf(stderr, "error: qkc run takes no bias file: leave bias=f32 out of the spec\n");
            goto done;
        }
    }
    if (!(x = read_all(input, &xbytes))) {
        fprintf(stderr, "error: cannot read %s\n", ESC(e1, input));
        goto done;
    }
    if (!m)
        m = (long long)(xbytes / ((size_t)t.k * 4));
    if (m < 1 || xbytes != (size_t)m * (size_t)t.k * 4) {
        fprintf(stderr, "error: %s holds %zu bytes; %s needs M x %lld f32 values (%lld bytes per row)%s\n", ESC(e1, input),
                xbytes, ESC(e2, t.name), (long long)t.k, (long long)t.k * 4, m ? " for the given --m" : "");
        goto done;
    }
    if (!(y = malloc((size_t)m * (size_t)t.n * sizeof *y))) {
        fprintf(stderr, "error: out of memory for the output\n");
        goto done;
    }
    {
        qkc_matmul_args args = {x, t.k, NULL, 0, NULL, y, t.n, m};
        FILE *out;
        if ((expert >= 0 ? qkc_file_run_expert(ctx, file, index, expert, spec, &args, NULL, NULL)
                         : qkc_file_run(ctx, file, index, spec, &args, NULL, NULL)) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto done;
        }
        if (!(out = fopen(output, "wb"))) {
            fprintf(stderr, "error: cannot write %s\n", ESC(e1, output));
            goto done;
        }
        rc = fwrite(y, sizeof *y, (size_t)m * (size_t)t.n, out) == (size_t)m * (size_t)t.n ? 0 : 1;
        if (fclose(out) != 0)
            rc = 1;
        if (rc)
            fprintf(stderr, "error: writing %s failed\n", ESC(e1, output));
        else
            fprintf(stderr, "qkc run: %s: m=%lld n=%lld k=%lld %s compute=%s -> %s\n", ESC(e1, t.name), m,
                    (long long)t.n, (long long)t.k, t.weights, compute, ESC(e2, output));
    }
done:
    free(x);
    free(y);
    free(spec);
    free(path);
    free(words);
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    return rc;
}
