/* Stable in-place sort (see sort.h): insertion sort of short runs, then
 * runs of doubling length merged in place by SymMerge (Kim and Kutzner,
 * "Stable minimum storage merging by symmetric comparisons", 2004): a
 * binary search splits both runs symmetrically around the middle, one
 * rotation exchanges the two inner parts, and both halves recurse. */
#include "core/sort.h"

typedef struct sorter {
    char *base;
    size_t size;
    int (*cmp)(const void *, const void *);
} sorter;

#define AT(s, i) ((s)->base + (i) * (s)->size)

/* data[i] < data[j] */
static int less(const sorter *s, size_t i, size_t j)
{
    return s->cmp(AT(s, i), AT(s, j)) < 0;
}

static void swap1(const sorter *s, size_t i, size_t j)
{
    char *a = AT(s, i), *b = AT(s, j);
    for (size_t k = 0; k < s->size; k++) {
        char t = a[k];
        a[k] = b[k];
        b[k] = t;
    }
}

/* Swap the n elements at a with the n at b (the ranges do not overlap). */
static void swap_range(const sorter *s, size_t a, size_t b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        swap1(s, a + i, b + i);
}

/* [a, m) [m, b) -> [m, b) [a, m), by block swaps. */
static void rotate(const sorter *s, size_t a, size_t m, size_t b)
{
    size_t i = m - a, j = b - m;
    while (i != j) {
        if (i > j) {
            swap_range(s, m - i, m, j);
            i -= j;
        } else {
            swap_range(s, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(s, m - i, m, i);
}

static void insertion(const sorter *s, size_t a, size_t b)
{
    for (size_t i = a + 1; i < b; i++)
        for (size_t j = i; j > a && less(s, j, j - 1); j--)
            swap1(s, j, j - 1);
}

/* Merge the sorted runs [a, m) and [m, b). */
static void sym_merge(const sorter *s, size_t a, size_t m, size_t b)
{
    size_t mid, n, start, r, end;
    if (m - a == 1) {
        /* one element on the left: insert it after the last smaller one */
        size_t i = m, j = b;
        while (i < j) {
            size_t h = i + (j - i) / 2;
            if (less(s, h, a))
                i = h + 1;
            else
                j = h;
        }
        for (size_t k = a; k + 1 < i; k++)
            swap1(s, k, k + 1);
        return;
    }
    if (b - m == 1) {
        /* one element on the right: insert it after the last not greater */
        size_t i = a, j = m;
        while (i < j) {
            size_t h = i + (j - i) / 2;
            if (!less(s, m, h))
                i = h + 1;
            else
                j = h;
        }
        for (size_t k = m; k > i; k--)
            swap1(s, k, k - 1);
        return;
    }
    mid = a + (b - a) / 2;
    n = mid + m;
    if (m > mid) {
        start = n - b;
        r = mid;
    } else {
        start = a;
        r = m;
    }
    while (start < r) {
        size_t c = start + (r - start) / 2;
        if (!less(s, n - 1 - c, c))
            start = c + 1;
        else
            r = c;
    }
    end = n - start;
    if (start < m && m < end)
        rotate(s, start, m, end);
    if (a < start && start < mid)
        sym_merge(s, a, start, mid);
    if (mid < end && end < b)
        sym_merge(s, mid, end, b);
}

void qkc_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    const size_t run = 20;
    sorter s = {base, size, cmp};
    if (n < 2 || !size)
        return;
    for (size_t a = 0; a < n; a += run)
        insertion(&s, a, a + run < n ? a + run : n);
    for (size_t width = run; width < n; width *= 2) {
        size_t a = 0;
        for (; a + 2 * width <= n; a += 2 * width)
            sym_merge(&s, a, a + width, a + 2 * width);
        if (a + width < n)
            sym_merge(&s, a, a + width, n);
    }
}
