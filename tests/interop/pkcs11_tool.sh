#!/usr/bin/env bash
# Interop: OpenSC's pkcs11-tool loads the *installed* libremhsm-pkcs11.so and
# talks to a real remhsmd on a free loopback port.
#   pkcs11_tool.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d /tmp/remhsm-interop-XXXXXX)
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- daemon log"; cat "$work/remhsmd.log"; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null
module=$(find "$work/prefix" -name libremhsm-pkcs11.so | head -n 1)
[ -n "$module" ] || fail "cmake --install did not install libremhsm-pkcs11.so"
[ -x "$work/prefix/bin/remhsmd" ] || fail "remhsmd not installed"
[ -x "$work/prefix/bin/remhsm" ] || fail "remhsm not installed"
[ -n "$(find "$work/prefix" -name libremhsm-pkcs11.a)" ] || fail "static library not installed"

"$work/prefix/bin/remhsm" pki init "$work/state/pki" >/dev/null
"$work/prefix/bin/remhsmd" --listen 127.0.0.1:0 --state-dir "$work/state" \
  2>"$work/remhsmd.log" &
daemon_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*event=listening listen=127.0.0.1:\([0-9]*\).*/\1/p' "$work/remhsmd.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "${port:-}" ] || fail "remhsmd did not start"

export REMHSM_SERVER=127.0.0.1:$port REMHSM_CA=$work/state/pki/ca.pem \
  REMHSM_CERT=$work/state/pki/client.pem REMHSM_KEY=$work/state/pki/client.key
tool=(pkcs11-tool --module "$module")

passed=0 failed=0
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

list=$("${tool[@]}" -L 2>&1) || fail "pkcs11-tool -L: $list"
check "pkcs11-tool -L lists the slot" grep -q "Slot 0 (0x0): remhsm remote slot" <<<"$list"

info=$("${tool[@]}" -I 2>&1) || fail "pkcs11-tool -I: $info"
check "pkcs11-tool -I shows the manufacturer" grep -q "Manufacturer *remhsm" <<<"$info"

"${tool[@]}" --generate-random 32 --output-file "$work/random.bin" 2>"$work/tool.err" ||
  fail "generate-random: $(cat "$work/tool.err")"
check "pkcs11-tool --generate-random 32 returns 32 bytes" \
  test "$(stat -c %s "$work/random.bin")" -eq 32
"${tool[@]}" --generate-random 32 --output-file "$work/random2.bin" 2>/dev/null
differ() { ! cmp -s "$1" "$2"; }
check "two random draws differ" differ "$work/random.bin" "$work/random2.bin"

check "daemon logged the client's identity" \
  grep -q "event=handshake .*identity=CN=remhsm-dev-client" "$work/remhsmd.log"

kill -TERM "$daemon_pid"
status=0; wait "$daemon_pid" || status=$?
daemon_pid=
check "remhsmd exits 0 on SIGTERM" test "$status" -eq 0
unset REMHSM_SERVER
out=$(REMHSM_SERVER=127.0.0.1:$port "${tool[@]}" -L 2>&1 || true)
check "an unreachable daemon is CKR_DEVICE_ERROR" grep -q "CKR_DEVICE_ERROR" <<<"$out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
