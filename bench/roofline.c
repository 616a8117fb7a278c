/*
 * Roofline measurements (contract in roofline.h).
 *
 * ISA assumptions: x86-64 kernels are compiled per function with GCC/Clang
 * target attributes and chosen at run time with __builtin_cpu_supports
 * (which also checks that the OS saves the zmm/ymm state), so this file
 * builds with the project's default flags and runs on any x86-64. Other
 * CPUs get the portable read loop and 0 for the compute peaks.
 *
 * The kernels are written so the compiler can neither drop nor shorten
 * them: every result reaches a volatile store and every accumulator is a
 * loop-carried chain. The f32 and read loops are intrinsics; the int8 loops
 * are small asm statements (see there why). `objdump -d` of the object
 * shows, inside the loops: 16 vfmadd132ps zmm (12 on ymm for AVX2), 16
 * vpdpbusd zmm, 4 x vpmaddubsw + vpmaddwd + vpaddd ymm, 8 vpaddq zmm/ymm
 * with memory operands, and no register copies or stack traffic.
 */
#include "roofline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ROOFLINE_X86 1
#include <immintrin.h>
#else
#define ROOFLINE_X86 0
#endif

typedef enum isa_level { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 } isa_level;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int workers_for(qkc_threadpool *pool, int threads)
{
    int size = qkc_threadpool_size(pool);
    return threads > 0 && threads < size ? threads : size;
}

#if ROOFLINE_X86
/* The QKC_ROOFLINE_ISA cap: "avx2" or "generic"; anything else, no cap. */
static isa_level isa_cap(void)
{
    const char *env = getenv("QKC_ROOFLINE_ISA");
    if (env && strcmp(env, "generic") == 0)
        return ISA_GENERIC;
    if (env && strcmp(env, "avx2") == 0)
        return ISA_AVX2;
    return ISA_AVX512;
}
#endif

/* 0: no vector path (read: portable loop; compute: no measurement). */
static isa_level read_isa(void)
{
#if ROOFLINE_X86
    isa_level cap = isa_cap();
    __builtin_cpu_init();
    if (cap >= ISA_AVX512 && __builtin_cpu_supports("avx512f"))
        return ISA_AVX512;
    if (cap >= ISA_AVX2 && __builtin_cpu_supports("avx2"))
        return ISA_AVX2;
#endif
    return ISA_GENERIC;
}

static isa_level flops_isa(void)
{
#if ROOFLINE_X86
    isa_level cap = isa_cap();
    __builtin_cpu_init();
    if (cap >= ISA_AVX512 && __builtin_cpu_supports("avx512f"))
        return ISA_AVX512;
    if (cap >= ISA_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ISA_AVX2;
#endif
    return ISA_GENERIC;
}

static isa_level int8_isa(void)
{
#if ROOFLINE_X86
    isa_level cap = isa_cap();
    __builtin_cpu_init();
    if (cap >= ISA_AVX512 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vnni"))
        return ISA_AVX512;
    if (cap >= ISA_AVX2 && __builtin_cpu_supports("avx2"))
        return ISA_AVX2;
#endif
    return ISA_GENERIC;
}

const char *qkc_roofline_read_isa(void)
{
    static const char *const names[] = {"generic", "avx2", "avx512"};
    return names[read_isa()];
}

const char *qkc_roofline_flops_isa(void)
{
    static const char *const names[] = {"none", "avx2+fma", "avx512f"};
    return names[flops_isa()];
}

const char *qkc_roofline_int8_isa(void)
{
    static const char *const names[] = {"none", "avx2", "avx512_vnni"};
    return names[int8_isa()];
}

/* ------------------------------------------------------------ reading */

static uint64_t sum_generic(const unsigned char *p, size_t bytes)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 32 <= bytes; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, sizeof w);
        s0 += w[0];
        s1 += w[1];
        s2 += w[2];
        s3 += w[3];
    }
    for (; i < bytes; i++)
        s0 += p[i];
    return s0 + s1 + s2 + s3;
}

