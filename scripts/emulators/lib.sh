# shellcheck shell=bash
# Functions that install, start and stop the test emulators (kinesis-mock
# for Kinesis, dynalite for DynamoDB) on loopback ports chosen at run time.
#
# Sourced by scripts/test (which runs the whole suite) and by
# scripts/emulators/start (which leaves them running for a developer).
# Nothing here reads stdin, and every process it starts is recorded by PID
# in EMULATOR_PIDS so that emulators_stop ends exactly those processes.
#
# Inputs (environment, all optional):
#   EMULATOR_LOG_DIR      where logs go (default: <repo>/target/emulator-logs)
#   EMULATOR_START_TIMEOUT seconds to wait for each server (default: 60)
#   EMULATOR_WORK_DIR     where the patched kinesis-mock goes (default: <repo>/target/emulators)

EMULATORS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EMULATORS_REPO_ROOT="$(cd "$EMULATORS_DIR/../.." && pwd)"
EMULATOR_LOG_DIR="${EMULATOR_LOG_DIR:-$EMULATORS_REPO_ROOT/target/emulator-logs}"
EMULATOR_START_TIMEOUT="${EMULATOR_START_TIMEOUT:-60}"
EMULATOR_WORK_DIR="${EMULATOR_WORK_DIR:-$EMULATORS_REPO_ROOT/target/emulators}"
EMULATOR_PIDS=()

emulators_log() { printf '[emulators] %s\n' "$*" >&2; }

emulators_die() {
  emulators_log "error: $*"
  exit 1
}

# Installs the npm packages pinned in package-lock.json unless the installed
# tree already matches it (a no-op once installed).
emulators_install() {
  command -v node >/dev/null || emulators_die "node is not installed (needed for kinesis-mock and dynalite)"
  command -v npm >/dev/null || emulators_die "npm is not installed"
  command -v python3 >/dev/null || emulators_die "python3 is not installed (used to pick free ports)"
  command -v curl >/dev/null || emulators_die "curl is not installed (used to probe the emulators)"
  if [[ -f "$EMULATORS_DIR/node_modules/kinesis-local/main.js" && -f "$EMULATORS_DIR/node_modules/dynalite/cli.js" ]] &&
    (cd "$EMULATORS_DIR" && npm ls --offline --depth=0 >/dev/null 2>&1); then
    return 0
  fi
  emulators_log "installing emulators with npm ci (scripts/emulators/package-lock.json)"
  (cd "$EMULATORS_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null) ||
    emulators_die "npm ci failed in scripts/emulators"
}

# Prints N distinct free TCP ports on 127.0.0.1, one a line. All N sockets
# are held open together so the ports differ from each other.
emulators_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
PY
}

# kinesis-mock binds 0.0.0.0; write a copy of its main.js that binds
# 127.0.0.1 (the vendored file stays untouched). Idempotent.
emulators_patched_kinesis_mock() {
  local src="$EMULATORS_DIR/node_modules/kinesis-local/main.js"
  local dst="$EMULATOR_WORK_DIR/kinesis-mock-main.js" tmp
  mkdir -p "$EMULATOR_WORK_DIR"
  tmp="$dst.$$.tmp"
  sed 's/Host\$().em("0\.0\.0\.0")/Host$().em("127.0.0.1")/' "$src" >"$tmp"
  if grep -q 'Host$().em("0.0.0.0")' "$tmp" || ! grep -q 'Host$().em("127.0.0.1")' "$tmp"; then
    rm -f "$tmp"
    emulators_die "could not patch kinesis-mock's bind address in $src (unknown kinesis-local version?)"
  fi
  mv -f "$tmp" "$dst"
  printf '%s\n' "$dst"
}

# emulators_probe NAME URL TARGET CONTENT_TYPE: one API call, true on HTTP 200.
emulators_probe() {
  local url=$2 target=$3 content_type=$4 code
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
    -H "X-Amz-Target: $target" -H "Content-Type: $content_type" \
    -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/probe/aws4_request, SignedHeaders=host;x-amz-date, Signature=00' \
    -d '{}' "$url" 2>/dev/null) || return 1
  [[ $code == 200 ]]
}

# emulators_wait NAME PID LOG URL TARGET CONTENT_TYPE
emulators_wait() {
  local name=$1 pid=$2 log=$3 url=$4 target=$5 content_type=$6
  local deadline=$((SECONDS + EMULATOR_START_TIMEOUT))
  until emulators_probe "$name" "$url" "$target" "$content_type"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      emulators_log "$name (pid $pid) exited before answering; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      emulators_die "$name failed to start"
    fi
    if ((SECONDS >= deadline)); then
      emulators_log "$name (pid $pid) did not answer $target at $url within ${EMULATOR_START_TIMEOUT}s; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      emulators_die "$name failed to start"
    fi
    sleep 0.2
  done
}

