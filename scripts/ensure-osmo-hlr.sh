#!/bin/sh
# Make sure osmo-hlr (the Osmocom HLR) is installed, for the live-source tests.
#
# Idempotent: when osmo-hlr is already on PATH this only prints its version.
# Otherwise it installs the Debian/Ubuntu package with apt-get, as root or via
# sudo. `apt-get update` runs only when apt does not know the package yet, so a
# machine with fresh package lists is not made to fetch them again.
# Without a terminal, sudo is asked not to prompt (`sudo -n`): a test run must
# fail fast rather than hang on a password nobody can type.
#
# Exit status: 0 when osmo-hlr is there afterwards, 1 otherwise (with the reason
# on stderr). The test harness treats 1 as "skip the osmo-hlr tests".
set -eu

find_osmo_hlr() {
    command -v osmo-hlr 2>/dev/null || { [ -x /usr/bin/osmo-hlr ] && echo /usr/bin/osmo-hlr; } || true
}

print_version() {
    # `osmo-hlr -V` prints a banner; its first line names the version.
    "$1" -V 2>&1 | sed -n '1p'
}

binary=$(find_osmo_hlr)
if [ -n "$binary" ]; then
    print_version "$binary"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-osmo-hlr: osmo-hlr is missing and this system has no apt-get; install osmo-hlr by hand" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then as_root="sudo"; else as_root="sudo -n"; fi
else
    echo "ensure-osmo-hlr: osmo-hlr is missing; installing it needs root (or sudo): apt-get install osmo-hlr" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# `apt-cache policy` prints "Candidate: (none)" (or nothing) when the lists do
# not offer the package: only then is an update worth its time.
if ! apt-cache policy osmo-hlr 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "ensure-osmo-hlr: apt-get update" >&2
    if ! $as_root apt-get update -qq >&2; then
        echo "ensure-osmo-hlr: apt-get update failed" >&2
        exit 1
    fi
fi

echo "ensure-osmo-hlr: apt-get install -y --no-install-recommends osmo-hlr" >&2
# The package's post-install starts a system osmo-hlr on 127.0.0.1 where systemd
# runs; the tests give each of their instances its own loopback address, so that
# one does not get in their way.
if ! $as_root apt-get install -y -qq --no-install-recommends osmo-hlr >&2; then
    echo "ensure-osmo-hlr: apt-get install osmo-hlr failed" >&2
    exit 1
fi

binary=$(find_osmo_hlr)
if [ -z "$binary" ]; then
    echo "ensure-osmo-hlr: osmo-hlr was installed but is not on PATH" >&2
    exit 1
fi
print_version "$binary"
