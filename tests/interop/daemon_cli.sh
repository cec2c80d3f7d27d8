#!/usr/bin/env bash
# remhsmd's command line and configuration file: --version, --help,
# --check-config on the shipped example (every key documented there), and
# each class of malformed setting refused with the file, line and key.
#   daemon_cli.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1"
stop_daemon # only the binary is needed here

d=("$bin/remhsmd")
example=$(dirname "$0")/../../deploy/remhsmd.conf.example
pki=(--state-dir "$work/state" --tls-ca "$work/state/pki/ca.pem"
     --tls-cert "$work/state/pki/server.pem" --tls-key "$work/state/pki/server.key")

check "--version names the version" bash -c "'$bin/remhsmd' --version | grep -qx 'remhsmd [0-9.]*'"
check "--help goes to stdout and exits 0" bash -c "'$bin/remhsmd' --help | grep -q -- --check-config"
flags=$("${d[@]}" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p' | grep -vxE 'config|check-config|version' | sort)
keys=$(grep -oE '^(# )?[a-z0-9-]+ =' "$example" | sed -E 's/^# //; s/ =//' | sort)
check "the example documents every key the daemon has" test "$flags" = "$keys"
cp "$(dirname "$0")/../../deploy/access.list.example" "$work/example.list"
check "the example access list parses" \
  "${d[@]}" --check-config "${pki[@]}" --access-list "$work/example.list"
check "the example passes --check-config (its paths overridden by flags)" \
  "${d[@]}" --config "$example" --check-config "${pki[@]}"
check "--check-config does not start serving" \
  bash -c "'$bin/remhsmd' --check-config ${pki[*]} --listen 127.0.0.1:0 | grep -q 'configuration OK'"

# Each class of error: the exit code and the message naming what is wrong.
refused() {
  local want=$1 message=$2
  shift 2
  [ "$(status_of "${d[@]}" "$@")" -eq "$want" ] && grep -q -- "$message" "$work/out"
}
conf() { printf '%b' "$1" >"$work/bad.conf"; echo "$work/bad.conf"; }
check "an unknown key names file, line and key" \
  refused 2 "bad.conf:2: unknown key 'colour'" --check-config --config "$(conf 'slots = 1\ncolour = blue\n')"
check "a number out of range" \
  refused 2 "bad.conf:1" --check-config --config "$(conf 'max-frame = 12\n')"
check "a value that is not a number" \
  refused 2 "bad.conf:1" --check-config --config "$(conf 'idle-timeout-ms = soon\n')"
check "a line without '='" \
  refused 2 "bad.conf:1" --check-config --config "$(conf 'tls12\n')"
check "a boolean that is not one" \
  refused 2 "bad.conf:1" --check-config --config "$(conf 'tls12 = perhaps\n')"
check "a scrypt cost that is not a power of two" \
  refused 2 "bad.conf:1" --check-config --config "$(conf 'kdf-scrypt-n = 1000\n')"
check "a busy-poll time over 10 ms" \
  refused 2 "bad.conf:1: busy-poll-us: expected an integer in 0..10000" --check-config \
  --config "$(conf 'busy-poll-us = 10001\n')"
check "a config file that does not exist" \
  refused 2 "nowhere.conf" --check-config --config "$work/nowhere.conf"
check "an unknown flag" refused 2 "colour" --check-config --colour blue
check "a listen address that is not one" \
  refused 1 "listen: 'localhost' is not ADDRESS:PORT" --check-config "${pki[@]}" --listen localhost
check "a certificate file that is missing" \
  refused 1 "$work/missing.pem" --check-config "${pki[@]}" --tls-cert "$work/missing.pem"
check "an unknown log level" refused 2 "log-level 'loud'" --check-config "${pki[@]}" --log-level loud
printf 'CN=ok 0 user\nCN=bad 0 wizard\n' >"$work/access.list"
check "an access list with a bad role names file and line" \
  refused 1 "access.list:2: roles" --check-config "${pki[@]}" --access-list "$work/access.list"
check "an unknown identity form" \
  refused 1 "identity-from 'email'" --check-config "${pki[@]}" --identity-from email
echo garbage >"$work/crl.pem"
check "a CRL file that is not one" \
  refused 1 "not a PEM CRL file" --check-config "${pki[@]}" --tls-crl "$work/crl.pem"
finish
