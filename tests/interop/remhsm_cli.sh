#!/usr/bin/env bash
# The installed remhsm CLI against a real daemon: token init (FreeRTOS
# presets), list and set-pin, checked with OpenSC's pkcs11-tool.
#   remhsm_cli.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --slots 2 --kdf-scrypt-n 1024

cli=("$bin/remhsm" token --module "$module")
tool=(pkcs11-tool --module "$module")


check "token init --freertos" "${cli[@]}" init --freertos --so-pin 11112222
list=$("${cli[@]}" list)
check "token list shows the FreeRTOS token with its user PIN" \
  grep -q 'slot 0: label "FreeRTOS", .*initialised, user PIN set' <<<"$list"
check "token list shows the blank slot" grep -q 'slot 1: label "", .*blank' <<<"$list"
check "the preset user PIN 0000 logs in" \
  "${tool[@]}" --slot 0 --login --pin 0000 --generate-random 4 --output-file /dev/null
check "token init picks the next blank slot" \
  "${cli[@]}" init --label gateway --so-pin 33334444 --pin 5555
check "token set-pin needs --token with two tokens" \
  test "$(status_of "${cli[@]}" set-pin --pin 0000 --new-pin 9999)" -eq 1
check "set-pin names the ambiguity" grep -q "several tokens" "$work/out"
check "token set-pin changes the user PIN" \
  "${cli[@]}" set-pin --token FreeRTOS --pin 0000 --new-pin 9999
check "the new user PIN logs in" \
  "${tool[@]}" --slot 0 --login --pin 9999 --generate-random 4 --output-file /dev/null
check "token set-pin --so changes the SO PIN" \
  "${cli[@]}" set-pin --token gateway --so --so-pin 33334444 --new-pin 77778888
check "a wrong PIN exits 1 naming CKR_PIN_INCORRECT" \
  test "$(status_of "${cli[@]}" set-pin --token gateway --pin 1212 --new-pin 3434)" -eq 1
check "the message names the code" grep -q "CKR_PIN_INCORRECT" "$work/out"
check "re-initialising needs the SO PIN" \
  test "$(status_of "${cli[@]}" init --slot 1 --label again --so-pin 33334444)" -eq 1
check "with the changed SO PIN it works" \
  "${cli[@]}" init --slot 1 --label again --so-pin 77778888
check "bad usage exits 2" test "$(status_of "${cli[@]}" frobnicate)" -eq 2
check "a label over 32 bytes is refused" \
  test "$(status_of "${cli[@]}" init --so-pin 11112222 --slot 1 \
    --label 0123456789012345678901234567890123)" -eq 2
check "no SO PIN and no terminal is a clear error" \
  test "$(status_of setsid "${cli[@]}" init --slot 1 --label x </dev/null)" -eq 2

# Where the module is, and why a daemon cannot be reached.
check "the CLI finds the module installed beside it (configured for another prefix)" \
  bash -c "env -u REMHSM_MODULE '$bin/remhsm' token list | grep -q '^slot 0:'"
check "REMHSM_MODULE names the module when --module does not" \
  test "$(REMHSM_MODULE=$work/no-such.so status_of "$bin/remhsm" token list)" -eq 1
check "the message names that module" grep -q "$work/no-such.so" "$work/out"
check "an unreachable daemon: exit 1" \
  test "$(REMHSM_SERVER=127.0.0.1:1 status_of "${cli[@]}" list)" -eq 1
check "the message gives the address and the reason" \
  grep -q "cannot reach remhsmd at 127.0.0.1:1: cannot connect to 127.0.0.1:1: Connection refused" "$work/out"
check "a client certificate file that is not there: exit 1" \
  test "$(REMHSM_CERT=$work/no-such.pem status_of "${cli[@]}" list)" -eq 1
check "the message names the variable, the file and why" \
  grep -q "REMHSM_CERT=$work/no-such.pem: No such file or directory" "$work/out"
check "no CA named: the message says which variable is missing" \
  bash -c "env -u REMHSM_CA '$bin/remhsm' token list --module '$module' 2>&1 |
    grep -q 'REMHSM_CA is not set'"
