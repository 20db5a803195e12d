# shellcheck shell=bash
# PostgreSQL 15 and the project's Redshift Data API emulator
# (sinks/redshift/emulator), for the Redshift sink's tests.
#
# Sourced by scripts/test after the S3 server (10-moto-s3.sh): the emulator
# performs COPY by reading the objects from SHARDLINE_TEST_S3_ENDPOINT.
# Starts a fresh cluster under target/emulators/postgres-redshift on a free
# port (as the postgres user when run as root), creates the `dev` database,
# builds and starts the emulator, and exports:
#   SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT  http://127.0.0.1:PORT (the Data API)
#   SHARDLINE_TEST_REDSHIFT_PG             libpq settings of the `dev` database
# PostgreSQL logs to target/emulators/postgres-redshift/postgres.log (a
# directory the postgres user owns). Both PIDs go to EMULATOR_PIDS (the emulator first, so PostgreSQL has no
# sessions left when it gets its SIGTERM).

redshift_emulator_start() {
  local pg_bin=/usr/lib/postgresql/15/bin
  if [[ ! -x $pg_bin/initdb ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      emulators_log "installing postgresql (apt-get)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null >/dev/null ||
        emulators_die "apt-get install postgresql failed"
    else
      emulators_die "PostgreSQL 15 is not installed ($pg_bin/initdb missing): apt-get install postgresql"
    fi
  fi
  if [[ -z ${SHARDLINE_TEST_S3_ENDPOINT:-} ]]; then
    emulators_log "SHARDLINE_TEST_S3_ENDPOINT is not set: not starting the Redshift Data API emulator"
    return 0
  fi

  local dir="$EMULATOR_WORK_DIR/postgres-redshift" ports pg_port api_port as_pg=()
  mapfile -t ports < <(emulators_free_ports 2)
  pg_port=${ports[0]} api_port=${ports[1]}
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $(id -u) == 0 ]]; then
    chown postgres "$dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$EMULATOR_LOG_DIR/postgres-initdb.log" 2>&1 </dev/null ||
    { tail -n 20 "$EMULATOR_LOG_DIR/postgres-initdb.log" >&2; emulators_die "initdb failed"; }
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir -c fsync=off -c max_connections=300" start >/dev/null </dev/null ||
    { tail -n 20 "$dir/postgres.log" >&2; emulators_die "PostgreSQL failed to start"; }
  POSTGRES_PID=$(head -n 1 "$dir/data/postmaster.pid")
  "${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres dev </dev/null ||
    { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; emulators_die "createdb dev failed"; }

  local target_dir="${CARGO_TARGET_DIR:-$EMULATORS_REPO_ROOT/target}"
  emulators_log "building the Redshift Data API emulator"
  (cd "$EMULATORS_REPO_ROOT" && cargo build --quiet --locked -p shardline-redshift-data-emulator </dev/null) ||
    { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; emulators_die "building shardline-redshift-data-emulator failed"; }
  RUST_LOG=${REDSHIFT_EMULATOR_LOG:-info} nohup "$target_dir/debug/shardline-redshift-data-emulator" \
    --listen "127.0.0.1:$api_port" \
    --postgres "host=127.0.0.1 port=$pg_port user=postgres" \
    --s3-endpoint "$SHARDLINE_TEST_S3_ENDPOINT" \
    </dev/null >"$EMULATOR_LOG_DIR/redshift-data-emulator.log" 2>&1 &
  REDSHIFT_EMULATOR_PID=$!
  EMULATOR_PIDS+=("$REDSHIFT_EMULATOR_PID" "$POSTGRES_PID")
  local deadline=$((SECONDS + EMULATOR_START_TIMEOUT))
  until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$api_port/_emulator/health"; do
    if ! kill -0 "$REDSHIFT_EMULATOR_PID" 2>/dev/null || ((SECONDS >= deadline)); then
      tail -n 30 "$EMULATOR_LOG_DIR/redshift-data-emulator.log" >&2 || true
      emulators_die "the Redshift Data API emulator failed to start"
    fi
    sleep 0.2
  done
  export REDSHIFT_EMULATOR_PID POSTGRES_PID
  export SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT="http://127.0.0.1:$api_port"
  export SHARDLINE_TEST_REDSHIFT_PG="host=127.0.0.1 port=$pg_port user=postgres dbname=dev"
  emulators_log "postgres     pid $POSTGRES_PID  127.0.0.1:$pg_port (database dev)"
  emulators_log "redshift-data pid $REDSHIFT_EMULATOR_PID  $SHARDLINE_TEST_REDSHIFT_DATA_ENDPOINT"
}
redshift_emulator_start
