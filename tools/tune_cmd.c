/*
 * `qkc tune`: search schedules for specs and Ms (qkc_tune), print a table
 * of the heuristic's and the best schedule's medians, and merge the
 * results into a tuning database file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkc/qkc.h"
#include "tools/tool.h"

static void progress(const char *line, void *user)
{
    (void)user;
    fprintf(stderr, "# %s\n", line);
}

/* "30s", "2.5m" (seconds: digits, an optional fraction, s or m; at most a
 * week) or "200" (trials: digits only, 1 to 1000000). Nothing else: no
 * sign, space, exponent, "inf" or "nan". */
static int parse_budget(const char *s, int *trials, double *seconds)
{
    size_t digits = strspn(s, "0123456789"), frac = 0;
    long long n;
    double v;
    char *end;
    if (!digits)
        return -1;
    if (!s[digits])
        return qkc_parse_int(s, 1, 1000000, &n) ? -1 : (*trials = (int)n, *seconds = 0, 0);
    if (s[digits] == '.' && !(frac = strspn(s + digits + 1, "0123456789")))
        return -1;
    end = (char *)s + digits + (frac ? frac + 1 : 0);
    if ((end[0] != 's' && end[0] != 'm') || end[1])
        return -1;
    v = strtod(s, NULL) * (end[0] == 'm' ? 60 : 1);
    if (!(v > 0) || v > 7 * 86400.0)
        return -1;
    *seconds = v, *trials = 0;
    return 0;
}

int qkc_cmd_tune(int argc, char **argv)
{
    int64_t ms[QKC_TUNE_MAX_M] = {1};
    int nm = 1, rc = 1, nwords = 0, nspecs = 0, quiet = 0;
    qkc_tune_options o;
    char **words = calloc((size_t)argc + 1, sizeof *words);
    const char **specs = calloc((size_t)argc + 2, sizeof *specs);
    char *joined = NULL;
    qkc_context *ctx = NULL;
    qkc_context_options co;
    double geo = 0;
    int ngeo = 0;

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.max_seconds = 30;
    if (!words || !specs) {
        free(words), free(specs);
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            qkc_print_help("tune");
            rc = 0;
            goto done;
        } else if (!strcmp(argv[i], "--m") && i + 1 < argc) {
            const char *p = argv[++i];
            nm = 0;
            for (;;) {
                char item[32];
                size_t len = strcspn(p, ",");
                long long v;
                if (len < sizeof item)
                    memcpy(item, p, len), item[len] = '\0';
                if (len >= sizeof item || nm == QKC_TUNE_MAX_M || qkc_parse_int(item, 1, 65536, &v)) {
                    fprintf(stderr, "error: --m takes a list of at most %d Ms in 1..65536, such as 1,8,512\n",
                            QKC_TUNE_MAX_M);
                    goto usage;
                }
                ms[nm++] = v;
                if (!p[len])
                    break;
                p += len + 1;
            }
        } else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
            if (parse_budget(argv[++i], &o.max_trials, &o.max_seconds)) {
                fprintf(stderr, "error: --budget takes seconds (30s, 2m) or a number of trials (200)\n");
                goto usage;
            }
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            o.db_path = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            long long v;
            if (qkc_parse_int(argv[++i], 1, 1024, &v)) {
                fprintf(stderr, "error: --threads takes an integer from 1 to 1024\n");
                goto usage;
            }
            o.threads = (int)v;
        } else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
            o.target = argv[++i];
        } else if (!strcmp(argv[i], "--spec") && i + 1 < argc) {
            specs[nspecs++] = argv[++i];
        } else if (!strcmp(argv[i], "--cold")) {
            o.cold = 1;
        } else if (!strcmp(argv[i], "--exhaustive")) {
            o.exhaustive = 1;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "error: unknown option %s (see qkc tune --help)\n", argv[i]);
            goto usage;
        } else {
            words[nwords++] = argv[i];
        }
    }
    if (nwords) {
        joined = qkc_join_words(nwords, words); /* prints why it fails */
        if (!joined)
            goto done;
        specs[nspecs++] = joined;
    }
    if (!nspecs) {
        fprintf(stderr, "error: qkc tune needs a spec (see qkc tune --help)\n");
        goto usage;
    }
    o.m_list = ms;
    o.m_count = nm;
    if (!quiet)
        o.progress = progress;
    memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.disk_cache = QKC_DISK_CACHE_OFF; /* candidates are not worth keeping */
    if (qkc_context_create(&co, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    printf("%-60s %6s %11s %11s %7s %6s  %s\n", "spec", "M", "default us", "best us", "gain", "trials", "schedule");
    for (int si = 0; si < nspecs; si++) {
        qkc_spec *spec = NULL;
        qkc_tune_result res;
        char canon[1024];
        if (qkc_spec_parse(ctx, specs[si], &spec) != QKC_OK) {
            qkc_report("", qkc_context_last_error(ctx));
            goto done;
        }
        if (qkc_spec_print(spec, canon, sizeof canon, NULL) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            qkc_spec_destroy(spec);
            goto done;
        }
        if (qkc_tune(ctx, spec, &o, &res) != QKC_OK) {
            fprintf(stderr, "error: %s: ", canon);
            qkc_report("", qkc_context_last_error(ctx));
            qkc_spec_destroy(spec);
            goto done;
        }
        for (int i = 0; i < res.count; i++) {
            const qkc_tune_m_result *r = &res.m[i];
            char sched[96];
            double gain = r->default_us / r->best_us;
            if (qkc_schedule_print(&r->best, sched, sizeof sched) >= sizeof sched || !isfinite(gain) || !(gain > 0)) {
                fprintf(stderr, "error: %s m=%lld: the tuner's result is not usable (default %g us, best %g us)\n",
                        canon, (long long)r->m, r->default_us, r->best_us);
                qkc_spec_destroy(spec);
                goto done;
            }
            printf("%-60s %6lld %11.1f %11.1f %6.3fx %6d  %s\n", canon, (long long)r->m, r->default_us, r->best_us,
                   gain, r->trials, sched);
            fflush(stdout);
            geo += log(gain);
            ngeo++;
        }
        qkc_spec_destroy(spec);
    }
    if (ngeo > 1)
        printf("geometric-mean gain over the heuristic: %.3fx (%d cases)\n", exp(geo / ngeo), ngeo);
    if (o.db_path)
        printf("tuning database: %s\n", o.db_path);
    rc = 0;
    goto done;
usage:
    rc = 2;
done:
    qkc_context_destroy(ctx);
    free(joined);
    free(words);
    free(specs);
    return rc;
}
