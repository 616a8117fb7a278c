#!/bin/sh
# AArch64 cross test: qkc compiles, on this machine, an AOT library of
# kernels for the three aarch64 targets (aarch64-neon-dotprod-i8mm,
# aarch64-neon-dotprod, aarch64-neon, in that order of preference) for every
# preset x compute f32 and int8 (bf16 for mxfp8 and nf4_bnb, whose codes
# are not integers) x two shapes (N off the tile sizes; K one
# block and three blocks), plus a few specs for the other compute types and
# epilogues; the runtime and tests/cross/aarch64_kernels.c are
# cross-compiled with aarch64-linux-gnu-gcc (tests/cross/CMakeLists.txt,
# cmake/aarch64-linux-gnu.cmake); the program runs under qemu-aarch64 with
#   -cpu max          every variant runs (and must match the reference for
#                     M = 1, 3, 8, 17); dispatch picks dotprod-i8mm
#   -cpu neoverse-n1  dotprod, no i8mm: the i8mm variants are refused,
#                     dispatch picks aarch64-neon-dotprod
#   -cpu cortex-a53   Armv8.0: only aarch64-neon runs and is picked
# It also checks the assembly of one kernel per target for the instructions
# the features exist for (sdot only with dotprod, usdot, smmla and usmmla
# only with i8mm, tbl for codebooks).
#
# Weight panels: the int8 kernels of every target read the weights in
# panels of 4 rows (ir/klayout.h): with dotprod by sdot by element (usdot
# for unsigned 8-bit codes with i8mm), on plain NEON by widening
# multiplies of the broadcast activation word (smull, smlal and their
# high halves) and pairwise adds. The heuristic's schedule is tm=2 tn=2
# (two rows by two panels; M = 1 and the odd last row of M = 3 and 17 run
# the one-row loop). A tuning database ($work/cross.db, passed with --db) gives a few
# int8 specs on the i8mm target other tiles (tm=3 tn=3, tm=3 tn=4,
# tm=4 tn=4, tm=4 tn=3, tm=4 tn=2), N off the panel: q4_0 (integer
# correction), q4_1 and q5_1 (minimums), q8_0 (codes - 128), iq4_nl (tbl),
# uint8 with zeros (usdot, K off the chunk), q4_k.
#
# smmla: int8 kernels that keep the row layout on the i8mm target (those
# with activation or sparse outliers) pair a tile's rows and columns:
# smmla, or usmmla for 8-bit codes with zeros. The database gives them
# tiles with odd sides (tm=5 tn=3, tm=3 tn=5), so pairs and the sdot rows
# and columns beside them run in one tile: q4_0 with activation outliers
# (integer correction), uint8 with zeros and sparse outliers (usmmla).
#
# Skips (exit 77) when the cross compiler or qemu-aarch64 is missing
# (sh scripts/bootstrap.sh --test installs gcc-aarch64-linux-gnu and
# qemu-user).
#
# Usage: sh tests/aarch64_test.sh BUILD_DIR SOURCE_DIR [CMAKE [GENERATOR]]
# QKC_CROSS_CC, QKC_CROSS_SYSROOT, QKC_QEMU override the tools.
set -eu

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cmake=${3:-cmake}
generator=${4:-}
cross=${QKC_CROSS_CC:-aarch64-linux-gnu-gcc}
sysroot=${QKC_CROSS_SYSROOT:-/usr/aarch64-linux-gnu}
qemu=${QKC_QEMU:-qemu-aarch64}
qkc="$build/qkc"
work="$build/tests/aarch64_test"

step() { echo "== $*"; }
fail() {
    echo "aarch64_test: FAILED: $*" >&2
    exit 1
}
for tool in "$cross" "$qemu"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skipped: no $tool (sh scripts/bootstrap.sh --test installs gcc-aarch64-linux-gnu and qemu-user)"
        exit 77
    fi
done
[ -d "$sysroot" ] || {
    echo "skipped: no aarch64 sysroot at $sysroot (libc6-dev-arm64-cross)"
    exit 77
}
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)

