/*
 * The runtime's file layer (core/io.h): whole-file reads and
 * crash-consistent writes under injected faults at every call (short
 * transfers, EINTR, EIO, ENOSPC), non-regular files refused without
 * blocking, and the permissions a write asks for.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "core/context.h"
#include "core/io.h"
#include "util/io_fault.h"

static char dir[] = "/tmp/qkc-test-io-XXXXXX";

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

static qkc_context *make_ctx(void)
{
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    return ctx;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131u + seed * 7u + (i >> 8));
}

/* Write a file atomically over an older one and read it back, failing the
 * N-th I/O call for every N and every kind: each pass gives a status and
 * leaves the old file whole, or succeeds with the new one; no temporary
 * file stays behind. Both outcomes are checked byte for byte. */
static void atomic_write_and_read_under_faults(void **state)
{
    enum { OLD = 5000, NEW = 70001 };
    static uint8_t old_data[OLD], new_data[NEW];
    char path[256];
    (void)state;
    fill(old_data, OLD, 1);
    fill(new_data, NEW, 2);
    snprintf(path, sizeof path, "%s/atomic.bin", dir);
    for (int kind = 0; kind < QKC_TEST_IO_KIND_COUNT; kind++) {
        int passes = 0;
        for (int n = 1;; n++) {
            qkc_context *ctx = make_ctx();
            qkc_test_io_fault f;
            qkc_status st;
            uint8_t *got = NULL;
            size_t len = 0;
            int err;
            assert_int_equal(qkc_io_write_atomic(ctx, path, old_data, OLD, 0644), QKC_OK);
            qkc_test_io_fault_arm(&f, (qkc_test_io_kind)kind, n);
            qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, &f);
            st = qkc_io_write_atomic(ctx, path, new_data, NEW, 0644);
            if (st == QKC_OK)
                err = qkc_io_read_file(ctx, path, NEW, &got, &len, NULL);
            else
                err = -2;
            qkc_context_set_io_fault(ctx, NULL, NULL);
            if (kind == QKC_TEST_IO_SHORT || kind == QKC_TEST_IO_EINTR) {
                /* the layer absorbs both: every pass must succeed */
                if (st != QKC_OK || err != 0)
                    fail_msg("%s at call %d: status %d (%s), read %d", qkc_test_io_kind_name((qkc_test_io_kind)kind),
                             n, st, qkc_context_last_error(ctx), err);
            }
            if (st == QKC_OK && err == 0) {
                assert_int_equal(len, NEW);
                assert_memory_equal(got, new_data, NEW);
            } else {
                /* the failed write or read: the file on disk is one whole version */
                uint8_t *disk;
                size_t dlen;
                assert_int_equal(qkc_io_read_file(ctx, path, NEW, &disk, &dlen, NULL), 0);
                assert_true((dlen == OLD && !memcmp(disk, old_data, OLD)) ||
                            (dlen == NEW && !memcmp(disk, new_data, NEW)));
                qkc_free(ctx, disk);
                if (st != QKC_OK)
                    assert_non_null(strstr(qkc_context_last_error(ctx), dir));
            }
            qkc_free(ctx, got);
            assert_int_equal(qkc_test_count_tmp_files(dir), 0);
            qkc_context_destroy(ctx);
            passes++;
            if (!f.fired)
                break;
        }
        /* open, write, fsync, rename, dir fsync, open, read (+ EOF read) */
        assert_true(passes >= 3);
        print_message("io: %-6s %d calls faulted one at a time\n", qkc_test_io_kind_name((qkc_test_io_kind)kind),
                      passes - 1);
    }
}

/* A FIFO is refused at once, without waiting for a writer. */
static void fifo_refused_without_blocking(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    uint8_t *data;
    size_t len;
    int fd;
    (void)state;
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10); /* a regression would block in open() */
    assert_int_equal(qkc_io_read_file(ctx, path, 1 << 20, &data, &len, NULL), QKC_IO_NOT_REGULAR);
    assert_int_equal(qkc_io_open_read(ctx, path, &fd, NULL), QKC_IO_NOT_REGULAR);
    assert_int_equal(fd, -1);
    assert_int_equal(qkc_io_read_file(ctx, dir, 1 << 20, &data, &len, NULL), QKC_IO_NOT_REGULAR);
    alarm(0);
    assert_string_equal(qkc_io_strerror(QKC_IO_NOT_REGULAR), "not a regular file");
    qkc_context_destroy(ctx);
}

/* The mode a write asks for reaches the file (under the umask), and a file
 * larger than the reader's limit is EFBIG. */
static void modes_and_limits(void **state)
{
    char path[256];
    qkc_context *ctx = make_ctx();
    struct stat st;
    uint8_t buf[100] = {0}, *data;
    size_t len;
    mode_t old = umask(022);
    (void)state;
    snprintf(path, sizeof path, "%s/private", dir);
    assert_int_equal(qkc_io_write_atomic(ctx, path, buf, sizeof buf, 0600), QKC_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(qkc_io_read_file(ctx, path, 99, &data, &len, NULL), EFBIG);
    assert_int_equal(qkc_io_read_file(ctx, path, 100, &data, &len, &st), 0);
    assert_int_equal(len, 100);
    assert_int_equal(st.st_size, 100);
    assert_int_equal(data[100], 0); /* NUL-terminated */
    qkc_free(ctx, data);
    umask(old);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(atomic_write_and_read_under_faults),
        cmocka_unit_test(fifo_refused_without_blocking),
        cmocka_unit_test(modes_and_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
