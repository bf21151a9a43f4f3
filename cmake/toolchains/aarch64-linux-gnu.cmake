# Cross-compiling for Linux on aarch64 (glibc) with Debian's
# gcc-aarch64-linux-gnu, running the tests under qemu-user.
#   -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#   -DPORTREG_TARGET_ROOT=<dir>   where the target's libraries and their
#                                 pkg-config files are (for instance arm64
#                                 .debs unpacked with dpkg-deb -x); the
#                                 C library itself comes from the compiler
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(_triplet aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${_triplet}-gcc)
set(CMAKE_CXX_COMPILER ${_triplet}-g++)

# Try-compiles re-read this file: pass the root on to them.
if(NOT PORTREG_TARGET_ROOT AND DEFINED ENV{PORTREG_TARGET_ROOT})
  set(PORTREG_TARGET_ROOT $ENV{PORTREG_TARGET_ROOT})
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PORTREG_TARGET_ROOT)
set(_libc_root /usr/${_triplet})

# Libraries, headers and packages from the target only; programs (the nanopb
# generator, pkg-config) from the build machine.
set(CMAKE_FIND_ROOT_PATH ${PORTREG_TARGET_ROOT} ${_libc_root})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE ${_triplet})

# pkg-config reads the target's .pc files only and prefixes every path they
# give with the root: ck.pc's -I/usr/include must not reach the build
# machine's ck_md.h.
if(PORTREG_TARGET_ROOT)
  set(ENV{PKG_CONFIG_LIBDIR}
      "${PORTREG_TARGET_ROOT}/usr/lib/${_triplet}/pkgconfig:${PORTREG_TARGET_ROOT}/usr/share/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PORTREG_TARGET_ROOT}")
  set(_ld_path "${PORTREG_TARGET_ROOT}/usr/lib/${_triplet}:${PORTREG_TARGET_ROOT}/lib/${_triplet}")
  # The linker follows the libraries' own dependencies (Criterion's) there.
  foreach(kind EXE SHARED MODULE)
    set(CMAKE_${kind}_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_ld_path}")
  endforeach()
else()
  set(ENV{PKG_CONFIG_LIBDIR} "${_libc_root}/lib/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${_libc_root}")
  set(_ld_path "")
endif()

# Test programs run under qemu-user, with the target's dynamic loader and
# libraries. Programs that start themselves again (Criterion's runner) go
# through the kernel's binfmt_misc entry for qemu-aarch64, which reads the
# loader's prefix from QEMU_LD_PREFIX: hence an environment variable, not -L.
find_program(PORTREG_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(PORTREG_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      env QEMU_LD_PREFIX=${_libc_root} ${PORTREG_QEMU_AARCH64} -E LD_LIBRARY_PATH=${_ld_path})
endif()
