#!/usr/bin/env bash
# Interop: remhsm key wrap|unwrap moves keys between two remhsm instances,
# each with its own store. Store B makes an RSA transport key; store A's
# keys (P-256, Ed25519, RSA, AES) are wrapped for it and restored on B,
# where each signs or encrypts as on A (checked against A's public keys
# with openssl, or A's ciphertext). A KEK restored on B then carries a key
# alone (AES-KWP). What the token refuses stays refused.
#   backup.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

a_server=$REMHSM_SERVER
r=("$bin/remhsm")
m=(--module "$module" --pin 0000)
export REMHSM_PIN=0000

# Store B: a second daemon with its own state, trusting the same test PKI.
mkdir -p "$work/state-b"
cp -r "$work/state/pki" "$work/state-b/pki"
"$bin/remhsmd" --listen 127.0.0.1:0 --state-dir "$work/state-b" --kdf-scrypt-n 1024 \
  2>"$work/remhsmd-b.log" &
b_pid=$!
b_port=$(logged_port listening "$work/remhsmd-b.log")
[ -n "$b_port" ] || fail "the second remhsmd did not start"
stop_b() { kill -TERM "$b_pid" 2>/dev/null || true; wait "$b_pid" 2>/dev/null || true; }
trap 'stop_b; cleanup' EXIT
on_a() { REMHSM_SERVER=$a_server "$@"; }
on_b() { REMHSM_SERVER=127.0.0.1:$b_port "$@"; }

for side in on_a on_b; do
  $side "${r[@]}" token init --freertos --so-pin so-pin-1 \
    --module "$module" >"$work/out" 2>&1 || fail "token init: $(cat "$work/out")"
done

# B's transport key; its public half travels to A as a file.
check "key gen --type rsa-3072 --transport on B" \
  on_b "${r[@]}" key gen --type rsa-3072 --transport --label transport "${m[@]}"
on_b "${r[@]}" pubkey export 'pkcs11:object=transport;type=public' -o "$work/transport.pem" \
  "${m[@]}" || fail "pubkey export of the transport key"

# A's keys, extractable so that they may leave wrapped; pkcs11-tool finds
# them by id.
declare -A id=([ec-p256]=01 [ed25519]=02 [rsa-2048]=03)
for type in ec-p256 ed25519 rsa-2048; do
  on_a "${r[@]}" key gen --type "$type" --label "dev-$type" --id "${id[$type]}" \
    --extractable "${m[@]}" >/dev/null || fail "key gen $type on A"
done
on_a "${r[@]}" key gen --type aes-128 --label data --id 04 --extractable "${m[@]}" >/dev/null ||
  fail "AES key gen on A"
on_a "${r[@]}" key gen --type ec-p256 --label stays "${m[@]}" >/dev/null

echo "firmware image" >"$work/fw"
for type in ec-p256 ed25519 rsa-2048; do
  check "key wrap dev-$type for B's transport key" \
    on_a "${r[@]}" key wrap "pkcs11:object=dev-$type;type=private" \
    --wrapping-key "$work/transport.pem" -o "$work/$type.backup" "${m[@]}"
  check "key unwrap dev-$type on B" \
    on_b "${r[@]}" key unwrap "$work/$type.backup" --wrapping-key transport "${m[@]}"
  on_a "${r[@]}" pubkey export "pkcs11:object=dev-$type;type=public" -o "$work/$type.pub" \
    "${m[@]}"
done

# The restored keys sign on B; A's public keys verify.
export REMHSM_SERVER=127.0.0.1:$b_port
tool=(pkcs11-tool --module "$module" --login --pin 0000 --sign --input-file "$work/fw")
check "the restored P-256 key signs on B (ECDSA, verified by openssl)" \
  bash -c "${tool[*]} --mechanism ECDSA-SHA256 --id 01 --output-file '$work/ec.sig' \
      --signature-format openssl >/dev/null 2>&1 &&
    openssl dgst -sha256 -verify '$work/ec-p256.pub' -signature '$work/ec.sig' '$work/fw'"
check "the restored Ed25519 key signs on B (verified by openssl)" \
  bash -c "${tool[*]} --mechanism EDDSA --id 02 --output-file '$work/ed.sig' >/dev/null 2>&1 &&
    openssl pkeyutl -verify -pubin -inkey '$work/ed25519.pub' -rawin -in '$work/fw' \
      -sigfile '$work/ed.sig'"
check "the restored RSA key signs on B (verified by openssl)" \
  bash -c "${tool[*]} --mechanism SHA256-RSA-PKCS --id 03 --output-file '$work/rsa.sig' \
      >/dev/null 2>&1 &&
    openssl dgst -sha256 -verify '$work/rsa-2048.pub' -signature '$work/rsa.sig' '$work/fw'"
check "object show on B: the restored key is sensitive and keeps its usage" \
  bash -c "'$bin/remhsm' object show 'pkcs11:object=dev-ec-p256;type=private' --module '$module' |
    grep -q 'sensitive    yes' &&
    '$bin/remhsm' object show 'pkcs11:object=dev-ec-p256;type=private' --module '$module' |
    grep -q 'sign         yes'"
export REMHSM_SERVER=$a_server

