/*
 * The JIT: compile a spec to a kernel with ORC LLJIT, and keep compiled
 * kernels in an in-memory cache so a second compile is a lookup.
 *
 * Each context owns one LLJIT (created on first compile through the
 * context's extension slot, destroyed with the context) and one cache.
 * The cache key is binary: the verified qkc_matmul (built zero-initialised,
 * so padding bytes are zero), the completed schedule, the target's name
 * and feature bits and qkc's version. Compiles run outside the cache lock,
 * so several threads compile different kernels in parallel; two threads
 * compiling the same kernel both compile and the first to insert wins.
 * Compiled code and its qkc_compiled record live until the context dies.
 *
 * This file links LLVM and is part of libqkc, not libqkc_rt.
 */
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Object.h>
#include <llvm-c/Orc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/isa.h"
#include "codegen/llvm_compat.h"
#include "codegen/lower.h"
#include "codegen/lower_ptx.h"
#include "runtime/cuda.h"
#include "codegen/schedule.h"
#include "core/config.h"
#include "core/context.h"
#include "core/io.h"
#include "cache/diskcache.h"
#include "compiler/jit.h"
#include "qkc_codegen_id.h"
#include "runtime/kernel.h"
#include "cache/sha256.h"
#include "cache/tune_db.h"
#include "core/spec_object.h"

typedef struct cache_key {
    qkc_matmul mm;
    qkc_schedule schedule;
    char target[32];
    uint32_t features;
    int version;
} cache_key;

/* What a caller asked for, before the target and schedule are resolved: a
 * hit on this key costs a hash and a compare, nothing else. The requested
 * target name is the option's, else QKC_TARGET's, else "host". */
typedef struct request_key {
    qkc_matmul mm;
    qkc_schedule schedule;
    char target[64];
    int version;
    int m_bucket; /* the tuning database's M bucket, when it may decide the schedule */
} request_key;

typedef struct cache_entry {
    cache_key key;
    request_key request;
    uint64_t hash, request_hash;
    qkc_compiled *code;
    struct cache_entry *next, *next_request;
} cache_entry;

#define CACHE_BUCKETS 256

typedef struct jit_state {
    qkc_context *ctx;
    LLVMOrcLLJITRef lljit;
    pthread_mutex_t lock; /* guards buckets, requests, write_warned and dir_warned */
    /* Serialises linking: a kernel's symbol is a function of its key, so
     * the check "not linked yet" and the link must be one step. */
    pthread_mutex_t link_lock;
    cache_entry *buckets[CACHE_BUCKETS];
    cache_entry *requests[CACHE_BUCKETS]; /* the same entries, by request */
    int write_warned;                     /* the disk cache could not be written */
    int dir_warned;                       /* the disk cache directory is not trusted */
    qkc_background *background;          /* tiered kernels' tuning threads */
} jit_state;

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void jit_destroy(void *p)
{
    jit_state *js = p;
    if (!js)
        return;
    /* Background tuning compiles into this JIT: stop it first. */
    for (;;) {
        qkc_background *bg;
        pthread_mutex_lock(&js->lock);
        bg = js->background;
        if (bg)
            js->background = bg->next;
        pthread_mutex_unlock(&js->lock);
        if (!bg)
            break;
        bg->stop(bg);
    }
    for (int b = 0; b < CACHE_BUCKETS; b++) {
        cache_entry *e = js->buckets[b];
        while (e) {
            cache_entry *next = e->next;
            qkc_free(js->ctx, e->code);
            qkc_free(js->ctx, e);
            e = next;
        }
    }
    if (js->lljit)
        LLVMOrcDisposeLLJIT(js->lljit);
    pthread_mutex_destroy(&js->lock);
    pthread_mutex_destroy(&js->link_lock);
    qkc_free(js->ctx, js);
}

