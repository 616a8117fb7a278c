/*
 * qkc — the command-line tool. Each subcommand is a function plus a help
 * text; `qkc help` and `qkc CMD --help` print the same texts docs/cli.md
 * shows. Exit status: 0 on success, 1 on a failed check or run, 2 on a
 * usage error.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/llvm_info.h"
#include "core/spec_object.h"
#include "ir/dtype.h"
#include "ir/format.h"
#include "ir/spec.h"
#include "runtime/kernel.h"
#include "qkc/qkc.h"
#include "tools/tool.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *help;
} command;

static const command *find_command(const char *name);

/* ------------------------------------------------------------ helpers */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Join argv words into one spec text (so specs need no quoting), or read
 * the whole of stdin when the only word is "-". Caller frees. */
char *qkc_join_words(int argc, char **argv)
{
    size_t len = 0, cap = 256;
    char *s;
    if (argc == 1 && strcmp(argv[0], "-") == 0) {
        size_t n;
        s = malloc(cap);
        if (!s) {
            fprintf(stderr, "error: out of memory\n");
            return NULL;
        }
        while ((n = fread(s + len, 1, cap - len - 1, stdin)) > 0) {
            len += n;
            if (cap - len < 2) {
                char *t = realloc(s, cap *= 2);
                if (!t) {
                    free(s);
                    fprintf(stderr, "error: out of memory\n");
                    return NULL;
                }
                s = t;
            }
        }
        if (ferror(stdin)) {
            fprintf(stderr, "error: cannot read standard input\n");
            free(s);
            return NULL;
        }
        /* The text is a C string from here on: a NUL would hide the rest. */
        if (memchr(s, '\0', len)) {
            fprintf(stderr, "error: standard input holds a NUL byte at offset %zu: a spec is text\n",
                    (size_t)((char *)memchr(s, '\0', len) - s));
            free(s);
            return NULL;
        }
        s[len] = '\0';
        return s;
    }
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    s = malloc(len + 1);
    if (!s) {
        fprintf(stderr, "error: out of memory\n");
        return NULL;
    }
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

int qkc_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    long long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (LLONG_MAX - (*s - '0')) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (no overlongs or surrogates,
 * at most U+10FFFF) with its code point, or 0. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t c = p[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, c &= 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, c &= 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, c &= 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

char *qkc_escape(char *dst, size_t cap, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    if (!cap)
        return dst;
    while (i < len) {
        char e[16];
        size_t el, step = 1;
        uint32_t cp = 0;
        unsigned char c = p[i];
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (c == '\\' || c == '\0' || c == '\n' || c == '\t' || c == '\r') {
            e[0] = '\\', e[1] = c == '\\' ? '\\' : c == '\0' ? '0' : c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            el = 2;
        } else if (c < 0x20 || c == 0x7F || n == 0) {
            el = (size_t)snprintf(e, sizeof e, "\\x%02x", c); /* controls, and bytes that are not UTF-8 */
        } else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
                   (cp >= 0x2066 && cp <= 0x2069)) {
            el = (size_t)snprintf(e, sizeof e, "\\u%04x", (unsigned)cp); /* C1 controls, bidirectional overrides */
            step = n;
        } else {
            memcpy(e, p + i, n);
            el = step = n;
        }
        if (o + el + 4 > cap) { /* room for "..." and the NUL */
            if (o + 4 <= cap)
                memcpy(dst + o, "...", 3), o += 3;
            break;
        }
        memcpy(dst + o, e, el);
        o += el;
        i += step;
    }
    dst[o < cap ? o : cap - 1] = '\0';
    return dst;
}

void qkc_report(const char *prefix, const char *msg)
{
    char buf[4200];
    fprintf(stderr, "%s%s\n", prefix, qkc_escape(buf, sizeof buf, msg, strlen(msg)));
}

const char *qkc_describe_compute(const qkc_spec *spec, const qkc_kernel *kernel, char *buf, size_t size)
{
    const qkc_matmul *mm = &spec->mm;
    const qkc_preset_desc *pd = qkc_preset_get(mm->w.preset);
    qkc_compute def = qkc_default_compute(mm);
    const char *kw = qkc_compute_keyword(mm->compute);
    char why[200] = "";
    if (pd && pd->vec_dot_type[0] && mm->compute == def)
        snprintf(why, sizeof why, ", w=%s's default (llama.cpp quantizes activations to %s too; "
                                  "compute=f32 for exact f32)", pd->keyword, pd->vec_dot_type);
    else if (pd && pd->vec_dot_type[0])
        snprintf(why, sizeof why, " (w=%s's default is %s)", pd->keyword, qkc_compute_keyword(def));
    switch (mm->compute) {
    case QKC_COMPUTE_INT8:
        /* the float path fed int8-quantized activations computes the same
         * products without integer dot products: say so */
        snprintf(buf, size, "int8%s: activations quantized to int8 per block of %d, %s", why, QKC_INT8_BLOCK,
                 kernel && !qkc_kernel_code(kernel)->int8_dot
                     ? "float products (no integer dot-product path for this layout and target)"
                     : "integer dot products");
        break;
    case QKC_COMPUTE_F32: snprintf(buf, size, "f32%s: exact f32 operands", why); break;
    default: snprintf(buf, size, "%s%s: operands rounded to %s", kw, why, kw); break;
    }
    return buf;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

static void print_help(const command *c)
{
    fputs(c->help, stdout);
}

void qkc_print_help(const char *name)
{
    const command *c = find_command(name);
    if (c)
        print_help(c);
}

/* Parse a spec, printing the context error on failure. */
static qkc_spec *parse_or_report(qkc_context *ctx, const char *text)
{
    qkc_spec *spec = NULL;
    if (qkc_spec_parse(ctx, text, &spec) != QKC_OK) {
        qkc_report("", qkc_context_last_error(ctx));
        return NULL;
    }
    return spec;
}

/* --------------------------------------------------------------- check */

static int cmd_check(int argc, char **argv)
{
    qkc_context *ctx = NULL;
    qkc_spec *spec;
    char *text, buf[1024];
    int rc = 1;
    if (wants_help(argc, argv) || argc == 0) {
        print_help(find_command("check"));
        return argc == 0 ? 2 : 0;
    }
    if (!(text = qkc_join_words(argc, argv)))
        return 1;
    if (qkc_context_create(NULL, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        free(text);
        return 1;
    }
    spec = parse_or_report(ctx, text);
    if (spec && qkc_spec_print(spec, buf, sizeof buf, NULL) == QKC_OK) {
        puts(buf);
        rc = 0;
    } else if (spec) {
        qkc_report("error: ", qkc_context_last_error(ctx));
    }
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- demo */

static double out_value(const char *out_type, const void *c, int64_t i)
{
    if (!strcmp(out_type, "f16"))
        return qkc_f16_to_f32(((const uint16_t *)c)[i]);
    if (!strcmp(out_type, "bf16"))
        return qkc_bf16_to_f32(((const uint16_t *)c)[i]);
    return ((const float *)c)[i];
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float rnd_normal(void)
{
    double s = 0;
    for (int i = 0; i < 12; i++) {
        rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
        s += (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
    }
    return (float)(s - 6.0);
}

static int cmd_demo(int argc, char **argv)
{
    const char *default_spec = "matmul n=4096 k=4096 a=f32 w=q4_0 out=f32";
    qkc_context *ctx = NULL;
    qkc_spec *spec = NULL;
    qkc_spec_info info;
    char *text = NULL, canon[1024], llvm[32];
    float *w = NULL, *wd = NULL, *a = NULL;
    void *c = NULL, *cref_out = NULL;
    void *blob = NULL, *a_mem = NULL;
    long long m = 1;
    int rc = 1, first_spec = -1;
    double t0, tq, tmm = 0, tcomp = 0, werr = 0, wref = 0, cerr = 0, cref = 0, cmax = 0;

    if (wants_help(argc, argv)) {
        print_help(find_command("demo"));
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--m") && i + 1 < argc) {
            if (qkc_parse_int(argv[++i], 1, 4096, &m)) {
                fprintf(stderr, "error: --m takes an integer from 1 to 4096\n");
                return 2;
            }
        } else if (first_spec < 0) {
            first_spec = i;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "error: unknown option %s (see qkc demo --help)\n", argv[i]);
            return 2;
        }
    }
    if (first_spec >= 0) {
        /* The spec is every word that is not an option. */
        int n = 0;
        char **words = calloc((size_t)argc, sizeof *words);
        if (!words)
            return 1;
        for (int i = 0; i < argc; i++) {
            if (!strcmp(argv[i], "--m")) {
                i++;
                continue;
            }
            words[n++] = argv[i];
        }
        text = qkc_join_words(n, words);
        free(words);
    } else {
        text = malloc(strlen(default_spec) + 1);
        if (text)
            strcpy(text, default_spec);
    }
    if (!text || qkc_context_create(NULL, &ctx) != QKC_OK) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    if (!(spec = parse_or_report(ctx, text)))
        goto done;
    if (qkc_spec_print(spec, canon, sizeof canon, NULL) != QKC_OK || qkc_spec_query(spec, &info) != QKC_OK) {
        qkc_report("error: ", qkc_context_last_error(ctx));
        goto done;
    }
    if (info.m)
        m = info.m;
    if (info.n * info.k > (int64_t)1 << 28) {
        fprintf(stderr, "error: demo runs the scalar reference; keep n*k at or below 2^28\n");
        goto done;
    }
    w = malloc((size_t)(info.n * info.k) * sizeof *w);
    wd = malloc((size_t)(info.n * info.k) * sizeof *wd);
    a = malloc((size_t)(m * info.k) * sizeof *a);
    c = malloc((size_t)(m * info.n) * sizeof(float));
    cref_out = malloc((size_t)(m * info.n) * sizeof(float));
    blob = malloc(info.weight_bytes ? info.weight_bytes : 1);
    if (!w || !wd || !a || !c || !cref_out || !blob) {
        fprintf(stderr, "error: out of memory for the demo buffers\n");
        goto done;
    }
    for (int64_t i = 0; i < info.n * info.k; i++)
        w[i] = rnd_normal() * 0.02f;
    /* A in the spec's activation dtype; `a` keeps the values it holds. */
    a_mem = malloc((size_t)(m * info.k) * (strcmp(info.a_type, "f32") ? 2 : 4));
    if (!a_mem) {
        fprintf(stderr, "error: out of memory for the demo buffers\n");
        goto done;
    }
    for (int64_t i = 0; i < m * info.k; i++) {
        float x = rnd_normal();
        if (!strcmp(info.a_type, "bf16")) {
            ((uint16_t *)a_mem)[i] = qkc_f32_to_bf16(x);
            x = qkc_bf16_to_f32(((uint16_t *)a_mem)[i]);
        } else if (!strcmp(info.a_type, "f16")) {
            ((uint16_t *)a_mem)[i] = qkc_f32_to_f16(x);
            x = qkc_f16_to_f32(((uint16_t *)a_mem)[i]);
        } else {
            ((float *)a_mem)[i] = x;
        }
        a[i] = x;
    }

    printf("qkc %s (LLVM %s)\n", qkc_version_string(), qkc_llvm_version(llvm, sizeof llvm));
    printf("spec      %s\n", canon);
    printf("weights   %lld x %lld %s: %zu bytes, %.3f bits/weight (f32 would be %lld bytes)\n",
           (long long)info.n, (long long)info.k, info.weight_format, info.weight_bytes, info.bits_per_weight,
           (long long)(info.n * info.k * 4));
    t0 = now_ms();
    if (qkc_quantize(ctx, spec, w, info.k, blob, info.weight_bytes) != QKC_OK ||
        qkc_dequantize(ctx, spec, blob, info.weight_bytes, wd, info.k) != QKC_OK) {
        qkc_report("error: ", qkc_context_last_error(ctx));
        goto done;
    }
    tq = now_ms() - t0;
    for (int64_t i = 0; i < info.n * info.k; i++) {
        double d = (double)wd[i] - (double)w[i];
        werr += d * d;
        wref += (double)w[i] * (double)w[i];
    }
    printf("quantize  %.1f ms (quantize + dequantize, scalar reference); weight nmse %.3e%s\n", tq, werr / wref,
           isfinite(werr / wref) ? "" : ": FAILED, not a finite number");
    if (!isfinite(werr / wref))
        goto done;

    {
        /* The JIT kernel: compile, pack the weights once, run (median of
         * repeated calls), and check it against the reference matmul. */
        qkc_matmul_args args = {a_mem, info.k, blob, info.weight_bytes, NULL, cref_out, info.n, m};
        float *bias = NULL;
        qkc_kernel *kern = NULL;
        qkc_kernel_info ki;
        size_t pbytes = 0;
        void *packed = NULL;
        char what[400];
        double kerr = 0, kref = 0, times[64], us;
        int nt = 0;
        if (info.has_bias) {
            bias = calloc((size_t)info.n, sizeof *bias);
            args.bias = bias;
        }
        t0 = now_ms();
        if (info.has_bias && !bias) {
            fprintf(stderr, "error: out of memory for the bias\n");
            goto done;
        }
        if (qkc_kernel_compile(ctx, spec, NULL, &kern) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            free(bias);
            goto done;
        }
        tcomp = now_ms() - t0;
        if (qkc_kernel_query(kern, &ki) != QKC_OK || qkc_kernel_packed_bytes(kern, &pbytes) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto demo_kernel_done;
        }
        packed = malloc(pbytes ? pbytes : 1);
        if (!packed) {
            fprintf(stderr, "error: packing the weights: out of memory\n");
            goto demo_kernel_done;
        }
        if (qkc_weights_pack(ctx, kern, blob, info.weight_bytes, packed, pbytes) != QKC_OK) {
            qkc_report("error: packing the weights: ", qkc_context_last_error(ctx));
            goto demo_kernel_done;
        }
        printf("kernel    %s (%s), %s; %s in %.1f ms\n", ki.target, ki.features, ki.schedule,
               ki.from_disk ? "linked from the disk cache" : "compiled", tcomp);
        printf("layout    %s\n", ki.layout);
        printf("compute   %s\n", qkc_describe_compute(spec, kern, what, sizeof what));
        t0 = now_ms();
        if (qkc_reference_matmul(ctx, spec, &args) != QKC_OK) {
            qkc_report("error: ", qkc_context_last_error(ctx));
            goto demo_kernel_done;
        }
        tmm = now_ms() - t0;
        args.weights = packed;
        args.weights_bytes = pbytes;
        args.c = c;
        for (nt = 0; nt < 64; nt++) {
            double t1 = now_ms();
            if (qkc_kernel_run(ctx, kern, &args, NULL) != QKC_OK) {
                qkc_report("error: ", qkc_context_last_error(ctx));
                goto demo_kernel_done;
            }
            times[nt] = now_ms() - t1;
            if (nt >= 10 && now_ms() - t0 > 500.0)
                break;
        }
        nt = nt < 64 ? nt + 1 : 64;
        for (int i = 1; i < nt; i++) /* insertion sort: nt is small */
            for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
                double t = times[j];
                times[j] = times[j - 1], times[j - 1] = t;
            }
        us = times[nt / 2] * 1e3;
        for (int64_t i = 0; i < m * info.n; i++) {
            double x = out_value(info.out_type, c, i), y = out_value(info.out_type, cref_out, i);
            kerr += (x - y) * (x - y);
            kref += y * y;
        }
        printf("bench     m=%lld: %.1f us per call (median of %d), %.2f GB/s of weights, %.2f GFLOP/s; reference %.1f ms\n",
               m, us, nt, (double)info.weight_bytes / (us * 1e-6) / 1e9,
               2.0 * (double)m * (double)info.n * (double)info.k / (us * 1e-6) / 1e9, tmm);
        /* NaN fails every comparison: a NaN error is a failure, and said so */
        printf("check     kernel vs reference: nmse %.3e (bound 1e-10) %s\n", kref > 0 ? kerr / kref : kerr,
               (kref > 0 ? kerr / kref : kerr) <= 1e-10 ? "ok"
               : isnan(kerr) ? "FAILED: not a number"
                             : "FAILED");
        rc = (kref > 0 ? kerr / kref : kerr) <= 1e-10 ? 0 : 1;
        /* The format's own error: against the product with the unquantized
         * weights (meaningful for f32 output without bias or activation). */
        if (!strcmp(info.out_type, "f32") && !strcmp(info.activation, "none") && !info.has_bias) {
            for (int64_t r = 0; r < m; r++)
                for (int64_t j = 0; j < info.n; j++) {
                    double exact = 0.0;
                    for (int64_t i = 0; i < info.k; i++)
                        exact += (double)a[r * info.k + i] * (double)w[j * info.k + i];
                    double d = ((const float *)c)[r * info.n + j] - exact;
                    cerr += d * d;
                    cref += exact * exact;
                    cmax = isnan(d) || isnan(cmax) ? NAN : fmax(cmax, fabs(d));
                }
            printf("check     output vs unquantized weights: nmse %.3e, max_abs_err %.3e: %s\n", cerr / cref, cmax,
                   cerr / cref < 0.05 && !isnan(cmax) ? "ok, what the format's precision implies"
                   : isnan(cerr / cref) || isnan(cmax)  ? "FAILED: not a number"
                                                        : "FAILED: larger than the format implies");
            if (!(cerr / cref < 0.05) || isnan(cmax))
                rc = 1;
        }
    demo_kernel_done:
        free(bias);
        free(packed);
        qkc_kernel_destroy(kern);
    }
done:
    free(w);
    free(wd);
    free(a);
    free(c);
    free(cref_out);
    free(blob);
    free(a_mem);
    free(text);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    return rc;
}

/* ------------------------------------------------------------- compile */

/* ------------------------------------------------------------- formats */

static int cmd_formats(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        print_help(find_command("formats"));
        return 0;
    }
    puts("element dtypes (w=DTYPE):");
    for (int d = 1; d < QKC_DTYPE_END_; d++) {
        const qkc_dtype_desc *dd = qkc_dtype_get((qkc_dtype)d);
        static const char *const kinds[] = {"",         "float",    "minifloat",      "integer",
                                            "codebook", "exponent", "table in blob", "vector codebook"};
        if (dd)
            printf("  %-8s %2d bits  %s%s\n", dd->keyword, dd->bits,
                   (size_t)dd->kind < sizeof kinds / sizeof kinds[0] ? kinds[dd->kind] : "?",
                   d == QKC_DTYPE_E8M0 ? " (scales only)" : "");
    }
    puts("presets (w=PRESET[:OPTIONS]):");
    for (int p = 1; p < QKC_PRESET_END_; p++) {
        const qkc_preset_desc *pd = qkc_preset_get((qkc_preset)p);
        if (!pd)
            continue;
        printf("  %-8s", pd->keyword);
        if (pd->block_bytes)
            printf(" blocks of %lld weights in %lld bytes (%.4g bits/weight)", (long long)pd->block_elems,
                   (long long)pd->block_bytes, 8.0 * (double)pd->block_bytes / (double)pd->block_elems);
        if (pd->ggml_type >= 0)
            printf(", ggml type %d", pd->ggml_type);
        if (pd->vec_dot_type[0])
            printf(", compute=int8 by default (llama.cpp: %s activations)", pd->vec_dot_type);
        if (pd->about[0])
            printf("%s%s", pd->block_bytes || pd->ggml_type >= 0 ? ", " : " ", pd->about);
        putchar('\n');
    }
    return 0;
}

/* ------------------------------------------------------------- version */

static int cmd_version(int argc, char **argv)
{
    char llvm[32];
    (void)argc, (void)argv;
    printf("qkc %s (LLVM %s)\n", qkc_version_string(), qkc_llvm_version(llvm, sizeof llvm));
    return 0;
}

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"check", cmd_check, "parse and verify a spec, print its canonical form",
     "usage: qkc check SPEC...\n"
     "       qkc check -            (read the spec from standard input)\n"
     "\n"
     "Parse and verify a matmul spec. The words of SPEC are joined with spaces,\n"
     "so no quoting is needed. On success print the canonical one-line form and\n"
     "exit 0; otherwise print 'error: LINE:COL: what is wrong and what was\n"
     "expected' and exit 1.\n"
     "\n"
     "example: qkc check matmul n=4096 k=4096 a=f32 w=q4_0 out=f32\n"},
    {"demo", cmd_demo, "JIT-compile a quantized matmul, run it and check it",
     "usage: qkc demo [SPEC...] [--m M]\n"
     "\n"
     "The main job: parse SPEC (default: matmul n=4096 k=4096 a=f32 w=q4_0\n"
     "out=f32, which computes in int8 as llama.cpp does; add compute=f32 for\n"
     "exact f32), quantize random normal weights into its format, JIT-compile\n"
     "the kernel for this CPU, pack the weights, run it for M rows (default\n"
     "1, at most 4096), and print the kernel, its layout and compute type,\n"
     "its speed (median of repeated calls) and two checks: the kernel against\n"
     "the reference matmul (nmse at most 1e-10) and the output against the\n"
     "unquantized weights (the format's own error, plus the activations' int8\n"
     "rounding with compute=int8).\n"
     "Exit 1 if a check fails.\n"},
    {"bench", qkc_cmd_bench, "measure a kernel against the machine's bandwidth and peak",
     "usage: qkc bench SPEC... [--m LIST] [--threads LIST] [--cold] [--json] [--reps N] [--target T]\n"
     "                 [--plot FILE.svg] [--schedule S] [--db FILE] [--device cpu|cuda]\n"
     "\n"
     "JIT-compile SPEC and time it for every M in LIST (default 1) and thread\n"
     "count (default 1), next to the machine's own limits measured in the same\n"
     "run: read bandwidth (a 1 GiB sweep), peak f32 FMA and int8 dot-product\n"
     "rates with the same threads. --cold rotates the calls over weight copies\n"
     "totalling at least 1 GiB so each call streams its weights from memory;\n"
     "otherwise one copy stays in cache (hot). Times are medians. The header\n"
     "names the kernel, its layout and the compute type it runs (int8 by\n"
     "default for the GGUF presets, as llama.cpp; compute=f32 for exact f32).\n"
     "\n"
     "Columns (and --json keys, one JSON object per case per line, after\n"
     "\"spec\", the canonical spec, and \"compute\", its compute type):\n"
     "  us            median microseconds per call\n"
     "  gbps          effective GB/s: the format's weight bytes (elements, scales,\n"
     "                zeros) divided by the time\n"
     "  gflops        2*M*N*K / time\n"
     "  mem_gbps      measured read bandwidth with the same thread count\n"
     "  peak_gflops   measured peak f32 FMA rate; peak_gops: int8 dot products\n"
     "  compile_ms    median cold JIT compile of this kernel (disk cache off)\n"
     "  disk_hit_us   median compile that links the kernel from the disk cache,\n"
     "                each in a fresh process whose JIT is already started\n"
     "  jit_start_us  median first compile in a fresh process (JIT start-up plus\n"
     "                one disk hit)\n"
     "  cache_hit_us  median in-memory cache hit (a second compile)\n"
     "  nmse, max_abs_err   against the reference on the first min(M, 8) rows\n"
     "\n"
     "--plot FILE.svg draws the roofline: arithmetic intensity (FLOP per weight\n"
     "byte) against GFLOP/s, log-log, with each thread count's measured memory\n"
     "and compute roofs (the int8 roof for int8 kernels) and every case as a\n"
     "red point labelled with M and threads. Any browser opens it.\n"
     "\n"
     "--schedule S times that schedule instead of the heuristic's (keys left\n"
     "out are the heuristic's); --db FILE (or $QKC_TUNE_DB) takes the schedule\n"
     "from a tuning database, for the M bucket of the first M (qkc tune).\n"
     "\n"
     "--device cuda times a GPU kernel (--target nvptx-sm80|nvptx-sm90, default\n"
     "the device's) on device-resident operands (a=f32), per M: us, gbps,\n"
     "copy_gbps (a 1 GiB device-to-device copy in the same run: bytes read plus\n"
     "written per second), pct = gbps / copy_gbps, nmse and max_abs_err (in\n"
     "JSON after spec, compute, device and target). Without a CUDA driver or\n"
     "device it says so and exits 1. docs/gpu.md.\n"
     "\n"
     "--probe-disk-hit DIR is what bench runs in each fresh process: it links\n"
     "two kernels from the cache in DIR and prints their compile times.\n"
     "\n"
     "example: qkc bench matmul n=4096 k=4096 w=q4_0 --m 1,8 --threads 1,2 --cold\n"},
    {"compile", qkc_cmd_compile, "generate kernels: assembly, LLVM IR, objects, AOT libraries and headers",
     "usage: qkc compile SPEC... --emit asm|ptx|ll|bc|obj [--target T] [--schedule S] [-o FILE]\n"
     "                   [--db FILE] [--m M]\n"
     "       qkc compile [SPEC...] [--spec SPEC]... [--specs FILE] --emit lib|header\n"
     "                   [--target T]... [--schedule S] [--db FILE] [--name NAME] -o FILE\n"
     "\n"
     "One kernel: generate SPEC's kernel for target T (default: $QKC_TARGET, else\n"
     "this machine; `qkc targets` lists them) and write its assembly, optimised\n"
     "LLVM IR (ll), LLVM bitcode (bc) or ELF object (obj) to FILE (default:\n"
     "standard output; bc and obj need -o). The target need not be this\n"
     "machine's. The kernel's symbol is qkc_kernel; its ABI is\n"
     "ir/kernel_abi.h. For nvptx-sm80 and nvptx-sm90 the assembly is PTX\n"
     "(--emit ptx is the same as asm; no obj). docs/gpu.md.\n"
     "\n"
     "AOT library: --emit lib writes a static library holding a kernel for every\n"
     "spec and every --target (in order of preference) and a dispatch table;\n"
     "--emit header writes the C header that declares them. Give both the same\n"
     "specs, targets and name. Specs come from the words (one spec), --spec\n"
     "(repeatable) and --specs FILE (one per line, # comments). NAME (default:\n"
     "from FILE, libNAME.a -> NAME) names the table qkc_aot_NAME and the entry\n"
     "points qkc_aot_NAME_<i>. A program links the library with libqkc_rt (no\n"
     "LLVM) and gets a kernel with qkc_aot_kernel(), which picks the first\n"
     "target this CPU runs, or the one QKC_TARGET names. docs/aot.md.\n"
     "\n"
     "--schedule S sets the schedule (\"tm=4 tn=4 ku=1 vec=512 pf=0 nb=64\"; keys\n"
     "left out are the heuristic's) for every kernel. Without it, a tuning\n"
     "database (--db FILE, else $QKC_TUNE_DB; `qkc tune` writes them) gives the\n"
     "schedule of each kernel it has an entry for, for the M bucket of --m M\n"
     "(default 1), and the heuristic the others.\n"
     "\n"
     "examples:\n"
     "  qkc compile matmul n=4096 k=4096 w=q4_0 compute=int8 --emit asm\n"
     "  qkc compile --specs layer.specs --target x86_64-avx512-vnni \\\n"
     "      --target x86_64-avx2 --emit lib -o libkernels.a\n"},
    {"tune", qkc_cmd_tune, "search schedules for the fastest kernel, keep them in a tuning database",
     "usage: qkc tune SPEC... [--spec SPEC]... [--m LIST] [--budget 30s|200] [--db FILE]\n"
     "                [--cold] [--threads N] [--target T] [--exhaustive] [--quiet]\n"
     "\n"
     "Search the schedule space of each spec (tm tn ku vec pf nb, docs/tuning.md)\n"
     "for every M in LIST (default 1) on this machine: successive halving over a\n"
     "coarse grid, then a local search around the best, candidates compiled on a\n"
     "second thread while the current one is timed. Every candidate is checked\n"
     "against the reference matmul before it is timed; times are medians of\n"
     "repeated calls, hot (one weight copy) or --cold (copies rotating over\n"
     ">= 1 GiB). The best wins only if its median beats the heuristic's, both\n"
     "measured alternately at the end.\n"
     "\n"
     "  --budget B    per spec and M: seconds (30s, 2m) or trials (200);\n"
     "                default 30s\n"
     "  --exhaustive  measure every point of the space instead (no budget)\n"
     "  --threads N   threads per timed call (default 1)\n"
     "  --db FILE     merge the results into the tuning database FILE (created\n"
     "                if absent; per spec, M bucket, features and qkc version\n"
     "                the faster entry is kept). qkc compile, qkc bench and\n"
     "                programs (QKC_TUNE_DB) use its schedules.\n"
     "\n"
     "Prints one row per spec and M: the heuristic's and the best median in\n"
     "microseconds, the gain, the trials measured and the best schedule; then\n"
     "the geometric-mean gain. Progress goes to standard error (--quiet: none).\n"
     "\n"
     "example: qkc tune matmul n=4096 k=4096 w=q4_0 --m 1,8,512 --budget 60s --db tune.db\n"},
    {"targets", qkc_cmd_targets, "list the named targets and their CPU features",
     "usage: qkc targets\n"
     "\n"
     "List the targets `--target` accepts, whether this machine runs their code,\n"
     "and the CPU features each uses. host is this machine's own features.\n"
     "Every target compiles anywhere (`qkc compile --target aarch64-neon` on an\n"
     "x86-64 machine); only those of this machine's architecture run here.\n"
     "docs/targets.md.\n"},
    {"cache", qkc_cmd_cache, "list, clear, export or import the kernel cache",
     "usage: qkc cache list|clear|export FILE|import FILE [--dir DIR]\n"
     "\n"
     "The persistent kernel cache keeps compiled kernels on disk, so a later\n"
     "process links them instead of generating code. Its directory is DIR, else\n"
     "$QKC_CACHE_DIR, else $XDG_CACHE_HOME/qkc, else $HOME/.cache/qkc\n"
     "(QKC_CACHE=off turns the cache off for programs; this command always uses\n"
     "it).\n"
     "\n"
     "  list         one line per entry: file, bytes, date, spec (or what is\n"
     "               wrong with it), then its target and versions\n"
     "  clear        remove every entry (nothing else in the directory)\n"
     "  export FILE  write every valid entry into one bundle file\n"
     "  import FILE  check every entry of a bundle, then add them all\n"
     "\n"
     "Entries are machine code: import bundles only from builds you trust.\n"},
    {"inspect", qkc_cmd_inspect, "list the tensors of a GGUF or safetensors file and what runs",
     "usage: qkc inspect FILE [--metadata] [--gptq v1|v2|auto] [--no-mmap]\n"
     "\n"
     "Open a GGUF or safetensors file, validate it, and list its tensors: name,\n"
     "the file's type, shape (outermost first, as PyTorch prints it), bytes, and\n"
     "whether qkc runs it: the matrix n x k and the weight format (in place: the\n"
     "file's bytes are the weight blob; imported: the GPTQ, AWQ or bitsandbytes\n"
     "NF4 tensors of one weight combined), or why not. --metadata also prints\n"
     "the metadata (values cut at 200 bytes). --gptq sets the GPTQ zero-point\n"
     "convention (default auto: the safetensors metadata key checkpoint_format,\n"
     "gptq_v2 meaning v2). Names and values are printed with control\n"
     "characters, invalid UTF-8 and backslashes escaped (\\x1b, \\0, \\\\).\n"
     "Exit 1 if the file is malformed, with a message saying what and where.\n"
     "\n"
     "The file is memory-mapped: it must not shrink while qkc reads it (the\n"
     "operating system stops a process that touches a page past the new end\n"
     "with SIGBUS). --no-mmap (or QKC_FILE_MMAP=0 in the environment) reads\n"
     "the whole file into memory instead. docs/files.md.\n"
     "\n"
     "example: qkc inspect model.gguf\n"},
    {"run", qkc_cmd_run, "run a kernel on a tensor of a GGUF or safetensors file",
     "usage: qkc run SPEC...|auto --weights FILE:TENSOR --input X.f32 --output Y.f32\n"
     "               [--m M] [--expert E] [--gptq v1|v2|auto] [--no-mmap]\n"
     "\n"
     "JIT-compile a kernel for tensor TENSOR of FILE and compute Y = X W^T.\n"
     "auto derives the spec from the tensor (matmul n=N k=K w=FORMAT a=f32\n"
     "out=f32, with the format's default compute: int8 for the GGUF types);\n"
     "a SPEC must have the tensor's n, k and weight format and a=f32 out=f32\n"
     "(compute and act may vary). TENSOR may also be the module prefix of a\n"
     "GPTQ, AWQ or bitsandbytes weight. X.f32 holds M x K raw little-endian\n"
     "f32 values, row major (M defaults to its size over 4K bytes); Y.f32\n"
     "receives M x N. FILE is memory-mapped, or with --no-mmap (or\n"
     "QKC_FILE_MMAP=0) read into memory, as for qkc inspect. The last line\n"
     "(on standard error) names the tensor, the shape, the format and the\n"
     "compute type that ran. A MoE expert stack (a 3-D GGUF tensor [E, N, K];\n"
     "qkc inspect says \"x E experts\") runs one expert: --expert E.\n"
     "\n"
     "example: qkc run auto --weights model.gguf:blk.0.ffn_up.weight --input x.f32 --output y.f32\n"},
    {"formats", cmd_formats, "list element dtypes and presets",
     "usage: qkc formats\n\nList the element dtypes and the presets with their block geometry, and which\n"
     "presets compute in int8 by default (those whose llama.cpp kernels quantize\n"
     "activations, named with llama.cpp's activation type).\n"},
    {"version", cmd_version, "print the qkc and LLVM versions", "usage: qkc version\n"},
    {"help", cmd_help, "show help for a command", "usage: qkc help [COMMAND]\n"},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc >= 1) {
        const command *c = find_command(argv[0]);
        if (!c) {
            fprintf(stderr, "error: unknown command '%s' (see qkc help)\n", argv[0]);
            return 2;
        }
        print_help(c);
        return 0;
    }
    puts("usage: qkc COMMAND [ARGS...]\n\nqkc compiles quantized matmul kernels. Commands:");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-8s %s\n", commands[i].name, commands[i].summary);
    puts("\nqkc COMMAND --help shows the options of one command. docs/cli.md has the details.");
    return 0;
}

int main(int argc, char **argv)
{
    const command *c;
    int rc;
    if (argc < 2)
        return cmd_help(0, NULL), 2;
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cmd_help(0, NULL);
    if (!strcmp(argv[1], "--version"))
        return cmd_version(0, NULL);
    c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "error: unknown command '%s' (see qkc help)\n", argv[1]);
        return 2;
    }
    rc = c->run(argc - 2, argv + 2);
    /* What was printed must have been written (qkc inspect > /dev/full). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "error: writing standard output: %s\n", strerror(errno));
        return 1;
    }
    return rc;
}
