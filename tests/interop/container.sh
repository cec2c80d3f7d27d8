#!/usr/bin/env bash
# The Docker image, built and run with podman (no Docker engine runs here):
# the multi-stage build from this repository, the daemon running as a
# non-root user with its state in the volume, and the HEALTHCHECK, a real
# PKCS#11 call through the module, passing. The base image
# debian:bookworm-slim cannot be pulled (no registry is reachable), so it is
# made once per machine from Debian's packages with debootstrap and kept.
#   container.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1"
stop_daemon # the daemon under test runs in the container
src=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF=$src/tests/container/containers.conf
name=remhsm-test-$$
image=localhost/remhsm-test:$$
trap 'podman rm -f -v "$name" >/dev/null 2>&1 || true; podman rmi -f "$image" >/dev/null 2>&1 || true; cleanup' EXIT

ensure_base_image
check "the Dockerfile builds (podman, docker format)" \
  bash -c "podman build --format docker --network=host -f '$src/deploy/Dockerfile' \
    -t '$image' '$src' >'$work/build.log' 2>&1 || { tail -n 20 '$work/build.log'; exit 1; }"
check "the container starts with no network of the host's" \
  bash -c "podman run -d --name '$name' --network=none '$image' >/dev/null 2>&1"
for _ in $(seq 100); do
  podman logs "$name" 2>&1 | grep -q "event=listening" && break
  sleep 0.1
done
check "remhsmd listens inside" bash -c "podman logs '$name' 2>&1 | grep -q 'event=listening listen=0.0.0.0:5697'"
check "it runs as a user of its own, not root" \
  bash -c "[ \"\$(podman exec '$name' id -u)\" != 0 ]"
check "its state lives in the volume" \
  bash -c "podman exec '$name' test -f /var/lib/remhsm/store.db"
check "and its store key apart from the state" \
  bash -c "podman exec '$name' test -f /etc/remhsm/keys/store.key &&
    ! podman exec '$name' test -e /var/lib/remhsm/store.key"
check "the HEALTHCHECK, a PKCS#11 call through the module, passes" \
  bash -c "podman healthcheck run '$name' 2>/dev/null"
check "and it really reaches the token" \
  bash -c "podman exec '$name' remhsm token list | grep -q '^slot 0:'"
finish