step "specs"
specs="$work/cross.specs"
for p in q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k iq4_nl iq4_xs tq2_0 tq1_0 q3_k q2_k mxfp4 mxfp8 nf4_bnb gptq awq; do
    case $p in
    q4_k | q5_k | q6_k | iq4_xs | tq2_0 | tq1_0 | q3_k | q2_k) g=256 ;;
    nf4_bnb) g=64 ;;
    gptq | awq) g=128 ;;
    *) g=32 ;;
    esac
    # GPTQ and AWQ pack along n: n is a multiple of 8 there
    case $p in
    gptq | awq) n1=8 n2=24 ;;
    *) n1=5 n2=35 ;;
    esac
    # fp8 and nf4 codes are not integers: no int8 compute; bf16 instead
    case $p in
    mxfp8 | nf4_bnb) c2=" compute=bf16" ;;
    *) c2=" compute=int8" ;;
    esac
    for c in " compute=f32" "$c2"; do
        echo "matmul n=$n1 k=$g w=$p$c"
        echo "matmul n=$n2 k=$((3 * g)) w=$p$c"
    done
done >"$specs"
cat >>"$specs" <<'SPECS'
# 8-bit codes with zeros (usdot with i8mm), act-order, int8 per channel
matmul n=36 k=96 w=gptq:8 group=32 compute=int8
matmul n=16 k=256 w=gptq:4:actorder group=64 compute=int8
matmul n=17 k=100 w=int8 compute=int8
matmul n=17 k=100 w=uint8 group=32 scale=f16 zero=int compute=int8
# the row layout with outliers: smmla / usmmla pairs with i8mm
matmul n=35 k=96 w=q4_0 outliers=act:6 compute=int8
matmul n=17 k=100 w=uint8 group=32 scale=f16 zero=int outliers=sparse:0.02 compute=int8
# other compute types and epilogues; K off the chunk size
matmul n=35 k=250 w=nf4 group=64 bias=f32 act=gelu out=bf16
matmul n=35 k=256 a=f16 w=q4_0 compute=f16 bias=f32 act=silu out=f16
matmul n=35 k=256 a=bf16 w=fp8e4m3 compute=bf16 out=bf16
matmul n=17 k=64 w=fp4 group=32 compute=tf32 act=relu
# mixed row blocks (one loop per block, each with its own layout)
matmul n=37 k=160 w=mixed bits=4x13,8x8,2x* group=32 scale=f16 zero=int
matmul n=20 k=96 w=mixed bits=8x7,3x* compute=int8 bias=f32
SPECS
nspecs=$(grep -c '^matmul' "$specs")
targets="--target aarch64-neon-dotprod-i8mm --target aarch64-neon-dotprod --target aarch64-neon"

# schedules for the i8mm variants of a few int8 specs (see the top)
version=$("$qkc" version | awk '{print $2; exit}')
db="$work/cross.db"
echo "qkc-tune 1" >"$db"
while read -r sched spec; do
    printf 'spec=%s\tm=1\ttarget=aarch64-neon-dotprod-i8mm\tfeatures=neon dotprod i8mm\tqkc=%s\tschedule=%s ku=1 vec=128 pf=0 nb=64\tus=1\n' \
        "$spec" "$version" "$(echo "$sched" | tr , ' ')" >>"$db"
done <<'TUNED'
tm=3,tn=3 matmul n=35 k=96 w=q4_0 compute=int8
tm=3,tn=3 matmul n=35 k=96 w=q4_1 compute=int8
tm=3,tn=4 matmul n=35 k=96 w=q5_1 compute=int8
tm=4,tn=4 matmul n=35 k=96 w=q8_0 compute=int8
tm=4,tn=3 matmul n=35 k=96 w=iq4_nl compute=int8
tm=3,tn=3 matmul n=17 k=100 w=uint8 group=32 scale=f16 zero=int compute=int8
tm=4,tn=2 matmul n=35 k=768 w=q4_k compute=int8
tm=5,tn=3 matmul n=35 k=96 w=q4_0 outliers=act:6 compute=int8
tm=3,tn=5 matmul n=17 k=100 w=uint8 group=32 scale=f16 zero=int outliers=sparse:0.02 compute=int8
TUNED

