#!/usr/bin/env bash
# Configures and builds the release preset; the binary is build/cloudmerge.
#   scripts/build.sh                the engine and the tests (scripts/test.sh)
#   scripts/build.sh --engine-only  the engine alone, without GoogleTest (scripts/run-example.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--engine-only" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake --preset release -DCLOUDMERGE_BUILD_TESTS=OFF >/dev/null
  cmake --build build -j"$(nproc)" --target cloudmerge
  exit 0
fi
# A build/ configured by --engine-only has no tests: turn them on.
if [[ ! -f build/CMakeCache.txt ]] || grep -q '^CLOUDMERGE_BUILD_TESTS:BOOL=OFF$' build/CMakeCache.txt; then
  cmake --preset release -DCLOUDMERGE_BUILD_TESTS=ON >/dev/null
fi
cmake --build build -j"$(nproc)"
