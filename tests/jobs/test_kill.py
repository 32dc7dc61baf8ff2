"""A real ``numlookup jobs work`` process SIGKILLed while it holds a chunk's lease, and another that takes over.

The server has ``job_worker = false``, so only the worker processes this test
starts work on jobs. To kill the worker *mid-chunk* without guessing at timing,
the test freezes it (SIGSTOP), looks in the database for a pending chunk leased
to its pid, and SIGKILLs it only then; caught between two chunks, it lets it run
on (SIGCONT) and tries again. A second worker takes the chunk over once its
lease (1 s here) has run out. The job must end exactly as an uninterrupted run
of the same file did: the same results, each input once, and the ledger's rows
for it summing to what the sync API charges for its distinct valid numbers.
The second test kills a worker while its live request waits at a gated peer:
nothing of the chunk was committed, its successor asks again and charges once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import ledger_rows, parse_amount
from numlookup.store.tables import job_chunks, jobs
from tests.e2e.conftest import Live, start_live
from tests.live_config import write_config
from tests.peers.messente import Peer
from tests.support import ROOT, environment

PRICE = parse_amount("0.01")
CHUNK = 10_000
ENV = {
    "NUMLOOKUP_OFFLINE_PRICE": "0.01",
    "NUMLOOKUP_JOB_CHUNK_NUMBERS": str(CHUNK),
    "NUMLOOKUP_JOB_WORKER": "false",  # only the test's `jobs work` processes work on jobs
    "NUMLOOKUP_JOB_LEASE_SECONDS": "1",  # a dead worker's chunk is free again a second after its last renewal
    "NUMLOOKUP_JOB_POLL_SECONDS": "0.05",
}
DISTINCT_VALID = 100_000


def numbers() -> list[str]:
    """100,000 distinct valid Estonian mobile numbers, every tenth again in another spelling, and invalid inputs."""
    out: list[str] = []
    for i in range(DISTINCT_VALID):
        number = f"+3725{1_000_000 + i:07d}"
        out.append(number)
        if i % 10 == 0:
            out.append(f"+372 {number[4:8]} {number[8:]}")  # a duplicate: charged once per job
        if i % 50 == 0:
            out.append(f"not-a-number-{i}")  # invalid: free
    return out


NUMBERS = numbers()
BODY = ("\n".join(NUMBERS) + "\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("jobs-kill"), env=ENV)


class Worker:
    """``numlookup jobs work`` in a process of its own, logging to a file."""

    def __init__(self, live: Live, name: str, env: dict[str, str] | None = None) -> None:
        data_dir = live.server.data_dir
        self.log = data_dir / f"{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "numlookup", "jobs", "work"],
            env=environment(data_dir, env or ENV),
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def submit(client: httpx.Client) -> dict[str, Any]:
    accepted = client.post("/v1/hlr/jobs", content=BODY, headers={"Content-Type": "text/plain"})
    assert accepted.status_code == 202, accepted.text
    job: dict[str, Any] = accepted.json()
    return job


def job_row(live: Live, public_id: str) -> Any:
    with live.engine.connect() as conn:
        return conn.execute(select(jobs).where(jobs.c.public_id == public_id)).one()


def chunks(live: Live, public_id: str) -> list[Any]:
    with live.engine.connect() as conn:
        return list(
            conn.execute(
                select(job_chunks)
                .join(jobs, jobs.c.id == job_chunks.c.job_id)
                .where(jobs.c.public_id == public_id)
                .order_by(job_chunks.c.seq)
            ).all()
        )


def wait_for(what: str, check: Any, worker: Worker | None = None, polls: int = 1200) -> None:
    """Poll every 50 ms, at most ``polls`` times (a bound on waiting, not a measured time)."""
    for _ in range(polls):
        if check():
            return
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited {worker.process.returncode}:\n{worker.log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def kill_mid_chunk(live: Live, public_id: str, worker: Worker) -> Any:
    """SIGKILL ``worker`` at a moment it holds a chunk of the job; that chunk, as the kill left it."""
    mark = f"%:{worker.pid}:%"
    for _ in range(1000):
        os.kill(worker.pid, signal.SIGSTOP)
        with live.engine.connect() as conn:
            held = conn.execute(
                select(job_chunks)
                .join(jobs, jobs.c.id == job_chunks.c.job_id)
                .where(
                    jobs.c.public_id == public_id,
                    job_chunks.c.state == "pending",
                    job_chunks.c.lease_owner.like(mark),
                )
            ).first()
        if held is not None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.process.wait()
            return held
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker was never caught holding a chunk")


def charges(live: Live, creds: NewCredentials) -> list[tuple[str, int]]:
    account = get_account(live.engine, creds.name)
    return [(r.request_id or "", -r.amount) for r in ledger_rows(live.engine, account.id, None) if r.kind == "job"]


def without_checked_at(lines: bytes) -> list[dict[str, Any]]:
    """JSON lines with ``checkedAt`` dropped: it is each job's own submit time."""
    objects: list[dict[str, Any]] = [msgspec.json.decode(line) for line in lines.splitlines()]
    for item in objects:
        item.pop("checkedAt", None)
    return objects


