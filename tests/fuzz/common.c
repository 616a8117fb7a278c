/* What the harnesses share (see common.h). */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void qkc_fuzz_bug(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ------------------------------------------------------------ scratch */

static char tmpdir[512];

static void remove_tree(const char *dir, int keep_top)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d) {
        while ((de = readdir(d)) != NULL) {
            char path[1024];
            struct stat sb;
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
                continue;
            if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
                remove_tree(path, 0);
            else
                unlink(path);
        }
        closedir(d);
    }
    if (!keep_top)
        rmdir(dir);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0])
        remove_tree(tmpdir, 0);
}

static int usable_dir(const char *dir)
{
    struct stat sb;
    return dir && *dir && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && access(dir, W_OK | X_OK) == 0;
}

const char *qkc_fuzz_tmpdir(void)
{
    const char *base;
    if (tmpdir[0])
        return tmpdir;
    base = getenv("QKC_FUZZ_TMPDIR");
    if (!usable_dir(base))
        base = "/dev/shm";
    if (!usable_dir(base))
        base = getenv("TMPDIR");
    if (!usable_dir(base))
        base = "/tmp";
    if (snprintf(tmpdir, sizeof tmpdir, "%s/qkc-fuzz-XXXXXX", base) >= (int)sizeof tmpdir || !mkdtemp(tmpdir))
        qkc_fuzz_bug("cannot make a scratch directory under %s: %s", base, strerror(errno));
    atexit(remove_tmpdir);
    return tmpdir;
}

void qkc_fuzz_path(char *buf, size_t size, const char *name)
{
    if (snprintf(buf, size, "%s/%s", qkc_fuzz_tmpdir(), name) >= (int)size)
        qkc_fuzz_bug("scratch path too long");
}

void qkc_fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        qkc_fuzz_bug("cannot write %s: %s", path, strerror(errno));
}

void qkc_fuzz_empty_dir(const char *dir)
{
    remove_tree(dir, 1);
}

void qkc_fuzz_no_warning(const char *message, void *user)
{
    (void)message, (void)user;
}

/* ------------------------------------------------------- file checks */

void qkc_fuzz_check_file(qkc_context *ctx, const qkc_file *file, const uint8_t *data, size_t size,
                         size_t max_weights, int sharded)
{
    qkc_file_info fi;
    uintptr_t base = 0;
    if (qkc_file_query(file, &fi) != QKC_OK)
        qkc_fuzz_bug("qkc_file_query failed on an open file");
    if (fi.bytes != size)
        qkc_fuzz_bug("the file reports %zu bytes, it has %zu", fi.bytes, size);
    for (int64_t i = 0; i < fi.metadata; i++) {
        qkc_file_meta m;
        if (qkc_file_metadata(file, i, &m) != QKC_OK || !m.key || !m.type || !m.value)
            qkc_fuzz_bug("metadata entry %lld of %lld cannot be read", (long long)i, (long long)fi.metadata);
    }
    for (int64_t i = 0; i < fi.tensors; i++) {
        qkc_tensor_info t;
        qkc_spec *spec = NULL;
        int64_t found;
        uintptr_t at;
        if (qkc_file_tensor(file, i, &t) != QKC_OK || !t.name || !t.dtype || !t.weights || !t.unsupported)
            qkc_fuzz_bug("tensor %lld of %lld cannot be read", (long long)i, (long long)fi.tensors);
        /* the data lies inside the file, all tensors in one mapping */
        if (t.offset > size || t.bytes > size - t.offset)
            qkc_fuzz_bug("tensor '%s': data at %llu + %zu outside the file's %zu bytes", t.name,
                         (unsigned long long)t.offset, t.bytes, size);
        at = (uintptr_t)t.data - (uintptr_t)t.offset;
        if (data && at != (uintptr_t)data)
            qkc_fuzz_bug("tensor '%s': data pointer is not the file's bytes + offset", t.name);
        if (i && at != base && !sharded)
            qkc_fuzz_bug("tensor '%s': data pointer is not in the mapping of the others", t.name);
        base = at;
        if (qkc_file_find(ctx, file, t.name, &found) != QKC_OK || found != i)
            qkc_fuzz_bug("tensor %lld, '%s', is not found by its name", (long long)i, t.name);
        if (!t.runnable && !t.unsupported[0])
            qkc_fuzz_bug("tensor '%s' does not run and says not why", t.name);
        if (!t.runnable)
            continue;
        if (t.n < 1 || t.k < 1 || !t.weights[0])
            qkc_fuzz_bug("runnable tensor '%s' is %lld x %lld '%s'", t.name, (long long)t.n, (long long)t.k,
                         t.weights);
        if (t.weights_bytes > max_weights || t.n > (int64_t)max_weights / t.k)
            continue;
        if (qkc_file_spec(ctx, file, i, NULL, &spec) != QKC_OK)
            qkc_fuzz_bug("runnable tensor '%s' has no spec: %s", t.name, qkc_context_last_error(ctx));
        {
            void *blob = malloc(t.weights_bytes ? t.weights_bytes : 1);
            float *w = malloc((size_t)(t.n * t.k) * sizeof *w + 1);
            qkc_status st;
            if (!blob || !w)
                qkc_fuzz_bug("out of memory");
            int64_t experts = 1;
            if (qkc_file_expert(ctx, file, i, 0, NULL, &experts) != QKC_OK)
                qkc_fuzz_bug("tensor '%s': no expert count: %s", t.name, qkc_context_last_error(ctx));
            if (experts > 1) {
                /* a MoE expert stack: no single blob; the last expert's,
                 * in place, inside the tensor */
                const void *ed = NULL;
                if (qkc_file_weights(ctx, file, i, blob, t.weights_bytes) != QKC_ERR_INVALID_ARGUMENT)
                    qkc_fuzz_bug("tensor '%s': a stack of %lld experts gives one blob", t.name, (long long)experts);
                if (qkc_file_expert(ctx, file, i, experts - 1, &ed, NULL) != QKC_OK || !ed ||
                    (const uint8_t *)ed < (const uint8_t *)t.data ||
                    (size_t)((const uint8_t *)ed - (const uint8_t *)t.data) + t.weights_bytes > t.bytes)
                    qkc_fuzz_bug("tensor '%s': expert %lld is not inside the tensor", t.name, (long long)experts - 1);
                memcpy(blob, ed, t.weights_bytes);
                st = QKC_OK;
            } else {
                st = qkc_file_weights(ctx, file, i, blob, t.weights_bytes);
            }
            /* a GPTQ v2 zero of 0 is the one documented refusal of an import */
            if (st != QKC_OK && st != QKC_ERR_UNSUPPORTED)
                qkc_fuzz_bug("tensor '%s': import failed: %s", t.name, qkc_context_last_error(ctx));
            if (st == QKC_OK && qkc_dequantize(ctx, spec, blob, t.weights_bytes, w, t.k) != QKC_OK &&
                !qkc_context_last_error(ctx)[0])
                qkc_fuzz_bug("tensor '%s': dequantization failed without a message", t.name);
            free(blob);
            free(w);
        }
        qkc_spec_destroy(spec);
    }
}
