#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang + ASan + UBSan in build-fuzz/
# and runs each for SECONDS (default 20), starting from fuzz/corpus/<name>/.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     e.g. scripts/fuzz.sh 180 merge events
# New interesting inputs collect in build-fuzz/corpus/<name>/ (not in the
# repository); a crash leaves build-fuzz/crashes/<name>-crash-* and makes the
# script fail: fix it, then copy the input into fuzz/corpus/<name>/ so that
# ctest (fuzz_replay_<name>) replays it on every CI run.
# Needs clang and libclang-rt-14-dev: scripts/install-deps.sh --fuzz installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(tokenizer key_types s3_xml events job_spec check_key merge spill_reader)

scripts/install-deps.sh --fuzz >/dev/null
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found; run scripts/install-deps.sh --fuzz" >&2; exit 2; }
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$flags" -DCLOUDMERGE_FUZZ=ON -DCLOUDMERGE_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target "${harnesses[@]/%/_fuzz}"

mkdir -p build-fuzz/crashes build-fuzz/logs
failed=()
for h in "${harnesses[@]}"; do
  work="build-fuzz/corpus/$h"
  mkdir -p "$work"
  log="build-fuzz/logs/$h.log"
  echo "fuzz.sh: $h for ${seconds}s (log: $log)"
  # -rss_limit_mb: the merge harness holds two copies of its inputs; 2 GB is libFuzzer's default.
  if ! "build-fuzz/fuzz/${h}_fuzz" "$work" "fuzz/corpus/$h" -max_total_time="$seconds" -timeout=10 \
       -max_len=4096 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$h-" >"$log" 2>&1; then
    failed+=("$h")
    echo "fuzz.sh: $h FAILED; the input is in build-fuzz/crashes/$h-*; see $log" >&2
  fi
  # One summary line: executions, speed, coverage, features, corpus.
  grep -E "^#[0-9]+\s+(DONE|pulse)" "$log" | tail -1 || true
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$log" | tr '\n' ' '; echo
done
if ((${#failed[@]})); then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ok (${#harnesses[@]} harness(es), ${seconds}s each, no crash)"
