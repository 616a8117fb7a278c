#!/bin/sh
# Configure (once) and build qkc in ${QKC_BUILD_DIR:-build}. Quiet on
# success; prints the build log and fails when something does not build.
# QKC_JOBS sets the parallelism (default: the number of CPUs, not ninja's
# CPUs + 2).
set -eu
cd "$(dirname "$0")/.."
dir=${QKC_BUILD_DIR:-build}
jobs=${QKC_JOBS:-$(nproc 2>/dev/null || echo 2)}
log="$dir/.qkc-build.log"
mkdir -p "$dir"
if [ ! -f "$dir/build.ninja" ]; then
    if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1; then
        cat "$log" >&2
        echo "qkc: configuring failed (log above)" >&2
        exit 1
    fi
fi
if ! cmake --build "$dir" -j "$jobs" >"$log" 2>&1; then
    cat "$log" >&2
    echo "qkc: the build failed (log above)" >&2
    exit 1
fi
