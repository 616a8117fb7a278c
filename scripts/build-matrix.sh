#!/bin/sh
# What keeps qkc green on hosts and compilers other than this one
# (docs/reliability.md, "Other hosts and compilers"); scripts/test.sh runs it
# after the default suite, and it runs alone as well:
#
#   avx2       on an x86-64 CPU with AVX-512, the JIT tests (ctest test_cg_*,
#              without the label `big`) again with QKC_TARGET=x86_64-avx2,
#              as an AVX2-only CPU (Zen 3, older Xeons) runs them. Left out:
#              test_cg_ptx, test_cg_gpu, test_cg_gpu_emu and
#              test_cg_asm_aarch64, which compile only for the nvptx and
#              aarch64 targets they name, so QKC_TARGET changes nothing in
#              them. Skipped, saying why, on an AVX2-only CPU (the default
#              suite ran there at that level) and on other architectures.
#   compilers  the whole tree (libraries, tool, bench, tests, samples)
#              compile-only with clang, Release (-O3), in build-clang, and
#              with gcc, Release (-O3), in build-gcc-o3: the -Werror build
#              of other compilers and optimisation levels, whose warnings
#              (-Wmaybe-uninitialized, -Wsometimes-uninitialized) the
#              default gcc -O2 build does not show.
#
# Usage: sh scripts/build-matrix.sh [avx2] [compilers]   (default: both)
# Quiet on success; on a failure it prints the log and exits non-zero.
# QKC_BUILD_DIR is the default build (scripts/build.sh builds it when
# needed), QKC_JOBS the parallelism (default: the number of CPUs).
set -eu
cd "$(dirname "$0")/.."
jobs=${QKC_JOBS:-$(nproc 2>/dev/null || echo 2)}
steps=${*:-avx2 compilers}

avx2_pass() {
    dir=${QKC_BUILD_DIR:-build}
    sh scripts/build.sh
    # qkc's own feature detection; QKC_TARGET must not colour it
    runs=$(unset QKC_TARGET; "$dir/qkc" targets | awk '$1 == "x86_64-avx2" || $1 == "x86_64-avx512" { printf "%s=%s ", $1, $2 }')
    case $runs in
    *"x86_64-avx512=yes"*)
        echo "qkc: this CPU has AVX-512: the JIT tests again as an AVX2-only CPU (QKC_TARGET=x86_64-avx2)"
        QKC_TARGET=x86_64-avx2 ctest --test-dir "$dir" --output-on-failure -j "$jobs" -R '^test_cg_' \
            -E '^test_cg_(ptx|gpu|gpu_emu|asm_aarch64)$' -LE big >"$dir/.qkc-avx2.log" 2>&1 || {
            cat "$dir/.qkc-avx2.log" >&2
            echo "qkc: the JIT tests failed with QKC_TARGET=x86_64-avx2 (log above)" >&2
            exit 1
        }
        grep -E '^[0-9]+% tests passed' "$dir/.qkc-avx2.log"
        ;;
    *"x86_64-avx2=yes"*)
        echo "qkc: skipped the QKC_TARGET=x86_64-avx2 pass: this CPU has AVX2 and no AVX-512, so the default suite ran at that level"
        ;;
    *)
        echo "qkc: skipped the QKC_TARGET=x86_64-avx2 pass: this CPU ($(uname -m)) does not run x86_64-avx2 kernels"
        ;;
    esac
}

# compile_only DIR C_COMPILER CXX_COMPILER: configure (once) and build the
# whole tree, Release, warnings as errors.
compile_only() {
    dir=$1
    log="$dir/.qkc-build.log"
    if ! command -v "$2" >/dev/null 2>&1; then
        echo "qkc: $2 is missing (sh scripts/bootstrap.sh --test installs it)" >&2
        exit 1
    fi
    mkdir -p "$dir"
    if [ ! -f "$dir/build.ninja" ]; then
        if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$2" \
            -DCMAKE_CXX_COMPILER="$3" >"$log" 2>&1; then
            cat "$log" >&2
            echo "qkc: configuring $dir ($2, Release) failed (log above)" >&2
            exit 1
        fi
    fi
    if ! cmake --build "$dir" -j "$jobs" >"$log" 2>&1; then
        cat "$log" >&2
        echo "qkc: the $2 Release build in $dir failed (log above)" >&2
        exit 1
    fi
}

for step in $steps; do
    case $step in
    avx2) avx2_pass ;;
    compilers)
        echo "qkc: compile-only builds: clang Release (build-clang), gcc -O3 Release (build-gcc-o3)"
        compile_only build-clang clang clang++
        compile_only build-gcc-o3 gcc g++
        ;;
    *)
        echo "usage: sh scripts/build-matrix.sh [avx2] [compilers]" >&2
        exit 2
        ;;
    esac
done
