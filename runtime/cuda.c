/*
 * The CUDA driver layer (see cuda.h) and the public qkc_device_* calls.
 *
 * The driver API is declared here, the few types and entry points qkc
 * uses, with the ABI of cuda.h (CUdeviceptr is 64-bit; the _v2 entry
 * points are the ones the 64-bit API resolves to). Every driver call is
 * made with the context's primary CUDA context current on the calling
 * thread (cuCtxSetCurrent first), so any thread may use a qkc context.
 */
#include "runtime/cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/context.h"

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef unsigned long long CUdeviceptr;

enum {
    CU_JIT_INFO_LOG_BUFFER = 3,
    CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
    CU_JIT_ERROR_LOG_BUFFER = 5,
    CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
};

typedef struct cuda_api {
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DeviceTotalMem)(size_t *, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxSynchronize)(void);
    CUresult (*ModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *, void **);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                             void **, void **);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
    CUresult (*GetErrorString)(CUresult, const char **);
} cuda_api;

typedef struct cuda_state {
    qkc_context *ctx;
    void *lib;
    cuda_api api;
    CUdevice dev;
    CUcontext cuctx;
    int count, sm;
    size_t memory;
    char name[128];
    pthread_mutex_t lock; /* guards modules */
    CUmodule *modules;
    size_t n_modules, cap_modules;
} cuda_state;

static const char *err_str(const cuda_state *cs, CUresult r)
{
    const char *s = NULL;
    if (cs->api.GetErrorString && cs->api.GetErrorString(r, &s) == 0 && s)
        return s;
    return "unknown CUDA error";
}

static void cuda_destroy(void *p)
{
    cuda_state *cs = p;
    if (!cs)
        return;
    if (cs->cuctx) {
        cs->api.CtxSetCurrent(cs->cuctx);
        for (size_t i = 0; i < cs->n_modules; i++)
            cs->api.ModuleUnload(cs->modules[i]);
        cs->api.CtxSetCurrent(NULL);
        cs->api.DevicePrimaryCtxRelease(cs->dev);
    }
    qkc_free(cs->ctx, cs->modules);
    pthread_mutex_destroy(&cs->lock);
    if (cs->lib)
        dlclose(cs->lib);
    qkc_free(cs->ctx, cs);
}

static void *cuda_create(qkc_context *ctx, qkc_status *st)
{
    cuda_state *cs;
    CUresult r;
    int major = 0, minor = 0;
    /* QKC_CUDA_LIBRARY names another driver library (tests use a missing
     * one to check the no-driver path on GPU machines). */
    const char *libname = qkc_context_config(ctx)->cuda_library;
    void *lib = dlopen(libname && *libname ? libname : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        *st = qkc_fail(ctx, QKC_ERR_NO_DEVICE, "no CUDA driver (%s not found)",
                       libname && *libname ? libname : "libcuda.so.1");
        return NULL;
    }
    if (!(cs = qkc_calloc(ctx, 1, sizeof *cs))) {
        dlclose(lib);
        *st = qkc_fail(ctx, QKC_ERR_NO_MEMORY, "CUDA: out of memory");
        return NULL;
    }
    cs->ctx = ctx;
    cs->lib = lib;
    pthread_mutex_init(&cs->lock, NULL);
    {
        static const struct {
            size_t offset;
            const char *name;
        } syms[] = {
#define SYM(field, name) {offsetof(cuda_api, field), name}
            SYM(Init, "cuInit"), SYM(DeviceGetCount, "cuDeviceGetCount"), SYM(DeviceGet, "cuDeviceGet"),
            SYM(DeviceGetName, "cuDeviceGetName"), SYM(DeviceGetAttribute, "cuDeviceGetAttribute"),
            SYM(DeviceTotalMem, "cuDeviceTotalMem_v2"), SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
            SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"), SYM(CtxSetCurrent, "cuCtxSetCurrent"),
            SYM(CtxSynchronize, "cuCtxSynchronize"), SYM(ModuleLoadDataEx, "cuModuleLoadDataEx"),
            SYM(ModuleGetFunction, "cuModuleGetFunction"), SYM(ModuleUnload, "cuModuleUnload"),
            SYM(LaunchKernel, "cuLaunchKernel"), SYM(MemAlloc, "cuMemAlloc_v2"), SYM(MemFree, "cuMemFree_v2"),
            SYM(MemcpyHtoD, "cuMemcpyHtoD_v2"), SYM(MemcpyDtoH, "cuMemcpyDtoH_v2"),
            SYM(MemcpyDtoD, "cuMemcpyDtoD_v2"), SYM(GetErrorString, "cuGetErrorString"),
#undef SYM
        };
        for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
            void *f = dlsym(lib, syms[i].name);
            if (!f) {
                *st = qkc_fail(ctx, QKC_ERR_NO_DEVICE, "CUDA driver too old: libcuda.so.1 has no %s", syms[i].name);
                cuda_destroy(cs);
                return NULL;
            }
            /* dlsym returns functions as void *: POSIX guarantees the
             * round trip, C11 does not name it, so copy the bytes. */
            memcpy((char *)&cs->api + syms[i].offset, &f, sizeof f);
        }
    }
    if ((r = cs->api.Init(0)) != 0 || (r = cs->api.DeviceGetCount(&cs->count)) != 0 || cs->count < 1) {
        *st = qkc_fail(ctx, QKC_ERR_NO_DEVICE, "no CUDA device (%s)",
                       r ? err_str(cs, r) : "the driver sees no device");
        cuda_destroy(cs);
        return NULL;
    }
    if ((r = cs->api.DeviceGet(&cs->dev, 0)) != 0 || (r = cs->api.DevicePrimaryCtxRetain(&cs->cuctx, cs->dev)) != 0) {
        *st = qkc_fail(ctx, QKC_ERR_NO_DEVICE, "CUDA device 0 is not usable: %s", err_str(cs, r));
        cs->cuctx = NULL;
        cuda_destroy(cs);
        return NULL;
    }
    cs->api.DeviceGetName(cs->name, (int)sizeof cs->name, cs->dev);
    cs->api.DeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, cs->dev);
    cs->api.DeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, cs->dev);
    cs->api.DeviceTotalMem(&cs->memory, cs->dev);
    cs->sm = major * 10 + minor;
    return cs;
}

