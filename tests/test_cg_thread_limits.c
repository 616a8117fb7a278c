/*
 * Threads that cannot start give a status. Each case runs in a child
 * process (fork) that limits itself, after compiling and packing a kernel:
 *
 * - the address space (RLIMIT_AS, `ulimit -v`) to what it uses plus half
 *   a thread stack: no stack can be mapped. A pool of 64, a kernel run on
 *   the context's pool of 64 and a tiered compile (its tuning thread) each
 *   return QKC_ERR_NO_MEMORY with a message naming the thread; then, with
 *   room for two and a half stacks, a pool whose third thread fails stops
 *   and joins the two that started.
 * - the number of processes (RLIMIT_NPROC, `ulimit -u`) to 1, as a user
 *   other than root (root is exempt: as root the child becomes `nobody`).
 *
 * Each time, the threads of the process (/proc/self/task) are those it had
 * before: none is left running. With the limit lifted, the same context
 * runs the kernel on its pool and matches the reference. A child exits 0
 * (pass), 77 (skipped, the reason on stdout) or 1 (the failure on stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "core/threadpool.h"
#include "util/testutil.h"

/* ASan and TSan reserve terabytes of address space for their shadow
 * memory: an address-space limit cannot be set under them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_SHADOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZER_SHADOW 1
#endif
#endif
#ifndef SANITIZER_SHADOW
#define SANITIZER_SHADOW 0
#endif

enum { THREADS = 64, M = 3, SKIP = 77 };
static const char *const spec_text = "matmul n=512 k=256 w=q8_0";

#define CHILD_CHECK(cond, ...)                                                                 \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

/* Threads of this process; -1 when /proc cannot tell. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Bytes of address space this process maps (/proc/self/statm); 0 when
 * unknown. */
static size_t mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    long page = sysconf(_SC_PAGESIZE);
    if (!f)
        return 0;
    if (fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    fclose(f);
    return page > 0 ? (size_t)pages * (size_t)page : 0;
}

/* The stack a thread gets by default (pthread_create with no attributes). */
static size_t default_stack(void)
{
    pthread_attr_t a;
    size_t bytes = 0;
    if (pthread_attr_init(&a) != 0)
        return 0;
    if (pthread_attr_getstacksize(&a, &bytes) != 0)
        bytes = 0;
    pthread_attr_destroy(&a);
    return bytes;
}

/* A context with a pool of THREADS, a kernel compiled (also what the
 * tiered compile will ask for: it comes from the context's memory, so no
 * LLVM work happens under a limit), packed weights, activations and the
 * reference result: everything that allocates much, done before a limit. */
typedef struct setup {
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_kernel *k;
    float *a, *c, *ref;
    void *blob, *packed;
    size_t wbytes, pbytes;
    int64_t n, kd;
} setup;

static int make_setup(setup *s)
{
    qkc_context_options co = {.struct_size = sizeof co, .threads = THREADS};
    qkc_spec_info info;
    float *w;
    qkc_rng rng = qkc_rng_from_name("thread_limits");
    memset(s, 0, sizeof *s);
    CHILD_CHECK(qkc_context_create(&co, &s->ctx) == QKC_OK, "context");
    CHILD_CHECK(qkc_spec_parse(s->ctx, spec_text, &s->spec) == QKC_OK, "%s", qkc_context_last_error(s->ctx));
    CHILD_CHECK(qkc_kernel_compile(s->ctx, s->spec, NULL, &s->k) == QKC_OK, "%s", qkc_context_last_error(s->ctx));
    CHILD_CHECK(qkc_spec_query(s->spec, &info) == QKC_OK, "spec query");
    s->n = info.n;
    s->kd = info.k;
    CHILD_CHECK(qkc_weights_bytes(s->ctx, s->spec, &s->wbytes) == QKC_OK, "weights bytes");
    CHILD_CHECK(qkc_kernel_packed_bytes(s->k, &s->pbytes) == QKC_OK, "packed bytes");
    w = malloc((size_t)(s->n * s->kd) * sizeof *w);
    s->a = malloc((size_t)(M * s->kd) * sizeof *s->a);
    s->c = malloc((size_t)(M * s->n) * sizeof *s->c);
    s->ref = malloc((size_t)(M * s->n) * sizeof *s->ref);
    s->blob = malloc(s->wbytes);
    s->packed = malloc(s->pbytes);
    CHILD_CHECK(w && s->a && s->c && s->ref && s->blob && s->packed, "out of memory");
    for (int64_t i = 0; i < s->n * s->kd; i++)
        w[i] = qkc_rng_normal(&rng);
    for (int64_t i = 0; i < M * s->kd; i++)
        s->a[i] = qkc_rng_normal(&rng);
    CHILD_CHECK(qkc_quantize(s->ctx, s->spec, w, s->kd, s->blob, s->wbytes) == QKC_OK, "quantize");
    free(w);
    CHILD_CHECK(qkc_weights_pack(s->ctx, s->k, s->blob, s->wbytes, s->packed, s->pbytes) == QKC_OK, "pack");
    {
        qkc_matmul_args ar = {s->a, s->kd, s->blob, s->wbytes, NULL, s->ref, s->n, M};
        CHILD_CHECK(qkc_reference_matmul(s->ctx, s->spec, &ar) == QKC_OK, "reference");
    }
    return 0;
}

