/*
 * The machine's own limits, measured on the spot: read bandwidth, peak f32
 * FMA rate and peak int8 dot-product rate. `qkc bench` divides a kernel's
 * effective GB/s (small M, bandwidth bound) or GFLOP/s / GOP/s (large M,
 * compute bound) by these to report how close to the roofline it runs.
 *
 * Conventions shared by all three functions
 * - Work is spread with qkc_threadpool_parallel_for over
 *   min(threads, pool size) workers, the caller included; threads <= 0
 *   means the whole pool, and a NULL pool means one thread (the caller).
 * - Every measurement runs one untimed warm-up pass (page faults, clock
 *   ramp-up, waking the workers), then `reps` timed passes (reps < 1 counts
 *   as 1), and returns the median rate.
 * - Work is handed out in small items (1 MiB of buffer, or a few tens of
 *   microseconds of arithmetic), so a worker that a noisy machine delays
 *   does not stall the others: the figure is what the threads got.
 * - Rates use decimal units: GB/s = 1e9 bytes/s, GFLOP/s = 1e9 flop/s,
 *   GOP/s = 1e9 op/s.
 * - A function returns 0 when it cannot measure: allocation failure, zero
 *   bytes, or no suitable instruction set (non-x86 CPUs for the compute
 *   peaks: there is no path for them yet).
 * - The instruction set is chosen at run time with __builtin_cpu_supports;
 *   the file needs no special compile flags. QKC_ROOFLINE_ISA=avx2 (or
 *   =generic) in the environment caps the choice, so one machine can run
 *   the lower paths: avx512 > avx2 > generic.
 * - Thread-safety: no shared state, so calls from several threads are
 *   safe, but concurrent measurements (or any other load on the machine)
 *   disturb each other's figures.
 */
#ifndef QKC_BENCH_ROOFLINE_H
#define QKC_BENCH_ROOFLINE_H

#include <stddef.h>

#include "core/threadpool.h"

/* Read bandwidth in GB/s: a buffer of `bytes` bytes (>= 1 GiB for a real
 * measurement, far beyond every cache; tests may pass less) is written once
 * (so every page is really backed), then each pass sums all of it with the
 * widest vector loads available (AVX-512: 64-byte loads into 8 independent
 * accumulators), so the loop is bound by the loads. Works on any CPU (a
 * portable C loop where there is no vector path). */
double qkc_roofline_read_gbps(qkc_threadpool *pool, int threads, size_t bytes, int reps);

/* Peak f32 FMA rate in GFLOP/s, 2 flops per lane per FMA: 16 independent
 * vfmadd chains on zmm (AVX-512F), else 12 on ymm (AVX2 + FMA), enough to
 * cover latency x throughput on current cores. Each pass runs ~100 ms. */
double qkc_roofline_peak_gflops(qkc_threadpool *pool, int threads, int reps);

/* Peak int8 dot-product rate in GOP/s, 2 ops per u8*s8 multiply-add:
 * 16 independent vpdpbusd chains on zmm (AVX512_VNNI; 64 MACs = 128 ops
 * per instruction), else the AVX2 sequence vpmaddubsw + vpmaddwd + vpaddd
 * (32 products = 64 ops per three instructions). Each pass runs ~100 ms. */
double qkc_roofline_peak_gops(qkc_threadpool *pool, int threads, int reps);

/* The instruction sets the measurements use on this machine (after the
 * QKC_ROOFLINE_ISA cap), for reports: "avx512" / "avx2" / "generic" for
 * reading, "avx512f" / "avx2+fma" / "none" for f32 FMA, "avx512_vnni" /
 * "avx2" / "none" for int8. Static strings. */
const char *qkc_roofline_read_isa(void);
const char *qkc_roofline_flops_isa(void);
const char *qkc_roofline_int8_isa(void);

#endif /* QKC_BENCH_ROOFLINE_H */
