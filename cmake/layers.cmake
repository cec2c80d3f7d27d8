# The layers, checked when the build is configured: what a target links,
# directly or through what it links, must not hold what its layer may not
# use. A source that reached past its layer would then fail to link too.

# Every target in the link closure of target, into out.
function(remhsm_link_closure target out)
  set(seen "")
  set(todo ${target})
  while(todo)
    list(POP_FRONT todo t)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" t "${t}")
    if(NOT TARGET "${t}" OR "${t}" IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    foreach(property LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(libs ${t} ${property})
      if(libs)
        list(APPEND todo ${libs})
      endif()
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# Stops the configuration when target links any of the forbidden targets.
function(remhsm_layer target why)
  remhsm_link_closure(${target} closure)
  foreach(forbidden ${ARGN})
    if("${forbidden}" IN_LIST closure)
      message(FATAL_ERROR "layering: ${target} links ${forbidden}: ${why}")
    endif()
  endforeach()
endfunction()

foreach(client remhsm_client_objs remhsm-pkcs11 remhsm-pkcs11-static)
  remhsm_layer(${client} "the client module never holds the store or an event loop"
               remhsm_store PkgConfig::SQLITE PkgConfig::UV)
endforeach()
if(NOT REMHSM_CLIENT_ONLY)
  remhsm_layer(remhsmd_core "the engine knows neither the network nor TLS"
               PkgConfig::UV OpenSSL::SSL remhsm_tls remhsmd_access)
  remhsm_layer(remhsm_store "the store knows neither the network nor the wire"
               PkgConfig::UV OpenSSL::SSL remhsm_tls remhsm_common)
endif()

# A database library stays in its store backend: of the project's own
# sources (tests, which alter store files, aside) only store/sqlite.c
# includes sqlite3.h, and only store/postgres.c libpq-fe.h. The folders searched are the project's sources, or
# those named after the allowed file.
function(remhsm_header_only_in header allowed)
  set(dirs ${ARGN})
  if(NOT dirs)
    set(dirs client common daemon store tools)
  endif()
  set(globs)
  foreach(dir ${dirs})
    list(APPEND globs ${PROJECT_SOURCE_DIR}/${dir}/*.[ch])
  endforeach()
  file(GLOB_RECURSE sources RELATIVE ${PROJECT_SOURCE_DIR} ${globs})
  foreach(source ${sources})
    file(STRINGS ${PROJECT_SOURCE_DIR}/${source} hits
         REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]${header}[>\"]")
    if(hits AND NOT source IN_LIST allowed)
      message(FATAL_ERROR "layering: ${source} includes ${header}, which "
              "only ${allowed} may")
    endif()
  endforeach()
endfunction()
remhsm_header_only_in(sqlite3.h store/sqlite.c)
remhsm_header_only_in(libpq-fe.h store/postgres.c)

# The daemon's keys, digests, random, KDFs, certificate fields and curve
# checks are OpenSSL's behind daemon/crypto.h (crypto.c, crypto_secret.c
# for secret keys and MACs, crypto_ed.c for Ed25519): no other daemon source
# includes these headers (the TLS layer has its own, ssl.h and x509v3.h).
foreach(header openssl/evp.h openssl/rsa.h openssl/rand.h openssl/hmac.h
        openssl/kdf.h openssl/sha.h openssl/param_build.h
        openssl/core_names.h openssl/bn.h openssl/ec.h openssl/objects.h
        openssl/x509.h)
  remhsm_header_only_in(
    ${header} "daemon/crypto.c;daemon/crypto_secret.c;daemon/crypto_ed.c"
    daemon)
endforeach()
