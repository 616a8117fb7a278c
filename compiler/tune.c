/*
 * The tuner: search the schedule space of one spec for the fastest kernel
 * per M, and tiered kernels that keep tuning in the background
 * (docs/tuning.md).
 *
 * Search, per M, under a budget of trials and/or seconds:
 *   1. the space: every valid point of tm x tn x ku x vec x pf x nb for the
 *      target, pruned by M (tm <= M) and by registers (tm*tn accumulators
 *      plus tm activations and tn weight vectors fit the register file);
 *   2. successive halving over a coarse grid of that space (deterministic
 *      subsample when the budget cannot measure it all), the heuristic's
 *      schedule always included: measure every survivor with few
 *      repetitions, keep the best third, double the repetitions;
 *   3. hill climbing around the best: neighbours differing in one
 *      parameter by one step of the space;
 *   4. the best and the heuristic measured alternately; the best wins only
 *      if its median is lower.
 * A compile thread compiles the next candidates while this thread times
 * the current one. Every candidate is run once against the reference
 * (11 rows, so register tiles and their tails are covered) before it is
 * timed; a mismatch rejects it. Timings are medians of repeated calls,
 * hot (one weight copy) or cold (copies rotating over >= 1 GiB).
 *
 * This file compiles kernels: part of libqkc.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/isa.h"
#include "codegen/lower.h"
#include "codegen/schedule.h"
#include "core/context.h"
#include "core/sort.h"
#include "ir/dtype.h"
#include "compiler/jit.h"
#include "runtime/kernel.h"
#include "core/spec_object.h"
#include "cache/tune_db.h"
#include "core/config.h"
#include "core/timing.h"

#define VERIFY_ROWS 11
#define MAX_CANDS 8192

static const int tm_values[] = {1, 2, 3, 4, 6, 8};
static const int tn_values[] = {1, 2, 3, 4, 6, 8};
static const int ku_values[] = {1, 2, 4};
static const int vec_values[] = {256, 512};
static const int pf_values[] = {0, 2, 4, 8};
static const int nb_values[] = {16, 32, 64, 128, 256};
#define COUNT(a) ((int)(sizeof(a) / sizeof(a)[0]))

typedef struct cand {
    qkc_schedule s;
    qkc_kernel *kernel; /* NULL until compiled */
    int state;          /* 0 waiting, 1 compiled, 2 failed to compile or to match the reference */
    int verified;
    double us;          /* latest median, or INFINITY */
    int level;          /* repetitions of that median */
} cand;

typedef struct tuner {
    qkc_context *ctx;
    const qkc_spec *spec;
    const char *target_name;
    qkc_target target;
    qkc_klayout layout;
    int int8_dot;
    int threads, cold;
    const atomic_int *cancel;
    qkc_tune_progress_fn progress;
    void *progress_user;
    /* data */
    int64_t max_m;
    void *a, *c, *cv, *ref;
    float *bias;
    unsigned char **copies;
    int ncopies, next_copy;
    size_t packed;
    int out_el; /* bytes per output element */
    /* candidates */
    cand *cands;
    int ncands;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* the M being tuned */
    int64_t m;
    int trials, rejected, max_trials;
    double deadline; /* 0: none */
    int unlimited;
} tuner;

