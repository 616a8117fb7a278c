/*
 * PTX validity: every weight format (each preset, the generic dtypes, the
 * dense f32 fallback, act-order) x compute type is emitted for nvptx-sm80
 * and nvptx-sm90 and assembled by ptxas for sm_80 and sm_90; the PTX must
 * hold an .entry, the warp reduction (shfl.sync) and, where chunk records
 * are whole 16-byte words, 128-bit weight loads (ld.global.nc.v4). Needs
 * ptxas (PATH, else $CUDA_HOME/bin, else /usr/local/cuda/bin); without it
 * the test says "skipped: ptxas not found" and exits 77. Nothing runs on a
 * GPU here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen/lower_ptx.h"
#include "ir/klayout.h"
#include "ir/spec.h"
#include "qkc/qkc.h"

static char ptxas[1024];
static char tmpdir[256];

static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static int find_ptxas(void)
{
    const char *path = getenv("PATH"), *cuda = getenv("CUDA_HOME");
    while (path && *path) {
        const char *e = strchr(path, ':');
        size_t len = e ? (size_t)(e - path) : strlen(path);
        snprintf(ptxas, sizeof ptxas, "%.*s/ptxas", (int)len, path);
        if (len && executable(ptxas))
            return 1;
        path = e ? e + 1 : NULL;
    }
    if (cuda && *cuda) {
        snprintf(ptxas, sizeof ptxas, "%s/bin/ptxas", cuda);
        if (executable(ptxas))
            return 1;
    }
    snprintf(ptxas, sizeof ptxas, "/usr/local/cuda/bin/ptxas");
    return executable(ptxas);
}

/* every format family x compute type (shared with test_cg_gpu_emu) */
#include "gpu/formats.inc"

/* NULL when the verifier rejects the combination and `optional` is set
 * (compute=int8 or bf16 with weights that forbid it). */
static char *emit_ptx(qkc_context *ctx, const char *target, const char *text, int optional)
{
    qkc_spec *spec;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    size_t need = 0;
    char *buf;
    qkc_status st = qkc_spec_parse(ctx, text, &spec);
    if (st == QKC_ERR_INVALID_SPEC && optional)
        return NULL;
    if (st != QKC_OK)
        fail_msg("%s: %s", text, qkc_context_last_error(ctx));
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "ptx", NULL, 0, &need), QKC_ERR_BUFFER_TOO_SMALL);
    buf = malloc(need + 1);
    assert_non_null(buf);
    if (qkc_kernel_emit(ctx, spec, &opt, "ptx", buf, need + 1, NULL) != QKC_OK)
        fail_msg("%s on %s: %s", text, target, qkc_context_last_error(ctx));
    qkc_spec_destroy(spec);
    return buf;
}

/* Assemble with ptxas -arch=arch; on failure print its output and the
 * command that reproduces it. */
