#!/usr/bin/env bash
# Interop: OpenSC's pkcs11-tool loads the *installed* libremhsm-pkcs11.so and
# talks to a real remhsmd on a free loopback port: the token's lifecycle, EC
# keys and signatures, AES encryption and HMAC, Ed25519, wrapping and ECDH.
#   pkcs11_tool.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

[ -x "$bin/remhsmd" ] || fail "remhsmd not installed"
[ -n "$(find "$work/prefix" -name libremhsm-pkcs11.a)" ] || fail "static library not installed"
tool=(pkcs11-tool --module "$module")

list=$("${tool[@]}" -L 2>&1) || fail "pkcs11-tool -L: $list"
check "pkcs11-tool -L lists the slot" grep -q "Slot 0 (0x0): remhsm remote slot" <<<"$list"

info=$("${tool[@]}" -I 2>&1) || fail "pkcs11-tool -I: $info"
check "pkcs11-tool -I shows the manufacturer" grep -q "Manufacturer *remhsm" <<<"$info"

"${tool[@]}" --generate-random 32 --output-file "$work/random.bin" 2>"$work/tool.err" ||
  fail "generate-random: $(cat "$work/tool.err")"
check "pkcs11-tool --generate-random 32 returns 32 bytes" \
  test "$(stat -c %s "$work/random.bin")" -eq 32
"${tool[@]}" --generate-random 32 --output-file "$work/random2.bin" 2>/dev/null
differ() { ! cmp -s "$1" "$2"; }
check "two random draws differ" differ "$work/random.bin" "$work/random2.bin"

check "daemon logged the client's identity" \
  grep -q "event=handshake .*identity=CN=remhsm-dev-client" "$work/remhsmd.log"

# The token lifecycle through pkcs11-tool.
"${tool[@]}" --init-token --label "interop token" --so-pin 87654321 >"$work/out" 2>&1 ||
  fail "init-token: $(cat "$work/out")"
check "pkcs11-tool --init-token initialises the token" \
  grep -q "token label *: interop token" <("${tool[@]}" -L 2>&1)
"${tool[@]}" --init-pin --so-pin 87654321 --pin 0000 >"$work/out" 2>&1 ||
  fail "init-pin: $(cat "$work/out")"
check "pkcs11-tool --init-pin sets the user PIN" \
  grep -q "PIN initialized" <("${tool[@]}" -L 2>&1)
check "pkcs11-tool --login with the user PIN" \
  "${tool[@]}" --login --pin 0000 --generate-random 8 --output-file /dev/null
"${tool[@]}" --change-pin --pin 0000 --new-pin 13579 >"$work/out" 2>&1 ||
  fail "change-pin: $(cat "$work/out")"
check "the changed PIN logs in" \
  "${tool[@]}" --login --pin 13579 --generate-random 8 --output-file /dev/null
wrong=$("${tool[@]}" --login --pin 0000 --generate-random 8 2>&1 || true)
check "the old PIN is CKR_PIN_INCORRECT" grep -q "CKR_PIN_INCORRECT" <<<"$wrong"
ro_so=$("${tool[@]}" --login --login-type so --so-pin 87654321 --generate-random 8 2>&1 || true)
check "SO login beside a read-only session is CKR_SESSION_READ_ONLY_EXISTS" \
  grep -q "CKR_SESSION_READ_ONLY_EXISTS" <<<"$ro_so"
"${tool[@]}" --login --login-type so --so-pin 87654321 --change-pin --pin 87654321 \
  --new-pin 11223344 >"$work/out" 2>&1 || fail "SO change-pin: $(cat "$work/out")"
check "the SO logs in with the changed SO PIN and resets the user PIN" \
  "${tool[@]}" --init-pin --so-pin 11223344 --pin 2468
check "the reset user PIN logs in" \
  "${tool[@]}" --login --pin 2468 --generate-random 8 --output-file /dev/null

# Keys and signatures: pkcs11-tool makes a P-256 key and signs; pkcs11-tool
# and OpenSSL verify against the exported public key.
echo "interop message" >"$work/msg"
"${tool[@]}" --login --pin 2468 --keypairgen --key-type EC:prime256v1 --label dev \
  --id 01 >"$work/out" 2>&1 || fail "keypairgen: $(cat "$work/out")"
