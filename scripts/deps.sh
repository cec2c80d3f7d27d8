#!/usr/bin/env bash
# Installs the Debian 12 packages remhsm needs that are missing.
#   scripts/deps.sh build   what building and running needs (with opensc,
#                           whose pkcs11-tool the run script points at)
#   scripts/deps.sh test    that, plus what the test suite drives, and the
#                           i386 libraries the 32-bit client build needs
#   scripts/deps.sh bench   the same as test (SoftHSMv2, to compare
#                           against, is among the test packages)
set -euo pipefail

build=(cmake make gcc pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler
       libssl-dev libsqlite3-dev libpq-dev libp11-kit-dev libsystemd-dev check opensc)
test=(gnutls-bin libengine-pkcs11-openssl openssl xxd gdb strace clang libclang-rt-14-dev
      clang-format mosquitto mosquitto-clients dpkg-dev systemd p11-kit p11-kit-modules iproute2
      python3-pykcs11
      podman runc debootstrap softhsm2 postgresql-15 patroni etcd-server etcd-client
      podman-compose golang-github-containernetworking-plugin-dnsname)
bench=()

wanted=("${build[@]}")
case "${1:-build}" in
  build) ;;
  test) wanted+=("${test[@]}") ;;
  bench) wanted+=("${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

# The 32-bit client build (scripts/test.sh): multiarch i386 libraries.
i386=(gcc-multilib libssl-dev:i386 libprotobuf-c-dev:i386 check:i386 libp11-kit-dev:i386)
[ "${1:-build}" = build ] || wanted+=("${i386[@]}")

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
if [[ " ${missing[*]} " == *":i386 "* ]] &&
  ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
fi
# An index that fails to download (a mirror mid-sync) is reported and
# skipped; the install below says what it then cannot find.
apt-get update -qq || true

# libssl is Multi-Arch: same, so both architectures must carry one version.
# The i386 candidate can lag the host's (its security index may not be
# reachable): then both take the version i386 has.
pin=()
if [[ " ${missing[*]} " == *" libssl-dev:i386 "* ]]; then
  v=$(apt-cache policy libssl-dev:i386 | sed -n 's/ *Candidate: //p')
  pin=("libssl3=$v" "libssl3:i386=$v" "libssl-dev=$v" "libssl-dev:i386=$v")
fi
# The tests start PostgreSQL servers of their own: the package is not to
# make and start a cluster of its own (Debian's documented switch).
if [[ " ${missing[*]} " == *" postgresql-15 "* ]] &&
  [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  --allow-downgrades "${missing[@]}" "${pin[@]}" >/dev/null
