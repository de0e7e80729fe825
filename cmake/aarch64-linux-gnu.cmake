# Cross build for arm64 on a Debian amd64 host (scripts/install-deps.sh --cross arm64): Debian's
# multiarch cross compiler, the :arm64 libraries in /usr/lib/aarch64-linux-gnu, and
# qemu-aarch64-static to run the arm64 test programs (ctest prefixes them with it).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)

# pkg-config answers for the arm64 libraries only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
