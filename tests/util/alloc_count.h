/*
 * A counting allocator for leak checks: a qkc_allocator whose blocks come
 * from malloc and which counts the blocks still live (thread-safe, since
 * kernels and compiles may allocate on several threads).
 *
 *     qkc_test_alloc_count c;
 *     qkc_allocator a = qkc_test_alloc_count_allocator(&c);
 *     ... create a context with .allocator = &a, use it, destroy it ...
 *     assert_int_equal(qkc_test_alloc_count_live(&c), 0);
 *
 * (tests/test_cg_faults.c has its own, which also fails the N-th call.)
 */
#ifndef QKC_TESTS_ALLOC_COUNT_H
#define QKC_TESTS_ALLOC_COUNT_H

#include <stdatomic.h>

#include "qkc/qkc.h"

typedef struct qkc_test_alloc_count {
    atomic_long live; /* blocks allocated and not freed */
} qkc_test_alloc_count;

/* Zero the count and return an allocator that keeps it in c. */
qkc_allocator qkc_test_alloc_count_allocator(qkc_test_alloc_count *c);
long qkc_test_alloc_count_live(qkc_test_alloc_count *c);

#endif
