#!/bin/sh
# The benchmark cases of the x86-64 JIT issue, as JSON lines (one per case):
#   sh bench/jit_acceptance.sh [path/to/qkc] > results.jsonl
# q4_0 / q8_0 GEMV cold and hot, M = 8 against M = 1, M = 512 against the
# compute peaks, on 4096x4096 and 11008x4096. Takes a few minutes; run it
# on a quiet machine and compare ratios taken in the same run.
set -eu
qkc=${1:-build/qkc}
for shape in "n=4096 k=4096" "n=11008 k=4096"; do
    for w in "w=q4_0 compute=f32" "w=q4_0 compute=int8" "w=q8_0 compute=f32" "w=q8_0 compute=int8"; do
        "$qkc" bench matmul $shape $w --m 1,8 --threads 1,2 --cold --json
    done
    "$qkc" bench matmul $shape w=q4_0 compute=f32 --m 1 --threads 1 --json
    "$qkc" bench matmul $shape w=q4_0 compute=int8 --m 1 --threads 1 --json
done
for w in "w=q4_0 compute=int8" "w=q8_0 compute=int8" "w=bf16" "w=f16" "w=f32"; do
    "$qkc" bench matmul n=4096 k=4096 $w --m 512 --threads 1,2 --json --reps 5
done
