/*
 * Allocation fault injection: a counting allocator hook fails the N-th
 * allocation, for N = 1, 2, 3, ... over a whole sequence (context, parse,
 * quantize, dequantize, compile twice (the second a cache hit), emit
 * assembly and LLVM IR, pack,
 * reference matmul, kernel run on the thread pool, then a second context
 * that links the kernel from the disk cache the first one wrote and runs
 * it, destroy everything),
 * until a pass completes with no failure injected. Every N must either
 * succeed with correct results or fail with QKC_ERR_NO_MEMORY and a
 * message; either way nothing qkc allocated may stay live once everything
 * is destroyed, and nothing may crash.
 *
 * LLVM allocates with its own allocator, not through the hook: only qkc's
 * allocations are counted and failed. A failing case prints the command
 * that reruns exactly it: QKC_CASE='<spec>|fail=<N>' ./test_cg_faults
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/testutil.h"

/* Representative specs: f32 compute with a pre-pass (bf16 activations,
 * bias, silu), int8 compute, formats repacked for the kernel (nf4 double
 * quantized, act-order GPTQ with its permutation, a planar format whose
 * groups straddle chunks and fall back to dense f32). */
static const char *const specs[] = {
    "matmul n=40 k=256 a=bf16 w=q4_0 compute=f32 bias=f32 act=silu",
    "matmul n=48 k=256 w=q8_0 compute=int8",
    "matmul n=33 k=256 w=nf4_bnb:dq",
    "matmul n=32 k=256 w=gptq:actorder group=64 out=bf16",
    "matmul n=40 k=250 w=int4 group=50 scale=f16 zero=int",
};
#define NSPECS (sizeof specs / sizeof specs[0])

/* ------------------------------------------------ the counting allocator */

typedef struct counting {
    pthread_mutex_t lock;
    long calls;     /* allocations requested so far */
    long fail_at;   /* fail this one (1-based); 0: never */
    int injected;   /* 1 once the failure was injected */
    long live;      /* blocks allocated and not freed */
    size_t live_bytes;
} counting;

/* A 16-byte header keeps the size and the malloc alignment. */
#define HDR 16

static void *count_alloc(size_t bytes, void *user)
{
    counting *c = user;
    unsigned char *p;
    int fail;
    pthread_mutex_lock(&c->lock);
    c->calls++;
    fail = c->calls == c->fail_at;
    if (fail)
        c->injected = 1;
    pthread_mutex_unlock(&c->lock);
    if (fail || bytes > SIZE_MAX - HDR)
        return NULL;
    p = malloc(bytes + HDR);
    if (!p)
        return NULL;
    memcpy(p, &bytes, sizeof bytes);
    pthread_mutex_lock(&c->lock);
    c->live++;
    c->live_bytes += bytes;
    pthread_mutex_unlock(&c->lock);
    return p + HDR;
}

static void count_free(void *ptr, void *user)
{
    counting *c = user;
    unsigned char *p = ptr;
    size_t bytes;
    if (!ptr)
        return;
    p -= HDR;
    memcpy(&bytes, p, sizeof bytes);
    pthread_mutex_lock(&c->lock);
    c->live--;
    c->live_bytes -= bytes;
    pthread_mutex_unlock(&c->lock);
    free(p);
}

/* -------------------------------------------------------- the sequence */

typedef struct result {
    qkc_status status; /* first failing status, or QKC_OK */
    const char *step;  /* where it failed */
    char message[512]; /* the context's message at that point */
    int wrong;         /* 1: the kernel disagreed with the reference */
} result;

