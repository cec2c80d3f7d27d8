#!/usr/bin/env bash
# Packaging: a tree configured for /usr, `cpack -G DEB`, and `dpkg -i` of
# the package on this machine (root, as CI is): remhsmd --version, the
# unit (systemd-analyze verify, and security exposure at most 2.0), the
# p11-kit module file (p11-kit list-modules finds remhsm with a daemon to
# talk to), the pkg-config file (an application builds with it). The
# package is purged again at the end.
#   deb_package.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || fail "dpkg -i needs root: run the test suite as root"
dpkg-query -W -f='${Status}' remhsm 2>/dev/null | grep -q "install ok installed" &&
  fail "a remhsm package is installed already; this test would replace it"

purge() { dpkg --purge remhsm >/dev/null 2>&1 || true; }
trap 'purge; cleanup' EXIT

cmake -S "$src" -B "$work/deb" -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/deb" -j"$(nproc)" >/dev/null
check "cpack builds the .deb" bash -c "cd '$work/deb' && cpack -G DEB >/dev/null"
deb=$(ls "$work"/deb/remhsm_*_*.deb)
check "its dependencies come from the binaries" \
  bash -c "dpkg-deb -f '$deb' Depends | grep -q 'libssl3' && dpkg-deb -f '$deb' Depends | grep -q libuv1"
check "dpkg -i installs it" dpkg -i "$deb"
check "remhsmd --version runs from /usr/bin" bash -c "/usr/bin/remhsmd --version | grep -q '^remhsmd '"
check "the configuration is a conffile in /etc" \
  bash -c "dpkg-query --showformat='\${Conffiles}' -W remhsm | grep -q /etc/remhsm/remhsmd.conf"
check "the installed unit passes systemd-analyze verify" \
  systemd-analyze verify /lib/systemd/system/remhsmd.service
exposure() {
  systemd-analyze security --offline=true "$1" 2>&1 |
    sed -n 's/.*Overall exposure level for remhsmd.service: \([0-9.]*\).*/\1/p'
}
at_most_2() { awk -v e="$1" 'BEGIN { exit !(e != "" && e <= 2.0) }'; }
echo "systemd exposure: deploy/remhsmd.service $(exposure "$src/deploy/remhsmd.service"), installed $(exposure /lib/systemd/system/remhsmd.service)"
check "deploy/remhsmd.service's security exposure is at most 2.0" \
  at_most_2 "$(exposure "$src/deploy/remhsmd.service")"
check "and the installed unit's" at_most_2 "$(exposure /lib/systemd/system/remhsmd.service)"
check "p11-kit list-modules finds the remhsm module" \
  bash -c "p11-kit list-modules 2>/dev/null | grep -A3 '^remhsm: /usr/lib/.*/libremhsm-pkcs11.so' |
    grep -q 'library-manufacturer: remhsm'"
check "an application builds against it with pkg-config" \
  bash -c "cc '$src/tests/interop/static_client.c' \$(pkg-config --cflags remhsm-pkcs11) \
    \$(pkg-config --libs remhsm-pkcs11) -o '$work/app' && '$work/app' | grep -q remhsm"
check "dpkg --purge removes it, configuration included" \
  bash -c "dpkg --purge remhsm >/dev/null && [ ! -e /usr/bin/remhsmd ] && [ ! -e /etc/remhsm ]"
finish
