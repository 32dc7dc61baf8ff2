#!/bin/sh
# Make sure osmo-hlr (the Osmocom HLR) is installed, for the live-source tests.
#
# Idempotent: when osmo-hlr is already on PATH this only prints its version.
# Otherwise it installs the Debian/Ubuntu package with apt-install.sh, which
# keeps the package from starting a system osmo-hlr (the tests start their own,
# each on a loopback address of its own).
#
# Exit status: 0 when osmo-hlr is there afterwards, 1 otherwise (with the reason
# on stderr). The test harness treats 1 as "skip the osmo-hlr tests".
set -eu

find_osmo_hlr() {
    command -v osmo-hlr 2>/dev/null || { [ -x /usr/bin/osmo-hlr ] && echo /usr/bin/osmo-hlr; } || true
}

binary=$(find_osmo_hlr)
if [ -z "$binary" ]; then
    sh "$(dirname "$0")/apt-install.sh" osmo-hlr || exit 1
    binary=$(find_osmo_hlr)
    [ -n "$binary" ] || { echo "ensure-osmo-hlr: osmo-hlr was installed but is not on PATH" >&2; exit 1; }
fi
# `osmo-hlr -V` prints a banner; its first line names the version.
"$binary" -V 2>&1 | sed -n '1p'
