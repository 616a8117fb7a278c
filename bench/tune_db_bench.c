/*
 * Tuning-database load benchmark: the time and peak memory of loading a
 * database of N entries (docs/tuning.md, "Size and speed").
 *
 *     tune_db_bench gen N FILE   write a database of N distinct entries
 *                                (gen1: each with a spec of its own)
 *     tune_db_bench load FILE    load it into an empty database, print the
 *                                wall time (clock_gettime) and the peak
 *                                resident size (getrusage ru_maxrss)
 *     tune_db_bench N [DIR]      both, the load in a child process, so its
 *                                peak is the load's alone
 *
 * The entries look like those `qkc tune` writes on this machine: N/4
 * canonical q4_0/q8_0 specs of distinct shapes, each in the four M buckets,
 * tuned for the host's CPU features by this qkc version. gen1 gives every
 * entry a spec of its own (the most specs to canonicalise and keep).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qkc/qkc.h"
#include "targets/target.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long peak_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* CPU seconds of this process, user and system: on a shared machine the
 * wall time includes waiting for a core. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static int gen(long count, const char *path, int per_spec)
{
    static const char *const buckets[] = {"1", "2-8", "9-64", "65+"};
    static const char *const formats[] = {"q4_0", "q8_0"};
    char feats[256];
    qkc_target t;
    qkc_diag d;
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    if (qkc_target_resolve(NULL, 0, &t, &d)) {
        fprintf(stderr, "host target: %s\n", d.message);
        fclose(f);
        return 1;
    }
    qkc_target_features_string(t.arch, t.features, feats, sizeof feats);
    fprintf(f, "qkc-tune 1\n# %ld entries written by tune_db_bench\n", count);
    for (long i = 0; i < count; i++) {
        long s = i / per_spec;
        /* distinct (n, k, w) for every s: n = 64·(1 + s mod 2048), k = 256·(1 + s/4096) */
        fprintf(f,
                "spec=matmul n=%ld k=%ld a=f32 w=%s out=f32\tm=%s\ttarget=host\tfeatures=%s\tqkc=%s\t"
                "schedule=tm=%ld tn=%ld ku=1 vec=256 pf=%ld nb=%ld\tus=%ld.%03ld\tdefault_us=%ld.%03ld\t"
                "date=2026-11-23\n",
                64 * (1 + s % 2048), 256 * (1 + s / 4096), formats[(s / 2048) % 2], buckets[i % 4], feats,
                qkc_version_string(), 1 + i % 4, 1 + (i / 4) % 8, 2 * (i % 5), 16L << (i % 5), 100 + i % 9000,
                i % 1000, 150 + i % 9000, (i * 7) % 1000);
    }
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static int load(const char *path)
{
    qkc_context *ctx;
    qkc_tune_db *db;
    qkc_status st;
    long before = peak_kib();
    double t0, c0;
    if (qkc_context_create(NULL, &ctx) || qkc_tune_db_create(ctx, &db)) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    t0 = now();
    c0 = cpu_seconds();
    st = qkc_tune_db_load(db, path);
    if (st) {
        fprintf(stderr, "load %s: %s\n", path, qkc_context_last_error(ctx));
        return 1;
    }
    printf("load: %d entries in %.3f s (%.3f s of CPU), peak resident %.1f MB (%.1f MB before the load)\n",
           qkc_tune_db_count(db), now() - t0, cpu_seconds() - c0, (double)peak_kib() / 1024.0,
           (double)before / 1024.0);
    qkc_tune_db_destroy(db);
    qkc_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && (!strcmp(argv[1], "gen") || !strcmp(argv[1], "gen1")))
        return gen(atol(argv[2]), argv[3], argv[1][3] ? 1 : 4);
    if (argc == 3 && !strcmp(argv[1], "load"))
        return load(argv[2]);
    if ((argc == 2 || argc == 3) && atol(argv[1]) > 0) {
        char path[4096];
        int status;
        pid_t pid;
        long count = atol(argv[1]);
        snprintf(path, sizeof path, "%s/qkc-tune-bench-%ld.db", argc == 3 ? argv[2] : "/tmp", (long)getpid());
        if (gen(count, path, 4)) {
            remove(path);
            return 1;
        }
        pid = fork();
        if (pid == 0) {
            int rc = load(path);
            fflush(stdout);
            _exit(rc);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("fork");
            remove(path);
            return 1;
        }
        remove(path);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    fprintf(stderr, "usage: tune_db_bench N [DIR] | gen N FILE | gen1 N FILE | load FILE\n");
    return 2;
}