static void free_setup(setup *s)
{
    qkc_kernel_destroy(s->k);
    qkc_spec_destroy(s->spec);
    qkc_context_destroy(s->ctx);
    free(s->a), free(s->c), free(s->ref), free(s->blob), free(s->packed);
}

static qkc_status run(setup *s)
{
    qkc_matmul_args args = {s->a, s->kd, s->packed, s->pbytes, NULL, s->c, s->n, M};
    return qkc_kernel_run(s->ctx, s->k, &args, NULL);
}

static int has(const char *text, const char *part)
{
    return text && strstr(text, part) != NULL;
}

/* Under a limit that lets no thread start: a pool, a kernel run on the
 * context's pool and a tiered compile fail with a status and a message,
 * and leave the threads as they were. */
static int expect_no_thread_starts(setup *s, int threads_before)
{
    static char not_null;
    /* not NULL, so that the failures are seen to reset them */
    qkc_threadpool *pool = (qkc_threadpool *)&not_null;
    qkc_kernel *tiered = (qkc_kernel *)&not_null;
    qkc_tune_options to = {.struct_size = sizeof to, .max_trials = 2};
    qkc_status st = qkc_threadpool_create(s->ctx, THREADS, &pool);
    CHILD_CHECK(st == QKC_ERR_NO_MEMORY, "qkc_threadpool_create: %s, expected no memory", qkc_status_str(st));
    CHILD_CHECK(pool == NULL, "qkc_threadpool_create failed but set *out");
    CHILD_CHECK(has(qkc_context_last_error(s->ctx), "could not start thread 2 of 64"), "pool: message '%s'",
                qkc_context_last_error(s->ctx));
    CHILD_CHECK(count_threads() == threads_before, "pool: %d threads, before %d", count_threads(), threads_before);

    st = run(s);
    CHILD_CHECK(st == QKC_ERR_NO_MEMORY, "qkc_kernel_run: %s, expected no memory", qkc_status_str(st));
    CHILD_CHECK(has(qkc_context_last_error(s->ctx), "could not start thread"), "run: message '%s'",
                qkc_context_last_error(s->ctx));
    CHILD_CHECK(count_threads() == threads_before, "run: %d threads, before %d", count_threads(), threads_before);
    /* a second run fails the same way: the failed pool was not kept */
    CHILD_CHECK(run(s) == QKC_ERR_NO_MEMORY, "second run");

    st = qkc_kernel_compile_tiered(s->ctx, s->spec, NULL, &to, &tiered);
    CHILD_CHECK(st == QKC_ERR_NO_MEMORY, "qkc_kernel_compile_tiered: %s, expected no memory", qkc_status_str(st));
    CHILD_CHECK(tiered == NULL, "qkc_kernel_compile_tiered failed but set *out");
    CHILD_CHECK(has(qkc_context_last_error(s->ctx), "could not start a thread"), "tiered: message '%s'",
                qkc_context_last_error(s->ctx));
    CHILD_CHECK(count_threads() == threads_before, "tiered: %d threads, before %d", count_threads(), threads_before);
    return 0;
}

/* With the limit lifted the same context starts its pool and the kernel
 * matches the reference. */
static int expect_recovery(setup *s, int threads_before)
{
    double err = 0, norm = 0;
    qkc_status st = run(s);
    CHILD_CHECK(st == QKC_OK, "run without the limit: %s: %s", qkc_status_str(st), qkc_context_last_error(s->ctx));
    for (int64_t i = 0; i < M * s->n; i++) {
        double d = (double)s->c[i] - s->ref[i];
        err += d * d;
        norm += (double)s->ref[i] * s->ref[i];
    }
    CHILD_CHECK(norm > 0 && err <= 1e-9 * norm, "run without the limit: nmse %.3e", norm > 0 ? err / norm : -1.0);
    CHILD_CHECK(count_threads() == threads_before + THREADS - 1, "%d threads with the pool, expected %d",
                count_threads(), threads_before + THREADS - 1);
    return 0;
}

static int set_soft(int resource, rlim_t value)
{
    struct rlimit r;
    if (getrlimit(resource, &r) != 0)
        return -1;
    if (r.rlim_max != RLIM_INFINITY && value > r.rlim_max)
        value = r.rlim_max;
    r.rlim_cur = value;
    return setrlimit(resource, &r);
}

