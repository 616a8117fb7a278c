/*
 * Opening checkpoint files from disk: anything but a regular file (a FIFO,
 * a directory) is refused at once, without blocking; the read mode
 * (qkc_file_options.load = QKC_FILE_LOAD_READ, or QKC_FILE_MMAP=0 in the
 * environment) holds the file in memory, so a file truncated after
 * qkc_file_open still gives its weights; in the mmap mode the same
 * truncation is the operating system's SIGBUS, as docs/files.md says
 * (proved in a child process, since it ends the process); load options are
 * checked, and files over QKC_MAX_FILE_BYTES are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"
#include "util/file_fixtures.h"
#include "util/file_writer.h"
#include "util/io_fault.h"

static char dir[] = "/tmp/qkc-test-file-open-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A GGUF file whose one Q8_0 tensor (64 x 512, 34 KiB) lies well past the
 * first page, so that truncating the file to 64 bytes takes its pages away.
 * *blob (malloc'd) is the tensor's bytes. */
static void write_gguf(qkc_context *ctx, const char *path, void **blob, size_t *bytes)
{
    qkc_gguf_writer w;
    qkc_bytes out;
    uint64_t dims[2] = {512, 64};
    static uint8_t pad[8192];
    uint64_t pdims[1] = {8192 / 4};
    assert_int_equal(qkc_fixture_blob(ctx, "w=q8_0", 64, 512, "test_file_open", blob, bytes), 0);
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    assert_int_equal(qkc_gguf_add_tensor(&w, "pad", 0, 1, pdims, pad, sizeof pad), 0);
    assert_int_equal(qkc_gguf_add_tensor(&w, "w", 8, 2, dims, *blob, *bytes), 0);
    assert_int_equal(qkc_gguf_finish(&w, &out), 0);
    assert_true(w.data_pos[1] >= 8192);
    assert_int_equal(qkc_bytes_save(&out, path), 0);
    qkc_bytes_free(&out);
    qkc_gguf_free(&w);
}

static qkc_context *make_ctx(void)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    return ctx;
}

/* Regression: qkc_file_open opened without O_NONBLOCK before checking the
 * file type, so a FIFO without a writer hung it for ever. */
static void fifo_and_directory_refused_without_blocking(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    qkc_file *file = (qkc_file *)&file;
    (void)state;
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10); /* a regression blocks in open(): SIGALRM ends the test */
    assert_int_equal(qkc_file_open(ctx, path, NULL, &file), QKC_ERR_IO);
    alarm(0);
    assert_null(file);
    assert_non_null(strstr(qkc_context_last_error(ctx), "not a regular file"));
    assert_non_null(strstr(qkc_context_last_error(ctx), path));
    assert_int_equal(qkc_file_open(ctx, dir, NULL, &file), QKC_ERR_IO);
    assert_non_null(strstr(qkc_context_last_error(ctx), "not a regular file"));
    unlink(path);
    qkc_context_destroy(ctx);
}

/* The read mode copies the file: truncating it afterwards changes nothing
 * the process sees (with mmap this is a SIGBUS: see below). */
static void read_mode_survives_truncation(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    qkc_file_options fo = {.struct_size = sizeof fo, .load = QKC_FILE_LOAD_READ};
    qkc_file *file;
    qkc_tensor_info ti;
    void *blob, *copy;
    size_t bytes;
    int64_t index;
    (void)state;
    snprintf(path, sizeof path, "%s/read.gguf", dir);
    write_gguf(ctx, path, &blob, &bytes);
    assert_int_equal(qkc_file_open(ctx, path, &fo, &file), QKC_OK);
    assert_int_equal(truncate(path, 64), 0);
    assert_int_equal(qkc_file_find(ctx, file, "w", &index), QKC_OK);
    assert_int_equal(qkc_file_tensor(file, index, &ti), QKC_OK);
    assert_int_equal(ti.bytes, bytes);
    assert_int_equal((uintptr_t)ti.data % 32, 0); /* aligned in memory as in the file */
    copy = malloc(bytes);
    assert_non_null(copy);
    assert_int_equal(qkc_file_weights(ctx, file, index, copy, bytes), QKC_OK);
    assert_memory_equal(copy, blob, bytes);
    assert_memory_equal(ti.data, blob, bytes);
    qkc_file_close(file);
    unlink(path);
    free(copy);
    free(blob);
    qkc_context_destroy(ctx);
}

/* Which way a file is held, seen through the I/O fault hook (which counts
 * every operation): QKC_FILE_MMAP=0 reads unless the option says mmap; the
 * option's read mode wins over QKC_FILE_MMAP=1. */