static void note(tuner *T, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void note(tuner *T, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (!T->progress)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    T->progress(line, T->progress_user);
}

static int budget_left(const tuner *T)
{
    if (T->cancel && atomic_load(T->cancel))
        return 0;
    if (T->unlimited)
        return 1;
    if (T->max_trials && T->trials >= T->max_trials)
        return 0;
    if (T->deadline > 0 && qkc_now_seconds() >= T->deadline)
        return 0;
    return 1;
}

static int same_schedule(const qkc_schedule *a, const qkc_schedule *b)
{
    return a->tile_m == b->tile_m && a->tile_n == b->tile_n && a->k_unroll == b->k_unroll &&
           a->vector_bits == b->vector_bits && a->prefetch == b->prefetch && a->n_block == b->n_block;
}

/* Index of s among the candidates, added if new; -1 when full. */
static int cand_index(tuner *T, const qkc_schedule *s)
{
    for (int i = 0; i < T->ncands; i++)
        if (same_schedule(&T->cands[i].s, s))
            return i;
    if (T->ncands == MAX_CANDS)
        return -1;
    memset(&T->cands[T->ncands], 0, sizeof T->cands[0]);
    T->cands[T->ncands].s = *s;
    T->cands[T->ncands].us = INFINITY;
    return T->ncands++;
}

/* A point of the space: valid for the target (the compiler's own checks),
 * useful for M, within the register file. */
static int in_space(const tuner *T, const qkc_schedule *s)
{
    qkc_schedule c = *s;
    qkc_diag diag;
    int regs = qkc_isa_for(&T->target)->vector_registers(&T->target);
    if (s->tile_m > 1 && s->tile_m > T->m)
        return 0;
    if (s->tile_m * s->tile_n + s->tile_m + s->tile_n > regs)
        return 0;
    return qkc_schedule_complete(&c, &T->spec->mm, &T->layout, &T->target, &diag) == QKC_OK && same_schedule(&c, s);
}

/* ------------------------------------------------------- compile thread */

typedef struct compile_job {
    tuner *T;
    const int *list;
    int n;
    atomic_int stop;
} compile_job;

static void compile_one(tuner *T, int idx)
{
    cand *c = &T->cands[idx];
    qkc_compile_options o;
    qkc_kernel *k = NULL;
    qkc_status st;
    int done;
    pthread_mutex_lock(&T->lock);
    done = c->state != 0;
    pthread_mutex_unlock(&T->lock);
    if (done)
        return;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.target = T->target_name;
    o.schedule = &c->s;
    st = qkc_jit_compile(T->ctx, T->spec, &o, QKC_JIT_NO_DISK_CACHE, &k);
    pthread_mutex_lock(&T->lock);
    c->kernel = k;
    c->state = st == QKC_OK ? 1 : 2;
    pthread_cond_broadcast(&T->cond);
    pthread_mutex_unlock(&T->lock);
}

static void *compile_main(void *arg)
{
    compile_job *J = arg;
    for (int i = 0; i < J->n && !atomic_load(&J->stop); i++)
        compile_one(J->T, J->list[i]);
    return NULL;
}

/* ------------------------------------------------------------ measuring */

static double out_value(const tuner *T, const void *buf, int64_t i)
{
    switch (T->spec->mm.out_dtype) {
    case QKC_DTYPE_F16: return qkc_f16_to_f32(((const uint16_t *)buf)[i]);
    case QKC_DTYPE_BF16: return qkc_bf16_to_f32(((const uint16_t *)buf)[i]);
    default: return ((const float *)buf)[i];
    }
}

static int64_t verify_rows(const tuner *T)
{
    return T->spec->mm.m ? T->spec->mm.m : VERIFY_ROWS;
}

/* Run a candidate against the reference: 0 on a match. */
static int verify(tuner *T, cand *c)
{
    const qkc_matmul *mm = &T->spec->mm;
    int64_t rows = verify_rows(T), n = mm->n;
    double err = 0, ref = 0, bound = mm->out_dtype == QKC_DTYPE_BF16 ? 1e-4 : 1e-10;
    qkc_matmul_args args = {T->a, mm->k, T->copies[0], T->packed, T->bias, T->cv, n, rows};
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = 1};
    memset(T->cv, 0, (size_t)(rows * n) * (size_t)T->out_el);
    if (qkc_kernel_run(T->ctx, c->kernel, &args, &ro) != QKC_OK)
        return 1;
    for (int64_t i = 0; i < rows * n; i++) {
        double x = out_value(T, T->cv, i), y = out_value(T, T->ref, i);
        err += (x - y) * (x - y);
        ref += y * y;
    }
    return !(err <= bound * ref);
}

/* Median µs of `reps` timed calls (after one untimed call). */
static double time_kernel(tuner *T, qkc_kernel *k, int reps)
{
    double t[256];
    qkc_matmul_args args = {T->a, T->spec->mm.k, NULL, T->packed, T->bias, T->c, T->spec->mm.n, T->m};
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = T->threads};
    if (reps > 256)
        reps = 256;
    for (int r = -1; r < reps; r++) {
        double t0;
        args.weights = T->copies[T->next_copy++ % T->ncopies];
        t0 = qkc_now_seconds();
        if (qkc_kernel_run(T->ctx, k, &args, &ro) != QKC_OK)
            return INFINITY;
        if (r >= 0)
            t[r] = (qkc_now_seconds() - t0) * 1e6;
    }
    return qkc_median(t, reps);
}

/* Compile (on the compile thread) and measure the listed candidates with
 * `reps` repetitions, while the budget lasts. Returns how many were
 * measured (the first ones of the list). */
static int evaluate(tuner *T, const int *list, int n, int reps)
{
    compile_job J;
    pthread_t th;
    int started, measured = 0;
    J.T = T;
    J.list = list;
    J.n = n;
    atomic_init(&J.stop, 0);
    started = n > 1 && pthread_create(&th, NULL, compile_main, &J) == 0;
    for (int i = 0; i < n; i++) {
        cand *c = &T->cands[list[i]];
        int state;
        if (!budget_left(T))
            break;
        if (!started)
            compile_one(T, list[i]);
        pthread_mutex_lock(&T->lock);
        while (c->state == 0)
            pthread_cond_wait(&T->cond, &T->lock);
        state = c->state;
        pthread_mutex_unlock(&T->lock);
        if (state == 1 && !c->verified) {
            if (verify(T, c)) {
                char s[96];
                qkc_schedule_print(&c->s, s, sizeof s);
                note(T, "m=%lld: %s does not match the reference: rejected", (long long)T->m, s);
                state = c->state = 2;
            } else {
                c->verified = 1;
            }
        }
        if (state != 1) {
            T->rejected++;
            c->us = INFINITY;
            continue;
        }
        if (c->level == 0)
            T->trials++;
        c->us = time_kernel(T, c->kernel, reps);
        c->level = reps;
        measured = i + 1;
    }
    if (started) {
        atomic_store(&J.stop, 1);
        pthread_join(th, NULL);
    }
    return measured;
}

