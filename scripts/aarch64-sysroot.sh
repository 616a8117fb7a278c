#!/bin/sh
# Fetch the arm64 libraries the whole of qkc links and runs with on aarch64
# (libLLVM-19 and its runtime dependencies, cmocka, jansson) from Debian 12
# into a sysroot directory, for the cross build of tests/aarch64_jit_test.sh
# (cmake/aarch64-linux-gnu-full.cmake). The system is left as it is: apt
# runs with its own lists, cache and an empty dpkg status under the sysroot's
# .apt/, the architecture is given on the command line (no dpkg
# --add-architecture), and each package is unpacked with dpkg -x, not
# installed. Needs no root, only the network and the system's apt sources
# (deb.debian.org bookworm carries arm64). libc6:arm64 comes with the
# closure: programs run on its loader and libc (qemu-aarch64 -L DIR).
# About 7 s and 220 MB.
#
# Usage: sh scripts/aarch64-sysroot.sh [DIR]
#   DIR defaults to $QKC_AARCH64_SYSROOT, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/qkc-aarch64-sysroot.
# Idempotent: when DIR/.complete exists and names the same package list,
# it does nothing. The libraries land in DIR/usr/lib/aarch64-linux-gnu
# (with a libLLVM.so link for the linker); the C headers of LLVM are the
# host's (llvm-c/ is the same on every architecture).
set -eu

dir=${1:-${QKC_AARCH64_SYSROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/qkc-aarch64-sysroot}}
# libllvm19's closure is resolved by apt; these are added as they are.
roots="libllvm19 libcmocka0 libcmocka-dev libjansson4 libjansson-dev"
stamp="$dir/.complete"

if [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$roots" ]; then
    exit 0
fi
for tool in apt-get apt-cache dpkg; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "qkc: aarch64-sysroot: no $tool (needs Debian's apt and dpkg)" >&2
        exit 1
    }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt="$dir/.apt"
rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
: >"$apt/status"
# arm64 only, our own state: the host's installed packages do not count
# (an empty status), so the closure is complete for an empty sysroot.
set -- -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
    -o Dir::State::Lists="$apt/lists" -o Dir::State::Status="$apt/status" \
    -o Dir::Cache="$apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root

echo "qkc: aarch64-sysroot: apt-get update (arm64 lists in $apt)" >&2
apt-get "$@" -qq update >"$apt/update.log" 2>&1 || {
    cat "$apt/update.log" >&2
    echo "qkc: aarch64-sysroot: apt-get update failed (network?)" >&2
    exit 1
}
# The runtime closure: Depends and Pre-Depends, recursively; virtual
# packages (<name>) are provided by a real one that is listed too.
pkgs=$(apt-cache "$@" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances libllvm19 | grep -v '^ ' | grep -v '^<' | sort -u)
[ -n "$pkgs" ] || {
    echo "qkc: aarch64-sysroot: could not resolve libllvm19's dependencies for arm64" >&2
    exit 1
}
# shellcheck disable=SC2086 # one word per package
pkgs=$(printf '%s\n' $pkgs libcmocka0 libcmocka-dev libjansson4 libjansson-dev | sort -u)

echo "qkc: aarch64-sysroot: downloading $(echo "$pkgs" | tr '\n' ' ')" >&2
# shellcheck disable=SC2086 # one word per package
(cd "$apt/debs" && apt-get "$@" -qq download $pkgs) >"$apt/download.log" 2>&1 || {
    cat "$apt/download.log" >&2
    echo "qkc: aarch64-sysroot: apt-get download failed" >&2
    exit 1
}
for deb in "$apt/debs"/*.deb; do
    dpkg -x "$deb" "$dir"
done

lib="$dir/usr/lib/aarch64-linux-gnu"
llvm=""
for f in "$lib"/libLLVM.so.19* "$lib"/libLLVM-19.so*; do
    [ -e "$f" ] && llvm=${f##*/} && break
done
[ -n "$llvm" ] || {
    echo "qkc: aarch64-sysroot: libllvm19 unpacked no libLLVM in $lib" >&2
    exit 1
}
ln -sf "$llvm" "$lib/libLLVM.so"
rm -rf "$apt/debs" "$apt/cache"
{
    echo "$roots"
    echo "$pkgs" | tr '\n' ' '
    echo
} >"$stamp"
echo "qkc: aarch64-sysroot: ready in $dir" >&2
