/* qkc_file_run: compile the kernel of a file's tensor and run it, reading
 * the file's mapping in place when the kernel layout is the blob itself.
 * Part of libqkc (it compiles). */
#include <stdint.h>
#include <string.h>

#include "core/context.h"
#include "files/file.h"
#include "runtime/kernel.h"
#include "core/spec_object.h"

static qkc_status file_run(qkc_context *ctx, const qkc_file *file, int64_t index, int64_t expert, const char *spec_text,
                           const qkc_matmul_args *args, const qkc_compile_options *compile, const qkc_run_options *run)
{
    qkc_spec *want = NULL, *spec = NULL;
    qkc_kernel *kern = NULL;
    qkc_matmul_args a;
    void *blob = NULL, *packed = NULL;
    const void *weights;
    size_t pbytes = 0;
    qkc_status st;
    const qkc_file_entry *t;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!args)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_run: args is NULL");
    if ((st = qkc_file_spec(ctx, file, index, "a=f32 out=f32", &want)))
        return st;
    t = &file->tensors[index];
    if (!spec_text || !strcmp(spec_text, "auto")) {
        spec = want, want = NULL;
    } else {
        if ((st = qkc_spec_parse(ctx, spec_text, &spec)))
            goto done;
        if (spec->mm.n != want->mm.n || spec->mm.k != want->mm.k || !qkc_format_equal(&spec->mm.w, &want->mm.w)) {
            st = qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                          "qkc_file_run: the spec does not describe tensor '%s', which is n=%lld k=%lld %s", t->name,
                          (long long)t->n, (long long)t->k, t->weights);
            goto done;
        }
    }
    if ((st = qkc_kernel_compile(ctx, spec, compile, &kern)))
        goto done;
    /* The blob: the file's bytes (an expert's, of a stack), or an import. */
    weights = NULL;
    if (expert >= 0 && (st = qkc_file_expert(ctx, file, index, expert, &weights, NULL)))
        goto done;
    if (weights) {
        /* expert `expert` of the stack, in place */
    } else if (t->import == QKC_IMPORT_IN_PLACE) {
        weights = qkc_file_tensor_data(file, t);
    } else {
        if (!(blob = qkc_alloc(ctx, (size_t)t->blob_bytes))) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_file_run: out of memory for %llu weight bytes",
                          (unsigned long long)t->blob_bytes);
            goto done;
        }
        if ((st = qkc_file_weights(ctx, file, index, blob, (size_t)t->blob_bytes)))
            goto done;
        weights = blob;
    }
    pbytes = (size_t)kern->code->layout.total_bytes;
    /* Kernels read at most 16-byte aligned vectors from their weights. */
    if (!(kern->code->layout.in_place && ((uintptr_t)weights % 16) == 0)) {
        if (!(packed = qkc_alloc(ctx, pbytes ? pbytes : 1))) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_file_run: out of memory for %zu packed weight bytes", pbytes);
            goto done;
        }
        if ((st = qkc_weights_pack(ctx, kern, weights, (size_t)t->blob_bytes, packed, pbytes)))
            goto done;
        weights = packed;
    }
    a = *args;
    a.weights = weights;
    a.weights_bytes = pbytes;
    st = qkc_kernel_run(ctx, kern, &a, run);
done:
    qkc_free(ctx, packed);
    qkc_free(ctx, blob);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_spec_destroy(want);
    return st;
}

qkc_status qkc_file_run(qkc_context *ctx, const qkc_file *file, int64_t index, const char *spec,
                        const qkc_matmul_args *args, const qkc_compile_options *compile, const qkc_run_options *run)
{
    if (ctx && file && index >= 0 && index < file->ntensors && file->tensors[index].experts > 1)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_file_run: '%s' is a stack of %lld experts: name one (qkc_file_run_expert)",
                        file->tensors[index].name, (long long)file->tensors[index].experts);
    return file_run(ctx, file, index, -1, spec, args, compile, run);
}

qkc_status qkc_file_run_expert(qkc_context *ctx, const qkc_file *file, int64_t index, int64_t expert,
                               const char *spec, const qkc_matmul_args *args, const qkc_compile_options *compile,
                               const qkc_run_options *run)
{
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (expert < 0)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_file_run_expert: expert %lld", (long long)expert);
    return file_run(ctx, file, index, expert, spec, args, compile, run);
}
