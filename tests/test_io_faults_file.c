/*
 * I/O faults at every I/O call of the checkpoint readers (core/io.h's
 * context hook, tests/util/io_fault.h): for each kind (a short transfer,
 * EINTR, EIO, ENOSPC) and N = 1, 2, 3, ..., the N-th open, read or mmap
 * of opening a GGUF and a safetensors file (GPTQ and dense tensors), in
 * both load modes (mmap and read), then reading every tensor and every
 * runnable tensor's weights, is failed or shortened, until a pass runs
 * with nothing injected. Each pass must give a status with a message that
 * names the file, or exactly the data of the file opened from memory; a
 * short read or EINTR must never fail. A counting allocator checks that
 * nothing stays allocated. QKC_CASE=<file>|<mode>|<kind> runs one case.
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
#include "util/alloc_count.h"
#include "util/file_fixtures.h"
#include "util/file_writer.h"
#include "util/io_fault.h"
#include "util/testutil.h"

#define PROG "test_io_faults_file"

static char dir[] = "/tmp/qkc-test-io-faults-file-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the files */

typedef struct file_case {
    const char *name;
    char path[256];
    qkc_bytes bytes; /* the file's contents: the reference opens these from memory */
} file_case;

static void make_gguf(file_case *fc)
{
    static const uint32_t types[] = {8, 12, 0};
    static const char *const weights[] = {"w=q8_0", "w=q4_k", "w=f32"};
    qkc_context *ctx;
    qkc_gguf_writer w;
    void *blobs[3];
    size_t bytes[3];
    assert_int_equal(qkc_context_create(NULL, &ctx), QKC_OK);
    qkc_gguf_init(&w);
    qkc_gguf_kv_str(&w, "general.architecture", "llama");
    for (int i = 0; i < 3; i++) {
        char name[32];
        uint64_t dims[2] = {256, 24};
        snprintf(name, sizeof name, "blk.%d.weight", i);
        assert_int_equal(qkc_fixture_blob(ctx, weights[i], 24, 256, name, &blobs[i], &bytes[i]), 0);
        assert_int_equal(qkc_gguf_add_tensor(&w, name, types[i], 2, dims, blobs[i], bytes[i]), 0);
    }
    assert_int_equal(qkc_gguf_finish(&w, &fc->bytes), 0);
    for (int i = 0; i < 3; i++)
        free(blobs[i]);
    qkc_gguf_free(&w);
    qkc_context_destroy(ctx);
}

static void make_safetensors(file_case *fc)
{
    qkc_ckpt_fixture fx;
    assert_int_equal(qkc_fixture_gptq(&fx, "model.layers.0.mlp.up_proj", 4, 32, 256, 64, 1, 0, 0, PROG), 0);
    fc->bytes = fx.file;
    memset(&fx.file, 0, sizeof fx.file);
    qkc_fixture_free(&fx);
}

/* --------------------------------------------------------------- a pass */

/* Open `fc` in `load` mode on ctx and read everything; compare with ref
 * (the same bytes opened from memory). Returns the status of the open. */
static qkc_status open_and_read(qkc_context *ctx, const file_case *fc, int load, const qkc_file *ref, const char *name)
{
    qkc_file_options fo = {.struct_size = sizeof fo, .load = load};
    qkc_file *file = NULL;
    qkc_file_info fi, ri;
    qkc_status st = qkc_file_open(ctx, fc->path, &fo, &file);
    if (st != QKC_OK) {
        QKC_CASE_CHECK(PROG, name, file == NULL, "a failed open returned a file");
        return st;
    }
    assert_int_equal(qkc_file_query(file, &fi), QKC_OK);
    assert_int_equal(qkc_file_query(ref, &ri), QKC_OK);
    QKC_CASE_CHECK(PROG, name, fi.tensors == ri.tensors && fi.bytes == fc->bytes.len, "%lld tensors of %zu bytes",
                   (long long)fi.tensors, fi.bytes);
    for (int64_t i = 0; i < fi.tensors; i++) {
        qkc_tensor_info t, r;
        assert_int_equal(qkc_file_tensor(file, i, &t), QKC_OK);
        assert_int_equal(qkc_file_tensor(ref, i, &r), QKC_OK);
        QKC_CASE_CHECK(PROG, name, !strcmp(t.name, r.name) && t.bytes == r.bytes && t.runnable == r.runnable,
                       "tensor %lld differs from the reference", (long long)i);
        QKC_CASE_CHECK(PROG, name, memcmp(t.data, r.data, t.bytes) == 0, "the data of '%s' differ", t.name);
        if (t.runnable) {
            void *a = malloc(t.weights_bytes), *b = malloc(t.weights_bytes);
            assert_true(a && b);
            QKC_CASE_CHECK(PROG, name, qkc_file_weights(ctx, file, i, a, t.weights_bytes) == QKC_OK, "weights of %s: %s",
                           t.name, qkc_context_last_error(ctx));
            assert_int_equal(qkc_file_weights(ctx, ref, i, b, r.weights_bytes), QKC_OK);
            QKC_CASE_CHECK(PROG, name, memcmp(a, b, t.weights_bytes) == 0, "the weight blob of '%s' differs", t.name);
            free(a), free(b);
        }
    }
    qkc_file_close(file);
    return QKC_OK;
}

