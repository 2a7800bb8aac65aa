#!/usr/bin/env bash
# README command (b): install, build, and run every test (unit + end-to-end).
# The end-to-end suites need ../shared (the oracle and the conformance cases).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2
