#!/usr/bin/env bash
# Runs COMMAND... with a PostgreSQL 15 server of its own: a fresh cluster
# in a temporary folder, listening on 127.0.0.1 at a free port, password
# authentication (scram-sha-256) for the user remhsm. COMMAND finds it in
# REMHSM_TEST_PG (a libpq URI to the database postgres, password
# included). The server is stopped by its PID and the folder removed,
# whatever COMMAND does.
#   tests/support/with_postgres.sh COMMAND [ARG...]
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/postgres" ] || { echo "with_postgres: $bin/postgres missing (scripts/deps.sh test)" >&2; exit 1; }

dir=$(mktemp -d /tmp/remhsm-pg-XXXXXX)
# PostgreSQL refuses to run as root: then its user runs it, through
# setpriv, which execs rather than forks, so that $! is the server's PID.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true # fast shutdown
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
printf '%s\n' "$password" >"$dir/pw"
chmod 644 "$dir/pw"
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U remhsm -A scram-sha-256 \
  --pwfile="$dir/pw" --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pw"

# A free port: one nothing listens on now; a race with another starter
# shows as a failed start, and the next port is tried.
started=
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 20000))
  ss -ltn "sport = :$port" | grep -q LISTEN && continue
  "${as_owner[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 \
    >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q "ready to accept connections" "$dir/server.log" && { started=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$started" ] && break
  kill -KILL "$pid" 2>/dev/null || true
  pid=
done
[ -n "$started" ] || { echo "with_postgres: the server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }

export REMHSM_TEST_PG="postgresql://remhsm:$password@127.0.0.1:$port/postgres"
export REMHSM_TEST_PG_LOG="$dir/server.log"
set +e
"$@"
rc=$?
set -e
[ $rc -eq 0 ] || { echo "== PostgreSQL's log:" >&2; tail -n 40 "$dir/server.log" >&2; }
exit $rc