static double out_at(const char *out, const void *c, int64_t i)
{
    if (!strcmp(out, "bf16")) {
        uint32_t u = (uint32_t)((const uint16_t *)c)[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    return ((const float *)c)[i];
}

#define STEP_ON(c, name, call)                                                                            \
    do {                                                                                                  \
        if (!r.status && (r.status = (call)) != QKC_OK) {                                                  \
            r.step = (name);                                                                              \
            if (c)                                                                                        \
                qkc_context_copy_error(c, r.message, sizeof r.message);                                   \
        }                                                                                                 \
    } while (0)
#define STEP(name, call) STEP_ON(ctx, name, call)

/* qkc_kernel_emit twice: the size (QKC_ERR_BUFFER_TOO_SMALL is the
 * expected answer), then the code. */
static qkc_status emit_step(qkc_context *ctx, const qkc_spec *spec, const char *what)
{
    size_t needed = 0;
    char *buf;
    qkc_status st = qkc_kernel_emit(ctx, spec, NULL, what, NULL, 0, &needed);
    if (st != QKC_ERR_BUFFER_TOO_SMALL)
        return st == QKC_OK ? QKC_ERR_INTERNAL : st;
    buf = malloc(needed + 1);
    assert_non_null(buf);
    st = qkc_kernel_emit(ctx, spec, NULL, what, buf, needed + 1, NULL);
    free(buf);
    return st;
}

/* Warnings (a cache entry that could not be written or read when an
 * allocation failed) are expected here: kept quiet. */
static void quiet(const char *message, void *user)
{
    (void)message, (void)user;
}

/* Remove a scratch cache directory and its files. */
static void remove_cache(const char *dir)
{
    qkc_context *c;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_ON, .cache_dir = dir};
    if (qkc_context_create(&co, &c) == QKC_OK) {
        qkc_cache_clear(c, NULL);
        qkc_context_destroy(c);
    }
    rmdir(dir);
}

static result run_sequence(const char *text, counting *al)
{
    result r;
    qkc_allocator hook = {count_alloc, count_free, al};
    char dir[64];
    qkc_context_options co = {.struct_size = sizeof co, .allocator = &hook, .threads = 2,
                              .disk_cache = QKC_DISK_CACHE_ON, .warn = quiet};
    qkc_context *ctx = NULL, *ctx2 = NULL;
    qkc_kernel *from_disk = NULL;
    qkc_spec *spec = NULL;
    qkc_kernel *kern = NULL, *again = NULL;
    qkc_spec_info info;
    size_t wbytes = 0, pbytes = 0;
    const int64_t m = 3;
    float *w = NULL, *wd = NULL, *bias = NULL;
    unsigned char *a = NULL, *blob = NULL, *packed = NULL, *c = NULL, *cr = NULL;
    qkc_rng rng = qkc_rng_from_name(text);
    memset(&r, 0, sizeof r);
    r.step = "";
    snprintf(dir, sizeof dir, "/tmp/qkc-faults-%ld-XXXXXX", (long)getpid());
    assert_non_null(mkdtemp(dir));
    co.cache_dir = dir;

    STEP("qkc_context_create", qkc_context_create(&co, &ctx));
    STEP("qkc_spec_parse", qkc_spec_parse(ctx, text, &spec));
    if (!r.status) {
        int64_t n, k;
        int a_el, c_el;
        qkc_spec_query(spec, &info);
        n = info.n, k = info.k;
        a_el = strcmp(info.a_type, "f32") ? 2 : 4;
        c_el = strcmp(info.out_type, "f32") ? 2 : 4;
        STEP("qkc_weights_bytes", qkc_weights_bytes(ctx, spec, &wbytes));
        w = malloc((size_t)(n * k) * sizeof *w);
        wd = malloc((size_t)(n * k) * sizeof *wd);
        bias = malloc((size_t)n * sizeof *bias);
        a = malloc((size_t)(m * k * a_el));
        c = malloc((size_t)(m * n * c_el));
        cr = malloc((size_t)(m * n * c_el));
        blob = malloc(wbytes);
        assert_true(w && wd && bias && a && c && cr && blob);
        for (int64_t i = 0; i < n * k; i++)
            w[i] = qkc_rng_normal(&rng) * 0.05f;
        for (int64_t i = 0; i < n; i++)
            bias[i] = qkc_rng_normal(&rng);
        for (int64_t i = 0; i < m * k; i++) {
            float x = qkc_rng_normal(&rng);
            if (a_el == 4) {
                ((float *)a)[i] = x;
            } else {
                uint32_t u;
                memcpy(&u, &x, sizeof u);
                ((uint16_t *)a)[i] = (uint16_t)(u >> 16); /* bf16 by truncation: any bf16 will do */
            }
        }
        STEP("qkc_quantize", qkc_quantize(ctx, spec, w, k, blob, wbytes));
        STEP("qkc_dequantize", qkc_dequantize(ctx, spec, blob, wbytes, wd, k));
        STEP("qkc_kernel_compile", qkc_kernel_compile(ctx, spec, NULL, &kern));
        STEP("qkc_kernel_compile (cached)", qkc_kernel_compile(ctx, spec, NULL, &again));
        STEP("qkc_kernel_emit asm", emit_step(ctx, spec, "asm"));
        STEP("qkc_kernel_emit llvm", emit_step(ctx, spec, "llvm"));
        if (!r.status) {
            qkc_kernel_info ki;
            assert_int_equal(qkc_kernel_query(again, &ki), QKC_OK);
            assert_int_equal(ki.from_cache, 1);
            qkc_kernel_packed_bytes(kern, &pbytes);
            packed = malloc(pbytes);
            assert_non_null(packed);
        }
        STEP("qkc_weights_pack", qkc_weights_pack(ctx, again, blob, wbytes, packed, pbytes));
        {
            qkc_matmul_args ar = {a, k, blob, wbytes, info.has_bias ? bias : NULL, cr, n, m};
            qkc_matmul_args ak = {a, k, packed, pbytes, info.has_bias ? bias : NULL, c, n, m};
            STEP("qkc_reference_matmul", qkc_reference_matmul(ctx, spec, &ar));
            STEP("qkc_kernel_run", qkc_kernel_run(ctx, kern, &ak, NULL));
            /* a second context: the kernel comes from the disk cache (when
             * the first could write it) and must compute the same */
            STEP_ON(NULL, "qkc_context_create (second)", qkc_context_create(&co, &ctx2));
            STEP_ON(ctx2, "qkc_kernel_compile (disk cache)", qkc_kernel_compile(ctx2, spec, NULL, &from_disk));
            if (!r.status) {
                ak.c = cr;
                STEP_ON(ctx2, "qkc_kernel_run (disk cache)", qkc_kernel_run(ctx2, from_disk, &ak, NULL));
                if (!r.status && memcmp(c, cr, (size_t)(m * n * c_el)))
                    r.wrong = 1;
            }
            STEP("qkc_reference_matmul (again)", qkc_reference_matmul(ctx, spec, &ar));
        }
        if (!r.status) {
            double err = 0, ref = 0;
            for (int64_t i = 0; i < m * n; i++) {
                double x = out_at(info.out_type, c, i), y = out_at(info.out_type, cr, i);
                err += (x - y) * (x - y);
                ref += y * y;
            }
            r.wrong = !(err <= (c_el == 4 ? 1e-9 : 1e-4) * ref);
        }
    }
    qkc_kernel_destroy(from_disk);
    qkc_context_destroy(ctx2);
    qkc_kernel_destroy(again);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    remove_cache(dir);
    free(w), free(wd), free(bias), free(a), free(c), free(cr), free(blob), free(packed);
    return r;
}

static void test_fail_each_allocation(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t s = 0; s < NSPECS; s++) {
        long n, points = 0;
        int completed = 0;
        for (n = 1; n <= 100000 && !completed; n++) {
            char name[256];
            counting al;
            result r;
            int before = failures;
            snprintf(name, sizeof name, "%s|fail=%ld", specs[s], n);
            memset(&al, 0, sizeof al);
            pthread_mutex_init(&al.lock, NULL);
            al.fail_at = n;
            if (!qkc_case_selected(name)) {
                pthread_mutex_destroy(&al.lock);
                continue; /* QKC_CASE names another N */
            }
            r = run_sequence(specs[s], &al);
            if (!al.injected)
                completed = 1; /* N is past the last allocation: a clean pass */
            else
                points++;
            if (r.status != QKC_OK && r.status != QKC_ERR_NO_MEMORY) {
                print_error("case %s: %s returned %s (%d), expected out of memory: %s\n", name, r.step,
                            qkc_status_str(r.status), (int)r.status, r.message);
                failures++;
            } else if (r.status == QKC_ERR_NO_MEMORY && strncmp(r.step, "qkc_context_create", 18) && !r.message[0]) {
                print_error("case %s: %s failed without a message\n", name, r.step);
                failures++;
            } else if (r.status == QKC_OK && r.wrong) {
                print_error("case %s: the kernel disagrees with the reference after the injected failure\n", name);
                failures++;
            }
            if (al.live != 0 || al.live_bytes != 0) {
                print_error("case %s: %ld blocks (%zu bytes) still allocated after destroying everything "
                            "(failed at %s)\n",
                            name, al.live, al.live_bytes, r.status ? r.step : "nothing");
                failures++;
            }
            if (failures > before)
                print_error("  rerun: QKC_CASE='%s' ./test_cg_faults\n", name);
            pthread_mutex_destroy(&al.lock);
            if (failures > 20)
                break;
        }
        print_message("%s: %ld allocation points failed one by one%s\n", specs[s], points,
                      completed ? ", then a clean pass" : "");
        if (!completed && !getenv("QKC_CASE")) {
            print_error("%s: no clean pass within %ld allocations\n", specs[s], n - 1);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* The first allocation of all is the context itself: creating it fails
 * with QKC_ERR_NO_MEMORY and leaves *out NULL. */
static void test_context_create_fails_cleanly(void **state)
{
    (void)state;
    counting al;
    qkc_allocator hook = {count_alloc, count_free, &al};
    qkc_context_options co = {.struct_size = sizeof co, .allocator = &hook, .threads = 1};
    qkc_context *ctx = (qkc_context *)&al;
    memset(&al, 0, sizeof al);
    pthread_mutex_init(&al.lock, NULL);
    al.fail_at = 1;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_ERR_NO_MEMORY);
    assert_null(ctx);
    assert_int_equal(al.live, 0);
    pthread_mutex_destroy(&al.lock);
}

/* Regression: when the allocation of the context's JIT state (the first
 * allocation of the first compile) failed, qkc_kernel_compile returned
 * QKC_ERR_COMPILE. It is QKC_ERR_NO_MEMORY, and the next compile creates
 * the state and succeeds. */
static void test_regression_jit_state_no_memory(void **state)
{
    (void)state;
    counting al;
    qkc_allocator hook = {count_alloc, count_free, &al};
    qkc_context_options co = {.struct_size = sizeof co, .allocator = &hook, .threads = 1};
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *kern = NULL;
    memset(&al, 0, sizeof al);
    pthread_mutex_init(&al.lock, NULL);
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0", &spec), QKC_OK);
    al.fail_at = al.calls + 1;
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_ERR_NO_MEMORY);
    assert_int_equal(al.injected, 1);
    assert_null(kern);
    assert_non_null(strstr(qkc_context_last_error(ctx), "out of memory"));
    assert_int_equal(qkc_kernel_compile(ctx, spec, NULL, &kern), QKC_OK);
    qkc_kernel_destroy(kern);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    assert_int_equal(al.live, 0);
    pthread_mutex_destroy(&al.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context_create_fails_cleanly),
        cmocka_unit_test(test_regression_jit_state_no_memory),
        cmocka_unit_test(test_fail_each_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
