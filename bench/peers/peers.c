/*
 * qkc against a peer: llama.cpp's CPU backend (ggml), loaded at run time
 * from its prebuilt shared libraries (bench/peers/run.sh fetches them), on
 * the same weights, in one run.
 *
 *   qkc_peers --lib DIR [--n N] [--k K] [--formats q4_0,q8_0,q4_k,...] [--cases 1,1c,8c,16c]
 *             [--threads 1,2] [--time S] [--variant NAME] [--target T] [--json FILE]
 *
 * For every format, thread count and case (M rows; a trailing "c" streams
 * the weights from DRAM by rotating the calls over copies totalling at
 * least 1 GiB, as `qkc bench --cold` does) it times three kernels on the
 * same random N x K matrix and the same activations:
 *
 *   qkc f32    the JIT, spec "matmul n=N k=K w=FMT compute=f32" (f32
 *              activations; without compute= the presets compute in int8)
 *   qkc int8   the same with compute=int8 (activations quantized per 32),
 *              the presets' default
 *   peer       ggml's mul_mat through its backend API, with the weights in
 *              the buffer type llama.cpp would choose: the CPU backend's
 *              repacking "extra" buffer when it accepts the product, else
 *              the plain CPU buffer (the run says which)
 *
 * and prints the medians in microseconds and the ratios peer / qkc (> 1:
 * qkc is faster). Each side's output is checked against qkc's reference
 * matmul (f32 compute, double accumulation), as the largest difference
 * over the largest reference output, so a broken setup cannot report fast
 * nonsense; a difference above 0.05 fails the run.
 *
 * The peer is reached only through dlopen/dlsym: the prototypes and the
 * one small struct it needs (the context parameters) are restated below
 * from ggml's public C headers; its objects stay opaque pointers. Nothing
 * of ggml is compiled into this program.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/peers/common.h"
#include "bench/weights_rng.h"
#include "core/timing.h"
#include "qkc/qkc.h"

/* ------------------------------------------------------------ the peer's ABI
 *
 * Restated from ggml's public headers (ggml.h, ggml-backend.h, ggml-cpu.h),
 * as of ggml 0.21 and checked against the package's 0.25.1 (the symbols are
 * looked up by name; a missing one stops the run with its name). */

/* enum ggml_type: the values that matter here (append-only upstream). */
enum { PEER_TYPE_F32 = 0 };

/* The GGUF block types both sides run: qkc's preset keyword, ggml's type
 * number (its public enum ggml_type), and the block geometry. */
static const struct peer_format {
    const char *name;
    int type, block, bytes;
} peer_formats[] = {
    {"q4_0", 2, 32, 18},   {"q4_1", 3, 32, 20},   {"q5_0", 6, 32, 22},    {"q5_1", 7, 32, 24},
    {"q8_0", 8, 32, 34},   {"q4_k", 12, 256, 144}, {"q5_k", 13, 256, 176}, {"q6_k", 14, 256, 210},
    {"iq4_nl", 20, 32, 18}, {"iq4_xs", 23, 256, 136}, {"tq2_0", 35, 256, 66}, {"tq1_0", 34, 256, 54}, {"q3_k", 11, 256, 110}, {"q2_k", 10, 256, 84},
};

static const struct peer_format *peer_format_get(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof peer_formats / sizeof peer_formats[0]; i++)
        if (strlen(peer_formats[i].name) == len && !strncmp(peer_formats[i].name, name, len))
            return &peer_formats[i];
    return NULL;
}

/* struct ggml_init_params, passed by value to ggml_init. */
typedef struct peer_init_params {
    size_t mem_size;  /* bytes of the context's own arena (tensor and graph headers) */
    void *mem_buffer; /* NULL: ggml allocates the arena */
    bool no_alloc;    /* true: tensor data lives in backend buffers, not the arena */
} peer_init_params;

/* Opaque handles (ggml_context, ggml_tensor, ggml_cgraph, backend registry,
 * device, backend, buffer type, buffer, thread pool). */
typedef struct peer_ctx peer_ctx;
typedef struct peer_tensor peer_tensor;
typedef struct peer_graph peer_graph;
typedef struct peer_reg peer_reg;
typedef struct peer_dev peer_dev;
typedef struct peer_backend peer_backend;
typedef struct peer_buft peer_buft;
typedef struct peer_buffer peer_buffer;
typedef struct peer_pool peer_pool;

/* struct ggml_threadpool_params is about 530 bytes (a 512-entry CPU mask
 * first); only ggml reads it, so it lives in storage comfortably larger,
 * filled by ggml_threadpool_params_init. */
typedef union peer_pool_params {
    unsigned char bytes[4096];
    max_align_t align;
} peer_pool_params;

/* ggml_log_callback: level (enum ggml_log_level: 1 debug, 2 info, 3 warn,
 * 4 error, 5 continuation), one piece of text, the user pointer. */
typedef void (*peer_log_fn)(int level, const char *text, void *user);

/* The entry points used, from libggml-base.so (base) and from the CPU
 * variant library (cpu). */
