/*
 * libFuzzer harness: the spec parser, verifier and printer on arbitrary
 * bytes. Any crash, hang, sanitizer report or broken round trip is a bug:
 * a spec that parses must print to a canonical form that parses back to an
 * equal description and prints identically.
 *
 * Build (clang): see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    qkc_matmul mm, back;
    qkc_diag d;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (qkc_matmul_parse(text, &mm, NULL, &d) == QKC_OK) {
        char p1[2048], p2[2048];
        qkc_weight_layout L;
        size_t n1 = qkc_matmul_print(&mm, p1, sizeof p1);
        if (n1 >= sizeof p1 || qkc_matmul_parse(p1, &back, NULL, &d) != QKC_OK || !qkc_matmul_equal(&mm, &back))
            abort();
        qkc_matmul_print(&back, p2, sizeof p2);
        if (strcmp(p1, p2) != 0)
            abort();
        /* every verified spec has a layout */
        if (qkc_format_layout(&mm.w, mm.n, mm.k, &L, &d) != QKC_OK && d.status != QKC_ERR_LIMIT)
            abort();
    } else if (d.message[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    free(text);
    return 0;
}