static void *jit_create(qkc_context *ctx, qkc_status *st)
{
    jit_state *js = qkc_calloc(ctx, 1, sizeof *js);
    LLVMOrcLLJITBuilderRef builder;
    LLVMErrorRef err;
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    qkc_diag diag;
    if (!js) {
        *st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "JIT: out of memory");
        return NULL;
    }
    js->ctx = ctx;
    pthread_mutex_init(&js->lock, NULL);
    pthread_mutex_init(&js->link_lock, NULL);
    qkc_llvm_init();
    builder = LLVMOrcCreateLLJITBuilder();
    if ((err = LLVMOrcCreateLLJIT(&js->lljit, builder))) {
        qkc_llvm_error(err, QKC_ERR_COMPILE, "could not create the LLVM JIT", &diag);
        *st = qkc_fail_diag(ctx, &diag);
        js->lljit = NULL;
        jit_destroy(js);
        return NULL;
    }
    /* Kernels call libm (erf, exp) in their epilogues: resolve symbols
     * from the process. */
    if ((err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(js->lljit),
                                                                    NULL, NULL))) {
        qkc_llvm_error(err, QKC_ERR_COMPILE, "JIT: no process symbol generator", &diag);
        *st = qkc_fail_diag(ctx, &diag);
        jit_destroy(js);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(js->lljit), gen);
    return js;
}

/* Everything a compile decides before generating code. */
typedef struct plan {
    qkc_target target;
    qkc_klayout layout;
    qkc_schedule schedule;
    cache_key key;
    char spec_text[2048]; /* the canonical spec, printed once */
} plan;

/* The fields of compile options a caller's struct_size covers. */
static const char *opt_target(const qkc_compile_options *o)
{
    return o && o->struct_size >= offsetof(qkc_compile_options, target) + sizeof o->target ? o->target : NULL;
}

static const qkc_schedule *opt_schedule(const qkc_compile_options *o)
{
    return o && o->struct_size >= offsetof(qkc_compile_options, schedule) + sizeof o->schedule ? o->schedule : NULL;
}

/* The M whose bucket picks a tuning database entry: the spec's fixed M,
 * else the m_hint option, else 1. */
static int64_t plan_m(const qkc_spec *spec, const qkc_compile_options *o)
{
    if (spec->mm.m)
        return spec->mm.m;
    if (o && o->struct_size >= offsetof(qkc_compile_options, m_hint) + sizeof o->m_hint && o->m_hint > 0)
        return o->m_hint;
    return 1;
}

static qkc_status make_plan(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, int for_run,
                            plan *p)
{
    qkc_diag diag;
    const char *target = qkc_config_target(ctx, opt_target(options));
    memset(p, 0, sizeof *p);
    qkc_matmul_print(&spec->mm, p->spec_text, sizeof p->spec_text);
    if (opt_schedule(options))
        p->schedule = *opt_schedule(options);
    if (qkc_target_resolve(target, for_run, &p->target, &diag))
        return qkc_fail_diag(ctx, &diag);
    if (qkc_lower_layout(&spec->mm, &p->target, &p->layout, &diag))
        return qkc_fail_diag(ctx, &diag);
    if (!opt_schedule(options)) {
        qkc_tune_db *db = qkc_context_tune_db(ctx);
        if (db) {
            char feats[256];
            int found = 0;
            qkc_target_features_string(p->target.arch, p->target.features, feats, sizeof feats);
            qkc_tune_db_lookup_features(db, p->spec_text, plan_m(spec, options), feats, &p->schedule, &found);
            /* An entry that does not fit this target (edited by hand):
             * the heuristic, with a note. */
            if (found) {
                qkc_schedule s = p->schedule;
                if (qkc_schedule_complete(&s, &spec->mm, &p->layout, &p->target, &diag)) {
                    qkc_warn(ctx, "tuning database entry for '%s' ignored: %s", p->spec_text, diag.message);
                    memset(&p->schedule, 0, sizeof p->schedule);
                }
            }
        }
    }
    {
        /* the heuristic reads the spec's M; an m_hint of 32 or more stands
         * for one (prefill tiles), the kernel still runs for any M */
        qkc_matmul hm = spec->mm;
        if (!hm.m && plan_m(spec, options) >= 32)
            hm.m = plan_m(spec, options);
        if (qkc_schedule_complete(&p->schedule, &hm, &p->layout, &p->target, &diag))
            return qkc_fail_diag(ctx, &diag);
    }
    p->key.mm = spec->mm;
    p->key.schedule = p->schedule;
    memcpy(p->key.target, p->target.name, sizeof p->key.target);
    p->key.features = p->target.features;
    p->key.version = QKC_VERSION;
    return QKC_OK;
}

