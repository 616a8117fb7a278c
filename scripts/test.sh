#!/bin/sh
# Install what is missing, build, and run the default test suite (ctest);
# then what keeps other hosts and compilers green (scripts/build-matrix.sh:
# on an AVX-512 CPU the JIT tests again as an AVX2-only CPU, and the tree
# built with clang and with gcc -O3; QKC_TEST_MATRIX=0 skips that part);
# then the same suite under ASan + UBSan + LeakSanitizer in build-asan
# (scripts/sanitize.sh; QKC_TEST_SANITIZE=0 skips that part).
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh --test
sh scripts/build.sh
jobs=$(nproc 2>/dev/null || echo 2)
ctest --test-dir "${QKC_BUILD_DIR:-build}" --output-on-failure -j "$jobs"
if [ "${QKC_TEST_MATRIX:-1}" != 0 ]; then
    sh scripts/build-matrix.sh
fi
if [ "${QKC_TEST_SANITIZE:-1}" != 0 ]; then
    echo "qkc: the suite again under ASan + UBSan + LeakSanitizer (build-asan)"
    sh scripts/sanitize.sh address,undefined
fi
