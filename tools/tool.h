/* Shared pieces of the qkc tool's subcommands. */
#ifndef QKC_TOOLS_TOOL_H
#define QKC_TOOLS_TOOL_H

#include <stddef.h>

#include "qkc/qkc.h"

/* Print a subcommand's help text (the same text docs/cli.md shows). */
void qkc_print_help(const char *command);

/* Join words with single spaces into a new malloc'd string; a single "-"
 * reads all of standard input instead (refusing input that holds a NUL
 * byte, with a message). NULL on failure, with the message printed. */
char *qkc_join_words(int argc, char **argv);

/* A whole decimal number in [lo, hi]: digits only (no sign, space or
 * suffix: "3x", " 3", "+3" and "" are refused). 0 and *out set, or -1. */
int qkc_parse_int(const char *s, long long lo, long long hi, long long *out);

/* s[0..len) (bytes from a file, or a message quoting them) made safe to
 * print: C0 controls and DEL, C1 controls (raw or UTF-8), Unicode's
 * bidirectional overrides, invalid UTF-8 and backslash become escapes
 * (\0 \n \t \r \\ \xHH \uHHHH); the rest is copied. dst gets at most
 * cap - 1 characters and a NUL; what does not fit ends in "...". Returns
 * dst. */
char *qkc_escape(char *dst, size_t cap, const char *s, size_t len);

/* Print prefix, then msg escaped, then a newline, on standard error. */
void qkc_report(const char *prefix, const char *msg);

/* The compute type a kernel of `spec` runs, in words, into buf (at most
 * size bytes, NUL-terminated); returns buf. Says when it is the preset's
 * default and why (int8 for the GGUF presets, as llama.cpp), and for int8
 * whether `kernel` (may be NULL: not said) uses integer dot products or
 * the float path on int8-quantized activations. */
const char *qkc_describe_compute(const qkc_spec *spec, const qkc_kernel *kernel, char *buf, size_t size);

int qkc_cmd_bench(int argc, char **argv);
/* qkc bench --device cuda (tools/bench_gpu.c) */
int qkc_bench_gpu(const char *text, const long long *ms, int nm, int reps, const char *target, int json);
int qkc_cmd_inspect(int argc, char **argv);
int qkc_cmd_run(int argc, char **argv);

/* One measured case and one thread count's limits, for the roofline plot. */
typedef struct qkc_plot_point {
    long long m;
    int threads;
    double intensity; /* FLOP per byte of weights */
    double gflops;
} qkc_plot_point;

typedef struct qkc_plot_limits {
    int threads;
    double mem_gbps, peak_gflops, peak_gops;
    int int8; /* draw the int8 roof too */
} qkc_plot_limits;

/* Write the roofline SVG (tools/plot.c). 0, or -1 when it cannot. */
int qkc_plot_roofline(const char *path, const char *title, const qkc_plot_point *pts, int npts,
                      const qkc_plot_limits *lim, int nlim);
int qkc_cmd_compile(int argc, char **argv);
int qkc_cmd_targets(int argc, char **argv);
int qkc_cmd_cache(int argc, char **argv);
int qkc_cmd_tune(int argc, char **argv);

#endif
