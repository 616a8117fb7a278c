#include "testutil.h"

#include "targets/target.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

qkc_rng qkc_rng_from_name(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    qkc_rng r = {h ? h : 1};
    return r;
}

uint64_t qkc_rng_u64(qkc_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t qkc_rng_below(qkc_rng *r, uint64_t n)
{
    return n ? qkc_rng_u64(r) % n : 0;
}

float qkc_rng_uniform(qkc_rng *r, float lo, float hi)
{
    double u = (double)(qkc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float qkc_rng_normal(qkc_rng *r)
{
    double s = 0;
    for (int i = 0; i < 12; i++)
        s += (double)(qkc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(s - 6.0);
}

long qkc_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *c = hex; *c; c++) {
        int v;
        if (*c >= '0' && *c <= '9')
            v = *c - '0';
        else if (*c >= 'a' && *c <= 'f')
            v = *c - 'a' + 10;
        else if (*c >= 'A' && *c <= 'F')
            v = *c - 'A' + 10;
        else if (*c == ' ' || *c == '\n' || *c == '\t' || *c == '\r')
            continue;
        else
            return -1;
        if (hi < 0) {
            hi = v;
        } else {
            if (n >= cap)
                return -1;
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0 ? (long)n : -1;
}

int qkc_case_selected(const char *name)
{
    const char *sel = getenv("QKC_CASE");
    return !sel || !*sel || strcmp(sel, name) == 0;
}

int qkc_test_isa_levels(const char **out, const char **why)
{
    uint32_t host = qkc_target_host_features();
    int n = 0;
    *why = NULL;
    switch (qkc_target_host_arch()) {
    case QKC_ARCH_X86_64:
        if (!(host & QKC_FEAT_AVX2)) {
            *why = "this CPU has no AVX2";
            return 0;
        }
        out[n++] = "x86_64-avx2";
        if (host & QKC_FEAT_AVX512BW)
            out[n++] = "host";
        return n;
    case QKC_ARCH_AARCH64:
        out[n++] = "aarch64-neon";
        if (host & QKC_FEAT_DOTPROD)
            out[n++] = "host";
        return n;
    default:
        *why = "qkc has no CPU target for this architecture";
        return 0;
    }
}

int qkc_test_vector_bits(void)
{
    qkc_target t;
    qkc_diag d;
    /* QKC_TARGET, as the contexts of the test read it, else the host */
    if (qkc_target_resolve(getenv("QKC_TARGET"), 1, &t, &d) != QKC_OK || t.arch == QKC_ARCH_NVPTX)
        return 0;
    return t.vector_bits;
}