def test_a_worker_killed_mid_chunk_loses_nothing_and_charges_nothing_twice(server: Live) -> None:
    control_creds, creds, sync_creds = server.account("10000"), server.account("10000"), server.account("1")
    with server.client(sync_creds) as client:
        answered = client.post("/v1/hlr/sync", json={"numbers": [NUMBERS[0]]})
    assert answered.status_code == 200, answered.text
    per_number = parse_amount("1") - get_account(server.engine, sync_creds.name).balance  # what sync charges one
    expected = DISTINCT_VALID * per_number

    first = Worker(server, "worker-1")
    second: Worker | None = None
    try:
        with server.client(control_creds) as client:
            control = submit(client)
            wait_for("the uninterrupted job", lambda: job_row(server, control["id"]).status == "COMPLETED", first)
            control_csv = client.get(f"/v1/hlr/jobs/{control['id']}/results", params={"format": "csv"}).content
            control_jsonl = client.get(f"/v1/hlr/jobs/{control['id']}/results", params={"format": "jsonl"}).content

        with server.client(creds) as client:
            job = submit(client)
            assert job["reserved"] == "1000" and job["valid_count"] == DISTINCT_VALID  # 100,000 × 0.01
            total = job["total_count"]
            assert total == len(NUMBERS) and len(chunks(server, job["id"])) > 5
            # Let the worker settle a chunk of it first: the kill comes with part of the job done.
            wait_for("a chunk settled", lambda: job_row(server, job["id"]).chunks_done >= 1, first)
            held = kill_mid_chunk(server, job["id"], first)
            after_kill = job_row(server, job["id"])
            assert after_kill.status == "IN_PROGRESS" and after_kill.chunks_done < after_kill.chunks_total
            assert held.attempts == 1 and held.charged is None  # claimed once, nothing of it committed
            charged_at_kill = charges(server, creds)
            assert f"{job['id']}/{held.seq}" not in {ref for ref, _ in charged_at_kill}

            second = Worker(server, "worker-2")
            wait_for("the job to complete", lambda: job_row(server, job["id"]).status == "COMPLETED", second)
            done = client.get(f"/v1/hlr/jobs/{job['id']}").json()
            results_csv = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "csv"}).content
            results_jsonl = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "jsonl"}).content
    finally:
        first.stop()
        if second is not None:
            second.stop()

    # The chunk the dead worker held was taken over, claimed a second time, and settled once.
    taken = next(c for c in chunks(server, job["id"]) if c.seq == held.seq)
    assert (taken.state, taken.attempts, taken.lease_owner) == ("done", 2, None)
    assert first.process.returncode == -signal.SIGKILL
    # Credits: one ledger row per charged chunk, none twice, summing to what sync charges; nothing held.
    rows = charges(server, creds)
    refs = [ref for ref, _ in rows]
    assert len(refs) == len(set(refs))
    assert set(refs) == {f"{job['id']}/{c.seq}" for c in chunks(server, job["id"])}
    assert refs.count(f"{job['id']}/{held.seq}") == 1
    assert sum(amount for _, amount in rows) == expected
    assert (done["status"], done["processed_count"], done["reserved"]) == ("COMPLETED", total, "0")
    assert parse_amount(done["charged"]) == expected
    account = get_account(server.engine, creds.name)
    assert (account.balance, account.reserved) == (parse_amount("10000") - expected, 0)
    # Results: each input exactly once, in order, identical to the uninterrupted run's.
    assert results_csv == control_csv
    objects = without_checked_at(results_jsonl)
    assert [o["input"] for o in objects] == NUMBERS
    assert objects == without_checked_at(control_jsonl)


LIVE = [f"+3725200{i:04d}" for i in range(6)]
LIVE_PRICE = parse_amount("0.05")


def test_a_worker_killed_waiting_for_live_answers_is_taken_over_and_charged_once(tmp_path: Path) -> None:
    """The kill comes while the worker's live request is held at the source: nothing of the chunk was committed."""
    gate = threading.Event()
    with Peer(gate=gate) as peer:
        config = write_config(
            tmp_path / "numlookup.toml",
            routes=[{"match": "cc:372", "source": "peer"}],
            upstreams={"peer": {"url": peer.url, "username": "a", "password": "p", "timeout": 60}},
            price_live="0.05",
            job_live_deadline_seconds=60.0,  # the held request outlasts no deadline
        )
        env = {**ENV, "NUMLOOKUP_CONFIG": str(config)}
        with closing(start_live(tmp_path / "data", env=env)) as servers:
            live = next(servers)
            creds = live.account("10")
            first = Worker(live, "worker-1", env)
            second: Worker | None = None
            try:
                with live.client(creds) as client:
                    accepted = client.post("/v1/hlr/jobs", json={"numbers": LIVE, "max_age": 0})
                    assert accepted.status_code == 202, accepted.text
                    job = accepted.json()
                    assert parse_amount(job["reserved"]) == len(LIVE) * LIVE_PRICE
                    wait_for("the worker's live request", lambda: peer.hits > 0, first)
                    [held] = chunks(live, job["id"])
                    assert held.state == "pending" and f":{first.pid}:" in held.lease_owner
                    first.process.kill()
                    first.process.wait()
                    gate.set()
                    second = Worker(live, "worker-2", env)
                    wait_for("the job to complete", lambda: job_row(live, job["id"]).status == "COMPLETED", second)
                    done = client.get(f"/v1/hlr/jobs/{job['id']}").json()
                    lines = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "jsonl"}).content
            finally:
                gate.set()
                first.stop()
                if second is not None:
                    second.stop()
            rows = charges(live, creds)
            assert rows == [(f"{job['id']}/0", len(LIVE) * LIVE_PRICE)]  # one chunk, charged once, by the second
            assert (done["charged"], done["reserved"]) == ("0.3", "0")
            assert get_account(live.engine, creds.name).reserved == 0
            objects = [msgspec.json.decode(line) for line in lines.splitlines()]
            assert [o["input"] for o in objects] == LIVE
            assert {o.get("source") for o in objects} == {"upstream:peer"}
            asked = [n for body in peer.requests for n in body["numbers"]]
            assert sorted(set(asked)) == LIVE  # asked by the dead worker and again by its successor
