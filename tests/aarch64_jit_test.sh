#!/bin/sh
# AArch64 JIT test: the whole project — libqkc with its LLVM JIT, the tool,
# the cmocka tests — cross-built for aarch64 (cmake/aarch64-linux-gnu-full.cmake,
# against Debian 12's arm64 libLLVM-19 unpacked by scripts/aarch64-sysroot.sh)
# and its JIT tests run under qemu-aarch64 -cpu max (dotprod, i8mm, bf16:
# the host target is the aarch64 host, detected by targets/aarch64.c).
#
# The default (ctest aarch64_jit) runs a subset that fits the CI budget:
#   test_api            the public API on aarch64: contexts, specs, errors
#   test_cg_threads     the kernel split over the thread pool (N tiles)
#   test_cg_concurrency several threads compiling into one JIT at once
#   test_cg_diskcache   object bytes of aarch64 kernels stored and loaded
# plus `qkc demo` (the tool end to end on the aarch64 host: detection picks
# dotprod-i8mm, JIT, check against the reference) of a q4_0 int8 kernel
# (sdot) and an nf4 float kernel (tbl). Kernel correctness per preset is the
# AOT cross test's (tests/aarch64_test.sh: the same code generator); the
# assembly checks (test_cg_asm_aarch64) compile the same on any host. Both
# run here in the full mode.
# QKC_AARCH64_JIT=full (`ninja aarch64_jit`) runs every cmocka program
# instead, except test_cg_big_matrix (label big: 4.8 GB and hours under
# qemu; the native suite runs it).
#
# Skips (exit 77, saying why) without aarch64-linux-gnu-gcc/g++, qemu-aarch64,
# the cross libc (/usr/aarch64-linux-gnu) or the arm64 sysroot
# (sh scripts/bootstrap.sh --test installs and fetches all of them; the
# test itself never uses the network).
#
# Usage: sh tests/aarch64_jit_test.sh BUILD_DIR SOURCE_DIR [CMAKE [GENERATOR]]
# QKC_AARCH64_SYSROOT, QKC_CROSS_CC, QKC_CROSS_CXX, QKC_QEMU override the
# tools; QKC_AARCH64_JIT_JOBS the parallel tests (default 2), QKC_JOBS the
# build jobs (default nproc).
set -eu

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cmake=${3:-cmake}
generator=${4:-}
cc=${QKC_CROSS_CC:-aarch64-linux-gnu-gcc}
cxx=${QKC_CROSS_CXX:-aarch64-linux-gnu-g++}
qemu=${QKC_QEMU:-qemu-aarch64}
libc=/usr/aarch64-linux-gnu
sysroot=${QKC_AARCH64_SYSROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/qkc-aarch64-sysroot}
mode=${QKC_AARCH64_JIT:-subset}
jobs=${QKC_AARCH64_JIT_JOBS:-2}
jobs_build=${QKC_JOBS:-$(nproc 2>/dev/null || echo 2)}
work="$build/aarch64-jit"
subset="test_api test_cg_threads test_cg_concurrency test_cg_diskcache"

fail() {
    echo "aarch64_jit: FAILED: $*" >&2
    exit 1
}
for tool in "$cc" "$cxx" "$qemu"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skipped: no $tool (sh scripts/bootstrap.sh --test installs gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu and qemu-user)"
        exit 77
    fi
done
[ -d "$libc" ] || {
    echo "skipped: no aarch64 libc at $libc (libc6-dev-arm64-cross)"
    exit 77
}
[ -f "$sysroot/.complete" ] || {
    echo "skipped: no arm64 sysroot (libLLVM-19, cmocka, jansson) at $sysroot: sh scripts/aarch64-sysroot.sh fetches it (sh scripts/bootstrap.sh --test runs it)"
    exit 77
}

start=$(date +%s)
echo "== configure $work (cmake/aarch64-linux-gnu-full.cmake, sysroot $sysroot)"
set -- -S "$src" -B "$work" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64-linux-gnu-full.cmake" \
    -DQKC_AARCH64_SYSROOT="$sysroot" -DQKC_CROSS_CC="$cc" -DQKC_CROSS_CXX="$cxx" -DQKC_QEMU="$qemu" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
[ -n "$generator" ] && set -- "$@" -G "$generator"
"$cmake" "$@" >"$work.configure.log" 2>&1 || {
    cat "$work.configure.log" >&2
    fail "configuring the aarch64 build"
}

if [ "$mode" = full ]; then
    targets="all"
    select="^test_"
else
    targets="qkc_tool $subset"
    select="^($(echo "$subset" | tr ' ' '|'))\$"
fi
echo "== build ($targets)"
# shellcheck disable=SC2086 # one word per target
"$cmake" --build "$work" -j "$jobs_build" --target $targets >"$work.build.log" 2>&1 || {
    cat "$work.build.log" >&2
    fail "building for aarch64"
}
file "$work/qkc" 2>/dev/null | grep -q aarch64 || head -c 20 "$work/qkc" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c4602010100000000000000000003..b700' ||
    fail "$work/qkc is not an aarch64 program"
built=$(date +%s)

echo "== qemu-aarch64 -cpu max: ctest -R '$select'"
# ctest runs each program through CMAKE_CROSSCOMPILING_EMULATOR.
status=0
ctest --test-dir "$work" -R "$select" -LE big -j "$jobs" --output-on-failure || status=$?

if [ "$mode" != full ]; then
    lib="$sysroot/usr/lib/aarch64-linux-gnu:$sysroot/lib/aarch64-linux-gnu"
    for spec in "n=64 k=256 w=q4_0 compute=int8" "n=35 k=256 w=nf4_bnb act=gelu"; do
        echo "== qkc demo matmul $spec (the tool: host detection, JIT, check)"
        t0=$(date +%s)
        # shellcheck disable=SC2086 # the spec is several words
        if QKC_CACHE=off "$qemu" -L "$sysroot" -cpu max -E LD_LIBRARY_PATH="$lib" "$work/qkc" demo \
            matmul $spec --m 3 >"$work.demo.txt" 2>&1 &&
            grep -q '^kernel    host (neon .*dotprod i8mm' "$work.demo.txt" &&
            grep -q '^check     kernel vs reference: .* ok' "$work.demo.txt"; then
            grep '^kernel\|^check     kernel' "$work.demo.txt"
            echo "   $(($(date +%s) - t0)) s"
        else
            cat "$work.demo.txt" >&2
            status=1
        fi
    done
fi
end=$(date +%s)
[ "$status" -eq 0 ] || fail "see above (rerun one test: ctest --test-dir $work -R NAME --output-on-failure)"
echo "aarch64_jit: ok ($mode): build $((built - start)) s, qemu $((end - built)) s"