/* Whether the kernel takes A as int8 codes and block scales (the ISA's
 * rule: VNNI/dotprod paths, GPU dp4a and s8 tensor cores), or the float
 * path fed int8-quantized-then-dequantized activations for compute=int8. */
static int uses_int8_dot(const qkc_matmul *mm, const qkc_klayout *L, const qkc_target *t)
{
    return qkc_isa_for(t)->takes_int8(mm, L, t);
}

static void make_request(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, request_key *rk)
{
    const char *t = qkc_config_target(ctx, opt_target(options));
    memset(rk, 0, sizeof *rk);
    rk->mm = spec->mm;
    if (opt_schedule(options))
        rk->schedule = *opt_schedule(options);
    else
        rk->m_bucket = 1 + (plan_m(spec, options) > 1) + (plan_m(spec, options) > 8) + (plan_m(spec, options) > 64);
    snprintf(rk->target, sizeof rk->target, "%s", t ? t : "host");
    rk->version = QKC_VERSION;
}

/* The disk cache's key (cache/diskcache.h): everything that decides the
 * object's bytes, as text a person can read in `qkc cache list` — including
 * QKC_CODEGEN_ID, the hash of the code generator's sources, so a build that
 * generates different code never links another build's entries. */
static void disk_key(qkc_context *ctx, const plan *p, char *key, size_t size)
{
    char sched[128], feats[256];
    const char *passes = qkc_context_config(ctx)->llvm_passes;
    unsigned major = 0, minor = 0, patch = 0;
    LLVMGetVersion(&major, &minor, &patch);
    qkc_schedule_print(&p->schedule, sched, sizeof sched);
    qkc_target_features_string(p->target.arch, p->target.features, feats, sizeof feats);
    snprintf(key, size, "qkc %s codegen %s llvm %u.%u.%u\nspec %s\nschedule %s\ntarget %s %s %s %s\nfeatures %s\n%s%s%s",
             qkc_version_string(), QKC_CODEGEN_ID, major, minor, patch, p->spec_text, sched, p->target.name,
             p->target.triple, p->target.cpu, p->target.llvm_features, feats, passes ? "passes " : "",
             passes ? passes : "", passes ? "\n" : "");
}

/* ------------------------------------------------- profiling and dumps */

/* QKC_DUMP=ir,llvm,asm (any subset) writes each compiled kernel's stages
 * to $QKC_DUMP_DIR (default: the current directory) as <symbol>.spec (the
 * canonical spec, schedule and layout), .ll (optimised LLVM IR) and .s. */
static int dump_wants(const qkc_config *cfg, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = cfg->dump; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !memcmp(p, what, n))
            return 1;
        p = e ? e + 1 : p + len;
    }
    return 0;
}

static void dump_file(qkc_context *ctx, const char *symbol, const char *ext, const char *data, size_t len)
{
    const char *dir = qkc_context_config(ctx)->dump_dir;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s", dir ? dir : ".", symbol, ext);
    /* a diagnostic aid: a failed write never fails a compile */
    qkc_io_write_atomic(ctx, path, data, len, 0644);
}

