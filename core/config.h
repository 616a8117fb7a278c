/*
 * The configuration a context reads from the environment, once, when it
 * is created (core/config.def lists every variable). Layers above the core
 * ask qkc_context_config(ctx) instead of calling getenv, so a context's
 * behaviour is fixed at creation and no environment read races with
 * another thread's setenv.
 */
#ifndef QKC_CORE_CONFIG_H
#define QKC_CORE_CONFIG_H

#include "qkc/qkc.h"

/* Each field: the variable's value, or NULL when it is unset or empty.
 * The strings live in the context's own allocation. */
typedef struct qkc_config {
#define QKC_ENV(field, name, meaning) const char *field;
#include "core/config.def"
#undef QKC_ENV
} qkc_config;

enum {
#define QKC_ENV(field, name, meaning) QKC_ENV_##field,
#include "core/config.def"
#undef QKC_ENV
    QKC_ENV_COUNT
};

/* The environment as found: each variable's value (getenv's pointer) and
 * the bytes a copy of them all takes. */
typedef struct qkc_config_scan {
    const char *value[QKC_ENV_COUNT];
    size_t bytes;
} qkc_config_scan;

/* Read the environment (the only getenv calls of the library). */
void qkc_config_scan_env(qkc_config_scan *scan);
/* Copy a scan's values into storage (scan->bytes long) and point out's
 * fields at them. */
void qkc_config_copy(const qkc_config_scan *scan, char *storage, qkc_config *out);

/* The configuration of a context (never NULL). */
const qkc_config *qkc_context_config(const qkc_context *ctx);

/* The target a caller asked for: `name` when it is given (not NULL, not
 * empty), else the context's QKC_TARGET; NULL means the host. */
const char *qkc_config_target(const qkc_context *ctx, const char *name);

#endif /* QKC_CORE_CONFIG_H */
