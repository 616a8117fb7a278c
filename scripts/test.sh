#!/bin/sh
# Install what is missing, build, and run the default test suite (ctest).
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh --test
sh scripts/build.sh
jobs=$(nproc 2>/dev/null || echo 2)
exec ctest --test-dir "${QKC_BUILD_DIR:-build}" --output-on-failure -j "$jobs"
