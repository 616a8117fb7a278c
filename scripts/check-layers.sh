#!/bin/sh
# Checks the library's layers (docs/architecture.md, "Layers").
#
#   sh scripts/check-layers.sh [ROOT]
#
# Every library folder has a README.md with one line
#
#   May include: A, B, C          (or "(nothing but itself ...)")
#
# naming the folders its sources may include. This script fails, naming
# file and line, when
#   - a .c/.h/.inc/.def file includes "X/..." for a folder X that is
#     neither its own, the public header (qkc/) nor on that line;
#   - a file includes a header of its own tree by bare name ("foo.h" where
#     FOLDER/foo.h exists): every include is written from the root;
#   - the arrows the README lines declare form a cycle;
#   - a folder lacks its README.md or the line;
#   - a folder other than codegen/ and compiler/ includes an LLVM header
#     (<llvm-c/...>): libqkc_rt and libqkc_files never link LLVM;
#   - a library source other than core/config.c calls getenv (the
#     environment is read once, into the context: core/config.def);
#   - a file of codegen/ or compiler/ other than the ISA tables
#     (codegen/isa*) tests the architecture (QKC_ARCH_*): code generation
#     asks its target's ISA table (codegen/isa.h).
# ROOT defaults to the source tree this script is in. The test `layers`
# runs it (and `layers_negative` checks that it fails on a bad include).
set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
layers="ir targets core formats cache runtime files codegen compiler"
llvm_layers="codegen compiler"
status=0
edges=$(mktemp) || exit 1
trap 'rm -f "$edges"' EXIT

for dir in $layers; do
    readme=$root/$dir/README.md
    if [ ! -f "$readme" ]; then
        echo "layers: $dir/README.md is missing (it must say what $dir/ may include)" >&2
        status=1
        continue
    fi
    line=$(sed -n 's/^May include: *//p' "$readme" | head -n 1)
    if [ -z "$line" ] && ! grep -q '^May include:' "$readme"; then
        echo "layers: $dir/README.md has no 'May include:' line" >&2
        status=1
        continue
    fi
    allowed=" $dir qkc "
    case $line in
    '('*) ;;
    *)
        for a in $(echo "$line" | tr ',' ' '); do
            case " $layers " in
            *" $a "*) ;;
            *)
                echo "layers: $dir/README.md names '$a', which is not a library folder ($layers)" >&2
                status=1
                ;;
            esac
            allowed="$allowed$a "
            echo "$a $dir" >> "$edges"
        done
        ;;
    esac
    echo "$dir $dir" >> "$edges"
    for f in "$root/$dir"/*.c "$root/$dir"/*.h "$root/$dir"/*.inc "$root/$dir"/*.def; do
        [ -f "$f" ] || continue
        rel=${f#"$root"/}
        # "N:path" for every quoted include
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1:\2/' > "$edges.inc"
        while IFS=: read -r n path; do
            case $path in
            */*)
                top=${path%%/*}
                case $allowed in
                *" $top "*) ;;
                *)
                    echo "$rel:$n: includes \"$path\": $dir/ may include only$(echo "$allowed" | sed "s/ $dir / /") (its README.md)" >&2
                    status=1
                    ;;
                esac
                ;;
            *)
                if [ -f "$root/$dir/$path" ]; then
                    echo "$rel:$n: includes \"$path\" by bare name: write \"$dir/$path\"" >&2
                    status=1
                fi
                ;;
            esac
        done < "$edges.inc"
        rm -f "$edges.inc"
        case " $llvm_layers " in
        *" $dir "*) ;;
        *)
            grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*<llvm-c/' "$f" | while IFS=: read -r n _; do
                echo "$rel:$n: includes an LLVM header: only $llvm_layers may" >&2
            done
            grep -q '^[[:space:]]*#[[:space:]]*include[[:space:]]*<llvm-c/' "$f" && status=1
            ;;
        esac
    done
done

# getenv: core/config.c only
for dir in $layers; do
    for f in "$root/$dir"/*.c "$root/$dir"/*.h "$root/$dir"/*.inc; do
        [ -f "$f" ] || continue
        rel=${f#"$root"/}
        [ "$rel" = core/config.c ] && continue
        if grep -n 'getenv *(' "$f" > "$edges.env"; then
            sed "s|^\([0-9]*\):.*|$rel:\1: calls getenv: read the variable through core/config.def and qkc_context_config|" "$edges.env" >&2
            status=1
        fi
        rm -f "$edges.env"
    done
done

# QKC_ARCH_ in the code generator and the driver: codegen/isa* only
for f in "$root"/codegen/*.c "$root"/codegen/*.h "$root"/compiler/*.c "$root"/compiler/*.h; do
    [ -f "$f" ] || continue
    rel=${f#"$root"/}
    case $rel in codegen/isa*) continue ;; esac
    if grep -n 'QKC_ARCH_' "$f" > "$edges.arch"; then
        sed "s|^\([0-9]*\):.*|$rel:\1: tests the architecture: ask the target's ISA table (codegen/isa.h)|" "$edges.arch" >&2
        status=1
    fi
    rm -f "$edges.arch"
done

# tsort reports a loop in the declared arrows on stderr.
if ! tsort "$edges" > /dev/null 2> "$edges.err" || [ -s "$edges.err" ]; then
    echo "layers: the folders' 'May include' lines form a cycle:" >&2
    cat "$edges.err" >&2
    status=1
fi
rm -f "$edges.err"
[ "$status" -eq 0 ] && echo "layers: $(echo $layers | wc -w) folders, every include on an allowed arrow, no cycle, getenv in core/config.c only, QKC_ARCH_ in codegen/isa* only"
exit "$status"
