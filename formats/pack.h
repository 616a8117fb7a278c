/*
 * Weight packing: a format blob (what qkc_quantize writes and
 * qkc_dequantize reads) converted once into the kernel layout that compiled
 * kernels read (ir/klayout.h).
 */
#ifndef QKC_RUNTIME_PACK_H
#define QKC_RUNTIME_PACK_H

#include <stddef.h>

#include "ir/klayout.h"
#include "qkc/qkc.h"

/*
 * Pack the weights of `spec` from the blob `src` (src_bytes >= the spec's
 * qkc_weights_bytes) into `dst` in layout L, which must be the layout
 * qkc_klayout_for(&spec->mm.w, n, k, ...) gives. Writes exactly
 * L->total_bytes bytes of dst, every one deterministic (padding and unused
 * fields are zero); nothing past them. Act-order GPTQ also writes k_perm.
 *
 * verify != 0: decodes every packed element with qkc_klayout_decode and
 * compares its f32 bits with qkc_dequantize's output (which needs N·K
 * floats of scratch); a difference is a bug in qkc and returns
 * QKC_ERR_INTERNAL naming the format, row and column.
 *
 * Scratch: a few rows of K values, except for the dense f32 fallback
 * layout (and verification), which dequantize the whole matrix.
 *
 * Errors (the context message says what): QKC_ERR_INVALID_ARGUMENT (NULL
 * pointer, L not the spec's layout), QKC_ERR_BUFFER_TOO_SMALL (src or dst),
 * QKC_ERR_CORRUPT_DATA (e.g. a GPTQ g_idx outside [0, groups)),
 * QKC_ERR_UNSUPPORTED (a GPTQ g_idx whose groups are not whole chunks once
 * sorted; qkc's quantizer and GPTQ's own never produce one),
 * QKC_ERR_NO_MEMORY, QKC_ERR_LIMIT, QKC_ERR_INTERNAL.
 */
qkc_status qkc_pack_weights(qkc_context *ctx, const qkc_spec *spec, const qkc_klayout *L, const void *src,
                            size_t src_bytes, void *dst, size_t dst_bytes, int verify);

#endif /* QKC_RUNTIME_PACK_H */
