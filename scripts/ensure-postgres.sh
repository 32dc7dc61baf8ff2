#!/bin/sh
# Make sure a PostgreSQL server is installed, for the test suite's PostgreSQL run.
#
# Idempotent: when pg_ctl is found (on PATH or in /usr/lib/postgresql/*/bin) this
# only prints its version. Otherwise it installs Debian's `postgresql` package
# with apt-install.sh. The suite starts its own throwaway cluster (tests/pg.py);
# nothing here starts a server.
#
# Exit status: 0 when PostgreSQL is there afterwards, 1 otherwise.
set -eu

find_pg_ctl() {
    command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1 || true
}

pg_ctl=$(find_pg_ctl)
if [ -z "$pg_ctl" ]; then
    sh "$(dirname "$0")/apt-install.sh" postgresql || exit 1
    pg_ctl=$(find_pg_ctl)
    [ -n "$pg_ctl" ] || { echo "ensure-postgres: installing postgresql did not provide pg_ctl" >&2; exit 1; }
fi
"$pg_ctl" --version
