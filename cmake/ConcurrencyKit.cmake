# Concurrency Kit, as the target portreg_ck (what every in-tree target
# links instead of naming a package's target).
#   PORTREG_CK=system   pkg-config's ck (CMAKE_PREFIX_PATH, or pkg-config
#                       rebased into a sysroot by a toolchain file)
#   PORTREG_CK=bundled  CK 0.7.1 built from source by this build: the
#                       tarball pinned below (SHA-256), or PORTREG_CK_SOURCE
#                       (a directory or an archive; offline builds and CI)
#   PORTREG_CK=auto     system when pkg-config finds it, else bundled
# Only ck_epoch and ck_ht are compiled. The bundled library is linked into
# both portreg libraries, hidden, so installed packages need no libck.
set(PORTREG_CK "auto" CACHE STRING "Concurrency Kit: 'auto', 'system' or 'bundled'")
set_property(CACHE PORTREG_CK PROPERTY STRINGS auto system bundled)
set(PORTREG_CK_SOURCE "" CACHE PATH
    "Concurrency Kit 0.7.1 sources for PORTREG_CK=bundled: a directory or an archive (default: download)")
set(PORTREG_CK_URL "http://deb.debian.org/debian/pool/main/c/ck/ck_0.7.1.orig.tar.xz")
set(PORTREG_CK_SHA256 296a4c803fecd1fb0191f78715c0ec97cc2d9109ed3c2c89b0385d4d2263d9c5)

if(NOT PORTREG_CK MATCHES "^(auto|system|bundled)$")
  message(FATAL_ERROR "PORTREG_CK must be 'auto', 'system' or 'bundled', not '${PORTREG_CK}'")
endif()

set(PORTREG_CK_BUNDLED OFF)
if(NOT PORTREG_CK STREQUAL "bundled")
  if(PORTREG_CK STREQUAL "system")
    pkg_check_modules(CK REQUIRED IMPORTED_TARGET ck)
  else()
    pkg_check_modules(CK QUIET IMPORTED_TARGET ck)
  endif()
  if(TARGET PkgConfig::CK)
    add_library(portreg_ck INTERFACE)
    target_link_libraries(portreg_ck INTERFACE PkgConfig::CK)
  else()
    message(STATUS "portreg: no Concurrency Kit package found; building CK 0.7.1 from source")
    set(PORTREG_CK_BUNDLED ON)
  endif()
else()
  set(PORTREG_CK_BUNDLED ON)
endif()

