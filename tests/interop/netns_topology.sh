#!/usr/bin/env bash
# The docker-compose topology without Docker: remhsmd, a mosquitto broker
# and a device client each in a network namespace of their own, joined by
# a bridge in a fourth; nothing touches the host's network. The client
# provisions a device identity in remhsm over the network (key, CSR,
# certificate) and publishes to the broker with the key in remhsm.
#   netns_topology.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024
stop_daemon # it runs in its namespace below
[ "$(id -u)" -eq 0 ] || fail "network namespaces need root: run the test suite as root"

tag=rh$$
sw=${tag}s
pids=()
teardown() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  for ns in "$sw" "${tag}d" "${tag}b" "${tag}c"; do ip netns del "$ns" 2>/dev/null || true; done
  cleanup
}
trap teardown EXIT

ip netns add "$sw"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
join() { # NAME LAST_OCTET
  ip netns add "$tag$1"
  ip -n "$tag$1" link add eth0 type veth peer name "p$1" netns "$sw"
  ip -n "$tag$1" addr add "10.77.0.$2/24" dev eth0
  ip -n "$tag$1" link set eth0 up
  ip -n "$tag$1" link set lo up
  ip -n "$sw" link set "p$1" master br0
  ip -n "$sw" link set "p$1" up
}
join d 1
join b 2
join c 3
in_ns() { local ns=$tag$1; shift; ip netns exec "$ns" "$@"; }

# Certificates naming the namespaces' addresses, from the dev CA and a
# separate device CA, as the compose file's pki service makes them.
pki=$work/state/pki
server_cert() { # CA_STEM NAME IP
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$work/$2.key" -out "$work/$2.csr" 2>/dev/null
  openssl x509 -req -in "$work/$2.csr" -CA "$1.pem" -CAkey "$1.key" -days 1 \
    -extfile <(printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$3") \
    -out "$work/$2.pem" 2>/dev/null
}
server_cert "$pki/ca" remhsmd 10.77.0.1
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=device CA" -days 1 -keyout "$work/devca.key" -out "$work/devca.pem" 2>/dev/null
server_cert "$work/devca" broker 10.77.0.2

# ip netns exec execs the command: $! is the daemon's own PID.
ip netns exec "${tag}d" "$bin/remhsmd" --listen 10.77.0.1:5697 --state-dir "$work/state" --kdf-scrypt-n 1024 \
  --tls-cert "$work/remhsmd.pem" --tls-key "$work/remhsmd.key" 2>"$work/remhsmd.log" &
pids+=($!)
cat >"$work/mosquitto.conf" <<CNF
listener 8883 10.77.0.2
cafile $work/devca.pem
certfile $work/broker.pem
keyfile $work/broker.key
require_certificate true
use_identity_as_username true
allow_anonymous false
user $(id -un)
log_dest file $work/mosquitto.log
log_type all
CNF
ip netns exec "${tag}b" mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.err" &
pids+=($!)
wait_for() { # NS IP PORT
  for _ in $(seq 100); do
    in_ns "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
check "the client reaches remhsmd across namespaces" wait_for c 10.77.0.1 5697
check "and the broker" wait_for c 10.77.0.2 8883

export REMHSM_SERVER=10.77.0.1:5697 REMHSM_PIN=0000
r=("$bin/remhsm")
m=(--module "$module")
check "token init over the network" in_ns c "${r[@]}" token init --freertos --so-pin 11112222 "${m[@]}"
check "key gen" in_ns c "${r[@]}" key gen "${m[@]}"
check "csr" in_ns c "${r[@]}" csr --key "Device Priv TLS Key" --subject /CN=device-9 -o "$work/d.csr" "${m[@]}"
openssl x509 -req -in "$work/d.csr" -CA "$work/devca.pem" -CAkey "$work/devca.key" -days 1 \
  -out "$work/device.pem" 2>/dev/null
check "cert import" in_ns c "${r[@]}" cert import "$work/device.pem" "${m[@]}"

use_engine "$work"
ip netns exec "${tag}c" mosquitto_sub -h 10.77.0.2 -p 8883 --cafile "$work/devca.pem" --cert "$work/device.pem" \
  --tls-engine pkcs11 --keyform engine --key "$device_key" -t t/device-9 -C 1 -W 15 \
  >"$work/received" 2>"$work/sub.err" &
sub=$!
pids+=("$sub")
for _ in $(seq 200); do grep -q "Sending SUBACK" "$work/mosquitto.log" && break; sleep 0.05; done
check "the device publishes with its key in remhsm" \
  in_ns c mosquitto_pub -h 10.77.0.2 -p 8883 \
  --cafile "$work/devca.pem" --cert "$work/device.pem" --tls-engine pkcs11 --keyform engine \
  --key "$device_key" -t t/device-9 -m "from namespace c"
wait "$sub" || true
check "and the message arrives" grep -qx "from namespace c" "$work/received"
check "remhsmd saw the client from its namespace's address" \
  grep -q "event=handshake peer=10.77.0.3" "$work/remhsmd.log"
finish
