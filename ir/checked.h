/*
 * Checked size arithmetic, for every size qkc derives from user data: each
 * returns 1 and stores the result, or returns 0 (result untouched) when the
 * exact value does not fit in 64 bits. The limits the results are then held
 * to are in include/qkc/qkc.h (QKC_MAX_*).
 */
#ifndef QKC_IR_CHECKED_H
#define QKC_IR_CHECKED_H

#include <stdint.h>

static inline int qkc_mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *r = a * b;
    return 1;
}

static inline int qkc_add_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (b > UINT64_MAX - a)
        return 0;
    *r = a + b;
    return 1;
}

/* Round v up to a multiple of `align`, a power of two. */
static inline int qkc_align_u64(uint64_t v, uint64_t align, uint64_t *r)
{
    if (!qkc_add_u64(v, align - 1, r))
        return 0;
    *r &= ~(align - 1);
    return 1;
}

#endif /* QKC_IR_CHECKED_H */