# An AES key: wrapped for B, restored, encrypts as on A.
check "key wrap of an AES key for the transport key, unwrapped on B" \
  bash -c "'$bin/remhsm' key wrap 'pkcs11:object=data;type=secret-key' \
      --wrapping-key '$work/transport.pem' -o '$work/data.backup' --module '$module' &&
    REMHSM_SERVER=127.0.0.1:$b_port '$bin/remhsm' key unwrap '$work/data.backup' \
      --wrapping-key transport --module '$module'"
head -c 32 /dev/urandom >"$work/blocks"
on_a pkcs11-tool --module "$module" --login --pin 0000 --encrypt --mechanism AES-ECB \
  --id 04 --input-file "$work/blocks" --output-file "$work/ecb.a" >/dev/null 2>&1 ||
  fail "AES-ECB on A"
on_b pkcs11-tool --module "$module" --login --pin 0000 --encrypt --mechanism AES-ECB \
  --id 04 --input-file "$work/blocks" --output-file "$work/ecb.b" >/dev/null 2>&1 ||
  fail "AES-ECB on B"
check "the restored AES key encrypts as the original" cmp -s "$work/ecb.a" "$work/ecb.b"

# A KEK both hold: made extractable on A, sent to B once, then carrying a
# key alone with AES-KWP.
on_a "${r[@]}" key gen --type aes-256 --transport --extractable --label kek "${m[@]}" \
  >/dev/null || fail "KEK gen on A"
# (remhsm prints the CK_RV in hex: 0x114 is CKR_WRAPPING_KEY_SIZE_RANGE,
# 0x6a CKR_KEY_UNEXTRACTABLE, 0x110 CKR_WRAPPED_KEY_INVALID.)
check "an AES-256 KEK does not leave under RSA-3072's AES-128 (weaker)" \
  bash -c "! '$bin/remhsm' key wrap 'pkcs11:object=kek;type=secret-key' \
      --wrapping-key '$work/transport.pem' -o '$work/kek.backup' --module '$module' 2>'$work/err' &&
    grep -q 'C_WrapKey failed: 0x114' '$work/err'"
on_a "${r[@]}" key gen --type aes-128 --transport --extractable --label kek128 "${m[@]}" \
  >/dev/null || fail "KEK gen on A"
check "an AES-128 KEK travels to B" \
  bash -c "'$bin/remhsm' key wrap kek128 --wrapping-key '$work/transport.pem' \
      -o '$work/kek.backup' --module '$module' &&
    REMHSM_SERVER=127.0.0.1:$b_port '$bin/remhsm' key unwrap '$work/kek.backup' \
      --wrapping-key transport --module '$module'"
on_a "${r[@]}" key gen --type ec-p256 --label by-kek --extractable "${m[@]}" >/dev/null
check "key wrap with the shared KEK (AES-KWP) and key unwrap on B under a new label" \
  bash -c "'$bin/remhsm' key wrap 'pkcs11:object=by-kek;type=private' --wrapping-key kek128 \
      -o '$work/by-kek.backup' --module '$module' &&
    REMHSM_SERVER=127.0.0.1:$b_port '$bin/remhsm' key unwrap '$work/by-kek.backup' \
      --wrapping-key kek128 --label moved --id 77 --module '$module' |
    grep -q 'object=moved;id=%77;type=private'"

# What stays refused.
check "a key made without --extractable does not leave (CKR_KEY_UNEXTRACTABLE)" \
  bash -c "! '$bin/remhsm' key wrap 'pkcs11:object=stays;type=private' \
      --wrapping-key '$work/transport.pem' -o '$work/no.backup' --module '$module' 2>'$work/err' &&
    grep -q 'C_WrapKey failed: 0x6a' '$work/err'"
check "a backup restored twice under one label is refused" \
  bash -c "! REMHSM_SERVER=127.0.0.1:$b_port '$bin/remhsm' key unwrap '$work/ec-p256.backup' \
      --wrapping-key transport --module '$module' 2>/dev/null"
# One hex digit of the wrap changed, whatever it was.
sed -E 's/^wrapped 0/wrapped X/; s/^wrapped [1-9a-f]/wrapped 0/; s/^wrapped X/wrapped 1/' \
  "$work/ec-p256.backup" >"$work/forged.backup"
check "the forged backup differs" bash -c "! cmp -s '$work/ec-p256.backup' '$work/forged.backup'"
check "a forged backup creates nothing (CKR_WRAPPED_KEY_INVALID)" \
  bash -c "! REMHSM_SERVER=127.0.0.1:$b_port '$bin/remhsm' key unwrap '$work/forged.backup' \
      --wrapping-key transport --label forged --module '$module' 2>'$work/err' &&
    grep -q 'C_UnwrapKey failed: 0x110' '$work/err'"
printf 'not a backup\n' >"$work/junk.backup"
check "a file that is no backup is refused with a message (exit 1)" \
  test "$(status_of "$bin/remhsm" key unwrap "$work/junk.backup" --wrapping-key transport \
    --module "$module")" -eq 1
check "the message names the file" grep -q "junk.backup is no remhsm key backup" "$work/out"
check "key wrap without --wrapping-key is bad usage (exit 2)" \
  test "$(status_of "$bin/remhsm" key wrap dev-ec-p256 --module "$module")" -eq 2
check "the transport key signs nothing" \
  bash -c "! REMHSM_SERVER=127.0.0.1:$b_port pkcs11-tool --module '$module' --login --pin 0000 \
      --sign --mechanism SHA256-RSA-PKCS --label transport --input-file '$work/fw' \
      --output-file '$work/t.sig' >/dev/null 2>&1"

stop_b
finish
