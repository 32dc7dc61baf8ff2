"""Bulk jobs over HTTP: a real server on a real socket, a real database, a webhook receiver verifying signatures.

Two servers per module. ``worker`` runs jobs in its serve worker (the default):
a job goes from submit to COMPLETED and its signed webhook is delivered. ``idle``
has ``job_worker = false``, so a job waits in QUEUED until the test itself
works its chunks with a real ``JobRunner`` on the same database: that is how a
test sees a job half done (results so far, a stop mid-way) or a chunk whose
worker died holding it. Both allow webhooks to 127.0.0.1 (the receiver) and
scale the retry schedule down so retries take milliseconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import Engine, func, select

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import ledger_rows, parse_amount
from numlookup.jobs import queue
from numlookup.settings import Settings
from numlookup.store.tables import idempotency_keys, jobs
from tests.e2e.conftest import Live, start_live
from tests.jobs.local import job_charges, pieces, settings_for, work
from tests.peers.webhook_receiver import Receiver
from tests.support import cli_json, run_cli, wait_for

PRICE = parse_amount("0.01")
ENV = {
    "NUMLOOKUP_OFFLINE_PRICE": "0.01",
    "NUMLOOKUP_JOB_CHUNK_NUMBERS": "2",  # a few numbers make several chunks
    "NUMLOOKUP_JOB_POLL_SECONDS": "0.05",
    "NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "NUMLOOKUP_WEBHOOK_RETRY_SCALE": "0.001",  # at once, 5 ms, 0.3 s, 1.8 s, ...
    "NUMLOOKUP_WEBHOOK_POLL_SECONDS": "0.05",
}
# Three distinct valid numbers, one of them twice in another spelling, and two invalid inputs.
NUMBERS = ["+37251000001", "+37251000002", "+372 5100 0001", "12345", "+37251000003", "not a number"]
DISTINCT_VALID = 3


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("jobs-worker"), env=ENV)


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("jobs-idle"), env={**ENV, "NUMLOOKUP_JOB_WORKER": "false"})


def local_settings(live: Live) -> Settings:
    """Settings for a JobRunner of this test process on the server's database."""
    return settings_for(live.server.data_dir, str(live.engine.url.render_as_string(hide_password=False)))


def held(engine: Engine, creds: NewCredentials) -> tuple[int, int]:
    """The account's balance and what its jobs hold of it."""
    account = get_account(engine, creds.name)
    return account.balance, account.reserved


def job_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def cli_csv(live: Live, tmp_path: Path, numbers: list[str]) -> bytes:
    """What ``numlookup lookup --input`` writes for the same numbers, one a line."""
    source, target = tmp_path / "numbers.txt", tmp_path / "cli.csv"
    source.write_text("\n".join(numbers) + "\n")
    run_cli(live.server.data_dir, "lookup", "--input", str(source), "--output", str(target))
    return target.read_bytes()


def submit(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/hlr/jobs", json={"numbers": NUMBERS, **body})


def test_a_job_completes_charges_exactly_and_its_signed_webhook_survives_three_failures(
    worker: Live, tmp_path: Path
) -> None:
    creds = worker.account("1")
    secret = cli_json(worker.server.data_dir, "accounts", "webhook-secret", creds.name)["secret"]
    with Receiver(secrets=[secret], script=["500", "reset", "503"]) as receiver, worker.client(creds) as client:
        accepted = submit(client, callback_url=receiver.url(), friendly_name="contacts")
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert accepted.headers["location"] == f"/v1/hlr/jobs/{job['id']}"
        assert (job["total_count"], job["valid_count"], job["invalid_count"], job["duplicate_count"]) == (6, 3, 2, 1)
        assert job["reserved"] == "0.03" and job["charged"] == "0"  # the dearest outcome of 3 distinct valid numbers
        wait_for("COMPLETED", lambda: client.get(f"/v1/hlr/jobs/{job['id']}").json()["status"] == "COMPLETED")
        done = client.get(f"/v1/hlr/jobs/{job['id']}").json()
        wait_for("a delivery that succeeds", lambda: len(receiver.accepted()) == 1)
        results = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "csv"})
        lines = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "jsonl"})

    # Credits: exactly the sync API's price for each distinct valid number, one ledger row per chunk, nothing held.
    assert (done["processed_count"], done["charged"], done["reserved"]) == (6, "0.03", "0")
    assert done["started_at"] and done["completed_at"] and done["result"]["expires_at"]
    assert sum(job_charges(worker.engine, creds.name)) == DISTINCT_VALID * PRICE
    # Chunks of two: (…001, …002), (…001 again, 12345): nothing to charge, no row; (…003, junk).
    assert job_charges(worker.engine, creds.name) == [PRICE, 2 * PRICE]  # newest first
    account = get_account(worker.engine, creds.name)
    assert {r.request_id for r in ledger_rows(worker.engine, account.id, None) if r.kind == "job"} == {
        f"{job['id']}/0",
        f"{job['id']}/2",
    }
    assert held(worker.engine, creds) == (parse_amount("1") - DISTINCT_VALID * PRICE, 0)

    # Results: the bulk CLI's CSV for the same file, and the sync API's result objects plus ``input``.
    assert results.status_code == 200 and results.headers["x-job-status"] == "COMPLETED"
    assert results.content == cli_csv(worker, tmp_path, NUMBERS)
    objects = [msgspec.json.decode(line) for line in lines.content.splitlines()]
    assert [o["input"] for o in objects] == NUMBERS
    assert [o["number"] for o in objects][:3] == ["+37251000001", "+37251000002", "+37251000001"]

    # The webhook: retried after a 500, a reset and a 503 with one id, each attempt verified by standardwebhooks.
    assert [r.answer for r in receiver.requests] == ["500", "reset", "503", "ok"]
    assert {r.webhook_id for r in receiver.requests} == {receiver.requests[0].webhook_id}
    assert all(r.verified == {secret: True} for r in receiver.requests)
    event = msgspec.json.decode(receiver.requests[-1].body)
    assert event["type"] == "job.completed" and event["data"] == done


