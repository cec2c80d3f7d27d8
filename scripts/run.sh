#!/usr/bin/env bash
# Installs what is missing, builds, installs under ./_install, makes a
# development PKI on first run and starts remhsmd in the foreground on
# 127.0.0.1 with its state under ./state and the store key under ./keys
# (apart, so that a copy of the state folder does not open).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh build
cmake -S . -B build-run -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$root/_install" >/dev/null
cmake --build build-run -j"$(nproc)" >/dev/null
cmake --install build-run >/dev/null

prefix="$root/_install"
libdir=$(cmake -L -N build-run 2>/dev/null | sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p')
module="$prefix/${libdir:-lib}/libremhsm-pkcs11.so"
state="$root/state"
keys="$root/keys"
listen="${REMHSM_LISTEN:-127.0.0.1:5697}"
"$prefix/bin/remhsm" pki init "$state/pki"
install -d -m 0700 "$keys"
env="REMHSM_SERVER=$listen REMHSM_CA=$state/pki/ca.pem REMHSM_CERT=$state/pki/client.pem REMHSM_KEY=$state/pki/client.key"

cat <<MSG

remhsmd is starting on $listen (state in $state, store key in
$keys/store.key: back it up apart from the state). In another shell:

  $env pkcs11-tool --module $module -L
  $env $prefix/bin/remhsm token list

Ctrl-C stops the daemon.

MSG
exec "$prefix/bin/remhsmd" --listen "$listen" --state-dir "$state" \
  --store-key "$keys/store.key"
