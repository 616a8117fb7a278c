/*
 * Schedules: the tunable parameters of a kernel (qkc_schedule in the public
 * header): the default heuristic and validation. The text form is the
 * public qkc_schedule_print / qkc_schedule_parse (runtime/api.c).
 */
#ifndef QKC_CODEGEN_SCHEDULE_H
#define QKC_CODEGEN_SCHEDULE_H

#include <stddef.h>

#include "ir/diag.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"
#include "targets/target.h"

/* Fill every zero field of *s with the heuristic's choice for this spec,
 * layout and target, then check the result (QKC_ERR_INVALID_ARGUMENT with
 * the field named when a given value is out of range). */
qkc_status qkc_schedule_complete(qkc_schedule *s, const qkc_matmul *mm, const qkc_klayout *L,
                                 const qkc_target *t, qkc_diag *diag);

#endif
