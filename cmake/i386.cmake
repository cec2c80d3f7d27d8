# Builds 32-bit x86 programs on a 64-bit Debian with multiarch i386
# libraries (scripts/deps.sh i386 installs them):
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/i386.cmake -DREMHSM_CLIENT_ONLY=ON ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(CMAKE_C_FLAGS_INIT -m32)
set(CMAKE_EXE_LINKER_FLAGS_INIT -m32)
set(CMAKE_SHARED_LINKER_FLAGS_INIT -m32)
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
# pkg-config must describe the i386 libraries, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/i386-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# protoc-c and other build tools are the host's; libraries and headers are
# searched where multiarch puts i386 ones.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
