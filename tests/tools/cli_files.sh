#!/bin/sh
# Command-line tests of qkc on hostile files and inputs, one case per ctest
# test (tests/CMakeLists.txt: cli_files_<case>):
#
#   sh cli_files.sh CASE QKC MKFIXTURE [SANITIZE]
#
# QKC is the tool, MKFIXTURE tests/tools/mkfixture.c, SANITIZE the
# QKC_SANITIZE list of the build (empty in a plain build). Each case prints
# what it checks; exit 0 pass, 1 fail, 77 skipped (saying why).
set -u
case_=$1
qkc=$2
mk=$3
san=${4:-}
dir="cli_files_$case_"
rm -rf "$dir" && mkdir "$dir" && cd "$dir" || exit 1

fail() {
    echo "FAIL ($case_): $*"
    exit 1
}

# run CMD...: sets out (stdout and stderr) and rc
run() {
    out=$("$@" 2>&1)
    rc=$?
}

expect() { # expect RC TEXT: the last run exited RC and said TEXT
    [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1; output: $out"
    case $out in
    *"$2"*) ;;
    *) fail "the output does not say '$2': $out" ;;
    esac
}

case $case_ in
fifo)
    # A FIFO named like a model: refused at once, never waited on.
    mkfifo model.gguf || fail "mkfifo"
    run timeout 20 "$qkc" inspect model.gguf
    [ "$rc" -ne 124 ] || fail "qkc inspect hung on a FIFO"
    expect 1 "not a regular file"
    head -c 256 /dev/zero > x.f32
    run timeout 20 "$qkc" run auto --weights model.gguf:w --input x.f32 --output y.f32
    [ "$rc" -ne 124 ] || fail "qkc run hung on a FIFO"
    expect 1 "not a regular file"
    ;;
escapes)
    # Names and metadata are printed escaped: no raw ESC, BEL, C1 or NUL
    # reaches the terminal, and what they were is shown.
    "$mk" escapes e.gguf || fail "mkfixture"
    "$qkc" inspect e.gguf --metadata > out.txt 2> err.txt
    rc=$?
    [ "$rc" -eq 0 ] || fail "exit status $rc: $(cat err.txt)"
    for b in '\033' '\007' '\233' '\302\233' '\342\200\256'; do
        if LC_ALL=C grep -q "$(printf "$b")" out.txt; then
            fail "raw byte(s) $b in the output: $(od -c out.txt | head -20)"
        fi
    done
    [ "$(tr -d '\000' < out.txt | wc -c)" -eq "$(wc -c < out.txt)" ] || fail "a NUL byte in the output"
    for want in 'evil\x1b]0;pwned\x07.w' 'bidi\u202erevo.w' 'c1\u009b.w' 'raw\x9b.w' \
        'meta a\0hidden (string) = shown' 'red\x1b[31mtext\x9b' 'line1\nline2' '4 of 4 tensors run in qkc'; do
        grep -qF "$want" out.txt || fail "the output does not show '$want': $(cat out.txt)"
    done
    ;;
no_mmap)
    # --no-mmap and QKC_FILE_MMAP=0 read the file instead of mapping it:
    # the same listing and the same results.
    "$mk" plain p.gguf || fail "mkfixture"
    "$qkc" inspect p.gguf > mapped.txt || fail "inspect"
    "$qkc" inspect p.gguf --no-mmap > read.txt || fail "inspect --no-mmap"
    QKC_FILE_MMAP=0 "$qkc" inspect p.gguf > env.txt || fail "QKC_FILE_MMAP=0 inspect"
    cmp mapped.txt read.txt && cmp mapped.txt env.txt || fail "the listings differ"
    grep -q '^w  *Q8_0 .*runs: n=8 k=64 w=q8_0 (in place)' read.txt || fail "unexpected listing: $(cat read.txt)"
    head -c 512 /dev/urandom > x.f32
    "$qkc" run auto --weights p.gguf:w --input x.f32 --output y1.f32 2> /dev/null || fail "run"
    "$qkc" run auto --weights p.gguf:w --input x.f32 --output y2.f32 --no-mmap 2> /dev/null || fail "run --no-mmap"
    cmp y1.f32 y2.f32 || fail "run and run --no-mmap differ"
    run "$qkc" inspect p.gguf --no-map
    expect 2 "unknown option --no-map"
    ;;
module_reason)
    # A GPTQ module that does not run says why, not "no tensor named".
    "$mk" gptq-broken g.safetensors || fail "mkfixture"
    head -c 512 /dev/zero > x.f32
    run "$qkc" run auto --weights g.safetensors:m --input x.f32 --output y.f32
    expect 1 "tensor 'm.qweight' (I32) does not run in qkc: scales [3, 32] and qzeros [4, 4] disagree on the groups"
    ;;
check_nul)
    # qkc check - refuses input with a NUL instead of reading up to it.
    out=$(printf 'matmul n=8 k=32 w=q4_0\000 garbage' | "$qkc" check - 2>&1)
    rc=$?
    expect 1 "standard input holds a NUL byte at offset 22"
    out=$(printf 'matmul n=8 k=32 w=q4_0\n' | "$qkc" check - 2>&1)
    rc=$?
    expect 0 "matmul n=8 k=32 a=f32 w=q4_0 out=f32"
    ;;
strict_numbers)
    # Numeric options are whole numbers in range, nothing else: exit 2.
    "$mk" plain p.gguf || fail "mkfixture"
    head -c 256 /dev/zero > x.f32
    S="matmul n=8 k=32 w=q4_0"
    for args in "bench $S --reps 3x" "bench $S --reps 0" "bench $S --reps +3" "bench $S --m 1,x" "bench $S --m 1," \
        "bench $S --m 1,,2" "bench $S --threads 2x" "bench $S --m 99999999999999999999" \
        "demo $S --m 8x" "demo $S --m 0x10" "compile $S --emit asm --m 1e3" \
        "tune $S --threads 4x" "tune $S --budget 30x" "tune $S --budget inf" "tune $S --budget 1e3s" \
        "tune $S --budget 5.s" "tune $S --m 1,,2" \
        "run auto --weights p.gguf:w --input x.f32 --output y.f32 --m 2x"; do
        # shellcheck disable=SC2086 # the words are the arguments
        run "$qkc" $args
        [ "$rc" -eq 2 ] || fail "qkc $args: exit status $rc, expected 2 (usage); output: $out"
        case $out in
        *"error: --"*) ;;
        *) fail "qkc $args: no message naming the option: $out" ;;
        esac
    done
    run "$qkc" bench $S --reps " 3"
    expect 2 "--reps takes an integer from 1 to 100000"
    ;;
bench_pool)
    # The kernel's status reaches bench's exit status: with the address
    # space limited, a pool of 1000 threads (8 MiB of stack each) cannot
    # start; bench says so and exits 1 instead of printing a time and a NaN.
    case $san in
    *address* | *thread* | *memory*)
        echo "skipped: ulimit -v and the sanitizers' shadow memory do not mix (QKC_SANITIZE=$san)"
        exit 77
        ;;
    esac
    out=$( (ulimit -s 8192 && ulimit -v 1500000 && exec "$qkc" bench matmul n=1024 k=1024 w=q4_0 --threads 1000 --reps 3) 2>&1)
    rc=$?
    expect 1 "could not start thread"
    case $out in
    *nan*) fail "a NaN was printed: $out" ;;
    esac
    ;;
*)
    fail "unknown case"
    ;;
esac
echo "ok: $case_"
