#!/usr/bin/env bash
# Signing through a cluster against signing through one daemon, on the
# same cores and in the same run: three remhsmd with store-shared on one
# PostgreSQL store (a throwaway server with a synchronous standby,
# tests/support/with_postgres.sh), and in each round three `remhsm bench`
# processes signing ECDSA P-256 at once with THREADS threads each: all
# through one daemon, spread over two, then one on each of the three.
# Prints each round's total ops/s and its ratio to the one-daemon round.
#   scripts/bench_cluster.sh [SECONDS_PER_ROUND] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
threads=${2:-8}

if [ -z "${REMHSM_TEST_PG:-}" ]; then
  scripts/deps.sh bench
  cmake -S . -B build-run -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$root/_install" >/dev/null
  cmake --build build-run -j"$(nproc)" >/dev/null
  cmake --install build-run >/dev/null
  exec tests/support/with_postgres.sh --standby "$0" "$seconds" "$threads"
fi
module=$(find "$root/_install" -name libremhsm-pkcs11.so | head -n 1)
work=$(mktemp -d /tmp/remhsm-bench-cluster-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

psql "$REMHSM_TEST_PG" -qc "CREATE DATABASE bench_cluster"
store="${REMHSM_TEST_PG%/postgres}/bench_cluster"
_install/bin/remhsm pki init "$work/pki" >/dev/null
ports=()
for i in 0 1 2; do
  mkdir -p "$work/d$i"
  _install/bin/remhsmd --listen 127.0.0.1:0 --state-dir "$work/d$i" \
    --store "$store" --store-shared --store-key "$work/store.key" \
    --tls-ca "$work/pki/ca.pem" --tls-cert "$work/pki/server.pem" \
    --tls-key "$work/pki/server.key" 2>"$work/d$i.log" &
  pids+=("$!")
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's/.*event=listening listen=127.0.0.1:\([0-9]*\).*/\1/p' "$work/d$i.log")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "remhsmd $i did not start:" >&2; cat "$work/d$i.log" >&2; exit 1; }
  ports+=("$port")
done

export REMHSM_CA=$work/pki/ca.pem REMHSM_CERT=$work/pki/client.pem \
  REMHSM_KEY=$work/pki/client.key REMHSM_SERVER=127.0.0.1:${ports[0]}
_install/bin/remhsm token init --module "$module" --freertos --so-pin bench-so-pin >/dev/null

# Three bench processes at once, the i-th through daemon $((i mod N)).
round() {
  local daemons=$1 total=0
  for i in 0 1 2; do
    REMHSM_SERVER=127.0.0.1:${ports[$((i % daemons))]} \
      _install/bin/remhsm bench --module "$module" --sign-pin 0000 \
      --threads "$threads" --seconds "$seconds" >"$work/round$daemons.$i" 2>&1 &
    bench[$i]=$!
  done
  for i in 0 1 2; do wait "${bench[$i]}"; done
  for i in 0 1 2; do
    ops=$(awk -v t="$threads" '$1 == t && $3 ~ /^[0-9.]+$/ {print $3; exit}' "$work/round$daemons.$i")
    [ -n "$ops" ] || { echo "no figure from bench $i:" >&2; cat "$work/round$daemons.$i" >&2; exit 1; }
    total=$((total + ${ops%.*}))
  done
  echo "$total"
}

echo "== ECDSA P-256 signatures: 3 bench processes x $threads threads, $(nproc) cores, ${seconds} s per round"
one=$(round 1)
printf '%-22s %10s ops/s\n' "through 1 daemon" "$one"
for n in 2 3; do
  ops=$(round "$n")
  awk -v n="$n" -v ops="$ops" -v one="$one" 'BEGIN {
    printf "%-22s %10d ops/s  %.2fx of one daemon\n", "spread over " n " daemons", ops, ops / one }'
done
