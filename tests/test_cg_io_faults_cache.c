/*
 * I/O faults at every call the kernel cache makes (core/io.h's fault
 * hook, tests/util/io_fault.h): for each kind (a short transfer, EINTR,
 * EIO, ENOSPC) and N = 1, 2, 3, … the N-th I/O call of a scenario fails,
 * until a pass completes with nothing injected. The scenarios:
 *
 *   write    compile a kernel with a fresh cache directory (the entry write)
 *   read     compile it in another context (the entry read)
 *   list     qkc_cache_list
 *   export   qkc_cache_export to a bundle
 *   import   qkc_cache_import of a bundle into an empty directory
 *   clear    qkc_cache_clear
 *
 * Every pass must give a status with a message saying why, or the right
 * result (a compiled kernel is checked against the reference; a compile
 * whose entry could not be written or read still succeeds, with a
 * warning); a short transfer or EINTR must change nothing at all. Nothing
 * qkc allocated may stay live once the context is destroyed (a counting
 * allocator), no temporary file may stay behind, and every entry file and
 * bundle left on disk must be whole and valid.
 *
 * A failing case prints the command that reruns it:
 *     QKC_CASE='read|EIO|fail=1' ./test_cg_io_faults_cache
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "cache/diskcache.h"
#include "util/alloc_count.h"
#include "util/io_fault.h"
#include "util/testutil.h"

/* Small, so a compile is quick: the scenarios compile dozens of times. */
static const char *const spec_text = "matmul n=16 k=64 w=q8_0";

/* ------------------------------------------------------------- helpers */

typedef struct warnings {
    int count;
    char last[1024];
} warnings;

static void on_warn(const char *message, void *user)
{
    warnings *w = user;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", message);
}

static qkc_context *cache_context(const char *dir, const qkc_allocator *a, warnings *w)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .threads = 1};
    co.allocator = a;
    co.disk_cache = QKC_DISK_CACHE_ON;
    co.cache_dir = dir;
    co.warn = on_warn;
    co.warn_user = w;
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    return ctx;
}

static uint8_t *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void write_bytes(const char *path, const uint8_t *p, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Remove a directory, its files and the files of its subdirectories. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[700];
    struct stat sb;
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Entry files in dir that are valid entries named by their key's hash (in
 * *valid), and every other *.qko or *.tmp file (in *bad). */
static void check_dir(const char *dir, int *valid, int *bad, char *why, size_t why_size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    *valid = *bad = 0;
    why[0] = '\0';
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), len = 0;
        char path[700], name[72];
        qkc_dcache_entry e;
        const char *problem = NULL;
        uint8_t *raw;
        if (l > 4 && !strcmp(de->d_name + l - 4, ".tmp")) {
            (*bad)++;
            snprintf(why, why_size, "a temporary file was left: %s", de->d_name);
            continue;
        }
        if (l <= 4 || strcmp(de->d_name + l - 4, ".qko"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        raw = read_bytes(path, &len);
        if (!raw)
            problem = "unreadable";
        else if ((problem = qkc_dcache_check(raw, len, &e)) == NULL &&
                 (qkc_dcache_name(e.key, name), strcmp(name, de->d_name)))
            problem = "its name is not the hash of its key";
        if (problem) {
            (*bad)++;
            snprintf(why, why_size, "%s: %s", de->d_name, problem);
        } else {
            (*valid)++;
        }
        free(raw);
    }
    closedir(d);
}

/* --------------------------------------------------------- the fixture */

static struct {
    char base[128];      /* scratch directory of this run */
    char entry_name[256]; /* the kernel's entry file name */
    uint8_t *entry;      /* its bytes */
    size_t entry_len;
    uint8_t *bundle; /* a bundle holding it */
    size_t bundle_len;
} fx;