typedef struct peer_api {
    void *base, *cpu;      /* dlopen handles */
    char variant[64];      /* "zen4", "haswell", ...: the CPU library loaded */
    int score, variants;   /* its score, and how many variants were scored */
    /* base: contexts, tensors, graphs, quantization */
    const char *(*version)(void);
    const char *(*commit)(void);
    peer_ctx *(*init)(peer_init_params params);
    void (*free)(peer_ctx *ctx);
    size_t (*tensor_overhead)(void);
    size_t (*graph_overhead_custom)(size_t size, bool grads);
    peer_tensor *(*new_tensor_2d)(peer_ctx *ctx, int type, int64_t ne0, int64_t ne1);
    peer_tensor *(*mul_mat)(peer_ctx *ctx, peer_tensor *a, peer_tensor *b);
    peer_graph *(*new_graph_custom)(peer_ctx *ctx, size_t size, bool grads);
    void (*build_forward_expand)(peer_graph *graph, peer_tensor *tensor);
    size_t (*quantize_chunk)(int type, const float *src, void *dst, int64_t start, int64_t nrows,
                             int64_t n_per_row, const float *imatrix);
    void (*threadpool_params_init)(void *params, int n_threads);
    void (*log_set)(peer_log_fn fn, void *user);
    /* base: the backend interface */
    peer_dev *(*reg_dev_get)(peer_reg *reg, size_t index);
    void *(*reg_get_proc_address)(peer_reg *reg, const char *name);
    peer_backend *(*dev_init)(peer_dev *dev, const char *params);
    const char *(*dev_description)(peer_dev *dev);
    peer_buft *(*dev_buffer_type)(peer_dev *dev);
    bool (*dev_supports_op)(peer_dev *dev, const peer_tensor *op);
    const char *(*buft_name)(peer_buft *buft);
    peer_buffer *(*alloc_ctx_tensors_from_buft)(peer_ctx *ctx, peer_buft *buft);
    void (*buffer_free)(peer_buffer *buffer);
    void (*tensor_set)(peer_tensor *tensor, const void *data, size_t offset, size_t size);
    void (*tensor_get)(const peer_tensor *tensor, void *data, size_t offset, size_t size);
    int (*graph_compute)(peer_backend *backend, peer_graph *graph); /* enum ggml_status, 0 = success */
    void (*backend_free)(peer_backend *backend);
    /* cpu: registry entry, threads, and what the library was built for */
    peer_reg *(*backend_init)(void);
    int (*backend_score)(void);
    void (*set_n_threads)(peer_backend *backend, int n_threads);
    void (*set_threadpool)(peer_backend *backend, peer_pool *pool);
    peer_pool *(*threadpool_new)(void *params);
    void (*threadpool_free)(peer_pool *pool);
    void (*threadpool_pause)(peer_pool *pool);
    int (*has_avx2)(void), (*has_avx512)(void), (*has_avx512_vnni)(void), (*has_avx512_vbmi)(void),
        (*has_avx_vnni)(void), (*has_llamafile)(void);
} peer_api;

/* The CPU backend's list of extra buffer types, got through
 * reg_get_proc_address("ggml_backend_dev_get_extra_bufts"): NULL-ended. */
typedef peer_buft **(*peer_get_extra_bufts)(peer_dev *dev);

/* dlsym into a function pointer without the object-to-function cast ISO C
 * leaves undefined. Returns 0 when the symbol is missing. */
static int peer_sym(void *lib, const char *name, void *fn_ptr, size_t size)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "error: the peer library lacks %s\n", name);
        return 0;
    }
    memcpy(fn_ptr, &p, size);
    return 1;
}
#define SYM(lib, name, field) peer_sym(lib, name, &(field), sizeof(field))

/* The CPU variant to load: `want` (a name such as "haswell") if given, else
 * the library whose ggml_backend_score() is highest, as ggml's own loader
 * picks (0 means "not for this CPU"). Fills api->cpu, variant, score,
 * variants. */
