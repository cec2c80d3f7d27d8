#!/usr/bin/env bash
# The showcase: a device identity whose key never leaves remhsm connects to
# an MQTT broker with mutual TLS. A key generated in remhsm, a CSR signed by
# remhsm, a certificate from a test CA imported next to the key; then
# mosquitto_pub publishes through the libp11 engine to a mosquitto broker
# with require_certificate, and a subscriber receives the message. The
# same key authenticates to openssl s_server -Verify 1 over TLS 1.3 and
# TLS 1.2. Certificates the broker must refuse are refused.
#   mqtt_tls.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

r=("$bin/remhsm")
m=(--module "$module")
pki=$work/mqtt
mkdir -p "$pki"
pids=()
stop_peers() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_peers; cleanup' EXIT

# A loopback port nothing listens on (the peers cannot be told to pick
# one), below the kernel's ephemeral range, where the daemons of tests
# running alongside get theirs.
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# key, cert: signs NAME's request with the test CA (or CA_DIR given).
sign_csr() {
  openssl x509 -req -in "$1" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -days 1 \
    -copy_extensions copy -out "$2" 2>/dev/null
}
software_identity() {
  local name=$1 ca=${2:-$pki/ca}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$name" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -days 1 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$pki/$name.pem" 2>/dev/null
}

# The test CA, the broker's identity, a subscriber's, and a stranger CA.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=remhsm test CA" -days 1 -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=stranger CA" -days 1 -keyout "$pki/stranger.key" -out "$pki/stranger.pem" 2>/dev/null
software_identity broker
software_identity subscriber

# Provisioning, exactly as the README tells an operator.
"${r[@]}" token init --freertos --so-pin 11112222 "${m[@]}" >/dev/null
export REMHSM_PIN=0000
check "remhsm key gen" "${r[@]}" key gen --type ec-p256 "${m[@]}"
check "remhsm csr" "${r[@]}" csr --key "Device Priv TLS Key" --subject /CN=device-1 \
  -o "$pki/device.csr" "${m[@]}"
check "the test CA issues the device certificate" sign_csr "$pki/device.csr" "$pki/device.pem"
check "remhsm cert import" "${r[@]}" cert import "$pki/device.pem" "${m[@]}"
# A certificate for the remhsm key from a CA the broker does not trust.
openssl x509 -req -in "$pki/device.csr" -CA "$pki/stranger.pem" -CAkey "$pki/stranger.key" \
  -days 1 -out "$pki/device-stranger.pem" 2>/dev/null

# OpenSSL finds the engine and the module through its configuration.
use_engine "$pki"

port=$(free_port)
cat >"$pki/mosquitto.conf" <<CNF
listener $port 127.0.0.1
# Started as root, mosquitto would switch to its own user, which cannot
# read this test's private folder; as another user the line changes nothing.
user $(id -un)
cafile $pki/ca.pem
certfile $pki/broker.pem
keyfile $pki/broker.key
require_certificate true
use_identity_as_username true
allow_anonymous false
log_dest file $pki/mosquitto.log
log_type all
CNF
: >"$pki/mosquitto.log"
mosquitto -c "$pki/mosquitto.conf" 2>"$pki/mosquitto.err" &
pids+=($!)
wait_port "$port" || fail "mosquitto did not start: $(cat "$pki/mosquitto.err")"

tls_client=(--cafile "$pki/ca.pem" -h 127.0.0.1 -p "$port")
subscribe() {
  mosquitto_sub "${tls_client[@]}" --cert "$pki/subscriber.pem" --key "$pki/subscriber.key" \
    -t devices/device-1 -C 1 -W 15 >"$pki/received" 2>"$pki/sub.err" &
  sub_pid=$!
  # Subscribed once the broker has sent this subscriber its SUBACK.
  local acks=$1
  for _ in $(seq 200); do
    [ "$(grep -c 'Sending SUBACK' "$pki/mosquitto.log")" -ge "$acks" ] && break
    sleep 0.05
  done
}
publish() {
  mosquitto_pub "${tls_client[@]}" --tls-engine pkcs11 --keyform engine \
    --cert "$1" --key "$2" -t devices/device-1 -m "$3" -q 1
}

subscribe 1
check "mosquitto_pub publishes with the key inside remhsm" \
  publish "$pki/device.pem" "$device_key" "hello from device-1"
wait "$sub_pid" || true
check "the subscriber receives the message" grep -qx "hello from device-1" "$pki/received"
check "the broker took the identity from the device's certificate" \
  grep -q "u'device-1'" "$pki/mosquitto.log"

subscribe 2
check "a certificate from a CA the broker does not trust is refused" \
  test "$(status_of publish "$pki/device-stranger.pem" "$device_key" "stranger")" -ne 0
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=thief \
  -keyout "$pki/thief.key" -out /dev/null 2>/dev/null
check "the device certificate with a key that is not in remhsm is refused" \
  test "$(status_of mosquitto_pub "${tls_client[@]}" --cert "$pki/device.pem" \
    --key "$pki/thief.key" -t devices/device-1 -m thief)" -ne 0
check "a client without a certificate is refused" \
  test "$(status_of mosquitto_pub "${tls_client[@]}" -t devices/device-1 -m anon)" -ne 0
check "the device publishes again" \
  publish "$pki/device.pem" "$device_key" "after the refusals"
wait "$sub_pid" || true
check "the subscriber's first message is the device's, none of the refused" \
  grep -qx "after the refusals" "$pki/received"
stop_peers

# openssl s_server -Verify 1: the handshake completes only if the client
# proves possession of the key, which it can only do through remhsm.
s_server_accepts() {
  local version=$1 label=$2 sport
  sport=$(free_port)
  # -rev serves the connection without reading the server's stdin.
  openssl s_server -accept "127.0.0.1:$sport" -cert "$pki/broker.pem" -key "$pki/broker.key" \
    -CAfile "$pki/ca.pem" -Verify 1 -verify_return_error "-$version" -naccept 1 -rev \
    >"$pki/s_server.out" 2>&1 &
  local server=$!
  pids+=("$server")
  # A probe connection would use up -naccept 1: wait for its ACCEPT line.
  for _ in $(seq 100); do
    grep -q ACCEPT "$pki/s_server.out" && break
    sleep 0.05
  done
  # s_client completes the handshake, sends the line and closes at the
  # end of its input; the timeout only bounds a broken run.
  echo ping | timeout 20 openssl s_client -connect "127.0.0.1:$sport" -CAfile "$pki/ca.pem" \
    -engine pkcs11 -keyform engine -key "$device_key" -cert "$pki/device.pem" \
    "-$version" -verify_return_error >"$pki/s_client.out" 2>&1 || true
  wait "$server" || true
  grep -q "Peer certificate: CN = device-1" "$pki/s_server.out" &&
    grep -q "Verification: OK" "$pki/s_server.out" &&
    grep -q "Protocol version: $label" "$pki/s_server.out" && return 0
  cat "$pki/s_server.out" "$pki/s_client.out"
  return 1
}
check "s_server -Verify 1 accepts the remhsm key over TLS 1.3" \
  s_server_accepts tls1_3 TLSv1.3
check "s_server -Verify 1 accepts the remhsm key over TLS 1.2" \
  s_server_accepts tls1_2 TLSv1.2

finish
