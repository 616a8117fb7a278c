#!/bin/sh
# `qkc bench --plot`: the SVG has one point per measured case, and a browser
# renders it with the points visible: chromium (headless) takes a
# screenshot and png_count counts the pixels of the points' colour, which
# nothing else in the picture uses (the same SVG without its points renders
# none). Exit 77 (skipped, with the reason) when chromium is not installed.
#
# Usage: sh tests/plot_test.sh QKC PNG_COUNT
set -eu
qkc=$1
png_count=$2
fail() {
    echo "plot_test: FAILED: $*" >&2
    exit 1
}
rm -rf plot_test && mkdir plot_test && cd plot_test
"$qkc" bench matmul n=256 k=512 w=q8_0 compute=int8 --m 1,8,64 --reps 5 --plot plot.svg >bench.txt ||
    fail "qkc bench --plot"
grep -q '^roofline plot: plot.svg$' bench.txt || fail "bench did not report the plot"
points=$(grep -c '<circle class="measured"' plot.svg || true)
[ "$points" -eq 3 ] || fail "plot.svg has $points points, expected 3 (M = 1, 8, 64)"
grep -q 'M=64 t=1' plot.svg || fail "plot.svg does not label the M=64 case"
grep -v '<circle class="measured"' plot.svg >empty.svg

browser=""
for b in chromium chromium-browser google-chrome; do
    command -v "$b" >/dev/null 2>&1 && browser=$b && break
done
if [ -z "$browser" ]; then
    echo "skipped: no chromium to render plot.svg (Debian: apt-get install chromium; sh scripts/bootstrap.sh --test)"
    exit 77
fi
shot() {
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$PWD/profile" \
        --window-size=800,560 --screenshot="$PWD/$2" "file://$PWD/$1" >"$2.log" 2>&1 || {
        cat "$2.log" >&2
        fail "$browser could not render $1"
    }
    [ -s "$2" ] || fail "$browser wrote no $2"
}
shot plot.svg plot.png
shot empty.svg empty.png
red=$("$png_count" plot.png d62728) || fail "png_count plot.png"
none=$("$png_count" empty.png d62728) || fail "png_count empty.png"
echo "point-coloured pixels: $red with the 3 points, $none without"
# a point is a disc of radius 7: about 150 pixels, most of them exactly its colour
[ "$red" -ge 300 ] || fail "the screenshot shows $red point pixels; 3 points give at least 300"
[ "$none" -eq 0 ] || fail "$none point-coloured pixels without points: the count does not measure the points"
echo "plot_test: ok"