/* Sort indices by their candidates' medians (insertion sort: stable, and
 * lists are at most a few thousand long). */
static void sort_by_us(tuner *T, int *list, int n)
{
    for (int i = 1; i < n; i++) {
        int v = list[i], j = i;
        while (j > 0 && T->cands[list[j - 1]].us > T->cands[v].us) {
            list[j] = list[j - 1];
            j--;
        }
        list[j] = v;
    }
}

/* ---------------------------------------------------------------- space */

static uint64_t mix(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* All points of the space (exhaustive) or of the coarse grid. */
static int grid(tuner *T, int full, int *list, int cap)
{
    int n = 0;
    for (int a = 0; a < COUNT(tm_values); a++)
        for (int b = 0; b < COUNT(tn_values); b++)
            for (int c = 0; c < COUNT(ku_values); c++)
                for (int d = 0; d < COUNT(vec_values); d++)
                    for (int e = 0; e < COUNT(pf_values); e++)
                        for (int f = 0; f < COUNT(nb_values); f++) {
                            qkc_schedule s = {tm_values[a], tn_values[b], ku_values[c], vec_values[d], pf_values[e],
                                              nb_values[f]};
                            int idx;
                            if (!full) {
                                /* coarse: powers of two for tiles, pf 0 or 4,
                                 * nb 64 (one thread) or 32 and 128 */
                                if ((s.tile_m & (s.tile_m - 1)) || (s.tile_n & (s.tile_n - 1)) || (s.prefetch % 4) ||
                                    (T->threads <= 1 ? s.n_block != 64 : (s.n_block != 32 && s.n_block != 128)))
                                    continue;
                            }
                            if (n == cap || !in_space(T, &s) || (idx = cand_index(T, &s)) < 0)
                                continue;
                            list[n++] = idx;
                        }
    return n;
}

/* Neighbours of s: one parameter one step along its value list. */
static int neighbours(tuner *T, const qkc_schedule *s, int *list)
{
    const int *vals[6] = {tm_values, tn_values, ku_values, vec_values, pf_values, nb_values};
    const int counts[6] = {COUNT(tm_values), COUNT(tn_values), COUNT(ku_values), COUNT(vec_values),
                           COUNT(pf_values), COUNT(nb_values)};
    int n = 0;
    for (int p = 0; p < 6; p++) {
        int cur = p == 0 ? s->tile_m : p == 1 ? s->tile_n : p == 2 ? s->k_unroll : p == 3 ? s->vector_bits
                                                                 : p == 4 ? s->prefetch : s->n_block;
        for (int i = 0; i < counts[p]; i++) {
            if (vals[p][i] != cur)
                continue;
            for (int d = -1; d <= 1; d += 2) {
                qkc_schedule t = *s;
                int j = i + d, idx;
                if (j < 0 || j >= counts[p])
                    continue;
                switch (p) {
                case 0: t.tile_m = vals[p][j]; break;
                case 1: t.tile_n = vals[p][j]; break;
                case 2: t.k_unroll = vals[p][j]; break;
                case 3: t.vector_bits = vals[p][j]; break;
                case 4: t.prefetch = vals[p][j]; break;
                default: t.n_block = vals[p][j]; break;
                }
                if (in_space(T, &t) && (idx = cand_index(T, &t)) >= 0 && T->cands[idx].level == 0 &&
                    T->cands[idx].state != 2)
                    list[n++] = idx;
            }
        }
    }
    return n;
}

/* ----------------------------------------------------------------- data */

static void tuner_free(tuner *T)
{
    for (int i = 0; i < T->ncands; i++)
        qkc_kernel_destroy(T->cands[i].kernel);
    for (int i = 0; T->copies && i < T->ncopies; i++)
        qkc_free(T->ctx, T->copies[i]);
    qkc_free(T->ctx, T->copies);
    qkc_free(T->ctx, T->cands);
    qkc_free(T->ctx, T->a);
    qkc_free(T->ctx, T->c);
    qkc_free(T->ctx, T->cv);
    qkc_free(T->ctx, T->ref);
    qkc_free(T->ctx, T->bias);
    pthread_mutex_destroy(&T->lock);
    pthread_cond_destroy(&T->cond);
}

/* Random weights in the spec's format, packed (copies for --cold), random
 * activations for max_m rows, the reference output of the first rows. */
static qkc_status tuner_init(tuner *T, qkc_context *ctx, const qkc_spec *spec, const char *target, int64_t max_m,
                             int threads, int cold)
{
    const qkc_matmul *mm = &spec->mm;
    qkc_diag diag;
    qkc_status st;
    size_t wbytes = 0;
    float *w = NULL;
    unsigned char *blob = NULL;
    qkc_kernel *k0 = NULL;
    qkc_compile_options o;
    int a_el = mm->a_dtype == QKC_DTYPE_F32 ? 4 : 2;
    int64_t rows = max_m > VERIFY_ROWS ? max_m : VERIFY_ROWS;
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)(mm->n * 31 + mm->k);
    memset(T, 0, sizeof *T);
    T->ctx = ctx;
    T->spec = spec;
    T->target_name = target;
    T->threads = threads > 0 ? threads : 1;
    T->cold = cold;
    T->max_m = max_m;
    pthread_mutex_init(&T->lock, NULL);
    pthread_cond_init(&T->cond, NULL);
    if (qkc_target_resolve(qkc_config_target(ctx, target), 1, &T->target, &diag) ||
        qkc_lower_layout(mm, &T->target, &T->layout, &diag))
        return qkc_fail_diag(ctx, &diag);
    if (qkc_isa_for(&T->target)->gpu)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "tuning: target %s: GPU kernels are not tuned yet",
                        T->target.name);
    T->out_el = mm->out_dtype == QKC_DTYPE_F32 ? 4 : 2;
    T->cands = qkc_calloc(ctx, MAX_CANDS, sizeof *T->cands);
    T->a = qkc_calloc(ctx, (size_t)(rows * mm->k), (size_t)a_el);
    T->c = qkc_calloc(ctx, (size_t)(rows * mm->n), (size_t)T->out_el);
    T->cv = qkc_calloc(ctx, (size_t)(VERIFY_ROWS * mm->n), (size_t)T->out_el);
    T->ref = qkc_calloc(ctx, (size_t)(VERIFY_ROWS * mm->n), (size_t)T->out_el);
    T->bias = mm->bias == QKC_BIAS_F32 ? qkc_calloc(ctx, (size_t)mm->n, sizeof(float)) : NULL;
    if ((st = qkc_weights_bytes(ctx, spec, &wbytes)))
        return st;
    w = qkc_calloc(ctx, (size_t)(mm->n * mm->k), sizeof *w);
    blob = qkc_alloc(ctx, wbytes);
    if (!T->cands || !T->a || !T->c || !T->cv || !T->ref || (mm->bias == QKC_BIAS_F32 && !T->bias) || !w || !blob) {
        st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_tune: out of memory for the tuning data");
        goto out;
    }
    for (int64_t i = 0; i < mm->n * mm->k; i++)
        w[i] = (float)((double)(mix(&seed) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    for (int64_t i = 0; i < rows * mm->k; i++) {
        float x = (float)((double)(mix(&seed) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
        if (a_el == 4)
            ((float *)T->a)[i] = x;
        else
            ((uint16_t *)T->a)[i] = mm->a_dtype == QKC_DTYPE_F16 ? qkc_f32_to_f16(x) : qkc_f32_to_bf16(x);
    }
    for (int64_t i = 0; T->bias && i < mm->n; i++)
        T->bias[i] = (float)((double)(mix(&seed) >> 11) * (1.0 / 9007199254740992.0) - 0.5);
    if ((st = qkc_quantize(ctx, spec, w, mm->k, blob, wbytes)))
        goto out;
    {
        qkc_matmul_args ar = {T->a, mm->k, blob, wbytes, T->bias, T->ref, mm->n, verify_rows(T)};
        if ((st = qkc_reference_matmul(ctx, spec, &ar)))
            goto out;
    }
    /* Pack with the heuristic's kernel: the packed layout depends on the
     * format only, so every candidate reads the same bytes. */
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.target = target;
    {
        qkc_schedule h;
        memset(&h, 0, sizeof h);
        if (qkc_schedule_complete(&h, mm, &T->layout, &T->target, &diag)) {
            st = qkc_fail_diag(ctx, &diag);
            goto out;
        }
        o.schedule = &h;
        if ((st = qkc_jit_compile(ctx, spec, &o, QKC_JIT_NO_DISK_CACHE, &k0)))
            goto out;
    }
    T->int8_dot = qkc_kernel_code(k0)->int8_dot;
    T->packed = (size_t)qkc_kernel_code(k0)->layout.total_bytes;
    T->ncopies = cold ? (int)((((size_t)1 << 30) + T->packed - 1) / T->packed) + 1 : 1;
    T->copies = qkc_calloc(ctx, (size_t)T->ncopies, sizeof *T->copies);
    if (!T->copies) {
        st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_tune: out of memory for weight copies");
        goto out;
    }
    for (int i = 0; i < T->ncopies; i++) {
        T->copies[i] = qkc_alloc(ctx, T->packed);
        if (!T->copies[i]) {
            st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_tune: out of memory for %d weight copies", T->ncopies);
            goto out;
        }
        if (i == 0)
            st = qkc_weights_pack(ctx, k0, blob, wbytes, T->copies[0], T->packed);
        else
            memcpy(T->copies[i], T->copies[0], T->packed);
        if (st)
            goto out;
    }
out:
    qkc_kernel_destroy(k0);
    qkc_free(ctx, w);
    qkc_free(ctx, blob);
    return st;
}

/* ------------------------------------------------------------ searching */

/* Tune one M. baseline: the schedule to beat (the heuristic's). */
static qkc_status tune_m(tuner *T, int64_t m, const qkc_schedule *baseline, int max_trials, double max_seconds,
                         int exhaustive, qkc_tune_m_result *r)
{
    int *list = qkc_alloc(T->ctx, MAX_CANDS * sizeof *list), *nb = NULL;
    int n, base, best, rung = 0, r0, rmax;
    double t_call, t0 = qkc_now_seconds();
    char s1[96];
    if (!list)
        return qkc_fail(T->ctx, QKC_ERR_NO_MEMORY, "qkc_tune: out of memory");
    nb = list + MAX_CANDS / 2;
    /* every M starts afresh: medians of another M mean nothing here */
    for (int i = 0; i < T->ncands; i++) {
        T->cands[i].us = INFINITY;
        T->cands[i].level = 0;
    }
    T->m = m;
    T->trials = T->rejected = 0;
    T->max_trials = max_trials;
    T->unlimited = exhaustive;
    T->deadline = max_seconds > 0 ? t0 + max_seconds : 0;
    memset(r, 0, sizeof *r);
    r->m = m;
    r->heuristic = *baseline;

    base = cand_index(T, baseline);
    if (base < 0) {
        qkc_free(T->ctx, list);
        return qkc_fail(T->ctx, QKC_ERR_INTERNAL, "qkc_tune: candidate table full");
    }
    /* The baseline first: it calibrates the repetitions. It is measured
     * whatever the budget says. */
    {
        int save = T->unlimited;
        T->unlimited = 1;
        evaluate(T, &base, 1, 3);
        T->unlimited = save;
    }
    if (T->cands[base].state != 1) {
        qkc_free(T->ctx, list);
        return qkc_fail(T->ctx, QKC_ERR_INTERNAL, "qkc_tune: the heuristic's kernel failed its check against the "
                                                  "reference");
    }
    t_call = T->cands[base].us * 1e-6;
    /* repetitions: about 5 ms per candidate on the first rung, 60 ms at
     * most on the last, never fewer than 3 and 7 */
    r0 = (int)(0.005 / t_call);
    r0 = r0 < 3 ? 3 : r0 > 25 ? 25 : r0;
    rmax = (int)(0.06 / t_call);
    rmax = rmax < (t_call > 0.02 ? 3 : 7) ? (t_call > 0.02 ? 3 : 7) : rmax > 151 ? 151 : rmax;
    if (rmax < r0)
        rmax = r0;

    /* Brackets: successive halving over a list, then hill climbing from
     * the best. The first list is the coarse grid (every point when
     * exhaustive); while budget is left, further brackets draw points of
     * the whole space not measured yet. */
    best = base;
    for (int bracket = 0;; bracket++) {
        int winner;
        n = grid(T, exhaustive || bracket > 0, list, MAX_CANDS / 2);
        if (bracket > 0) {
            int kept = 0;
            for (int i = 0; i < n; i++)
                if (T->cands[list[i]].level == 0 && T->cands[list[i]].state != 2)
                    list[kept++] = list[i];
            n = kept;
        }
        if (!exhaustive) {
            /* as many as about 40% of the remaining budget measures on the
             * first rung; a deterministic shuffle spreads the subsample */
            /* a candidate costs its timing or its compile (on the other
             * thread), whichever is longer */
            double per = fmax(t_call * (r0 + 1), 0.03), left = T->deadline > 0 ? T->deadline - qkc_now_seconds() : 0;
            int cap = n;
            uint64_t seed = 0x2545F4914F6CDD1Dull ^ (uint64_t)m ^ ((uint64_t)bracket << 32);
            if (T->deadline > 0 && (int)(0.4 * left / per) < cap)
                cap = (int)(0.4 * left / per);
            if (max_trials > 0 && (max_trials - T->trials) / 2 < cap)
                cap = (max_trials - T->trials) / 2;
            if (cap < 2)
                cap = 2;
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(mix(&seed) % (uint64_t)(i + 1)), t = list[i];
                list[i] = list[j], list[j] = t;
            }
            if (n > cap)
                n = cap;
        }
        if (bracket == 0) {
            /* the baseline always competes */
            int have = 0;
            for (int i = 0; i < n; i++)
                have |= list[i] == base;
            if (!have)
                list[n++] = base;
        }
        if (n == 0)
            break;
        note(T, "m=%lld: bracket %d: %d candidates, %d..%d repetitions", (long long)m, bracket, n, r0, rmax);
        /* successive halving */
        rung = 0;
        for (int reps = r0;; rung++) {
            int measured = evaluate(T, list, n, reps), kept;
            if (measured < n)
                n = measured;
            if (n == 0)
                break;
            sort_by_us(T, list, n);
            qkc_schedule_print(&T->cands[list[0]].s, s1, sizeof s1);
            note(T, "m=%lld: rung %d: %d measured (%d reps), best %.1f us (%s)", (long long)m, rung, n, reps,
                 T->cands[list[0]].us, s1);
            if (n <= 2 || !budget_left(T))
                break;
            kept = (n + 2) / 3;
            n = kept < 2 ? 2 : kept;
            reps = reps * 2 > rmax ? rmax : reps * 2;
        }
        winner = n > 0 ? list[0] : best;
        if (winner != best && T->cands[winner].us < INFINITY) {
            /* the bracket's winner against the incumbent, same repetitions */
            int pair[2] = {best, winner}, save = T->unlimited;
            T->unlimited = 1;
            evaluate(T, pair, 2, rmax);
            T->unlimited = save;
            if (T->cands[winner].us < T->cands[best].us)
                best = winner;
        }
        /* hill climbing around the best */
        while (budget_left(T)) {
            int k = neighbours(T, &T->cands[best].s, nb), improved = -1;
            if (k == 0)
                break;
            /* the incumbent again, with the same repetitions as its rivals */
            evaluate(T, &best, 1, rmax);
            k = evaluate(T, nb, k, rmax);
            for (int i = 0; i < k; i++)
                if (T->cands[nb[i]].us < T->cands[best].us * 0.99 &&
                    (improved < 0 || T->cands[nb[i]].us < T->cands[improved].us))
                    improved = nb[i];
            if (improved < 0)
                break;
            best = improved;
            qkc_schedule_print(&T->cands[best].s, s1, sizeof s1);
            note(T, "m=%lld: local step to %s, %.1f us", (long long)m, s1, T->cands[best].us);
        }
        if (exhaustive || !budget_left(T))
            break;
    }

    /* the final word: best and baseline alternately */
    {
        double tb[9], td[9];
        int rounds = t_call > 0.02 ? 3 : 5, save = T->unlimited;
        T->unlimited = 1;
        if (best == base)
            rounds = 1;
        for (int i = 0; i < rounds; i++) {
            td[i] = time_kernel(T, T->cands[base].kernel, rmax);
            tb[i] = best == base ? td[i] : time_kernel(T, T->cands[best].kernel, rmax);
        }
        T->unlimited = save;
        r->default_us = qkc_median(td, rounds);
        r->best_us = qkc_median(tb, rounds);
        /* within half a percent is noise: keep the heuristic */
        if (!(r->best_us < r->default_us * 0.995)) {
            best = base;
            r->best_us = r->default_us;
        }
    }
    r->best = T->cands[best].s;
    r->trials = T->trials;
    r->rejected = T->rejected;
    r->seconds = qkc_now_seconds() - t0;
    qkc_schedule_print(&r->best, s1, sizeof s1);
    note(T, "m=%lld: %s %.1f us, heuristic %.1f us (%d trials, %d rejected, %.1f s)", (long long)m, s1, r->best_us,
         r->default_us, r->trials, r->rejected, r->seconds);
    qkc_free(T->ctx, list);
    return QKC_OK;
}

static qkc_status heuristic_schedule(qkc_context *ctx, const qkc_spec *spec, const tuner *T, qkc_schedule *out)
{
    qkc_diag diag;
    memset(out, 0, sizeof *out);
    if (qkc_schedule_complete(out, &spec->mm, &T->layout, &T->target, &diag))
        return qkc_fail_diag(ctx, &diag);
    return QKC_OK;
}

/* qkc_tune with a cancel flag and a baseline (NULL: the heuristic). */
static qkc_status tune_run(qkc_context *ctx, const qkc_spec *spec, const qkc_tune_options *o, const int64_t *ms,
                           int nm, const qkc_schedule *baseline, const atomic_int *cancel, qkc_tune_result *res)
{
    tuner T;
    qkc_status st;
    int64_t max_m = 1;
    qkc_schedule h;
    int max_trials = o->max_trials;
    if (max_trials <= 0 && !(o->max_seconds > 0))
        max_trials = 200;
    for (int i = 0; i < nm; i++)
        max_m = ms[i] > max_m ? ms[i] : max_m;
    st = tuner_init(&T, ctx, spec, o->target, max_m, o->threads, o->cold);
    T.cancel = cancel;
    T.progress = o->progress;
    T.progress_user = o->progress_user;
    if (!st)
        st = heuristic_schedule(ctx, spec, &T, &h);
    memset(res, 0, sizeof *res);
    snprintf(res->target, sizeof res->target, "%s", T.target.name);
    qkc_target_features_string(T.target.arch, T.target.features, res->features, sizeof res->features);
    for (int i = 0; !st && i < nm; i++) {
        st = tune_m(&T, ms[i], baseline ? baseline : &h, max_trials, o->max_seconds, o->exhaustive, &res->m[i]);
        res->count = i + 1;
    }
    tuner_free(&T);
    return st;
}

qkc_status qkc_tune(qkc_context *ctx, const qkc_spec *spec, const qkc_tune_options *options, qkc_tune_result *out)
{
    static const int64_t one = 1;
    qkc_tune_options o;
    qkc_tune_result *res;
    const int64_t *ms;
    int nm;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune: spec is NULL");
    memset(&o, 0, sizeof o);
    if (options) {
        if (options->struct_size < sizeof(size_t) || options->struct_size > sizeof o)
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune: bad struct_size");
        memcpy(&o, options, options->struct_size);
    }
    o.struct_size = sizeof o;
    if (o.m_count < 0 || o.m_count > QKC_TUNE_MAX_M || (o.m_count && !o.m_list) || o.max_trials < 0 ||
        o.max_seconds < 0 || o.threads < 0 || o.threads > 1024)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT,
                        "qkc_tune: m_count is 0..%d with m_list, budgets and threads are not negative", QKC_TUNE_MAX_M);
    ms = o.m_count ? o.m_list : &one;
    nm = o.m_count ? o.m_count : 1;
    for (int i = 0; i < nm; i++)
        if (ms[i] < 1 || ms[i] > 65536 || (spec->mm.m && ms[i] != spec->mm.m))
            return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_tune: m=%lld: M is 1..65536 (and the spec's m if it "
                                                           "fixes one)", (long long)ms[i]);
    res = qkc_calloc(ctx, 1, sizeof *res);
    if (!res)
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_tune: out of memory");
    st = tune_run(ctx, spec, &o, ms, nm, NULL, NULL, res);
    if (!st && o.db_path) {
        qkc_tune_db *db = NULL;
        char text[2048];
        qkc_matmul_print(&spec->mm, text, sizeof text);
        st = qkc_tune_db_create(ctx, &db);
        /* a missing file is a new database; one that cannot be read (a
         * FIFO, a directory, no permission) is an error, not overwritten */
        if (!st)
            st = qkc_tune_db_load_file(db, o.db_path, 1);
        for (int i = 0; !st && i < res->count; i++) {
            qkc_tune_entry e;
            memset(&e, 0, sizeof e);
            e.spec = text;
            e.m_bucket = qkc_tune_m_bucket(res->m[i].m);
            e.target = res->target;
            e.features = res->features;
            e.schedule = res->m[i].best;
            e.us = res->m[i].best_us;
            e.default_us = res->m[i].default_us;
            st = qkc_tune_db_add(db, &e);
        }
        if (!st)
            st = qkc_tune_db_save(db, o.db_path);
        qkc_tune_db_destroy(db);
    }
    if (out)
        *out = *res;
    qkc_free(ctx, res);
    return st;
}

/* ------------------------------------------------------ tiered kernels */

typedef struct qkc_tier {
    qkc_background bg; /* first: the context's list holds &bg */
    qkc_context *ctx;
    qkc_kernel *kernel;
    qkc_spec *spec;
    char target[64];
    int has_target;
    qkc_tune_options options;
    int64_t m;
    atomic_int cancel;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, joined, switched;
    qkc_status status;
} qkc_tier;

/* Switch a handle to new code of the same spec and packed layout. */
static qkc_status swap_code(qkc_context *ctx, qkc_kernel *k, const qkc_compiled *code)
{
    const qkc_compiled *old = qkc_kernel_code(k);
    if (memcmp(&old->mm, &code->mm, sizeof old->mm) || old->layout.total_bytes != code->layout.total_bytes ||
        strcmp(old->layout.description, code->layout.description) || old->int8_dot != code->int8_dot)
        return qkc_fail(ctx, QKC_ERR_INTERNAL, "kernel switch: the new code reads another layout");
    atomic_store_explicit(&k->code, code, memory_order_release);
    return QKC_OK;
}

static void *tier_main(void *arg)
{
    qkc_tier *t = arg;
    qkc_tune_result *res = qkc_calloc(t->ctx, 1, sizeof *res);
    qkc_status st = QKC_ERR_NO_MEMORY;
    int switched = 0;
    if (res) {
        qkc_schedule current = qkc_kernel_code(t->kernel)->schedule;
        st = tune_run(t->ctx, t->spec, &t->options, &t->m, 1, &current, &t->cancel, res);
        if (!st && !atomic_load(&t->cancel) && res->count == 1 &&
            !same_schedule(&res->m[0].best, &current)) {
            qkc_compile_options o;
            qkc_kernel *k = NULL;
            memset(&o, 0, sizeof o);
            o.struct_size = sizeof o;
            o.target = t->has_target ? t->target : NULL;
            o.schedule = &res->m[0].best;
            /* already compiled by the search: an in-memory cache hit */
            st = qkc_jit_compile(t->ctx, t->spec, &o, QKC_JIT_NO_DISK_CACHE, &k);
            if (!st)
                st = swap_code(t->ctx, t->kernel, qkc_kernel_code(k));
            switched = st == QKC_OK;
            qkc_kernel_destroy(k);
        }
    }
    qkc_free(t->ctx, res);
    pthread_mutex_lock(&t->lock);
    t->status = st;
    t->switched = switched;
    t->done = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Cancel and wait; safe to call twice (the context and the handle). */
static void tier_join(qkc_background *bg)
{
    qkc_tier *t = (qkc_tier *)bg;
    int join;
    atomic_store(&t->cancel, 1);
    pthread_mutex_lock(&t->lock);
    join = !t->joined;
    t->joined = 1;
    pthread_mutex_unlock(&t->lock);
    if (join)
        pthread_join(t->thread, NULL);
}

static void tier_stop(qkc_kernel *k)
{
    qkc_tier *t = k->tier;
    if (!t)
        return;
    if (qkc_jit_untrack(t->ctx, &t->bg))
        tier_join(&t->bg);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    qkc_spec_destroy(t->spec);
    qkc_free(t->ctx, t);
    k->tier = NULL;
    k->tier_stop = NULL;
}

qkc_status qkc_kernel_compile_tiered(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                                     const qkc_tune_options *tune_options, qkc_kernel **out)
{
    qkc_kernel *k = NULL;
    qkc_tier *t;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_compile_tiered: NULL argument");
    *out = NULL;
    if (tune_options && (tune_options->struct_size < sizeof(size_t) || tune_options->struct_size > sizeof t->options))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_compile_tiered: bad struct_size");
    if ((st = qkc_kernel_compile(ctx, spec, options, &k)))
        return st;
    t = qkc_calloc(ctx, 1, sizeof *t);
    if (!t) {
        qkc_kernel_destroy(k);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_compile_tiered: out of memory");
    }
    t->ctx = ctx;
    t->kernel = k;
    t->bg.stop = tier_join;
    atomic_init(&t->cancel, 0);
    if (tune_options)
        memcpy(&t->options, tune_options, tune_options->struct_size);
    t->options.struct_size = sizeof t->options;
    t->options.m_list = NULL;
    t->options.m_count = 0;
    t->options.db_path = NULL;
    t->options.exhaustive = 0;
    if (!tune_options)
        t->options.max_trials = 50;
    if (options && options->struct_size >= offsetof(qkc_compile_options, target) + sizeof options->target &&
        options->target) {
        snprintf(t->target, sizeof t->target, "%s", options->target);
        t->has_target = 1;
    }
    t->options.target = t->has_target ? t->target : NULL;
    t->m = 1;
    if (spec->mm.m)
        t->m = spec->mm.m;
    else if (options && options->struct_size >= offsetof(qkc_compile_options, m_hint) + sizeof options->m_hint &&
             options->m_hint > 0)
        t->m = options->m_hint > 65536 ? 65536 : options->m_hint;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    if ((st = qkc_spec_from_matmul(ctx, &spec->mm, &t->spec)) || (st = qkc_jit_track(ctx, &t->bg))) {
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->cond);
        qkc_spec_destroy(t->spec);
        qkc_free(ctx, t);
        qkc_kernel_destroy(k);
        return st;
    }
    if (pthread_create(&t->thread, NULL, tier_main, t) != 0) {
        qkc_jit_untrack(ctx, &t->bg);
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->cond);
        qkc_spec_destroy(t->spec);
        qkc_free(ctx, t);
        qkc_kernel_destroy(k);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_compile_tiered: could not start a thread");
    }
    k->tier = t;
    k->tier_stop = tier_stop;
    *out = k;
    return QKC_OK;
}

