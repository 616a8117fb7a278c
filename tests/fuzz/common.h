/*
 * What the harnesses share (tests/fuzz/common.c): reporting a bug, a
 * scratch directory per process, and the checks every opened checkpoint
 * file must pass (fuzz_file, fuzz_open, fuzz_run).
 */
#ifndef QKC_TESTS_FUZZ_COMMON_H
#define QKC_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "qkc/qkc.h"

/* Print "fuzz: <message>" on stderr and abort(): libFuzzer keeps the input. */
void qkc_fuzz_bug(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* The process's scratch directory, made on the first call under
 * $QKC_FUZZ_TMPDIR, else /dev/shm (a tmpfs: fsync costs nothing), else
 * $TMPDIR or /tmp, and removed with everything in it at exit. Aborts when
 * it cannot be made. */
const char *qkc_fuzz_tmpdir(void);

/* tmpdir/name into buf (aborts when it does not fit). */
void qkc_fuzz_path(char *buf, size_t size, const char *name);

/* Write bytes to a file (created or truncated); aborts on failure. */
void qkc_fuzz_write_file(const char *path, const void *data, size_t size);

/* Remove everything in a directory, the directory itself kept. */
void qkc_fuzz_empty_dir(const char *dir);

/* A warning hook that drops the message (the harnesses provoke warnings
 * by the million). */
void qkc_fuzz_no_warning(const char *message, void *user);

/* The checks of an opened file (through the public API, as an application
 * uses it): every metadata entry and tensor can be read, tensor data lies
 * inside the file (at data + offset when `data` is not NULL; all in one
 * mapping unless `sharded`: a sharded checkpoint of `size` bytes in all,
 * each tensor inside its own shard), every name is
 * found, and every runnable tensor up to `max_weights` weights has a spec,
 * an imported weight blob (failing only by the documented GPTQ-v2
 * refusal) and a dequantization that works or explains itself. Aborts on
 * a bug. */
void qkc_fuzz_check_file(qkc_context *ctx, const qkc_file *file, const uint8_t *data, size_t size,
                         size_t max_weights, int sharded);

#endif
