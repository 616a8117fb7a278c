#!/bin/sh
# AOT test: install a built qkc into a temporary prefix, build samples/aot
# against it (its CMake build runs `qkc compile --emit lib|header` for two
# CPU levels and links the program with qkc::rt alone), then
#   1. check with ldd that the program has no libLLVM,
#   2. run it: every kernel matches the reference (the program checks),
#   3. force each dispatch variant with QKC_TARGET and check, per kernel,
#      that the entry point that ran is that variant's (the program proves
#      it from the entry point's address; this script reads what it says),
#   4. ask for a target the library lacks: a clear error, non-zero exit.
#
# Usage: sh tests/aot_test.sh BUILD_DIR SOURCE_DIR [CMAKE [CC [GENERATOR [CFLAGS [LDFLAGS]]]]]
# CFLAGS and LDFLAGS are the build's own (a sanitizer build's libraries
# need the sanitizer's flags in the program that links them).
set -eu

build=$1
src=$2
cmake=${3:-cmake}
cc=${4:-cc}
generator=${5:-}
# a QKC_SANITIZE build's tests get its -fsanitize flags here
cflags="${6:-} ${QKC_INSTALL_TEST_FLAGS:-}"
ldflags="${7:-} ${QKC_INSTALL_TEST_FLAGS:-}"

name=aot_test
work="$build/tests/aot_test"
. "$(dirname "$0")/install_prefix.sh"

targets="x86_64-avx512-vnni;x86_64-avx2"
step "build samples/aot for $targets"
set -- -S "$src/samples/aot" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror -pedantic $cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
    -DCMAKE_BUILD_TYPE=Release "-DQKC_AOT_TARGETS=$targets"
[ -n "$generator" ] && set -- "$@" -G "$generator"
"$cmake" "$@" >"$work/configure.log" 2>&1 || {
    cat "$work/configure.log" >&2
    fail "configuring samples/aot"
}
"$cmake" --build "$work/build" >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    fail "building samples/aot"
}
prog="$work/build/aot"
[ -x "$prog" ] || fail "no program $prog"
ar t "$work/build/libkernels.a" | grep -q '^table.o$' || fail "libkernels.a has no dispatch table"

step "ldd: no libLLVM"
ldd "$prog" >"$work/ldd.txt" 2>&1 || true
cat "$work/ldd.txt"
if grep -qi llvm "$work/ldd.txt"; then
    fail "the AOT program links libLLVM"
fi
grep -q libc "$work/ldd.txt" || fail "ldd printed no libraries (is $prog dynamic?)"

step "run (the CPU picks)"
"$prog" || fail "the AOT program (default dispatch)"

for t in x86_64-avx512-vnni x86_64-avx2; do
    step "run with QKC_TARGET=$t"
    if ! QKC_TARGET=$t "$prog" >"$work/run-$t.txt" 2>&1; then
        cat "$work/run-$t.txt" >&2
        case $(sh -c "$build/qkc targets" | awk -v t="$t" '$1 == t { print $2 }') in
        no) echo "skipped: this CPU does not run $t"; continue ;;
        esac
        fail "QKC_TARGET=$t"
    fi
    cat "$work/run-$t.txt"
    ran=$(grep -c "^  ran $t: entry point qkc_aot_kernels_" "$work/run-$t.txt" || true)
    [ "$ran" -eq 3 ] || fail "QKC_TARGET=$t: $ran of 3 kernels ran as $t"
    if grep "^  ran " "$work/run-$t.txt" | grep -v "^  ran $t:" >/dev/null; then
        fail "QKC_TARGET=$t: another variant ran"
    fi
done

step "QKC_TARGET names a target the library lacks"
if QKC_TARGET=x86_64-avx512 "$prog" >"$work/run-bad.txt" 2>&1; then
    fail "QKC_TARGET=x86_64-avx512 should fail: the library has no such kernels"
fi
grep -q "has no x86_64-avx512 kernel for .* (it has: x86_64-avx512-vnni, x86_64-avx2)" "$work/run-bad.txt" || {
    cat "$work/run-bad.txt" >&2
    fail "the error does not say what the library has"
}
echo "aot_test: ok"
