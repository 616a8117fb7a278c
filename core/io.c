/* File I/O with non-blocking opens, EINTR and short-transfer handling,
 * crash-consistent writes and the context's fault hook (see io.h). */
#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/context.h"

const char *qkc_io_strerror(int err)
{
    return err == QKC_IO_NOT_REGULAR ? "not a regular file" : strerror(err);
}

/* The hook's verdict for one attempt: 0 (go on, *len possibly lowered),
 * else the errno to fail with. */
static int fault(qkc_context *ctx, qkc_io_op op, const char *path, size_t *len)
{
    size_t want = len ? *len : 0;
    int err = qkc_context_io_fault(ctx, op, path, len);
    if (err == 0 && len && (*len == 0 || *len > want))
        *len = want; /* a hook may shorten a transfer, never lengthen or empty it */
    return err;
}

int qkc_io_open_read(qkc_context *ctx, const char *path, int *fd, struct stat *st)
{
    struct stat sb;
    int f = -1, err;
    *fd = -1;
    do {
        err = fault(ctx, QKC_IO_OPEN, path, NULL);
        if (err == 0) {
            /* O_NONBLOCK: opening a FIFO without a writer must not wait. */
            f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
            err = f < 0 ? errno : 0;
        }
    } while (err == EINTR);
    if (err)
        return err;
    if (fstat(f, &sb) != 0) {
        err = errno;
        close(f);
        return err;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return QKC_IO_NOT_REGULAR;
    }
    if (st)
        *st = sb;
    *fd = f;
    return 0;
}

ssize_t qkc_io_read(qkc_context *ctx, int fd, void *buf, size_t n)
{
    int err = fault(ctx, QKC_IO_READ, NULL, &n);
    if (err) {
        errno = err;
        return -1;
    }
    return read(fd, buf, n);
}

int qkc_io_read_full(qkc_context *ctx, int fd, void *buf, size_t n, size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < n) {
        ssize_t r = qkc_io_read(ctx, fd, p + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

int qkc_io_pread_full(qkc_context *ctx, int fd, void *buf, size_t n, uint64_t offset, size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < n) {
        size_t chunk = n - *got;
        ssize_t r;
        int err = fault(ctx, QKC_IO_READ, NULL, &chunk);
        if (err == EINTR)
            continue;
        if (err)
            return err;
        r = pread(fd, p + *got, chunk, (off_t)(offset + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

int qkc_io_write_full(qkc_context *ctx, int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        size_t chunk = n;
        ssize_t w;
        int err = fault(ctx, QKC_IO_WRITE, NULL, &chunk);
        if (err == EINTR)
            continue;
        if (err)
            return err;
        w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int qkc_io_fsync(qkc_context *ctx, int fd)
{
    int err;
    do {
        err = fault(ctx, QKC_IO_FSYNC, NULL, NULL);
        if (err == 0)
            err = fsync(fd) == 0 ? 0 : errno;
    } while (err == EINTR);
    return err;
}

int qkc_io_rename(qkc_context *ctx, const char *from, const char *to)
{
    int err;
    do {
        err = fault(ctx, QKC_IO_RENAME, from, NULL);
        if (err == 0)
            err = rename(from, to) == 0 ? 0 : errno;
    } while (err == EINTR);
    return err;
}

int qkc_io_fsync_parent(qkc_context *ctx, const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    int fd, err;
    if (n >= sizeof dir)
        return ENAMETOOLONG;
    if (!slash)
        memcpy(dir, ".", 2);
    else if (n == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    do {
        err = fault(ctx, QKC_IO_FSYNC, dir, NULL);
        if (err == 0) {
            fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0) {
                err = errno;
            } else {
                err = fsync(fd) == 0 ? 0 : errno;
                close(fd);
            }
        }
    } while (err == EINTR);
    /* Some file systems cannot sync a directory: that is no failure. */
    return err == EINVAL || err == EROFS ? 0 : err;
}

int qkc_io_read_file(qkc_context *ctx, const char *path, uint64_t max, uint8_t **data, size_t *len,
                     struct stat *st)
{
    struct stat sb;
    size_t got = 0;
    uint8_t *buf;
    int fd, err = qkc_io_open_read(ctx, path, &fd, &sb);
    if (err)
        return err;
    if ((uint64_t)sb.st_size > max || (uint64_t)sb.st_size >= SIZE_MAX) {
        close(fd);
        return EFBIG;
    }
    buf = qkc_alloc(ctx, (size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    err = qkc_io_read_full(ctx, fd, buf, (size_t)sb.st_size, &got);
    close(fd);
    if (err) {
        qkc_free(ctx, buf);
        return err;
    }
    buf[got] = '\0';
    if (st)
        *st = sb;
    *data = buf;
    *len = got; /* a file that shrank while read gives what was there */
    return 0;
}

/* mkdir, where an existing directory is success and anything else there
 * is ENOTDIR. */
static int make_dir(const char *path, mode_t mode)
{
    struct stat st;
    if (mkdir(path, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return errno;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int qkc_io_mkdir_p(const char *dir, mode_t mode)
{
    char tmp[4096];
    size_t n = strlen(dir);
    int err;
    if (n == 0 || n >= sizeof tmp)
        return ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if ((err = make_dir(tmp, mode)) != 0)
            return err;
        *p = '/';
    }
    return make_dir(tmp, mode);
}

qkc_status qkc_io_write_atomic(qkc_context *ctx, const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4200];
    const char *step = "create";
    int fd = -1, err = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        const char *slash = strrchr(path, '/');
        int dirlen = slash ? (int)(slash - path + 1) : 0;
        /* pid, the clock and a stack address: unique among threads and processes */
        if (snprintf(tmp, sizeof tmp, "%.*s.%s.%ld.%lx.%d.tmp", dirlen, path, slash ? slash + 1 : path, (long)getpid(),
                     (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)&fd, attempt) >= (int)sizeof tmp)
            return qkc_fail(ctx, QKC_ERR_IO, "path too long: %s", path);
        err = fault(ctx, QKC_IO_OPEN, tmp, NULL);
        if (err == 0) {
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            err = fd < 0 ? errno : 0;
        }
        if (err && err != EEXIST && err != EINTR)
            return qkc_fail(ctx, QKC_ERR_IO, "cannot create %s: %s", tmp, strerror(err));
    }
    if (fd < 0)
        return qkc_fail(ctx, QKC_ERR_IO, "no free temporary name for %s", path);
    if ((err = qkc_io_write_full(ctx, fd, data, len)) != 0) {
        step = "write";
    } else if ((err = qkc_io_fsync(ctx, fd)) != 0) {
        step = "sync";
    }
    if (close(fd) != 0 && !err) {
        err = errno;
        step = "close";
    }
    if (err) {
        unlink(tmp);
        return qkc_fail(ctx, QKC_ERR_IO, "cannot %s %s: %s", step, tmp, strerror(err));
    }
    if ((err = qkc_io_rename(ctx, tmp, path)) != 0) {
        unlink(tmp);
        return qkc_fail(ctx, QKC_ERR_IO, "cannot put %s in place: %s", path, strerror(err));
    }
    /* The rename is in place; syncing the directory makes it durable. A
     * failure here leaves a whole file (old or new) and is reported. */
    if ((err = qkc_io_fsync_parent(ctx, path)) != 0)
        return qkc_fail(ctx, QKC_ERR_IO, "cannot sync the directory of %s: %s", path, strerror(err));
    return QKC_OK;
}