static int peer_pick_variant(peer_api *api, const char *dir, const char *want)
{
    static const char prefix[] = "libggml-cpu-";
    const size_t plen = sizeof prefix - 1;
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[1024] = "";
    int best_score = 0;
    if (!d) {
        fprintf(stderr, "error: cannot read the peer's library folder %s\n", dir);
        return 0;
    }
    while ((e = readdir(d))) {
        char path[1024], name[64];
        size_t len = strlen(e->d_name);
        void *lib, *p;
        int (*score)(void) = NULL;
        int s = 0;
        if (strncmp(e->d_name, prefix, plen) || len <= plen + 3 || strcmp(e->d_name + len - 3, ".so"))
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(len - plen - 3), e->d_name + plen);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!(lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            continue;
        api->variants++;
        if ((p = dlsym(lib, "ggml_backend_score"))) {
            memcpy(&score, &p, sizeof score);
            s = score();
        }
        dlclose(lib);
        if (want ? !strcmp(name, want) : s > best_score) {
            best_score = s;
            snprintf(best, sizeof best, "%s", path);
            snprintf(api->variant, sizeof api->variant, "%s", name);
        }
    }
    closedir(d);
    if (!best[0]) {
        if (want)
            fprintf(stderr, "error: no peer CPU library libggml-cpu-%s.so in %s\n", want, dir);
        else
            fprintf(stderr, "error: none of the peer's CPU libraries in %s supports this CPU (all score 0)\n", dir);
        return 0;
    }
    if (best_score <= 0) {
        fprintf(stderr, "error: %s does not support this CPU (it scores 0)\n", best);
        return 0;
    }
    if (!(api->cpu = dlopen(best, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "error: %s\n", dlerror());
        return 0;
    }
    api->score = best_score;
    return 1;
}

/* Load libggml-base.so and the best CPU variant from `dir`. */
static int peer_load(peer_api *api, const char *dir, const char *want)
{
    char path[1024];
    int ok = 1;
    memset(api, 0, sizeof *api);
    snprintf(path, sizeof path, "%s/libggml-base.so", dir);
    if (!(api->base = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "error: cannot load the peer: %s\n", dlerror());
        return 0;
    }
    ok &= SYM(api->base, "ggml_version", api->version);
    ok &= SYM(api->base, "ggml_commit", api->commit);
    ok &= SYM(api->base, "ggml_init", api->init);
    ok &= SYM(api->base, "ggml_free", api->free);
    ok &= SYM(api->base, "ggml_tensor_overhead", api->tensor_overhead);
    ok &= SYM(api->base, "ggml_graph_overhead_custom", api->graph_overhead_custom);
    ok &= SYM(api->base, "ggml_new_tensor_2d", api->new_tensor_2d);
    ok &= SYM(api->base, "ggml_mul_mat", api->mul_mat);
    ok &= SYM(api->base, "ggml_new_graph_custom", api->new_graph_custom);
    ok &= SYM(api->base, "ggml_build_forward_expand", api->build_forward_expand);
    ok &= SYM(api->base, "ggml_quantize_chunk", api->quantize_chunk);
    ok &= SYM(api->base, "ggml_threadpool_params_init", api->threadpool_params_init);
    ok &= SYM(api->base, "ggml_log_set", api->log_set);
    ok &= SYM(api->base, "ggml_backend_reg_dev_get", api->reg_dev_get);
    ok &= SYM(api->base, "ggml_backend_reg_get_proc_address", api->reg_get_proc_address);
    ok &= SYM(api->base, "ggml_backend_dev_init", api->dev_init);
    ok &= SYM(api->base, "ggml_backend_dev_description", api->dev_description);
    ok &= SYM(api->base, "ggml_backend_dev_buffer_type", api->dev_buffer_type);
    ok &= SYM(api->base, "ggml_backend_dev_supports_op", api->dev_supports_op);
    ok &= SYM(api->base, "ggml_backend_buft_name", api->buft_name);
    ok &= SYM(api->base, "ggml_backend_alloc_ctx_tensors_from_buft", api->alloc_ctx_tensors_from_buft);
    ok &= SYM(api->base, "ggml_backend_buffer_free", api->buffer_free);
    ok &= SYM(api->base, "ggml_backend_tensor_set", api->tensor_set);
    ok &= SYM(api->base, "ggml_backend_tensor_get", api->tensor_get);
    ok &= SYM(api->base, "ggml_backend_graph_compute", api->graph_compute);
    ok &= SYM(api->base, "ggml_backend_free", api->backend_free);
    if (!ok || !peer_pick_variant(api, dir, want))
        return 0;
    ok &= SYM(api->cpu, "ggml_backend_init", api->backend_init);
    ok &= SYM(api->cpu, "ggml_backend_score", api->backend_score);
    ok &= SYM(api->cpu, "ggml_backend_cpu_set_n_threads", api->set_n_threads);
    ok &= SYM(api->cpu, "ggml_backend_cpu_set_threadpool", api->set_threadpool);
    ok &= SYM(api->cpu, "ggml_threadpool_new", api->threadpool_new);
    ok &= SYM(api->cpu, "ggml_threadpool_free", api->threadpool_free);
    ok &= SYM(api->cpu, "ggml_threadpool_pause", api->threadpool_pause);
    ok &= SYM(api->cpu, "ggml_cpu_has_avx2", api->has_avx2);
    ok &= SYM(api->cpu, "ggml_cpu_has_avx512", api->has_avx512);
    ok &= SYM(api->cpu, "ggml_cpu_has_avx512_vnni", api->has_avx512_vnni);
    ok &= SYM(api->cpu, "ggml_cpu_has_avx512_vbmi", api->has_avx512_vbmi);
    ok &= SYM(api->cpu, "ggml_cpu_has_avx_vnni", api->has_avx_vnni);
    ok &= SYM(api->cpu, "ggml_cpu_has_llamafile", api->has_llamafile);
    return ok;
}

/* What the peer logs: its repacking announces the layout it chose ("repack
 * tensor NAME with q4_0_8x8"), kept for the report; warnings and errors go
 * to stderr; the rest (debug, info) is dropped. */
typedef struct peer_log {
    char layout[64]; /* the last layout a repack announced, "" if none */
    int level;       /* the level of the message being continued */
} peer_log;

static void peer_log_message(int level, const char *text, void *user)
{
    peer_log *log = user;
    const char *with = strstr(text, "repack tensor") ? strstr(text, " with ") : NULL;
    if (level != 5)
        log->level = level;
    if (with)
        snprintf(log->layout, sizeof log->layout, "%.*s", (int)strcspn(with + 6, " \n"), with + 6);
    else if (log->level >= 3)
        fprintf(stderr, "peer: %s", text);
}

/* ------------------------------------------------------------------ helpers */

/* The weights of every case come from one stream (bench/weights_rng.h). */
static uint64_t rng = QKC_BENCH_RNG_SEED;

/* ---------------------------------------------------------------- the sides */

enum { SIDE_QKC_F32, SIDE_QKC_INT8, SIDE_PEER, SIDES };
static const char *const side_names[SIDES] = {"qkc f32", "qkc int8", "peer"};

/* One qkc kernel and its packed weight copies. */
typedef struct qkc_side {
    qkc_kernel *kernel;
    qkc_kernel_info info;
    qkc_kernel_info prefill; /* what calls with M >= 32 run (qkc_kernel_query_m) */
    unsigned char **copies; /* ncopies packed blobs, identical */
    size_t packed_bytes;
} qkc_side;

/* The peer's weights for one format: `ncopies` tensors in one buffer. */
typedef struct peer_weights {
    peer_ctx *ctx;
    peer_tensor **w;
    peer_buffer *buffer;
    const char *buft; /* the buffer type's name: "CPU_REPACK", "CPU" */
    char layout[64];  /* the layout the peer announced when it repacked, "" if none */
} peer_weights;

/* The peer's activations for one M: A, and one mul_mat graph per copy. */
typedef struct peer_product {
    peer_ctx *ctx;
    peer_tensor *a, **out;
    peer_graph **graph;
    peer_buffer *buffer;
} peer_product;

typedef struct bench {
    qkc_context *ctx;
    peer_api api;
    peer_log *log;
    peer_dev *dev;
    peer_backend *backend;
    peer_buft *cpu_buft, *repack_buft;
    int64_t n, k;
    int ncopies;    /* weight copies for the cold cases */
    double seconds; /* target time per side and round */
} bench;

/* Is the product W·A accepted by the repacking buffer type for this format
 * and shape? Asked as llama.cpp asks it: a weight tensor placed in that
 * buffer type (and only the weight: the activations stay unallocated), a
 * mul_mat on it, and the device's supports_op. */
static int peer_repack_accepts(bench *b, int type)
{
    peer_init_params ip = {b->api.tensor_overhead() * 2 + 1024, NULL, true};
    peer_ctx *wctx = NULL, *octx = NULL;
    peer_tensor *w, *a, *op;
    peer_buffer *buf = NULL;
    int ok = 0;
    if (b->repack_buft && (wctx = b->api.init(ip)) && (octx = b->api.init(ip)) &&
        (w = b->api.new_tensor_2d(wctx, type, b->k, b->n)) && (a = b->api.new_tensor_2d(octx, PEER_TYPE_F32, b->k, 1)) &&
        (op = b->api.mul_mat(octx, w, a)) && (buf = b->api.alloc_ctx_tensors_from_buft(wctx, b->repack_buft)))
        ok = b->api.dev_supports_op(b->dev, op);
    if (buf)
        b->api.buffer_free(buf);
    if (octx)
        b->api.free(octx);
    if (wctx)
        b->api.free(wctx);
    return ok;
}

/* Put `ncopies` copies of the peer's quantized weights (bytes of the
 * format, N rows of K) into the buffer type llama.cpp would use. */
static int peer_weights_make(bench *b, int type, const void *bytes, size_t nbytes, peer_weights *pw)
{
    peer_init_params ip = {b->api.tensor_overhead() * (size_t)(b->ncopies + 1), NULL, true};
    peer_buft *buft = peer_repack_accepts(b, type) ? b->repack_buft : b->cpu_buft;
    memset(pw, 0, sizeof *pw);
    if (!(pw->w = calloc((size_t)b->ncopies, sizeof *pw->w)) || !(pw->ctx = b->api.init(ip)))
        return 0;
    for (int c = 0; c < b->ncopies; c++)
        if (!(pw->w[c] = b->api.new_tensor_2d(pw->ctx, type, b->k, b->n)))
            return 0;
    if (!(pw->buffer = b->api.alloc_ctx_tensors_from_buft(pw->ctx, buft))) {
        fprintf(stderr, "error: the peer could not allocate %d weight copies\n", b->ncopies);
        return 0;
    }
    /* a repacking buffer converts to its interleaved layout here, and says
     * which in its log */
    b->log->layout[0] = '\0';
    for (int c = 0; c < b->ncopies; c++)
        b->api.tensor_set(pw->w[c], bytes, 0, nbytes);
    snprintf(pw->layout, sizeof pw->layout, "%s", b->log->layout);
    pw->buft = b->api.buft_name(buft);
    return 1;
}

static void peer_weights_free(bench *b, peer_weights *pw)
{
    if (pw->buffer)
        b->api.buffer_free(pw->buffer);
    if (pw->ctx)
        b->api.free(pw->ctx);
    free(pw->w);
    memset(pw, 0, sizeof *pw);
}

/* A[M,K] (the same f32 rows qkc gets) and one graph out_c = W_c · A per
 * weight copy. */
static int peer_product_make(bench *b, peer_weights *pw, const float *a, int m, peer_product *pp)
{
    size_t per = b->api.tensor_overhead() + b->api.graph_overhead_custom(8, false);
    peer_init_params ip = {b->api.tensor_overhead() * 2 + per * (size_t)b->ncopies + 4096, NULL, true};
    memset(pp, 0, sizeof *pp);
    pp->out = calloc((size_t)b->ncopies, sizeof *pp->out);
    pp->graph = calloc((size_t)b->ncopies, sizeof *pp->graph);
    if (!pp->out || !pp->graph || !(pp->ctx = b->api.init(ip)) ||
        !(pp->a = b->api.new_tensor_2d(pp->ctx, PEER_TYPE_F32, b->k, m)))
        return 0;
    for (int c = 0; c < b->ncopies; c++) {
        if (!(pp->out[c] = b->api.mul_mat(pp->ctx, pw->w[c], pp->a)) ||
            !(pp->graph[c] = b->api.new_graph_custom(pp->ctx, 8, false)))
            return 0;
        b->api.build_forward_expand(pp->graph[c], pp->out[c]);
    }
    if (!(pp->buffer = b->api.alloc_ctx_tensors_from_buft(pp->ctx, b->cpu_buft)))
        return 0;
    b->api.tensor_set(pp->a, a, 0, (size_t)(m * b->k) * sizeof(float));
    return 1;
}

static void peer_product_free(bench *b, peer_product *pp)
{
    if (pp->buffer)
        b->api.buffer_free(pp->buffer);
    if (pp->ctx)
        b->api.free(pp->ctx);
    free(pp->out);
    free(pp->graph);
    memset(pp, 0, sizeof *pp);
}

/* What one timed call needs. */
typedef struct call {
    bench *b;
    qkc_side *q;      /* qkc sides */
    peer_product *pp; /* the peer */
    const float *a;
    float *c;
    int m, threads;
    int copy, rotate; /* next copy; rotate over all of them (cold) or stay on 0 */
} call;

/* One call of one side; returns 0 on success, else says what failed. */
static int call_run(call *cl, int side)
{
    int copy = cl->rotate ? cl->copy : 0, status;
    if (cl->rotate)
        cl->copy = (cl->copy + 1) % cl->b->ncopies;
    if (side == SIDE_PEER) {
        if ((status = cl->b->api.graph_compute(cl->b->backend, cl->pp->graph[copy])) != 0)
            fprintf(stderr, "error: M=%d, %d threads: the peer's graph_compute returned status %d\n", cl->m,
                    cl->threads, status);
        return status != 0;
    }
    {
        qkc_side *q = &cl->q[side];
        qkc_matmul_args args = {cl->a, cl->b->k, q->copies[copy], q->packed_bytes, NULL, cl->c, cl->b->n, cl->m};
        qkc_run_options ro = {.struct_size = sizeof ro, .threads = cl->threads};
        if (qkc_kernel_run(cl->b->ctx, q->kernel, &args, &ro) == QKC_OK)
            return 0;
        fprintf(stderr, "error: M=%d, %d threads: %s: %s\n", cl->m, cl->threads, side_names[side],
                qkc_context_last_error(cl->b->ctx));
        return 1;
    }
}

/* ------------------------------------------------------------------ the run */

typedef struct options {
    const char *lib, *variant, *target, *json;
    int64_t n, k;
    const char *formats[8];
    int nformats;
    int ms[8], cold[8], ncases;
    int threads[8], nthreads;
    double seconds;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: qkc_peers --lib DIR [--n N] [--k K] [--formats q4_0,q8_0] [--cases 1,1c,8c,16c]\n"
               "                 [--threads 1,2] [--time S] [--variant NAME] [--target T] [--json FILE]\n"
               "  --lib DIR      the peer's libraries (libggml-base.so, libggml-cpu-*.so)\n"
               "  --formats LIST GGUF types, up to 8 of q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k iq4_nl\n"
               "                 iq4_xs tq2_0 tq1_0 (default q4_0,q8_0; the K-quants, iq4_xs and tq*_0 need K a\n"
               "                 multiple of 256)\n"
               "  --cases LIST   M values; a trailing c streams the weights from DRAM (>= 1 GiB of copies)\n"
               "  --time S       seconds per side and round (3 rounds, alternated; default 0.15)\n"
               "  --variant NAME load libggml-cpu-NAME.so instead of the best scoring one\n"
               "  --target T     qkc's target (default: this CPU), e.g. x86_64-avx2\n"
               "  --json FILE    also write one JSON object per case to FILE\n");
}

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->n = o->k = 4096;
    o->formats[0] = "q4_0", o->formats[1] = "q8_0", o->nformats = 2;
    o->ms[0] = 1, o->ms[1] = 1, o->ms[2] = 8, o->ms[3] = 16;
    o->cold[1] = o->cold[2] = o->cold[3] = 1, o->ncases = 4;
    o->threads[0] = 1, o->threads[1] = 2, o->nthreads = 2;
    o->seconds = 0.15;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!v || strncmp(argv[i], "--", 2)) {
            fprintf(stderr, "error: unknown or incomplete argument %s\n", argv[i]);
            return 0;
        }
        i++;
        if (!strcmp(argv[i - 1], "--lib")) {
            o->lib = v;
        } else if (!strcmp(argv[i - 1], "--variant")) {
            o->variant = v;
        } else if (!strcmp(argv[i - 1], "--target")) {
            o->target = v;
        } else if (!strcmp(argv[i - 1], "--json")) {
            o->json = v;
        } else if (!strcmp(argv[i - 1], "--n") || !strcmp(argv[i - 1], "--k")) {
            char *end;
            long long x = strtoll(v, &end, 10);
            if (*end || x < 32 || x > (1 << 16) || x % 32) {
                fprintf(stderr, "error: %s takes a multiple of 32 from 32 to 65536\n", argv[i - 1]);
                return 0;
            }
            *(argv[i - 1][2] == 'n' ? &o->n : &o->k) = x;
        } else if (!strcmp(argv[i - 1], "--formats")) {
            const char *p = v;
            o->nformats = 0;
            for (;;) {
                size_t len = strcspn(p, ",");
                const struct peer_format *pf = peer_format_get(p, len);
                if (!pf || o->nformats == 8) {
                    fprintf(stderr, "error: --formats takes up to 8 of q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, "
                                    "q6_k, iq4_nl, iq4_xs, tq2_0, tq1_0, comma-separated\n");
                    return 0;
                }
                o->formats[o->nformats++] = pf->name;
                if (!p[len])
                    break;
                p += len + 1;
            }
        } else if (!strcmp(argv[i - 1], "--cases")) {
            if ((o->ncases = qkc_peers_parse_list(v, o->ms, o->cold, 8, 1, 4096)) < 1) {
                fprintf(stderr, "error: --cases takes a list such as 1,1c,8c,16c\n");
                return 0;
            }
        } else if (!strcmp(argv[i - 1], "--threads")) {
            if ((o->nthreads = qkc_peers_parse_list(v, o->threads, NULL, 8, 1, 256)) < 1) {
                fprintf(stderr, "error: --threads takes a list such as 1,2\n");
                return 0;
            }
        } else if (!strcmp(argv[i - 1], "--time")) {
            char *end;
            o->seconds = strtod(v, &end);
            if (*end || !(o->seconds > 0 && o->seconds <= 60)) {
                fprintf(stderr, "error: --time takes seconds, > 0 and <= 60\n");
                return 0;
            }
        } else {
            fprintf(stderr, "error: unknown option %s\n", argv[i - 1]);
            return 0;
        }
    }
    if (!o->lib) {
        fprintf(stderr, "error: --lib DIR is required (bench/peers/run.sh passes it)\n");
        return 0;
    }
    return 1;
}

