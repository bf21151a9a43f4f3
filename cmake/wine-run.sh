#!/bin/sh
# Runs a Windows program under wine64 (Debian's wine64 package), quietly,
# in a Wine prefix of its own: $PORTREG_WINEPREFIX, or one next to this
# build's programs. The first run in a new prefix creates it (seconds).
WINE=${PORTREG_WINE:-/usr/lib/wine/wine64}
[ -x "$WINE" ] || WINE=$(command -v wine64 || command -v wine) || {
    echo "wine-run.sh: no wine64 found" >&2
    exit 127
}
if [ -z "${WINEPREFIX:-}" ]; then
    WINEPREFIX=${PORTREG_WINEPREFIX:-$(cd "$(dirname "$1")" && pwd)/.wine}
fi
export WINEPREFIX
export WINEDEBUG=${WINEDEBUG:--all}
exec "$WINE" "$@"
