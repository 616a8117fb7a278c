#!/bin/sh
# Line and branch coverage of qkc's library by the default test suite
# (docs/reliability.md, "Coverage"). Not part of scripts/test.sh.
#
#   1. configure (once) and build build-coverage: gcc, Debug (-O0),
#      -DQKC_COVERAGE=ON (every target built with --coverage);
#   2. clear the counters and run the default suite without the label
#      `big` there;
#   3. gcov (the one of the gcc that built it) over the objects of libqkc and
#      libqkc_files and libqkc_rt, and a summary of the library's sources per
#      folder (docs/architecture.md, "Layers": .c files and the .inc files they include;
#      tests, tools, bench and samples are not counted, nor headers, whose
#      inline functions gcov reports once per file that includes them):
#      lines and branches (taken at least once) per folder and in all, and
#      the ten files with the lowest line coverage.
#
# Usage: sh scripts/coverage.sh
# QKC_COVERAGE_BUILD_DIR overrides the directory, QKC_JOBS the
# parallelism, QKC_GCOV the gcov program. The summary also goes to
# DIR/coverage.txt, gcov's own report to DIR/gcov.txt. Exits non-zero when
# a test failed (the figures are printed all the same).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
dir=${QKC_COVERAGE_BUILD_DIR:-build-coverage}
jobs=${QKC_JOBS:-$(nproc 2>/dev/null || echo 2)}
log="$dir/.qkc-build.log"

major=$(gcc -dumpversion | cut -d. -f1)
gcov=${QKC_GCOV:-}
if [ -z "$gcov" ]; then
    if command -v "gcov-$major" >/dev/null 2>&1; then
        gcov=gcov-$major
    else
        gcov=gcov
    fi
fi
command -v "$gcov" >/dev/null 2>&1 || {
    echo "qkc: no $gcov (it comes with gcc)" >&2
    exit 1
}

mkdir -p "$dir"
if [ ! -f "$dir/build.ninja" ]; then
    if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQKC_COVERAGE=ON -DCMAKE_C_COMPILER=gcc \
        -DCMAKE_CXX_COMPILER=g++ >"$log" 2>&1; then
        cat "$log" >&2
        echo "qkc: configuring the coverage build failed (log above)" >&2
        exit 1
    fi
fi
if ! cmake --build "$dir" -j "$jobs" >"$log" 2>&1; then
    cat "$log" >&2
    echo "qkc: the coverage build failed (log above)" >&2
    exit 1
fi

find "$dir" -name '*.gcda' -exec rm -f {} +
echo "qkc: the default suite without 'big' in $dir (coverage build, -O0)"
status=0
ctest --test-dir "$dir" --output-on-failure -j "$jobs" -LE big >"$dir/.qkc-ctest.log" 2>&1 || status=$?
grep -E '^[0-9]+% tests passed|^Total Test time' "$dir/.qkc-ctest.log" || true
if [ "$status" -ne 0 ]; then
    cat "$dir/.qkc-ctest.log" >&2
    echo "qkc: tests failed in the coverage build (log above); the figures below are from that run" >&2
fi

# gcov reads the notes (.gcno) of every library object: an object no test
# ran (no .gcda) counts as 0%.
notes=$(find "$dir/CMakeFiles/qkc.dir" "$dir/CMakeFiles/qkc_files.dir" "$dir/CMakeFiles/qkc_rt.dir" -name '*.gcno' | sort)
[ -n "$notes" ] || {
    echo "qkc: no coverage notes under $dir/CMakeFiles (was it built with -DQKC_COVERAGE=ON?)" >&2
    exit 1
}
# shellcheck disable=SC2086
"$gcov" -b -n $notes >"$dir/gcov.txt" 2>"$dir/gcov.err" || {
    cat "$dir/gcov.err" >&2
    echo "qkc: $gcov failed" >&2
    exit 1
}

awk -v src="$src/" -v when="$(date +%Y-%m-%d)" -v gcov="$("$gcov" --version | head -n 1)" '
function flush() {
    if (file == "")
        return
    # each source once (a .c is in one object; a header is not counted)
    if (!(file in seen)) {
        seen[file] = 1
        files[++nfiles] = file
        L[file] = lt; LC[file] = lc; B[file] = bt; BC[file] = bc
    }
    file = ""
}
function pct(a, b) { return b ? sprintf("%5.1f%%", 100 * a / b) : "    -" }
/^File / {
    flush()
    f = $0
    sub(/^File \047/, "", f); sub(/\047$/, "", f)
    if (index(f, src) != 1) next
    rel = substr(f, length(src) + 1)
    if (rel !~ /^(ir|targets|core|formats|cache|runtime|files|codegen|compiler)\// || rel !~ /\.(c|inc)$/) next
    file = rel; lt = lc = bt = bc = 0; gotl = gotb = 0
    next
}
# (gcov ends with a total "Lines executed" of its own: only the first counts)
file != "" && !gotl && /^Lines executed:/ {
    gotl = 1
    split($0, a, /[:% ]+/)        # Lines executed:91.23% of 1234
    lt = $NF; lc = int(a[3] * lt / 100 + 0.5)
}
file != "" && !gotb && /^Taken at least once:/ {
    gotb = 1
    split($0, a, /[:% ]+/)        # Taken at least once:80.00% of 800
    bt = $NF; bc = int(a[5] * bt / 100 + 0.5)
}
END {
    flush()
    printf "qkc library coverage by the default suite without big (%s, gcc --coverage -O0, %s)\n\n", when, gcov
    printf "%-10s %8s %8s %7s   %8s %8s %7s   %s\n", "folder", "lines", "of", "", "branches", "of", "", "files"
    nd = split("ir targets core formats cache runtime files codegen compiler", dirs, " ")
    for (i = 1; i <= nfiles; i++) {
        f = files[i]; d = f; sub(/\/.*/, "", d)
        DL[d] += L[f]; DLC[d] += LC[f]; DB[d] += B[f]; DBC[d] += BC[f]; DN[d]++
        TL += L[f]; TLC += LC[f]; TB += B[f]; TBC += BC[f]
    }
    for (i = 1; i <= nd; i++) {
        d = dirs[i]
        printf "%-10s %8d %8d %7s   %8d %8d %7s   %d\n", d "/", DLC[d], DL[d], pct(DLC[d], DL[d]), DBC[d], DB[d], pct(DBC[d], DB[d]), DN[d]
    }
    printf "%-10s %8d %8d %7s   %8d %8d %7s   %d\n", "all", TLC, TL, pct(TLC, TL), TBC, TB, pct(TBC, TB), nfiles
    # the ten lowest line coverages (files with executable lines)
    printf "\nleast-covered files (lines):\n"
    for (k = 1; k <= 10; k++) {
        best = ""
        for (i = 1; i <= nfiles; i++) {
            f = files[i]
            if (done[f] || !L[f]) continue
            r = LC[f] / L[f]
            if (best == "" || r < br || (r == br && L[f] > L[best])) { best = f; br = r }
        }
        if (best == "") break
        done[best] = 1
        printf "  %-32s lines %s of %5d   branches %s of %5d\n", best, pct(LC[best], L[best]), L[best], pct(BC[best], B[best]), B[best]
    }
}' "$dir/gcov.txt" | tee "$dir/coverage.txt"
exit "$status"
