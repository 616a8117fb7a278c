/* A counting allocator for leak checks (see alloc_count.h). */
#include "alloc_count.h"

#include <stdint.h>
#include <stdlib.h>

#define HDR 16 /* keeps malloc's alignment */

static void *count_alloc(size_t bytes, void *user)
{
    qkc_test_alloc_count *c = user;
    unsigned char *p = bytes > SIZE_MAX - HDR ? NULL : malloc(bytes + HDR);
    if (!p)
        return NULL;
    atomic_fetch_add(&c->live, 1);
    return p + HDR;
}

static void count_free(void *ptr, void *user)
{
    qkc_test_alloc_count *c = user;
    if (!ptr)
        return;
    atomic_fetch_sub(&c->live, 1);
    free((unsigned char *)ptr - HDR);
}

qkc_allocator qkc_test_alloc_count_allocator(qkc_test_alloc_count *c)
{
    qkc_allocator a = {count_alloc, count_free, c};
    atomic_init(&c->live, 0);
    return a;
}

long qkc_test_alloc_count_live(qkc_test_alloc_count *c)
{
    return atomic_load(&c->live);
}
