/*
 * Helpers the peer benchmarks share (bench/peers/common.h).
 */
#include "bench/peers/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qkc_peers_cpu_model(char *buf, size_t size)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, size, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, size, "%s", colon);
            break;
        }
    }
    if (f)
        fclose(f);
}

double qkc_peers_max_rel_diff(const float *x, const float *ref, int64_t count)
{
    double d = 0, r = 0;
    for (int64_t i = 0; i < count; i++) {
        double e = fabs((double)x[i] - (double)ref[i]);
        d = isnan(e) || isnan(d) ? NAN : fmax(d, e);
        r = fmax(r, fabs((double)ref[i]));
    }
    return r > 0 ? d / r : d;
}

int qkc_peers_parse_list(const char *s, int *out, int *flags, int cap, int lo, int hi)
{
    int n = 0;
    for (;;) {
        char *end;
        long v = strtol(s, &end, 10);
        int flag = 0;
        if (end == s || v < lo || v > hi || n >= cap)
            return -1;
        if (*end == 'c' && flags)
            flag = 1, end++;
        out[n] = (int)v;
        if (flags)
            flags[n] = flag;
        n++;
        if (!*end)
            return n;
        if (*end != ',')
            return -1;
        s = end + 1;
    }
}
