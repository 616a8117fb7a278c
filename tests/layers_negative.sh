#!/bin/sh
# scripts/check-layers.sh must fail on a tree that breaks its rules: a
# copy of the folders' README.md files with, in turn, a forbidden include,
# a bare-name include, a cycle in the declared arrows, an LLVM header below
# the compiler, a getenv outside core/config.c, an architecture test
# outside the ISA tables and a missing README.md.
#   sh tests/layers_negative.sh SOURCE_DIR
set -u
src=$1
check=$src/scripts/check-layers.sh
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "layers_negative: $*" >&2; exit 1; }

fresh() {
    rm -rf "$work/t"
    for d in ir targets core formats cache runtime files codegen compiler; do
        mkdir -p "$work/t/$d" && cp "$src/$d/README.md" "$work/t/$d/" || fail "copying $d/README.md"
    done
    printf '#include "ir/spec.h"\n' > "$work/t/formats/ok.c"
}

fresh
sh "$check" "$work/t" > /dev/null 2>&1 || fail "a tree with allowed includes only was refused"

# the runtime must not include the compiler driver (LLVM)
printf '#include "core/context.h"\n#include "compiler/jit.h"\n' > "$work/t/runtime/bad.c"
out=$(sh "$check" "$work/t" 2>&1) && fail "runtime/ including compiler/ was accepted"
echo "$out" | grep -q 'runtime/bad.c:2: includes "compiler/jit.h"' || fail "unexpected message: $out"

fresh
printf 'x\n' > "$work/t/core/io.h"
printf '#include "io.h"\n' > "$work/t/core/user.c"
out=$(sh "$check" "$work/t" 2>&1) && fail "a bare-name include was accepted"
echo "$out" | grep -q 'core/user.c:1: includes "io.h" by bare name' || fail "unexpected message: $out"

fresh
sed -i 's/^May include:.*/May include: runtime/' "$work/t/ir/README.md"
out=$(sh "$check" "$work/t" 2>&1) && fail "a cycle (ir -> runtime -> ir) was accepted"
echo "$out" | grep -q 'form a cycle' || fail "unexpected message: $out"

fresh
printf '#include <llvm-c/Core.h>\n' > "$work/t/runtime/llvm.c"
out=$(sh "$check" "$work/t" 2>&1) && fail "runtime/ including an LLVM header was accepted"
echo "$out" | grep -q 'runtime/llvm.c:1: includes an LLVM header' || fail "unexpected message: $out"

fresh
printf 'const char *f(void) { return getenv("QKC_X"); }\n' > "$work/t/files/env.c"
out=$(sh "$check" "$work/t" 2>&1) && fail "getenv outside core/config.c was accepted"
echo "$out" | grep -q 'files/env.c:1: calls getenv' || fail "unexpected message: $out"

fresh
printf 'int f(int a) { return a == QKC_ARCH_X86_64; }\n' > "$work/t/codegen/lower.c"
out=$(sh "$check" "$work/t" 2>&1) && fail "an architecture test in codegen/lower.c was accepted"
echo "$out" | grep -q 'codegen/lower.c:1: tests the architecture' || fail "unexpected message: $out"

fresh
rm "$work/t/cache/README.md"
sh "$check" "$work/t" > /dev/null 2>&1 && fail "a folder without README.md was accepted"
echo "layers_negative: a forbidden include, a bare-name include, a cycle, an LLVM header outside codegen/ and compiler/, getenv outside core/config.c, an architecture test outside codegen/isa* and a missing README.md are each refused"