static void dump_stages(qkc_context *ctx, const plan *p, const char *symbol, LLVMModuleRef mod,
                        LLVMTargetMachineRef tm)
{
    const qkc_config *cfg = qkc_context_config(ctx);
    char saved[1024];
    if (!cfg->dump)
        return;
    /* a failed dump leaves no message behind */
    qkc_context_copy_error(ctx, saved, sizeof saved);
    if (dump_wants(cfg, "ir")) {
        char text[2048 + 512], sched[128];
        int n;
        qkc_schedule_print(&p->schedule, sched, sizeof sched);
        n = snprintf(text, sizeof text, "%s\n# target %s\n# schedule %s\n# layout %s\n", p->spec_text, p->target.name,
                     sched, p->layout.description);
        if (n > 0)
            dump_file(ctx, symbol, "spec", text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    }
    if (dump_wants(cfg, "llvm")) {
        char *ir = LLVMPrintModuleToString(mod);
        dump_file(ctx, symbol, "ll", ir, strlen(ir));
        LLVMDisposeMessage(ir);
    }
    if (dump_wants(cfg, "asm")) {
        LLVMMemoryBufferRef buf = NULL;
        qkc_diag d;
        if (qkc_llvm_emit(mod, tm, 1, &buf, &d) == QKC_OK) {
            dump_file(ctx, symbol, "s", LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
            LLVMDisposeMemoryBuffer(buf);
        }
    }
    qkc_fail(ctx, QKC_OK, "%s", saved);
}

/* QKC_PERF_MAP=1: append "<address> <size> <symbol>" to /tmp/perf-<pid>.map
 * (perf's convention for JIT code), so `perf report` names kernels. The
 * size comes from the object's symbol table. */
static void perf_map_add(qkc_context *ctx, const char *obj, size_t len, const char *symbol, uint64_t addr)
{
    const char *v = qkc_context_config(ctx)->perf_map;
    uint64_t size = 0;
    char path[64];
    FILE *f;
    if (!v || !strcmp(v, "0"))
        return;
    {
        LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange(obj, len, "perf", 0);
        char *err = NULL;
        LLVMBinaryRef bin = LLVMCreateBinary(buf, NULL, &err);
        if (bin) {
            LLVMSymbolIteratorRef it = LLVMObjectFileCopySymbolIterator(bin);
            for (; !LLVMObjectFileIsSymbolIteratorAtEnd(bin, it); LLVMMoveToNextSymbol(it))
                if (!strcmp(LLVMGetSymbolName(it), symbol))
                    size = LLVMGetSymbolSize(it);
            LLVMDisposeSymbolIterator(it);
            LLVMDisposeBinary(bin);
        }
        LLVMDisposeMessage(err);
        LLVMDisposeMemoryBuffer(buf);
    }
    /* appended to, as perf expects, by every JIT of the process */
    snprintf(path, sizeof path, "/tmp/perf-%ld.map", (long)getpid());
    f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "%llx %llx %s\n", (unsigned long long)addr, (unsigned long long)(size ? size : 1), symbol);
    fclose(f);
}

/* ------------------------------------------------------ the one pipeline */

/* What emit_module produces. */
typedef enum emit_kind { EMIT_OBJ, EMIT_ASM, EMIT_LLVM, EMIT_BC } emit_kind;

/* Lower a plan to a module (the CPU or the GPU lowering, by the target's
 * architecture), optimise it with a target machine of this compile's own
 * (so compiles on several threads run in parallel: ORC's default IR
 * compiler shares one between threads), and emit it as `kind` into *out
 * (the caller disposes it). `dump`: write QKC_DUMP's stages. Every compile
 * path goes through here: JIT (CPU objects, GPU PTX), qkc_kernel_emit and
 * AOT libraries. */
static qkc_status emit_module(qkc_context *ctx, const qkc_spec *spec, const plan *p, const char *symbol,
                              emit_kind kind, int dump, LLVMMemoryBufferRef *out)
{
    LLVMContextRef llctx = LLVMContextCreate();
    LLVMModuleRef mod = NULL;
    LLVMTargetMachineRef tm = NULL;
    qkc_diag diag;
    qkc_status st = QKC_OK;
    *out = NULL;
    /* named in the message of an LLVM fatal error on this thread */
    qkc_llvm_set_activity(p->spec_text);
    if (qkc_isa_for(&p->target)->lower(llctx, &spec->mm, &p->layout, &p->target, &p->schedule, symbol, &mod,
                                       &diag)) {
        mod = NULL;
        st = qkc_fail_diag(ctx, &diag);
    } else if (qkc_llvm_target_machine(&p->target, LLVMCodeGenLevelAggressive, &tm, &diag)) {
        tm = NULL;
        st = qkc_fail_diag(ctx, &diag);
    } else {
        LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
        char *dl = LLVMCopyStringRepOfTargetData(td);
        LLVMSetDataLayout(mod, dl);
        LLVMDisposeMessage(dl);
        LLVMDisposeTargetData(td);
        if (qkc_llvm_optimize(mod, tm, qkc_context_config(ctx)->llvm_passes, &diag))
            st = qkc_fail_diag(ctx, &diag);
    }
    if (!st && dump)
        dump_stages(ctx, p, symbol, mod, tm);
    if (!st) {
        if (kind == EMIT_OBJ || kind == EMIT_ASM) {
            if (qkc_llvm_emit(mod, tm, kind == EMIT_ASM, out, &diag))
                st = qkc_fail_diag(ctx, &diag);
        } else if (kind == EMIT_BC) {
            if (!(*out = LLVMWriteBitcodeToMemoryBuffer(mod)))
                st = qkc_fail(ctx, QKC_ERR_COMPILE, "qkc_kernel_emit: LLVM could not write bitcode");
        } else {
            char *ir = LLVMPrintModuleToString(mod);
            *out = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, strlen(ir), symbol);
            LLVMDisposeMessage(ir);
        }
    }
    if (mod)
        LLVMDisposeModule(mod);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    LLVMContextDispose(llctx);
    qkc_llvm_set_activity(NULL);
    return st;
}