#if ROOFLINE_X86
/* p is 64-byte aligned. 8 accumulators: 512 bytes per turn. */
__attribute__((target("avx512f"))) static uint64_t sum_avx512(const unsigned char *p, size_t bytes)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t i = 0;
    for (; i + 512 <= bytes; i += 512) {
        const __m512i *v = (const __m512i *)(const void *)(p + i);
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + 0));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 3));
        a4 = _mm512_add_epi64(a4, _mm512_load_si512(v + 4));
        a5 = _mm512_add_epi64(a5, _mm512_load_si512(v + 5));
        a6 = _mm512_add_epi64(a6, _mm512_load_si512(v + 6));
        a7 = _mm512_add_epi64(a7, _mm512_load_si512(v + 7));
    }
    a0 = _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)),
                          _mm512_add_epi64(_mm512_add_epi64(a4, a5), _mm512_add_epi64(a6, a7)));
    {
        /* Reduce in unsigned arithmetic: the sum is only a sink for the
         * loads, and wraps by design (the reduce intrinsic adds signed). */
        uint64_t lanes[8], t = 0;
        _mm512_storeu_si512((void *)lanes, a0);
        for (int l = 0; l < 8; l++)
            t += lanes[l];
        return t + sum_generic(p + i, bytes - i);
    }
}

/* p is 32-byte aligned. 8 accumulators: 256 bytes per turn. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const unsigned char *p, size_t bytes)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    uint64_t lanes[4];
    size_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        const __m256i *v = (const __m256i *)(const void *)(p + i);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 0));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
        a4 = _mm256_add_epi64(a4, _mm256_load_si256(v + 4));
        a5 = _mm256_add_epi64(a5, _mm256_load_si256(v + 5));
        a6 = _mm256_add_epi64(a6, _mm256_load_si256(v + 6));
        a7 = _mm256_add_epi64(a7, _mm256_load_si256(v + 7));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)),
                          _mm256_add_epi64(_mm256_add_epi64(a4, a5), _mm256_add_epi64(a6, a7)));
    _mm256_storeu_si256((__m256i *)(void *)lanes, a0);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_generic(p + i, bytes - i);
}
#endif

enum { READ_CHUNK = 1 << 20 };

typedef struct read_job {
    unsigned char *buf;
    size_t bytes;
    isa_level isa;
    uint64_t *sums; /* one per chunk */
} read_job;

static size_t chunk_bytes(const read_job *job, int64_t index)
{
    size_t start = (size_t)index * READ_CHUNK;
    return job->bytes - start < READ_CHUNK ? job->bytes - start : READ_CHUNK;
}

/* First touch by the threads that will read, with a non-zero pattern: never
 * written anonymous pages all map the one zero page and read from cache. */
static void fill_chunk(void *arg, int64_t index, int64_t count)
{
    read_job *job = arg;
    (void)count;
    memset(job->buf + (size_t)index * READ_CHUNK, (int)(index % 251) + 1, chunk_bytes(job, index));
}

static void read_chunk(void *arg, int64_t index, int64_t count)
{
    read_job *job = arg;
    const unsigned char *p = job->buf + (size_t)index * READ_CHUNK;
    size_t n = chunk_bytes(job, index);
    (void)count;
#if ROOFLINE_X86
    if (job->isa == ISA_AVX512) {
        job->sums[index] = sum_avx512(p, n);
        return;
    }
    if (job->isa == ISA_AVX2) {
        job->sums[index] = sum_avx2(p, n);
        return;
    }
#endif
    job->sums[index] = sum_generic(p, n);
}

double qkc_roofline_read_gbps(qkc_threadpool *pool, int threads, size_t bytes, int reps)
{
    read_job job;
    int64_t chunks;
    double *rates, result;
    volatile uint64_t sink; /* results end here, so no pass is dead code */
    int workers = workers_for(pool, threads);
    if (bytes == 0 || bytes > SIZE_MAX - 2 * (size_t)READ_CHUNK)
        return 0;
    if (reps < 1)
        reps = 1;
    chunks = (int64_t)((bytes + READ_CHUNK - 1) / READ_CHUNK);
    job.bytes = bytes;
    job.isa = read_isa();
    /* aligned_alloc wants a multiple of the alignment. */
    job.buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    job.sums = calloc((size_t)chunks, sizeof *job.sums);
    rates = calloc((size_t)reps, sizeof *rates);
    if (!job.buf || !job.sums || !rates) {
        free(job.buf);
        free(job.sums);
        free(rates);
        return 0;
    }
    qkc_threadpool_parallel_for(pool, workers, fill_chunk, &job, chunks);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        uint64_t total = 0;
        double t0 = now_s(), t1;
        qkc_threadpool_parallel_for(pool, workers, read_chunk, &job, chunks);
        t1 = now_s();
        for (int64_t c = 0; c < chunks; c++)
            total += job.sums[c];
        sink = total;
        if (r >= 0)
            rates[r] = (double)bytes / (t1 > t0 ? t1 - t0 : 1e-9) * 1e-9;
    }
    (void)sink;
    result = median(rates, reps);
    free(job.buf);
    free(job.sums);
    free(rates);
    return result;
}