static int setup(void **state)
{
    char dir[200], path[500], bundle[200];
    warnings w = {0};
    qkc_context *c;
    qkc_spec *spec;
    qkc_kernel *k;
    DIR *d;
    struct dirent *de;
    size_t n = 0;
    (void)state;
    snprintf(fx.base, sizeof fx.base, "/tmp/qkc-iofaults-%ld-XXXXXX", (long)getpid());
    if (!mkdtemp(fx.base))
        return -1;
    snprintf(dir, sizeof dir, "%s/golden", fx.base);
    c = cache_context(dir, NULL, &w);
    if (qkc_spec_parse(c, spec_text, &spec) || qkc_kernel_compile(c, spec, NULL, &k))
        return -1;
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
    snprintf(bundle, sizeof bundle, "%s/golden.bundle", fx.base);
    if (qkc_cache_export(c, bundle, &n) || n != 1 || w.count)
        return -1;
    qkc_context_destroy(c);
    if (!(d = opendir(dir)))
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".qko")) {
            snprintf(fx.entry_name, sizeof fx.entry_name, "%s", de->d_name);
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            fx.entry = read_bytes(path, &fx.entry_len);
        }
    closedir(d);
    fx.bundle = read_bytes(bundle, &fx.bundle_len);
    return fx.entry && fx.bundle ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(fx.entry);
    free(fx.bundle);
    remove_tree(fx.base);
    return 0;
}

/* ----------------------------------------------------------- scenarios */

typedef enum scenario { S_WRITE, S_READ, S_LIST, S_EXPORT, S_IMPORT, S_CLEAR, S_COUNT } scenario;

static const char *const scenario_names[S_COUNT] = {"write", "read", "list", "export", "import", "clear"};

typedef struct pass {
    char fail[2400]; /* why this pass is wrong ("" when right) */
} pass;

#define WRONG(...)                                                                                                \
    do {                                                                                                          \
        if (!p->fail[0])                                                                                          \
            snprintf(p->fail, sizeof p->fail, __VA_ARGS__);                                                       \
    } while (0)

/* What a message about a fault of this kind must say. */
static const char *kind_text(qkc_test_io_kind kind)
{
    return kind == QKC_TEST_IO_EIO ? strerror(EIO) : kind == QKC_TEST_IO_ENOSPC ? strerror(ENOSPC) : NULL;
}

/* Compile the kernel on ctx with the fault armed, check it against the
 * reference; *from_disk says where it came from. */
static void compile_checked(qkc_context *ctx, qkc_test_io_fault *f, pass *p, int *from_disk)
{
    qkc_spec *spec = NULL;
    qkc_kernel *k = NULL;
    qkc_kernel_info ki;
    qkc_status st;
    char err[512];
    *from_disk = -1;
    assert_int_equal(qkc_spec_parse(ctx, spec_text, &spec), QKC_OK);
    qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, f);
    st = qkc_kernel_compile(ctx, spec, NULL, &k);
    qkc_context_set_io_fault(ctx, NULL, NULL);
    if (st != QKC_OK) {
        WRONG("the compile failed (%s): the cache must not fail it", qkc_context_last_error(ctx));
    } else {
        assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
        *from_disk = ki.from_disk;
        if (qkc_test_kernel_vs_reference(ctx, spec, k, spec_text, 2, err, sizeof err))
            WRONG("the kernel is wrong: %s", err);
    }
    qkc_kernel_destroy(k);
    qkc_spec_destroy(spec);
}

typedef struct listed {
    int valid, invalid;
    char spec[512], problem[256];
} listed;

static void on_entry(const qkc_cache_entry_info *e, void *user)
{
    listed *l = user;
    if (e->problem) {
        l->invalid++;
        snprintf(l->problem, sizeof l->problem, "%s", e->problem);
    } else {
        l->valid++;
        snprintf(l->spec, sizeof l->spec, "%s", e->spec);
    }
}

