#!/usr/bin/env bash
# The provisioning commands against a real daemon: key gen and import, a
# CSR signed inside remhsm and checked by openssl, a certificate issued by
# a test CA and imported next to its key, pubkey export, object
# list/show/delete by URI and label; and every bad input exits non-zero
# with a clear message and leaves the token as it was.
#   provision.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

r=("$bin/remhsm")
m=(--module "$module")
"${r[@]}" token init --freertos --so-pin 11112222 "${m[@]}" >/dev/null
export REMHSM_PIN=0000
ca=$work/state/pki/ca.pem
ca_key=$work/state/pki/ca.key

# Signs a CSR with the test CA: the certificate a cloud would return.
issue() {
  openssl x509 -req -in "$1" -CA "$ca" -CAkey "$ca_key" -days 1 \
    -copy_extensions copy -out "$2" 2>/dev/null
}
objects() { "${r[@]}" object list "${m[@]}"; }
unchanged() { [ "$(objects)" = "$1" ]; }

check "key gen: an EC P-256 pair under FreeRTOS's labels" \
  bash -c "'$bin/remhsm' key gen --module '$module' >'$work/gen'"
check "key gen prints the private key's URI" \
  grep -q '^private key: pkcs11:token=FreeRTOS;object=Device%20Priv%20TLS%20Key;id=%' "$work/gen"
objects >"$work/list"
check "object list shows both halves" \
  test "$(grep -c 'object=Device%20P[a-z]*%20TLS%20Key;id=' "$work/list")" -eq 2
check "csr: a request signed inside remhsm" \
  "${r[@]}" csr --key "Device Priv TLS Key" --subject "/CN=device-1/O=Acme" \
  --san DNS:device-1.local --san IP:127.0.0.1 -o "$work/device.csr" "${m[@]}"
check "openssl verifies the request's signature" \
  openssl req -in "$work/device.csr" -verify -noout
check "the request carries the subject and SANs" \
  bash -c "openssl req -in '$work/device.csr' -noout -text |
    grep -q 'DNS:device-1.local, IP Address:127.0.0.1'"
check "the test CA issues the certificate" issue "$work/device.csr" "$work/device.pem"
check "cert import stores it next to its key" \
  "${r[@]}" cert import "$work/device.pem" "${m[@]}"
key_id=$(grep 'type=private' <(objects) | grep -o 'id=[^;]*')
check "the certificate has its key's CKA_ID" \
  grep -q "object=Device%20Cert;$key_id;type=cert" <(objects)
check "pkcs11-tool reads the certificate back, byte for byte" \
  bash -c "pkcs11-tool --module '$module' --login --pin 0000 --read-object \
    --type cert --label 'Device Cert' -o '$work/back.der' 2>/dev/null &&
    cmp '$work/back.der' <(openssl x509 -in '$work/device.pem' -outform DER)"
check "pubkey export by URI matches the certificate's key" \
  bash -c "'$bin/remhsm' pubkey export 'pkcs11:object=Device%20Priv%20TLS%20Key;type=private' \
    --module '$module' | cmp - <(openssl x509 -in '$work/device.pem' -noout -pubkey)"
check "object show describes the key and reveals no secret" \
  bash -c "'$bin/remhsm' object show 'Device Priv TLS Key' --module '$module' |
    grep -q 'sensitive    yes' &&
    ! '$bin/remhsm' object show 'Device Priv TLS Key' --module '$module' | grep -qi value"

# RSA, and keys made elsewhere.
check "key gen --type rsa-2048 with a label and id" \
  "${r[@]}" key gen --type rsa-2048 --label claim --id 0a0b "${m[@]}"
check "key gen --id 01: a one-byte id (it used to exit 1 in silence)" \
  bash -c "'$bin/remhsm' key gen --label one-byte --id 01 --module '$module' |
    grep -q 'id=%01'"
