#!/bin/sh
# Build qkc with sanitizers in a tree of its own and run the default test
# suite there (docs/reliability.md).
#
# Usage: sh scripts/sanitize.sh [SANITIZERS]
#   address,undefined (default)  ASan + UBSan + LSan leak check, in build-asan
#   thread                        TSan, in build-tsan
# QKC_SANITIZE_BUILD_DIR overrides the directory, QKC_JOBS the parallelism.
set -eu
cd "$(dirname "$0")/.."
san=${1:-address,undefined}
case $san in
address,undefined) def=build-asan ;;
thread) def=build-tsan ;;
*) def=build-san-$(echo "$san" | tr ',' '-') ;;
esac
dir=${QKC_SANITIZE_BUILD_DIR:-$def}
jobs=${QKC_JOBS:-$(nproc 2>/dev/null || echo 2)}
log="$dir/.qkc-build.log"
mkdir -p "$dir"
if [ ! -f "$dir/build.ninja" ] || ! grep -q "^QKC_SANITIZE:STRING=$san\$" "$dir/CMakeCache.txt"; then
    if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQKC_SANITIZE="$san" >"$log" 2>&1; then
        cat "$log" >&2
        echo "qkc: configuring the $san build failed (log above)" >&2
        exit 1
    fi
fi
if ! cmake --build "$dir" -j "$jobs" >"$log" 2>&1; then
    cat "$log" >&2
    echo "qkc: the $san build failed (log above)" >&2
    exit 1
fi
exec ctest --test-dir "$dir" --output-on-failure -j "$jobs"
