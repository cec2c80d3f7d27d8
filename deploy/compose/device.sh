#!/bin/sh
# The sample device: provisions its identity in remhsm (the key never
# leaves remhsmd), has the dev CA certify it, and publishes over mutual
# TLS with the key in remhsm through the libp11 engine.
set -eu
apt-get update -qq
apt-get install -y -qq --no-install-recommends mosquitto-clients libengine-pkcs11-openssl openssl >/dev/null
work=$(mktemp -d)
cp -r /var/lib/remhsm/pki "$work/pki"
export REMHSM_CA=$work/pki/ca.pem REMHSM_CERT=$work/pki/client.pem REMHSM_KEY=$work/pki/client.key
export REMHSM_PIN=0000
remhsm token list | grep -q 'label "FreeRTOS"' ||
  remhsm token init --freertos --so-pin compose-so-pin
remhsm object list | grep -q 'Device%20Priv%20TLS%20Key' || remhsm key gen
remhsm csr --key "Device Priv TLS Key" --subject /CN=compose-device -o "$work/device.csr"
# The dev CA's key is in the state volume: this stands in for the cloud.
openssl x509 -req -in "$work/device.csr" -CA "$work/pki/ca.pem" -CAkey "$work/pki/ca.key" \
  -days 30 -out "$work/device.pem"
remhsm object list | grep -q 'Device%20Cert' || remhsm cert import "$work/device.pem"
cat >"$work/openssl.cnf" <<CNF
openssl_conf = init
[init]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
MODULE_PATH = $(ls /usr/lib/*/libremhsm-pkcs11.so)
PIN = 0000
init = 0
CNF
export OPENSSL_CONF=$work/openssl.cnf
key='pkcs11:token=FreeRTOS;object=Device%20Priv%20TLS%20Key;type=private'
cd "$work" && : >"$key"
mosquitto_pub -h 127.0.0.1 -p 8883 --cafile "$work/pki/ca.pem" --cert "$work/device.pem" \
  --tls-engine pkcs11 --keyform engine --key "$key" -t devices/compose-device -m "hello from compose"
echo "published with the key in remhsm"