qkc_status qkc_kernel_tier_wait(qkc_kernel *kernel, int *switched)
{
    qkc_tier *t;
    qkc_status st;
    if (!kernel)
        return QKC_ERR_INVALID_ARGUMENT;
    if (switched)
        *switched = 0;
    t = kernel->tier;
    if (!t)
        return QKC_OK;
    pthread_mutex_lock(&t->lock);
    while (!t->done)
        pthread_cond_wait(&t->cond, &t->lock);
    st = t->status;
    if (switched)
        *switched = t->switched;
    pthread_mutex_unlock(&t->lock);
    return st;
}

qkc_status qkc_kernel_set_schedule(qkc_context *ctx, qkc_kernel *kernel, const qkc_schedule *schedule)
{
    const qkc_compiled *code;
    qkc_spec *spec = NULL;
    qkc_kernel *k = NULL;
    qkc_compile_options o;
    qkc_status st;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!kernel || !schedule)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_set_schedule: NULL argument");
    code = qkc_kernel_code(kernel);
    if (code->ahead_of_time)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "qkc_kernel_set_schedule: an AOT kernel cannot be recompiled");
    if ((st = qkc_spec_from_matmul(ctx, &code->mm, &spec)))
        return st;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.target = code->target;
    o.schedule = schedule;
    st = qkc_kernel_compile(ctx, spec, &o, &k);
    if (!st)
        st = swap_code(ctx, kernel, qkc_kernel_code(k));
    if (!st) /* the caller's schedule serves every M */
        atomic_store(&kernel->alt_off, 1);
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
    return st;
}
