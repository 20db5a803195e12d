# shellcheck shell=bash
# Headless Chromium (Debian's `chromium` package) for the quickstart page's
# browser test (tests/tests/e2e_quickstart_dashboard.rs). Installed with apt
# only when /usr/bin/chromium is missing; no server is started: the test runs
# the browser itself with the flags of ../../shared/EMULATORS.md.
#
# Exports SHARDLINE_TEST_CHROMIUM.

if [[ ! -x /usr/bin/chromium ]]; then
  emulators_log "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update </dev/null >"$EMULATOR_LOG_DIR/chromium-apt.log" 2>&1 ||
    { tail -n 30 "$EMULATOR_LOG_DIR/chromium-apt.log" >&2; emulators_die "apt-get update failed"; }
  apt-get install -y chromium </dev/null >>"$EMULATOR_LOG_DIR/chromium-apt.log" 2>&1 ||
    { tail -n 30 "$EMULATOR_LOG_DIR/chromium-apt.log" >&2; emulators_die "apt-get install chromium failed"; }
fi
[[ -x /usr/bin/chromium ]] || emulators_die "/usr/bin/chromium is missing after installing the chromium package"
export SHARDLINE_TEST_CHROMIUM=/usr/bin/chromium
emulators_log "chromium $SHARDLINE_TEST_CHROMIUM"
