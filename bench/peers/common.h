/*
 * Helpers the peer benchmarks share (bench/peers/peers.c against
 * llama.cpp, bench/peers/sgemm.c against OpenBLAS).
 */
#ifndef QKC_BENCH_PEERS_COMMON_H
#define QKC_BENCH_PEERS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The CPU's model name from /proc/cpuinfo ("unknown" elsewhere). */
void qkc_peers_cpu_model(char *buf, size_t size);

/* Largest |x - ref| over the largest |ref|, on `count` outputs (NaN if
 * any difference is NaN). */
double qkc_peers_max_rel_diff(const float *x, const float *ref, int64_t count);

/* "1,8,16" -> values in [lo, hi]; a trailing 'c' on an item sets its flag
 * when `flags` is given. Returns the count, or -1 on anything else. */
int qkc_peers_parse_list(const char *s, int *out, int *flags, int cap, int lo, int hi);

#endif /* QKC_BENCH_PEERS_COMMON_H */