/* The state with its CUDA context current on this thread, or NULL. */
static cuda_state *enter(qkc_context *ctx, qkc_status *st)
{
    cuda_state *cs = qkc_context_slot(ctx, QKC_SLOT_DEVICE, cuda_create, cuda_destroy, st);
    CUresult r;
    if (cs && (r = cs->api.CtxSetCurrent(cs->cuctx)) != 0) {
        *st = qkc_fail(ctx, QKC_ERR_NO_DEVICE, "CUDA: cannot make the device current: %s", err_str(cs, r));
        return NULL;
    }
    return cs;
}

static qkc_status check(qkc_context *ctx, cuda_state *cs, CUresult r, const char *what)
{
    if (r == 0)
        return QKC_OK;
    return qkc_fail(ctx, r == 2 ? QKC_ERR_NO_MEMORY : QKC_ERR_NO_DEVICE, "CUDA: %s failed: %s", what, err_str(cs, r));
}

qkc_status qkc_cuda_require(qkc_context *ctx)
{
    qkc_status st;
    return enter(ctx, &st) ? QKC_OK : st;
}

qkc_status qkc_cuda_load_kernel(qkc_context *ctx, const char *ptx, int sm, const char *symbol, void **function)
{
    qkc_status st;
    cuda_state *cs = enter(ctx, &st);
    CUmodule mod = NULL;
    CUresult r;
    char log[4096] = "";
    int opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[2];
    if (!cs)
        return st;
    if (cs->sm < sm)
        return qkc_fail(ctx, QKC_ERR_NO_DEVICE, "the kernel needs compute capability %d.%d; %s has %d.%d", sm / 10,
                        sm % 10, cs->name, cs->sm / 10, cs->sm % 10);
    vals[0] = log;
    vals[1] = (void *)(uintptr_t)sizeof log;
    if ((r = cs->api.ModuleLoadDataEx(&mod, ptx, 2, opts, vals)) != 0)
        return qkc_fail(ctx, QKC_ERR_COMPILE, "CUDA: loading the PTX failed: %s%s%.2000s", err_str(cs, r),
                        log[0] ? ": " : "", log);
    if ((r = cs->api.ModuleGetFunction((CUfunction *)function, mod, symbol)) != 0) {
        cs->api.ModuleUnload(mod);
        return check(ctx, cs, r, "finding the kernel in its module");
    }
    pthread_mutex_lock(&cs->lock);
    if (cs->n_modules == cs->cap_modules) {
        size_t cap = cs->cap_modules ? 2 * cs->cap_modules : 16;
        CUmodule *m = qkc_alloc(ctx, cap * sizeof *m);
        if (!m) {
            pthread_mutex_unlock(&cs->lock);
            cs->api.ModuleUnload(mod);
            return qkc_fail(ctx, QKC_ERR_NO_MEMORY, "CUDA: out of memory");
        }
        if (cs->n_modules)
            memcpy(m, cs->modules, cs->n_modules * sizeof *m);
        qkc_free(ctx, cs->modules);
        cs->modules = m;
        cs->cap_modules = cap;
    }
    cs->modules[cs->n_modules++] = mod;
    pthread_mutex_unlock(&cs->lock);
    return QKC_OK;
}

