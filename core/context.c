/* Contexts: allocator, last-error message, status names, version. */
#include "core/context.h"

#include "core/config.h"
#include "core/io.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

struct qkc_context {
    qkc_allocator allocator;
    pthread_mutex_t lock; /* guards error */
    char error[1024];
    int threads;
    pthread_mutex_t ext_lock; /* guards pool and extension creation */
    qkc_threadpool *pool;
    void *slot[QKC_SLOT_COUNT]; /* qkc_context_slot */
    void (*slot_destroy[QKC_SLOT_COUNT])(void *state);
    char *cache_dir; /* NULL: the disk cache is off */
    void (*warn)(const char *message, void *user);
    void *warn_user;
    void (*progress)(const qkc_progress *progress, void *user);
    void *progress_user;
    char *tune_db_path;     /* NULL: no tuning database */
    qkc_config config;      /* the environment, read at creation */
    qkc_io_fault_fn io_fault; /* tests: the I/O fault hook (core/io.h) */
    void *io_fault_user;
};

static void *default_alloc(size_t bytes, void *user)
{
    (void)user;
    return malloc(bytes ? bytes : 1);
}

static void default_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

const char *qkc_status_str(qkc_status status)
{
    switch (status) {
    case QKC_OK: return "ok";
    case QKC_ERR_INVALID_ARGUMENT: return "invalid argument";
    case QKC_ERR_PARSE: return "parse error";
    case QKC_ERR_INVALID_SPEC: return "invalid spec";
    case QKC_ERR_NO_MEMORY: return "out of memory";
    case QKC_ERR_UNSUPPORTED: return "unsupported";
    case QKC_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case QKC_ERR_LIMIT: return "limit exceeded";
    case QKC_ERR_IO: return "i/o error";
    case QKC_ERR_CORRUPT_DATA: return "corrupt data";
    case QKC_ERR_NO_DEVICE: return "no device";
    case QKC_ERR_COMPILE: return "compile error";
    case QKC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int qkc_version(void)
{
    return QKC_VERSION;
}

const char *qkc_version_string(void)
{
#define QKC_STR2(x) #x
#define QKC_STR(x) QKC_STR2(x)
    return QKC_STR(QKC_VERSION_MAJOR) "." QKC_STR(QKC_VERSION_MINOR) "." QKC_STR(QKC_VERSION_PATCH);
}

/* Copy of the cache directory a context uses (see qkc_context_options),
 * or NULL when the disk cache is off. *bad is set for a bad option. */
static char *resolve_cache_dir(const qkc_allocator *a, const qkc_config *cfg, int mode, const char *dir, int *bad)
{
    const char *env = cfg->cache, *base = NULL, *suffix = "";
    size_t len;
    char *out;
    *bad = 0;
    if (mode == QKC_DISK_CACHE_OFF)
        return NULL;
    if (mode != QKC_DISK_CACHE_DEFAULT && mode != QKC_DISK_CACHE_ON) {
        *bad = 1;
        return NULL;
    }
    if (mode == QKC_DISK_CACHE_DEFAULT && env && (!strcmp(env, "off") || !strcmp(env, "0")))
        return NULL;
    if (dir && *dir) {
        base = dir;
    } else if ((base = cfg->cache_dir) != NULL) {
    } else if ((base = cfg->xdg_cache_home) != NULL && *base == '/') {
        suffix = "/qkc";
    } else if ((base = cfg->home) != NULL) {
        suffix = "/.cache/qkc";
    } else {
        return NULL; /* nowhere to keep a cache */
    }
    len = strlen(base) + strlen(suffix) + 1;
    out = a->alloc(len, a->user);
    if (out)
        snprintf(out, len, "%s%s", base, suffix);
    return out;
}

qkc_status qkc_context_create(const qkc_context_options *options, qkc_context **out)
{
    qkc_allocator a = {default_alloc, default_free, NULL};
    int threads = 0, disk_cache = QKC_DISK_CACHE_DEFAULT, bad = 0;
    const char *cache_dir = NULL;
    void (*warn)(const char *, void *) = NULL;
    void *warn_user = NULL, *progress_user = NULL;
    void (*progress)(const qkc_progress *, void *) = NULL;
    const char *tune_db = NULL;
    qkc_context *ctx;
    qkc_config_scan env;
    qkc_config cfg;
    if (!out)
        return QKC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (options) {
        if (options->struct_size < sizeof(size_t) + sizeof(void *))
            return QKC_ERR_INVALID_ARGUMENT;
        if (options->allocator) {
            if (!options->allocator->alloc || !options->allocator->free)
                return QKC_ERR_INVALID_ARGUMENT;
            a = *options->allocator;
        }
        if (options->struct_size >= offsetof(qkc_context_options, threads) + sizeof(int)) {
            if (options->threads < 0 || options->threads > QKC_THREADPOOL_MAX_THREADS)
                return QKC_ERR_INVALID_ARGUMENT;
            threads = options->threads;
        }
        if (options->struct_size >= offsetof(qkc_context_options, warn_user) + sizeof(void *)) {
            disk_cache = options->disk_cache;
            cache_dir = options->cache_dir;
            warn = options->warn;
            warn_user = options->warn_user;
        }
        if (options->struct_size >= offsetof(qkc_context_options, progress_user) + sizeof(void *)) {
            progress = options->progress;
            progress_user = options->progress_user;
        }
        if (options->struct_size >= offsetof(qkc_context_options, tune_db) + sizeof(const char *))
            tune_db = options->tune_db;
    }
    /* the context and its copy of the environment: one allocation */
    qkc_config_scan_env(&env);
    if (env.bytes > SIZE_MAX - sizeof *ctx)
        return QKC_ERR_NO_MEMORY;
    ctx = a.alloc(sizeof *ctx + env.bytes, a.user);
    if (!ctx)
        return QKC_ERR_NO_MEMORY;
    memset(ctx, 0, sizeof *ctx);
    qkc_config_copy(&env, (char *)(ctx + 1), &cfg);
    if (!tune_db || !*tune_db)
        tune_db = cfg.tune_db;
    ctx->allocator = a;
    ctx->config = cfg;
    ctx->warn = warn;
    ctx->warn_user = warn_user;
    ctx->progress = progress;
    ctx->progress_user = progress_user;
    ctx->cache_dir = resolve_cache_dir(&a, &cfg, disk_cache, cache_dir, &bad);
    if (bad) {
        a.free(ctx, a.user);
        return QKC_ERR_INVALID_ARGUMENT;
    }
    if (tune_db && *tune_db) {
        size_t len = strlen(tune_db) + 1;
        ctx->tune_db_path = a.alloc(len, a.user);
        if (!ctx->tune_db_path) {
            qkc_free(ctx, ctx->cache_dir);
            a.free(ctx, a.user);
            return QKC_ERR_NO_MEMORY;
        }
        memcpy(ctx->tune_db_path, tune_db, len);
    }
    if (threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        threads = online < 1 ? 1 : online > QKC_THREADPOOL_MAX_THREADS ? QKC_THREADPOOL_MAX_THREADS : (int)online;
    }
    ctx->threads = threads;
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        qkc_free(ctx, ctx->tune_db_path);
        qkc_free(ctx, ctx->cache_dir);
        a.free(ctx, a.user);
        return QKC_ERR_NO_MEMORY;
    }
    if (pthread_mutex_init(&ctx->ext_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        qkc_free(ctx, ctx->tune_db_path);
        qkc_free(ctx, ctx->cache_dir);
        a.free(ctx, a.user);
        return QKC_ERR_NO_MEMORY;
    }
    *out = ctx;
    return QKC_OK;
}

void qkc_context_destroy(qkc_context *ctx)
{
    if (!ctx)
        return;
    /* in slot order: the JIT's kernels' modules live in the driver context */
    for (int i = 0; i < QKC_SLOT_COUNT; i++)
        if (ctx->slot_destroy[i])
            ctx->slot_destroy[i](ctx->slot[i]);
    qkc_threadpool_destroy(ctx->pool);
    qkc_free(ctx, ctx->tune_db_path);
    pthread_mutex_destroy(&ctx->ext_lock);
    pthread_mutex_destroy(&ctx->lock);
    qkc_free(ctx, ctx->cache_dir);
    ctx->allocator.free(ctx, ctx->allocator.user);
}

void qkc_report_progress(qkc_context *ctx, const char *task, int64_t done, int64_t total, const char *item)
{
    qkc_progress p;
    if (!ctx->progress)
        return;
    p.task = task;
    p.done = done;
    p.total = total;
    p.item = item ? item : "";
    ctx->progress(&p, ctx->progress_user);
}

const char *qkc_cache_dir(const qkc_context *ctx)
{
    return ctx ? ctx->cache_dir : NULL;
}

void qkc_warn(qkc_context *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->warn)
        ctx->warn(msg, ctx->warn_user);
    else
        fprintf(stderr, "qkc: warning: %s\n", msg);
}

const char *qkc_context_last_error(const qkc_context *ctx)
{
    return ctx ? ctx->error : "";
}

size_t qkc_context_copy_error(const qkc_context *ctx, char *buf, size_t size)
{
    size_t len;
    if (!ctx) {
        if (buf && size)
            buf[0] = '\0';
        return 0;
    }
    pthread_mutex_lock((pthread_mutex_t *)&ctx->lock);
    len = strlen(ctx->error);
    if (buf && size) {
        size_t c = len < size - 1 ? len : size - 1;
        memcpy(buf, ctx->error, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock((pthread_mutex_t *)&ctx->lock);
    return len;
}

const qkc_allocator *qkc_context_allocator(const qkc_context *ctx)
{
    return &ctx->allocator;
}

void *qkc_alloc(qkc_context *ctx, size_t bytes)
{
    return ctx->allocator.alloc(bytes, ctx->allocator.user);
}

void *qkc_calloc(qkc_context *ctx, size_t n, size_t size)
{
    void *p;
    if (size && n > SIZE_MAX / size)
        return NULL;
    p = qkc_alloc(ctx, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void qkc_free(qkc_context *ctx, void *ptr)
{
    if (ptr)
        ctx->allocator.free(ptr, ctx->allocator.user);
}

qkc_status qkc_fail(qkc_context *ctx, qkc_status status, const char *fmt, ...)
{
    char msg[sizeof ctx->error];
    va_list ap;
    if (!ctx)
        return status;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ctx->lock);
    memcpy(ctx->error, msg, sizeof msg);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

qkc_status qkc_fail_diag(qkc_context *ctx, const qkc_diag *diag)
{
    return qkc_fail(ctx, diag->status, "%s", diag->message);
}

int qkc_context_threads(const qkc_context *ctx)
{
    return ctx->threads;
}

qkc_threadpool *qkc_context_pool(qkc_context *ctx, qkc_status *st)
{
    qkc_threadpool *pool;
    pthread_mutex_lock(&ctx->ext_lock);
    if (!ctx->pool) {
        *st = qkc_threadpool_create(ctx, ctx->threads, &ctx->pool);
    } else {
        *st = QKC_OK;
    }
    pool = ctx->pool;
    pthread_mutex_unlock(&ctx->ext_lock);
    return pool;
}

void *qkc_context_slot(qkc_context *ctx, qkc_context_slot_id slot, void *(*create)(qkc_context *ctx, qkc_status *st),
                       void (*destroy)(void *state), qkc_status *st)
{
    void *s;
    *st = QKC_OK;
    pthread_mutex_lock(&ctx->ext_lock);
    if (!ctx->slot[slot]) {
        ctx->slot[slot] = create(ctx, st);
        if (ctx->slot[slot])
            ctx->slot_destroy[slot] = destroy;
    }
    s = ctx->slot[slot];
    pthread_mutex_unlock(&ctx->ext_lock);
    return s;
}

const qkc_config *qkc_context_config(const qkc_context *ctx)
{
    return &ctx->config;
}

const char *qkc_context_tune_db_path(const qkc_context *ctx)
{
    return ctx->tune_db_path;
}

void qkc_context_set_io_fault(qkc_context *ctx, qkc_io_fault_fn fn, void *user)
{
    if (!ctx)
        return;
    ctx->io_fault = fn;
    ctx->io_fault_user = user;
}

int qkc_context_io_fault(qkc_context *ctx, qkc_io_op op, const char *path, size_t *len)
{
    return ctx && ctx->io_fault ? ctx->io_fault(ctx->io_fault_user, op, path, len) : 0;
}