/* Per-format state: qkc's two kernels, the peer's weights and products,
 * the reference for the largest M. */
typedef struct format_run {
    const char *name;
    int type;
    qkc_side q[2];
    peer_weights pw;
    int bytes_identical; /* qkc's and the peer's quantizers wrote the same bytes */
    float *ref;          /* reference C for max M rows */
} format_run;

static int qkc_side_make(bench *b, const char *text, const void *blob, size_t blob_bytes, const char *target,
                         qkc_side *q)
{
    qkc_spec *spec = NULL;
    qkc_compile_options co = {sizeof co, target, NULL, 0};
    memset(q, 0, sizeof *q);
    if (qkc_spec_parse(b->ctx, text, &spec) != QKC_OK || qkc_kernel_compile(b->ctx, spec, &co, &q->kernel) != QKC_OK ||
        qkc_kernel_query(q->kernel, &q->info) != QKC_OK ||
        qkc_kernel_query_m(b->ctx, q->kernel, 512, &q->prefill) != QKC_OK ||
        qkc_kernel_packed_bytes(q->kernel, &q->packed_bytes) != QKC_OK) {
        fprintf(stderr, "error: qkc: %s: %s\n", text, qkc_context_last_error(b->ctx));
        qkc_spec_destroy(spec);
        return 0;
    }
    qkc_spec_destroy(spec);
    if (!(q->copies = calloc((size_t)b->ncopies, sizeof *q->copies)))
        return 0;
    for (int c = 0; c < b->ncopies; c++) {
        if (!(q->copies[c] = malloc(q->packed_bytes ? q->packed_bytes : 1))) {
            fprintf(stderr, "error: out of memory for %d weight copies\n", b->ncopies);
            return 0;
        }
        if (c == 0 ? qkc_weights_pack(b->ctx, q->kernel, blob, blob_bytes, q->copies[0], q->packed_bytes) != QKC_OK
                   : (memcpy(q->copies[c], q->copies[0], q->packed_bytes), 0)) {
            fprintf(stderr, "error: qkc: packing the weights: %s\n", qkc_context_last_error(b->ctx));
            return 0;
        }
    }
    return 1;
}