"$bin/remhsm" pki init "$work/other-pki" >/dev/null
check "a daemon whose certificate the CA does not vouch for: exit 1" \
  test "$(REMHSM_CA=$work/other-pki/ca.pem status_of "${cli[@]}" list)" -eq 1
check "the message names the certificate and why" \
  grep -q "the server's certificate .* was refused: self-signed certificate in certificate chain" "$work/out"
check "a client certificate the daemon refuses: exit 1, and says so" \
  bash -c "[ \"\$(REMHSM_CERT=$work/other-pki/client.pem REMHSM_KEY=$work/other-pki/client.key \
    '$bin/remhsm' token list --module '$module' 2>&1 >/dev/null)\" != '' ] &&
    REMHSM_CERT=$work/other-pki/client.pem REMHSM_KEY=$work/other-pki/client.key \
    '$bin/remhsm' token list --module '$module' 2>&1 | grep -q 'refused this client after the TLS handshake'"

"$bin/remhsm" pki init "$work/named-pki" --server-name remhsmd --server-name broker.example >/dev/null
check "pki init --server-name: the server certificate names those hosts too" \
  bash -c "openssl x509 -in '$work/named-pki/server.pem' -noout -ext subjectAltName |
    grep -q 'DNS:localhost, IP Address:127.0.0.1, .*DNS:remhsmd, DNS:broker.example'"
check "a server name that is no host name: exit 1" \
  test "$(status_of "$bin/remhsm" pki init "$work/bad-pki" --server-name 'a b')" -eq 1
check "the message says what a server name may be, and no PKI is made" \
  bash -c "grep -q 'host names (letters, digits' '$work/out' && ! test -e '$work/bad-pki/ca.pem'"

check "bench store with a folder that does not exist: exit 1" \
  test "$(status_of "$bin/remhsm" bench store --dir "$work/no-such-dir")" -eq 1
check "the message names the folder and what it is for" \
  grep -q "no-such-dir: No such file or directory (it needs an empty folder" "$work/out"
mkdir "$work/bench-dir"
check "bench store with a PostgreSQL store that reaches nothing: exit 1" \
  test "$(status_of "$bin/remhsm" bench store --dir "$work/bench-dir" \
    --store "postgresql://remhsm@127.0.0.1:1/none" --objects 10)" -eq 1
check "the message names the server, the database and the refusal" \
  grep -q "postgresql store 127.0.0.1:1/none: .*Connection refused" "$work/out"
check "bench store --shared on SQLite: exit 1" \
  test "$(status_of "$bin/remhsm" bench store --dir "$work/bench-dir" --shared --objects 10)" -eq 1
check "the message says that only PostgreSQL is shared" \
  grep -q "daemons share a PostgreSQL store only" "$work/out"

# The bench runs each round through remhsm, SoftHSMv2 in-process and
# p11-kit's client (to `p11-kit server` exporting the same SoftHSMv2
# token), and prints every line, the ratios, the CPU per call and a plot
# (figures only: nothing is timed here).
mkdir -p "$work/softhsm"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$work/softhsm" \
  >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 9999 --so-pin 123456 >/dev/null
p11kit_pid=
stop_p11kit() {
  if [ -n "$p11kit_pid" ]; then kill -TERM "$p11kit_pid" 2>/dev/null || true; fi
}
trap 'stop_p11kit; cleanup' EXIT
p11-kit server -f --provider /usr/lib/softhsm/libsofthsm2.so \
  -n "$work/p11-kit.sock" "pkcs11:token=bench" >"$work/p11-kit.log" 2>&1 &
p11kit_pid=$!
for _ in $(seq 100); do [ -S "$work/p11-kit.sock" ] && break; sleep 0.05; done
p11kit_client=/usr/lib/$(gcc -print-multiarch)/pkcs11/p11-kit-client.so
status=$(P11_KIT_SERVER_ADDRESS=unix:path=$work/p11-kit.sock status_of "$bin/remhsm" bench \
  --module "$module" --compare /usr/lib/softhsm/libsofthsm2.so --compare "$p11kit_client" \
  --sign-pin 9999 --threads 1,2 --seconds 0.2 --plot "$work/bench.svg")
