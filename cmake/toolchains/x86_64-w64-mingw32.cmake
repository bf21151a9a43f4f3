# Windows x64 with mingw-w64's GCC (Debian's gcc-mingw-w64-x86-64), and
# programs run under Wine (wine64) by ctest.
#   -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/x86_64-w64-mingw32.cmake
#   -DPORTREG_TARGET_ROOT=<dir>   where nanopb built with the same compiler
#                                 is installed (prefix /usr, DESTDIR=<dir>)
#   -DPORTREG_CK=bundled          no Concurrency Kit package exists for it
#   -DPORTREG_MINGW_CLANG=ON      compile with clang for the same target
#                                 (mingw-w64's headers, libraries and
#                                 linker): native thread-locals, where
#                                 GCC's mingw-w64 target emulates them
# PORTREG_MINGW_PREFIX names another mingw-w64 installation's prefix.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_SYSTEM_VERSION 6.2) # Windows 8: WaitOnAddress()

if(NOT PORTREG_MINGW_PREFIX)
  set(PORTREG_MINGW_PREFIX x86_64-w64-mingw32)
endif()
if(NOT PORTREG_TARGET_ROOT AND DEFINED ENV{PORTREG_TARGET_ROOT})
  set(PORTREG_TARGET_ROOT $ENV{PORTREG_TARGET_ROOT})
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PORTREG_TARGET_ROOT PORTREG_MINGW_PREFIX
     PORTREG_MINGW_CLANG)

if(PORTREG_MINGW_CLANG)
  set(CMAKE_C_COMPILER clang)
  set(CMAKE_C_COMPILER_TARGET ${PORTREG_MINGW_PREFIX})
  # No .llvm_addrsig sections: GNU ld does not know them and maps one at
  # an address outside the image, which Windows then refuses to load.
  string(APPEND CMAKE_C_FLAGS_INIT " -fno-addrsig")
  # clang finds mingw-w64's headers and linker, not GCC's runtime library.
  file(GLOB _libgcc_dirs /usr/lib/gcc/${PORTREG_MINGW_PREFIX}/*-win32)
  foreach(_d ${_libgcc_dirs})
    string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -L${_d}")
    string(APPEND CMAKE_SHARED_LINKER_FLAGS_INIT " -L${_d}")
  endforeach()
else()
  set(CMAKE_C_COMPILER ${PORTREG_MINGW_PREFIX}-gcc)
endif()
# C++ (test programs only): mingw-w64's g++ in both cases, as a user's
# C++ program would be built.
set(CMAKE_CXX_COMPILER ${PORTREG_MINGW_PREFIX}-g++)
set(CMAKE_RC_COMPILER ${PORTREG_MINGW_PREFIX}-windres)
set(CMAKE_AR ${PORTREG_MINGW_PREFIX}-ar)
set(CMAKE_RANLIB ${PORTREG_MINGW_PREFIX}-ranlib)
set(CMAKE_LINKER ${PORTREG_MINGW_PREFIX}-ld)
set(CMAKE_OBJCOPY ${PORTREG_MINGW_PREFIX}-objcopy)

# Libraries, headers and packages from the root and mingw-w64 only;
# programs (the nanopb generator) from the build machine.
set(CMAKE_FIND_ROOT_PATH ${PORTREG_TARGET_ROOT} /usr/${PORTREG_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(ENV{PKG_CONFIG_LIBDIR}
    "${PORTREG_TARGET_ROOT}/usr/lib/pkgconfig:${PORTREG_TARGET_ROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${PORTREG_TARGET_ROOT}")

# ctest runs the programs through Wine (cmake/wine-run.sh).
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/../wine-run.sh)
