# What `cmake --install` places besides the binaries, and the Debian package
# CPack makes of it (cpack -G DEB in a tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr).
set(DEPLOY ${PROJECT_SOURCE_DIR}/deploy)
# Applications include p11-kit's pkcs11.h, as remhsm does.
list(GET P11KIT_INCLUDE_DIRS 0 P11KIT_INCLUDE_DIR)
# The unit in deploy/ names the Debian package's paths; an install
# elsewhere gets its own.
file(READ ${DEPLOY}/remhsmd.service UNIT)
string(REPLACE "/usr/bin/" "${CMAKE_INSTALL_FULL_BINDIR}/" UNIT "${UNIT}")
string(REPLACE "/etc/remhsm/" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/remhsm/" UNIT "${UNIT}")
string(REPLACE "/usr/share/doc/remhsm/" "${CMAKE_INSTALL_FULL_DOCDIR}/" UNIT "${UNIT}")
file(WRITE ${PROJECT_BINARY_DIR}/remhsmd.service "${UNIT}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${DEPLOY}/remhsmd.service)
configure_file(${DEPLOY}/remhsm.module.in ${PROJECT_BINARY_DIR}/remhsm.module @ONLY)
configure_file(${DEPLOY}/remhsm-pkcs11.pc.in ${PROJECT_BINARY_DIR}/remhsm-pkcs11.pc @ONLY)

install(FILES ${PROJECT_BINARY_DIR}/remhsmd.service
        DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
install(FILES ${PROJECT_BINARY_DIR}/remhsm.module
        DESTINATION ${CMAKE_INSTALL_DATADIR}/p11-kit/modules)
install(FILES ${PROJECT_BINARY_DIR}/remhsm-pkcs11.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# GNUInstallDirs puts /usr's configuration in /etc; other prefixes keep
# theirs beneath them (and `cmake --install --prefix` may move them).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(REMHSM_CONF_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/remhsm)
else()
  set(REMHSM_CONF_DIR ${CMAKE_INSTALL_SYSCONFDIR}/remhsm)
endif()
install(FILES ${DEPLOY}/remhsmd.conf.example
        DESTINATION ${REMHSM_CONF_DIR} RENAME remhsmd.conf)
install(FILES ${DEPLOY}/remhsmd.conf.example ${DEPLOY}/access.list.example README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME remhsm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "remhsm developers <remhsm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "networked remote HSM: daemon, PKCS#11 module and admin CLI")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Library dependencies from the binaries themselves (dpkg-shlibdeps).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${DEPLOY}/debian/conffiles)
include(CPack)
