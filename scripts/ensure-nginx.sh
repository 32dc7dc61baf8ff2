#!/bin/sh
# Make sure nginx is installed, for the load-balancer tests (tests/e2e/test_nginx.py).
#
# Idempotent: when nginx is found (on PATH or in /usr/sbin) this only prints its
# version. Otherwise it installs Debian's `nginx` package with apt-install.sh
# (on Debian 12 it holds the binary with the proxy and upstream modules;
# nginx-light and nginx-core only add modules on top). The tests run nginx
# themselves; apt-install.sh keeps the package from starting the system's nginx.
#
# Exit status: 0 when nginx is there afterwards, 1 otherwise (with the reason on
# stderr). The tests skip when nginx is missing.
set -eu

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

binary=$(find_nginx)
if [ -z "$binary" ]; then
    sh "$(dirname "$0")/apt-install.sh" nginx || exit 1
    binary=$(find_nginx)
    [ -n "$binary" ] || { echo "ensure-nginx: nginx was installed but is not found" >&2; exit 1; }
fi
"$binary" -v 2>&1  # "nginx version: nginx/1.22.1", on stderr
