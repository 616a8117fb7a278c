#!/bin/sh
# Install what qkc needs to build and test on Debian 12, and nothing else.
# Silent when everything is already installed. Runs apt-get as root, or
# through sudo when not root. With --test, also what only tests use:
# chromium (renders the roofline SVG of `qkc bench --plot` to check it) and
# zlib (reads that screenshot), and the aarch64 cross tools and qemu-user
# (tests/aarch64_test.sh, tests/aarch64_jit_test.sh), and clang (the
# compile-only clang build of scripts/build-matrix.sh); then it fetches the
# arm64 libraries of the aarch64 JIT test (scripts/aarch64-sysroot.sh, into
# $QKC_AARCH64_SYSROOT or ~/.cache/qkc-aarch64-sysroot; skipped when
# already there; a failure there only warns: that test then skips).
set -eu

pkgs="cmake ninja-build pkg-config gcc g++ llvm-19-dev libcmocka-dev libjansson-dev"
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs chromium zlib1g-dev gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

install_missing() {
    [ -z "$missing" ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "qkc: missing packages:$missing (install them with your package manager)" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "qkc: missing packages:$missing; run this script as root to install them" >&2
            exit 1
        fi
    fi
    echo "qkc: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
install_missing

# The arm64 sysroot needs no root (apt runs on its own state directories).
if [ "${1:-}" = "--test" ]; then
    sh "$(dirname "$0")/aarch64-sysroot.sh" ||
        echo "qkc: warning: no arm64 sysroot (see above): the aarch64_jit test will skip" >&2
fi