if(PORTREG_CK_BUNDLED)
  include(FetchContent)
  if(PORTREG_CK_SOURCE STREQUAL "")
    FetchContent_Declare(portreg_ck_src URL ${PORTREG_CK_URL} URL_HASH SHA256=${PORTREG_CK_SHA256})
  elseif(IS_DIRECTORY "${PORTREG_CK_SOURCE}")
    FetchContent_Declare(portreg_ck_src SOURCE_DIR "${PORTREG_CK_SOURCE}")
  elseif(EXISTS "${PORTREG_CK_SOURCE}")
    FetchContent_Declare(portreg_ck_src URL "${PORTREG_CK_SOURCE}")
  else()
    message(FATAL_ERROR "PORTREG_CK_SOURCE: ${PORTREG_CK_SOURCE} does not exist")
  endif()
  FetchContent_GetProperties(portreg_ck_src)
  if(NOT portreg_ck_src_POPULATED)
    FetchContent_Populate(portreg_ck_src)
  endif()
  set(_ck ${portreg_ck_src_SOURCE_DIR})
  if(NOT EXISTS ${_ck}/include/ck_md.h.in OR NOT EXISTS ${_ck}/src/ck_ht.c)
    message(FATAL_ERROR "portreg: ${_ck} does not hold Concurrency Kit's sources")
  endif()

  # CK's configure writes ck_md.h from what it probes on the build machine,
  # which is wrong when cross-compiling; the same choices are made here
  # from the target: the memory model (TSO on x86_64, RMO, the weakest, on
  # everything else) and no optional instruction set extensions.
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(_mm CK_MD_TSO)
    set(_builtins OFF)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(_mm CK_MD_RMO)
    set(_builtins OFF)
  else()
    set(_mm CK_MD_RMO)
    set(_builtins ON)
  endif()
  file(READ ${_ck}/include/ck_md.h.in _md)
  foreach(pair "RTM_ENABLE@;CK_MD_RTM_DISABLE" "LSE_ENABLE@;CK_MD_LSE_DISABLE"
               "POINTER_PACK_ENABLE@;CK_MD_POINTER_PACK_DISABLE" "SSE_DISABLE@;CK_MD_SSE_ENABLE"
               "PPC32_LWSYNC_ENABLE@;CK_MD_PPC32_LWSYNC_DISABLE" "VMA_BITS@;CK_MD_VMA_BITS_UNKNOWN"
               "VMA_BITS_VALUE@;" "MM@;${_mm}" "DISABLE_DOUBLE@;CK_PR_ENABLE_DOUBLE"
               "VERSION@;0.7.1" "GIT_SHA@;")
    list(GET pair 0 _key)
    list(LENGTH pair _n)
    set(_value "")
    if(_n GREATER 1)
      list(GET pair 1 _value)
    endif()
    string(REPLACE "@${_key}" "${_value}" _md "${_md}")
  endforeach()
  set(_gen ${CMAKE_CURRENT_BINARY_DIR}/ck-include)
  file(CONFIGURE OUTPUT ${_gen}/ck_md.h CONTENT "${_md}")

  add_library(portreg_ck STATIC ${_ck}/src/ck_epoch.c ${_ck}/src/ck_ht.c)
  target_include_directories(portreg_ck SYSTEM PUBLIC ${_gen} ${_ck}/include)
  target_include_directories(portreg_ck PRIVATE ${_ck}/src)
  if(_builtins)
    target_compile_definitions(portreg_ck PUBLIC CK_CC_BUILTINS)
  endif()
  set_target_properties(portreg_ck PROPERTIES C_STANDARD 99 C_EXTENSIONS ON
                        POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
endif()

# The ck_md.h a build uses must describe its target: a pkg-config file that
# points at the build machine's headers (ck.pc says -I/usr/include) would
# give an arm64 build x86's TSO model, and nothing else would notice.
include(CheckCSourceCompiles)
include(CMakePushCheckState)
cmake_push_check_state(RESET)
get_target_property(_inc portreg_ck INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(_defs portreg_ck INTERFACE_COMPILE_DEFINITIONS)
if(TARGET PkgConfig::CK)
  get_target_property(_inc PkgConfig::CK INTERFACE_INCLUDE_DIRECTORIES)
  get_target_property(_opts PkgConfig::CK INTERFACE_COMPILE_OPTIONS)
  if(_opts)
    set(CMAKE_REQUIRED_FLAGS "${_opts}")
    string(REPLACE ";" " " CMAKE_REQUIRED_FLAGS "${CMAKE_REQUIRED_FLAGS}")
  endif()
endif()
if(_inc)
  set(CMAKE_REQUIRED_INCLUDES ${_inc})
endif()
if(_defs)
  list(TRANSFORM _defs PREPEND -D OUTPUT_VARIABLE CMAKE_REQUIRED_DEFINITIONS)
endif()
# The target's CPU comes from CMake, not from the preprocessor: Debian's
# ck.pc adds -D__x86_64__ to every compile that uses it.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86|x86|sparc.*)$")
  list(APPEND CMAKE_REQUIRED_DEFINITIONS -DPORTREG_TARGET_IS_TSO=1)
else()
  list(APPEND CMAKE_REQUIRED_DEFINITIONS -DPORTREG_TARGET_IS_TSO=0)
endif()
check_c_source_compiles([[
#include <ck_md.h>
#if PORTREG_TARGET_IS_TSO && !defined(CK_MD_TSO)
#  error "a TSO target (x86), but ck_md.h does not say CK_MD_TSO"
#elif !PORTREG_TARGET_IS_TSO && defined(CK_MD_TSO)
#  error "ck_md.h says CK_MD_TSO (x86) for a weakly ordered target"
#endif
int main(void) { return 0; }
]] PORTREG_CK_MD_MATCHES_TARGET)
cmake_pop_check_state()
if(NOT PORTREG_CK_MD_MATCHES_TARGET)
  message(FATAL_ERROR
    "portreg: the ck_md.h found (include path: ${_inc}) was configured for another CPU than "
    "the target (${CMAKE_SYSTEM_PROCESSOR}); a cross build must find the target's Concurrency "
    "Kit: rebase pkg-config into the sysroot (PKG_CONFIG_LIBDIR, PKG_CONFIG_SYSROOT_DIR) "
    "or use -DPORTREG_CK=bundled")
endif()

# libck's link flags for portreg.pc's Libs.private (static linking), as
# pkg-config gave them; nothing when CK is inside the libraries.
set(PORTREG_PC_CK_LIBS "")
if(NOT PORTREG_CK_BUNDLED)
  foreach(dir ${CK_LIBRARY_DIRS})
    if(NOT dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
      string(APPEND PORTREG_PC_CK_LIBS "-L${dir} ")
    endif()
  endforeach()
  foreach(lib ${CK_LIBRARIES})
    string(APPEND PORTREG_PC_CK_LIBS "-l${lib} ")
  endforeach()
endif()