/* Link an object into the context's JIT and look the kernel up. */
static qkc_status link_object(qkc_context *ctx, jit_state *js, const void *obj, size_t objlen, const char *symbol,
                              qkc_kernel_fn *fn)
{
    LLVMErrorRef err;
    LLVMOrcExecutorAddress addr = 0;
    qkc_diag diag;
    /* ORC takes the buffer, whether or not adding succeeds. */
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, objlen, symbol);
    if ((err = LLVMOrcLLJITAddObjectFile(js->lljit, LLVMOrcLLJITGetMainJITDylib(js->lljit), buf))) {
        qkc_llvm_error(err, QKC_ERR_COMPILE, "JIT: adding the object failed", &diag);
        return qkc_fail_diag(ctx, &diag);
    }
    if ((err = LLVMOrcLLJITLookup(js->lljit, &addr, symbol))) {
        qkc_llvm_error(err, QKC_ERR_COMPILE, "JIT: linking the kernel failed", &diag);
        return qkc_fail_diag(ctx, &diag);
    }
    perf_map_add(ctx, obj, objlen, symbol, addr);
    *fn = (qkc_kernel_fn)(uintptr_t)addr;
    return QKC_OK;
}

static cache_entry *find_entry(jit_state *js, const cache_key *key, uint64_t h)
{
    cache_entry *e;
    pthread_mutex_lock(&js->lock);
    for (e = js->buckets[h % CACHE_BUCKETS]; e; e = e->next)
        if (e->hash == h && !memcmp(&e->key, key, sizeof *key))
            break;
    pthread_mutex_unlock(&js->lock);
    return e;
}

/* A GPU kernel's code: PTX generated here, loaded by the CUDA driver
 * (runtime/cuda.c). No disk cache: the driver keeps its own cache of the
 * cubins it builds from PTX. */
static qkc_status gpu_code(qkc_context *ctx, const qkc_spec *spec, const plan *p, qkc_compiled *code)
{
    LLVMMemoryBufferRef ptx;
    char *text;
    size_t len;
    qkc_status st = emit_module(ctx, spec, p, code->symbol, EMIT_ASM, 1, &ptx);
    if (st)
        return st;
    /* the driver takes NUL-terminated text */
    len = LLVMGetBufferSize(ptx);
    if (!(text = qkc_alloc(ctx, len + 1))) {
        LLVMDisposeMemoryBuffer(ptx);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_compile: out of memory");
    }
    memcpy(text, LLVMGetBufferStart(ptx), len);
    text[len] = '\0';
    LLVMDisposeMemoryBuffer(ptx);
    st = qkc_cuda_load_kernel(ctx, text, (p->target.features & QKC_FEAT_SM_90) ? 90 : 80, code->symbol,
                              &code->gpu_function);
    qkc_free(ctx, text);
    if (!st) {
        code->gpu = 1;
        code->gpu_mma = qkc_lower_ptx_mma(&spec->mm, &p->layout);
    }
    return st;
}

qkc_status qkc_kernel_compile(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                              qkc_kernel **out)
{
    return qkc_jit_compile(ctx, spec, options, 0, out);
}

qkc_status qkc_jit_track(qkc_context *ctx, qkc_background *bg)
{
    qkc_status st = QKC_OK;
    jit_state *js = qkc_context_slot(ctx, QKC_SLOT_COMPILER, jit_create, jit_destroy, &st);
    if (!js)
        return st;
    pthread_mutex_lock(&js->lock);
    bg->next = js->background;
    js->background = bg;
    pthread_mutex_unlock(&js->lock);
    return QKC_OK;
}