check "an RSA CSR verifies" \
  bash -c "'$bin/remhsm' csr --key 'pkcs11:object=claim;id=%0a%0b;type=private' \
    --subject /CN=claim --module '$module' | openssl req -verify -noout"
check "key gen --type ec-p521, and its CSR (ECDSA-SHA512) verifies" \
  bash -c "'$bin/remhsm' key gen --type ec-p521 --label big-ec --module '$module' >/dev/null &&
    '$bin/remhsm' csr --key 'pkcs11:object=big-ec;type=private' --subject /CN=p521 \
      --module '$module' | openssl req -verify -noout -text 2>&1 |
    grep -q 'ecdsa-with-SHA512'"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$work/p521.pem" 2>/dev/null
check "key import: a P-521 key, and its CSR carries its public key" \
  bash -c "'$bin/remhsm' key import '$work/p521.pem' --label imported-521 --module '$module' >/dev/null &&
    '$bin/remhsm' csr --key imported-521 --subject /CN=i521 --module '$module' |
    openssl req -noout -pubkey | cmp - <(openssl pkey -in '$work/p521.pem' -pubout)"
check "key gen --type ed25519, and its CSR (Ed25519) verifies" \
  bash -c "'$bin/remhsm' key gen --type ed25519 --label edge --module '$module' >/dev/null &&
    '$bin/remhsm' csr --key 'pkcs11:object=edge;type=private' --subject /CN=ed \
      --module '$module' | openssl req -verify -noout -text 2>&1 |
    grep -q 'Signature Algorithm: ED25519'"
openssl genpkey -algorithm ED25519 -out "$work/ed.pem" 2>/dev/null
check "key import: an Ed25519 key, and its CSR carries its public key" \
  bash -c "'$bin/remhsm' key import '$work/ed.pem' --label imported-ed --module '$module' >/dev/null &&
    '$bin/remhsm' csr --key imported-ed --subject /CN=ied --module '$module' |
    openssl req -noout -pubkey | cmp - <(openssl pkey -in '$work/ed.pem' -pubout)"
check "pubkey export of the imported Ed25519 key is OpenSSL's" \
  bash -c "'$bin/remhsm' pubkey export 'pkcs11:object=imported-ed;type=public' --module '$module' |
    cmp - <(openssl pkey -in '$work/ed.pem' -pubout)"
# Secret keys: AES and HMAC, made inside remhsm and used through pkcs11-tool.
check "key gen --type aes-256 prints the secret key's URI, with a random id" \
  bash -c "'$bin/remhsm' key gen --type aes-256 --label backup-aes --module '$module' |
    grep -Eq '^secret key: pkcs11:token=FreeRTOS;object=backup-aes;id=(%[0-9a-f]{2}){8};type=secret-key'"
check "key gen --type hmac-sha256 with an id" \
  bash -c "'$bin/remhsm' key gen --type hmac-sha256 --label fw-mac --id 6b6b --module '$module' |
    grep -q '^secret key: .*object=fw-mac;id=%6b%6b;type=secret-key'"
check "object show: the AES key is 32 bytes, sensitive, never extractable" \
  bash -c "'$bin/remhsm' object show 'pkcs11:object=backup-aes;type=secret-key' --module '$module' |
    grep -q 'sensitive    yes'"
echo firmware >"$work/fw"
check "pkcs11-tool makes an HMAC with the key remhsm made" \
  pkcs11-tool --module "$module" --login --pin 0000 --sign --mechanism SHA256-HMAC \
  --id 6b6b --input-file "$work/fw" --output-file "$work/fw.mac"
check "the HMAC is 32 bytes" test "$(stat -c %s "$work/fw.mac")" -eq 32
check "a secret key label already taken" \
  bash -c "! '$bin/remhsm' key gen --type aes-128 --label backup-aes --module '$module' 2>/dev/null"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/p384.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
