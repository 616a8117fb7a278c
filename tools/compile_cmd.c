/*
 * `qkc compile` (one kernel's code, or an AOT library and its header),
 * `qkc targets` and `qkc cache`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkc/qkc.h"
#include "targets/target.h"
#include "tools/tool.h"

/* Specs of a compile: each is a malloc'd text. */
typedef struct spec_list {
    char **text;
    int n, cap;
} spec_list;

static int add_spec(spec_list *l, const char *text, size_t len)
{
    char *s;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        char **t = realloc(l->text, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        l->text = t;
        l->cap = cap;
    }
    if (!(s = malloc(len + 1)))
        return -1;
    memcpy(s, text, len);
    s[len] = '\0';
    l->text[l->n++] = s;
    return 0;
}

/* One spec per line; blank lines and lines starting with '#' are skipped. */
static int read_spec_file(spec_list *l, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    if (!f) {
        fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        char *p = line;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "error: %s: a line is longer than %zu characters\n", path, sizeof line - 2);
            fclose(f);
            return -1;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#' && add_spec(l, p, strlen(p))) {
            fprintf(stderr, "error: out of memory\n");
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* The library name from an output path: "build/libkernels.a" -> "kernels". */
static void name_from_path(const char *path, char *name, size_t size)
{
    const char *base = strrchr(path, '/');
    size_t n = 0;
    base = base ? base + 1 : path;
    if (!strncmp(base, "lib", 3) && base[3] && base[3] != '.')
        base += 3;
    for (; *base && *base != '.' && n + 1 < size; base++)
        name[n++] = ((*base >= 'a' && *base <= 'z') || (*base >= 'A' && *base <= 'Z') || (*base >= '0' && *base <= '9'))
                        ? *base
                        : '_';
    name[n] = '\0';
    if (!n || (name[0] >= '0' && name[0] <= '9'))
        snprintf(name, size, "kernels");
}

static int write_output(const char *out, const char *buf, size_t len)
{
    FILE *f = out ? fopen(out, "wb") : stdout;
    int rc;
    if (!f) {
        fprintf(stderr, "error: cannot write %s: %s\n", out, strerror(errno));
        return 1;
    }
    rc = fwrite(buf, 1, len, f) == len ? 0 : 1;
    if (out && fclose(f) != 0)
        rc = 1;
    if (rc)
        fprintf(stderr, "error: writing %s failed\n", out ? out : "standard output");
    return rc;
}

/* On a terminal: one line, rewritten, per kernel of a library. */
static void show_progress(const qkc_progress *p, void *user)
{
    (void)user;
    char item[400];
    fprintf(stderr, "\r\033[K[%lld/%lld] %s %s", (long long)p->done, (long long)p->total,
            p->done < p->total ? "compiling" : "compiled",
            qkc_escape(item, sizeof item, p->item, strlen(p->item) < 90 ? strlen(p->item) : 90));
    if (p->done == p->total)
        fputc('\n', stderr);
    fflush(stderr);
}

int qkc_cmd_compile(int argc, char **argv)
{
    const char *emit = NULL, *out = NULL, *name = NULL, *sched_text = NULL, *targets[16], *db = NULL;
    long long m_hint = 0;
    qkc_context_options co;
    char **words = calloc((size_t)argc + 1, sizeof *words), *buf = NULL, lib_name[64];
    int nwords = 0, ntargets = 0, rc = 1, aot;
    spec_list specs = {0};
    qkc_context *ctx = NULL;
    qkc_spec **parsed = NULL;
    qkc_schedule sched;
    size_t need = 0;
    if (!words)
        return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            qkc_print_help("compile");
            rc = 0;
            goto done;
        } else if (!strcmp(a, "--target") && i + 1 < argc) {
            if (ntargets == 16) {
                fprintf(stderr, "error: at most 16 --target\n");
                goto usage;
            }
            targets[ntargets++] = argv[++i];
        } else if (!strcmp(a, "--emit") && i + 1 < argc) {
            emit = argv[++i];
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(a, "--schedule") && i + 1 < argc) {
            sched_text = argv[++i];
        } else if (!strcmp(a, "--db") && i + 1 < argc) {
            db = argv[++i];
        } else if (!strcmp(a, "--m") && i + 1 < argc) {
            if (qkc_parse_int(argv[++i], 1, 65536, &m_hint)) {
                fprintf(stderr, "error: --m takes an integer from 1 to 65536\n");
                goto usage;
            }
        } else if (!strcmp(a, "--spec") && i + 1 < argc) {
            if (add_spec(&specs, argv[i + 1], strlen(argv[i + 1]))) {
                fprintf(stderr, "error: out of memory\n");
                goto done;
            }
            i++;
        } else if (!strcmp(a, "--specs") && i + 1 < argc) {
            if (read_spec_file(&specs, argv[++i]))
                goto done;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "error: unknown option %s (see qkc compile --help)\n", a);
            goto usage;
        } else {
            words[nwords++] = argv[i];
        }
    }
    if (nwords) {
        char *t = qkc_join_words(nwords, words);
        if (!t)
            goto done;
        if (add_spec(&specs, t, strlen(t))) {
            fprintf(stderr, "error: out of memory\n");
            free(t);
            goto done;
        }
        free(t);
    }
    if (!emit || !specs.n) {
        fprintf(stderr, "error: qkc compile needs a spec and --emit asm|ptx|ll|bc|obj|header|lib (see qkc compile --help)\n");
        goto usage;
    }
    if (!strcmp(emit, "ll"))
        emit = "llvm";
    if (!strcmp(emit, "ptx"))
        emit = "asm"; /* an NVPTX target's assembly is PTX */
    aot = !strcmp(emit, "header") || !strcmp(emit, "lib");
    if (!aot && strcmp(emit, "asm") && strcmp(emit, "llvm") && strcmp(emit, "obj") && strcmp(emit, "bc")) {
        fprintf(stderr, "error: --emit %s: expected asm, ptx, ll, bc, obj, header or lib\n", emit);
        goto usage;
    }
    if (!aot && (specs.n > 1 || ntargets > 1)) {
        fprintf(stderr, "error: --emit %s writes one kernel: give one spec and at most one --target (several are for "
                        "--emit header|lib)\n", emit);
        goto usage;
    }
    if ((aot || !strcmp(emit, "obj") || !strcmp(emit, "bc")) && !out) {
        fprintf(stderr, "error: --emit %s writes a file: give -o FILE\n", emit);
        goto usage;
    }
    memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.tune_db = db;
    if (aot && isatty(2))
        co.progress = show_progress;
    if (qkc_context_create(&co, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    memset(&sched, 0, sizeof sched);
    if (sched_text && qkc_schedule_parse(ctx, sched_text, &sched) != QKC_OK) {
        qkc_report("error: --schedule: ", qkc_context_last_error(ctx));
        rc = 2;
        goto done;
    }
    if (!(parsed = calloc((size_t)specs.n, sizeof *parsed))) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    for (int i = 0; i < specs.n; i++)
        if (qkc_spec_parse(ctx, specs.text[i], &parsed[i]) != QKC_OK) {
            if (specs.n > 1)
                fprintf(stderr, "spec %d: ", i + 1);
            qkc_report("", qkc_context_last_error(ctx));
            goto done;
        }
    if (aot) {
        qkc_aot_options ao = {sizeof ao, NULL, targets, ntargets, sched_text ? &sched : NULL};
        if (!name)
            name_from_path(out, lib_name, sizeof lib_name);
        ao.name = name ? name : lib_name;
        if (qkc_aot_write(ctx, (const qkc_spec *const *)parsed, specs.n, &ao, emit, out) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto done;
        }
        rc = 0;
    } else {
        qkc_compile_options opt = {sizeof opt, ntargets ? targets[0] : NULL, sched_text ? &sched : NULL, m_hint};
        if (qkc_kernel_emit(ctx, parsed[0], &opt, emit, NULL, 0, &need) != QKC_ERR_BUFFER_TOO_SMALL ||
            !(buf = malloc(need + 1)) || qkc_kernel_emit(ctx, parsed[0], &opt, emit, buf, need + 1, NULL) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto done;
        }
        rc = write_output(out, buf, need);
    }
    goto done;
usage:
    rc = 2;
done:
    for (int i = 0; parsed && i < specs.n; i++)
        qkc_spec_destroy(parsed[i]);
    for (int i = 0; i < specs.n; i++)
        free(specs.text[i]);
    free(specs.text);
    free(parsed);
    free(buf);
    free(words);
    qkc_context_destroy(ctx);
    return rc;
}

/* ------------------------------------------------------------- targets */

int qkc_cmd_targets(int argc, char **argv)
{
    char feats[256];
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            qkc_print_help("targets");
            return 0;
        }
        fprintf(stderr, "error: qkc targets takes no arguments\n");
        return 2;
    }
    printf("%-26s %-6s %s\n", "target", "runs", "features");
    for (int i = 0; i < qkc_target_count(); i++) {
        qkc_target t;
        qkc_diag diag;
        if (qkc_target_resolve(qkc_target_name(i), 0, &t, &diag))
            continue;
        qkc_target_features_string(t.arch, t.features, feats, sizeof feats);
        printf("%-26s %-6s %s\n", qkc_target_name(i), qkc_target_runs_here(&t) ? "yes" : "no", feats);
    }
    return 0;
}