static void qkc_side_free(bench *b, qkc_side *q)
{
    for (int c = 0; q->copies && c < b->ncopies; c++)
        free(q->copies[c]);
    free(q->copies);
    qkc_kernel_destroy(q->kernel);
    memset(q, 0, sizeof *q);
}

/* Quantize W with both libraries, compile qkc's kernels, place the peer's
 * weights, compute the reference for max_m rows of A. */
static int format_make(bench *b, const options *o, const char *name, const float *w, const float *a, int max_m,
                       format_run *f)
{
    char text[256];
    qkc_spec *spec = NULL;
    size_t bytes = 0;
    unsigned char *blob = NULL, *peer_blob = NULL;
    int ok = 0;
    memset(f, 0, sizeof *f);
    f->name = name;
    f->type = peer_format_get(name, strlen(name))->type;
    /* the f32 kernel and the reference: compute=f32 (the presets compute in int8 by default) */
    snprintf(text, sizeof text, "matmul n=%lld k=%lld w=%s compute=f32", (long long)b->n, (long long)b->k, name);
    if (qkc_spec_parse(b->ctx, text, &spec) != QKC_OK || qkc_weights_bytes(b->ctx, spec, &bytes) != QKC_OK) {
        fprintf(stderr, "error: qkc: %s: %s\n", text, qkc_context_last_error(b->ctx));
        goto done;
    }
    blob = malloc(bytes), peer_blob = malloc(bytes);
    f->ref = malloc((size_t)(max_m * b->n) * sizeof *f->ref);
    if (!blob || !peer_blob || !f->ref) {
        fprintf(stderr, "error: out of memory for the %s weights\n", name);
        goto done;
    }
    if (qkc_quantize(b->ctx, spec, w, b->k, blob, bytes) != QKC_OK) {
        fprintf(stderr, "error: qkc: quantizing: %s\n", qkc_context_last_error(b->ctx));
        goto done;
    }
    /* the peer quantizes the same matrix with its own quantizer */
    if (b->api.quantize_chunk(f->type, w, peer_blob, 0, b->n, b->k, NULL) != bytes) {
        fprintf(stderr, "error: the peer's %s rows are not %zu bytes: the block layouts differ\n", name, bytes);
        goto done;
    }
    f->bytes_identical = !memcmp(blob, peer_blob, bytes);
    {
        qkc_matmul_args ra = {a, b->k, blob, bytes, NULL, f->ref, b->n, max_m};
        if (qkc_reference_matmul(b->ctx, spec, &ra) != QKC_OK) {
            fprintf(stderr, "error: qkc: the reference: %s\n", qkc_context_last_error(b->ctx));
            goto done;
        }
    }
    if (!qkc_side_make(b, text, blob, bytes, o->target, &f->q[0]))
        goto done;
    snprintf(text, sizeof text, "matmul n=%lld k=%lld w=%s compute=int8", (long long)b->n, (long long)b->k, name);
    if (!qkc_side_make(b, text, blob, bytes, o->target, &f->q[1]) ||
        /* both sides run the same blocks: where the quantizers differ, the
         * peer gets qkc's, which decode alike on both sides */
        !peer_weights_make(b, f->type, f->bytes_identical ? peer_blob : blob, bytes, &f->pw))
        goto done;
    ok = 1;
done:
    qkc_spec_destroy(spec);
    free(blob);
    free(peer_blob);
    return ok;
}

