#!/usr/bin/env bash
# Builds and tests portreg for the targets other than native Linux x86_64
# glibc that this machine can run (README, "Platforms"):
#   aarch64  glibc, cross-compiled; the unit suite and a short stress run
#            under qemu-user
#   musl     x86_64, musl-gcc; Concurrency Kit and nanopb from Debian's
#            source packages; the unit tests through the portable runner
#            (no Criterion for musl) and a short stress run
#   posix    the POSIX backend (PORTREG_OS=posix) on this Linux: the whole
#            unit suite, the stress harness and the stress harness under
#            ThreadSanitizer
#   windows  x64, mingw-w64 cross build (CK bundled, nanopb from Debian's
#            source package); the DLL exports portreg_* alone; the unit
#            tests through the portable runner, a program linked through the
#            import library and a short stress run, all under wine64; then
#            the same compiled by clang for the mingw-w64 target (native
#            thread-locals), with unit.late_exit_call
#   rust     the Rust crates' tests with portreg-sys building libportreg
#            (and Concurrency Kit) itself: its bundled feature
# Usage: scripts/test-platforms.sh [prepare|aarch64|musl|posix|windows|rust]...
# (no argument: all of them). Everything it fetches or builds lives under
# build/platforms, so a second run reuses it. Needs root (or sudo) only to
# install missing host packages and to enable binfmt_misc for qemu.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
P=$ROOT/build/platforms
# The stress runs' size, as a fraction of the CI size (stress/main.c).
STRESS_SCALE_QEMU=${STRESS_SCALE_QEMU:-0.01}
STRESS_SCALE=${STRESS_SCALE:-0.05}
export CTEST_OUTPUT_ON_FAILURE=1
mkdir -p "$P"

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

log() { echo "test-platforms: $*"; }

# --- host packages ----------------------------------------------------------
host_packages() {
  # libc6-dev-arm64-cross (the target's crt files and libc.so) is only a
  # recommendation of the cross compiler, which --no-install-recommends
  # leaves out: without it nothing links for aarch64.
  local packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binfmt-support
                  musl-tools dpkg-dev clang libclang-rt-14-dev mingw-w64 wine64) missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Criterion starts each test by executing the test binary again, so the
# kernel itself must hand arm64 programs to qemu.
enable_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
  fi
  if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    $sudo update-binfmts --enable qemu-aarch64 || return 1
  fi
}

# --- a private apt state ----------------------------------------------------
# Debian's arm64 packages and source packages, fetched without touching the
# system's package lists or its dpkg architectures: apt reads its own
# sources, lists and cache under build/platforms/apt.
APT=$P/apt
private_apt() {
  apt-get -c "$APT/apt.conf" "$@"
}
apt_state() {
  [ -f "$APT/updated" ] && return 0
  mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/etc/preferences.d"
  : >"$APT/status"
  local mirror suite key=/usr/share/keyrings/debian-archive-keyring.gpg
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  suite=${DEBIAN_SUITE:-bookworm}
  cat >"$APT/sources.list" <<SRC
deb [arch=arm64 signed-by=$key] $mirror $suite main
deb-src [signed-by=$key] $mirror $suite main
SRC
  cat >"$APT/apt.conf" <<CONF
Dir::Etc::sourcelist "$APT/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferencesparts "$APT/etc/preferences.d";
Dir::State "$APT";
Dir::State::Lists "$APT/lists";
Dir::State::status "$APT/status";
Dir::Cache "$APT/cache";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Get::AllowUnauthenticated "false";
CONF
  log "private apt state: update"
  private_apt -qq update && touch "$APT/updated"
}

