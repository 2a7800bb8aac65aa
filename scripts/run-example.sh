#!/usr/bin/env bash
# README command (a): install, build, and run the main job on the bundled example data,
# first as a direct merge, then through the pipeline in its embedded, no-cloud mode
# (`cloudmerge serve --local`): a job folder in, result + report + emails out.
# Installs only what building and running need (scripts/test.sh installs the test tools)
# and builds only the engine, without the tests: the first result in about a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/install-deps.sh --build-only
scripts/build.sh --engine-only >/dev/null
echo "run-example: installed and built in $(( $(date +%s) - start )) s"
mkdir -p out
build/cloudmerge merge examples/x_list.txt examples/y_list.txt -o out/merged.tsv --stats
echo
echo "First rows of the result:"
head -n 6 out/merged.tsv
echo
echo "Result: $(pwd)/out/merged.tsv ($(($(wc -l < out/merged.tsv) - 1)) rows)"

# The pipeline: drop the two files into a job folder, run what is ready.
rm -rf out/pipeline
mkdir -p out/pipeline/input/example
cp examples/x_list.txt examples/y_list.txt out/pipeline/input/example/
echo
echo "Pipeline (cloudmerge serve --local out/pipeline --once), JSON log:"
build/cloudmerge serve --local out/pipeline --once --mail-to scientist@example.org | cut -c1-160
echo
echo "Pipeline result: $(pwd)/out/pipeline/output/example/merged.tsv"
echo "Run report:      $(pwd)/out/pipeline/output/example/report.html (and report.json)"
echo "Emails sent:     $(ls out/pipeline/outbox | sed "s|^|$(pwd)/out/pipeline/outbox/|" | tr '\n' ' ')"
