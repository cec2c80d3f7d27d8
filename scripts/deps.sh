#!/usr/bin/env bash
# Installs the Debian 12 packages remhsm needs that are missing.
#   scripts/deps.sh build   what building and running needs
#   scripts/deps.sh test    that, plus what the test suite drives
#   scripts/deps.sh bench   that, plus SoftHSMv2 to compare against
set -euo pipefail

build=(cmake make gcc pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler
       libssl-dev libsqlite3-dev libp11-kit-dev check)
test=(opensc gnutls-bin libengine-pkcs11-openssl openssl xxd clang libclang-rt-14-dev
      clang-format mosquitto mosquitto-clients)
bench=(softhsm2)

wanted=("${build[@]}")
case "${1:-build}" in
  build) ;;
  test) wanted+=("${test[@]}") ;;
  bench) wanted+=("${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