static void format_free(bench *b, format_run *f)
{
    qkc_side_free(b, &f->q[0]);
    qkc_side_free(b, &f->q[1]);
    peer_weights_free(b, &f->pw);
    free(f->ref);
    f->ref = NULL;
}

/* Let the other side's idle workers park (qkc's spin about 0.1 ms; the
 * peer's pool is paused explicitly) before a side is timed. */
static void settle(void)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

/* Time the three sides of one case: warm-up, then 3 rounds in turn, each
 * side running about `seconds` per round; medians in us[side]. Then
 * checks each side's output (copy 0) against the reference. */
static int time_case(call *cl, peer_pool *pool, const float *ref, double us[SIDES], double err[SIDES],
                     double *int8_vs_peer)
{
    bench *b = cl->b;
    int reps[SIDES];
    double *t[SIDES] = {NULL, NULL, NULL};
    int nt[SIDES] = {0, 0, 0}, ok = 0, rounds = 3;
    float *out[SIDES] = {NULL, NULL, NULL};
    int64_t count = (int64_t)cl->m * b->n;
    for (int s = 0; s < SIDES; s++) {
        double t0, el;
        int r = 0;
        settle();
        t0 = qkc_now_seconds();
        do {
            if (call_run(cl, s))
                goto failed;
        } while (++r < 3 || (qkc_now_seconds() - t0 < 0.05 && r < 1000));
        el = (qkc_now_seconds() - t0) / r;
        reps[s] = (int)(b->seconds / el);
        reps[s] = reps[s] < 5 ? 5 : reps[s] > 2000 ? 2000 : reps[s];
        if (!(t[s] = malloc((size_t)(reps[s] * rounds) * sizeof **t)))
            goto failed;
        if (s == SIDE_PEER)
            b->api.threadpool_pause(pool);
    }
    for (int round = 0; round < rounds; round++)
        for (int s = 0; s < SIDES; s++) {
            settle();
            for (int r = 0; r < reps[s]; r++) {
                double t0 = qkc_now_seconds();
                if (call_run(cl, s))
                    goto failed;
                t[s][nt[s]++] = (qkc_now_seconds() - t0) * 1e6;
            }
            if (s == SIDE_PEER)
                b->api.threadpool_pause(pool);
        }
    for (int s = 0; s < SIDES; s++)
        us[s] = qkc_median(t[s], nt[s]);
    /* the outputs, from weight copy 0 */
    for (int s = 0; s < SIDES; s++)
        if (!(out[s] = malloc((size_t)count * sizeof **out)))
            goto failed;
    {
        int rotate = cl->rotate;
        float *c = cl->c;
        cl->rotate = 0;
        for (int s = 0; s < SIDE_PEER; s++) {
            cl->c = out[s];
            if (call_run(cl, s))
                goto failed;
        }
        cl->c = c;
        if (call_run(cl, SIDE_PEER))
            goto failed;
        b->api.threadpool_pause(pool);
        b->api.tensor_get(cl->pp->out[0], out[SIDE_PEER], 0, (size_t)count * sizeof(float));
        cl->rotate = rotate;
    }
    for (int s = 0; s < SIDES; s++)
        err[s] = qkc_peers_max_rel_diff(out[s], ref, count);
    *int8_vs_peer = qkc_peers_max_rel_diff(out[SIDE_QKC_INT8], out[SIDE_PEER], count);
    ok = 1;
    goto done;
failed: /* a failing call has said why; an allocation has not */
    fprintf(stderr, "error: M=%d, %d threads: the case stopped\n", cl->m, cl->threads);
done:
    for (int s = 0; s < SIDES; s++)
        free(t[s]), free(out[s]);
    return ok;
}

