#!/bin/sh
# The main job: install what is missing, build, and run `qkc demo` (quantize
# a 4096x4096 q4_0 weight matrix and run a matmul, printing the result
# checks and the time taken). Extra arguments go to `qkc demo`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh
sh scripts/build.sh
exec "${QKC_BUILD_DIR:-build}/qkc" demo "$@"
