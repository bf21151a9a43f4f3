#!/usr/bin/env bash
# What makes portreg a dependency people can ship, checked in one go (the
# "ship" stage of scripts/test-all.sh): the header in every C and C++ mode,
# the man pages, and the plain install (consumers, symbols, installed man
# pages, ABI).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for check in check-header.sh check-man.sh check-plain-install.sh; do
    echo "--- $check"
    bash "scripts/$check" || status=1
done
exit $status