/* One pass of scenario s with fault f armed; what is wrong goes to p. */
static void run_pass(scenario s, qkc_test_io_fault *f, pass *p)
{
    qkc_test_alloc_count al;
    qkc_allocator hook = qkc_test_alloc_count_allocator(&al);
    char pdir[200], dir[260], bundle[260], path[800], why[1000];
    const char *text = kind_text(f->kind);
    int absorbed = f->kind == QKC_TEST_IO_SHORT || f->kind == QKC_TEST_IO_EINTR;
    warnings w = {0};
    qkc_status st = QKC_OK;
    qkc_context *ctx;
    int valid, bad, from_disk;
    size_t n = 99;

    snprintf(pdir, sizeof pdir, "%s/pass", fx.base);
    remove_tree(pdir);
    assert_int_equal(mkdir(pdir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/cache", pdir);
    snprintf(bundle, sizeof bundle, "%s/out.bundle", pdir);
    if (s != S_WRITE && s != S_IMPORT) {
        /* a cache holding the kernel's entry (and, for clear, a left-over
         * temporary file) */
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(path, sizeof path, "%s/%s", dir, fx.entry_name);
        write_bytes(path, fx.entry, fx.entry_len, 0600);
        if (s == S_CLEAR) {
            snprintf(path, sizeof path, "%s/.%s.1.2.0.tmp", dir, fx.entry_name);
            write_bytes(path, fx.entry, 10, 0600);
        }
    }
    if (s == S_IMPORT)
        write_bytes(bundle, fx.bundle, fx.bundle_len, 0600);

    ctx = cache_context(dir, &hook, &w);
    switch (s) {
    case S_WRITE:
        compile_checked(ctx, f, p, &from_disk);
        check_dir(dir, &valid, &bad, why, sizeof why);
        if (from_disk == 1)
            WRONG("a kernel came from an empty cache");
        if (bad)
            WRONG("%s", why);
        if (valid != 1 && !w.count)
            WRONG("the entry was not written and nothing said so");
        if (absorbed && (valid != 1 || w.count))
            WRONG("a %s was not absorbed: %d entries, warning '%s'", qkc_test_io_kind_name(f->kind), valid, w.last);
        if (w.count && (!strstr(w.last, "kernels are still compiled") || (text && !strstr(w.last, text))))
            WRONG("the warning does not say what failed: '%s'", w.last);
        break;
    case S_READ:
        compile_checked(ctx, f, p, &from_disk);
        check_dir(dir, &valid, &bad, why, sizeof why);
        if (bad || valid != 1)
            WRONG("after the read: %d valid entries; %s", valid, why);
        if (absorbed && (from_disk != 1 || w.count))
            WRONG("a %s was not absorbed: from_disk %d, warning '%s'", qkc_test_io_kind_name(f->kind), from_disk,
                  w.last);
        if (from_disk == 0 && (w.count != 1 || !strstr(w.last, "rebuilding it") || (text && !strstr(w.last, text))))
            WRONG("the kernel was rebuilt, but the warning does not say why: '%s'", w.last);
        if (from_disk == 1 && w.count)
            WRONG("a warning for a kernel from the disk cache: '%s'", w.last);
        break;
    case S_LIST: {
        listed l = {0};
        qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, f);
        st = qkc_cache_list(ctx, on_entry, &l);
        qkc_context_set_io_fault(ctx, NULL, NULL);
        if (st != QKC_OK)
            WRONG("list failed: %s", qkc_context_last_error(ctx));
        else if (l.valid + l.invalid != 1)
            WRONG("%d entries listed", l.valid + l.invalid);
        else if (l.valid && !strstr(l.spec, "w=q8_0"))
            WRONG("the entry's spec is '%s'", l.spec);
        else if (l.invalid && (absorbed || (text && !strstr(l.problem, text)) || w.count != 1 ||
                               !strstr(w.last, l.problem)))
            WRONG("the entry was listed as '%s' (warning '%s')", l.problem, w.last);
        break;
    }
    case S_EXPORT:
    case S_IMPORT:
        qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, f);
        st = s == S_EXPORT ? qkc_cache_export(ctx, bundle, &n) : qkc_cache_import(ctx, bundle, &n);
        qkc_context_set_io_fault(ctx, NULL, NULL);
        if (st == QKC_OK && n != 1)
            WRONG("%s said ok for %zu entries", scenario_names[s], n);
        if (st != QKC_OK && (st != QKC_ERR_IO || (text && !strstr(qkc_context_last_error(ctx), text))))
            WRONG("%s: status %s, message '%s'", scenario_names[s], qkc_status_str(st), qkc_context_last_error(ctx));
        if (absorbed && st != QKC_OK)
            WRONG("a %s was not absorbed: %s", qkc_test_io_kind_name(f->kind), qkc_context_last_error(ctx));
        if (w.count)
            WRONG("a warning: '%s'", w.last);
        check_dir(s == S_EXPORT ? pdir : dir, &valid, &bad, why, sizeof why);
        if (bad)
            WRONG("%s", why);
        if (s == S_EXPORT) {
            size_t len = 0;
            uint8_t *raw = read_bytes(bundle, &len);
            /* after the rename the bundle is whole even when the directory
             * sync then failed; before it there is none */
            if (st == QKC_OK && !raw)
                WRONG("no bundle");
            if (raw && (len != fx.bundle_len || memcmp(raw, fx.bundle, len)))
                WRONG("the bundle on disk differs from the one exported without faults");
            free(raw);
        } else {
            size_t len = 0;
            uint8_t *raw;
            snprintf(path, sizeof path, "%s/%s", dir, fx.entry_name);
            raw = read_bytes(path, &len);
            if (st == QKC_OK && !raw)
                WRONG("import said ok, and wrote no entry");
            if (raw && (len != fx.entry_len || memcmp(raw, fx.entry, len)))
                WRONG("the imported entry differs from the exported one");
            free(raw);
        }
        break;
    case S_CLEAR:
        qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, f);
        st = qkc_cache_clear(ctx, &n);
        qkc_context_set_io_fault(ctx, NULL, NULL);
        check_dir(dir, &valid, &bad, why, sizeof why);
        if (st != QKC_OK || n != 1 || valid || bad)
            WRONG("clear: status %s, %zu removed, %d entries and %d other files left", qkc_status_str(st), n, valid,
                  bad);
        break;
    case S_COUNT: break;
    }
    qkc_context_destroy(ctx);
    if (qkc_test_alloc_count_live(&al))
        WRONG("%ld blocks still allocated after qkc_context_destroy", qkc_test_alloc_count_live(&al));
    remove_tree(pdir);
}

