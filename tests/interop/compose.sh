#!/usr/bin/env bash
# deploy/docker-compose.yml, run with podman-compose: the images built
# once from deploy/Dockerfile (targets remhsmd, broker, device; with
# podman, whose builds reach the package mirror only on the host's
# network), then remhsmd, mosquitto and the device each a service of its
# own on the compose network, dialled by name. The device provisions its
# identity in remhsm and publishes over mutual TLS to the broker with the
# key in remhsm. Everything the test made (containers, volumes, network,
# images) is removed by name.
#   compose.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1"
stop_daemon # the daemon under test runs in a container
src=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF=$src/tests/container/containers.conf
project=rhcompose$$
export REMHSM_IMAGE=localhost/remhsm-compose-$$
compose=(podman-compose -p "$project" -f "$src/deploy/docker-compose.yml")
teardown() {
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
  for t in remhsmd broker device; do podman rmi -f "$REMHSM_IMAGE-$t:dev" >/dev/null 2>&1 || true; done
  cleanup
}
trap teardown EXIT

ensure_base_image
build_targets remhsmd broker device
check "podman-compose starts the three services" compose_up
device=${project}_device_1
status=$(exit_code_of "$device")
podman logs "$device" >"$work/device.log" 2>&1 || true
podman logs "${project}_mosquitto_1" >"$work/broker.log" 2>&1 || true
podman logs "${project}_remhsmd_1" >"$work/remhsmd.log" 2>&1 || true
check "the device finished, exit 0" test "$status" = 0
check "it published with the key in remhsm" grep -q "published with the key in remhsm" "$work/device.log"
check "the broker took its certificate's identity" \
  grep -q "as .*(.*u'.*compose-device" "$work/broker.log"
check "the device reached remhsmd by its name, over the compose network" \
  grep -q "event=hello peer=10\." "$work/remhsmd.log"
[ "$failed" -eq 0 ] || { echo "--- device"; tail -n 20 "$work/device.log"; echo "--- broker"; tail -n 20 "$work/broker.log"; }
finish