# --- aarch64: the target's packages, unpacked -------------------------------
# Installing libck-dev:arm64 or libcriterion-dev:arm64 would remove the
# host's amd64 packages (neither is Multi-Arch: same), so the .debs are
# unpacked into a directory of their own that the toolchain file points at.
ARM64_ROOT=$P/aarch64-root
ARM64_DEBS=(
  libck0 libck-dev libnanopb-dev
  libcriterion3 libcriterion-dev libboxfort-dev libffi8 libffi-dev libnanomsg5 libnanomsg-dev
  libgit2-1.5 libgit2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libpcre2-dev
  zlib1g zlib1g-dev libssh2-1 libhttp-parser2.9 libmbedtls14 libmbedx509-1 libmbedcrypto7
  libssl3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
)
aarch64_root() {
  [ -f "$ARM64_ROOT/.done" ] && return 0
  apt_state || return 1
  local debs=$P/debs-arm64 d
  mkdir -p "$debs"
  log "downloading ${#ARM64_DEBS[@]} arm64 packages"
  (cd "$debs" && private_apt -qq download "${ARM64_DEBS[@]/%/:arm64}") || return 1
  rm -rf "$ARM64_ROOT"
  mkdir -p "$ARM64_ROOT"
  for d in "$debs"/*.deb; do
    dpkg-deb -x "$d" "$ARM64_ROOT" || return 1
  done
  touch "$ARM64_ROOT/.done"
}

# --- sources of Concurrency Kit and nanopb ----------------------------------
SRC=$P/src
sources() {
  [ -f "$SRC/.done" ] && return 0
  apt_state || return 1
  mkdir -p "$SRC"
  log "downloading the source packages of ck and nanopb"
  (cd "$SRC" && private_apt -qq source --download-only ck nanopb) || return 1
  touch "$SRC/.done"
}

# --- musl: nanopb built with musl-gcc, kernel headers -----------------------
# Concurrency Kit comes from the project's own build (PORTREG_CK=bundled,
# from the Debian source package's tarball); nanopb is installed into a root
# of its own with the prefix /usr, as a distribution would lay it out.
MUSL_ROOT=$P/musl-root
musl_root() {
  [ -f "$MUSL_ROOT/.done" ] && return 0
  sources || return 1
  rm -rf "$MUSL_ROOT" "$P/nanopb-src" "$P/nanopb-musl"
  mkdir -p "$MUSL_ROOT/usr/include" "$P/nanopb-src"
  # musl-gcc searches musl's headers only; portreg needs the kernel's
  # (linux/futex.h, linux/membarrier.h).
  ln -s /usr/include/linux "$MUSL_ROOT/usr/include/linux"
  ln -s /usr/include/asm-generic "$MUSL_ROOT/usr/include/asm-generic"
  ln -s /usr/include/x86_64-linux-gnu/asm "$MUSL_ROOT/usr/include/asm"
  tar -xzf "$SRC"/nanopb_*.orig.tar.gz -C "$P/nanopb-src" --strip-components=1 || return 1
  log "building nanopb with musl-gcc"
  cmake -S "$P/nanopb-src" -B "$P/nanopb-musl" -DCMAKE_C_COMPILER=musl-gcc \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -Dnanopb_BUILD_GENERATOR=OFF \
    -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON >/dev/null || return 1
  cmake --build "$P/nanopb-musl" -j2 >/dev/null || return 1
  DESTDIR=$MUSL_ROOT cmake --install "$P/nanopb-musl" >/dev/null || return 1
  touch "$MUSL_ROOT/.done"
}

# --- windows: nanopb built with mingw-w64 ---------------------------------
WINDOWS_ROOT=$P/windows-root
windows_root() {
  [ -f "$WINDOWS_ROOT/.done" ] && return 0
  sources || return 1
  rm -rf "$WINDOWS_ROOT" "$P/nanopb-src-windows" "$P/nanopb-windows"
  mkdir -p "$WINDOWS_ROOT" "$P/nanopb-src-windows"
  tar -xzf "$SRC"/nanopb_*.orig.tar.gz -C "$P/nanopb-src-windows" --strip-components=1 || return 1
  log "building nanopb with mingw-w64"
  cmake -S "$P/nanopb-src-windows" -B "$P/nanopb-windows" \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/x86_64-w64-mingw32.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
    -Dnanopb_BUILD_GENERATOR=OFF -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON >/dev/null || return 1
  cmake --build "$P/nanopb-windows" -j2 >/dev/null || return 1
  DESTDIR=$WINDOWS_ROOT cmake --install "$P/nanopb-windows" >/dev/null || return 1
  touch "$WINDOWS_ROOT/.done"
}

ck_tarball() {
  ls "$SRC"/ck_*.orig.tar.* | head -n1
}

# --- the targets ------------------------------------------------------------
passed=0
failed=0
failures=()
stage() {
  local name=$1
  shift
  echo
  echo "=== platforms: $name"
  local start=$SECONDS
  if "$@"; then
    echo "=== platforms: $name: PASS ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    echo "=== platforms: $name: FAIL ($((SECONDS - start)) s)"
    failed=$((failed + 1))
    failures+=("$name")
    return 1
  fi
}

configure() {
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTREG_DEVELOPER=ON \
    -DPORTREG_BUILD_TESTS=ON -DPORTREG_BUILD_STRESS=ON "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
}

build() {
  cmake --build "$1" -j2 >"$1.build.log" 2>&1 || { tail -40 "$1.build.log"; return 1; }
}

# The stress harness, every check, scaled down:
# short_stress DIR SCALE [OPTION...] [-- EMULATOR...]
short_stress() {
  local dir=$1 scale=$2 opts=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    opts+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  # A hang fails the stage in bounded time, never CI's whole budget.
  timeout -k 10 "${STRESS_TIME_LIMIT:-1200}" "$@" "$dir/stress/portreg_stress" --scale "$scale" "${opts[@]+"${opts[@]}"}"
}

prepare() {
  host_packages && enable_binfmt && apt_state && sources && aarch64_root && musl_root &&
    windows_root
}
prepared=false
prepare_once() {
  $prepared && return 0
  stage "prepare (packages, sources, arm64 root, musl root)" prepare && prepared=true
}

aarch64_build() {
  configure "$P/aarch64" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/aarch64-linux-gnu.cmake" \
    -DPORTREG_TARGET_ROOT="$ARM64_ROOT" -DNANOPB_GENERATOR=/usr/bin/nanopb_generator.py &&
    build "$P/aarch64" &&
    file -L "$P/aarch64/libportreg.so" | grep -q 'ARM aarch64'
}
aarch64_unit() {
  ctest --test-dir "$P/aarch64" -L unit -j1 --timeout 900
}
aarch64_stress() {
  # qemu's own memory (code it translates, per thread) is in the RSS: the
  # registry's live bytes are still bounded, the process's RSS is not.
  short_stress "$P/aarch64" "$STRESS_SCALE_QEMU" --rss-bound no -- env \
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static -E \
    "LD_LIBRARY_PATH=$ARM64_ROOT/usr/lib/aarch64-linux-gnu:$ARM64_ROOT/lib/aarch64-linux-gnu"
}

musl_build() {
  configure "$P/musl" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/x86_64-linux-musl.cmake" \
    -DPORTREG_TARGET_ROOT="$MUSL_ROOT" -DNANOPB_GENERATOR=/usr/bin/nanopb_generator.py \
    -DPORTREG_CK=bundled -DPORTREG_CK_SOURCE="$(ck_tarball)" -DPORTREG_TEST_RUNNER=portable &&
    build "$P/musl" &&
    # musl's dynamic loader, not glibc's
    readelf -l "$P/musl/tests/test_registry" | grep -q 'ld-musl-x86_64'
}
musl_unit() {
  ctest --test-dir "$P/musl" -L unit -j1 --timeout 900
}
musl_stress() {
  short_stress "$P/musl" "$STRESS_SCALE"
}

# Windows x64: mingw-w64 builds, wine64 runs (cmake/wine-run.sh, which the
# toolchain file makes ctest's emulator). Every Wine run goes through
# wine-run.sh: the prefix made once under a lock, a time limit of its own
# (below ctest's), and a run that hangs at exit after printing its results,
# or that Wine failed to start, is retried (said on stderr).
# windows_configure DIR [CMAKE-ARG...]: the mingw-w64 cross build, CK
# bundled, the unit tests through the portable runner.
windows_configure() {
  local dir=$1
  shift
  configure "$dir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/x86_64-w64-mingw32.cmake" \
    -DPORTREG_TARGET_ROOT="$WINDOWS_ROOT" -DNANOPB_GENERATOR=/usr/bin/nanopb_generator.py \
    -DPORTREG_CK=bundled -DPORTREG_CK_SOURCE="$(ck_tarball)" -DPORTREG_TEST_RUNNER=portable "$@"
}
windows_build() {
  local dir=$P/windows dll
  windows_configure "$dir" || return 1
  build "$dir" || return 1
  dll=$dir/bin/libportreg.dll
  # Exports: the header's functions and nothing else; imports: system DLLs
  # only (winpthreads and libgcc are inside).
  local exports imports
  exports=$(x86_64-w64-mingw32-objdump -p "$dll" |
    sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | awk 'NR > 1 && NF {print $NF}')
  [ -n "$exports" ] || { echo "no exports found in $dll"; return 1; }
  if echo "$exports" | grep -v '^portreg_[a-z_]*$'; then
    echo "the DLL exports more than portreg_*"
    return 1
  fi
  local want
  want=$(grep -o '^PORTREG_API [^(]*(' "$ROOT/include/portreg.h" | grep -o 'portreg_[a-z_]*($' | tr -d '(' | sort)
  if [ "$(echo "$exports" | sort)" != "$want" ]; then
    diff <(echo "$want") <(echo "$exports" | sort)
    echo "the DLL's exports differ from the header's functions"
    return 1
  fi
  imports=$(x86_64-w64-mingw32-objdump -p "$dll" | awk '/DLL Name:/ {print $3}')
  if echo "$imports" | grep -iv -e '^kernel32.dll$' -e '^msvcrt.dll$' -e '^bcrypt.dll$' -e '^ntdll.dll$' \
    -e '^api-ms-win-core-synch-'; then
    echo "the DLL imports more than the system's DLLs"
    return 1
  fi
  echo "$(echo "$exports" | wc -l) exports, all portreg_*; imports: $(echo $imports)"
}
# windows_unit [BUILD-DIR-NAME], windows_stress [BUILD-DIR-NAME]: the GCC
# build's by default.
windows_unit() {
  ctest --test-dir "$P/${1:-windows}" -L unit -j2 --timeout 1000
}
windows_stress() {
  (cd "$P/${1:-windows}/bin" && "$ROOT/cmake/wine-run.sh" ./portreg_stress.exe --scale "$STRESS_SCALE" \
    --check exchange,iter,reclaim,churn,iterinsert,waiters,eventfd,handles,exits)
}
# The same target compiled by clang: native thread-locals, where GCC's are
# emulated. Its unit suite adds unit.late_exit_call (a C++ thread_local
# destructor calling into the library), which a GCC build skips.
windows_clang_build() {
  windows_configure "$P/windows-clang" -DPORTREG_MINGW_CLANG=ON || return 1
  build "$P/windows-clang" || return 1
  # Native thread-locals: no call to GCC's emulation anywhere in the DLL.
  if x86_64-w64-mingw32-objdump -d "$P/windows-clang/bin/libportreg.dll" | grep -q '__emutls_get_address'; then
    echo "the clang-built DLL calls __emutls_get_address"
    return 1
  fi
}

# The POSIX backend on this Linux: the whole unit suite, then the stress
# harness, plain and under ThreadSanitizer (Criterion cannot run under
# TSan; the main suite does the same).
posix_build() {
  configure "$P/posix" -DPORTREG_OS=posix && build "$P/posix"
}
posix_unit() {
  ctest --test-dir "$P/posix" -L unit -j2 --timeout 900
}
posix_stress() {
  short_stress "$P/posix" "$STRESS_SCALE"
}
posix_tsan_build() {
  configure "$P/posix-tsan" -DPORTREG_OS=posix -DCMAKE_C_COMPILER=clang \
    -DPORTREG_SANITIZE=thread && build "$P/posix-tsan"
}
posix_tsan_stress() {
  TSAN_OPTIONS="suppressions=$ROOT/stress/tsan.supp halt_on_error=1 exitcode=66" \
    short_stress "$P/posix-tsan" "$STRESS_SCALE"
}

# The Rust crates against a libportreg that portreg-sys builds itself
# (its bundled feature), Concurrency Kit included: nothing installed.
rust_bundled() {
  local cargo
  cargo=$(command -v cargo || echo "${CARGO_HOME:-$HOME/.cargo}/bin/cargo")
  if [ ! -x "$cargo" ]; then
    echo "skipped: cargo not found"
    return 0
  fi
  (cd "$ROOT/bindings/rust" &&
    env -u PORTREG_LIB_DIR -u PORTREG_INCLUDE_DIR CARGO_TARGET_DIR="$P/rust-bundled" \
      PORTREG_CMAKE_ARGS=-DPORTREG_CK=bundled PORTREG_CK_SOURCE="$(ck_tarball)" \
      PATH="$(dirname "$cargo"):$PATH" \
      timeout -k 10 900 "$cargo" test --offline --workspace --features portreg-sys/bundled 2>&1 |
    grep -E "^(test result|error)|FAILED|panicked"
    exit "${PIPESTATUS[0]}")
}

run_target() {
  case $1 in
  prepare) prepare_once ;;
  aarch64)
    prepare_once || return
    stage "aarch64: cross build" aarch64_build || return
    stage "aarch64: unit suite under qemu" aarch64_unit
    stage "aarch64: stress under qemu" aarch64_stress
    ;;
  musl)
    prepare_once || return
    stage "musl: build (CK bundled, portable runner)" musl_build || return
    stage "musl: unit suite" musl_unit
    stage "musl: stress" musl_stress
    ;;
  posix)
    stage "posix backend: build" posix_build || return
    stage "posix backend: unit suite" posix_unit
    stage "posix backend: stress" posix_stress
    stage "posix backend: TSan build" posix_tsan_build || return
    stage "posix backend: stress under TSan" posix_tsan_stress
    ;;
  windows)
    prepare_once || return
    stage "windows: mingw-w64 build (DLL, import library, static library)" windows_build || return
    stage "windows: unit suite under wine64" windows_unit
    stage "windows: stress under wine64" windows_stress
    stage "windows (clang): build" windows_clang_build || return
    stage "windows (clang): unit suite under wine64" windows_unit windows-clang
    stage "windows (clang): stress under wine64" windows_stress windows-clang
    ;;
  rust)
    prepare_once || return
    stage "rust: portreg-sys builds libportreg itself (bundled)" rust_bundled
    ;;
  *)
    echo "usage: $0 [prepare|aarch64|musl|posix|windows|rust]..." >&2
    exit 2
    ;;
  esac
}

# Sourced (by hand, to call one step), it stops here.
[ "${BASH_SOURCE[0]}" != "$0" ] && return 0

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(aarch64 musl posix windows rust)
for t in "${targets[@]}"; do
  run_target "$t"
done
echo
for f in "${failures[@]+"${failures[@]}"}"; do
  echo "platforms: FAILED: $f"
done
echo "platforms: $passed stages passed, $failed failed"
[ "$failed" -eq 0 ]
