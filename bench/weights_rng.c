/* The benchmarks' weight generator (see weights_rng.h). */
#include "bench/weights_rng.h"

float qkc_bench_normal(uint64_t *state)
{
    uint64_t r = *state;
    double s = 0;
    for (int i = 0; i < 12; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        s += (double)(r >> 11) * (1.0 / 9007199254740992.0);
    }
    *state = r;
    return (float)(s - 6.0);
}
