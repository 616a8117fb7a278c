/*
 * qkc_sort (core/sort.h): on random arrays of every length to 300 and a
 * few long ones, with few and many distinct keys and several element
 * sizes, the result is sorted and stable (equal keys keep their original
 * order), and it is a permutation of the input. Stability is what makes
 * results independent of the C library's qsort.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/sort.h"
#include "util/testutil.h"

typedef struct item {
    int32_t key;
    uint32_t pos; /* original position */
} item;

typedef struct wide {
    float key;
    uint32_t pos;
    char pad[21]; /* an odd size: 29 or more bytes */
} wide;

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static int cmp_wide(const void *a, const void *b)
{
    const wide *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static int cmp_byte(const void *a, const void *b)
{
    return *(const unsigned char *)a - *(const unsigned char *)b;
}

static void check_items(const item *v, size_t n, const char *what)
{
    unsigned char *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        if (v[i].pos >= n || seen[v[i].pos])
            fail_msg("%s n=%zu: not a permutation at %zu", what, n, i);
        seen[v[i].pos] = 1;
        if (i && (v[i - 1].key > v[i].key || (v[i - 1].key == v[i].key && v[i - 1].pos > v[i].pos)))
            fail_msg("%s n=%zu: %zu and %zu out of order (keys %d %d, positions %u %u)", what, n, i - 1, i,
                     v[i - 1].key, v[i].key, v[i - 1].pos, v[i].pos);
    }
    free(seen);
}

static void sort_items(size_t n, int distinct, qkc_rng *r, const char *what)
{
    item *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i].key = (int32_t)qkc_rng_below(r, (uint64_t)distinct) - distinct / 2;
        v[i].pos = (uint32_t)i;
    }
    qkc_sort(v, n, sizeof *v, cmp_item);
    check_items(v, n, what);
    free(v);
}

static void test_lengths(void **state)
{
    qkc_rng r = qkc_rng_from_name("sort-lengths");
    (void)state;
    for (size_t n = 0; n <= 300; n++) {
        sort_items(n, 3, &r, "3 keys");
        sort_items(n, 1000000, &r, "distinct keys");
    }
    sort_items(100000, 7, &r, "long, 7 keys");
    sort_items(65537, 1 << 30, &r, "long, distinct keys");
}

/* Runs that are already sorted, reversed, or all equal. */
static void test_shapes(void **state)
{
    const size_t n = 5000;
    item *v = malloc(n * sizeof *v);
    (void)state;
    assert_non_null(v);
    for (int shape = 0; shape < 3; shape++) {
        for (size_t i = 0; i < n; i++) {
            v[i].key = shape == 0 ? (int32_t)i : shape == 1 ? (int32_t)(n - i) : 42;
            v[i].pos = (uint32_t)i;
        }
        qkc_sort(v, n, sizeof *v, cmp_item);
        check_items(v, n, shape == 0 ? "sorted" : shape == 1 ? "reversed" : "equal");
    }
    free(v);
}

/* Element sizes other than 8: an odd-sized struct keyed by float (with
 * +0 and -0, which compare equal and must keep their order) and bytes. */
static void test_sizes(void **state)
{
    qkc_rng r = qkc_rng_from_name("sort-sizes");
    const size_t n = 777;
    wide *w = malloc(n * sizeof *w);
    unsigned char b[1000];
    size_t count[256] = {0};
    (void)state;
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        memset(&w[i], (int)i, sizeof w[i]);
        w[i].key = (i % 5 == 0) ? (i % 2 ? -0.0f : 0.0f) : (float)qkc_rng_below(&r, 9) - 4.0f;
        w[i].pos = (uint32_t)i;
    }
    qkc_sort(w, n, sizeof *w, cmp_wide);
    for (size_t i = 1; i < n; i++) {
        assert_true(w[i - 1].key <= w[i].key);
        if (w[i - 1].key == w[i].key)
            assert_true(w[i - 1].pos < w[i].pos);
        assert_int_equal((unsigned char)w[i].pad[20], (unsigned char)w[i].pos);
    }
    for (size_t i = 0; i < sizeof b; i++) {
        b[i] = (unsigned char)qkc_rng_below(&r, 256);
        count[b[i]]++;
    }
    qkc_sort(b, sizeof b, 1, cmp_byte);
    for (size_t i = 0; i < sizeof b; i++) {
        assert_true(count[b[i]] > 0);
        count[b[i]]--;
        if (i)
            assert_true(b[i - 1] <= b[i]);
    }
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
