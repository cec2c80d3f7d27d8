#!/usr/bin/env bash
# The metrics endpoint: off by default, loopback only, Prometheus text with
# connections, sessions, calls by mechanism and result, latency histograms
# and login failures, after real calls through pkcs11-tool (one connection
# each, spread over three event loops: the counts hold every loop's calls).
#   metrics.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024
check "off by default" bash -c "! grep -q event=metrics-listening '$work/remhsmd.log'"
stop_daemon
start_daemon --kdf-scrypt-n 1024 --metrics-listen 127.0.0.1:0 --loops 3
mport=$(logged_port metrics-listening)
[ -n "$mport" ] || fail "no metrics listener"

scrape() { # PATH
  exec 3<>"/dev/tcp/127.0.0.1/$mport"
  printf 'GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n' "$1" >&3
  cat <&3
  exec 3<&-
}
tool=(pkcs11-tool --module "$module")
"$bin/remhsm" token init --module "$module" --freertos --so-pin 11112222 >/dev/null
"${tool[@]}" --login --pin 9999 -O >/dev/null 2>&1 || true
"${tool[@]}" --login --pin 0000 --keypairgen --key-type EC:prime256v1 --label m >/dev/null 2>&1
head -c 32 /dev/urandom >"$work/data"
for _ in 1 2 3; do
  "${tool[@]}" --login --pin 0000 --sign --mechanism ECDSA-SHA256 --label m \
    --input-file "$work/data" --output-file "$work/sig" >/dev/null 2>&1
done
scrape /metrics >"$work/metrics"
check "the calls were served by three loops" \
  bash -c "grep event=handshake '$work/remhsmd.log' | grep -o 'loop=[0-9]' | sort -u | wc -l | grep -qx 3"
has() { grep -q "$1" "$work/metrics"; }
check "HTTP 200 in Prometheus's text format" has 'Content-Type: text/plain; version=0.0.4'
check "open connections" has '^remhsm_connections [0-9]'
check "connections accepted" has '^remhsm_connections_total{outcome="accepted"} [1-9]'
check "sessions" has '^remhsm_sessions [0-9]'
check "three ECDSA-SHA256 signatures, by mechanism and result" \
  has '^remhsm_calls_total{call="C_Sign",mechanism="0x1044",result="0x0"} 3$'
check "the failed login" has '^remhsm_login_failures_total 1$'
check "the secure heap's size" has '^remhsm_secure_heap_bytes{state="size"} 4194304$'
check "and what is in use there (the TLS key at least)" has '^remhsm_secure_heap_bytes{state="used"} [1-9][0-9]*$'
check "a latency histogram per call" has '^remhsm_call_duration_seconds_bucket{call="C_Sign",le="+Inf"} 3$'
check "another path is 404" bash -c "$(declare -f scrape); mport=$mport; scrape /other | head -1 | grep -q '404 Not Found'"
# A request that never ends its headers: closed at 4 KiB, nothing served.
oversized() {
  exec 3<>"/dev/tcp/127.0.0.1/$mport"
  head -c 5000 /dev/zero | tr '\0' A >&3 || true
  local answer
  answer=$(timeout 5 cat <&3 || true)
  exec 3<&-
  [ -z "$answer" ]
}
check "an endless request is closed unanswered" oversized
check "and the endpoint still serves" bash -c "$(declare -f scrape); mport=$mport; scrape /metrics | grep -q '^remhsm_connections '"
check "a non-loopback listener is refused" \
  test "$(status_of "$bin/remhsmd" --check-config --state-dir "$work/state" --metrics-listen 0.0.0.0:9697)" -eq 1
check "and named" grep -q "not a loopback" "$work/out"
finish
