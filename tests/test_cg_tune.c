/*
 * Tuning with the compiler: a small search under a trial budget, the JIT
 * taking a tuning database's schedule (per M bucket), and kernels whose
 * code is switched while two threads run them without pause, every result
 * checked against the reference.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/testutil.h"

/* The schedules below are written for an AVX-512 machine (vec=256 or
 * 512); each takes at most the vector width of the target the JIT compiles
 * for here (tests/util: 256 on an AVX2 CPU or under QKC_TARGET=x86_64-avx2,
 * 128 on aarch64), since qkc_kernel_set_schedule and the compiler rightly
 * refuse a wider one. */
static int host_vec(int bits)
{
    int have = qkc_test_vector_bits();
    return have > 0 && have < bits ? have : bits;
}

static qkc_context *make_ctx(const char *db)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1, .tune_db = db};
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    return ctx;
}

static void test_small_search(void **state)
{
    (void)state;
    qkc_context *ctx = make_ctx(NULL);
    qkc_spec *spec;
    int64_t ms[2] = {1, 5};
    qkc_tune_options o = {.struct_size = sizeof o, .m_list = ms, .m_count = 2, .max_trials = 6, .db_path = "cg-tune.db"};
    qkc_tune_result r;
    qkc_tune_db *db;
    char err[512];
    remove("cg-tune.db");
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_tune(ctx, spec, &o, &r), QKC_OK);
    assert_int_equal(r.count, 2);
    for (int i = 0; i < 2; i++) {
        qkc_kernel *k;
        qkc_compile_options co = {sizeof co, NULL, &r.m[i].best, 0};
        assert_int_equal(r.m[i].m, ms[i]);
        assert_true(r.m[i].trials >= 1 && r.m[i].trials <= 6);
        assert_true(r.m[i].best.tile_m >= 1 && r.m[i].best.tile_n >= 1 && r.m[i].best.n_block >= 1);
        assert_true(r.m[i].best_us > 0 && r.m[i].best_us <= r.m[i].default_us);
        /* the winner computes what the reference does */
        assert_int_equal(qkc_kernel_compile(ctx, spec, &co, &k), QKC_OK);
        if (qkc_test_kernel_vs_reference(ctx, spec, k, "cg_tune_small", ms[i] + 6, err, sizeof err))
            fail_msg("%s", err);
        qkc_kernel_destroy(k);
    }
    /* the results went into the database file */
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    assert_int_equal(qkc_tune_db_load(db, "cg-tune.db"), QKC_OK);
    assert_int_equal(qkc_tune_db_count(db), 2);
    qkc_tune_db_destroy(db);
    /* bad options fail with a status */
    o.m_count = QKC_TUNE_MAX_M + 1;
    assert_int_equal(qkc_tune(ctx, spec, &o, NULL), QKC_ERR_INVALID_ARGUMENT);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

static void test_jit_takes_db_schedule(void **state)
{
    (void)state;
    const char *text = "matmul n=64 k=256 w=q8_0";
    qkc_context *ctx = make_ctx(NULL), *tuned;
    qkc_spec *spec;
    qkc_kernel *k;
    qkc_kernel_info ki;
    qkc_tune_db *db;
    qkc_tune_entry e;
    char heuristic[96], err[512], want[96];
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &k), QKC_OK);
    assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
    snprintf(heuristic, sizeof heuristic, "%s", ki.schedule);
    /* an entry for M bucket 1, this machine, this version */
    memset(&e, 0, sizeof e);
    e.spec = text;
    e.m_bucket = "1";
    e.target = ki.target;
    e.features = ki.features;
    e.schedule = (qkc_schedule){1, 3, 2, host_vec(256), 2, 32};
    e.us = 1;
    e.default_us = 2;
    assert_int_equal(qkc_tune_db_create(ctx, &db), QKC_OK);
    assert_int_equal(qkc_tune_db_add(db, &e), QKC_OK);
    assert_int_equal(qkc_tune_db_save(db, "cg-jit.db"), QKC_OK);
    qkc_tune_db_destroy(db);
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);

    tuned = make_ctx("cg-jit.db");
    assert_int_equal(qkc_spec_parse(tuned, text, &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile(tuned, spec, NULL, &k), QKC_OK);
    assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
    qkc_schedule_print(&e.schedule, want, sizeof want);
    assert_string_equal(ki.schedule, want);
    if (qkc_test_kernel_vs_reference(tuned, spec, k, "cg_tune_db", 3, err, sizeof err))
        fail_msg("%s", err);
    qkc_kernel_destroy(k);
    {
        /* no entry for the bucket of M=8: the heuristic */
        qkc_compile_options co = {sizeof co, NULL, NULL, 8};
        assert_int_equal(qkc_kernel_compile(tuned, spec, &co, &k), QKC_OK);
        assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
        assert_string_equal(ki.schedule, heuristic);
        qkc_kernel_destroy(k);
    }
    {
        /* an explicit schedule wins over the database */
        qkc_schedule s = {1, 2, 1, host_vec(256), 0, 16};
        qkc_compile_options co = {sizeof co, NULL, &s, 0};
        assert_int_equal(qkc_kernel_compile(tuned, spec, &co, &k), QKC_OK);
        assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
        qkc_schedule_print(&s, want, sizeof want);
        assert_string_equal(ki.schedule, want);
        qkc_kernel_destroy(k);
    }
    qkc_spec_destroy(spec);
    qkc_context_destroy(tuned);
}

