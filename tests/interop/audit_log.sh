#!/usr/bin/env bash
# The audit log: logins (a failure too), token initialisation, a PIN
# change, key generation, import and destruction, and signature counts are
# recorded in STATE/audit.log as a hash chain; remhsm audit verify accepts
# it, and names the record when one byte is edited, a record deleted, or
# two records swapped.
#   audit_log.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

r=("$bin/remhsm")
m=(--module "$module")
tool=(pkcs11-tool --module "$module")
log=$work/state/audit.log

"${r[@]}" token init --freertos --so-pin 11112222 "${m[@]}" >/dev/null
"${r[@]}" object list --pin 9999 "${m[@]}" >/dev/null 2>&1 || true
"${r[@]}" token set-pin --token FreeRTOS --pin 0000 --new-pin 4321 "${m[@]}" >/dev/null
export REMHSM_PIN=4321
"${r[@]}" key gen --label audited "${m[@]}" >/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/k.pem" 2>/dev/null
"${r[@]}" key import "$work/k.pem" --label imported "${m[@]}" >/dev/null
head -c 64 /dev/urandom >"$work/data"
for _ in $(seq 25); do
  "${tool[@]}" --login --pin 4321 --sign --mechanism ECDSA-SHA256 --label audited \
    --input-file "$work/data" --output-file "$work/sig" >/dev/null 2>&1
done
"${r[@]}" object delete "pkcs11:object=imported;type=private" "${m[@]}" >/dev/null
stop_daemon # writes what is buffered

check "remhsm audit verify accepts the log" "$bin/remhsm" audit verify "$log"
has() { grep -q "$1" "$log"; }
check "a failed login is recorded" has 'event=login slot=0 role=user identity="CN=remhsm-dev-client" rv=0xa0'
check "a successful login is recorded" has 'event=login slot=0 role=user .* rv=0x0 '
check "the token's initialisation" has 'event=token-init slot=0 .* rv=0x0'
check "the PIN change" has 'event=set-pin slot=0 role=user .* rv=0x0'
check "the key generation" has 'event=key-generated .* type=ec'
check "the import" has 'event=key-imported .* class=0x3'
check "the destruction" has 'event=object-destroyed'
signed=$(sed -n 's/.*event=signatures slot=0 key=[0-9]* count=\([0-9]*\).*/\1/p' "$log" |
  awk '{n += $1} END {print n}')
check "25 signatures counted for the key" test "$signed" = 25
# A PIN would be a field's value; hashes may contain the digits anywhere.
check "no PIN in the log" bash -c "! grep -qE '=\"?(4321|9999|11112222)\"?( |$)' '$log'"
check "nor in the operational log" \
  bash -c "! grep -qE '(=|\"| )(4321|9999|11112222)(\"| |$)' '$work/remhsmd.log'"

refused() { # FILE MESSAGE
  [ "$(status_of "$bin/remhsm" audit verify "$1")" -eq 1 ] && grep -q "$2" "$work/out"
}
cp "$log" "$work/edited" && sed -i '3s/slot=0/slot=1/' "$work/edited"
check "one edited byte is caught, naming the record" refused "$work/edited" "record 3 (line 3) edited"
cp "$log" "$work/deleted" && sed -i '4d' "$work/deleted"
check "a deleted record is caught where the chain breaks" refused "$work/deleted" "record 4 (line 4) out of sequence"
awk 'NR == 5 {held = $0; next} NR == 6 {print; print held; next} {print}' "$log" >"$work/swapped"
check "two swapped records are caught" refused "$work/swapped" "record 5 (line 5) out of sequence"
sed -n '1,2p' "$log" >"$work/start" && sed -n '2p' "$log" >>"$work/start"
check "a duplicated record is caught" refused "$work/start" "record 3 (line 3) out of sequence"

# A restarted daemon continues the chain.
start_daemon --kdf-scrypt-n 1024
"${r[@]}" object list "${m[@]}" >/dev/null
stop_daemon
check "the chain goes on across a restart" "$bin/remhsm" audit verify "$log"
check "the head is in the operational log too" \
  bash -c "grep -q \"event=audit-head seq=\$(tail -n 1 '$log' | sed 's/seq=\\([0-9]*\\).*/\\1/')\" '$work/remhsmd.log'"

# A log whose last record is cut short: the daemon will not start on it
# (it could not continue the chain) and leaves the file as it was.
printf 'seq=999 ts=cut' >>"$log"
cp "$log" "$work/cut.copy"
check "a log ending in a partial record stops the start" \
  test "$(status_of timeout 10 "$bin/remhsmd" --listen 127.0.0.1:0 --state-dir "$work/state")" -eq 1
check "naming the file and what to do" \
  grep -q "audit log: .*audit.log: its last record does not parse; keep the file and start a new log" "$work/out"
check "the log is untouched" cmp -s "$log" "$work/cut.copy"
finish