def test_a_submit_the_balance_cannot_cover_is_402_and_creates_nothing(worker: Live) -> None:
    creds = worker.account("0.02")  # three distinct valid numbers cost 0.03
    before = job_count(worker.engine)
    with worker.client(creds) as client:
        refused = submit(client)
        listed = client.get("/v1/hlr/jobs").json()
    assert refused.status_code == 402 and refused.json()["error"]["code"] == 104
    assert listed == {"jobs": [], "next_cursor": None}
    assert job_count(worker.engine) == before
    assert held(worker.engine, creds) == (parse_amount("0.02"), 0) and job_charges(worker.engine, creds.name) == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"+37251000001\n+3725\x001000002\n", "line 2 holds a NUL byte"),
        (b"+37251000001\n\xff\xfe\n", "line 2 is not UTF-8"),
    ],
)
def test_a_malformed_file_is_400_and_changes_nothing(worker: Live, content: bytes, why: str) -> None:
    creds = worker.account("1")
    before = job_count(worker.engine)
    with worker.client(creds) as client:
        refused = client.post("/v1/hlr/jobs", content=content, headers={"Content-Type": "text/plain"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 102
    assert why in refused.json()["error"]["description"]
    assert job_count(worker.engine) == before  # its staged chunks were deleted with it
    assert held(worker.engine, creds) == (parse_amount("1"), 0)


def test_a_file_of_a_header_alone_is_a_job_of_none(worker: Live) -> None:
    creds = worker.account("1")
    with worker.client(creds) as client:
        done = client.post(
            "/v1/hlr/jobs",
            params={"header": "true", "column": "1"},
            content=b"name,phone\n",
            headers={"Content-Type": "text/csv"},
        )
    assert done.status_code == 202, done.text
    assert (done.json()["status"], done.json()["total_count"], done.json()["reserved"]) == ("COMPLETED", 0, "0")


def test_a_callback_url_the_guard_refuses_is_400_naming_why(worker: Live) -> None:
    creds = worker.account("1")
    before = job_count(worker.engine)
    with worker.client(creds) as client:
        refused = submit(client, callback_url="http://no-such-host.invalid/hook")
        streamed = client.post(
            "/v1/hlr/jobs",
            params={"callback_url": "http://no-such-host.invalid/hook"},
            content=b"+37251000001\n",
            headers={"Content-Type": "text/plain"},
        )
    for answer in (refused, streamed):
        assert answer.status_code == 400 and answer.json()["error"]["code"] == 102
        assert "does not resolve" in answer.json()["error"]["description"]
    assert job_count(worker.engine) == before and held(worker.engine, creds) == (parse_amount("1"), 0)


def test_without_webhook_allow_private_a_loopback_callback_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE"}
    for live in start_live(tmp_path, env=env):
        creds = live.account("1")
        with live.client(creds) as client:
            refused = submit(client, callback_url="http://127.0.0.1:9/hook")
        assert refused.status_code == 400
        assert "webhook_allow_private" in refused.json()["error"]["description"]
        assert job_count(live.engine) == 0


def test_another_accounts_job_is_the_same_404_as_none(worker: Live) -> None:
    owner, other = worker.account("1"), worker.account("1")
    with worker.client(owner) as client:
        job_id = submit(client).json()["id"]
    with worker.client(other) as client:
        for path in (f"/v1/hlr/jobs/{job_id}", f"/v1/hlr/jobs/{job_id}/results"):
            theirs, never = client.get(path), client.get(path.replace(job_id, "job_" + "0" * 24))
            assert theirs.status_code == never.status_code == 404
            assert theirs.json()["error"]["code"] == never.json()["error"]["code"]
        stopped = client.post(f"/v1/hlr/jobs/{job_id}/stop")
        assert stopped.status_code == 404
        assert client.get("/v1/hlr/jobs").json()["jobs"] == []


def test_results_while_running_then_stop_mid_way_releases_the_rest(idle: Live) -> None:
    creds = idle.account("1")
    settings = local_settings(idle)
    with Receiver() as receiver, idle.client(creds) as client:
        job = submit(client, callback_url=receiver.url()).json()
        assert held(idle.engine, creds) == (parse_amount("1"), DISTINCT_VALID * PRICE)
        assert work(idle.engine, settings, chunks=1) == 1  # the first chunk: +37251000001, +37251000002
        running = client.get(f"/v1/hlr/jobs/{job['id']}").json()
        partial = client.get(f"/v1/hlr/jobs/{job['id']}/results")
        assert (running["status"], running["processed_count"], running["charged"]) == ("IN_PROGRESS", 2, "0.02")
        assert partial.headers["x-job-status"] == "IN_PROGRESS"
        assert [line.split(",")[0] for line in partial.text.splitlines()[1:]] == NUMBERS[:2]

        stopped = client.post(f"/v1/hlr/jobs/{job['id']}/stop")
        assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
        assert work(idle.engine, settings) == 0  # nothing left to claim
        wait_for("the job.stopped event", lambda: len(receiver.accepted()) == 1)
        again = client.post(f"/v1/hlr/jobs/{job['id']}/stop")
    assert (stopped.json()["charged"], stopped.json()["reserved"]) == ("0.02", "0")
    assert held(idle.engine, creds) == (parse_amount("1") - 2 * PRICE, 0)  # the rest released
    assert job_charges(idle.engine, creds.name) == [2 * PRICE]  # the first chunk's two numbers
    assert msgspec.json.decode(receiver.requests[0].body)["type"] == "job.stopped"
    assert again.status_code in (200, 409)  # stopping a stopped job changes nothing
    assert held(idle.engine, creds) == (parse_amount("1") - 2 * PRICE, 0)


def test_a_chunk_whose_worker_died_is_taken_over_once_its_lease_ends(idle: Live) -> None:
    """A worker SIGKILLed mid-chunk leaves exactly this: a chunk claimed under a lease, never settled."""
    creds = idle.account("1")
    settings = local_settings(idle)
    with idle.client(creds) as client:
        control = submit(client).json()  # the same numbers, processed without interruption
        assert work(idle.engine, settings) == 3
        job = submit(client).json()
        dead = queue.claim(idle.engine, "killed-worker", lease_seconds=0.5)  # the first chunk of the second job
        assert dead is not None and dead.job.public_id == job["id"] and dead.seq == 0
        assert work(idle.engine, settings) == 2  # the others; the dead worker's chunk is still leased
        assert client.get(f"/v1/hlr/jobs/{job['id']}").json()["status"] == "IN_PROGRESS"
        time.sleep(0.6)  # the lease runs out
        assert work(idle.engine, settings) == 1  # taken over
        done = client.get(f"/v1/hlr/jobs/{job['id']}").json()
        # The dead worker, were it to wake up, can no longer settle the chunk: nothing is charged twice.
        assert (
            queue.settle(
                idle.engine,
                dead,
                "killed-worker",
                data=b"",
                amount=PRICE,
                numbers=2,
                retention=timedelta(days=1),
            )
            is None
        )
        assert done["status"] == "COMPLETED" and done["charged"] == "0.03" and done["reserved"] == "0"
        ours = client.get(f"/v1/hlr/jobs/{job['id']}/results").content
        theirs = client.get(f"/v1/hlr/jobs/{control['id']}/results").content
    assert ours == theirs  # identical to the uninterrupted run
    assert (
        sum(job_charges(idle.engine, creds.name)) == 2 * DISTINCT_VALID * PRICE
        and len(job_charges(idle.engine, creds.name)) == 4
    )
    assert held(idle.engine, creds) == (parse_amount("1") - 2 * DISTINCT_VALID * PRICE, 0)


def test_a_retried_submit_with_its_idempotency_key_returns_the_same_job_and_reserves_once(idle: Live) -> None:
    creds = idle.account("1")
    key = {"Idempotency-Key": '"job-submit-1"'}
    with idle.client(creds) as client:
        first = client.post("/v1/hlr/jobs", json={"numbers": NUMBERS}, headers=key)
        again = client.post("/v1/hlr/jobs", json={"numbers": NUMBERS}, headers=key)
        other = client.post("/v1/hlr/jobs", json={"numbers": NUMBERS[:2]}, headers=key)
        listed = client.get("/v1/hlr/jobs").json()["jobs"]
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert other.status_code == 422 and other.json()["error"]["code"] == 102
    assert [j["id"] for j in listed] == [first.json()["id"]]
    assert held(idle.engine, creds) == (parse_amount("1"), DISTINCT_VALID * PRICE)  # reserved once


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc: children, their children, ...)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def cpu_process(live: Live) -> int:
    """The serve worker's job process (``jobs.cpu.CpuProcess``: a multiprocessing spawn child)."""
    assert live.server.process is not None
    spawned = []
    for pid in descendants(live.server.process.pid):
        with suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                spawned.append(pid)
    assert len(spawned) == 1, spawned
    return spawned[0]


def test_the_same_key_while_the_first_submit_is_still_staging_is_409(idle: Live) -> None:
    """The first submit claims its key, then stages in the job process, which the test holds still (SIGSTOP)."""
    warm, creds = idle.account("1"), idle.account("1")
    key = {"Idempotency-Key": '"job-in-flight"'}
    with idle.client(warm) as client:
        assert submit(client).status_code == 202  # the job process is started by a first submit
    process = cpu_process(idle)
    before = job_count(idle.engine)
    results: list[httpx.Response] = []
    with idle.client(creds) as client, idle.client(creds) as other:
        first = threading.Thread(
            target=lambda: results.append(client.post("/v1/hlr/jobs", json={"numbers": NUMBERS}, headers=key))
        )
        os.kill(process, signal.SIGSTOP)
        try:
            first.start()
            wait_for("the first submit's claim", lambda: key_state(idle.engine, "job-in-flight") == "running")
            busy = other.post("/v1/hlr/jobs", json={"numbers": NUMBERS}, headers=key)
            staged = job_count(idle.engine)
        finally:
            os.kill(process, signal.SIGCONT)
        first.join(60)
        replay = other.post("/v1/hlr/jobs", json={"numbers": NUMBERS}, headers=key)
        listed = other.get("/v1/hlr/jobs").json()["jobs"]
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == 106 and busy.headers["retry-after"] == "1"
    assert staged == before  # nothing of the first had been staged yet: the 409 came while it was resolving
    [done] = results
    assert done.status_code == 202, done.text
    assert replay.status_code == 202 and replay.json() == done.json()
    assert [j["id"] for j in listed] == [done.json()["id"]]
    assert held(idle.engine, creds) == (parse_amount("1"), DISTINCT_VALID * PRICE)  # reserved once


def key_state(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        state: str | None = conn.execute(select(idempotency_keys.c.state).where(idempotency_keys.c.key == key)).scalar()
    return state


def test_a_streamed_file_is_fingerprinted_as_it_is_read(idle: Live) -> None:
    creds = idle.account("1")
    key = {"Idempotency-Key": "upload-7", "Content-Type": "text/plain"}
    body = ("\n".join(NUMBERS) + "\n").encode()

    with idle.client(creds) as client:
        first = client.post("/v1/hlr/jobs", content=pieces(body, 5), headers=key)
        again = client.post("/v1/hlr/jobs", content=pieces(body, 5), headers=key)
        other = client.post("/v1/hlr/jobs", content=body + b"+37251000009\n", headers=key)
        options = client.post("/v1/hlr/jobs", content=body, headers=key, params={"friendly_name": "x"})
        listed = client.get("/v1/hlr/jobs").json()["jobs"]
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert first.json()["total_count"] == len(NUMBERS)
    assert other.status_code == options.status_code == 422
    assert [j["id"] for j in listed] == [first.json()["id"]]  # the refused uploads' staged chunks are gone
    assert held(idle.engine, creds) == (parse_amount("1"), DISTINCT_VALID * PRICE)


def test_operators_see_reservations_and_jobs_of_every_account(idle: Live) -> None:
    creds = idle.account("1")
    with idle.client(creds) as client:
        job = submit(client).json()
    data_dir = idle.server.data_dir
    shown = cli_json(data_dir, "credits", "show", creds.name)
    assert shown["reserved"] == "0.03" and shown["reservations"][0]["job"] == job["id"]
    listed = cli_json(data_dir, "jobs", "list", "--account", creds.name)
    assert [j["id"] for j in listed] == [job["id"]]
    stopped = cli_json(data_dir, "jobs", "stop", job["id"])
    assert stopped["status"] == "STOPPED" and cli_json(data_dir, "credits", "show", creds.name)["reserved"] == "0"
