"""SIGTERM under load: requests in flight finish and are charged, none is cut off, and the process exits 0.

A client sees a 200 for every request it sent, those still queued in the kernel
when the stop began among them, or a refused connection once the listener is
gone; never a reset or an empty reply. The ledger holds a row for every 200 and
for nothing else. Three ways a server is stopped: one worker, several workers
with the signal to the supervisor alone (``docker stop``), and to every process
(systemd's default ``KillMode=control-group``).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from numlookup.accounts import create_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.e2e.ledger import Load, assert_ledger_matches
from tests.support import BACKEND, Server, database_url

THREADS = 24
RECONNECTING_THREADS = 8
WARM_UP_ANSWERS = 200  # 200s before the signal: the load is running on every connection
ATTEMPTS = 3
GRACE_SECONDS = 10
# Rate limits off: a 429 (answered before the body is read) closes the connection and
# the client reconnects, which a steady client on a keep-alive connection does not do.
ENV = {
    "NUMLOOKUP_RATE_LIMIT_PER_IP": "0",
    "NUMLOOKUP_LOG_FORMAT": "json",
    "NUMLOOKUP_TIMEOUT_GRACEFUL_SHUTDOWN_SECONDS": str(GRACE_SECONDS),
}


class ReconnectingLoad(Load):
    """A :class:`Load` whose clients open a new connection for every request.

    Keep-alive clients reconnect only when a draining server closes their
    connection, so there is seldom a connection in the kernel's accept queue when
    the signal comes; with these there often is, and a stop that resets the queue
    fails the test in most rounds rather than in a few.
    """

    def _run(self, server: Server) -> None:
        with httpx.Client(
            base_url=server.url,
            auth=(self._creds.api_username, self._creds.api_password),
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while not self._stop.is_set():
                number = f"+3725{5_000_000 + next(self._counter):07d}"  # other numbers than the Load's
                try:
                    response = client.post("/v1/hlr/sync", json={"numbers": [number]})
                except httpx.TransportError as exc:
                    with self._lock:
                        self.outcomes[type(exc).__name__] += 1
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.ok.append(response.json()["request_id"])
                        self.outcomes["200"] += 1
                    else:
                        self.outcomes[f"{response.status_code}/{response.json()['error']['code']}"] += 1


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(database_url(tmp_path / "shutdown"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _log(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_path.read_text().splitlines()]


def _answered_while_draining(records: list[dict[str, Any]]) -> set[str]:
    """Request ids a worker answered 200 after its shutdown began (log order is per-process order)."""
    draining: set[int] = set()
    answered: set[str] = set()
    for record in records:
        if record["logger"] == "uvicorn.error" and record["message"] == "Shutting down":
            draining.add(record["pid"])
        elif record["logger"] == "numlookup.access" and record["pid"] in draining and record["status"] == 200:
            answered.add(record["request_id"])
    return answered


def _writers(server: Server) -> set[int]:
    """The ledger writer processes (``billing.ledger_writer``) of the server's workers."""
    assert server.process is not None
    tree, found = {server.process.pid}, set()
    for _ in range(3):  # the supervisor, its workers, their writers
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rpartition(")")[2].split()[1])
                command = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if parent in tree:
                tree.add(int(stat.parent.name))
                if b"numlookup.billing.ledger_writer" in command:
                    found.add(int(stat.parent.name))
    return found


@pytest.mark.parametrize(
    ("workers", "to_every_process", "through_writer"),
    [
        pytest.param(1, False, False, id="one-worker"),
        pytest.param(2, False, False, id="two-workers-signal-to-supervisor"),
        pytest.param(2, True, False, id="two-workers-signal-to-every-process"),
        pytest.param(1, False, True, id="one-worker-ledger-writer"),
        pytest.param(2, True, True, id="two-workers-signal-to-every-process-ledger-writer"),
    ],
)
def test_sigterm_under_load_finishes_and_charges_requests_in_flight(
    tmp_path: Path, workers: int, to_every_process: bool, through_writer: bool
) -> None:
    """``through_writer``: the load runs until every worker commits through its ledger writer process
    (started after ``WRITER_AFTER_CHARGES`` charges), which a signal to every process reaches too."""
    if through_writer and BACKEND != "sqlite":
        pytest.skip("the ledger writer process serves SQLite files only")
    # The signal must land while requests are in flight, which load makes likely but
    # not certain: a round in which none was is repeated (on a fresh database), not passed.
    for attempt in range(1, ATTEMPTS + 1):
        if _stop_under_load(tmp_path / f"attempt-{attempt}", workers, to_every_process, through_writer):
            return
    raise AssertionError(
        f"in {ATTEMPTS} rounds no request was in flight when the shutdown began; the test proved nothing"
    )