step "qkc compile --emit lib|header: $nspecs specs x 3 aarch64 targets"
# shellcheck disable=SC2086
"$qkc" compile --specs "$specs" $targets --db "$db" --name cross --emit lib -o "$work/libcross.a" ||
    fail "qkc compile --emit lib"
# shellcheck disable=SC2086
"$qkc" compile --specs "$specs" $targets --db "$db" --name cross --emit header -o "$work/qkc_cross_kernels.h" ||
    fail "qkc compile --emit header"
kernels=$((nspecs * 3))
compiled=$(date +%s)

step "assembly: the instructions the features exist for"
asm() { "$qkc" compile matmul n=64 k=256 "$@" --emit asm; }
for t in aarch64-neon aarch64-neon-dotprod aarch64-neon-dotprod-i8mm; do
    asm w=q4_0 compute=int8 --target $t >"$work/q4_0-$t.s" || fail "assembly for $t"
    asm w=uint8 group=32 scale=f16 zero=int compute=int8 --target $t >"$work/u8-$t.s" || fail "assembly for $t"
    asm w=nf4_bnb --target $t >"$work/nf4-$t.s" || fail "assembly for $t"
    asm w=iq4_nl compute=int8 --target $t >"$work/iq4-$t.s" || fail "assembly for $t"
    asm w=q4_0 outliers=act:6 compute=int8 --target $t >"$work/q4_0-rows-$t.s" || fail "assembly for $t"
    asm w=uint8 group=32 scale=f16 zero=int outliers=sparse:0.02 compute=int8 --target $t >"$work/u8-rows-$t.s" ||
        fail "assembly for $t"
    grep -q '	tbl	' "$work/nf4-$t.s" || fail "$t: no tbl in the nf4 kernel"
    grep -q '	tbl	' "$work/iq4-$t.s" || fail "$t: no tbl in the iq4_nl int8 kernel"
done
grep -q '	sdot	' "$work/q4_0-aarch64-neon-dotprod.s" || fail "aarch64-neon-dotprod: no sdot"
grep -q '	[su]dot	' "$work/q4_0-aarch64-neon.s" && fail "aarch64-neon: sdot without dotprod"
grep -q '	smull' "$work/q4_0-aarch64-neon.s" || fail "aarch64-neon: no widening multiply"
grep -q '	usdot	' "$work/u8-aarch64-neon-dotprod-i8mm.s" || fail "aarch64-neon-dotprod-i8mm: no usdot"
grep -q '	usdot	' "$work/u8-aarch64-neon-dotprod.s" && fail "aarch64-neon-dotprod: usdot without i8mm"
# weight panels with dotprod: the dot products by element (one activation
# word broadcast), no smmla pairs
for t in aarch64-neon-dotprod aarch64-neon-dotprod-i8mm; do
    grep -qE '	sdot	v[0-9]+\.4s, v[0-9]+\.16b, v[0-9]+\.4b\[[0-3]\]' "$work/q4_0-$t.s" ||
        fail "$t: the q4_0 int8 kernel does not read panels (sdot by element)"
    grep -qE '	(smmla|usmmla|ummla)	' "$work/q4_0-$t.s" && fail "$t: smmla in the q4_0 panel kernel"
done
grep -qE '	usdot	v[0-9]+\.4s, v[0-9]+\.16b, v[0-9]+\.4b\[[0-3]\]' "$work/u8-aarch64-neon-dotprod-i8mm.s" ||
    fail "aarch64-neon-dotprod-i8mm: the uint8 int8 kernel does not read panels (usdot by element)"
# and without dotprod: the activation word broadcast, smlal2 for rows 2-3
{ grep -qE '	dup	v[0-9]+\.4s, v[0-9]+\.s\[[0-3]\]' "$work/q4_0-aarch64-neon.s" &&
    grep -q '	smlal2	' "$work/q4_0-aarch64-neon.s"; } ||
    fail "aarch64-neon: the q4_0 int8 kernel does not read panels (dup .s[i], smlal2)"