# Starts kinesis-mock and dynalite, waits for both to answer, and exports
# SHARDLINE_TEST_KINESIS_ENDPOINT, SHARDLINE_TEST_DYNAMODB_ENDPOINT, test
# AWS credentials and KINESIS_MOCK_PID / DYNALITE_PID.
emulators_start() {
  mkdir -p "$EMULATOR_LOG_DIR"
  local ports kinesis_port kinesis_tls_port dynamodb_port kinesis_main
  mapfile -t ports < <(emulators_free_ports 3)
  kinesis_port=${ports[0]} kinesis_tls_port=${ports[1]} dynamodb_port=${ports[2]}
  kinesis_main=$(emulators_patched_kinesis_mock)

  # Stream, consumer and reshard transitions take 500 ms each by default;
  # the tests create a fresh stream per test and split shards, so keep them short.
  KINESIS_MOCK_CERT_PATH="$EMULATORS_DIR/node_modules/kinesis-local/server.json" \
    KINESIS_MOCK_PLAIN_PORT=$kinesis_port \
    KINESIS_MOCK_TLS_PORT=$kinesis_tls_port \
    LOG_LEVEL=WARN ROOT_LOG_LEVEL=ERROR \
    CREATE_STREAM_DURATION=50ms DELETE_STREAM_DURATION=50ms \
    REGISTER_STREAM_CONSUMER_DURATION=50ms DEREGISTER_STREAM_CONSUMER_DURATION=50ms \
    START_STREAM_ENCRYPTION_DURATION=50ms STOP_STREAM_ENCRYPTION_DURATION=50ms \
    MERGE_SHARDS_DURATION=50ms SPLIT_SHARD_DURATION=50ms \
    UPDATE_SHARD_COUNT_DURATION=50ms UPDATE_STREAM_MODE_DURATION=50ms \
    SHARD_LIMIT=1000 SHOULD_PERSIST_DATA=false \
    nohup node "$kinesis_main" </dev/null >"$EMULATOR_LOG_DIR/kinesis-mock.log" 2>&1 &
  KINESIS_MOCK_PID=$!
  EMULATOR_PIDS+=("$KINESIS_MOCK_PID")

  nohup node "$EMULATORS_DIR/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$dynamodb_port" \
    --createTableMs 50 --deleteTableMs 50 --updateTableMs 50 \
    </dev/null >"$EMULATOR_LOG_DIR/dynalite.log" 2>&1 &
  DYNALITE_PID=$!
  EMULATOR_PIDS+=("$DYNALITE_PID")

  emulators_wait kinesis-mock "$KINESIS_MOCK_PID" "$EMULATOR_LOG_DIR/kinesis-mock.log" \
    "http://127.0.0.1:$kinesis_port/" Kinesis_20131202.ListStreams application/x-amz-json-1.1
  emulators_wait dynalite "$DYNALITE_PID" "$EMULATOR_LOG_DIR/dynalite.log" \
    "http://127.0.0.1:$dynamodb_port/" DynamoDB_20120810.ListTables application/x-amz-json-1.0

  export KINESIS_MOCK_PID DYNALITE_PID
  export SHARDLINE_TEST_KINESIS_ENDPOINT="http://127.0.0.1:$kinesis_port"
  export SHARDLINE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$dynamodb_port"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  unset AWS_SESSION_TOKEN AWS_PROFILE

  emulators_log "kinesis-mock pid $KINESIS_MOCK_PID  $SHARDLINE_TEST_KINESIS_ENDPOINT (tls port $kinesis_tls_port)"
  emulators_log "dynalite     pid $DYNALITE_PID  $SHARDLINE_TEST_DYNAMODB_ENDPOINT"
  emulators_log "logs in $EMULATOR_LOG_DIR"
}

# emulators_stop_pids PID...: SIGTERM, wait up to 5 s, then SIGKILL. Only the
# given PIDs, never anything found by name.
emulators_stop_pids() {
  local pid waited
  for pid in "$@"; do
    [[ -n $pid ]] || continue
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

emulators_stop() {
  emulators_stop_pids "${EMULATOR_PIDS[@]}"
  EMULATOR_PIDS=()
}

# emulators_pip PACKAGE...: makes sure the shared test venv
# (<repo>/target/venv) exists and has the given pip requirement specifiers
# installed (pip is only run when `pip show` misses one). Prints nothing on
# success; use "$EMULATOR_VENV/bin/..." afterwards.
EMULATOR_VENV="${EMULATOR_VENV:-$EMULATORS_REPO_ROOT/target/venv}"
emulators_pip() {
  command -v python3 >/dev/null || emulators_die "python3 is not installed"
  if [[ ! -x $EMULATOR_VENV/bin/pip ]]; then
    emulators_log "creating the test venv in $EMULATOR_VENV"
    python3 -m venv "$EMULATOR_VENV" </dev/null || emulators_die "python3 -m venv failed"
  fi
  local spec name missing=()
  for spec in "$@"; do
    name=${spec%%[<>=\[!~]*}
    "$EMULATOR_VENV/bin/pip" show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
  done
  if ((${#missing[@]})); then
    emulators_log "pip install ${missing[*]}"
    "$EMULATOR_VENV/bin/pip" install -q --disable-pip-version-check "${missing[@]}" </dev/null ||
      emulators_die "pip install ${missing[*]} failed"
  fi
}