int qkc_jit_untrack(qkc_context *ctx, qkc_background *bg)
{
    qkc_status st;
    jit_state *js = qkc_context_slot(ctx, QKC_SLOT_COMPILER, jit_create, jit_destroy, &st);
    int found = 0;
    if (!js)
        return 0;
    pthread_mutex_lock(&js->lock);
    for (qkc_background **pp = &js->background; *pp; pp = &(*pp)->next)
        if (*pp == bg) {
            *pp = bg->next;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&js->lock);
    return found;
}

/* The CPU kernel's object: from the disk cache when it holds a trusted
 * entry, else generated (and written there). *buf holds generated bytes
 * (the caller disposes it), disk the cache's. */
static qkc_status cpu_object(qkc_context *ctx, jit_state *js, const qkc_spec *spec, const plan *p, int flags,
                             const char *key, const char *digest, qkc_compiled *code, qkc_dcache_entry *disk,
                             LLVMMemoryBufferRef *buf, const void **obj, size_t *objlen)
{
    const char *dir = (flags & QKC_JIT_NO_DISK_CACHE) ? NULL : qkc_cache_dir(ctx);
    qkc_status st;
    if (dir) {
        char why[QKC_DCACHE_WHY];
        qkc_dcache_verdict v = qkc_dcache_read(ctx, dir, key, disk, why);
        if (v == QKC_DCACHE_HIT && strcmp(disk->symbol, code->symbol)) {
            snprintf(why, sizeof why, "its symbol is not the kernel's");
            qkc_dcache_entry_free(ctx, disk);
            v = QKC_DCACHE_REFUSED;
        }
        if (v == QKC_DCACHE_HIT) {
            *obj = disk->obj;
            *objlen = disk->obj_len;
            code->from_disk = 1;
            return QKC_OK;
        }
        if (v == QKC_DCACHE_REFUSED) {
            qkc_warn(ctx, "kernel cache entry %s/%.64s%s is unusable: %s; rebuilding it", dir, digest, QKC_DCACHE_EXT,
                     why);
        } else if (v == QKC_DCACHE_BAD_DIR) {
            /* Neither read nor written: its entries could be anyone's. */
            int first;
            pthread_mutex_lock(&js->lock);
            first = !js->dir_warned;
            js->dir_warned = 1;
            pthread_mutex_unlock(&js->lock);
            if (first)
                qkc_warn(ctx,
                         "kernel cache directory %s is %s: its entries are not used and none are written; kernels "
                         "are compiled without it (it must be this user's and not writable by group or others; "
                         "not reported again for this context)",
                         dir, why);
            dir = NULL;
        }
    }
    if ((st = emit_module(ctx, spec, p, code->symbol, EMIT_OBJ, 1, buf)))
        return st;
    *obj = LLVMGetBufferStart(*buf);
    *objlen = LLVMGetBufferSize(*buf);
    if (dir && qkc_dcache_write(ctx, dir, key, code->symbol, *obj, *objlen) != QKC_OK) {
        char msg[1024];
        int first;
        qkc_context_copy_error(ctx, msg, sizeof msg);
        pthread_mutex_lock(&js->lock);
        first = !js->write_warned;
        js->write_warned = 1;
        pthread_mutex_unlock(&js->lock);
        if (first)
            qkc_warn(ctx, "%s (kernels are still compiled; not reported again for this context)", msg);
    }
    return QKC_OK;
}

