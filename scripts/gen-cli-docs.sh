#!/bin/sh
# Write docs/cli.md from the qkc tool's own help texts, so the two never
# disagree. Usage: sh scripts/gen-cli-docs.sh [path/to/qkc] > docs/cli.md
set -eu
qkc=${1:-build/qkc}
echo "# The qkc command-line tool"
echo
echo "Every subcommand prints its help with \`qkc COMMAND --help\`; this page shows the same texts."
echo "Exit status: 0 on success, 1 when a check or run fails, 2 on a usage error."
echo
echo '```'
"$qkc" help
echo '```'
for c in check demo bench compile targets inspect run formats version; do
    echo
    echo "## qkc $c"
    echo
    echo '```'
    "$qkc" "$c" --help
    echo '```'
done