/* ------------------------------------------------------ switch under load */

enum { M = 5 };

typedef struct runner {
    qkc_context *ctx;
    const qkc_kernel *k;
    const void *packed;
    size_t packed_bytes;
    const float *a, *ref;
    int64_t n, kdim;
    atomic_int *stop;
    long runs, failures;
    double worst;
} runner;

/* Runs the kernel until told to stop, at least 20 times; every call counts
 * as a run, a failed one also as a failure, so a kernel that always fails
 * still ends the loop. */
static void *run_loop(void *arg)
{
    runner *r = arg;
    float *c = malloc((size_t)(M * r->n) * sizeof *c);
    qkc_run_options ro = {.struct_size = sizeof ro, .threads = 1};
    if (!c)
        return NULL;
    while (!atomic_load(r->stop) || r->runs < 20) {
        qkc_matmul_args args = {r->a, r->kdim, r->packed, r->packed_bytes, NULL, c, r->n, M};
        double err = 0, ref = 0;
        memset(c, 0xff, (size_t)(M * r->n) * sizeof *c); /* NaN: a skipped output shows */
        r->runs++;
        if (qkc_kernel_run(r->ctx, r->k, &args, &ro) != QKC_OK) {
            r->failures++;
            continue;
        }
        for (int64_t i = 0; i < M * r->n; i++) {
            double d = (double)c[i] - r->ref[i];
            err += d * d;
            ref += (double)r->ref[i] * r->ref[i];
        }
        if (!(err <= 1e-9 * ref))
            r->failures++;
        if (ref > 0 && err / ref > r->worst)
            r->worst = err / ref;
    }
    free(c);
    return NULL;
}