static qkc_status jit_compile_one(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                                 int flags, qkc_kernel **out)
{
    request_key rk;
    uint64_t rh, h;
    plan p;
    jit_state *js;
    cache_entry *e, *other;
    qkc_compiled *code;
    qkc_status st;
    char key[4096], digest[65];
    qkc_dcache_entry disk;
    LLVMMemoryBufferRef buf = NULL;
    const void *obj = NULL;
    size_t objlen = 0;
    int gpu;
    double t0 = now_ms();

    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_compile: NULL argument");
    *out = NULL;
    js = qkc_context_slot(ctx, QKC_SLOT_COMPILER, jit_create, jit_destroy, &st);
    if (!js)
        return st;
    /* 1. the request as asked: a hit costs a hash and a compare */
    make_request(ctx, spec, options, &rk);
    rh = hash_bytes(&rk, sizeof rk);
    pthread_mutex_lock(&js->lock);
    for (e = js->requests[rh % CACHE_BUCKETS]; e; e = e->next_request)
        if (e->request_hash == rh && !memcmp(&e->request, &rk, sizeof rk))
            break;
    pthread_mutex_unlock(&js->lock);
    if (e)
        return qkc_kernel_wrap(ctx, e->code, 1, out);

    /* 2. the plan: target, kernel layout, schedule; a hit on its key */
    if ((st = make_plan(ctx, spec, options, 1, &p)))
        return st;
    gpu = qkc_isa_for(&p.target)->gpu;
    h = hash_bytes(&p.key, sizeof p.key);
    if ((e = find_entry(js, &p.key, h)) != NULL)
        return qkc_kernel_wrap(ctx, e->code, 1, out);
    /* No driver, no device: say so before generating any code. */
    if (gpu && (st = qkc_cuda_require(ctx)))
        return st;

    /* 3. the code: the symbol is a function of the key, so the same
     * kernel has the same name in memory, on disk and on the device */
    code = qkc_calloc(ctx, 1, sizeof *code);
    e = qkc_calloc(ctx, 1, sizeof *e);
    if (!code || !e) {
        qkc_free(ctx, code);
        qkc_free(ctx, e);
        return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_compile: out of memory");
    }
    disk_key(ctx, &p, key, sizeof key);
    qkc_sha256_hex(key, strlen(key), digest);
    snprintf(code->symbol, sizeof code->symbol, "qkc_kernel_%.24s", digest);
    memset(&disk, 0, sizeof disk);
    st = gpu ? gpu_code(ctx, spec, &p, code) : cpu_object(ctx, js, spec, &p, flags, key, digest, code, &disk, &buf,
                                                          &obj, &objlen);
    if (st)
        goto fail;
    code->mm = spec->mm;
    code->layout = p.layout;
    code->schedule = p.schedule;
    code->int8_dot = uses_int8_dot(&spec->mm, &p.layout, &p.target);
    snprintf(code->target, sizeof code->target, "%s", p.target.name);
    qkc_target_features_string(p.target.arch, p.target.features, code->features, sizeof code->features);
    qkc_schedule_print(&p.schedule, code->schedule_text, sizeof code->schedule_text);
    e->key = p.key;
    e->hash = h;
    e->request = rk;
    e->request_hash = rh;
    e->code = code;

    /* 4. link (CPU) and insert, unless another thread got there first */
    pthread_mutex_lock(&js->link_lock);
    if ((other = find_entry(js, &p.key, h)) != NULL) {
        pthread_mutex_unlock(&js->link_lock);
        qkc_free(ctx, e);
        qkc_free(ctx, code);
        qkc_dcache_entry_free(ctx, &disk);
        if (buf)
            LLVMDisposeMemoryBuffer(buf);
        return qkc_kernel_wrap(ctx, other->code, 1, out);
    }
    if (!gpu)
        st = link_object(ctx, js, obj, objlen, code->symbol, &code->fn);
    if (!st) {
        code->compile_ms = now_ms() - t0;
        pthread_mutex_lock(&js->lock);
        e->next = js->buckets[h % CACHE_BUCKETS];
        js->buckets[h % CACHE_BUCKETS] = e;
        e->next_request = js->requests[rh % CACHE_BUCKETS];
        js->requests[rh % CACHE_BUCKETS] = e;
        pthread_mutex_unlock(&js->lock);
    }
    pthread_mutex_unlock(&js->link_lock);
    if (st)
        goto fail;
    qkc_dcache_entry_free(ctx, &disk);
    if (buf)
        LLVMDisposeMemoryBuffer(buf);
    return qkc_kernel_wrap(ctx, code, 0, out);
fail:
    qkc_dcache_entry_free(ctx, &disk);
    if (buf)
        LLVMDisposeMemoryBuffer(buf);
    qkc_free(ctx, code);
    qkc_free(ctx, e);
    return st;
}

/* struct qkc_kernel's alt: the same spec and target, scheduled for the
 * other side of QKC_PREFILL_M (the heuristic's prefill tiles, or the
 * tuning database's entry for that M). */
