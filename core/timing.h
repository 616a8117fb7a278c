/*
 * Timing for the tuner and the benchmarks: a monotonic clock in seconds
 * and the median of a set of timings.
 */
#ifndef QKC_CORE_TIMING_H
#define QKC_CORE_TIMING_H

/* Seconds on the monotonic clock (an arbitrary origin). */
double qkc_now_seconds(void);

/* The median of v[0..n), n >= 1 (the mean of the middle two for even n);
 * sorts v in place. */
double qkc_median(double *v, int n);

#endif /* QKC_CORE_TIMING_H */
