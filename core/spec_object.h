/*
 * The public qkc_spec object as the runtime sees it: a verified matmul
 * description plus its weight-blob layout, computed once at parse time.
 * Immutable after creation, so it can be read from any thread.
 */
#ifndef QKC_RUNTIME_SPEC_OBJECT_H
#define QKC_RUNTIME_SPEC_OBJECT_H

#include "ir/spec.h"
#include "qkc/qkc.h"

struct qkc_spec {
    qkc_context *ctx; /* allocator owner */
    qkc_matmul mm;
    qkc_weight_layout layout;
};

/* Create a spec object from a verified description (takes a copy). */
qkc_status qkc_spec_from_matmul(qkc_context *ctx, const qkc_matmul *mm, qkc_spec **out);

#endif /* QKC_RUNTIME_SPEC_OBJECT_H */