static void load_mode_from_option_and_environment(void **state)
{
    static const struct {
        const char *env; /* NULL: unset */
        int load;
        int mapped;
    } cases[] = {
        {NULL, QKC_FILE_LOAD_DEFAULT, 1}, {"1", QKC_FILE_LOAD_DEFAULT, 1}, {"0", QKC_FILE_LOAD_DEFAULT, 0},
        {"0", QKC_FILE_LOAD_MMAP, 1},     {"1", QKC_FILE_LOAD_READ, 0},    {NULL, QKC_FILE_LOAD_READ, 0},
    };
    char path[256];
    qkc_context *ctx = make_ctx();
    void *blob;
    size_t bytes;
    (void)state;
    snprintf(path, sizeof path, "%s/mode.gguf", dir);
    write_gguf(ctx, path, &blob, &bytes);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkc_file_options fo = {.struct_size = sizeof fo, .load = cases[i].load};
        qkc_test_io_fault f;
        qkc_file *file;
        qkc_context *c2; /* the environment is read when a context is created */
        if (cases[i].env)
            setenv("QKC_FILE_MMAP", cases[i].env, 1);
        else
            unsetenv("QKC_FILE_MMAP");
        c2 = make_ctx();
        qkc_test_io_fault_arm(&f, QKC_TEST_IO_EIO, 0); /* count only: target 0 never fires */
        qkc_context_set_io_fault(c2, qkc_test_io_fault_fn, &f);
        assert_int_equal(qkc_file_open(c2, path, &fo, &file), QKC_OK);
        qkc_context_set_io_fault(c2, NULL, NULL);
        if (f.ops[QKC_IO_MMAP] != cases[i].mapped || (f.ops[QKC_IO_READ] > 0) == cases[i].mapped)
            fail_msg("QKC_FILE_MMAP=%s load=%d: %d mmap and %d read calls, expected the file %s",
                     cases[i].env ? cases[i].env : "(unset)", cases[i].load, f.ops[QKC_IO_MMAP], f.ops[QKC_IO_READ],
                     cases[i].mapped ? "mapped" : "read");
        assert_int_equal(f.ops[QKC_IO_OPEN], 1);
        qkc_file_close(file);
        qkc_context_destroy(c2);
    }
    unsetenv("QKC_FILE_MMAP");
    /* an old caller's options (struct_size without load) map the file */
    {
        qkc_file_options fo = {.struct_size = offsetof(qkc_file_options, load), .gptq_version = 0};
        qkc_file *file;
        qkc_test_io_fault f;
        qkc_test_io_fault_arm(&f, QKC_TEST_IO_EIO, 0);
        qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, &f);
        assert_int_equal(qkc_file_open(ctx, path, &fo, &file), QKC_OK);
        qkc_context_set_io_fault(ctx, NULL, NULL);
        assert_int_equal(f.ops[QKC_IO_MMAP], 1);
        qkc_file_close(file);
    }
    /* a load mode that does not exist */
    {
        qkc_file_options fo = {.struct_size = sizeof fo, .load = 3};
        qkc_file *file;
        assert_int_equal(qkc_file_open(ctx, path, &fo, &file), QKC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(qkc_context_last_error(ctx), "load is 3"));
        assert_int_equal(qkc_file_open_memory(ctx, blob, bytes, &fo, &file), QKC_ERR_INVALID_ARGUMENT);
    }
    unlink(path);
    free(blob);
    qkc_context_destroy(ctx);
}

/* What docs/files.md says of the mmap mode: a file that shrinks under the
 * mapping ends the process with SIGBUS when the lost pages are touched.
 * Run in a child (with SIGBUS's default action, whatever a sanitizer
 * installed), which must die of exactly that. */
static void mmap_mode_truncation_is_sigbus(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    void *blob;
    size_t bytes;
    pid_t pid;
    int status = 0;
    (void)state;
    snprintf(path, sizeof path, "%s/mapped.gguf", dir);
    write_gguf(ctx, path, &blob, &bytes);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        qkc_file_options fo = {.struct_size = sizeof fo, .load = QKC_FILE_LOAD_MMAP};
        qkc_file *file;
        int64_t index;
        signal(SIGBUS, SIG_DFL);
        alarm(20);
        if (qkc_file_open(ctx, path, &fo, &file) != QKC_OK || qkc_file_find(ctx, file, "w", &index) != QKC_OK ||
            truncate(path, 64) != 0)
            _exit(3);
        qkc_file_weights(ctx, file, index, blob, bytes); /* reads the lost pages */
        _exit(4);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS)
        fail_msg("the child should die of SIGBUS (%d); it %s %d", SIGBUS, WIFSIGNALED(status) ? "died of signal" : "exited with",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    unlink(path);
    free(blob);
    qkc_context_destroy(ctx);
}

/* A file over QKC_MAX_FILE_BYTES is refused before it is mapped (a sparse
 * file: no disk space is used). */
static void file_over_the_size_limit(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    qkc_file *file;
    int fd;
    (void)state;
    snprintf(path, sizeof path, "%s/huge.gguf", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    if (ftruncate(fd, (off_t)(QKC_MAX_FILE_BYTES + 1)) != 0) {
        int err = errno;
        close(fd);
        unlink(path);
        qkc_context_destroy(ctx);
        print_message("skipped: this file system cannot hold a sparse file of 2^42 + 1 bytes (%s)\n", strerror(err));
        skip();
    }
    close(fd);
    assert_int_equal(qkc_file_open(ctx, path, NULL, &file), QKC_ERR_LIMIT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "QKC_MAX_FILE_BYTES"));
    unlink(path);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_and_directory_refused_without_blocking),
        cmocka_unit_test(read_mode_survives_truncation),
        cmocka_unit_test(load_mode_from_option_and_environment),
        cmocka_unit_test(mmap_mode_truncation_is_sigbus),
        cmocka_unit_test(file_over_the_size_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
