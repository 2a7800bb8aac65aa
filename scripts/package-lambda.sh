#!/usr/bin/env bash
# Packages cloudmerge as an AWS Lambda custom runtime (provided.al2023):
# build/function.zip holding the binary as `bootstrap` (stripped) and, in lib/,
# the shared libraries it needs that are not part of glibc.
#
#   scripts/package-lambda.sh [--binary PATH] [--out ZIP] [--no-build]
#                             [--bundle-libc] [--allow-newer-glibc]
#
# The glibc problem. provided.al2023 has glibc 2.34 (and GCC 11's libstdc++,
# up to GLIBCXX_3.4.29); this machine (Debian 12) has glibc 2.36 and GCC 12
# (GLIBCXX_3.4.30). A binary linked here can ask for symbol versions AL2023
# lacks and then fails at start ("version `GLIBC_2.35' not found"). Today our
# own objects and the libraries shipped in lib/ need at most GLIBC_2.34, but
# a binary linked against GCC 12's libstdc++ needs GLIBCXX_3.4.30, and that
# libstdc++ itself needs GLIBC_2.36, so shipping it does not help. Fixes:
#   1. Build in an AL2023 environment (amazonlinux:2023 image or sysroot).
#   2. Link libstdc++/libgcc statically (CMake option CLOUDMERGE_STATIC_RUNTIME,
#      -static-libstdc++ -static-libgcc): the binary then needs only glibc
#      <= 2.34, and AL2023's own libstdc++ serves the shipped libraries
#      (libfmt needs GLIBCXX_3.4.29 at most).
#   3. --bundle-libc: ship Debian's glibc, libstdc++ and loader in lib/ and
#      start the binary through that loader (as aws-lambda-cpp's packager
#      does); works with any build, at the cost of a shell `bootstrap`.
# The check below refuses a package that would not start on AL2023, unless
# --allow-newer-glibc.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
BINARY=""
OUT=""
BUILD=1
BUNDLE_LIBC=0
ALLOW_NEWER=0
AL2023_GLIBC=2.34       # glibc of provided.al2023
AL2023_GLIBCXX=3.4.29   # libstdc++ of AL2023 (GCC 11)
LAMBDA_ZIP_LIMIT=$((50 * 1024 * 1024))  # direct upload; 250 MB unzipped

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) BINARY=$2; BUILD=0; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bundle-libc) BUNDLE_LIBC=1; shift ;;
    --allow-newer-glibc) ALLOW_NEWER=1; shift ;;
    -h|--help) usage ;;
    *) echo "package-lambda.sh: unknown argument $1" >&2; usage ;;
  esac
done
BINARY=${BINARY:-$BUILD_DIR/cloudmerge}
OUT=${OUT:-$BUILD_DIR/function.zip}

if [[ $BUILD == 1 ]]; then
  [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || cmake --preset release >/dev/null
  cmake --build "$BUILD_DIR" --target cloudmerge
fi
[[ -x "$BINARY" ]] || { echo "package-lambda.sh: no executable at $BINARY (build it first)" >&2; exit 1; }
for tool in zip strip objdump ldd; do
  command -v $tool >/dev/null || { echo "package-lambda.sh: $tool is needed (apt-get install zip binutils)" >&2; exit 1; }
done

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/lib"

# Libraries AL2023 has (glibc 2.34, GCC 11's runtime): shipped only with
# --bundle-libc, and then with their loader. Debian's libstdc++ must not be
# shipped otherwise: it needs GLIBC_2.36.
is_system() {
  case "$(basename "$1")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|ld-linux*.so.*) return 0 ;;
    libstdc++.so.*|libgcc_s.so.*) return 0 ;;
  esac
  return 1
}

# Shared libraries the binary loads (resolved paths), vdso excepted.
dependencies() { ldd "$1" | awk '/=> \//{print $3} /^[ \t]*\/.*ld-linux/{print $1}' | sort -u; }

if [[ $BUNDLE_LIBC == 1 ]]; then
  mkdir -p "$STAGE/bin"
  cp "$BINARY" "$STAGE/bin/cloudmerge"
  MAIN="$STAGE/bin/cloudmerge"
  # The loader runs the binary against lib/ only; children (the command
  # engine's tools) start normally, on the system's libraries.
  cat >"$STAGE/bootstrap" <<'EOF'
