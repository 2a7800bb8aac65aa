#!/usr/bin/env bash
# Builds cloudmerge and its tests with a sanitizer and runs ctest against the
# sanitized binaries. The e2e suites get CLOUDMERGE_BIN (and NOTIFY_TOOL, the
# Lambda bootstrap, ...) from ctest, so they run the sanitized programs too.
#   scripts/sanitize.sh asan [ctest args...]   ASan + UBSan, build-asan/
#   scripts/sanitize.sh tsan [ctest args...]   ThreadSanitizer, build-tsan/
# Extra arguments go to ctest (e.g. -R e2e_conformance, -j2). scripts/test.sh
# (CI) runs both after the normal suite; docs/reliability.md says what runs where.
# CLOUDMERGE_SANITIZE_BUILD_DIR overrides the build directory.
#
# Any report fails CI: every sanitizer stops the process at its first report
# (ASan always, UBSan because the build uses -fno-sanitize-recover, TSan through
# halt_on_error), with a non-zero status that fails the C++ test that ran it; for
# processes started by the e2e suites, tests/e2e/conftest.py also collects the
# reports through log_path and fails the test (tests/sanitizers/ proves both).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
case "$kind" in
  asan) shift; cache=(-DCLOUDMERGE_SANITIZE=ON -DCLOUDMERGE_TSAN=OFF) ;;
  tsan) shift; cache=(-DCLOUDMERGE_SANITIZE=OFF -DCLOUDMERGE_TSAN=ON) ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2; exit 2 ;;
esac
dir="${CLOUDMERGE_SANITIZE_BUILD_DIR:-build-$kind}"
scripts/install-deps.sh >/dev/null

# Options: ours first, the caller's after them (the last value of an option
# wins). Suppressions come from tests/sanitizers/*.supp, each entry justified
# there; an empty file suppresses nothing. handle_abort: GCC's libubsan, loaded
# next to libasan, writes its diagnostic to stderr whatever log_path says, so a
# UBSan abort in a process whose stderr no one reads would leave no trace; ASan's
# SIGABRT report (with the __ubsan_handle_* frame and the source line) goes to
# log_path, where tests/e2e/conftest.py finds it. It also reports an uncaught
# exception (std::terminate) in any sanitized process.
supp="$PWD/tests/sanitizers"
# Tells the e2e suites which sanitizer they run under (tests/e2e/conftest.py:
# tests marked rss_bound are skipped, their RSS bound cannot hold).
export CLOUDMERGE_SANITIZER="$kind"
export ASAN_OPTIONS="abort_on_error=1:handle_abort=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:suppressions=$supp/asan.supp${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

# RelWithDebInfo for line numbers in reports; CMakeLists.txt adds -O1.
start=$(date +%s)
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cache[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
built=$(date +%s)
status=0
ctest --test-dir "$dir" --output-on-failure "$@" || status=$?
echo "sanitize.sh: $kind build $((built - start))s, ctest $(( $(date +%s) - built ))s (wall), exit $status"
exit $status