static void test_tiered_switch_under_load(void **state)
{
    (void)state;
    const char *text = "matmul n=96 k=512 w=q4_0";
    qkc_context *ctx = make_ctx(NULL);
    qkc_spec *spec;
    qkc_kernel *k;
    qkc_spec_info info;
    qkc_tune_options to = {.struct_size = sizeof to, .max_trials = 4};
    qkc_compile_options co = {sizeof co, NULL, NULL, M};
    qkc_schedule sched[4] = {{1, 2, 1, 256, 0, 16}, {4, 4, 2, 512, 4, 32}, {2, 4, 4, 512, 8, 64}, {4, 3, 1, 256, 2, 96}};
    float *w, *a, *ref;
    void *blob, *packed;
    size_t wbytes, pbytes;
    atomic_int stop;
    pthread_t th[2];
    runner rn[2];
    qkc_rng rng = qkc_rng_from_name("cg_tune_tiered");
    int switched = -1, started;
    qkc_status set_status = QKC_OK, wait_status = QKC_ERR_INTERNAL, last_status = QKC_ERR_INTERNAL;
    char want[96], set_error[600] = "";
    qkc_kernel_info ki;

    for (int i = 0; i < 4; i++)
        sched[i].vector_bits = host_vec(sched[i].vector_bits);
    assert_int_equal(qkc_spec_parse(ctx, text, &spec), QKC_OK);
    assert_int_equal(qkc_spec_query(spec, &info), QKC_OK);
    assert_int_equal(qkc_kernel_compile_tiered(ctx, spec, &co, &to, &k), QKC_OK);
    /* weights, packed once for every schedule */
    assert_int_equal(qkc_weights_bytes(ctx, spec, &wbytes), QKC_OK);
    w = malloc((size_t)(info.n * info.k) * sizeof *w);
    a = malloc((size_t)(M * info.k) * sizeof *a);
    ref = malloc((size_t)(M * info.n) * sizeof *ref);
    blob = malloc(wbytes);
    assert_true(w && a && ref && blob);
    for (int64_t i = 0; i < info.n * info.k; i++)
        w[i] = qkc_rng_normal(&rng);
    for (int64_t i = 0; i < M * info.k; i++)
        a[i] = qkc_rng_normal(&rng);
    assert_int_equal(qkc_quantize(ctx, spec, w, info.k, blob, wbytes), QKC_OK);
    {
        qkc_matmul_args ar = {a, info.k, blob, wbytes, NULL, ref, info.n, M};
        assert_int_equal(qkc_reference_matmul(ctx, spec, &ar), QKC_OK);
    }
    assert_int_equal(qkc_kernel_packed_bytes(k, &pbytes), QKC_OK);
    packed = malloc(pbytes);
    assert_non_null(packed);
    assert_int_equal(qkc_weights_pack(ctx, k, blob, wbytes, packed, pbytes), QKC_OK);

    /* While the runners go, nothing may end the test: a failed assertion
     * leaves this frame (cmocka longjmps) with the threads still reading
     * `stop` and `rn`. Statuses are kept, the threads joined, then checked. */
    atomic_init(&stop, 0);
    for (started = 0; started < 2; started++) {
        rn[started] = (runner){ctx, k, packed, pbytes, a, ref, info.n, info.k, &stop, 0, 0, 0};
        if (pthread_create(&th[started], NULL, run_loop, &rn[started]) != 0)
            break;
    }
    /* the background tuning may switch the code meanwhile; these switches
     * happen for certain, between the runners' calls */
    for (int round = 0; round < 12 && started == 2; round++) {
        struct timespec ts = {0, 2000000};
        qkc_status st = qkc_kernel_set_schedule(ctx, k, &sched[round % 4]);
        if (st != QKC_OK && set_status == QKC_OK) {
            set_status = st;
            snprintf(set_error, sizeof set_error, "round %d: %s", round, qkc_context_last_error(ctx));
        }
        nanosleep(&ts, NULL);
    }
    if (started == 2) {
        wait_status = qkc_kernel_tier_wait(k, &switched);
        last_status = qkc_kernel_set_schedule(ctx, k, &sched[1]);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    /* every thread has ended: now the checks */
    assert_int_equal(started, 2);
    if (set_status != QKC_OK)
        fail_msg("qkc_kernel_set_schedule: %s (%s)", qkc_status_str(set_status), set_error);
    assert_int_equal(wait_status, QKC_OK);
    assert_true(switched == 0 || switched == 1);
    assert_int_equal(last_status, QKC_OK);
    for (int i = 0; i < 2; i++) {
        if (rn[i].failures)
            fail_msg("runner %d: %ld of %ld results wrong (worst nmse %.3e)", i, rn[i].failures, rn[i].runs,
                     rn[i].worst);
        assert_true(rn[i].runs >= 20);
    }
    assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
    qkc_schedule_print(&sched[1], want, sizeof want);
    assert_string_equal(ki.schedule, want);
    /* a schedule the target rejects leaves the kernel as it was */
    {
        qkc_schedule bad = {9, 9, 1, host_vec(256), 0, 16};
        assert_int_equal(qkc_kernel_set_schedule(ctx, k, &bad), QKC_ERR_INVALID_ARGUMENT);
        assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
        assert_string_equal(ki.schedule, want);
    }
    qkc_kernel_destroy(k);
    free(w), free(a), free(ref), free(blob), free(packed);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

static void test_tiered_destroy_stops_tuning(void **state)
{
    (void)state;
    qkc_context *ctx = make_ctx(NULL);
    qkc_spec *spec;
    qkc_kernel *k;
    qkc_tune_options to = {.struct_size = sizeof to, .max_seconds = 60};
    struct timespec t0, t1;
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q8_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_compile_tiered(ctx, spec, NULL, &to, &k), QKC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    qkc_kernel_destroy(k); /* cancels a 60 s search */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((double)(t1.tv_sec - t0.tv_sec) < 20);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_search),
        cmocka_unit_test(test_jit_takes_db_schedule),
        cmocka_unit_test(test_tiered_switch_under_load),
        cmocka_unit_test(test_tiered_destroy_stops_tuning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