#!/bin/sh
# This file's folder: /var/task on Lambda (= LAMBDA_TASK_ROOT), or wherever
# the package was unzipped for a local run under RIE.
case $0 in */*) ROOT=${0%/*} ;; *) ROOT=. ;; esac
exec "$ROOT/lib/ld-linux-x86-64.so.2" --library-path "$ROOT/lib" "$ROOT/bin/cloudmerge" "$@"
EOF
  chmod 755 "$STAGE/bootstrap"
else
  cp "$BINARY" "$STAGE/bootstrap"
  MAIN="$STAGE/bootstrap"
fi
strip --strip-unneeded "$MAIN"

while read -r lib; do
  [[ -n "$lib" ]] || continue
  if is_system "$lib" && [[ $BUNDLE_LIBC == 0 ]]; then continue; fi
  cp -L "$lib" "$STAGE/lib/$(basename "$lib")"
  chmod 644 "$STAGE/lib/$(basename "$lib")"
  strip --strip-unneeded "$STAGE/lib/$(basename "$lib")" 2>/dev/null || true
done < <(dependencies "$BINARY")
[[ $BUNDLE_LIBC == 1 ]] && chmod 755 "$STAGE"/lib/ld-linux*.so.*

# Newest symbol version of family $2 (GLIBC, GLIBCXX) an ELF file asks for.
newest_version() { objdump -T "$1" 2>/dev/null | { grep -o "(${2}_[0-9.]*)" || true; } | tr -d "()" | sed "s/^${2}_//" | sort -uV | tail -1; }
newer_than() { [[ -n "$1" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" == "$1" && "$1" != "$2" ]]; }

problems=()
if [[ $BUNDLE_LIBC == 0 ]]; then
  for f in "$MAIN" "$STAGE"/lib/*; do
    [[ -f "$f" ]] || continue
    g=$(newest_version "$f" GLIBC)
    newer_than "$g" "$AL2023_GLIBC" && problems+=("${f#"$STAGE"/} needs GLIBC_$g (AL2023 has $AL2023_GLIBC)")
    x=$(newest_version "$f" GLIBCXX)
    newer_than "$x" "$AL2023_GLIBCXX" && problems+=("${f#"$STAGE"/} needs GLIBCXX_$x (AL2023 has $AL2023_GLIBCXX)")
  done
fi

# The PySpark job, for `engine: emr-serverless|emr|auto` jobs: the function uploads it to the
# artifacts prefix (CLOUDMERGE_SPARK_ARTIFACTS) and finds it at /var/task/spark/merge_job.py.
mkdir -p "$STAGE/spark"
cp "$ROOT/spark/merge_job.py" "$STAGE/spark/merge_job.py"
chmod 644 "$STAGE/spark/merge_job.py"

# Reproducible archive: fixed times, sorted names.
find "$STAGE" -exec touch -h -d '2000-01-01 00:00:00' {} +
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
(cd "$STAGE" && find . -mindepth 1 ! -type d | sed 's|^\./||' | LC_ALL=C sort | zip -X -9 -q "$OUT" -@)

size=$(stat -c %s "$OUT")
unzipped=$(du -sb "$STAGE" | cut -f1)
echo "package-lambda.sh: $OUT: $size bytes zipped, $unzipped unzipped"
(cd "$STAGE" && find . -mindepth 1 ! -type d -printf '  %-40P %10s bytes\n' | LC_ALL=C sort)
(( size > LAMBDA_ZIP_LIMIT )) && echo "package-lambda.sh: over 50 MB: upload through S3 (250 MB unzipped is the limit)" >&2

if (( ${#problems[@]} )); then
  {
    echo "package-lambda.sh: this package would not start on provided.al2023:"
    printf '  %s\n' "${problems[@]}"
    echo "Fix: build with -DCLOUDMERGE_STATIC_RUNTIME=ON (static libstdc++/libgcc), build on AL2023,"
    echo "or package with --bundle-libc. --allow-newer-glibc keeps the package anyway."
  } >&2
  if [[ $ALLOW_NEWER == 0 ]]; then
    rm -f "$OUT"
    exit 1
  fi
fi
