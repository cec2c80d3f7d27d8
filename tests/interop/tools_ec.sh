#!/usr/bin/env bash
# Interop with the real tools, keys in remhsm:
# - OpenSC:  an RSA-2048 key from pkcs11-tool, then pkcs11-tool --test
#   --login --allow-sw signs and verifies with it and exits 0
# - GnuTLS:  p11tool lists the token, generates an ECDSA key, --test-sign
# - OpenSSL with the libp11 engine: a CSR that openssl req -verify accepts,
#   and a signature that openssl dgst -verify accepts with the public key
#   exported from remhsm; RSA-OAEP decryption (SHA-1, SHA-256) of what
#   openssl encrypted to a key in remhsm.
#   tools_ec.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024

"$bin/remhsm" token init --module "$module" --freertos --so-pin 12345678 >/dev/null ||
  fail "token init"

pkcs11-tool --module "$module" --login --pin 0000 --keypairgen --key-type rsa:2048 \
  --label rsa-key --id 02 >"$work/out" 2>&1 || fail "RSA keypairgen: $(cat "$work/out")"
status=0
pkcs11-tool --module "$module" --test --login --allow-sw --pin 0000 >"$work/test.out" 2>&1 || status=$?
check "pkcs11-tool --test --login --allow-sw exits 0" test "$status" -eq 0
check "its RSA-PKCS signature test passes" grep -q "RSA-PKCS: OK" "$work/test.out"
check "its SHA256-RSA-PKCS signature test passes" \
  grep -q "SHA256-RSA-PKCS: OK" "$work/test.out"

p11=(p11tool --provider "$module")
check "p11tool lists the token" \
  grep -q "Label: FreeRTOS" <("${p11[@]}" --list-tokens 2>&1)
export GNUTLS_PIN=0000
"${p11[@]}" --login --generate-privkey ecdsa --curve secp256r1 --label tls-key \
  "pkcs11:token=FreeRTOS" >"$work/out" 2>&1 || fail "p11tool generate: $(cat "$work/out")"
"${p11[@]}" --login --test-sign "pkcs11:token=FreeRTOS;object=tls-key" >"$work/out" 2>&1 || true
check "p11tool --test-sign signs and verifies" \
  grep -q "Verifying against public key in the token... ok" "$work/out"

cat >"$work/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
MODULE_PATH = $module
init = 0
[req]
distinguished_name = dn
[dn]
CNF
key="pkcs11:token=FreeRTOS;object=tls-key;type=private;pin-value=0000"
OPENSSL_CONF=$work/openssl.cnf openssl req -engine pkcs11 -keyform engine -key "$key" \
  -new -subj "/CN=device-42" -sha256 -out "$work/csr.pem" >"$work/out" 2>&1 ||
  fail "openssl req: $(cat "$work/out")"
check "openssl req -verify accepts the CSR signed in remhsm" \
  openssl req -in "$work/csr.pem" -verify -noout
echo "firmware image" >"$work/msg"
OPENSSL_CONF=$work/openssl.cnf openssl dgst -engine pkcs11 -keyform engine -sign "$key" \
  -sha256 -out "$work/msg.sig" "$work/msg" >"$work/out" 2>&1 || fail "engine sign"
OPENSSL_CONF=$work/openssl.cnf openssl pkey -engine pkcs11 -inform engine -pubin \
  -in "pkcs11:token=FreeRTOS;object=tls-key;type=public" -out "$work/pub.pem" \
  >"$work/out" 2>&1 || fail "export: $(cat "$work/out")"
check "openssl dgst -verify accepts the signature" \
  openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/msg.sig" "$work/msg"

# RSA-OAEP: OpenSSL encrypts a data key to an RSA key pkcs11-tool made in
# remhsm, and decrypts it through the engine (the key never leaves).
pkcs11-tool --module "$module" --login --pin 0000 --keypairgen --key-type rsa:2048 \
  --usage-decrypt --label oaep-key --id 03 >"$work/out" 2>&1 ||
  fail "OAEP keypairgen: $(cat "$work/out")"
pkcs11-tool --module "$module" --read-object --type pubkey --id 03 -o "$work/oaep.pub" \
  >/dev/null 2>&1 || fail "OAEP public key export"
head -c 32 /dev/urandom >"$work/data.key"
oaep_key="pkcs11:token=FreeRTOS;object=oaep-key;type=private;pin-value=0000"
for md in sha1 sha256; do
  opts=(-pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md")
  openssl pkeyutl -encrypt -pubin -inkey "$work/oaep.pub" "${opts[@]}" \
    -in "$work/data.key" -out "$work/data.$md" || fail "openssl OAEP encrypt"
  OPENSSL_CONF=$work/openssl.cnf openssl pkeyutl -decrypt -engine pkcs11 -keyform engine \
    -inkey "$oaep_key" "${opts[@]}" -in "$work/data.$md" -out "$work/back.$md" \
    >"$work/out" 2>&1 || true
  check "the libp11 engine decrypts RSA-OAEP ($md) with the key in remhsm" \
    cmp -s "$work/data.key" "$work/back.$md"
done

finish
