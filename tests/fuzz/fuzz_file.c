/*
 * libFuzzer harness: the checkpoint readers (GGUF and safetensors, with the
 * GPTQ, AWQ and bitsandbytes importers) on arbitrary bytes, through the
 * public API as an application uses it: open from memory, list metadata
 * and tensors, and for every tensor qkc says it runs, build its spec,
 * import its weight blob and dequantize it (qkc_fuzz_check_file). A crash,
 * a hang, a sanitizer report, a failure without a message, or a runnable
 * tensor whose blob or dequantization then fails, is a bug.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common.h"
#include "qkc/qkc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Work on tensors up to this size (the fuzzer's inputs are small anyway). */
#define MAX_WEIGHTS (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qkc_context *ctx;
    qkc_file *file = NULL;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    /* both GPTQ conventions, chosen by the first byte */
    qkc_file_options fo = {.struct_size = sizeof fo, .gptq_version = size ? data[0] % 3 : 0};
    if (qkc_context_create(&co, &ctx) != QKC_OK)
        return 0;
    if (qkc_file_open_memory(ctx, data, size, &fo, &file) != QKC_OK) {
        if (!qkc_context_last_error(ctx)[0])
            qkc_fuzz_bug("a refusal without a message"); /* every refusal explains itself */
        qkc_context_destroy(ctx);
        return 0;
    }
    qkc_fuzz_check_file(ctx, file, data, size, MAX_WEIGHTS, 0);
    qkc_file_close(file);
    qkc_context_destroy(ctx);
    return 0;
}
