#!/bin/sh
# The sample device: provisions its identity in remhsm (the key never
# leaves remhsmd), has the dev CA certify it, and publishes over mutual
# TLS with the key in remhsm through the libp11 engine. REMHSM_SERVER
# names the daemon, BROKER the broker (host:port), both on the compose
# network; everything it runs is in its image.
set -eu
work=$(mktemp -d)
until [ -r /var/lib/remhsm/pki/ca.key ]; do sleep 0.2; done
cp -r /var/lib/remhsm/pki "$work/pki"
export REMHSM_CA=$work/pki/ca.pem REMHSM_CERT=$work/pki/client.pem REMHSM_KEY=$work/pki/client.key
export REMHSM_PIN=0000
tries=0
until remhsm token list >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 300 ] || { echo "remhsmd at $REMHSM_SERVER does not answer" >&2; exit 1; }
  sleep 0.2
done
remhsm token list | grep -q 'label "FreeRTOS"' ||
  remhsm token init --freertos --so-pin compose-so-pin
remhsm object list | grep -q 'Device%20Priv%20TLS%20Key' || remhsm key gen
remhsm csr --key "Device Priv TLS Key" --subject /CN=compose-device -o "$work/device.csr"
# The dev CA's key is in the state volume: this stands in for the cloud.
openssl x509 -req -in "$work/device.csr" -CA "$work/pki/ca.pem" -CAkey "$work/pki/ca.key" \
  -days 30 -out "$work/device.pem" 2>/dev/null
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
broker=${BROKER:-mosquitto:8883}
tries=0
until mosquitto_pub -h "${broker%:*}" -p "${broker##*:}" --cafile "$work/pki/ca.pem" \
  --cert "$work/device.pem" --tls-engine pkcs11 --keyform engine --key "$key" \
  -t devices/compose-device -m "hello from compose"; do
  tries=$((tries + 1))
  [ "$tries" -lt 50 ] || { echo "the broker at $broker does not take the message" >&2; exit 1; }
  sleep 0.2
done
echo "published with the key in remhsm"
