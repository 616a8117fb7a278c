/*
 * qkc_aot_write through the API: progress reports (one before each kernel,
 * one at the end, in order, naming spec and target), the archive and
 * header it writes, and its refusals (bad name, a target twice, an unknown
 * target, no specs) leaving no file behind. tests/aot_test.sh links and
 * runs what it makes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkc/qkc.h"

typedef struct reports {
    int count;
    int64_t done[16], total[16];
    char item[16][256];
} reports;

static void on_progress(const qkc_progress *p, void *user)
{
    reports *r = user;
    assert_string_equal(p->task, "aot");
    if (r->count < 16) {
        r->done[r->count] = p->done;
        r->total[r->count] = p->total;
        snprintf(r->item[r->count], sizeof r->item[0], "%s", p->item);
    }
    r->count++;
}

/* Whether `needle` occurs in the first len bytes of s. */
static int contains(const char *s, long len, const char *needle)
{
    size_t n = strlen(needle);
    for (long i = 0; i + (long)n <= len; i++)
        if (!memcmp(s + i, needle, n))
            return 1;
    return 0;
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)*len + 1);
    assert_int_equal(fread(s, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return s;
}

static void test_write_with_progress(void **state)
{
    (void)state;
    reports r;
    qkc_context *ctx;
    qkc_context_options co = {.struct_size = sizeof co, .disk_cache = QKC_DISK_CACHE_OFF};
    qkc_spec *specs[2];
    const char *targets[] = {"x86_64-avx512", "x86_64-avx2"};
    qkc_aot_options ao = {sizeof ao, "unit", targets, 2, NULL};
    char lib[64], header[64], *s;
    long len;
    memset(&r, 0, sizeof r);
    co.progress = on_progress;
    co.progress_user = &r;
    snprintf(lib, sizeof lib, "aot-unit-%ld.a", (long)getpid());
    snprintf(header, sizeof header, "aot-unit-%ld.h", (long)getpid());
    assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0", &specs[0]), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=8 k=32 w=q4_0 act=relu", &specs[1]), QKC_OK);
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)specs, 2, &ao, "lib", lib), QKC_OK);
    /* 0/4 .. 3/4 before each kernel, 4/4 at the end */
    assert_int_equal(r.count, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r.done[i], i);
        assert_int_equal(r.total[i], 4);
    }
    assert_string_equal(r.item[0], "matmul n=16 k=64 a=f32 w=q8_0 out=f32 for x86_64-avx512");
    assert_string_equal(r.item[3], "matmul n=8 k=32 a=f32 w=q4_0 act=relu out=f32 for x86_64-avx2");
    assert_string_equal(r.item[4], r.item[3]);
    s = slurp(lib, &len);
    assert_memory_equal(s, "!<arch>\n", 8);
    assert_true(contains(s, len, "qkc_aot_unit_3"));
    assert_true(contains(s, len, "table.o/"));
    free(s);
    r.count = 0;
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)specs, 2, &ao, "header", header), QKC_OK);
    assert_int_equal(r.count, 0); /* a header generates no code */
    s = slurp(header, &len);
    assert_non_null(strstr(s, "extern const struct qkc_aot_library qkc_aot_unit;"));
    assert_non_null(strstr(s, "#define QKC_AOT_UNIT_SPEC_1 \"matmul n=8 k=32 a=f32 w=q4_0 act=relu out=f32\""));
    assert_non_null(strstr(s, "void qkc_aot_unit_3(const qkc_kernel_args *args);"));
    assert_non_null(strstr(s, "#define QKC_AOT_UNIT_ENTRY_POINTS { qkc_aot_unit_0, qkc_aot_unit_1, qkc_aot_unit_2, qkc_aot_unit_3 }"));
    free(s);
    unlink(lib);
    unlink(header);
    qkc_spec_destroy(specs[0]);
    qkc_spec_destroy(specs[1]);
    qkc_context_destroy(ctx);
}

static void test_refusals(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec;
    const char *twice[] = {"x86_64-avx2", "x86_64-avx2"}, *unknown[] = {"x86_64-avx3"};
    qkc_aot_options ao = {sizeof ao, "ok", NULL, 0, NULL};
    const char *out = "aot-refused.a";
    unlink(out);
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=64 w=q8_0", &spec), QKC_OK);
    ao.name = "not-an-identifier";
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 1, &ao, "lib", out), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "must be a C identifier"));
    ao.name = "ok";
    ao.targets = twice;
    ao.target_count = 2;
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 1, &ao, "lib", out), QKC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(qkc_context_last_error(ctx), "given twice"));
    ao.targets = unknown;
    ao.target_count = 1;
    assert_int_not_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 1, &ao, "header", out), QKC_OK);
    assert_non_null(strstr(qkc_context_last_error(ctx), "x86_64-avx3"));
    ao.targets = NULL;
    ao.target_count = 0;
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 0, &ao, "lib", out), QKC_ERR_LIMIT);
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 1, &ao, "dll", out), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_aot_write(ctx, (const qkc_spec *const *)&spec, 1, &ao, "lib", "/nonexistent/dir/x.a"),
                     QKC_ERR_IO);
    assert_int_equal(access(out, F_OK), -1);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_with_progress),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
