#!/bin/sh
# Make sure Debian's Chromium is installed, for the console's browser tests (tests/browser/).
#
# Idempotent: when /usr/bin/chromium is there this only prints its version. Otherwise
# it installs Debian's `chromium` package with apt-install.sh. Playwright (a test
# dependency) drives this browser through `executable_path`; it downloads none of its own.
#
# Exit status: 0 when Chromium is there afterwards, 1 otherwise (with the reason on
# stderr). The browser tests skip when Chromium is missing.
set -eu

binary=/usr/bin/chromium
if [ ! -x "$binary" ]; then
    sh "$(dirname "$0")/apt-install.sh" chromium || exit 1
    [ -x "$binary" ] || { echo "ensure-chromium: chromium was installed but $binary is not there" >&2; exit 1; }
fi
"$binary" --version 2>/dev/null || echo "chromium at $binary"
