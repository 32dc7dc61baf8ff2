"""SQLite's file faults: a full disk and a read-only database file.

While the database cannot be written, every lookup is a clean 500 with code 103
(the wire's server error) and nothing is charged; once the disk has room or the
file is writable again, lookups succeed without a restart. Afterwards the ledger
holds exactly the 200s, balances equal ledgers and ``PRAGMA integrity_check`` is ok.

The full disk is a small tmpfs mounted for the test and filled to the last byte;
the read-only file is made immutable (``chattr +i``), which even root cannot
write (plain permissions do not stop root, and CI runs as root). Both need root
with the right to mount; without it the tests are skipped, saying so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.e2e.ledger import HEADERS, assert_ledger_matches
from tests.support import BACKEND, Server

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="faults of SQLite's own database file; PostgreSQL keeps its files in its cluster"
)

FS_SIZE = "16m"  # room for the database and its WAL; the rest is filled on purpose
LOOKUPS = 4


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``FS_SIZE`` of our own, so filling it fills nobody else's disk."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small filesystem with")
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "numlookup-test", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


@dataclass
class Client:
    """Sequential single-number lookups, sorted by outcome; anything but a 200 or a clean 500/103 fails the test."""

    server: Server
    creds: NewCredentials
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    count: int = 0

    def lookups(self, n: int) -> list[int]:
        statuses = []
        with httpx.Client(
            base_url=self.server.url, auth=(self.creds.api_username, self.creds.api_password), timeout=60
        ) as client:
            for _ in range(n):
                self.count += 1
                response = client.post("/v1/hlr/sync", json={"numbers": [f"+3725100{self.count:04d}"]}, headers=HEADERS)
                request_id = response.headers["x-request-id"]
                if response.status_code == 200:
                    self.ok.append(request_id)
                else:
                    assert response.status_code == 500, response.text
                    assert response.json()["error"]["code"] == 103
                    assert response.json()["errors"][0]["error"]["code"] == 103
                    self.failed.append(request_id)
                statuses.append(response.status_code)
        return statuses


def _database(small_fs: Path) -> tuple[str, Engine, NewCredentials]:
    url = f"sqlite:///{small_fs / 'numlookup.db'}"
    engine = make_engine(url)
    upgrade(engine)
    return url, engine, create_account(engine, "faulty", credits=parse_amount("100"))


def _fill(path: Path) -> Path:
    """Write zeros to a file until the filesystem is full, to the last block."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(path).f_bavail == 0
    return filler


def _readiness(server: Server) -> tuple[int, str]:
    """``GET /readyz``: its status, and the 503's reason (the body says which check failed)."""
    response = httpx.get(server.url + "/readyz", timeout=30)
    if response.status_code == 200:
        return 200, response.json()["status"]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == 103
    return 503, response.json()["error"]["description"]


REFUSES_WRITES = (503, "Not ready: the database refuses writes.")


def _check_afterwards(engine: Engine, client: Client, server: Server, reason: str) -> None:
    """The ledger holds exactly the 200s, the file is sound, and each 500 was logged with its traceback."""
    assert_ledger_matches(engine, client.creds, client.ok, exact=True)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    records = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    logged = {r["request_id"]: r for r in records if r["level"] == "error" and "request_id" in r}
    for request_id in client.failed:
        assert reason in logged[request_id]["traceback"]


def _server(tmp_path: Path, url: str) -> Server:
    return Server(tmp_path / "data", env={"NUMLOOKUP_DATABASE_URL": url, "NUMLOOKUP_LOG_FORMAT": "json"})


def test_full_disk_answers_500_charges_nothing_and_recovers(tmp_path: Path, small_fs: Path) -> None:
    url, engine, creds = _database(small_fs)
    server = _server(tmp_path, url).start()
    client = Client(server, creds)
    try:
        assert client.lookups(LOOKUPS) == [200] * LOOKUPS
        assert _readiness(server) == (200, "ready")
        filler = _fill(small_fs)
        # Until its first checkpoint the WAL only grows, so every commit needs a new block.
        assert client.lookups(LOOKUPS) == [500] * LOOKUPS
        # Reads still work, lookups do not: a load balancer must stop routing here.
        assert _readiness(server) == REFUSES_WRITES
        filler.unlink()
        assert _readiness(server) == (200, "ready")
        assert client.lookups(LOOKUPS) == [200] * LOOKUPS  # the same server process
    finally:
        server.stop()
    _check_afterwards(engine, client, server, "database or disk is full")
    engine.dispose()


def test_read_only_database_file_answers_500_charges_nothing_and_recovers(tmp_path: Path, small_fs: Path) -> None:
    url, engine, creds = _database(small_fs)
    database = small_fs / "numlookup.db"
    immutable = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
    if immutable.returncode != 0:
        pytest.skip(f"chattr +i is not supported on this tmpfs (Linux 6.0 or newer needed): {immutable.stderr.strip()}")
    server = _server(tmp_path, url)
    client = Client(server, creds)
    try:
        # The server starts on a file it may not write (restored with the wrong owner, say): it reads it read-only.
        server.start()
        assert client.lookups(LOOKUPS) == [500] * LOOKUPS
        assert _readiness(server) == REFUSES_WRITES
        subprocess.run(["chattr", "-i", str(database)], check=True)
        assert _readiness(server) == (200, "ready")
        assert client.lookups(LOOKUPS) == [200] * LOOKUPS  # the same server process
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=False)
        server.stop()
    _check_afterwards(engine, client, server, "attempt to write a readonly database")
    engine.dispose()
