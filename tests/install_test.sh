#!/bin/sh
# Install test: install a built qkc into a temporary prefix, then build the
# consumer sample (samples/consumer) against that prefix the two ways users
# do, and run it:
#   1. CMake: find_package(qkc) with -DCMAKE_PREFIX_PATH=PREFIX, qkc::qkc;
#   2. pkg-config: cc $(pkg-config --cflags --libs qkc) with
#      PKG_CONFIG_PATH=PREFIX/lib/pkgconfig (skipped, with a message, when
#      pkg-config is missing), which also compiles the other samples.
# Consumers see only PREFIX/include/qkc/qkc.h, so this also proves that the
# samples need nothing else. Fails on any error.
#
# Usage: sh tests/install_test.sh BUILD_DIR SOURCE_DIR [CMAKE [CC [GENERATOR]]]
set -eu

build=$1
src=$2
cmake=${3:-cmake}
cc=${4:-cc}
generator=${5:-}

name=install_test
work="$build/tests/install_test"
. "$(dirname "$0")/install_prefix.sh"

# What a consumer gets: one header, two libraries, the tool, the package
# files; and no internal header.
for f in include/qkc/qkc.h lib/libqkc.a lib/libqkc_rt.a bin/qkc lib/pkgconfig/qkc.pc lib/pkgconfig/qkc_rt.pc \
    lib/cmake/qkc/qkcConfig.cmake lib/cmake/qkc/qkcConfigVersion.cmake lib/cmake/qkc/qkcTargets.cmake; do
    [ -f "$prefix/$f" ] || fail "$prefix/$f was not installed"
done
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
[ "$headers" = "./qkc/qkc.h " ] || fail "installed headers are '$headers', expected only ./qkc/qkc.h"
"$prefix/bin/qkc" check matmul n=8 k=32 w=q4_0 >/dev/null || fail "the installed qkc tool does not run"

# Warnings are errors for the consumers: the installed header must be clean.
strict="-Wall -Wextra -Werror -pedantic"
# A sanitizer build (QKC_SANITIZE) passes its -fsanitize flags: consumers of
# instrumented libraries must link the sanitizer runtime too.
strict="$strict ${QKC_INSTALL_TEST_FLAGS:-}"

step "CMake: find_package(qkc) + qkc::qkc"
set -- -S "$src/samples/consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="$strict" -DCMAKE_BUILD_TYPE=Release
[ -n "$generator" ] && set -- "$@" -G "$generator"
"$cmake" "$@" >"$work/cmake-configure.log" 2>&1 || {
    cat "$work/cmake-configure.log" >&2
    fail "configuring samples/consumer with CMAKE_PREFIX_PATH=$prefix"
}
# find_package must have found this prefix, not another installed qkc.
found=$(sed -n 's/^qkc_DIR:PATH=//p' "$work/cmake/CMakeCache.txt")
[ -n "$found" ] && [ "$(cd "$found" && pwd -P)" = "$(cd "$prefix/lib/cmake/qkc" && pwd -P)" ] ||
    fail "find_package(qkc) found '$found', not $prefix/lib/cmake/qkc"
"$cmake" --build "$work/cmake" >"$work/cmake-build.log" 2>&1 || {
    cat "$work/cmake-build.log" >&2
    fail "building samples/consumer with CMake"
}
"$work/cmake/consumer" || fail "the consumer built with CMake"

step "pkg-config: cc \$(pkg-config --cflags --libs qkc)"
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "skipped: pkg-config not found"
    exit 0
fi
PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs qkc) || fail "pkg-config --cflags --libs qkc"
rt_flags=$(pkg-config --cflags --libs qkc_rt) || fail "pkg-config --cflags --libs qkc_rt"
echo "pkg-config --cflags --libs qkc: $flags"
# shellcheck disable=SC2086 # the flags are words
"$cc" -std=c11 $strict "$src/samples/consumer/consumer.c" -o "$work/consumer-pc" $flags ||
    fail "building samples/consumer with pkg-config"
"$work/consumer-pc" || fail "the consumer built with pkg-config"

# The other samples build outside the tree the same way (the test suite
# runs them from the main build). A program using only the runtime links
# with qkc_rt alone, without LLVM.
for s in jit_host mlp_block gguf_matvec; do
    # shellcheck disable=SC2086
    "$cc" -std=c11 $strict "$src/samples/$s/$s.c" -o "$work/$s" $flags ||
        fail "building samples/$s with pkg-config"
done
cat >"$work/rt_only.c" <<'EOF'
#include <stdio.h>
#include <qkc/qkc.h>
int main(void)
{
    qkc_context *ctx = NULL;
    qkc_spec *spec = NULL;
    size_t bytes = 0;
    int rc = qkc_context_create(NULL, &ctx) != QKC_OK || qkc_spec_parse(ctx, "matmul n=8 k=32 w=q4_0", &spec) != QKC_OK ||
             qkc_weights_bytes(ctx, spec, &bytes) != QKC_OK || bytes != 8 * 18;
    printf("qkc_rt %s: 8 x 32 q4_0 weights take %zu bytes\n", qkc_version_string(), bytes);
    qkc_spec_destroy(spec);
    qkc_context_destroy(ctx);
    return rc;
}
EOF
# shellcheck disable=SC2086
"$cc" -std=c11 $strict "$work/rt_only.c" -o "$work/rt_only" $rt_flags || fail "building a qkc_rt program with pkg-config"
"$work/rt_only" || fail "the qkc_rt program"

# The README's "Using the library" snippet, word for word, inside a main()
# that provides its buffers: what the README shows must compile and run.
step "README: the Using the library snippet"
{
    printf '#include <stdio.h>\n#include <stdlib.h>\n'
    sed -n '/^## Using the library/,/^## /p' "$src/README.md" | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' |
        grep '^#include'
    printf 'int main(void)\n{\n'
    printf '    float *weights_f32 = calloc((size_t)4096 * 4096, sizeof(float));\n'
    printf '    float *activations = calloc(4096, sizeof(float)), *out = calloc(4096, sizeof(float));\n'
    printf '    for (int i = 0; i < 4096 * 4096; i++)\n        weights_f32[i] = (float)(i %% 201 - 100) / 1000.0f;\n'
    printf '    for (int i = 0; i < 4096; i++)\n        activations[i] = 1.0f;\n'
    sed -n '/^## Using the library/,/^## /p' "$src/README.md" | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' |
        grep -v '^#include'
    printf '    printf("out[0] = %%g\\n", out[0]);\n'
    printf '    free(blob), free(packed), free(weights_f32), free(activations);\n'
    printf '    {\n        int rc = out[0] != 0.0f ? 0 : 1;\n        free(out);\n        return rc;\n    }\n}\n'
} >"$work/readme.c"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror ${QKC_INSTALL_TEST_FLAGS:-} "$work/readme.c" -o "$work/readme" $flags ||
    fail "building the README snippet ($work/readme.c)"
"$work/readme" || fail "running the README snippet ($work/readme.c)"
echo "install_test: ok"