/* ------------------------------------------------------- compute peaks */

/* Iterations of the unrolled chain body per work item: ~20-40 us of
 * arithmetic on current cores. */
enum { PEAK_ITERS = 4096 };
/* Target length of one timed pass. */
#define PEAK_PASS_S 0.1

typedef struct peak_job {
    isa_level isa;
    int64_t ops_per_item; /* flops or int8 ops */
    double (*item)(const struct peak_job *job);
    /* Inputs read through volatile so the compiler knows nothing of them. */
    volatile float fa, fb;
    volatile int ia, ib;
    double *results; /* one slot per item: nothing shared between threads */
} peak_job;

#define CHAIN16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define CHAIN12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#if ROOFLINE_X86
/* acc = acc * a + b converges (|a| < 1) and never reaches denormals. */
__attribute__((target("avx512f"))) static double fma_item_avx512(const peak_job *job)
{
    const __m512 a = _mm512_set1_ps(job->fa), b = _mm512_set1_ps(job->fb);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i));
    CHAIN16(DECL)
#undef DECL
    for (int it = 0; it < PEAK_ITERS; it++) {
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
        CHAIN16(STEP)
#undef STEP
    }
#define SUM(i) s = _mm512_add_ps(s, c##i);
    __m512 s = _mm512_setzero_ps();
    CHAIN16(SUM)
#undef SUM
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma_item_avx2(const peak_job *job)
{
    const __m256 a = _mm256_set1_ps(job->fa), b = _mm256_set1_ps(job->fb);
    float lanes[8];
#define DECL(i) __m256 c##i = _mm256_set1_ps((float)(i));
    CHAIN12(DECL)
#undef DECL
    for (int it = 0; it < PEAK_ITERS; it++) {
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
        CHAIN12(STEP)
#undef STEP
    }
#define SUM(i) s = _mm256_add_ps(s, c##i);
    __m256 s = _mm256_setzero_ps();
    CHAIN12(SUM)
#undef SUM
    _mm256_storeu_ps(lanes, s);
    return (double)lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

/* vpdpbusd is written as asm: GCC 12 compiles _mm512_dpbusd_epi32 chains
 * in a loop with a register copy per chain and spills to the stack every
 * turn (even with 4 chains), which would measure the copies, not the
 * multiplier. The asm pins exactly one vpdpbusd per chain per turn. AT&T
 * order: vpdpbusd s8, u8, acc. */
__attribute__((target("avx512f,avx512vnni"))) static double vnni_item_avx512(const peak_job *job)
{
    const __m512i u8 = _mm512_set1_epi32(job->ia), s8 = _mm512_set1_epi32(job->ib);
#define DECL(i) __m512i c##i = _mm512_set1_epi32(i);
    CHAIN16(DECL)
#undef DECL
    for (int it = 0; it < PEAK_ITERS; it++) {
#define STEP(i) __asm__("vpdpbusd %2, %1, %0" : "+v"(c##i) : "v"(u8), "v"(s8));
        CHAIN16(STEP)
#undef STEP
    }
#define SUM(i) s = _mm512_add_epi32(s, c##i);
    __m512i s = _mm512_setzero_si512();
    CHAIN16(SUM)
#undef SUM
    {
        /* Unsigned lane sum: the count is a sink, wrapping is fine. */
        uint32_t lanes[16], t = 0;
        _mm512_storeu_si512((void *)lanes, s);
        for (int l = 0; l < 16; l++)
            t += lanes[l];
        return (double)t;
    }
}

/* Four independent vpmaddubsw -> vpmaddwd -> vpaddd sequences per turn,
 * as asm for the same reason as above, and because with intrinsics the two
 * multiplies of loop-invariant operands would be hoisted out of the loop. */
__attribute__((target("avx2"))) static double int8_item_avx2(const peak_job *job)
{
    const __m256i u8 = _mm256_set1_epi32(job->ia), s8 = _mm256_set1_epi32(job->ib);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, t0, t1, t2, t3;
    int lanes[8];
    for (int it = 0; it < PEAK_ITERS; it++) {
#define STEP(acc, tmp)                                                                          \
    __asm__("vpmaddubsw %[s], %[u], %[t]\n\t"                                                  \
            "vpmaddwd %[one], %[t], %[t]\n\t"                                                  \
            "vpaddd %[t], %[c], %[c]"                                                         \
            : [c] "+x"(acc), [t] "=&x"(tmp)                                                   \
            : [u] "x"(u8), [s] "x"(s8), [one] "x"(ones));
        STEP(c0, t0)
        STEP(c1, t1)
        STEP(c2, t2)
        STEP(c3, t3)
#undef STEP
    }
    c0 = _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3));
    _mm256_storeu_si256((__m256i *)(void *)lanes, c0);
    return (double)lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

