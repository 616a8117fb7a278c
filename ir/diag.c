#include "ir/diag.h"

#include <stdarg.h>
#include <stdio.h>

qkc_status qkc_diag_set(qkc_diag *diag, qkc_status status, const char *fmt, ...)
{
    if (diag) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->message, sizeof diag->message, fmt, ap);
        va_end(ap);
        diag->status = status;
    }
    return status;
}