qkc_status qkc_cuda_launch(qkc_context *ctx, void *function, const qkc_kernel_args *args, int64_t warps)
{
    qkc_status st;
    cuda_state *cs = enter(ctx, &st);
    qkc_kernel_args copy = *args;
    void *params[1] = {&copy};
    int64_t per_block = QKC_GPU_BLOCK / 32;
    int64_t blocks = (warps + per_block - 1) / per_block;
    if (!cs)
        return st;
    if (warps < 1)
        return QKC_OK;
    if (blocks > 0x7FFFFFFF)
        return qkc_fail(ctx, QKC_ERR_LIMIT, "CUDA: %lld blocks exceed the grid's limit", (long long)blocks);
    return check(ctx, cs,
                 cs->api.LaunchKernel(function, (unsigned)blocks, 1, 1, QKC_GPU_BLOCK, 1, 1, 0, NULL, params, NULL),
                 "launching the kernel");
}

/* ------------------------------------------------------------ public */

qkc_status qkc_device_query(qkc_context *ctx, qkc_device_info *out)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_device_query: NULL argument");
    memset(out, 0, sizeof *out);
    if (!(cs = enter(ctx, &st)))
        return st;
    out->count = cs->count;
    snprintf(out->name, sizeof out->name, "%s", cs->name);
    out->sm = cs->sm;
    out->memory = cs->memory;
    return QKC_OK;
}

qkc_status qkc_device_alloc(qkc_context *ctx, size_t bytes, qkc_device_ptr *out)
{
    qkc_status st;
    cuda_state *cs;
    CUdeviceptr p = 0;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_device_alloc: NULL argument");
    *out = 0;
    if (!(cs = enter(ctx, &st)))
        return st;
    if ((st = check(ctx, cs, cs->api.MemAlloc(&p, bytes ? bytes : 1), "cuMemAlloc")))
        return st;
    *out = p;
    return QKC_OK;
}

qkc_status qkc_device_free(qkc_context *ctx, qkc_device_ptr ptr)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!ptr)
        return QKC_OK;
    if (!(cs = enter(ctx, &st)))
        return st;
    return check(ctx, cs, cs->api.MemFree(ptr), "cuMemFree");
}

qkc_status qkc_device_upload(qkc_context *ctx, qkc_device_ptr dst, const void *src, size_t bytes)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((!dst || !src) && bytes)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_device_upload: NULL argument");
    if (!(cs = enter(ctx, &st)))
        return st;
    return bytes ? check(ctx, cs, cs->api.MemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD") : QKC_OK;
}

qkc_status qkc_device_download(qkc_context *ctx, void *dst, qkc_device_ptr src, size_t bytes)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((!dst || !src) && bytes)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_device_download: NULL argument");
    if (!(cs = enter(ctx, &st)))
        return st;
    return bytes ? check(ctx, cs, cs->api.MemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH") : QKC_OK;
}

qkc_status qkc_device_copy(qkc_context *ctx, qkc_device_ptr dst, qkc_device_ptr src, size_t bytes)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if ((!dst || !src) && bytes)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_device_copy: NULL argument");
    if (!(cs = enter(ctx, &st)))
        return st;
    return bytes ? check(ctx, cs, cs->api.MemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD") : QKC_OK;
}

qkc_status qkc_device_synchronize(qkc_context *ctx)
{
    qkc_status st;
    cuda_state *cs;
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!(cs = enter(ctx, &st)))
        return st;
    return check(ctx, cs, cs->api.CtxSynchronize(), "cuCtxSynchronize");
}
