#!/bin/sh
# Make sure nginx is installed, for the load-balancer tests (tests/e2e/test_nginx.py).
#
# Idempotent: when nginx is found (on PATH or in /usr/sbin) this only prints its
# version. Otherwise it installs Debian's `nginx` package (on Debian 12 it holds
# the binary with the proxy and upstream modules; nginx-light and nginx-core only
# add modules on top), as root or via sudo (`sudo -n` without a terminal, so a
# test run fails fast instead of waiting for a password).
#
# The tests run nginx themselves, as their own process. The package would start
# the system's nginx on port 80 during installation, and the installation fails
# when that start fails (port 80 taken between the package's check and the start,
# IPv6 disabled while the default site listens on [::]:80). So while apt-get runs,
# a policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d and
# deb-systemd-invoke from starting it; an existing policy-rc.d is left as it is.
# The service stays enabled where systemd runs, as the package leaves it.
#
# Exit status: 0 when nginx is there afterwards, 1 otherwise (with the reason on
# stderr). The tests skip when nginx is missing.
set -eu

POLICY=/usr/sbin/policy-rc.d

find_nginx() {
    command -v nginx 2>/dev/null && return 0
    for candidate in /usr/sbin/nginx /usr/local/sbin/nginx; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 0
}

print_version() {
    "$1" -v 2>&1  # "nginx version: nginx/1.22.1", on stderr
}

binary=$(find_nginx)
if [ -n "$binary" ]; then
    print_version "$binary"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-nginx: nginx is missing and this system has no apt-get; install nginx by hand" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then as_root="sudo"; else as_root="sudo -n"; fi
else
    echo "ensure-nginx: nginx is missing; installing it needs root (or sudo): apt-get install nginx" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Only when apt does not offer the package yet is an update worth its time.
if ! apt-cache policy nginx 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "ensure-nginx: apt-get update" >&2
    if ! $as_root apt-get update -qq >&2; then
        echo "ensure-nginx: apt-get update failed" >&2
        exit 1
    fi
fi

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
    if printf '#!/bin/sh\n# scripts/ensure-nginx.sh: no service starts while it installs nginx.\nexit 101\n' \
        | $as_root tee "$POLICY" >/dev/null; then
        created_policy=1
        $as_root chmod 755 "$POLICY" || echo "ensure-nginx: could not make $POLICY executable" >&2
    else
        echo "ensure-nginx: could not write $POLICY; the package may start nginx on port 80" >&2
    fi
fi

echo "ensure-nginx: apt-get install -y --no-install-recommends nginx" >&2
if ! $as_root apt-get install -y -qq --no-install-recommends nginx >&2; then
    echo "ensure-nginx: apt-get install nginx failed" >&2
    exit 1
fi
remove_policy

binary=$(find_nginx)
if [ -z "$binary" ]; then
    echo "ensure-nginx: nginx was installed but is not found" >&2
    exit 1
fi
print_version "$binary"
