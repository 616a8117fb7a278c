/*
 * AOT dispatch in the runtime (qkc_aot_kernel), on hand-made tables whose
 * "kernels" are C functions that say which one ran: the first variant this
 * CPU runs wins; a variant needing a feature the CPU lacks is passed over,
 * or refused when asked for by name; QKC_TARGET and the option pick by
 * name; a foreign, damaged or other-version table is refused with a clear
 * message. tests/aot_test.sh covers libraries made by `qkc compile`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/kernel_abi.h"
#include "qkc/qkc.h"
#include "targets/target.h"

/* Each fake kernel writes its own number into every output. */
#define FAKE(id)                                                                  \
    static void fake_##id(const qkc_kernel_args *a)                               \
    {                                                                             \
        for (int64_t r = 0; r < a->m; r++)                                        \
            for (int64_t n = a->n_begin; n < a->n_end; n++)                       \
                ((float *)a->c)[r * a->ldc + n] = (float)(id);                    \
    }
FAKE(1)
FAKE(2)
FAKE(3)

#define SPEC "matmul n=16 k=32 a=f32 w=f32 out=f32"
/* A feature bit no x86 CPU qkc knows has: stands for a missing feature. */
#define MISSING (1u << 30)

static qkc_aot_row rows[3];
static struct qkc_aot_library lib;

static void make_table(void)
{
    static const qkc_kernel_fn fns[3] = {fake_1, fake_2, fake_3};
    static const char *const targets[3] = {"x86_64-future", "x86_64-avx512", "x86_64-avx2"};
    uint32_t host = qkc_target_host_features();
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 3; i++) {
        rows[i].spec = SPEC;
        rows[i].target = targets[i];
        rows[i].features = "fake";
        rows[i].symbol = i == 0 ? "fake_1" : i == 1 ? "fake_2" : "fake_3";
        rows[i].schedule = "tm=1 tn=1 ku=1 vec=256 pf=0 nb=8";
        rows[i].fn = fns[i];
        rows[i].sched[0] = rows[i].sched[1] = rows[i].sched[2] = 1;
        rows[i].sched[3] = 256;
        rows[i].sched[5] = 8;
        rows[i].arch = qkc_target_host_arch();
    }
    rows[0].feature_bits = MISSING;      /* this CPU never runs it */
    rows[1].feature_bits = host;         /* runs here */
    rows[2].feature_bits = host & 0x0Fu; /* runs here too, less preferred */
    lib.magic = QKC_AOT_MAGIC;
    lib.abi = QKC_AOT_ABI;
    lib.version = QKC_VERSION;
    lib.count = 3;
    lib.name = "fake";
    lib.rows = rows;
}

/* Which fake kernel runs for a target request (NULL: automatic); 0 with
 * *st set when qkc_aot_kernel refuses. */
static int which(qkc_context *ctx, const char *target, qkc_status *st)
{
    qkc_spec *spec;
    qkc_kernel *k = NULL;
    qkc_compile_options opt = {sizeof opt, target, NULL, 0};
    float a[32] = {0}, w[16 * 32] = {0}, c[16];
    int ran = 0;
    assert_int_equal(qkc_spec_parse(ctx, SPEC, &spec), QKC_OK);
    *st = qkc_aot_kernel(ctx, &lib, spec, &opt, &k);
    if (*st == QKC_OK) {
        qkc_kernel_info ki;
        qkc_matmul_args args = {a, 32, w, sizeof w, NULL, c, 16, 1};
        assert_int_equal(qkc_kernel_query(k, &ki), QKC_OK);
        assert_int_equal(ki.ahead_of_time, 1);
        assert_int_equal(qkc_kernel_run(ctx, k, &args, NULL), QKC_OK);
        ran = (int)c[0];
        assert_true(c[15] == c[0]);
        /* what the handle says is what ran */
        assert_string_equal(ki.target, rows[ran - 1].target);
        assert_string_equal(ki.symbol, rows[ran - 1].symbol);
        assert_true(ki.entry == (uintptr_t)rows[ran - 1].fn);
        qkc_kernel_destroy(k);
    }
    qkc_spec_destroy(spec);
    return ran;
}

