#!/usr/bin/env bash
# Configures and builds the release preset; the binary is build/cloudmerge.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f build/CMakeCache.txt ]] || cmake --preset release >/dev/null
cmake --build build -j"$(nproc)"
