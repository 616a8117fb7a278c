#!/bin/sh
# qkc against llama.cpp's CPU backend, side by side in one run
# (docs/performance.md, "Against llama.cpp"). Opt-in: not a test, not CI.
#
#   sh bench/peers/run.sh [--build DIR] [--cache DIR] [DRIVER OPTIONS...]
#
#   --build DIR   qkc's configured build tree (default: $QKC_BUILD_DIR, else
#                 build/ beside this repository's top); the driver is built
#                 there as the opt-in target qkc_peers
#   --cache DIR   where the peer's package is fetched and unpacked (default:
#                 $QKC_PEERS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/qkc/peers)
#   the rest goes to the driver (bench/peers/peers.c): --n, --k, --formats,
#   --cases, --threads, --time, --variant, --target, --json FILE; see
#   `qkc_peers --help`
#
# It fetches the prebuilt llama.cpp of the npm package below with `npm pack`
# (once; checked against its SHA-256), unpacks it, builds the driver, and
# runs it on the package's ggml libraries. `ninja bench-peers` does the same
# (QKC_PEERS_DRIVER then names the driver it built). A missing npm, no
# network, or a machine the package was not built for stops it with a
# message and a non-zero status.
set -eu

package=@node-llama-cpp/linux-x64@3.22.1
tarball=node-llama-cpp-linux-x64-3.22.1.tgz
sha256=0d953e1503d5ab4608d8ed5b739132308c81ac05ffeb760d2a7f30e08a9f90e0

die() {
    echo "bench/peers: $*" >&2
    exit 1
}

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${QKC_BUILD_DIR:-$top/build}
cache=${QKC_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qkc/peers}
while [ $# -gt 0 ]; do
    case $1 in
    --build)
        [ $# -ge 2 ] || die "--build needs a directory"
        build=$2
        shift 2
        ;;
    --cache)
        [ $# -ge 2 ] || die "--cache needs a directory"
        cache=$2
        shift 2
        ;;
    *) break ;;
    esac
done

# The package holds x86-64 Linux builds only.
if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
    die "unsupported machine $(uname -s) $(uname -m): the peer package $package is built for Linux x86-64 only"
fi

# Fetch and unpack once; a later run reuses the unpacked tree.
unpacked=$cache/${tarball%.tgz}
libs=$unpacked/package/bins/linux-x64
if [ ! -f "$libs/libggml-base.so" ]; then
    mkdir -p "$cache" || die "cannot create the cache directory $cache"
    if [ ! -f "$cache/$tarball" ]; then
        command -v npm > /dev/null 2>&1 ||
            die "npm is not installed (Debian: apt-get install npm); it fetches $package into $cache"
        echo "bench/peers: fetching $package into $cache" >&2
        (cd "$cache" && npm pack --silent "$package" > /dev/null) ||
            die "npm pack $package failed (no network, or the registry is unreachable)"
        [ -f "$cache/$tarball" ] || die "npm pack did not write $cache/$tarball"
    fi
    if command -v sha256sum > /dev/null 2>&1; then
        got=$(sha256sum "$cache/$tarball" | cut -d ' ' -f 1)
        if [ "$got" != "$sha256" ]; then
            rm -f "$cache/$tarball"
            die "$cache/$tarball has SHA-256 $got, not $sha256: removed; run again to fetch it anew"
        fi
    else
        echo "bench/peers: warning: no sha256sum, the package is not checked" >&2
    fi
    rm -rf "$unpacked.tmp"
    mkdir -p "$unpacked.tmp"
    tar -xzf "$cache/$tarball" -C "$unpacked.tmp" || die "cannot unpack $cache/$tarball"
    rm -rf "$unpacked"
    mv "$unpacked.tmp" "$unpacked"
    [ -f "$libs/libggml-base.so" ] || die "the package has no bins/linux-x64/libggml-base.so: not the expected layout"
fi

# The driver: the one `ninja bench-peers` built, else build it here.
driver=${QKC_PEERS_DRIVER:-}
if [ -z "$driver" ]; then
    [ -f "$build/CMakeCache.txt" ] ||
        die "$build is not a configured qkc build tree (cmake -S . -B build -G Ninja), or pass --build DIR"
    cmake --build "$build" --target qkc_peers > /dev/null || die "building qkc_peers in $build failed"
    driver=$build/bench/qkc_peers
fi
[ -x "$driver" ] || die "no driver at $driver"

exec "$driver" --lib "$libs" "$@"