static void assemble(const char *path, const char *arch, const char *what)
{
    char cmd[4096], log[600];
    int rc;
    snprintf(log, sizeof log, "%s.log", path);
    snprintf(cmd, sizeof cmd, "'%s' -arch=%s -o /dev/null '%s' > '%s' 2>&1", ptxas, arch, path, log);
    rc = system(cmd);
    if (rc != 0) {
        char text[2000] = "";
        FILE *f = fopen(log, "r");
        if (f) {
            size_t n = fread(text, 1, sizeof text - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        fail_msg("ptxas -arch=%s rejects the PTX of %s (exit %d):\n%s\nrerun: qkc compile %s --emit ptx | ptxas "
                 "-arch=%s -", arch, what, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text, what, arch);
    }
    unlink(log);
}

/* Write ptx to a file under tmpdir, free it and assemble it (as assemble). */
static void assemble_ptx(char *ptx, int index, const char *arch, const char *what)
{
    char path[512];
    FILE *out;
    snprintf(path, sizeof path, "%s/k%d.ptx", tmpdir, index);
    out = fopen(path, "w");
    assert_non_null(out);
    assert_int_equal(fwrite(ptx, 1, strlen(ptx), out), strlen(ptx));
    assert_int_equal(fclose(out), 0);
    free(ptx);
    assemble(path, arch, what);
    unlink(path);
}

/* Do the format's chunk records come as whole 16-byte words? Does its
 * kernel have the tensor-core path (*mma) and take int8 codes (*int8)? */
static int wide_loads(qkc_context *ctx, const char *text, int *mma, int *int8)
{
    qkc_matmul mm;
    qkc_klayout L;
    qkc_diag diag;
    (void)ctx;
    if (qkc_matmul_parse(text, &mm, NULL, &diag) || qkc_klayout_for(&mm.w, mm.n, mm.k, &L, &diag))
        fail_msg("%s: %s", text, diag.message);
    *mma = qkc_lower_ptx_mma(&mm, &L);
    *int8 = qkc_lower_ptx_int8(&mm, &L);
    return qkc_lower_ptx_load_bytes(&L) == 16;
}

/* The mma.sync instruction of a compute type's tensor-core path. */
static const char *mma_instruction(const char *text)
{
    if (strstr(text, "compute=bf16"))
        return "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32";
    if (strstr(text, "compute=f16"))
        return "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32";
    if (strstr(text, "compute=tf32"))
        return "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
    return "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32";
}

static void test_every_format_assembles(void **state)
{
    static const char *const targets[][2] = {{"nvptx-sm80", "sm_80"}, {"nvptx-sm90", "sm_90"}};
    qkc_context *ctx;
    int files = 0, wide = 0, invalid = 0, mma_kernels = 0, dp4a_kernels = 0;
    struct timespec t0, t1;
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++)
        for (size_t c = 0; c < sizeof computes / sizeof computes[0]; c++)
            for (size_t t = 0; t < 2; t++) {
                char text[512];
                char *ptx;
                /* vary the epilogue and M so every path is assembled */
                snprintf(text, sizeof text, "matmul n=64 k=512 a=%s %s %s%s%s", c == 2 ? "bf16" : c == 3 ? "f16" : "f32",
                         formats[f], computes[c], f % 3 == 0 ? " bias=f32 act=gelu out=bf16" :
                                                  f % 3 == 1 ? " act=silu out=f16" : " act=relu",
                         f % 2 ? " m=1" : "");
                ptx = emit_ptx(ctx, targets[t][0], text, c > 0);
                if (!ptx) {
                    invalid++;
                    continue;
                }
                if (!strstr(ptx, ".entry"))
                    fail_msg("%s on %s: no .entry in the PTX", text, targets[t][0]);
                if (!strstr(ptx, "shfl.sync.bfly"))
                    fail_msg("%s on %s: no warp reduction (shfl.sync.bfly) in the PTX", text, targets[t][0]);
                {
                    int has_mma, has_int8;
                    if (wide_loads(ctx, text, &has_mma, &has_int8)) {
                        wide++;
                        if (!strstr(ptx, "ld.global.nc.v4"))
                            fail_msg("%s on %s: 16-byte chunk records but no ld.global.nc.v4", text, targets[t][0]);
                    }
                    if (has_mma && !strstr(ptx, mma_instruction(text)))
                        fail_msg("%s on %s: no %s in the PTX", text, targets[t][0], mma_instruction(text));
                    if (!has_mma && strstr(ptx, "mma.sync"))
                        fail_msg("%s on %s: mma.sync in a kernel without the tensor-core path", text, targets[t][0]);
                    if (has_int8 && !strstr(ptx, "dp4a.s32.s32"))
                        fail_msg("%s on %s: int8 codes but no dp4a in the PTX", text, targets[t][0]);
                    mma_kernels += has_mma;
                    dp4a_kernels += has_int8;
                }
                {
                    char what[600];
                    snprintf(what, sizeof what, "'%s' --target %s", text, targets[t][0]);
                    assemble_ptx(ptx, files, targets[t][1], what);
                }
                files++;
            }
    qkc_context_destroy(ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("ptxas assembled %d PTX kernels (%zu formats x %zu compute types x sm_80, sm_90, less %d combinations "
           "the verifier rejects; %d with 128-bit weight loads, %d with a tensor-core path, %d with dp4a) in "
           "%.1f s\n",
           files, sizeof formats / sizeof formats[0], sizeof computes / sizeof computes[0], invalid, wide,
           mma_kernels, dp4a_kernels, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    assert_true(wide > 0);
    assert_true(mma_kernels > 0);
    assert_true(dp4a_kernels > 0);
}

/* Which kernels get tensor cores and dp4a, spelled out per spec (the
 * sweep above checks the same against the lowering's own predicates). */
static void test_tensor_core_paths(void **state)
{
    static const struct {
        const char *spec, *want[3], *absent;
    } cases[] = {
        {"w=q4_0 compute=bf16", {"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", NULL}, "dp4a"},
        {"w=nf4_bnb compute=f16", {"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", NULL}, "dp4a"},
        {"w=q4_k compute=tf32", {"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", NULL}, "dp4a"},
        {"w=q4_0 compute=int8", {"mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", "dp4a.s32.s32", "shfl.sync.idx"}, NULL},
        {"w=q8_0 compute=int8", {"mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", "dp4a.s32.s32", NULL}, NULL},
        {"w=q4_1 compute=int8", {"mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", "dp4a.s32.s32", NULL}, NULL},
        {"w=iq4_nl compute=int8", {"mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", "dp4a.s32.s32", NULL}, NULL},
        {"w=q4_0 compute=f32", {"fma.rn.f32", NULL}, "mma.sync"},
        {"w=q4_0 compute=bf16 m=4", {"fma.rn.f32", NULL}, "mma.sync"},
        {"w=uint8 zero=int compute=int8", {"fma.rn.f32", NULL}, "dp4a"}, /* codes 0..255 are not s8 */
        {"w=gptq:4:actorder group=32 compute=int8", {"fma.rn.f32", NULL}, "dp4a"},
    };
    qkc_context *ctx;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        char *ptx;
        snprintf(text, sizeof text, "matmul n=64 k=512 %s", cases[i].spec);
        ptx = emit_ptx(ctx, "nvptx-sm80", text, 0);
        for (int j = 0; j < 3 && cases[i].want[j]; j++)
            if (!strstr(ptx, cases[i].want[j]))
                fail_msg("%s: no %s in the PTX", text, cases[i].want[j]);
        if (cases[i].absent && strstr(ptx, cases[i].absent))
            fail_msg("%s: %s in the PTX", text, cases[i].absent);
        assemble_ptx(ptx, (int)i, "sm_80", text);
    }
    qkc_context_destroy(ctx);
}

/* The compile path: an NVPTX target never runs as CPU code; without a
 * driver, compiling says so. */
static void test_targets_and_errors(void **state)
{
    qkc_context *ctx;
    qkc_spec *spec;
    qkc_compile_options opt = {sizeof opt, "nvptx-sm80", NULL, 0};
    char buf[64];
    size_t need;
    (void)state;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=64 k=256 w=q4_0", &spec), QKC_OK);
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "obj", buf, sizeof buf, &need), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "PTX text"));
    opt.target = "nvptx-sm70";
    assert_int_equal(qkc_kernel_emit(ctx, spec, &opt, "ptx", buf, sizeof buf, &need), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "nvptx-sm90"));
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets_and_errors),
        cmocka_unit_test(test_tensor_core_paths),
        cmocka_unit_test(test_every_format_assembles),
    };
    int rc;
    if (!find_ptxas()) {
        printf("skipped: ptxas not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)\n");
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/qkc-ptx-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    printf("ptxas: %s\n", ptxas);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(tmpdir);
    return rc;
}