static void peak_item(void *arg, int64_t index, int64_t count)
{
    peak_job *job = arg;
    (void)count;
    job->results[index] = job->item(job);
}

/* Calibrate the items per pass to ~PEAK_PASS_S, then time the passes. */
static double run_peak(qkc_threadpool *pool, int threads, int reps, peak_job *job)
{
    int workers = workers_for(pool, threads);
    int64_t items;
    double t0, t_item, *rates, result, total = 0;
    volatile double sink; /* results end here, so no item is dead code */
    if (reps < 1)
        reps = 1;
    /* Single-thread calibration, which also serves as the warm-up of the
     * caller's vector unit (clock and power-state ramp). */
    job->results = calloc(64, sizeof *job->results);
    if (!job->results)
        return 0;
    t0 = now_s();
    qkc_threadpool_parallel_for(pool, 1, peak_item, job, 64);
    t_item = (now_s() - t0) / 64;
    free(job->results);
    items = (int64_t)(PEAK_PASS_S / (t_item > 1e-9 ? t_item : 1e-9)) * workers;
    if (items < workers)
        items = workers;
    if (items > ((int64_t)1 << 22))
        items = (int64_t)1 << 22;
    job->results = calloc((size_t)items, sizeof *job->results);
    rates = calloc((size_t)reps, sizeof *rates);
    if (!job->results || !rates) {
        free(job->results);
        free(rates);
        return 0;
    }
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up with every worker */
        double t1;
        t0 = now_s();
        qkc_threadpool_parallel_for(pool, workers, peak_item, job, items);
        t1 = now_s();
        for (int64_t i = 0; i < items; i++)
            total += job->results[i];
        if (r >= 0)
            rates[r] = (double)job->ops_per_item * (double)items / (t1 > t0 ? t1 - t0 : 1e-9) * 1e-9;
    }
    sink = total;
    (void)sink;
    result = median(rates, reps);
    free(job->results);
    free(rates);
    return result;
}
#endif /* ROOFLINE_X86: the peak items are x86 code so far, so is their driver */

double qkc_roofline_peak_gflops(qkc_threadpool *pool, int threads, int reps)
{
#if ROOFLINE_X86
    peak_job job = {.isa = flops_isa(), .fa = 0.5f, .fb = 1.0f};
    if (job.isa == ISA_AVX512) {
        job.item = fma_item_avx512;
        job.ops_per_item = (int64_t)PEAK_ITERS * 16 * 16 * 2; /* chains x lanes x 2 */
    } else if (job.isa == ISA_AVX2) {
        job.item = fma_item_avx2;
        job.ops_per_item = (int64_t)PEAK_ITERS * 12 * 8 * 2;
    } else {
        return 0;
    }
    return run_peak(pool, threads, reps, &job);
#else
    (void)pool;
    (void)threads;
    (void)reps;
    return 0; /* no compute-peak path for this CPU family yet */
#endif
}

double qkc_roofline_peak_gops(qkc_threadpool *pool, int threads, int reps)
{
#if ROOFLINE_X86
    /* u8 operands 4, 1, 2, 3; s8 operands -2, 2, -1, 1 (bytes low first). */
    peak_job job = {.isa = int8_isa(), .ia = 0x03020104, .ib = 0x01ff02fe};
    if (job.isa == ISA_AVX512) {
        job.item = vnni_item_avx512;
        job.ops_per_item = (int64_t)PEAK_ITERS * 16 * 64 * 2; /* chains x MACs x 2 */
    } else if (job.isa == ISA_AVX2) {
        job.item = int8_item_avx2;
        job.ops_per_item = (int64_t)PEAK_ITERS * 4 * 32 * 2; /* sequences x products x 2 */
    } else {
        return 0;
    }
    return run_peak(pool, threads, reps, &job);
#else
    (void)pool;
    (void)threads;
    (void)reps;
    return 0; /* no compute-peak path for this CPU family yet */
#endif
}
