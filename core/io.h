/*
 * File I/O: the one place where the runtime opens, reads, writes, syncs
 * and renames files (the disk cache, the tuning database, AOT output, the
 * checkpoint readers). What it guarantees:
 *
 *  - nothing blocks on a file that is not a regular file: files are opened
 *    with O_NONBLOCK and refused (QKC_IO_NOT_REGULAR) before any read, so
 *    a FIFO or a device named like a cache entry never hangs a compile;
 *  - reads and writes go on after EINTR and after short transfers;
 *  - whole-file writes are crash-consistent: a temporary file beside the
 *    target, written, fsync'd, renamed into place, and the directory
 *    fsync'd, so after a crash the target holds the old file or the whole
 *    new one (qkc_io_write_atomic);
 *  - a test can inject faults at every call: the context's I/O fault hook
 *    (qkc_context_set_io_fault) is asked before each open, read, write,
 *    fsync and rename, and may fail it with an errno or shorten a transfer.
 *
 * Functions return 0 or an errno value (QKC_IO_NOT_REGULAR for a file that
 * is not regular); qkc_io_strerror names either. They set no context
 * error: the caller says what it was doing.
 */
#ifndef QKC_RUNTIME_IO_H
#define QKC_RUNTIME_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "qkc/qkc.h"

/* The errno-like code for "not a regular file" (no errno says that). */
#define QKC_IO_NOT_REGULAR (-1)

typedef enum qkc_io_op {
    QKC_IO_OPEN,
    QKC_IO_READ,
    QKC_IO_WRITE,
    QKC_IO_FSYNC,
    QKC_IO_RENAME,
    QKC_IO_MMAP,
    QKC_IO_OP_COUNT
} qkc_io_op;

/* The fault hook (tests): called before each operation. Return 0 to let
 * it happen; for QKC_IO_READ and QKC_IO_WRITE it may first lower *len
 * (to at least 1) for a short transfer. Any other return is an errno the
 * operation then fails with, without being performed (EINTR is retried by
 * this layer, as a real EINTR is). `path` is the file's name where the
 * layer knows it (open, rename: the source; fsync of a directory: the
 * directory), else NULL. Called on the thread doing the I/O. */
typedef int (*qkc_io_fault_fn)(void *user, qkc_io_op op, const char *path, size_t *len);

/* Install (fn) or remove (NULL) the context's fault hook. Not for use
 * while other threads do I/O on the context. */
void qkc_context_set_io_fault(qkc_context *ctx, qkc_io_fault_fn fn, void *user);

/* Ask the context's hook (0 when there is none). Implemented with the
 * context (core/context.c). */
int qkc_context_io_fault(qkc_context *ctx, qkc_io_op op, const char *path, size_t *len);

/* A message for a code of this layer: strerror, or "not a regular file". */
const char *qkc_io_strerror(int err);

/* Open `path` for reading without blocking and without following it into
 * a terminal; refuse anything but a regular file. On success *fd is open
 * (close it with close()) and *st, when not NULL, holds its fstat. */
int qkc_io_open_read(qkc_context *ctx, const char *path, int *fd, struct stat *st);

/* read(2) with the fault hook: bytes read, 0 at the end, -1 with errno. */
ssize_t qkc_io_read(qkc_context *ctx, int fd, void *buf, size_t n);

/* Read up to n bytes, going on after EINTR and short reads until n bytes
 * or the end of the file; *got is what was read. 0 or an errno. */
int qkc_io_read_full(qkc_context *ctx, int fd, void *buf, size_t n, size_t *got);

/* pread(2) loop of the same kind, at `offset`. */
int qkc_io_pread_full(qkc_context *ctx, int fd, void *buf, size_t n, uint64_t offset, size_t *got);

/* Write all n bytes (going on after EINTR and short writes). 0 or an errno
 * (a write of 0 bytes is EIO). */
int qkc_io_write_full(qkc_context *ctx, int fd, const void *buf, size_t n);

int qkc_io_fsync(qkc_context *ctx, int fd);
int qkc_io_rename(qkc_context *ctx, const char *from, const char *to);

/* fsync the directory that holds `path` (so a rename into it is durable). */
int qkc_io_fsync_parent(qkc_context *ctx, const char *path);

/* Read a whole regular file of at most `max` bytes into a buffer from the
 * context's allocator, NUL-terminated one past *len (free with qkc_free).
 * *st, when not NULL, gets its fstat. EFBIG when larger than max. A file
 * that shrinks while read gives what was there. */
int qkc_io_read_file(qkc_context *ctx, const char *path, uint64_t max, uint8_t **data, size_t *len,
                     struct stat *st);

/* Create a directory and its parents with `mode` (an existing directory is
 * success, anything else in the way ENOTDIR). */
int qkc_io_mkdir_p(const char *dir, mode_t mode);

/* Write `len` bytes to `path` crash-consistently: a temporary file beside
 * it created with `mode` (before the umask), written, fsync'd, renamed
 * over `path`, and the directory fsync'd. Readers see the old file or the
 * whole new one; on failure the temporary file is removed and `path` is
 * untouched. Errors: QKC_ERR_IO with a message on the context. */
qkc_status qkc_io_write_atomic(qkc_context *ctx, const char *path, const void *data, size_t len, mode_t mode);

#endif /* QKC_RUNTIME_IO_H */
