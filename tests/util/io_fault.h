/*
 * I/O fault injection for tests (core/io.h's context hook): fail or
 * shorten the N-th I/O operation of a scenario, for N = 1, 2, 3, … until
 * a pass completes with nothing injected, in the spirit of the allocation
 * test (tests/test_cg_faults.c).
 *
 *     qkc_test_io_fault f;
 *     for (int n = 1;; n++) {
 *         qkc_test_io_fault_arm(&f, QKC_TEST_IO_EIO, n);
 *         qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, &f);
 *         ... run the scenario; it must give a status or the right result,
 *             leak nothing and leave no half-written file ...
 *         qkc_context_set_io_fault(ctx, NULL, NULL);
 *         if (!f.fired) break;      // every I/O call site has been hit
 *     }
 *
 * A fault is injected once, at the N-th operation that the kind applies
 * to (short transfers only at reads and writes, ENOSPC at writes and
 * fsyncs, EIO and EINTR anywhere); `sites` counts the operations seen.
 */
#ifndef QKC_TESTS_IO_FAULT_H
#define QKC_TESTS_IO_FAULT_H

#include <stddef.h>

#include "core/io.h"

typedef enum qkc_test_io_kind {
    QKC_TEST_IO_SHORT, /* a read or write moves one byte only */
    QKC_TEST_IO_EINTR, /* interrupted: the layer must retry */
    QKC_TEST_IO_EIO,
    QKC_TEST_IO_ENOSPC,
    QKC_TEST_IO_KIND_COUNT
} qkc_test_io_kind;

typedef struct qkc_test_io_fault {
    qkc_test_io_kind kind;
    int target;                    /* inject at this applicable operation (1-based) */
    int seen;                      /* applicable operations seen so far */
    int fired;                     /* 1 once the fault was injected */
    qkc_io_op fired_op;            /* where it was injected */
    int ops[QKC_IO_OP_COUNT];      /* every operation seen, by kind */
} qkc_test_io_fault;

void qkc_test_io_fault_arm(qkc_test_io_fault *f, qkc_test_io_kind kind, int target);
int qkc_test_io_fault_fn(void *user, qkc_io_op op, const char *path, size_t *len);

/* "short", "EINTR", "EIO", "ENOSPC"; and "open", "read", … */
const char *qkc_test_io_kind_name(qkc_test_io_kind kind);
const char *qkc_test_io_op_name(qkc_io_op op);

/* Files in `dir` (not recursing) whose names end in ".tmp": a failed
 * write must leave none. -1 when the directory cannot be read. */
int qkc_test_count_tmp_files(const char *dir);

#endif
