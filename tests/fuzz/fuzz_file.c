/*
 * libFuzzer harness: the checkpoint readers (GGUF and safetensors, with the
 * GPTQ, AWQ and bitsandbytes importers) on arbitrary bytes, through the
 * public API as an application uses it: open from memory, list metadata
 * and tensors, and for every tensor qkc says it runs, build its spec,
 * import its weight blob and dequantize it. A crash, a hang, a sanitizer
 * report, a failure without a message, or a runnable tensor whose blob or
 * dequantization then fails, is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Work on tensors up to this size (the fuzzer's inputs are small anyway). */
#define MAX_WEIGHTS (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qkc_context *ctx;
    qkc_file *file = NULL;
    qkc_file_info fi;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    /* both GPTQ conventions, chosen by the first byte */
    qkc_file_options fo = {sizeof fo, size ? data[0] % 3 : 0};
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return 0;
    if (qkc_file_open_memory(ctx, data, size, &fo, &file) != QKC_OK) {
        if (!qkc_context_last_error(ctx)[0])
            abort(); /* every refusal explains itself */
        qkc_context_destroy(ctx);
        return 0;
    }
    if (qkc_file_query(file, &fi) != QKC_OK)
        abort();
    for (int64_t i = 0; i < fi.metadata; i++) {
        qkc_file_meta m;
        if (qkc_file_metadata(file, i, &m) != QKC_OK || !m.key || !m.value)
            abort();
    }
    for (int64_t i = 0; i < fi.tensors; i++) {
        qkc_tensor_info t;
        qkc_spec *spec = NULL;
        int64_t found;
        if (qkc_file_tensor(file, i, &t) != QKC_OK || !t.name)
            abort();
        if (t.bytes && (const uint8_t *)t.data + t.bytes > data + size)
            abort(); /* data outside the file */
        if (qkc_file_find(ctx, file, t.name, &found) != QKC_OK)
            abort();
        if (!t.runnable || t.weights_bytes > MAX_WEIGHTS || t.n * t.k > (int64_t)MAX_WEIGHTS)
            continue;
        if (qkc_file_spec(ctx, file, i, NULL, &spec) != QKC_OK)
            abort(); /* a runnable tensor has a spec */
        {
            void *blob = malloc(t.weights_bytes ? t.weights_bytes : 1);
            float *w = malloc((size_t)(t.n * t.k) * sizeof *w + 1);
            qkc_status st = qkc_file_weights(ctx, file, i, blob, t.weights_bytes);
            /* a GPTQ v2 zero of 0 is the one documented refusal of an import */
            if (st != QKC_OK && st != QKC_ERR_UNSUPPORTED)
                abort();
            if (st == QKC_OK && qkc_dequantize(ctx, spec, blob, t.weights_bytes, w, t.k) != QKC_OK &&
                !qkc_context_last_error(ctx)[0])
                abort();
            free(blob);
            free(w);
        }
        qkc_spec_destroy(spec);
    }
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    return 0;
}
