"""Install without make: build the wheel as docs/deploying.md says, install it into a new virtualenv, use it.

``pip wheel`` runs on a copy of the checkout (the build writes ``build/`` and
``*.egg-info`` into its source folder), without build isolation so that it
needs no network: the build backend comes from the test dependencies.

The new virtualenv gets the wheel and nothing of the checkout. Its third-party
dependencies are lent from the environment running the tests (a ``.pth`` file
appends its site-packages), so the test stays offline and fast; the test checks
that what is lent satisfies every requirement the wheel declares. Everything of
numlookup, code and data, comes from the wheel: the commands run outside the
checkout, and the test checks where ``numlookup`` is imported from.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from numlookup.store import make_engine
from numlookup.store.migrate import head_revision
from tests.support import BACKEND, ROOT, database_url, free_port, until_healthy

# Folders of a working checkout that are not part of the source.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "__pycache__", "*.egg-info", ".*_cache", "*.pyc"
)
DATA = ROOT / "numlookup" / "numbering" / "data"
MIGRATIONS = ROOT / "numlookup" / "store" / "migrations"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    home: Path  # a folder outside the checkout: the commands' working directory and data_dir's parent

    @property
    def numlookup(self) -> str:
        return str(self.venv / "bin" / "numlookup")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMLOOKUP_", "PYTHON"))}
        env["NUMLOOKUP_DATA_DIR"] = str(self.home / "data")
        if BACKEND != "sqlite":
            env["NUMLOOKUP_DATABASE_URL"] = database_url(self.home / "data", migrated=False)
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args, env=self.env(), cwd=self.home, capture_output=True, text=True, timeout=180, check=False
        )
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return result


def build_wheel(folder: Path) -> Path:
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = folder / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = out.glob("numlookup-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    folder = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(folder)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-input",
        "--python",
        str(venv / "bin/python"),
    ]
    done = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    (venv_site,) = (venv / "lib").glob("python3.*/site-packages")
    (venv_site / "lent-dependencies.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    home = folder / "home"
    home.mkdir()
    yield Installed(wheel=wheel, venv=venv, home=home)


def test_the_wheel_holds_the_data_the_migrations_and_the_licences(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        declared = archive.read(meta).decode()
    shipped = [*DATA.glob("*.csv"), DATA / "PROVENANCE.md", *MIGRATIONS.glob("*.py"), MIGRATIONS / "script.py.mako"]
    shipped += MIGRATIONS.glob("versions/*.py")
    missing = {str(p.relative_to(ROOT)) for p in shipped} - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    assert len([p for p in shipped if p.suffix == ".csv"]) >= 4
    licences = {n.rsplit("/", 1)[-1] for n in names if ".dist-info/licenses/" in n}
    assert {"LICENSE", "NOTICE"} <= licences
    assert "License-Expression: Apache-2.0" in declared
    assert not [n for n in names if n.startswith(("tests/", "bench/", "scripts/"))]


def test_the_dependencies_lent_to_the_new_virtualenv_satisfy_the_wheels_requirements(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(meta).decode().splitlines()
    requirements = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    needed = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": "postgresql"})]
    assert any(r.name == "psycopg" for r in needed), "the postgresql extra brings psycopg"
    for requirement in needed:
        version = metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement}: {version} is installed"


def test_the_installed_command_migrates_creates_accounts_and_looks_up_from_its_own_data(
    installed: Installed, tmp_path: Path
) -> None:
    where = installed.run(str(installed.venv / "bin/python"), "-c", "import numlookup; print(numlookup.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout

    assert "serve" in installed.run(installed.numlookup, "--help").stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'checkout.db'}")  # the checkout's newest migration
    head = head_revision()
    engine.dispose()
    upgraded = installed.run(installed.numlookup, "db", "upgrade").stdout.strip()
    assert upgraded.startswith("database sqlite:///") and upgraded.endswith(f"/numlookup.db at revision {head}")
    created = json.loads(
        installed.run(installed.numlookup, "accounts", "create", "smoke", "--credits", "1", "--json").stdout
    )
    listed = json.loads(installed.run(installed.numlookup, "accounts", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["smoke"]

    # An answer from the shipped tables: the MCC/MNC and the registry's name for it.
    with (DATA / "networks.csv").open(newline="") as fh:
        registry = {row["mccmnc"]: row["network_name"] for row in csv.DictReader(fh)}
    (result,) = json.loads(installed.run(installed.numlookup, "lookup", "+37251000001").stdout)["result"]
    network = result["currentNetwork"]
    assert network["mccmnc"] in registry and network["networkName"] == registry[network["mccmnc"]]
    assert network["countryCode"] == "EST"

    # And the server, from the wheel, over HTTP.
    port = free_port()
    log = (installed.home / "serve.log").open("w")
    server = subprocess.Popen(
        [installed.numlookup, "serve", "--port", str(port)],
        env=installed.env(),
        cwd=installed.home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert until_healthy(url, server, 60, (installed.home / "serve.log").read_text)
        response = httpx.post(
            url + "/v1/hlr/sync",
            json={"numbers": ["+37251000001"]},
            auth=(created["api_username"], created["api_password"]),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["result"][0]["currentNetwork"] == network
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log.close()
