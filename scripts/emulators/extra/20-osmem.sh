# shellcheck shell=bash
# osmem-server: an OpenSearch-compatible server (_bulk, _search, _count,
# GET by id; OpenSearch 3.x API) for the elasticsearch sink's tests. A static
# binary from PyPI (`osmem-server`), installed into the shared test venv.
#
# Exports SHARDLINE_TEST_OPENSEARCH_ENDPOINT (the shared server) and
# SHARDLINE_TEST_OSMEM_BIN (tests that stop and restart a server start
# their own from it); the PID goes to EMULATOR_PIDS.

emulators_pip osmem-server
OSMEM_BIN=$("$EMULATOR_VENV/bin/python" -c 'import os, osmem_server; print(os.path.join(os.path.dirname(osmem_server.__file__), "bin", "osmem-server"))') ||
  emulators_die "cannot locate the osmem-server package in $EMULATOR_VENV"
[[ -x $OSMEM_BIN ]] || emulators_die "osmem-server binary missing or not executable: $OSMEM_BIN"

osmem_port=$(emulators_free_ports 1)
nohup "$OSMEM_BIN" -addr "127.0.0.1:$osmem_port" -no-stdin-watch </dev/null >"$EMULATOR_LOG_DIR/osmem.log" 2>&1 &
OSMEM_PID=$!
EMULATOR_PIDS+=("$OSMEM_PID")

osmem_deadline=$((SECONDS + EMULATOR_START_TIMEOUT))
until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$osmem_port/"; do
  if ! kill -0 "$OSMEM_PID" 2>/dev/null; then
    emulators_log "osmem-server (pid $OSMEM_PID) exited before answering; last lines of $EMULATOR_LOG_DIR/osmem.log:"
    tail -n 30 "$EMULATOR_LOG_DIR/osmem.log" >&2 || true
    emulators_die "osmem-server failed to start"
  fi
  if ((SECONDS >= osmem_deadline)); then
    emulators_log "osmem-server (pid $OSMEM_PID) did not answer GET / within ${EMULATOR_START_TIMEOUT}s:"
    tail -n 30 "$EMULATOR_LOG_DIR/osmem.log" >&2 || true
    emulators_die "osmem-server failed to start"
  fi
  sleep 0.1
done

export OSMEM_PID SHARDLINE_TEST_OSMEM_BIN="$OSMEM_BIN"
export SHARDLINE_TEST_OPENSEARCH_ENDPOINT="http://127.0.0.1:$osmem_port"
emulators_log "osmem-server pid $OSMEM_PID  $SHARDLINE_TEST_OPENSEARCH_ENDPOINT"
unset osmem_port osmem_deadline
