#!/usr/bin/env bash
# deploy/cluster/compose.yml, run with podman-compose: three remhsmd on
# one PostgreSQL store, the database a primary and a synchronous standby
# under Patroni on etcd, and a device signing through all three daemons
# with one login. While it signs, the daemon container it uses is killed,
# and then the container of the database's primary: the device goes on
# without one failed signature (remhsm bench stops at the first), and
# Patroni's new primary takes writes. Everything the test made is removed
# by name.
#   compose_cluster.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1"
stop_daemon # the daemons under test run in containers
src=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF=$src/tests/container/containers.conf
project=rhcluster$$
export REMHSM_IMAGE=localhost/remhsm-cluster-$$ SIGN_SECONDS=45
compose=(podman-compose -p "$project" -f "$src/deploy/cluster/compose.yml")
targets="remhsmd postgres device"
teardown() {
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
  for t in $targets; do podman rmi -f "$REMHSM_IMAGE-$t:dev" >/dev/null 2>&1 || true; done
  cleanup
}
trap teardown EXIT

ensure_base_image
# shellcheck disable=SC2086 # the targets, one word each
build_targets $targets
check "podman-compose starts the cluster" compose_up
c() { echo "${project}_$1_1"; }

# The device signing (it has provisioned the token through a daemon).
started=
for _ in $(seq 900); do
  podman logs "$(c device)" 2>&1 | grep -q "^signing for" && started=1 && break
  sleep 0.2
done
check "the device provisions its token and starts signing" test -n "$started"

# The primary: the member that is not in recovery.
primary_of() {
  for m in pg0 pg1; do
    [ "$(podman exec -e PGPASSWORD="${DB_PASSWORD:-remhsm-dev-db}" "$(c "$m")" \
      /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -U remhsm -d postgres -Atc \
      'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] && echo "$m" && return 0
  done
  return 1
}
sleep 5
check "a daemon container is killed while the device signs" \
  podman kill "$(c remhsmd-1)"
sleep 5
primary=$(primary_of || true)
check "the database has a primary (pg0 or pg1)" test -n "$primary"
killed_at=$(date +%s)
check "the primary's container is killed while the device signs" \
  podman kill "$(c "${primary:-pg0}")"
other=$([ "$primary" = pg0 ] && echo pg1 || echo pg0)
promoted=
for _ in $(seq 300); do
  [ "$(primary_of || true)" = "$other" ] && promoted=$(($(date +%s) - killed_at)) && break
  sleep 0.2
done
check "Patroni makes the standby primary" test -n "$promoted"
echo "     (the standby was primary ${promoted:-?} s after the kill)"

status=$(exit_code_of "$(c device)")
podman logs "$(c device)" >"$work/device.log" 2>&1 || true
check "the device signed to the end without a failed signature (exit 0)" test "$status" = 0
check "and printed its figures" grep -Eq "^2 +[0-9]+ +[0-9]+" "$work/device.log"
grep -E "^2 +[0-9]+" "$work/device.log" | sed 's/^/     signed: threads calls ops\/s ... /' || true
# A write through a daemon on the new primary: a token key made, used
# and destroyed (the daemon reconnects to the new primary by itself).
write_after() {
  for _ in $(seq 30); do
    podman exec -e REMHSM_SERVER=127.0.0.1:5697 -e REMHSM_CA=/etc/remhsm/pki/ca.pem \
      -e REMHSM_CERT=/etc/remhsm/pki/client.pem -e REMHSM_KEY=/etc/remhsm/pki/client.key \
      "$(c remhsmd-2)" remhsm bench --sign-pin 0000 --token-key --threads 1 --seconds 1 \
      >"$work/write.log" 2>&1 && return 0
    sleep 1
  done
  tail -n 5 "$work/write.log"
  return 1
}
check "the device moved to another daemon when its own was killed" \
  bash -c "podman logs '$(c remhsmd-2)' 2>&1 | grep -q 'event=hello' ||
    podman logs '$(c remhsmd-3)' 2>&1 | grep -q 'event=hello'"
check "after the failover a daemon writes on the new primary" write_after
[ "$failed" -eq 0 ] || { echo "--- device"; tail -n 30 "$work/device.log"; }
finish