openssl pkey -in "$work/rsa.pem" -traditional -out "$work/rsa-trad.pem"
openssl pkey -in "$work/p384.pem" -outform DER -out "$work/p384.der"
check "key import: a PKCS#8 P-384 key" \
  "${r[@]}" key import "$work/p384.pem" --label legacy-ec "${m[@]}"
check "key import: a traditional RSA key" \
  "${r[@]}" key import "$work/rsa-trad.pem" --label legacy-rsa "${m[@]}"
check "the imported key signs a CSR for its own public key" \
  bash -c "'$bin/remhsm' csr --key legacy-rsa --subject /CN=legacy --module '$module' |
    openssl req -noout -pubkey | cmp - <(openssl pkey -in '$work/rsa.pem' -pubout)"
check "an imported key is sensitive and not extractable" \
  bash -c "'$bin/remhsm' object show 'pkcs11:object=legacy-ec;type=private' --module '$module' |
    grep -q 'extractable  no'"

# Bad input: a clear message, a non-zero exit, the token unchanged.
before=$(objects)
bad() {
  local want=$1 message=$2
  shift 2
  local s
  s=$(status_of "${r[@]}" "$@" "${m[@]}")
  [ "$s" -eq "$want" ] && grep -q -- "$message" "$work/out" && unchanged "$before"
}
check "a CSR for a key that does not exist" \
  bad 1 "no private key on token \"FreeRTOS\" matches" csr --key nosuch --subject /CN=x
check "a certificate that matches no key" \
  bad 1 "no private key on token \"FreeRTOS\" matches this certificate" \
  cert import "$work/state/pki/client.pem" --label other
check "a PEM file that is not a certificate" \
  bad 1 "is not a PEM or DER X.509 certificate" cert import "$work/rsa.pem"
check "a file that is not a private key" \
  bad 1 "is not an unencrypted PEM or DER private key" key import "$work/device.pem"
openssl pkey -in "$work/p384.pem" -aes256 -passout pass:secret -out "$work/enc.pem"
check "an encrypted key is refused, not prompted for" \
  bad 1 "is not an unencrypted" key import "$work/enc.pem" --label enc
check "the DER key is refused under a label already taken" \
  bad 1 "already has a key labelled \"legacy-ec\"" key import "$work/p384.der" --label legacy-ec
check "a label that names several objects" \
  bad 1 "matches several objects" object delete claim
check "a URI with an attribute remhsm cannot match" \
  bad 2 "attribute 'model' is not supported" object delete "pkcs11:model=x;object=claim"
check "a malformed id in a URI" \
  bad 2 "bad id" object show "pkcs11:id=%zz"
check "a wrong PIN" \
  bad 1 "CKR_PIN_INCORRECT" key gen --label wrong --pin 9999
check "a certificate imported twice under one label" \
  bad 1 "already has a certificate labelled" cert import "$work/device.pem"
check "a bad subject" bad 2 "bad --subject" csr --key "Device Priv TLS Key" --subject CN=x
check "a bad SAN" bad 2 "bad --san" csr --key "Device Priv TLS Key" --subject /CN=x --san IP:nope
check "an unknown key type" bad 2 "usage: remhsm key gen" key gen --type ec-p224
check "a token that does not exist" bad 1 "no such initialised token" object list --token nope
check "no PIN and no terminal" \
  test "$(REMHSM_PIN= status_of setsid "${r[@]}" object list "${m[@]}" </dev/null)" -eq 2
check "the token is unchanged after all of them" unchanged "$before"

check "every command has --help" \
  bash -c "for c in 'key gen' 'key import' csr 'cert import' 'pubkey export' \
    'object list' 'object show' 'object delete'; do
      '$bin/remhsm' \$c --help | grep -q usage || exit 1; done"
check "object delete by URI" \
  "${r[@]}" object delete "pkcs11:object=claim;type=public" "${m[@]}"
check "the other half stays" \
  test "$(objects | grep -c 'object=claim')" -eq 1

finish