static int child_address_space(void)
{
    setup s;
    struct rlimit saved;
    size_t stack = default_stack(), vm;
    int before;
    if (SANITIZER_SHADOW) {
        printf("skipped: a sanitizer's shadow memory takes terabytes of address space; RLIMIT_AS cannot apply\n");
        return SKIP;
    }
    if (stack < ((size_t)2 << 20)) {
        printf("skipped: threads get %zu KiB stacks (ulimit -s): too small to fail alone under an address-space "
               "limit\n",
               stack >> 10);
        return SKIP;
    }
    if (make_setup(&s))
        return 1;
    before = count_threads();
    vm = mapped_bytes();
    if (before < 1 || vm == 0) {
        printf("skipped: /proc/self/task or /proc/self/statm cannot be read\n");
        free_setup(&s);
        return SKIP;
    }
    CHILD_CHECK(getrlimit(RLIMIT_AS, &saved) == 0, "getrlimit");
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < vm + stack / 2) {
        printf("skipped: the hard RLIMIT_AS leaves no room to test under\n");
        free_setup(&s);
        return SKIP;
    }
    /* half a stack of room: no thread starts (glibc keeps the stacks of
     * joined threads for reuse, so this comes before any thread ran) */
    CHILD_CHECK(set_soft(RLIMIT_AS, (rlim_t)(vm + stack / 2)) == 0, "setrlimit: %s", strerror(errno));
    {
        void *volatile probe = malloc(stack); /* volatile: the call stays, at -O3 and with clang too */
        if (probe) {
            free(probe);
            setrlimit(RLIMIT_AS, &saved);
            printf("skipped: the address-space limit is not enforced here (qemu-user ignores RLIMIT_AS)\n");
            free_setup(&s);
            return SKIP;
        }
    }
    if (expect_no_thread_starts(&s, before))
        return 1;
    /* room for two and a half stacks: two threads start, the third fails;
     * the pool stops and joins the two */
    CHILD_CHECK(set_soft(RLIMIT_AS, (rlim_t)(mapped_bytes() + 2 * stack + stack / 2)) == 0, "setrlimit: %s",
                strerror(errno));
    {
        qkc_threadpool *pool = NULL;
        qkc_status st = qkc_threadpool_create(s.ctx, THREADS, &pool);
        CHILD_CHECK(st == QKC_ERR_NO_MEMORY, "pool, third thread: %s, expected no memory", qkc_status_str(st));
        CHILD_CHECK(has(qkc_context_last_error(s.ctx), "could not start thread 4 of 64"), "message '%s'",
                    qkc_context_last_error(s.ctx));
        CHILD_CHECK(count_threads() == before, "%d threads after the partial start, before %d", count_threads(),
                    before);
    }
    CHILD_CHECK(setrlimit(RLIMIT_AS, &saved) == 0, "setrlimit back: %s", strerror(errno));
    if (expect_recovery(&s, before))
        return 1;
    free_setup(&s);
    return 0;
}

static int child_processes(void)
{
    setup s;
    struct rlimit saved;
    int before;
    if (make_setup(&s))
        return 1;
    before = count_threads();
    if (before < 1) {
        printf("skipped: /proc/self/task cannot be read\n");
        free_setup(&s);
        return SKIP;
    }
    if (geteuid() == 0) {
        /* root is exempt from RLIMIT_NPROC: become nobody (65534) */
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            printf("skipped: as root, and cannot become nobody to be held to RLIMIT_NPROC (%s)\n", strerror(errno));
            free_setup(&s);
            return SKIP;
        }
    }
    CHILD_CHECK(getrlimit(RLIMIT_NPROC, &saved) == 0, "getrlimit");
    /* this process counts: no new thread fits */
    CHILD_CHECK(set_soft(RLIMIT_NPROC, 1) == 0, "setrlimit: %s", strerror(errno));
    {
        qkc_threadpool *pool = NULL;
        qkc_status st = qkc_threadpool_create(s.ctx, 2, &pool);
        if (st == QKC_OK) {
            /* a capability (CAP_SYS_RESOURCE, CAP_SYS_ADMIN) lifts the limit */
            qkc_threadpool_destroy(pool);
            printf("skipped: this process may exceed RLIMIT_NPROC (it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN)\n");
            free_setup(&s);
            return SKIP;
        }
    }
    if (expect_no_thread_starts(&s, before))
        return 1;
    CHILD_CHECK(setrlimit(RLIMIT_NPROC, &saved) == 0, "setrlimit back: %s", strerror(errno));
    if (expect_recovery(&s, before))
        return 1;
    free_setup(&s);
    return 0;
}

/* Runs child() in a child process; fails the test on its failure, skips
 * on its skip (the reason was printed). */
static void in_child(int (*child)(void))
{
    int status = 0;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc;
        alarm(120); /* a hang (a thread waited for that never started) ends as SIGALRM */
        rc = child();
        fflush(NULL);
        _exit(rc);
    }
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP)
        skip();
    if (!WIFEXITED(status))
        fail_msg("the child ended by signal %d (a crash, or SIGALRM: a hang)", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("the child failed (its message above)");
}

static void test_address_space_limit(void **state)
{
    (void)state;
    in_child(child_address_space);
}

static void test_process_limit(void **state)
{
    (void)state;
    in_child(child_processes);
}

int main(void)
{
    /* the parent starts no thread: each test forks */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_space_limit),
        cmocka_unit_test(test_process_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