# the row layout (outliers) with the heuristic's schedule pairs rows:
# smmla with i8mm only
grep -q '	smmla	' "$work/q4_0-rows-aarch64-neon-dotprod-i8mm.s" || fail "aarch64-neon-dotprod-i8mm: no smmla"
grep -q '	usmmla	' "$work/u8-rows-aarch64-neon-dotprod-i8mm.s" || fail "aarch64-neon-dotprod-i8mm: no usmmla"
for t in aarch64-neon aarch64-neon-dotprod; do
    grep -qE '	(smmla|usmmla|ummla)	' "$work/q4_0-rows-$t.s" "$work/u8-rows-$t.s" &&
        fail "$t: a matrix multiply (smmla) without i8mm"
done
# the database's schedules are the ones the library's kernels got: a
# panel kernel (tm=3 tn=3) and a row one (tm=5 tn=3, smmla)
for tuned in "matmul n=35 k=96 w=q4_0 compute=int8" "matmul n=35 k=96 w=q4_0 outliers=act:6 compute=int8"; do
    # shellcheck disable=SC2086
    "$qkc" compile $tuned --target aarch64-neon-dotprod-i8mm --emit asm >"$work/heuristic.s" ||
        fail "assembly of $tuned"
    # shellcheck disable=SC2086
    "$qkc" compile $tuned --target aarch64-neon-dotprod-i8mm --db "$db" --emit asm >"$work/tuned.s" ||
        fail "assembly of $tuned with $db"
    cmp -s "$work/heuristic.s" "$work/tuned.s" && fail "$db: its schedule for $tuned was not taken"
    case $tuned in
    *outliers*) grep -q '	smmla	' "$work/tuned.s" || fail "$tuned, tm=5 tn=3: no smmla" ;;
    *) grep -q '	sdot	' "$work/tuned.s" || fail "$tuned, tm=3 tn=3: no sdot" ;;
    esac
done

step "cross-build the runtime and the test program ($cross)"
set -- -S "$src/tests/cross" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64-linux-gnu.cmake" \
    -DQKC_CROSS_CC="$cross" -DQKC_CROSS_SYSROOT="$sysroot" -DQKC_KERNELS_LIB="$work/libcross.a" \
    -DQKC_KERNELS_INCLUDE="$work"
[ -n "$generator" ] && set -- "$@" -G "$generator"
"$cmake" "$@" >"$work/configure.log" 2>&1 || {
    cat "$work/configure.log" >&2
    fail "configuring tests/cross"
}
"$cmake" --build "$work/build" >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    fail "building tests/cross"
}
prog="$work/build/aarch64_kernels"
file "$prog" 2>/dev/null | grep -q aarch64 || head -c 20 "$prog" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46020101' ||
    fail "$prog is not an ELF program"
built=$(date +%s)

run() { # CPU EXPECTED-DEFAULT RAN-AT-LEAST
    step "qemu-aarch64 -cpu $1: every variant it runs matches the reference; dispatch picks $2"
    if ! "$qemu" -L "$sysroot" -cpu "$1" "$prog" --expect-default "$2" --ran-at-least "$3" >"$work/run-$1.txt" 2>&1; then
        grep -v '^ok ' "$work/run-$1.txt" >&2
        fail "-cpu $1"
    fi
    grep -v '^ok \|^refused ' "$work/run-$1.txt"
}
run max aarch64-neon-dotprod-i8mm "$kernels"
run neoverse-n1 aarch64-neon-dotprod $((nspecs * 2))
run cortex-a53 aarch64-neon "$nspecs"
grep -q "^refused aarch64-neon-dotprod-i8mm | .*needs i8mm, which this CPU lacks" "$work/run-neoverse-n1.txt" ||
    fail "-cpu neoverse-n1: the i8mm variants were not refused for the missing feature"
[ "$(grep -c '^refused ' "$work/run-cortex-a53.txt")" -eq $((nspecs * 2)) ] ||
    fail "-cpu cortex-a53: expected the $((nspecs * 2)) dotprod variants refused"
end=$(date +%s)
echo "aarch64_test: ok: $kernels kernels ($nspecs specs x 3 targets); compile $((compiled - start)) s, cross-build $((built - compiled)) s, qemu $((end - built)) s"
