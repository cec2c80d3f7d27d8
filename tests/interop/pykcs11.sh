#!/usr/bin/env bash
# Interop: Python's PyKCS11 (Debian's python3-pykcs11, Debian's own
# python3) loads the installed module against a remhsmd with two slots and
# backs a token's keys up into the other: pykcs11_backup.py.
#   pykcs11.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1" --kdf-scrypt-n 1024 --slots 2

check "PyKCS11 wraps slot 0's keys and restores them on slot 1" \
  /usr/bin/python3 "$(dirname "$0")/pykcs11_backup.py" "$module"
finish
