#!/bin/sh
# Install Debian packages for the test suite: `sh scripts/apt-install.sh PACKAGE...`.
#
# The ensure-*.sh scripts call this when their program is missing. It runs
# apt-get as root, or via sudo (`sudo -n` without a terminal, so a test run fails
# fast instead of waiting for a password nobody can type). `apt-get update` runs
# only when apt does not offer a package yet, so a machine with fresh lists is
# not made to fetch them again.
#
# The tests run every server themselves, as processes of their own. Packages
# such as nginx, postgresql and osmo-hlr start a system service while they
# install, and nginx's installation fails when that start fails (port 80 taken,
# IPv6 off while the default site listens on [::]:80). So while apt-get runs, a
# policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d and
# deb-systemd-invoke from starting services; an existing policy-rc.d is left as
# it is. Services stay enabled where systemd runs, as the packages leave them.
#
# Exit status: 0 when apt-get installed the packages, 1 otherwise (the reason on stderr).
set -eu

POLICY=/usr/sbin/policy-rc.d
me="apt-install"

if [ "$#" -eq 0 ]; then
    echo "$me: usage: apt-install.sh PACKAGE..." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$me: this system has no apt-get; install by hand: $*" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then as_root="sudo"; else as_root="sudo -n"; fi
else
    echo "$me: installing $* needs root (or sudo): apt-get install $*" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# `apt-cache policy` prints "Candidate: (none)" (or nothing) when the lists do
# not offer a package: only then is an update worth its time.
for package in "$@"; do
    if ! apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        echo "$me: apt-get update" >&2
        if ! $as_root apt-get update -qq >&2; then
            echo "$me: apt-get update failed" >&2
            exit 1
        fi
        break
    fi
done

created_policy=""
remove_policy() {
    if [ -n "$created_policy" ]; then
        $as_root rm -f "$POLICY"
        created_policy=""
    fi
}
trap remove_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ ! -e "$POLICY" ]; then
    if printf '#!/bin/sh\n# scripts/apt-install.sh: no service starts while the test suite installs packages.\nexit 101\n' \
        | $as_root tee "$POLICY" >/dev/null; then
        created_policy=1
        $as_root chmod 755 "$POLICY" || echo "$me: could not make $POLICY executable" >&2
    else
        echo "$me: could not write $POLICY; the packages may start their services" >&2
    fi
fi

echo "$me: apt-get install -y --no-install-recommends $*" >&2
if ! $as_root apt-get install -y -qq --no-install-recommends "$@" >&2; then
    echo "$me: apt-get install $* failed" >&2
    exit 1
fi
