/*
 * A stable sort that allocates nothing: qkc's replacement for qsort, which
 * may allocate behind the context's allocator (a merge sort's buffer) and
 * is not guaranteed to be stable. Equal elements keep their order, so
 * results never depend on the C library.
 */
#ifndef QKC_CORE_SORT_H
#define QKC_CORE_SORT_H

#include <stddef.h>

/* Sort n elements of `size` bytes at base by cmp (qsort's contract).
 * O(n log n) comparisons and O(n log² n) element moves, in place. */
void qkc_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

#endif /* QKC_CORE_SORT_H */
