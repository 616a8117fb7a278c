#!/bin/sh
# The tuner against an exhaustive sweep of its space (docs/performance.md,
# "Tuning"): for each case, every point of the space, then a 60 s budget,
# each in its own process; the tables go to tune_sweep.txt in the current
# directory. Long (about 7 minutes): not in the default suite.
#
# Usage: sh tests/tune_sweep.sh QKC
set -eu
qkc=$1
out=tune_sweep.txt
: >"$out"
for case in "matmul n=4096 k=4096 w=q4_0 compute=f32|1" "matmul n=4096 k=4096 w=bf16|8"; do
    spec=${case%|*}
    m=${case#*|}
    for how in --exhaustive "--budget 60s"; do
        echo "# $spec, m=$m, $how" >>"$out"
        # shellcheck disable=SC2086 # spec and how are words
        "$qkc" tune $spec --m "$m" $how --quiet >>"$out"
    done
done
cat "$out"
