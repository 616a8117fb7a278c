/* I/O fault injection for tests (see io_fault.h). */
#include "io_fault.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

void qkc_test_io_fault_arm(qkc_test_io_fault *f, qkc_test_io_kind kind, int target)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->target = target;
}

static int applies(qkc_test_io_kind kind, qkc_io_op op)
{
    switch (kind) {
    case QKC_TEST_IO_SHORT: return op == QKC_IO_READ || op == QKC_IO_WRITE;
    case QKC_TEST_IO_ENOSPC: return op == QKC_IO_WRITE || op == QKC_IO_FSYNC;
    case QKC_TEST_IO_EINTR:
    case QKC_TEST_IO_EIO: return op != QKC_IO_MMAP || kind == QKC_TEST_IO_EIO;
    case QKC_TEST_IO_KIND_COUNT: break;
    }
    return 0;
}

int qkc_test_io_fault_fn(void *user, qkc_io_op op, const char *path, size_t *len)
{
    qkc_test_io_fault *f = user;
    (void)path;
    if (op < QKC_IO_OP_COUNT)
        f->ops[op]++;
    if (f->fired || !applies(f->kind, op) || ++f->seen != f->target)
        return 0;
    f->fired = 1;
    f->fired_op = op;
    switch (f->kind) {
    case QKC_TEST_IO_SHORT:
        if (len && *len > 1)
            *len = 1;
        return 0;
    case QKC_TEST_IO_EINTR: return EINTR;
    case QKC_TEST_IO_EIO: return EIO;
    case QKC_TEST_IO_ENOSPC: return ENOSPC;
    case QKC_TEST_IO_KIND_COUNT: break;
    }
    return 0;
}

const char *qkc_test_io_kind_name(qkc_test_io_kind kind)
{
    static const char *const names[] = {"short", "EINTR", "EIO", "ENOSPC"};
    return kind < QKC_TEST_IO_KIND_COUNT ? names[kind] : "?";
}

const char *qkc_test_io_op_name(qkc_io_op op)
{
    static const char *const names[] = {"open", "read", "write", "fsync", "rename", "mmap"};
    return op < QKC_IO_OP_COUNT ? names[op] : "?";
}

int qkc_test_count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".tmp"))
            n++;
    }
    closedir(d);
    return n;
}
