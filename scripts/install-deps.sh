#!/usr/bin/env bash
# Installs the Debian 12 packages portreg needs to build, test and benchmark.
# Idempotent: does nothing (and needs no root) when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config make
  libck-dev nanopb libnanopb-dev python3-protobuf
  libcriterion-dev liburcu-dev
  clang libclang-rt-14-dev llvm clang-format
  valgrind gnuplot-nox
  # the ship stage: C++ consumers, objcopy/nm, man pages, the ABI baseline
  g++ binutils man-db groff-base abigail-tools
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
