#!/usr/bin/env bash
# Installs AWS's Lambda Runtime Interface Emulator (aws-lambda-rie) into
# .tools/bin, for tests/e2e/test_lambda_rie.py. Idempotent: does nothing when
# the pinned build is already there.
#
# The emulator's release tags (v1.x) are not Go-semver module versions, so the
# Go module proxy serves it only by pseudo-version: we pin one commit. To move
# the pin, change RIE_VERSION to another pseudo-version of the master branch
# (v0.0.0-YYYYMMDDhhmmss-<12 hex of the commit>).
set -euo pipefail

RIE_MODULE=github.com/aws/aws-lambda-runtime-interface-emulator
RIE_VERSION=${RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/.tools/bin"
STAMP="$BIN_DIR/.aws-lambda-rie.version"

if [[ -x "$BIN_DIR/aws-lambda-rie" && -f "$STAMP" && "$(cat "$STAMP")" == "$RIE_VERSION" ]]; then
  echo "aws-lambda-rie $RIE_VERSION already installed in $BIN_DIR"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "install-rie.sh: the Go toolchain is needed (apt-get install golang-go, or the machine's go)." >&2
  exit 1
fi

mkdir -p "$BIN_DIR"
# One package at a time: the machine's 2 cores are shared. Static (no cgo),
# as AWS builds it.
GOBIN="$BIN_DIR" GOFLAGS="$(go env GOFLAGS) -p=1" CGO_ENABLED=0 \
  go install "$RIE_MODULE/cmd/aws-lambda-rie@$RIE_VERSION"
echo "$RIE_VERSION" >"$STAMP"
# (aws-lambda-rie has no --version: any argument is taken as the bootstrap.)
echo "installed aws-lambda-rie $RIE_VERSION into $BIN_DIR"
