# Shared by the tests that build against an installed qkc (install_test.sh,
# aot_test.sh); sourced, not run. The caller sets `name`, `build`, `cmake`
# and `work`; this gives step/fail and installs the build into
# $work/prefix (a fresh $work), setting `prefix`.
step() { echo "== $*"; }
fail() {
    echo "$name: FAILED: $*" >&2
    exit 1
}
prefix="$work/prefix"
rm -rf "$work"
mkdir -p "$work"
step "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    fail "cmake --install"
}
