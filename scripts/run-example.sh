#!/usr/bin/env bash
# README command (a): install, build, and run the main job on the bundled example data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
mkdir -p out
build/cloudmerge merge examples/x_list.txt examples/y_list.txt -o out/merged.tsv --stats
echo
echo "First rows of the result:"
head -n 6 out/merged.tsv
echo
echo "Result: $(pwd)/out/merged.tsv ($(($(wc -l < out/merged.tsv) - 1)) rows)"
