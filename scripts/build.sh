#!/bin/sh
# Configure (once) and build qkc in ${QKC_BUILD_DIR:-build}. Quiet on
# success; prints the build log and fails when something does not build.
set -eu
cd "$(dirname "$0")/.."
dir=${QKC_BUILD_DIR:-build}
log="$dir/.qkc-build.log"
mkdir -p "$dir"
if [ ! -f "$dir/build.ninja" ]; then
    if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1; then
        cat "$log" >&2
        echo "qkc: configuring failed (log above)" >&2
        exit 1
    fi
fi
if ! cmake --build "$dir" >"$log" 2>&1; then
    cat "$log" >&2
    echo "qkc: the build failed (log above)" >&2
    exit 1
fi
