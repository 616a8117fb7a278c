#!/bin/sh
# Install what qkc needs to build and test on Debian 12, and nothing else.
# Silent when everything is already installed. Runs apt-get as root, or
# through sudo when not root. With --test, also what only tests use:
# chromium (renders the roofline SVG of `qkc bench --plot` to check it) and
# zlib (reads that screenshot).
set -eu

pkgs="cmake ninja-build pkg-config gcc g++ llvm-19-dev libcmocka-dev libjansson-dev"
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs chromium zlib1g-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

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
