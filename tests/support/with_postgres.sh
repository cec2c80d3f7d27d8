#!/usr/bin/env bash
# Runs COMMAND... with a PostgreSQL 15 server of its own: a fresh cluster
# in a temporary folder, listening on 127.0.0.1 at a free port, password
# authentication (scram-sha-256) for the superuser remhsm. COMMAND finds it
# in REMHSM_TEST_PG (a libpq URI to the database postgres, password
# included), and its server's PID in REMHSM_TEST_PG_PID. With --standby, a streaming standby of it too, on a port of
# its own, which the primary waits for on every commit
# (synchronous_standby_names): REMHSM_TEST_PG_STANDBY names it and
# REMHSM_TEST_PG_STANDBY_PID is its server's PID (a test may stop and
# continue it). The servers are stopped by their PIDs and the folder
# removed, whatever COMMAND does.
#   tests/support/with_postgres.sh [--standby] COMMAND [ARG...]
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/postgres" ] || { echo "with_postgres: $bin/postgres missing (scripts/deps.sh test)" >&2; exit 1; }
standby=
[ "${1:-}" = --standby ] && { standby=1; shift; }

dir=$(mktemp -d /tmp/remhsm-pg-XXXXXX)
# PostgreSQL refuses to run as root: then its user runs it, through
# setpriv, which execs rather than forks, so that $! is the server's PID.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill -INT "$pid" 2>/dev/null || true # fast shutdown
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
printf '%s\n' "$password" >"$dir/pw"
chmod 644 "$dir/pw"
"${as_owner[@]}" "$bin/initdb" -D "$dir/primary" -U remhsm -A scram-sha-256 \
  --pwfile="$dir/pw" --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pw"

# Starts the cluster in DATA on a free port (one nothing listens on now; a
# race with another starter shows as a failed start, and the next port is
# tried) until its log says READY; sets port and pid.
start_server() {
  local data=$1 ready=$2 log=$1.log
  shift 2
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 20000))
    ss -ltn "sport = :$port" | grep -q LISTEN && continue
    "${as_owner[@]}" "$bin/postgres" -D "$data" -p "$port" -k "$dir" \
      -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 "$@" \
      >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      if grep -q "$ready" "$log"; then
        pids+=("$pid")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "with_postgres: the server in $data did not start" >&2
  cat "$log" >&2
  exit 1
}

primary_args=()
[ -n "$standby" ] && primary_args=(-c synchronous_standby_names=remhsm_standby)
start_server "$dir/primary" "ready to accept connections" "${primary_args[@]}"
primary_port=$port
export REMHSM_TEST_PG="postgresql://remhsm:$password@127.0.0.1:$primary_port/postgres"
export REMHSM_TEST_PG_LOG="$dir/primary.log"
export REMHSM_TEST_PG_PID=$pid

if [ -n "$standby" ]; then
  PGPASSWORD=$password "${as_owner[@]}" "$bin/pg_basebackup" -h 127.0.0.1 \
    -p "$primary_port" -U remhsm -D "$dir/standby" -X stream --no-sync \
    >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
  printf "primary_conninfo = 'host=127.0.0.1 port=%s user=remhsm password=%s application_name=remhsm_standby'\n" \
    "$primary_port" "$password" >>"$dir/standby/postgresql.auto.conf"
  "${as_owner[@]}" touch "$dir/standby/standby.signal"
  start_server "$dir/standby" "ready to accept read-only connections"
  export REMHSM_TEST_PG_STANDBY="postgresql://remhsm:$password@127.0.0.1:$port/postgres"
  export REMHSM_TEST_PG_STANDBY_PID=$pid
  # Streaming, and counted as the synchronous standby, before COMMAND.
  for _ in $(seq 100); do
    [ "$(psql "$REMHSM_TEST_PG" -Atc \
      "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] && break
    sleep 0.1
  done
fi

set +e
"$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  for log in "$dir"/*.log; do echo "== $log:" >&2; tail -n 30 "$log" >&2; done
fi
exit $rc
