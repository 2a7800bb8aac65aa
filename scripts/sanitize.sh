#!/usr/bin/env bash
# Builds cloudmerge and its tests with a sanitizer preset and runs the whole
# ctest suite against the sanitized binaries (the e2e suites get CLOUDMERGE_BIN
# from ctest, so they run the sanitized cloudmerge too).
#   scripts/sanitize.sh asan   AddressSanitizer + UndefinedBehaviorSanitizer, build-asan/
#   scripts/sanitize.sh tsan   ThreadSanitizer, build-tsan/
# Extra arguments go to ctest (e.g. -R e2e_conformance). Any sanitizer report
# fails the test that triggered it (halt_on_error / abort_on_error below).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-}"
case "$preset" in
  asan|tsan) shift ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2; exit 2 ;;
esac
scripts/install-deps.sh >/dev/null

# Reports must fail tests, not scroll by: stop at the first error, with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

cmake --preset "$preset" >/dev/null
cmake --build "build-$preset"
start=$(date +%s)
status=0
ctest --test-dir "build-$preset" --output-on-failure "$@" || status=$?
echo "sanitize.sh: $preset ctest wall time $(( $(date +%s) - start ))s, exit $status"
exit $status
