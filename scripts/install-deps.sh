#!/usr/bin/env bash
# Installs what cloudmerge needs on Debian 12. Idempotent: a second run checks and returns in a few seconds.
#   scripts/install-deps.sh --build-only  what building and running need: compiler, CMake, Ninja and the
#                                         -dev libraries (scripts/run-example.sh, the first run)
#   scripts/install-deps.sh               also everything the tests use (scripts/test.sh): GoogleTest,
#                                         pandas, Chromium, Java + Maven jars, .venv (moto, AWS CLI, pyspark,
#                                         the Python package's build tools), the Lambda emulator
#   scripts/install-deps.sh --bench       also the benchmark peers (DuckDB, Polars) in .venv
#   scripts/install-deps.sh --fuzz        also clang + libFuzzer (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

want_build_only=0
[[ " $* " == *" --build-only "* ]] && want_build_only=1
want_bench=0
[[ " $* " == *" --bench "* ]] && want_bench=1
want_fuzz=0  # --fuzz: clang and libFuzzer for scripts/fuzz.sh (not needed by the default build)
[[ " $* " == *" --fuzz "* ]] && want_fuzz=1

# Building and running: the C++ toolchain and the libraries the engine links.
APT_PACKAGES=(build-essential cmake ninja-build pkg-config
  libcli11-dev libfmt-dev libxxhash-dev
  libcurl4-openssl-dev libssl-dev libpugixml-dev nlohmann-json3-dev zlib1g-dev libzstd-dev
  libmicrohttpd-dev)  # the dashboard's HTTP server (serve --http)
if ((!want_build_only)); then
  # Testing: GoogleTest; the oracle's pandas is Debian's 1.5.3 (the version that made
  # ../shared/conformance's expected files); tqdm for the Python package's progress bars
  # (Debian's, so that the fresh venv of tests/e2e/test_python_package.py sees it, as it sees pandas).
  APT_PACKAGES+=(libgtest-dev python3 python3-venv python3-pandas python3-numpy python3-tqdm time zstd
    chromium)  # headless, for the dashboard's and report.html's browser tests
  APT_PACKAGES+=(strace)  # delays syscalls on purpose (test_serve_local.py: a stop signal mid-notification)
  ((want_fuzz)) && APT_PACKAGES+=(clang libclang-rt-14-dev)
  APT_PACKAGES+=(openjdk-17-jre-headless)  # Java for the Spark path (spark/, pyspark below)
  APT_PACKAGES+=(maven)  # fetches the S3A jars for Spark (below)
fi
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
if ((want_build_only)); then
  echo "install-deps: ok (build only; scripts/install-deps.sh without --build-only adds the test tools)"
  exit 0
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
# The Python package's wheel (python/, tests/e2e/test_python_package.py): the build frontend and backend.
.venv/bin/python -c 'import build' 2>/dev/null || need_pip+=(build==1.6.1)
.venv/bin/python -c 'import scikit_build_core' 2>/dev/null || need_pip+=(scikit-build-core==1.1.2)
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
# s3:// and s3a:// paths on a local Spark (--engine spark, tests/e2e/test_spark_s3a.py): Hadoop's
# S3A filesystem and the AWS SDK it is built against. They must match the Hadoop inside the
# pyspark wheel (3.3.4 for pyspark 3.5.x), so they are pinned here, fetched once from Maven
# Central into .tools/jars/ (where spark_engine.cc looks for them) and checked by SHA-256.
SPARK_JARS_DIR=.tools/jars
SPARK_JARS=(
  "org.apache.hadoop:hadoop-aws:3.3.4 hadoop-aws-3.3.4.jar 53f9ae03c681a30a50aa17524bd9790ab596b28481858e54efd989a826ed3a4a"
  "com.amazonaws:aws-java-sdk-bundle:1.12.262 aws-java-sdk-bundle-1.12.262.jar 873fe7cf495126619997bec21c44de5d992544aea7e632fdc77adb1a0915bae5"
)
for entry in "${SPARK_JARS[@]}"; do
  read -r coords jar sha <<<"$entry"
  [[ -f "$SPARK_JARS_DIR/$jar" ]] && continue  # present: verified when it was fetched
  if ! command -v mvn >/dev/null; then
    echo "install-deps: mvn not found: it fetches $coords for Spark's s3a:// support. Install Maven" \
         "(apt-get install maven), or put $jar into $SPARK_JARS_DIR/ by hand." >&2
    exit 1
  fi
  echo "install-deps: mvn dependency:copy $coords -> $SPARK_JARS_DIR/"
  mkdir -p "$SPARK_JARS_DIR"
  # dependency:copy needs no project; non-transitive (the bundle has everything S3A needs).
  # --strict-checksums: a download that does not match the repository's checksum fails.
  if ! mvn -q -B -Dstyle.color=never --strict-checksums dependency:copy -Dartifact="$coords" -DoutputDirectory="$SPARK_JARS_DIR.partial" \
       -Dmdep.overWriteReleases=true; then
    echo "install-deps: mvn could not fetch $coords from Maven Central (see its output above). Check the" \
         "network or the proxy in ~/.m2/settings.xml, then run this script again." >&2
    exit 1
  fi
  got=$(sha256sum "$SPARK_JARS_DIR.partial/$jar" | cut -d' ' -f1)
  if [[ "$got" != "$sha" ]]; then
    echo "install-deps: $jar from Maven has SHA-256 $got, expected $sha; not installed. Remove the copy in" \
         "~/.m2/repository and run this script again." >&2
    exit 1
  fi
  mv "$SPARK_JARS_DIR.partial/$jar" "$SPARK_JARS_DIR/$jar"  # only a checked jar ever appears under its name
done
rm -rf "$SPARK_JARS_DIR.partial"
# AWS's Lambda Runtime Interface Emulator (a Go module) for the Lambda tests.
scripts/install-rie.sh >/dev/null
echo "install-deps: ok"