/* --------------------------------------------------------------- cache */

static void print_entry(const qkc_cache_entry_info *e, void *user)
{
    char when[32] = "?";
    time_t t = (time_t)e->mtime;
    struct tm tm;
    int *count = user;
    /* cache entries are files: what they say is escaped */
    const char *what = e->problem ? e->problem : e->spec;
    char file[80], text[1200], target[200], versions[400];
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    printf("%.16s  %8llu  %s  %s\n", qkc_escape(file, sizeof file, e->file, strlen(e->file)),
           (unsigned long long)e->bytes, when, qkc_escape(text, sizeof text, what, strlen(what)));
    if (!e->problem)
        printf("%16s  target %s; %s\n", "", qkc_escape(target, sizeof target, e->target, strlen(e->target)),
               qkc_escape(versions, sizeof versions, e->versions, strlen(e->versions)));
    (*count)++;
}

int qkc_cmd_cache(int argc, char **argv)
{
    const char *dir = NULL, *action = NULL, *file = NULL;
    qkc_context *ctx = NULL;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_ON};
    qkc_status st = QKC_OK;
    size_t n = 0;
    int count = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            qkc_print_help("cache");
            return 0;
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "error: unknown option %s (see qkc cache --help)\n", argv[i]);
            return 2;
        } else if (!action) {
            action = argv[i];
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "error: too many arguments (see qkc cache --help)\n");
            return 2;
        }
    }
    if (!action || (!strcmp(action, "export") || !strcmp(action, "import")) != (file != NULL) ||
        (strcmp(action, "list") && strcmp(action, "clear") && strcmp(action, "export") && strcmp(action, "import"))) {
        fprintf(stderr, "error: expected list, clear, export FILE or import FILE (see qkc cache --help)\n");
        return 2;
    }
    co.cache_dir = dir;
    if (qkc_context_create(&co, &ctx) != QKC_OK || !qkc_cache_dir(ctx)) {
        fprintf(stderr, "error: no cache directory: set QKC_CACHE_DIR, XDG_CACHE_HOME or HOME, or give --dir\n");
        qkc_context_destroy(ctx);
        return 1;
    }
    if (!strcmp(action, "list")) {
        char dirbuf[4200];
        printf("# %s\n", qkc_escape(dirbuf, sizeof dirbuf, qkc_cache_dir(ctx), strlen(qkc_cache_dir(ctx))));
        st = qkc_cache_list(ctx, print_entry, &count);
        if (!st)
            printf("# %d entries\n", count);
    } else if (!strcmp(action, "clear")) {
        if (!(st = qkc_cache_clear(ctx, &n)))
            printf("removed %zu entries from %s\n", n, qkc_cache_dir(ctx));
    } else if (!strcmp(action, "export")) {
        if (!(st = qkc_cache_export(ctx, file, &n)))
            printf("exported %zu entries from %s to %s\n", n, qkc_cache_dir(ctx), file);
    } else {
        if (!(st = qkc_cache_import(ctx, file, &n)))
            printf("imported %zu entries from %s into %s\n", n, file, qkc_cache_dir(ctx));
    }
    if (st)
        qkc_report("error: ", qkc_context_last_error(ctx));
    qkc_context_destroy(ctx);
    return st ? 1 : 0;
}