check "pkcs11-tool signs with ECDSA-SHA256" \
  "${tool[@]}" --login --pin 2468 --sign --mechanism ECDSA-SHA256 --label dev \
  --input-file "$work/msg" --output-file "$work/sig"
check "pkcs11-tool verifies it" \
  "${tool[@]}" --verify --mechanism ECDSA-SHA256 --label dev \
  --input-file "$work/msg" --signature-file "$work/sig"
"${tool[@]}" --read-object --type pubkey --label dev -o "$work/pub.der" >/dev/null 2>&1 ||
  fail "cannot export the public key"
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
"${tool[@]}" --login --pin 2468 --sign --mechanism ECDSA-SHA256 --label dev \
  --input-file "$work/msg" --output-file "$work/sig.der" --signature-format openssl \
  >/dev/null 2>&1 || fail "sign (openssl format)"
check "openssl dgst -verify accepts the signature" \
  openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/sig.der" "$work/msg"
hash=$("${tool[@]}" --hash --mechanism SHA256 --input-file "$work/msg" | xxd -p -c 64)
check "pkcs11-tool --hash matches sha256sum" \
  test "$hash" = "$(sha256sum "$work/msg" | cut -d' ' -f1)"

# Secret keys: pkcs11-tool makes an AES key, encrypts and decrypts with it,
# and signs and verifies with HMAC under a generic secret it makes.
"${tool[@]}" --login --pin 2468 --keygen --key-type AES:32 --label aes --id 11 \
  --usage-decrypt >"$work/out" 2>&1 || fail "AES keygen: $(cat "$work/out")"
check "pkcs11-tool lists the AES key with its length" \
  grep -q "AES length 32" <("${tool[@]}" --login --pin 2468 --list-objects --type secrkey 2>&1)
head -c 100 /dev/urandom >"$work/plain"
iv=000102030405060708090a0b0c0d0e0f
check "pkcs11-tool encrypts with AES-CBC-PAD" \
  "${tool[@]}" --login --pin 2468 --encrypt --mechanism AES-CBC-PAD --iv "$iv" \
  --id 11 --input-file "$work/plain" --output-file "$work/cipher"
check "the ciphertext is the plaintext padded to whole blocks" \
  test "$(stat -c %s "$work/cipher")" -eq 112
check "pkcs11-tool decrypts it back" \
  "${tool[@]}" --login --pin 2468 --decrypt --mechanism AES-CBC-PAD --iv "$iv" \
  --id 11 --input-file "$work/cipher" --output-file "$work/back"
check "what comes back is what went in" cmp -s "$work/plain" "$work/back"
"${tool[@]}" --login --pin 2468 --keygen --key-type GENERIC:32 --label mac --id 12 \
  --usage-sign >"$work/out" 2>&1 || fail "generic keygen: $(cat "$work/out")"
check "pkcs11-tool signs with SHA256-HMAC" \
  "${tool[@]}" --login --pin 2468 --sign --mechanism SHA256-HMAC --id 12 \
  --input-file "$work/msg" --output-file "$work/mac"
check "the MAC is 32 bytes" test "$(stat -c %s "$work/mac")" -eq 32
check "pkcs11-tool verifies the MAC" \
  "${tool[@]}" --login --pin 2468 --verify --mechanism SHA256-HMAC --id 12 \
  --input-file "$work/msg" --signature-file "$work/mac"

# Ed25519: pkcs11-tool makes a pair (naming the curve edwards25519), signs
# with EDDSA and verifies; OpenSSL verifies against the exported key.
"${tool[@]}" --login --pin 2468 --keypairgen --key-type EC:edwards25519 --label ed \
  --id 21 >"$work/out" 2>&1 || fail "Ed25519 keypairgen: $(cat "$work/out")"
check "pkcs11-tool lists EDDSA" grep -q "EDDSA, keySize={255,255}" <("${tool[@]}" -M 2>&1)
check "pkcs11-tool signs with EDDSA" \
  "${tool[@]}" --login --pin 2468 --sign --mechanism EDDSA --id 21 \
  --input-file "$work/msg" --output-file "$work/ed.sig"
check "the Ed25519 signature is 64 bytes" test "$(stat -c %s "$work/ed.sig")" -eq 64
check "pkcs11-tool verifies it" \
  "${tool[@]}" --verify --mechanism EDDSA --id 21 --input-file "$work/msg" \
  --signature-file "$work/ed.sig"