static qkc_status compile_alt(qkc_kernel *k, const qkc_compiled **out)
{
    const qkc_compiled *code = qkc_kernel_code(k);
    qkc_compile_options o;
    qkc_spec *spec = NULL;
    qkc_kernel *alt = NULL;
    qkc_status st;
    if ((st = qkc_spec_from_matmul(k->ctx, &code->mm, &spec)))
        return st;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.target = code->target;
    o.m_hint = k->alt_prefill ? 512 : 1;
    st = jit_compile_one(k->ctx, spec, &o, k->alt_flags, &alt);
    qkc_spec_destroy(spec);
    if (st)
        return st;
    *out = qkc_kernel_code(alt);
    qkc_kernel_destroy(alt); /* the code lives with the context */
    if ((*out)->layout.total_bytes != code->layout.total_bytes ||
        strcmp((*out)->layout.description, code->layout.description) || (*out)->int8_dot != code->int8_dot)
        return qkc_fail(k->ctx, QKC_ERR_INTERNAL, "the %s kernel reads another layout", k->alt_prefill ? "prefill" : "decode");
    return QKC_OK;
}

qkc_status qkc_jit_compile(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, int flags,
                           qkc_kernel **out)
{
    qkc_status st = jit_compile_one(ctx, spec, options, flags, out);
    const qkc_compiled *code;
    if (st)
        return st;
    code = qkc_kernel_code(*out);
    /* a run-time M and the heuristic's (or database's) schedule: calls on
     * the other side of QKC_PREFILL_M get a kernel of their own */
    if (!spec->mm.m && !opt_schedule(options) && !code->gpu) {
        (*out)->alt_prefill = plan_m(spec, options) < QKC_PREFILL_M;
        (*out)->alt_flags = flags;
        (*out)->alt_compile = compile_alt;
    }
    return QKC_OK;
}

qkc_status qkc_emit_code(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options, const char *what,
                         const char *symbol, char **data, size_t *len, qkc_emit_info *info)
{
    plan p;
    qkc_status st;
    LLVMMemoryBufferRef buf;
    emit_kind kind = !strcmp(what, "obj") ? EMIT_OBJ : !strcmp(what, "asm") ? EMIT_ASM
                     : !strcmp(what, "bc") ? EMIT_BC : EMIT_LLVM;
    *data = NULL;
    *len = 0;
    if ((st = make_plan(ctx, spec, options, 0, &p)))
        return st;
    if (kind == EMIT_OBJ && qkc_isa_for(&p.target)->gpu)
        return qkc_fail(ctx, QKC_ERR_UNSUPPORTED, "target %s: GPU kernels are emitted as PTX text (asm or ptx), "
                        "not as objects", p.target.name);
    if ((st = emit_module(ctx, spec, &p, symbol, kind, 0, &buf)))
        return st;
    *len = LLVMGetBufferSize(buf);
    *data = qkc_alloc(ctx, *len + 1);
    if (*data) {
        memcpy(*data, LLVMGetBufferStart(buf), *len);
        (*data)[*len] = '\0';
    } else {
        *len = 0;
        st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "qkc_kernel_emit: out of memory");
    }
    LLVMDisposeMemoryBuffer(buf);
    if (!st && info) {
        memset(info, 0, sizeof *info);
        info->target = p.target;
        info->schedule = p.schedule;
        info->int8_dot = uses_int8_dot(&spec->mm, &p.layout, &p.target);
        info->panel = p.layout.panel;
        snprintf(info->layout, sizeof info->layout, "%s", p.layout.description);
    }
    return st;
}

qkc_status qkc_kernel_emit(qkc_context *ctx, const qkc_spec *spec, const qkc_compile_options *options,
                           const char *what, char *buf, size_t size, size_t *needed)
{
    qkc_status st;
    char *text = NULL;
    size_t len = 0;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!spec || !what || (!buf && size))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_emit: NULL argument");
    if (!strcmp(what, "ptx"))
        what = "asm"; /* the assembly of an NVPTX target is PTX */
    if (strcmp(what, "asm") && strcmp(what, "llvm") && strcmp(what, "obj") && strcmp(what, "bc"))
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_kernel_emit: '%s': expected asm, ptx, llvm, bc or obj",
                        what);
    if ((st = qkc_emit_code(ctx, spec, options, what, "qkc_kernel", &text, &len, NULL)))
        return st;
    if (needed)
        *needed = len;
    if (len >= size) {
        qkc_free(ctx, text);
        return QKC_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(buf, text, len + 1);
    qkc_free(ctx, text);
    return QKC_OK;
}
