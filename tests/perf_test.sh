#!/bin/sh
# perf names qkc's JIT kernels: `perf record` a bench run with
# QKC_PERF_MAP=1, then `perf report` must attribute samples to a
# qkc_kernel_* symbol. Exit 77 (skipped, with the reason) when perf is not
# installed or may not sample here.
#
# Usage: sh tests/perf_test.sh QKC
set -eu
qkc=$1
if ! command -v perf >/dev/null 2>&1; then
    echo "skipped: perf is not installed (Debian: linux-perf)"
    exit 77
fi
rm -rf perf_test && mkdir perf_test && cd perf_test
if ! perf record -q -o probe.data -- true >probe.log 2>&1; then
    echo "skipped: perf cannot record here: $(head -n 1 probe.log)"
    exit 77
fi
QKC_PERF_MAP=1 perf record -q -o perf.data -- "$qkc" bench matmul n=1024 k=4096 w=q4_0 --m 1 --reps 2000 >bench.txt 2>&1 || {
    cat bench.txt >&2
    echo "perf_test: FAILED: perf record of qkc bench" >&2
    exit 1
}
perf report -i perf.data --stdio >report.txt 2>/dev/null
if ! grep -E '\[\.\] qkc_kernel_[0-9a-f]+' report.txt >named.txt; then
    head -n 30 report.txt >&2
    echo "perf_test: FAILED: perf report names no qkc kernel" >&2
    exit 1
fi
head -n 3 named.txt
echo "perf_test: ok"
