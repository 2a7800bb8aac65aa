#!/usr/bin/env bash
# Installs everything cloudmerge needs to build, test and benchmark on Debian 12.
# Idempotent: a second run checks and returns in a few seconds.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the benchmark peers (DuckDB, Polars) in .venv
#   scripts/install-deps.sh --fuzz   also clang + libFuzzer (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

want_bench=0
[[ "${1:-}" == "--bench" ]] && want_bench=1
want_fuzz=0  # --fuzz: clang and libFuzzer for scripts/fuzz.sh (not needed by the default build)
[[ " $* " == *" --fuzz "* ]] && want_fuzz=1

# C++ toolchain and libraries from Debian; the oracle's pandas is Debian's 1.5.3
# (the version that made ../shared/conformance's expected files).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config
  libcli11-dev libfmt-dev libxxhash-dev libgtest-dev
  libcurl4-openssl-dev libssl-dev libpugixml-dev nlohmann-json3-dev zlib1g-dev libzstd-dev
  python3 python3-venv python3-pandas python3-numpy time zstd
  chromium)  # headless, for the dashboard's and report.html's browser tests
((want_fuzz)) && APT_PACKAGES+=(clang libclang-rt-14-dev)
APT_PACKAGES+=(openjdk-17-jre-headless)  # Java for the Spark path (spark/, pyspark below)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test tools in a virtual environment built on Debian's python3, so it sees Debian's pandas.
if [[ ! -x .venv/bin/python ]]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
need_pip=()
.venv/bin/python -c 'import pytest' 2>/dev/null || need_pip+=(pytest==9.2.0)
# A real S3-compatible server for the tests (moto in server mode) and AWS
# clients no one here wrote (boto3, the AWS CLI) to upload inputs and check outputs.
.venv/bin/python -c 'import moto.server, flask_cors' 2>/dev/null || need_pip+=("moto[server]==5.1.22")
.venv/bin/python -c 'import boto3' 2>/dev/null || need_pip+=(boto3==1.44.8)
[[ -x .venv/bin/cfn-lint ]] || need_pip+=(cfn-lint==1.41.0)
.venv/bin/python -c 'import aiosmtpd' 2>/dev/null || need_pip+=(aiosmtpd==1.4.6)
[[ -x .venv/bin/aws ]] || need_pip+=(awscli==1.46.3)
# The cluster path (spark/merge_job.py): Spark 3.5 as on EMR 7, run on the local Java 17.
.venv/bin/python -c 'import pyspark' 2>/dev/null || need_pip+=(pyspark==3.5.9)
if ((want_bench)); then
  .venv/bin/python -c 'import duckdb' 2>/dev/null || need_pip+=(duckdb)
  .venv/bin/python -c 'import polars' 2>/dev/null || need_pip+=(polars)
fi
if ((${#need_pip[@]})); then
  echo "install-deps: pip install ${need_pip[*]}"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${need_pip[@]}"
fi
# AWS's Lambda Runtime Interface Emulator (a Go module) for the Lambda tests.
scripts/install-rie.sh >/dev/null
echo "install-deps: ok"
