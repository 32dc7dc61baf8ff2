"""What a start imports: only what the first answers need (issue 14, start-up speed).

With the table cache warm (compiling it is
another matter), a one-number lookup writes its JSON straight to stdout: no rich. A server's
worker answers its first request without the websockets library (no route
speaks WebSocket), the admin API's handlers or the OpenAPI document's builders,
which load at the first request that needs them; and neither start imports
``numpy.ma``. Read from the interpreter's own report of what it imported
(``PYTHONPROFILEIMPORTTIME``), in real processes; ``bench/cli.py`` times them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from numlookup.api.errors import ADMIN_DISABLED_DESCRIPTION
from tests.e2e.conftest import Live, start_live
from tests.support import run_cli

# Modules a start does without; a prefix names a package and everything in it.
NOT_AT_START = ("rich", "numpy.ma")
NOT_AT_SERVER_START = (*NOT_AT_START, "websockets", "numlookup.api.admin.", "numlookup.api.openapi")


def imported(report: str) -> set[str]:
    """The modules ``PYTHONPROFILEIMPORTTIME`` reports a process imported."""
    return {line.rsplit("|", 1)[1].strip() for line in report.splitlines() if line.startswith("import time:")}


def covers(name: str, module: str) -> bool:
    """``"a.b"`` covers a.b and its submodules; ``"a.b."`` only its submodules."""
    if name.endswith("."):
        return module.startswith(name)
    return module == name or module.startswith(name + ".")


def matching(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(covers(n, m) for n in names)}


@pytest.fixture
def reporting(tmp_path: Path) -> Iterator[Live]:
    run_cli(tmp_path / "data", "db", "upgrade")
    run_cli(tmp_path / "data", "lookup", "+37251234567")  # the table cache warm, as a server's usual start
    # Unbuffered, so the log holds every import made before /healthz answered when it does.
    yield from start_live(tmp_path / "data", env={"PYTHONPROFILEIMPORTTIME": "1", "PYTHONUNBUFFERED": "1"})


def test_a_one_number_lookup_imports_no_console_library(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_cli(data_dir, "db", "upgrade")
    run_cli(data_dir, "lookup", "+37251234567")  # compiles the table cache: the start below is a warm one
    done = run_cli(data_dir, "lookup", "+37251234567", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert json.loads(done.stdout)["result"][0]["currentNetwork"]["mccmnc"] == "24801"
    modules = imported(done.stderr)
    assert {"numlookup.cli.base", "numpy", "numlookup.numbering.blocks"} <= modules  # the report is whole
    assert matching(modules, NOT_AT_START) == set()


def test_a_server_answers_before_loading_what_only_some_requests_need(reporting: Live) -> None:
    started = imported(reporting.server.log_path.read_text())  # the worker is up: /healthz answered
    assert {"numlookup.api.state", "numlookup.api.admin", "starlette.routing"} <= started
    assert matching(started, NOT_AT_SERVER_START) == set()

    document = httpx.get(f"{reporting.url}/openapi.json", timeout=10)
    assert document.status_code == 200
    assert "/v1/hlr/sync" in document.json()["paths"]
    # Admin handlers load at their first request: without a token set, the admin API says it is off.
    admin = httpx.get(f"{reporting.url}/admin/v1/accounts", timeout=10)
    assert admin.status_code == 404, admin.text
    assert admin.json()["error"]["description"] == ADMIN_DISABLED_DESCRIPTION
    # (What importlib.import_module loads is not in the report, what those modules import is.)
    assert "numlookup.api.admin.calls" in imported(reporting.server.log_path.read_text())
