"""The ``numlookup`` command: a module per command group (``app``), errors mapped to exit codes in ``base``.

Every command that prints data takes ``--json`` so scripts never parse tables.
Amounts go in and out as exact decimal strings. A command's module is imported
only when that command runs, and modules import what only their own commands
need inside those commands: ``numlookup lookup NUMBER`` loads neither the
database layer of ``accounts`` nor the server. A plain ``numlookup lookup``
command line is read without typer at all (:mod:`numlookup.cli.quick`).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    # numpy's OpenBLAS starts a thread per CPU as numpy is imported. numlookup does no
    # linear algebra (sorts, binary searches, element-wise work), so those threads were
    # only start-up cost: tens of milliseconds of `numlookup lookup NUMBER` and of a
    # server's start on a busy machine. Set before any command imports numpy; serve's
    # worker processes inherit it. A value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from numlookup.cli.quick import run_quickly

    status = run_quickly(sys.argv[1:])
    if status is None:
        from numlookup.cli.app import run_app

        status = run_app()
    sys.exit(status)
