"""Every official client the registries give us, installed as released and run unchanged but for the host.

``messente-api`` 2.7.0 is a test dependency (pyproject) and runs in this process.
Older Python releases cannot share a virtualenv with it, so each is installed
with ``pip install --target`` into its own folder, and Node releases with ``npm
install --prefix``, all under ``.cache/official-clients`` (ignored by git): the
first run downloads them, later runs reuse them. Each runs in a process of its
own: ``python -S`` with only its folder on the path (no site-packages, so not the
2.7.0 beside it), or ``node``. Without npm, or without the registry, the tests
that need a client skip and say why.

What a client parsed comes back as plain values (``Parsed``), the same for every
client, so one test can ask all of them the same question.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from numlookup.status import StatusStyle
from tests.support import ROOT

CACHE = ROOT / ".cache" / "official-clients"
HERE = Path(__file__).resolve().parent
# pip's and npm's ways of saying the registry cannot be reached (then skip, not fail).
_OFFLINE = re.compile(
    r"No matching distribution|Could not find a version|connection|resolve|Network is unreachable"
    r"|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENETUNREACH",
    re.IGNORECASE,
)

Language = Literal["python", "node"]
# One number's result as the client's own model holds it.
Parsed = dict[str, Any]


@dataclass(frozen=True)
class OfficialClient:
    """A released client: ``style`` is what ``auto`` must answer it (see numlookup/status.py's table)."""

    language: Language
    version: str
    style: StatusStyle

    @property
    def id(self) -> str:
        return f"{self.language}-{self.version}"


# Every Number Lookup release line: python 2.7.0 ("true"/"false"), 2.5.2 (the
# 2.x ON/OFF line), 1.5.0 (the last of the older generator's, ON/OFF); npm holds
# two releases of the Node client, which reads any word and is not recognisable.
CLIENTS = (
    OfficialClient("python", "2.7.0", "truefalse"),
    OfficialClient("python", "2.5.2", "onoff"),
    OfficialClient("python", "1.5.0", "onoff"),
    OfficialClient("node", "1.5.0", "seed"),
    OfficialClient("node", "1.4.0", "seed"),
)


def _installed(name: str, install: Sequence[str], what: str) -> Path:
    """``CACHE/name``, installed by ``install`` (run with the target folder appended) unless already there."""
    target = CACHE / name
    if (target / ".installed").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{name}.partial-", dir=CACHE))  # a broken run leaves no half a client
    try:
        run = subprocess.run([*install, str(partial)], capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            output = (run.stderr + run.stdout).strip()
            offline = _OFFLINE.search(output)
            if offline is not None:
                line = output[output.rfind("\n", 0, offline.start()) + 1 :].split("\n", 1)[0]
                pytest.skip(f"cannot install {what}: the package registry is not reachable: {line.strip()}")
            raise AssertionError(f"installing {what} failed:\n{output}")
        (partial / ".installed").touch()
        if target.exists():  # an earlier run's incomplete folder
            shutil.rmtree(target)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _python_folder(version: str) -> Path:
    """Its own folder per Python version too: the client's dependencies (pydantic-core) are compiled."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}-messente-api-{version}"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
    return _installed(name, [*pip, f"messente-api=={version}", "--target"], f"messente-api {version} from PyPI")


def _node_folder(version: str) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"npm and node are needed for the Node client messente_api {version}; they are not installed")
    command = [npm, "install", "--no-audit", "--no-fund", "--no-save", f"messente_api@{version}", "--prefix"]
    return _installed(f"node-messente_api-{version}", command, f"messente_api {version} from npm")


def prepare(client: OfficialClient) -> None:
    """Install the client if it is not yet (or skip, saying why)."""
    if client.language == "node":
        _node_folder(client.version)
    elif client.version != _in_process_version():
        _python_folder(client.version)


def _in_process_version() -> str:
    import messente_api

    return str(messente_api.__version__)


def fetch_info(client: OfficialClient, host: str, username: str, password: str, numbers: list[str]) -> list[Parsed]:
    """``fetch_info`` (``fetchInfo`` in Node) through ``client``; a client that cannot parse the answer fails."""
    if client.language == "python" and client.version == _in_process_version():
        from tests.e2e import client_python

        found = client_python.fetch_info(host, username, password, numbers)
    else:
        found = _run(client, [host, username, password, *numbers])
    assert found["version"] == client.version, found
    results: list[Parsed] = found["result"]
    return results


def _run(client: OfficialClient, args: list[str]) -> dict[str, Any]:
    if client.language == "node":
        module = _node_folder(client.version) / "node_modules" / "messente_api"
        command = ["node", str(HERE / "client_node.js"), str(module), *args]
        env = None
    else:
        folder = _python_folder(client.version)
        command = [sys.executable, "-S", str(HERE / "client_python.py"), *args]
        env = {"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, f"{client.id} could not read the answer:\n{run.stderr}"
    parsed: dict[str, Any] = json.loads(run.stdout)
    return parsed
