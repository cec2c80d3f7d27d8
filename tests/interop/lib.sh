# Shared by the interop scripts: install the build into a temporary prefix,
# start remhsmd on a free loopback port, stop it by PID, count checks.
#   . lib.sh BUILD_DIR [remhsmd flags...]
# sets: work, bin, module, port, and the REMHSM_* client variables.

work=$(mktemp -d /tmp/remhsm-interop-XXXXXX)
daemon_pid=
passed=0
failed=0

# debian:bookworm-slim cannot be pulled (no registry is reachable): it
# is made once per machine from Debian's packages with debootstrap, and
# kept, for the container tests.
ensure_base_image() {
  podman image exists debian:bookworm-slim && return 0
  local mirror
  mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources | head -n 1)
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap: $(tail -n 3 "$work/debootstrap.log")"
  tar -C "$work/rootfs" -c . | podman import - debian:bookworm-slim >/dev/null
}

# The compose tests: the Dockerfile's targets built with podman (whose
# builds reach the package mirror only on the host's network) as
# $REMHSM_IMAGE-TARGET:dev, and the compose file ($compose, an array: the
# podman-compose command) started without building.
build_targets() {
  local t
  for t in "$@"; do
    check "image $t builds" bash -c "podman build --format docker --network=host \
      --target $t -f '$src/deploy/Dockerfile' -t '$REMHSM_IMAGE-$t:dev' '$src' \
      >'$work/build-$t.log' 2>&1 || { tail -n 20 '$work/build-$t.log'; exit 1; }"
  done
}
compose_up() {
  "${compose[@]}" up -d --no-build >"$work/up.log" 2>&1 || { tail -n 20 "$work/up.log"; return 1; }
}
# The exit code of container $1 once it has exited (empty if not in 120 s).
exit_code_of() {
  for _ in $(seq 600); do
    [ "$(podman inspect -f '{{.State.Status}}' "$1" 2>/dev/null)" = exited ] &&
      podman inspect -f '{{.State.ExitCode}}' "$1" && return 0
    sleep 0.2
  done
}

stop_daemon() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  daemon_pid=
}
cleanup() {
  stop_daemon
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- daemon log"
  cat "$work/remhsmd.log"
  exit 1
}

check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
  fi
}

# The exit status of a command, its output kept in $work/out.
status_of() {
  local s=0
  "$@" >"$work/out" 2>&1 || s=$?
  echo "$s"
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# The loopback port the daemon's log (LOG, default remhsmd.log) names for
# EVENT (listening, metrics-listening), waiting up to 5 s for the line;
# empty if it never came.
#   logged_port EVENT [LOG]
logged_port() {
  local found= log=${2:-$work/remhsmd.log}
  for _ in $(seq 100); do
    found=$(sed -n "s/.*event=$1 listen=127.0.0.1:\([0-9]*\).*/\1/p" "$log")
    [ -n "$found" ] && break
    sleep 0.05
  done
  echo "$found"
}

start_daemon() {
  "$bin/remhsmd" --listen 127.0.0.1:0 --state-dir "$work/state" "$@" \
    2>"$work/remhsmd.log" &
  daemon_pid=$!
  port=$(logged_port listening)
  [ -n "$port" ] || fail "remhsmd did not start"
  export REMHSM_SERVER=127.0.0.1:$port REMHSM_CA=$work/state/pki/ca.pem \
    REMHSM_CERT=$work/state/pki/client.pem REMHSM_KEY=$work/state/pki/client.key
}

# OpenSSL's PKCS#11 engine (libp11) on the installed module with user PIN
# 0000, through OPENSSL_CONF, for the device key FreeRTOS's label names
# ($device_key). mosquitto_pub 2.0.11 opens its --key argument as a file
# before handing it to the engine (upstream PR #1820 is still open): an
# empty file named as the URI, in DIR, which becomes the working folder,
# satisfies that check.
#   use_engine DIR
use_engine() {
  cat >"$1/openssl.cnf" <<CNF
openssl_conf = init
[init]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
MODULE_PATH = $module
PIN = 0000
init = 0
CNF
  export OPENSSL_CONF=$1/openssl.cnf
  device_key='pkcs11:token=FreeRTOS;object=Device%20Priv%20TLS%20Key;type=private'
  cd "$1"
  : >"$device_key"
}

cmake --install "$1" --prefix "$work/prefix" >/dev/null
bin=$work/prefix/bin
module=$(find "$work/prefix" -name libremhsm-pkcs11.so | head -n 1)
[ -n "$module" ] || fail "cmake --install did not install libremhsm-pkcs11.so"
"$bin/remhsm" pki init "$work/state/pki" >/dev/null
shift
start_daemon "$@"
