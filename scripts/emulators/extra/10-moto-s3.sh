# shellcheck shell=bash
# S3 for the S3 sink's tests: moto's server (PyPI `moto[server]`, installed
# into the shared test venv target/venv), bound to 127.0.0.1 on a free port.
# Exports SHARDLINE_TEST_S3_ENDPOINT and MOTO_S3_PID; the PID joins
# EMULATOR_PIDS so emulators_stop ends it. Sourced by scripts/test.

emulators_pip 'moto[server]'
mkdir -p "$EMULATOR_LOG_DIR"
moto_s3_port=$(emulators_free_ports 1)
nohup "$EMULATOR_VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_s3_port" \
  </dev/null >"$EMULATOR_LOG_DIR/moto-s3.log" 2>&1 &
MOTO_S3_PID=$!
EMULATOR_PIDS+=("$MOTO_S3_PID")

# Ready when ListBuckets answers 200 (moto accepts any credentials).
moto_s3_deadline=$((SECONDS + EMULATOR_START_TIMEOUT))
until [[ $(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00' \
  "http://127.0.0.1:$moto_s3_port/" 2>/dev/null) == 200 ]]; do
  if ! kill -0 "$MOTO_S3_PID" 2>/dev/null; then
    emulators_log "moto S3 (pid $MOTO_S3_PID) exited before answering; last lines of $EMULATOR_LOG_DIR/moto-s3.log:"
    tail -n 30 "$EMULATOR_LOG_DIR/moto-s3.log" >&2 || true
    emulators_die "moto S3 failed to start"
  fi
  if ((SECONDS >= moto_s3_deadline)); then
    emulators_log "moto S3 (pid $MOTO_S3_PID) did not answer within ${EMULATOR_START_TIMEOUT}s; last lines of $EMULATOR_LOG_DIR/moto-s3.log:"
    tail -n 30 "$EMULATOR_LOG_DIR/moto-s3.log" >&2 || true
    emulators_die "moto S3 failed to start"
  fi
  sleep 0.2
done
export MOTO_S3_PID
export SHARDLINE_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_s3_port"
emulators_log "moto S3      pid $MOTO_S3_PID  $SHARDLINE_TEST_S3_ENDPOINT"
unset moto_s3_port moto_s3_deadline