cp "$work/out" "$work/bench.txt"
check "bench signs through remhsm, SoftHSMv2 and p11-kit's client" test "$status" -eq 0
check "bench prints a line per module and thread count" \
  test "$(grep -Ec '^[12] +[0-9]+ +[0-9]+ .* [123]$' "$work/bench.txt")" -eq 6
check "bench prints the ratios to each other module" \
  test "$(grep -Ec 'ratio 1/[23]: ops/s [0-9.]*x, p50 [0-9.]*x, p99 [0-9.]*x' "$work/bench.txt")" -eq 4
check "bench finds the daemon by its loopback port" \
  grep -q "daemon of module 1: pid $daemon_pid " "$work/bench.txt"
check "bench measures the bare signature in OpenSSL" \
  grep -Eq "^the bare operation in this process's OpenSSL: [0-9.]+ us of CPU$" "$work/bench.txt"
check "remhsm's lines carry the daemon's CPU per call, the others none" \
  bash -c "grep -E ' 1$' '$work/bench.txt' | grep -Ec '^[12] +([0-9.]+ +){6}1$' | grep -qx 2 &&
    grep -E ' [23]$' '$work/bench.txt' | grep -Ec ' - +[23]$' | grep -qx 4"
check "bench sets the daemon's CPU against the bare operation" \
  test "$(grep -Ec '^[12] threads: the daemon spent [0-9.]+ us of CPU per call, [0-9.]+x the bare operation$' "$work/bench.txt")" -eq 2
check "the plot is one SVG document" \
  bash -c "head -n 2 '$work/bench.svg' | grep -q '^<svg ' && tail -n 1 '$work/bench.svg' | grep -qx '</svg>'"
check "the plot has a throughput line per module" \
  test "$(grep -c '<polyline class="throughput"' "$work/bench.svg")" -eq 3
check "the plot has a latency distribution per module and thread count" \
  test "$(grep -c '<polyline class="latency"' "$work/bench.svg")" -eq 6
check "the plot's legend names the modules" \
  bash -c "grep -q '>3: $p11kit_client</text>' '$work/bench.svg'"
check "bench exits 1 when it cannot write the plot" \
  test "$(status_of "$bin/remhsm" bench --module "$module" --seconds 0.1 --threads 1 \
    --plot "$work/no-such-dir/bench.svg")" -eq 1
check "the message names the file" grep -q "cannot write $work/no-such-dir/bench.svg" "$work/out"
check "bench takes the daemon's pid from --daemon-pid" \
  bash -c "'$bin/remhsm' bench --module '$module' --threads 1 --seconds 0.1 \
    --daemon-pid $daemon_pid | grep -q 'daemon of module: pid $daemon_pid '"
check "bench refuses a --daemon-pid that is not a number: exit 2" \
  test "$(status_of "$bin/remhsm" bench --module "$module" --daemon-pid 12x)" -eq 2
no_pid=$(( $(cat /proc/sys/kernel/pid_max) + 1 ))
check "bench exits 1 for a --daemon-pid no process has" \
  test "$(status_of "$bin/remhsm" bench --module "$module" --threads 1 --seconds 0.1 \
    --daemon-pid "$no_pid")" -eq 1
check "the message names the pid" grep -q -- "--daemon-pid $no_pid: no such process" "$work/out"
check "bench refuses a fifth module" \
  test "$(status_of "$bin/remhsm" bench --compare a.so --compare b.so --compare c.so --compare d.so)" -eq 2
check "bench exits 1 when the module to compare with does not load" \
  test "$(status_of "$bin/remhsm" bench --module "$module" --compare \
    "$work/no-such-module.so" --sign-pin 9999 --seconds 0.2)" -eq 1
check "the message names the module" grep -q "cannot load $work/no-such-module.so" "$work/out"
check "bench exits 1 when its login fails" \
  test "$(status_of "$bin/remhsm" bench --module "$module" --compare \
    /usr/lib/softhsm/libsofthsm2.so --sign-pin 0000 --seconds 0.2)" -eq 1
check "the message names the code" grep -q "CKR_PIN_INCORRECT" "$work/out"

finish