int main(int argc, char **argv)
{
    options o;
    bench b;
    char cpu[256];
    format_run fr;
    float *w = NULL, *a = NULL, *c = NULL;
    FILE *json = NULL;
    int max_m = 1, any_cold = 0, rc = 1, maxth = 1;
    peer_reg *reg;
    time_t now = time(NULL);
    char date[32];

    if (!parse_options(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    memset(&b, 0, sizeof b);
    memset(&fr, 0, sizeof fr);
    b.n = o.n, b.k = o.k, b.seconds = o.seconds;
    for (int i = 0; i < o.ncases; i++)
        max_m = o.ms[i] > max_m ? o.ms[i] : max_m, any_cold |= o.cold[i];
    for (int i = 0; i < o.nthreads; i++)
        maxth = o.threads[i] > maxth ? o.threads[i] : maxth;
    if (!peer_load(&b.api, o.lib, o.variant))
        return 1;
    /* static: the peer may still log while the process exits */
    {
        static peer_log log;
        b.log = &log;
        b.api.log_set(peer_log_message, b.log);
    }
    {
        qkc_context_options co = {.struct_size = sizeof co, .threads = maxth, .disk_cache = QKC_DISK_CACHE_OFF};
        if (qkc_context_create(&co, &b.ctx) != QKC_OK) {
            fprintf(stderr, "error: qkc: cannot create a context\n");
            return 1;
        }
    }
    /* the peer's CPU device, a backend on it, and its buffer types */
    if (!(reg = b.api.backend_init()) || !(b.dev = b.api.reg_dev_get(reg, 0)) ||
        !(b.backend = b.api.dev_init(b.dev, NULL)) || !(b.cpu_buft = b.api.dev_buffer_type(b.dev))) {
        fprintf(stderr, "error: the peer's CPU backend did not start\n");
        goto out;
    }
    {
        void *p = b.api.reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
        peer_get_extra_bufts extra = NULL;
        if (p)
            memcpy(&extra, &p, sizeof extra);
        for (peer_buft **e = extra ? extra(b.dev) : NULL; e && *e; e++)
            if (!strcmp(b.api.buft_name(*e), "CPU_REPACK"))
                b.repack_buft = *e;
    }

    /* the weights (N(0, 0.02²)) and activations (N(0, 1)), shared by all */
    w = malloc((size_t)(b.n * b.k) * sizeof *w);
    a = malloc((size_t)(max_m * b.k) * sizeof *a);
    c = malloc((size_t)(max_m * b.n) * sizeof *c);
    if (!w || !a || !c) {
        fprintf(stderr, "error: out of memory for a %lld x %lld matrix\n", (long long)b.n, (long long)b.k);
        goto out;
    }
    for (int64_t i = 0; i < b.n * b.k; i++)
        w[i] = qkc_bench_normal(&rng) * 0.02f;
    for (int64_t i = 0; i < max_m * b.k; i++)
        a[i] = qkc_bench_normal(&rng);
    if (o.json && !(json = fopen(o.json, "w"))) {
        fprintf(stderr, "error: cannot write %s\n", o.json);
        goto out;
    }

    qkc_peers_cpu_model(cpu, sizeof cpu);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("qkc %s against llama.cpp's CPU backend (ggml %s, commit %s), n=%lld k=%lld, %s\n", qkc_version_string(),
           b.api.version(), b.api.commit(), (long long)b.n, (long long)b.k, date);
    printf("cpu: %s, %ld online CPUs\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("peer: libggml-cpu-%s.so (score %d; %s of %d variants): %s; built with avx2 %d avx512 %d "
           "avx512_vnni %d avx512_vbmi %d avx_vnni %d llamafile %d\n",
           b.api.variant, b.api.score, o.variant ? "chosen by --variant" : "the best scoring", b.api.variants,
           b.api.dev_description(b.dev), b.api.has_avx2(), b.api.has_avx512(), b.api.has_avx512_vnni(),
           b.api.has_avx512_vbmi(), b.api.has_avx_vnni(), b.api.has_llamafile());

    for (int fi = 0; fi < o.nformats; fi++) {
        const char *name = o.formats[fi];
        peer_product pp[8];
        size_t wbytes;
        memset(pp, 0, sizeof pp);
        /* cold cases rotate over >= 1 GiB of weights per side */
        {
            const struct peer_format *pf = peer_format_get(name, strlen(name));
            wbytes = (size_t)(b.n * b.k / pf->block) * (size_t)pf->bytes;
        }
        b.ncopies = any_cold ? (int)((((size_t)1 << 30) + wbytes - 1) / wbytes) + 1 : 1;
        if (!format_make(&b, &o, name, w, a, max_m, &fr))
            goto out;
        printf("\n%s: %d weight cop%s of %zu bytes per side; the two quantizers' bytes %s\n", name, b.ncopies,
               b.ncopies == 1 ? "y" : "ies", wbytes,
               fr.bytes_identical ? "are identical" : "DIFFER (both run qkc's blocks)");
        printf("  qkc: target %s (%s)\n       f32 kernel: schedule %s (M >= 32: %s), layout %s\n       int8 kernel: "
               "schedule %s (M >= 32: %s), layout %s\n",
               fr.q[0].info.target, fr.q[0].info.features, fr.q[0].info.schedule, fr.q[0].prefill.schedule,
               fr.q[0].info.layout, fr.q[1].info.schedule, fr.q[1].prefill.schedule, fr.q[1].info.layout);
        if (fr.pw.layout[0])
            printf("  peer: weights in the %s buffer, repacked to %s (as llama.cpp loads them)\n", fr.pw.buft,
                   fr.pw.layout);
        else
            printf("  peer: weights in the %s buffer, plain %s blocks (%s)\n", fr.pw.buft, name,
                   fr.pw.buft != b.api.buft_name(b.cpu_buft) ? "not repacked"
                   : b.repack_buft ? "its repacking buffer does not take this product on this CPU"
                                   : "it offers no repacking buffer");
        for (int i = 0; i < o.ncases; i++) {
            int j = 0;
            while (j < i && o.ms[j] != o.ms[i])
                j++;
            if (j == i && !peer_product_make(&b, &fr.pw, a, o.ms[i], &pp[i])) {
                fprintf(stderr, "error: the peer's mul_mat graphs for M=%d\n", o.ms[i]);
                goto out_format;
            }
        }
        printf("\n%-6s %4s %-7s %7s %11s %11s %11s %9s %9s %9s %9s %9s %9s\n", "format", "M", "weights", "threads",
               "qkc f32 us", "qkc int8 us", "peer us", "peer/f32", "peer/int8", "err f32", "err int8", "err peer",
               "int8~peer");
        for (int ti = 0; ti < o.nthreads; ti++) {
            peer_pool_params pp_params;
            peer_pool *pool;
            memset(&pp_params, 0, sizeof pp_params);
            b.api.threadpool_params_init(&pp_params, o.threads[ti]);
            if (!(pool = b.api.threadpool_new(&pp_params))) {
                fprintf(stderr, "error: the peer's thread pool of %d threads\n", o.threads[ti]);
                goto out_format;
            }
            b.api.set_threadpool(b.backend, pool);
            b.api.set_n_threads(b.backend, o.threads[ti]);
            for (int i = 0; i < o.ncases; i++) {
                int j = 0;
                double us[SIDES], err[SIDES], cross;
                call cl;
                while (o.ms[j] != o.ms[i])
                    j++;
                memset(&cl, 0, sizeof cl);
                cl.b = &b, cl.q = fr.q, cl.pp = &pp[j], cl.a = a, cl.c = c;
                cl.m = o.ms[i], cl.threads = o.threads[ti], cl.rotate = o.cold[i];
                if (!time_case(&cl, pool, fr.ref, us, err, &cross)) {
                    b.api.set_threadpool(b.backend, NULL);
                    b.api.threadpool_free(pool);
                    goto out_format;
                }
                printf("%-6s %4d %-7s %7d %11.1f %11.1f %11.1f %9.2f %9.2f %9.1e %9.1e %9.1e %9.1e\n", name, cl.m,
                       o.cold[i] ? "dram" : "hot", cl.threads, us[0], us[1], us[2], us[2] / us[0], us[2] / us[1],
                       err[0], err[1], err[2], cross);
                fflush(stdout);
                if (json)
                    fprintf(json,
                            "{\"format\": \"%s\", \"n\": %lld, \"k\": %lld, \"m\": %d, \"cold\": %s, \"threads\": %d, "
                            "\"qkc_f32_us\": %.3f, \"qkc_int8_us\": %.3f, \"peer_us\": %.3f, "
                            "\"ratio_peer_over_qkc_f32\": %.4f, \"ratio_peer_over_qkc_int8\": %.4f, "
                            "\"err_qkc_f32\": %.3e, \"err_qkc_int8\": %.3e, \"err_peer\": %.3e, "
                            "\"diff_qkc_int8_peer\": %.3e, \"qkc_target\": \"%s\", \"qkc_features\": \"%s\", "
                            "\"peer\": \"ggml %s %s\", \"peer_variant\": \"%s\", \"peer_buffer\": \"%s\", \"peer_layout\": \"%s\", "
                            "\"cpu\": \"%s\", \"date\": \"%s\"}\n",
                            name, (long long)b.n, (long long)b.k, cl.m, o.cold[i] ? "true" : "false", cl.threads,
                            us[0], us[1], us[2], us[2] / us[0], us[2] / us[1], err[0], err[1], err[2], cross,
                            fr.q[0].info.target, fr.q[0].info.features, b.api.version(), b.api.commit(),
                            b.api.variant, fr.pw.buft, fr.pw.layout[0] ? fr.pw.layout : name, cpu, date);
                for (int s = 0; s < SIDES; s++)
                    if (!(err[s] <= 0.05)) {
                        fprintf(stderr, "error: %s M=%d: the %s output is %.3g (relative) from the reference: the "
                                        "setup is broken\n",
                                name, cl.m, side_names[s], err[s]);
                        b.api.set_threadpool(b.backend, NULL);
                        b.api.threadpool_free(pool);
                        goto out_format;
                    }
            }
            b.api.set_threadpool(b.backend, NULL);
            b.api.threadpool_free(pool);
        }
        for (int i = 0; i < 8; i++)
            peer_product_free(&b, &pp[i]);
        format_free(&b, &fr);
        continue;
    out_format:
        for (int i = 0; i < 8; i++)
            peer_product_free(&b, &pp[i]);
        goto out;
    }
    rc = 0;
out:
    format_free(&b, &fr);
    if (json)
        fclose(json);
    free(w), free(a), free(c);
    if (b.backend)
        b.api.backend_free(b.backend);
    qkc_context_destroy(b.ctx);
    return rc;
}
