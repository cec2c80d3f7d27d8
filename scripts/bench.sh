#!/usr/bin/env bash
# Builds, starts a fresh remhsmd on a free loopback port, and runs
# `remhsm bench` through the remhsm module and, in the same run, through a
# fresh SoftHSMv2 token (a local module, no network) and through p11-kit's
# client to `p11-kit server` exporting that token, printing the ratios, the
# CPU per call of the bench and of the daemon against the bare operation,
# and a plot per measurement (build-run/bench/*.svg): random bytes, ECDSA
# P-256 and RSA-2048 signatures at 1, 8 and 32 threads, and RSA-2048
# against `openssl speed`. Then C_Login latency with the
# default KDF, signing under a handshake flood, find by label through the
# module with FIND_OBJECTS token objects (filling 1M takes minutes),
# recovery from restarts, and the store at each of STORE_SIZES.
#   scripts/bench.sh [SECONDS_PER_ROUND] [STORE_SIZES] [FIND_OBJECTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-5}
sizes=${2:-1000,100000,1000000}
find_objects=${3:-1000000}

scripts/deps.sh bench
cmake -S . -B build-run -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$root/_install" >/dev/null
cmake --build build-run -j"$(nproc)" >/dev/null
cmake --install build-run >/dev/null
module=$(find "$root/_install" -name libremhsm-pkcs11.so | head -n 1)

work=$(mktemp -d /tmp/remhsm-bench-XXXXXX)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" || true
  rm -rf "$work"
}
trap cleanup EXIT

_install/bin/remhsm pki init "$work/pki" >/dev/null
_install/bin/remhsmd --listen 127.0.0.1:0 --state-dir "$work" 2>"$work/remhsmd.log" &
daemon_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*event=listening listen=127.0.0.1:\([0-9]*\).*/\1/p' "$work/remhsmd.log")
  [ -n "$port" ] && break
  sleep 0.05
done

echo "== SoftHSMv2 token for comparison (in-process, no network)"
mkdir -p "$work/softhsm"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$work/softhsm" \
  >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 0000 --so-pin 123456 >/dev/null
softhsm=/usr/lib/softhsm/libsofthsm2.so

echo "== p11-kit's server exporting that token over a unix socket (no TLS)"
p11-kit server -f --provider "$softhsm" -n "$work/p11-kit.sock" "pkcs11:token=bench" \
  >"$work/p11-kit.log" 2>&1 &
p11kit_pid=$!
trap 'kill -TERM "$p11kit_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -S "$work/p11-kit.sock" ] && break; sleep 0.05; done
export P11_KIT_SERVER_ADDRESS=unix:path=$work/p11-kit.sock
p11kit=/usr/lib/$(gcc -print-multiarch)/pkcs11/p11-kit-client.so
plots=$root/build-run/bench
mkdir -p "$plots"

export REMHSM_SERVER=127.0.0.1:$port REMHSM_CA=$work/pki/ca.pem \
  REMHSM_CERT=$work/pki/client.pem REMHSM_KEY=$work/pki/client.key
_install/bin/remhsm token init --module "$module" --freertos --so-pin bench-so-pin >/dev/null

modules="1 = remhsm over mTLS on loopback ($(nproc) cores), 2 = SoftHSMv2, 3 = p11-kit server"
echo "== C_GenerateRandom: $modules"
_install/bin/remhsm bench --module "$module" --compare "$softhsm" --compare "$p11kit" \
  --threads 1,8,32 --seconds "$seconds" --plot "$plots/random.svg"

echo "== ECDSA P-256 sign (C_SignInit + C_Sign): $modules"
_install/bin/remhsm bench --module "$module" --compare "$softhsm" --compare "$p11kit" \
  --sign-pin 0000 --threads 1,8,32 --seconds "$seconds" --plot "$plots/ecdsa.svg" |
  tee "$work/ecdsa.txt"

echo "== RSA-2048 sign (C_SignInit + C_Sign): $modules"
_install/bin/remhsm bench --module "$module" --compare "$softhsm" --compare "$p11kit" \
  --sign-pin 0000 --key rsa --threads 1,8,32 --seconds "$seconds" --plot "$plots/rsa.svg" |
  tee "$work/rsa.txt"

echo "== RSA-2048 sign in OpenSSL itself, one process per core"
speed=$(openssl speed -multi "$(nproc)" -seconds "$seconds" rsa2048 2>/dev/null |
  awk '/^rsa 2048 bits/ {print $6}')
rsa8=$(awk '$1 == 8 && $NF == 1 {print $3}' "$work/rsa.txt")
echo "openssl speed -multi $(nproc) rsa2048: $speed signs/s;" \
  "remhsm at 8 threads: $rsa8 ops/s, $(awk -v a="$rsa8" -v b="$speed" \
  'BEGIN {printf "%.2f", a / b}')x"

echo "== C_Login with the default KDF (scrypt N=32768, r=8, p=1)"
_install/bin/remhsm bench login --module "$module" --pin 0000 --count 30

echo "== ECDSA signing while 1,000 connections sit mid-handshake (p99 against the baseline)"
_install/bin/remhsm bench --module "$module" --sign-pin 0000 --threads 1,8 --seconds "$seconds" \
  --flood 1000

echo "== find by label through the module, $find_objects token objects"
_install/bin/remhsm bench find --module "$module" --pin 0000 --objects "$find_objects"

echo "== recovery: a signing loop through 20 daemon restarts and 20 cut links"
cmake -S . -B build -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$(nproc)" --target test_client_restart >/dev/null
build/tests/test_client_restart | grep '^restart-recovery:'

echo "== store: create (own durable transaction), read by id, find by label"
mkdir -p "$work/store-bench"
_install/bin/remhsm bench store --dir "$work/store-bench" --objects "$sizes"
