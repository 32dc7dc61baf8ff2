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
from typing import NoReturn


def main() -> None:
    # numpy's OpenBLAS starts a thread per CPU as numpy is imported. numlookup does no
    # linear algebra (sorts, binary searches, element-wise work), so those threads were
    # only start-up cost: tens of milliseconds of `numlookup lookup NUMBER` and of a
    # server's start on a busy machine. Set before any command imports numpy; serve's
    # worker processes inherit it. A value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from numlookup.cli.quick import run_quickly

    status = run_quickly(sys.argv[1:])
    if status is not None:
        end(status)
    from numlookup.cli.app import run_app

    sys.exit(run_app())


def end(status: int) -> NoReturn:
    """Exit as ``sys.exit(status)`` would be seen from outside, without the interpreter's teardown.

    Why: a lookup's last act was freeing what it built, one object at a time (a
    300,000-line block's million pieces, then every module, numpy's included):
    40–50 ms of CPU of such a file's half second, which nothing outside the
    process sees. What it does see is kept: the ``atexit`` handlers run and the
    standard streams are flushed. Where that is not all (another thread still
    running, a stream that cannot be flushed, such as a closed pipe), the
    interpreter ends as usual and reports what it reports.
    """
    import atexit

    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(status)
    if not _flushed():
        sys.exit(status)
    atexit._run_exitfuncs()
    atexit._clear()  # run once: not again should the interpreter's own exit follow
    if not _flushed():
        sys.exit(status)
    os._exit(status)


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # a closed pipe or stream, or none (pythonw)
        return False
    return True
