#!/bin/sh
# Runs the libFuzzer harnesses for `ninja fuzz` and `ninja fuzz-long`
# (tests/CMakeLists.txt) and keeps their totals.
#
#   run.sh begin STAMP LOG      note where this session starts in LOG
#   run.sh run BUILD NAME BINARY SECONDS MAX_LEN RSS_MB TIMEOUT DICT SEEDS
#                               run one harness (DICT '-' for none)
#   run.sh end STAMP LOG        this session's lines; fails if anything was found
#   run.sh totals LOG           seconds, runs and findings per harness, all sessions
#
# `run` fuzzes BUILD/fuzz_NAME_corpus (where new inputs land) seeded from
# SEEDS, writes libFuzzer's output to BUILD/fuzz_logs/NAME-TIME.txt and any
# crashing, leaking or slow input to BUILD/fuzz_artifacts/NAME-*, and
# appends one line to BUILD/fuzz.log:
#
#   DATE HARNESS SECONDS RUNS FINDINGS
#
# SECONDS is the harness's CPU time (user + system, from the shell's
# `times`), not the wall clock: on a shared machine the two differ, and
# the totals count what the fuzzer ran. (Lines written before 2026-12-07
# 17:00 UTC hold wall seconds, on mostly idle cores.)
# RUNS is libFuzzer's stat::number_of_executed_units (-print_final_stats=1);
# FINDINGS counts the new crash, leak, timeout and out-of-memory inputs (1
# when the harness failed without leaving one). It returns 0 either way,
# so every harness gets its turn.
set -u

log_header='# date harness cpu_seconds runs findings'

# Whole CPU seconds (user + system) the shell's finished children used:
# the second line of `times`, "XmY.Ys XmY.Ys". `times` runs in this shell
# (a command substitution would be a subshell with no children), so its
# output goes through a file; the result is left in $cpu.
child_cpu() {
    times > "$times_file"
    sed -n 2p "$times_file" | awk '{ t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        printf "%d\n", t }' > "$times_file.s"
    read -r cpu < "$times_file.s"
    rm -f "$times_file" "$times_file.s"
}

case "${1:-}" in
begin)
    stamp=$2 log=$3
    if [ -f "$log" ]; then wc -l < "$log" | tr -d ' ' > "$stamp"; else echo 0 > "$stamp"; fi
    ;;
run)
    build=$2 name=$3 bin=$4 seconds=$5 max_len=$6 rss=$7 timeout=$8 dict=$9
    shift 9
    seeds=$1
    corpus=$build/fuzz_${name}_corpus
    artifacts=$build/fuzz_artifacts
    logs=$build/fuzz_logs
    log=$build/fuzz.log
    mkdir -p "$corpus" "$artifacts" "$logs" || exit 1
    [ -f "$log" ] || echo "$log_header" > "$log"
    out=$logs/$name-$(date -u +%Y%m%dT%H%M%SZ).txt
    before=$(ls "$artifacts" | grep -cE "^$name-(crash|leak|timeout|oom)-")
    set -- -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb="$rss" -timeout="$timeout" \
        -print_final_stats=1 -artifact_prefix="$artifacts/$name-"
    [ "$dict" = - ] || set -- "$@" -dict="$dict"
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
    export UBSAN_OPTIONS
    echo "fuzz_$name: $seconds s (output in $out)"
    times_file=$logs/.times.$$
    child_cpu
    cpu_before=$cpu
    start=$(date +%s)
    "$bin" "$@" "$corpus" "$seeds" > "$out" 2>&1
    rc=$?
    wall=$(($(date +%s) - start))
    child_cpu
    elapsed=$((cpu - cpu_before))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n 1)
    after=$(ls "$artifacts" | grep -cE "^$name-(crash|leak|timeout|oom)-")
    findings=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then findings=1; fi
    echo "$(date -u +%Y-%m-%d) fuzz_$name $elapsed ${runs:-0} $findings" >> "$log"
    echo "fuzz_$name: $elapsed s of CPU ($wall s wall), ${runs:-0} runs (${rate:-0}/s), $findings findings"
    if [ "$findings" -ne 0 ]; then
        grep -E '^(fuzz: |==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$out" | head -n 5
        ls -t "$artifacts" | grep -E "^$name-(crash|leak|timeout|oom)-" | head -n "$findings" | sed "s|^|  $artifacts/|"
    fi
    ;;
end)
    stamp=$2 log=$3
    from=$(cat "$stamp" 2>/dev/null || echo 0)
    [ -f "$log" ] || exit 0
    tail -n +"$((from + 1))" "$log" | grep -v '^#' | awk '
        { printf "%-12s %7d s %13d runs %3d findings\n", $2, $3, $4, $5; s += $3; r += $4; f += $5 }
        END { printf "%-12s %7d s %13d runs %3d findings\n", "all", s, r, f; exit f > 0 }'
    ;;
totals)
    log=$2
    grep -v '^#' "$log" | awk '
        { s[$2] += $3; r[$2] += $4; f[$2] += $5; if (!($2 in n)) order[++k] = $2; n[$2]++ }
        END { for (i = 1; i <= k; i++) { h = order[i]
                  printf "%-12s %4d times %8.1f min %13d runs %3d findings\n", h, n[h], s[h] / 60, r[h], f[h] } }'
    ;;
*)
    echo "usage: run.sh begin STAMP LOG | run BUILD NAME BINARY SECONDS MAX_LEN RSS_MB TIMEOUT DICT SEEDS | end STAMP LOG | totals LOG" >&2
    exit 2
    ;;
esac
