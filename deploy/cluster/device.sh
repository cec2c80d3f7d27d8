#!/bin/sh
# The cluster's device: provisions the token once through whichever
# daemon answers, then signs ECDSA P-256 for SIGN_SECONDS with one login
# and a token key, through the daemons REMHSM_SERVER lists: when the one
# it uses goes, it moves to the next with its sessions and login. Exits
# 0 only if not one signature failed (remhsm bench stops at the first).
set -eu
until [ -r /etc/remhsm/pki/client.key ]; do sleep 0.2; done
export REMHSM_CA=/etc/remhsm/pki/ca.pem REMHSM_CERT=/etc/remhsm/pki/client.pem \
  REMHSM_KEY=/etc/remhsm/pki/client.key
tries=0
until remhsm token list >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 600 ] || { echo "no daemon of $REMHSM_SERVER answers" >&2; exit 1; }
  sleep 0.2
done
remhsm token list | grep -q 'label "FreeRTOS"' ||
  remhsm token init --freertos --so-pin compose-so-pin
echo "signing for ${SIGN_SECONDS:-60} s through $REMHSM_SERVER"
exec remhsm bench --sign-pin 0000 --token-key --threads 2 --seconds "${SIGN_SECONDS:-60}"