static void test_fault_every_cache_io_call(void **state)
{
    int failures = 0;
    (void)state;
    for (int s = 0; s < S_COUNT; s++) {
        for (int kind = 0; kind < QKC_TEST_IO_KIND_COUNT; kind++) {
            int faulted = 0, completed = 0, ops[QKC_IO_OP_COUNT] = {0};
            for (int n = 1; n <= 200 && !completed; n++) {
                char name[128];
                qkc_test_io_fault f;
                pass p;
                snprintf(name, sizeof name, "%s|%s|fail=%d", scenario_names[s],
                         qkc_test_io_kind_name((qkc_test_io_kind)kind), n);
                if (!qkc_case_selected(name))
                    continue;
                memset(&p, 0, sizeof p);
                qkc_test_io_fault_arm(&f, (qkc_test_io_kind)kind, n);
                run_pass((scenario)s, &f, &p);
                if (f.fired) {
                    faulted++;
                } else {
                    completed = 1;
                    memcpy(ops, f.ops, sizeof ops);
                }
                if (p.fail[0]) {
                    char where[64] = "nothing injected";
                    if (f.fired)
                        snprintf(where, sizeof where, "%s at a call to %s",
                                 qkc_test_io_kind_name((qkc_test_io_kind)kind), qkc_test_io_op_name(f.fired_op));
                    print_error("case %s (%s): %s\n  rerun: QKC_CASE='%s' ./test_cg_io_faults_cache\n", name, where,
                                p.fail, name);
                    failures++;
                }
            }
            if (getenv("QKC_CASE") && getenv("QKC_CASE")[0])
                continue;
            if (!completed) {
                print_error("%s %s: no pass without a fault within 200 calls\n", scenario_names[s],
                            qkc_test_io_kind_name((qkc_test_io_kind)kind));
                failures++;
            }
            print_message("%-6s %-6s %d calls faulted one at a time (a clean pass: %d open, %d read, %d write, "
                          "%d fsync, %d rename)\n",
                          scenario_names[s], qkc_test_io_kind_name((qkc_test_io_kind)kind), faulted,
                          ops[QKC_IO_OPEN], ops[QKC_IO_READ], ops[QKC_IO_WRITE], ops[QKC_IO_FSYNC],
                          ops[QKC_IO_RENAME]);
            /* the hook reaches every scenario that does I/O (clear only
             * lists and unlinks, which the hook does not see) */
            if (s != S_CLEAR && kind == QKC_TEST_IO_EIO && faulted == 0) {
                print_error("%s %s: no call was faulted\n", scenario_names[s],
                            qkc_test_io_kind_name((qkc_test_io_kind)kind));
                failures++;
            }
        }
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_every_cache_io_call),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
