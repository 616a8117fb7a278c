/* The environment, read once per context (see config.h): the only file of
 * the library that calls getenv. */
#include "core/config.h"

#include <stdlib.h>
#include <string.h>

static const char *const env_names[QKC_ENV_COUNT] = {
#define QKC_ENV(field, name, meaning) name,
#include "core/config.def"
#undef QKC_ENV
};

void qkc_config_scan_env(qkc_config_scan *scan)
{
    scan->bytes = 0;
    for (int i = 0; i < QKC_ENV_COUNT; i++) {
        const char *v = getenv(env_names[i]);
        scan->value[i] = v && *v ? v : NULL;
        if (scan->value[i])
            scan->bytes += strlen(v) + 1;
    }
}

void qkc_config_copy(const qkc_config_scan *scan, char *storage, qkc_config *out)
{
    const char **field[QKC_ENV_COUNT] = {
#define QKC_ENV(f, name, meaning) &out->f,
#include "core/config.def"
#undef QKC_ENV
    };
    size_t at = 0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < QKC_ENV_COUNT; i++) {
        size_t len;
        if (!scan->value[i])
            continue;
        len = strlen(scan->value[i]) + 1;
        if (at + len > scan->bytes)
            break; /* cannot happen: the scan measured these strings */
        memcpy(storage + at, scan->value[i], len);
        *field[i] = storage + at;
        at += len;
    }
}

const char *qkc_config_target(const qkc_context *ctx, const char *name)
{
    return name && *name ? name : qkc_context_config(ctx)->target;
}
