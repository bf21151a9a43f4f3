# Linux on x86_64 with musl libc, through Debian's musl-gcc wrapper (its
# C library lives in /usr/include/x86_64-linux-musl and
# /usr/lib/x86_64-linux-musl). musl programs run natively.
#   -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/x86_64-linux-musl.cmake
#   -DPORTREG_TARGET_ROOT=<dir>   where Concurrency Kit and nanopb built
#                                 with musl-gcc are installed with the
#                                 prefix /usr (DESTDIR=<dir>), with the
#                                 Linux kernel's headers in <dir>/usr/include
#                                 (musl-gcc does not search /usr/include)
# Without Concurrency Kit in the root, add -DPORTREG_CK=bundled.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER musl-gcc)

if(NOT PORTREG_TARGET_ROOT AND DEFINED ENV{PORTREG_TARGET_ROOT})
  set(PORTREG_TARGET_ROOT $ENV{PORTREG_TARGET_ROOT})
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PORTREG_TARGET_ROOT)

# Libraries, headers and packages from the root and musl only (never the
# build machine's glibc ones); programs from the build machine.
set(CMAKE_FIND_ROOT_PATH ${PORTREG_TARGET_ROOT} /usr/lib/x86_64-linux-musl)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
if(PORTREG_TARGET_ROOT)
  set(CMAKE_C_STANDARD_INCLUDE_DIRECTORIES ${PORTREG_TARGET_ROOT}/usr/include)
endif()

# pkg-config reads the root's .pc files only, with their paths rebased.
set(ENV{PKG_CONFIG_LIBDIR}
    "${PORTREG_TARGET_ROOT}/usr/lib/pkgconfig:${PORTREG_TARGET_ROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PORTREG_TARGET_ROOT}")
