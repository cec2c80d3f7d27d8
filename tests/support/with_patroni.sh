#!/usr/bin/env bash
# Runs COMMAND... with a PostgreSQL 15 pair that Patroni manages on a
# three-member etcd, all on 127.0.0.1 at free ports, in a temporary
# folder: the primary waits for the other on every commit (Patroni's
# synchronous_mode), and Patroni promotes the standby once the primary's
# leader key has expired (ttl 10 s). COMMAND finds, as under
# with_postgres.sh --standby: REMHSM_TEST_PG (the primary's database
# postgres, a libpq URI with the password), REMHSM_TEST_PG_STANDBY (the
# standby's), and REMHSM_TEST_PG_KILL: the PIDs of the primary's Patroni
# and postmaster, which a test kills to take the primary's host away.
# Everything started is stopped by its PID and the folder removed,
# whatever COMMAND does.
#   tests/support/with_patroni.sh COMMAND [ARG...]
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
for tool in "$bin/postgres" /usr/bin/patroni /usr/bin/etcd /usr/bin/etcdctl; do
  [ -x "$tool" ] || { echo "with_patroni: $tool missing (scripts/deps.sh test)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/remhsm-patroni-XXXXXX)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pids=()
postmaster_of() { head -n 1 "$dir/$1/postmaster.pid" 2>/dev/null || true; }
cleanup() {
  # Patroni first (it stops its server), then what is left, then etcd.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for m in m0 m1; do
    pm=$(postmaster_of "$m")
    [ -n "$pm" ] && kill -KILL "$pm" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

used=" "
# A port nothing listens on, not handed out here before.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    case "$used" in *" $p "*) continue ;; esac
    ss -ltn "sport = :$p" | grep -q LISTEN && continue
    used="$used$p "
    echo "$p"
    return 0
  done
  return 1
}

declare -a client peer
members=
for i in 0 1 2; do
  client[$i]=$(free_port)
  peer[$i]=$(free_port)
  members="${members:+$members,}e$i=http://127.0.0.1:${peer[$i]}"
done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$dir/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${client[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-cluster "$members" --initial-cluster-state new \
    --initial-cluster-token "remhsm-$$" >"$dir/etcd$i.log" 2>&1 &
  pids+=("$!")
done
endpoints="127.0.0.1:${client[0]},127.0.0.1:${client[1]},127.0.0.1:${client[2]}"
for _ in $(seq 200); do
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 ||
  { echo "with_patroni: etcd did not come up" >&2; tail -n 20 "$dir"/etcd*.log >&2; exit 1; }

password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
declare -a pg api
for m in 0 1; do
  pg[$m]=$(free_port)
  api[$m]=$(free_port)
  cat >"$dir/m$m.yml" <<EOF
scope: remhsm-$$
name: m$m
restapi:
  listen: 127.0.0.1:${api[$m]}
  connect_address: 127.0.0.1:${api[$m]}
etcd3:
  hosts: [$(echo "$endpoints" | sed 's/,/, /g')]
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    postgresql:
      parameters:
        fsync: 'off'
        max_connections: 50
  initdb: [{auth: scram-sha-256}]
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:${pg[$m]}
  connect_address: 127.0.0.1:${pg[$m]}
  data_dir: $dir/m$m
  bin_dir: $bin
  pgpass: $dir/pgpass$m
  authentication:
    superuser: {username: remhsm, password: '$password'}
    replication: {username: replicator, password: '$password'}
  parameters:
    unix_socket_directories: '$dir'
EOF
  chmod 644 "$dir/m$m.yml"
  "${as_owner[@]}" /usr/bin/patroni "$dir/m$m.yml" >"$dir/patroni$m.log" 2>&1 &
  pids+=("$!")
  patroni_pid[$m]=$!
  [ "$m" = 0 ] || continue
  # The first bootstraps the cluster before the second joins it.
  for _ in $(seq 300); do
    [ "$(PGPASSWORD=$password psql -h 127.0.0.1 -p "${pg[0]}" -U remhsm -d postgres -Atc \
      'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] && break
    sleep 0.1
  done
done

uri() { echo "postgresql://remhsm:$password@127.0.0.1:$1/postgres"; }
# Up when one member is primary with the other as its synchronous standby.
leader=
for _ in $(seq 600); do
  for m in 0 1; do
    [ "$(psql "$(uri "${pg[$m]}")" -Atc "SELECT NOT pg_is_in_recovery() AND \
      (SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync') = 1" \
      2>/dev/null)" = t ] && leader=$m
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
if [ -z "$leader" ]; then
  echo "with_patroni: no primary with a synchronous standby" >&2
  tail -n 30 "$dir"/patroni*.log >&2
  exit 1
fi
other=$((1 - leader))
export REMHSM_TEST_PG=$(uri "${pg[$leader]}")
export REMHSM_TEST_PG_STANDBY=$(uri "${pg[$other]}")
export REMHSM_TEST_PG_KILL="${patroni_pid[$leader]} $(postmaster_of "m$leader")"

set +e
"$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  for log in "$dir"/patroni*.log; do echo "== $log:" >&2; tail -n 30 "$log" >&2; done
fi
exit $rc
