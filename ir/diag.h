/*
 * Diagnostics of the IR layer: a status plus a message, filled by parse,
 * verify and layout functions. The runtime copies them into the context.
 */
#ifndef QKC_IR_DIAG_H
#define QKC_IR_DIAG_H

#include "qkc/qkc.h"

typedef struct qkc_diag {
    qkc_status status;
    char message[512];
} qkc_diag;

/* Record a failure (printf-style) and return `status`. diag may be NULL. */
qkc_status qkc_diag_set(qkc_diag *diag, qkc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* QKC_IR_DIAG_H */
