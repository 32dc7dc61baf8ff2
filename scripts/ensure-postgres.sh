#!/bin/sh
# Make sure a PostgreSQL server is installed, for the test suite's PostgreSQL run.
#
# Idempotent: when pg_ctl is found (on PATH or in /usr/lib/postgresql/*/bin) this
# only prints its version. Otherwise it installs Debian's `postgresql` package,
# as root or via sudo (non-interactive). The suite starts its own throwaway
# cluster (tests/pg.py); nothing here starts a server.
#
# Exit status: 0 when PostgreSQL is there afterwards, 1 otherwise.
set -eu

find_pg_ctl() {
    command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1 || true
}

pg_ctl=$(find_pg_ctl)
if [ -n "$pg_ctl" ]; then
    "$pg_ctl" --version
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is not installed and apt-get is not available: install a PostgreSQL server" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo -n"
else
    echo "PostgreSQL is not installed and this user cannot install packages (not root, no sudo)" >&2
    exit 1
fi
if ! apt-cache show postgresql >/dev/null 2>&1; then
    $run apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $run apt-get install -y -qq --no-install-recommends postgresql >/dev/null
pg_ctl=$(find_pg_ctl)
[ -n "$pg_ctl" ] || { echo "installing postgresql did not provide pg_ctl" >&2; exit 1; }
"$pg_ctl" --version
