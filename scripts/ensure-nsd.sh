#!/bin/sh
# Make sure NSD (NLnet Labs' authoritative DNS server) is installed, for the ENUM tests
# (tests/live/test_enum.py, tests/e2e/test_enum.py: a real server answers the NAPTR queries).
#
# Idempotent: when nsd is found (on PATH or in /usr/sbin) this only prints its
# version. Otherwise it installs Debian's `nsd` package with apt-install.sh, which
# keeps the package from starting the system's NSD: the tests run their own, each
# on a loopback address and port of its own, from a config in a temporary folder.
#
# Exit status: 0 when nsd is there afterwards, 1 otherwise (with the reason on
# stderr). The tests skip when nsd is missing.
set -eu

find_nsd() {
    command -v nsd 2>/dev/null && return 0
    for candidate in /usr/sbin/nsd /usr/local/sbin/nsd; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 0
}

binary=$(find_nsd)
if [ -z "$binary" ]; then
    sh "$(dirname "$0")/apt-install.sh" nsd || exit 1
    binary=$(find_nsd)
    [ -n "$binary" ] || { echo "ensure-nsd: nsd was installed but is not found" >&2; exit 1; }
fi
"$binary" -v 2>&1 | sed -n '1p'  # "NSD version 4.6.1"
