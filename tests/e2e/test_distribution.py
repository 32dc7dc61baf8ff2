"""Nodes with data directories of their own share datasets through the database.

Each node here has its own data directory and all share one database (a
PostgreSQL database, or on the SQLite run one SQLite file outside the nodes'
folders), as nodes on separate machines would. An import on one node's
directory must reach a node already running (its follower fetches the copy), a
node started afterwards (it fetches at start), and a delta import made from a
third directory (it fetches the version it builds on).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.datasets import catalog
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import dataset_files
from tests.support import Server, database_url, run_cli

WAIT = 20.0  # an upper bound for waiting, never a measured expectation
NUMBER = "+37251000001"
PORTED = "+37251000002"


def mccmncs(server: Server, creds: NewCredentials) -> tuple[str | None, str | None]:
    """(original network, ported network) of NUMBER and PORTED as the node answers."""
    with httpx.Client(base_url=server.url, auth=(creds.api_username, creds.api_password), timeout=30) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": [NUMBER, PORTED]})
    assert response.status_code == 200, response.text
    first, second = response.json()["result"]
    ported = second["portedNetwork"]["mccmnc"] if second["portedNetwork"] else None
    return first["originalNetwork"]["mccmnc"], ported


def until(server: Server, creds: NewCredentials, expected: tuple[str | None, str | None]) -> None:
    deadline = time.monotonic() + WAIT
    while (got := mccmncs(server, creds)) != expected:
        assert time.monotonic() < deadline, f"{server.url} still answers {got}, not {expected}"
        time.sleep(0.1)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = database_url(tmp_path / "database")
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def node_env(url: str, distribution: str = "database") -> dict[str, str]:
    return {
        "NUMLOOKUP_DATABASE_URL": url,
        "NUMLOOKUP_DATASET_DISTRIBUTION": distribution,
        "NUMLOOKUP_DATASET_POLL_SECONDS": "0.2",
    }


def test_an_import_reaches_nodes_without_the_files(tmp_path: Path, shared: tuple[str, Engine]) -> None:
    url, engine = shared
    creds = create_account(engine, "shared", credits=parse_amount("10"))
    env = node_env(url)
    running = Server(tmp_path / "node-b", env=env).start()
    later: Server | None = None
    try:
        assert mccmncs(running, creds) == ("24801", None)  # the shipped range holder

        ranges = tmp_path / "ranges.csv"
        ranges.write_text("prefix,mccmnc\n37251,24803\n")
        run_cli(tmp_path / "node-a", "data", "import-ranges", str(ranges), env=env)
        until(running, creds, ("24803", None))
        version = catalog.active_versions(engine)["ranges"]
        fetched = tmp_path / "node-b" / version.path
        assert digests(fetched) == digests(tmp_path / "node-a" / version.path)

        later = Server(tmp_path / "node-c", env=env).start()
        assert mccmncs(later, creds) == ("24803", None)  # at its first request: fetched at start

        ported = tmp_path / "ported.csv"
        ported.write_text("number,mccmnc\n37251000002,24802\n")
        run_cli(tmp_path / "node-a", "data", "import-ported", str(ported), env=env)
        for server in (running, later):
            until(server, creds, ("24803", "24802"))
        # A delta from a fourth directory builds on the active ported version, which it must fetch first.
        ported.write_text("remove,37251000002\nadd,37251000003,24802\n")
        run_cli(tmp_path / "node-d", "data", "import-ported", "--delta", str(ported), env=env)
        for server in (running, later):
            until(server, creds, ("24803", None))
        assert catalog.active_versions(engine)["ported"].rows == 1

        # Two more ranges imports: pruning keeps the newest two versions' copies and drops the rest.
        for mccmnc in ("24804", "24805"):
            ranges.write_text(f"prefix,mccmnc\n37251,{mccmnc}\n")
            run_cli(tmp_path / "node-a", "data", "import-ranges", str(ranges), env=env)
        for server in (running, later):
            until(server, creds, ("24805", None))
        newest = sorted((v for v in catalog.all_versions(engine) if v.kind == "ranges"), key=lambda v: v.version)[-2:]
        with engine.connect() as conn:
            kept = set(conn.execute(select(dataset_files.c.path).distinct()).scalars())
            assert conn.execute(select(func.count()).select_from(dataset_files)).scalar_one() > 0
        ported_versions = {v.path for v in catalog.all_versions(engine) if v.kind == "ported"}
        assert kept == {v.path for v in newest} | ported_versions  # two ported versions: none pruned yet
    finally:
        running.stop()
        if later is not None:
            later.stop()


def test_without_copies_a_node_lacking_the_files_says_why(tmp_path: Path, shared: tuple[str, Engine]) -> None:
    url, _ = shared
    ranges = tmp_path / "ranges.csv"
    ranges.write_text("prefix,mccmnc\n37251,24803\n")
    run_cli(tmp_path / "node-a", "data", "import-ranges", str(ranges), env=node_env(url, "files"))
    with pytest.raises(AssertionError) as failed:
        Server(tmp_path / "node-b", env=node_env(url, "files")).start()
    assert "share the data directory" in str(failed.value)
