/*
 * The benchmarks' weight generator: a fixed xorshift stream turned into
 * approximately normal floats (the sum of 12 uniforms, minus 6), so every
 * run of `qkc bench` and bench/peers measures the same matrices.
 */
#ifndef QKC_BENCH_WEIGHTS_RNG_H
#define QKC_BENCH_WEIGHTS_RNG_H

#include <stdint.h>

/* The stream's starting state. */
#define QKC_BENCH_RNG_SEED UINT64_C(0x853C49E6748FEA9B)

/* The next value of the stream *state (mean 0, variance 1). */
float qkc_bench_normal(uint64_t *state);

#endif /* QKC_BENCH_WEIGHTS_RNG_H */
