#!/usr/bin/env bash
# The installed static library links into an application with only its
# documented dependencies (OpenSSL, protobuf-c, pthreads) and works.
#   static_link.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$1"

archive=$(find "$work/prefix" -name libremhsm-pkcs11.a | head -n 1)
[ -n "$archive" ] || fail "cmake --install did not install libremhsm-pkcs11.a"
check "an application links the archive with -lssl -lcrypto -lprotobuf-c -pthread" \
  cc -std=c11 -Wall -Werror $(pkg-config --cflags p11-kit-1) \
    "$(dirname "$0")/static_client.c" "$archive" -lssl -lcrypto -lprotobuf-c -pthread \
    -o "$work/static_client"
check "it needs no other shared library" \
  bash -c "! ldd '$work/static_client' | grep -vE 'libssl|libcrypto|libprotobuf-c|libc\\.so|ld-linux|linux-vdso' | grep -q ."
check "it talks to the daemon" \
  bash -c "'$work/static_client' | grep -q remhsm"

check "the archive defines no global symbol but the 92 C_* entry points (v3.0)" \
  bash -c "[ \"\$(nm -g --defined-only '$archive' | awk 'NF == 3 && \$3 !~ /^C_/' | wc -l)\" = 0 ] &&
    [ \"\$(nm -g --defined-only '$archive' | awk 'NF == 3 && \$3 ~ /^C_/' | wc -l)\" = 92 ]"
check "an application with functions named rh_frame_pack, rhc_call and remhsm__request__unpack links it" \
  cc -std=c11 -Wall -Werror -DOWN_NAMES $(pkg-config --cflags p11-kit-1) \
    "$(dirname "$0")/static_client.c" "$(dirname "$0")/static_names.c" "$archive" \
    -lssl -lcrypto -lprotobuf-c -pthread -o "$work/static_names"
check "and both its own functions and the module's work" \
  bash -c "'$work/static_names' | grep -q remhsm"
finish