"${tool[@]}" --read-object --type pubkey --id 21 -o "$work/ed.pub" >/dev/null 2>&1 ||
  fail "cannot export the Ed25519 public key"
check "openssl pkeyutl verifies the Ed25519 signature" \
  openssl pkeyutl -verify -pubin -inkey "$work/ed.pub" -rawin -in "$work/msg" \
  -sigfile "$work/ed.sig"

# Wrapping: an AES key wrapped under a KEK (RFC 3394) and unwrapped as a new
# key encrypts as the original does. pkcs11-tool wraps secret keys only.
"${tool[@]}" --login --pin 2468 --keygen --key-type AES:32 --label kek --id 31 \
  --usage-wrap >"$work/out" 2>&1 || fail "KEK keygen: $(cat "$work/out")"
"${tool[@]}" --login --pin 2468 --keygen --key-type AES:16 --label tbw --id 32 \
  --extractable --usage-decrypt >"$work/out" 2>&1 || fail "AES keygen: $(cat "$work/out")"
check "pkcs11-tool wraps an AES key with AES-KEY-WRAP" \
  "${tool[@]}" --login --pin 2468 --wrap --mechanism AES-KEY-WRAP --id 31 \
  --application-id 32 --output-file "$work/wrapped"
check "the wrap is the key and 8 bytes" test "$(stat -c %s "$work/wrapped")" -eq 24
refused=$("${tool[@]}" --login --pin 2468 --unwrap --mechanism AES-KEY-WRAP --id 31 \
  --input-file "$work/wrapped" --key-type AES:16 --application-id 33 2>&1 || true)
check "an unwrap asking for a readable key is CKR_TEMPLATE_INCONSISTENT" \
  grep -q "CKR_TEMPLATE_INCONSISTENT" <<<"$refused"
check "pkcs11-tool unwraps it as a sensitive key" \
  "${tool[@]}" --login --pin 2468 --unwrap --mechanism AES-KEY-WRAP --id 31 \
  --input-file "$work/wrapped" --key-type AES:16 --application-id 33 --sensitive
head -c 48 /dev/urandom >"$work/blocks"
for id in 32 33; do
  "${tool[@]}" --login --pin 2468 --encrypt --mechanism AES-ECB --id $id \
    --input-file "$work/blocks" --output-file "$work/ecb.$id" >/dev/null 2>&1 ||
    fail "AES-ECB with key $id"
done
check "the unwrapped key encrypts as the wrapped one" cmp -s "$work/ecb.32" "$work/ecb.33"

# Key agreement: pkcs11-tool derives ECDH's Z with a peer OpenSSL made, and
# OpenSSL derives the same from the other side.
"${tool[@]}" --login --pin 2468 --keypairgen --key-type EC:prime256v1 --label ecdh \
  --id 41 --usage-derive >"$work/out" 2>&1 || fail "ECDH keygen: $(cat "$work/out")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/peer.pem" 2>/dev/null
openssl pkey -in "$work/peer.pem" -pubout -outform DER -out "$work/peer.der"
check "pkcs11-tool derives with ECDH1-DERIVE" \
  "${tool[@]}" --login --pin 2468 --derive --mechanism ECDH1-DERIVE --id 41 \
  --input-file "$work/peer.der" --output-file "$work/z.token"
"${tool[@]}" --read-object --type pubkey --id 41 -o "$work/ecdh.pub" >/dev/null 2>&1 ||
  fail "cannot export the ECDH public key"
openssl pkeyutl -derive -inkey "$work/peer.pem" -peerkey "$work/ecdh.pub" \
  -out "$work/z.openssl"
check "both sides derive the same secret" cmp -s "$work/z.token" "$work/z.openssl"

kill -TERM "$daemon_pid"
status=0; wait "$daemon_pid" || status=$?
daemon_pid=
check "remhsmd exits 0 on SIGTERM" test "$status" -eq 0
unset REMHSM_SERVER
out=$(REMHSM_SERVER=127.0.0.1:$port "${tool[@]}" -L 2>&1 || true)
# C_GetSlotList may not answer CKR_DEVICE_ERROR: the module says
# CKR_FUNCTION_FAILED, the code every function may return.
check "an unreachable daemon fails C_GetSlotList with CKR_FUNCTION_FAILED" \
  grep -q "CKR_FUNCTION_FAILED" <<<"$out"

finish