static void run_case(file_case *fc, int load, qkc_test_io_kind kind)
{
    char name[160];
    int faulted = 0, failed = 0;
    qkc_context *rctx;
    qkc_file *ref;
    snprintf(name, sizeof name, "%s|%s|%s", fc->name, load == QKC_FILE_LOAD_READ ? "read" : "mmap",
             qkc_test_io_kind_name(kind));
    if (!qkc_case_selected(name))
        return;
    assert_int_equal(qkc_context_create(NULL, &rctx), QKC_OK);
    assert_int_equal(qkc_file_open_memory(rctx, fc->bytes.data, fc->bytes.len, NULL, &ref), QKC_OK);
    for (int n = 1;; n++) {
        qkc_test_alloc_count al;
        qkc_allocator hook = qkc_test_alloc_count_allocator(&al);
        qkc_context_options co = {.struct_size = sizeof co, .allocator = &hook, .disk_cache = QKC_DISK_CACHE_OFF};
        qkc_context *ctx;
        qkc_test_io_fault f;
        qkc_status st;
        assert_int_equal(qkc_context_create(&co, &ctx), QKC_OK);
        qkc_test_io_fault_arm(&f, kind, n);
        qkc_context_set_io_fault(ctx, qkc_test_io_fault_fn, &f);
        st = open_and_read(ctx, fc, load, ref, name);
        qkc_context_set_io_fault(ctx, NULL, NULL);
        if (st != QKC_OK) {
            failed++;
            QKC_CASE_CHECK(PROG, name, f.fired, "open failed with nothing injected (call %d): %s", n,
                           qkc_context_last_error(ctx));
            QKC_CASE_CHECK(PROG, name, kind != QKC_TEST_IO_SHORT && kind != QKC_TEST_IO_EINTR,
                           "a %s at call %d (%s) must be absorbed, not fail: %s", qkc_test_io_kind_name(kind), n,
                           qkc_test_io_op_name(f.fired_op), qkc_context_last_error(ctx));
            QKC_CASE_CHECK(PROG, name, st == QKC_ERR_IO && strstr(qkc_context_last_error(ctx), fc->path),
                           "fault at call %d (%s): status %s, message '%s' (expected an I/O error naming the file)", n,
                           qkc_test_io_op_name(f.fired_op), qkc_status_str(st), qkc_context_last_error(ctx));
        }
        qkc_context_destroy(ctx);
        QKC_CASE_CHECK(PROG, name, qkc_test_alloc_count_live(&al) == 0,
                       "fault at call %d: %ld blocks still allocated", n, qkc_test_alloc_count_live(&al));
        if (!f.fired)
            break;
        faulted++;
    }
    /* EIO reaches the open in both modes and the mmap or the read. */
    if (kind == QKC_TEST_IO_EIO)
        QKC_CASE_CHECK(PROG, name, faulted >= 2 && failed == faulted, "%d calls faulted, %d failed", faulted, failed);
    print_message("%-40s %d I/O calls faulted one at a time, %d failed with a message\n", name, faulted, failed);
    qkc_file_close(ref);
    qkc_context_destroy(rctx);
}

static void every_io_call_of_the_readers(void **state)
{
    file_case files[2] = {{.name = "gguf"}, {.name = "safetensors"}};
    (void)state;
    make_gguf(&files[0]);
    make_safetensors(&files[1]);
    for (int i = 0; i < 2; i++) {
        snprintf(files[i].path, sizeof files[i].path, "%s/model.%s", dir, files[i].name);
        assert_int_equal(qkc_bytes_save(&files[i].bytes, files[i].path), 0);
        for (int load = QKC_FILE_LOAD_MMAP; load <= QKC_FILE_LOAD_READ; load++)
            for (int kind = 0; kind < QKC_TEST_IO_KIND_COUNT; kind++)
                run_case(&files[i], load, (qkc_test_io_kind)kind);
        unlink(files[i].path);
        qkc_bytes_free(&files[i].bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_io_call_of_the_readers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
