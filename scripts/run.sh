#!/usr/bin/env bash
# Installs what is missing, builds, installs under ./_install, makes a
# development PKI on first run and starts remhsmd in the foreground on
# 127.0.0.1 with its state under ./state.
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
listen="${REMHSM_LISTEN:-127.0.0.1:5697}"
"$prefix/bin/remhsm" pki init "$state/pki"

cat <<MSG

remhsmd is starting on $listen (state in $state). In another shell:

  REMHSM_SERVER=$listen REMHSM_CA=$state/pki/ca.pem REMHSM_CERT=$state/pki/client.pem REMHSM_KEY=$state/pki/client.key pkcs11-tool --module $module -L

(pkcs11-tool comes with Debian's opensc package.) Ctrl-C stops the daemon.

MSG
exec "$prefix/bin/remhsmd" --listen "$listen" --state-dir "$state"
