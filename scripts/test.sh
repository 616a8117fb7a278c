#!/bin/sh
# Install what is missing, build, and run the default test suite (ctest),
# then the same suite under ASan + UBSan + LeakSanitizer in build-asan
# (scripts/sanitize.sh; QKC_TEST_SANITIZE=0 skips that part).
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh --test
sh scripts/build.sh
jobs=$(nproc 2>/dev/null || echo 2)
ctest --test-dir "${QKC_BUILD_DIR:-build}" --output-on-failure -j "$jobs"
if [ "${QKC_TEST_SANITIZE:-1}" != 0 ]; then
    echo "qkc: the suite again under ASan + UBSan + LeakSanitizer (build-asan)"
    sh scripts/sanitize.sh address,undefined
fi