static void test_dispatch(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_status st;
    make_table();
    if ((qkc_target_host_features() & 0x0Fu) == 0) {
        print_message("skipped: this CPU has none of qkc's x86 features\n");
        return;
    }
    unsetenv("QKC_TARGET");
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(which(ctx, NULL, &st), 2);     /* 1 is passed over, 2 preferred to 3 */
    assert_int_equal(which(ctx, "host", &st), 2);   /* "host" means automatic */
    assert_int_equal(which(ctx, "x86_64-avx2", &st), 3);
    assert_int_equal(which(ctx, "x86_64-future", &st), 0);
    assert_int_equal(st, QKC_ERR_NO_DEVICE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "which this CPU lacks"));
    assert_int_equal(which(ctx, "x86_64-avx512-vnni", &st), 0);
    assert_int_equal(st, QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "(it has: x86_64-future, x86_64-avx512, x86_64-avx2)"));
    /* QKC_TARGET, read when a context is created */
    setenv("QKC_TARGET", "x86_64-avx2", 1);
    assert_int_equal(which(ctx, NULL, &st), 2); /* not this context's */
    {
        qkc_context *c2;
        assert_int_equal(qkc_context_create(NULL, &c2), QKC_OK);
        assert_int_equal(which(c2, NULL, &st), 3);
        assert_int_equal(which(c2, "x86_64-avx512", &st), 2); /* the option wins over the environment */
        qkc_context_destroy(c2);
    }
    unsetenv("QKC_TARGET");
    /* no variant this CPU runs */
    rows[1].feature_bits = rows[2].feature_bits = MISSING;
    assert_int_equal(which(ctx, NULL, &st), 0);
    assert_int_equal(st, QKC_ERR_NO_DEVICE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "this CPU runs none"));
    qkc_context_destroy(ctx);
}

/* A row of another architecture never runs here, even needing no feature:
 * passed over by automatic dispatch, refused when asked for by name. */
static void test_other_architecture(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_status st;
    make_table();
    if ((qkc_target_host_features() & 0x0Fu) == 0) {
        print_message("skipped: this CPU has none of qkc's features\n");
        return;
    }
    unsetenv("QKC_TARGET");
    rows[0].arch = qkc_target_host_arch() == QKC_ARCH_AARCH64 ? QKC_ARCH_X86_64 : QKC_ARCH_AARCH64;
    rows[0].feature_bits = 0;
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(which(ctx, NULL, &st), 2);
    assert_int_equal(which(ctx, "x86_64-future", &st), 0);
    assert_int_equal(st, QKC_ERR_NO_DEVICE);
    assert_non_null(strstr(qkc_context_last_error(ctx), "code, which this machine does not run"));
    qkc_context_destroy(ctx);
}

static void test_refusals(void **state)
{
    (void)state;
    qkc_context *ctx;
    qkc_spec *spec, *other;
    qkc_kernel *k = NULL;
    qkc_aot_variant_info vi;
    make_table();
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, SPEC, &spec), QKC_OK);
    assert_int_equal(qkc_spec_parse(ctx, "matmul n=16 k=32 w=q8_0", &other), QKC_OK);

    assert_int_equal(qkc_aot_variant_count(&lib), 3);
    assert_int_equal(qkc_aot_variant(&lib, 2, &vi), QKC_OK);
    assert_string_equal(vi.target, "x86_64-avx2");
    assert_int_equal(qkc_aot_variant(&lib, 3, &vi), QKC_ERR_INVALID_ARGUMENT);

    assert_int_equal(qkc_aot_kernel(ctx, &lib, other, NULL, &k), QKC_ERR_UNSUPPORTED);
    assert_non_null(strstr(qkc_context_last_error(ctx), "has no kernel for 'matmul n=16 k=32 a=f32 w=q8_0 out=f32'"));
    assert_null(k);
    assert_int_equal(qkc_aot_kernel(ctx, NULL, spec, NULL, &k), QKC_ERR_INVALID_ARGUMENT);
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, NULL), QKC_ERR_INVALID_ARGUMENT);

    lib.version = QKC_VERSION + 1;
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, &k), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "regenerate it"));
    assert_int_equal(qkc_aot_variant_count(&lib), -1);
    lib.version = QKC_VERSION;
    lib.abi = QKC_AOT_ABI + 1;
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, &k), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "table format"));
    lib.abi = QKC_AOT_ABI;
    lib.magic = 0;
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, &k), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "not a qkc AOT library"));
    lib.magic = QKC_AOT_MAGIC;
    lib.count = 0;
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, &k), QKC_ERR_CORRUPT_DATA);
    lib.count = 3;
    rows[1].sched[5] = 0; /* a damaged row */
    rows[0].feature_bits = MISSING;
    assert_int_equal(qkc_aot_kernel(ctx, &lib, spec, NULL, &k), QKC_ERR_CORRUPT_DATA);
    assert_non_null(strstr(qkc_context_last_error(ctx), "damaged"));
    qkc_spec_destroy(spec);
    qkc_spec_destroy(other);
    qkc_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_other_architecture),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
