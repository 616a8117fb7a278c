#!/bin/sh
# Compare the code two qkc binaries generate: every spec of a fixed set on
# every target (x86-64 AVX2, AVX-512, AVX-512 VNNI, this machine's host
# target, AArch64 NEON, +dotprod, +i8mm, NVPTX sm80/sm90), as LLVM IR and
# as assembly (PTX on nvptx). Prints each difference and exits 1 when
# there is any, 0 when every output is byte-identical.
#
#   sh scripts/codegen-diff.sh OLD_QKC NEW_QKC [WORKDIR]
#
# A spec a target refuses must be refused by both binaries with the same
# message. WORKDIR (default: a fresh directory under ${TMPDIR:-/tmp})
# keeps the outputs for inspection.
set -u

if [ $# -lt 2 ]; then
    echo "usage: sh scripts/codegen-diff.sh OLD_QKC NEW_QKC [WORKDIR]" >&2
    exit 2
fi
old=$1
new=$2
work=${3:-$(mktemp -d "${TMPDIR:-/tmp}/qkc-codegen-diff.XXXXXX")}
mkdir -p "$work/old" "$work/new" || exit 2

targets="x86_64-avx2 x86_64-avx512 x86_64-avx512-vnni host aarch64-neon aarch64-neon-dotprod
aarch64-neon-dotprod-i8mm nvptx-sm80 nvptx-sm90"

# One spec per line: a short name, then the spec.
specs='q4_0      matmul n=64 k=256 w=q4_0
q4_0_i8   matmul n=64 k=256 w=q4_0 compute=int8
q4_0_m8   matmul n=64 k=256 m=8 w=q4_0
q8_0      matmul n=64 k=256 w=q8_0 compute=int8
q8_0_f    matmul n=64 k=256 w=q8_0
q4_k      matmul n=64 k=256 w=q4_k
q4_k_i8   matmul n=64 k=256 w=q4_k compute=int8
q6_k      matmul n=64 k=256 w=q6_k
q6_k_i8   matmul n=64 k=256 w=q6_k compute=int8
iq4_nl    matmul n=64 k=256 w=iq4_nl
iq4_nl_i8 matmul n=64 k=256 w=iq4_nl compute=int8
nf4_bnb   matmul n=64 k=256 w=nf4_bnb
nf4_dq    matmul n=64 k=256 a=bf16 w=nf4_bnb:dq compute=bf16
gptq4     matmul n=64 k=256 w=gptq:4 group=128
gptq4_i8  matmul n=64 k=256 w=gptq:4 group=128 compute=int8
gptq8_ao  matmul n=64 k=256 w=gptq:8:actorder group=128
vq        matmul n=64 k=256 w=vq vq=4:8
vq8       matmul n=64 k=256 w=vq vq=8:12 table=f32
mixed     matmul n=256 k=256 w=mixed bits=4x96,8x32,2x128 group=32 scale=f16 zero=int
int4_i8   matmul n=64 k=256 w=int4 group=32 scale=f16 compute=int8
int4_zero matmul n=64 k=256 w=int4 group=32 scale=f16 zero=int compute=int8
int8_i8   matmul n=64 k=256 w=int8 group=32 scale=f16 zero=int compute=int8
fp8       matmul n=64 k=256 w=fp8e4m3 group=32 scale=f16
fp8e5m2   matmul n=64 k=256 a=f16 w=fp8e5m2 group=32 scale=f16 compute=f16
lut4_t    matmul n=64 k=256 w=lut4 table=f16 group=tensor
lut4_c    matmul n=64 k=256 w=lut4 table=f32 group=64
nf4_g     matmul n=64 k=256 m=4 w=nf4 group=64 scale=f16
mxfp4     matmul n=64 k=256 w=mxfp4
outl_sp   matmul n=64 k=256 w=int4 group=32 scale=f16 outliers=sparse:0.01
outl_bf   matmul n=64 k=256 a=bf16 w=int4 group=32 scale=f16 outliers=sparse:0.01 compute=bf16
outl_act  matmul n=64 k=256 w=int8 group=32 scale=f16 compute=int8 outliers=act:6
lora      matmul n=64 k=256 w=q4_0 lora=16:bf16
gelu      matmul n=64 k=256 w=q4_0 bias=f32 act=gelu
silu_bf16 matmul n=64 k=256 w=q4_k act=silu out=bf16
relu_f16  matmul n=64 k=256 w=q8_0 act=relu out=f16
bf16_c    matmul n=64 k=256 a=bf16 w=q4_0 compute=bf16 out=bf16
f16_c     matmul n=64 k=256 a=f16 w=q4_k compute=f16
tf32_c    matmul n=64 k=256 w=q6_k compute=tf32 m=32
tail      matmul n=37 k=200 w=int4 group=40 scale=f32'

status=0
count=0
echo "$specs" | while read -r label spec; do
    for t in $targets; do
        for emit in ll asm; do
            f="$label.$t.$emit"
            # shellcheck disable=SC2086 # the spec's words are separate arguments
            "$old" compile $spec --target "$t" --emit "$emit" -o "$work/old/$f" > "$work/old/$f.err" 2>&1
            echo "rc=$?" >> "$work/old/$f.err"
            # shellcheck disable=SC2086
            "$new" compile $spec --target "$t" --emit "$emit" -o "$work/new/$f" > "$work/new/$f.err" 2>&1
            echo "rc=$?" >> "$work/new/$f.err"
        done
    done
done

for f in "$work"/old/*; do
    b=$(basename "$f")
    case $b in *.err) ;; *) count=$((count + 1)) ;; esac
    if ! cmp -s "$f" "$work/new/$b"; then
        echo "DIFF $b"
        diff "$f" "$work/new/$b" | head -20
        status=1
    fi
done
for f in "$work"/new/*; do
    if [ ! -e "$work/old/$(basename "$f")" ]; then
        echo "ONLY NEW $(basename "$f")"
        status=1
    fi
done
refused=$(grep -l 'rc=[1-9]' "$work"/old/*.err | wc -l)
echo "codegen-diff: $count outputs and their messages compared ($refused compiles refused), in $work"
if [ $status = 0 ]; then
    echo "codegen-diff: identical"
fi
exit $status