def _stop_under_load(folder: Path, workers: int, to_every_process: bool, through_writer: bool = False) -> bool:
    """One round: load, SIGTERM, checks. False if no request was in flight at the signal."""
    engine = make_engine(database_url(folder))
    upgrade(engine)
    server = Server(folder, workers=workers, env=ENV).start()
    creds = create_account(engine, "load", credits=parse_amount("100000"))
    load = Load([server], creds, threads=THREADS)
    reconnecting = ReconnectingLoad([server], creds, threads=RECONNECTING_THREADS)
    try:
        deadline = time.monotonic() + 60
        while len(load.ok) < WARM_UP_ANSWERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(load.ok) >= WARM_UP_ANSWERS, f"the load did not get going: {load.outcomes}"
        writers: set[int] = set()
        if through_writer:
            while len(writers) < workers and time.monotonic() < deadline + 60:
                time.sleep(0.2)
                writers = _writers(server)
            assert len(writers) == workers, f"{len(writers)} ledger writers for {workers} workers"
            settled = len(load.ok)
            while len(load.ok) < settled + WARM_UP_ANSWERS and time.monotonic() < deadline + 90:
                time.sleep(0.05)  # answered by commits of the writers (started once a worker had charged enough)
        assert server.process is not None
        if to_every_process:
            os.killpg(server.process.pid, signal.SIGTERM)
        else:
            os.kill(server.process.pid, signal.SIGTERM)
        returncode = server.process.wait(timeout=GRACE_SECONDS + 20)
    finally:
        load.stop()
        reconnecting.stop()
        server.stop()

    try:
        assert returncode == 0
        # Every request got its 200, or its connection was refused after the listener
        # closed; a reset (ReadError) or an empty reply (RemoteProtocolError) would be
        # a request sent and lost, such as one queued in the kernel when the listener
        # closed. The exact ledger check below proves that no request was charged
        # without its 200 and none answered 200 without its charge.
        outcomes = load.outcomes + reconnecting.outcomes
        allowed = {"200", "ConnectError"}
        assert set(outcomes) <= allowed and "200" in outcomes, outcomes
        records = _log(server)
        assert not [r for r in records if r["level"] in ("error", "critical")]
        ok = load.ok + reconnecting.ok
        assert_ledger_matches(engine, creds, ok, exact=True)
        assert not [pid for pid in writers if Path(f"/proc/{pid}").exists()], "a ledger writer outlived its worker"
        drained = _answered_while_draining(records)
        assert drained <= set(ok)
        return bool(drained)
    finally:
        engine.dispose()


def test_a_stalled_request_cannot_hold_the_shutdown(tmp_path: Path, engine: Engine) -> None:
    """A request whose body never comes is cancelled after the graceful timeout; the process still exits 0."""
    env = {**ENV, "NUMLOOKUP_TIMEOUT_GRACEFUL_SHUTDOWN_SECONDS": "1", "NUMLOOKUP_BODY_TIMEOUT_SECONDS": "600"}
    server = Server(tmp_path / "shutdown", env=env).start()
    creds = create_account(engine, "stalled", credits=parse_amount("1"))
    basic = base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode())
    try:
        with socket.create_connection((server.host, server.port), timeout=30) as stalled:
            # A first request answered proves the connection accepted; the next one never ends.
            stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stalled.recv(4096).startswith(b"HTTP/1.1 200")
            stalled.sendall(
                b"POST /v1/hlr/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Basic " + basic + b'\r\nContent-Length: 100\r\n\r\n{"numbers": ['
            )
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGTERM)
            returncode = server.process.wait(timeout=30)
            while stalled.recv(4096):  # uvicorn may answer the cancelled request 500; then the connection ends
                pass
    finally:
        server.stop()
    assert returncode == 0
    records = _log(server)
    assert any("timeout graceful shutdown exceeded" in r["message"] for r in records)
    [stalled_request] = [r for r in records if r["logger"] == "numlookup.access" and r.get("account") == "stalled"]
    assert "status" not in stalled_request  # never answered by the app
    # uvicorn's record of the cancelled request names it.
    assert any(r["level"] == "error" and r.get("request_id") == stalled_request["request_id"] for r in records)
