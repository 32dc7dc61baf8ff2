"""Live-routed numbers in a job, against real peers on 127.0.0.1 (``tests/peers/messente.py``).

One server runs jobs in its serve worker (the default) with three routes:
Estonia to a peer that answers, Finland to one that fails (HTTP 500), Sweden to
one whose answers wait on a gate the test holds. A job reserves the live price
for its live-routed numbers, is charged exactly what the sync API charges for
the same numbers (live where the source answered, the offline price where it
failed), and its source's usage is recorded. And a job's numbers take at most
``job_live_concurrency`` of a source's requests: a sync request is sent while
the job's own is still in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import parse_amount
from numlookup.store.tables import source_usage
from tests.e2e.conftest import Live, start_live
from tests.jobs.local import job_charges
from tests.live_config import write_config
from tests.peers.messente import Peer
from tests.support import wait_for

SECRET = "s3cr3t-PASSWORD-never-shown"
PRICE_OFFLINE, PRICE_CACHE, PRICE_LIVE = Decimal("0.01"), Decimal("0.002"), Decimal("0.05")
GOOD_COST = Decimal("0.004")  # what the answering peer charges us per number, EUR
EE = ["+37251000011", "+37251000012", "+37251000013"]  # answered live
FI = ["+358401234567", "+358401234568"]  # their source fails: the offline answer, at the offline price
BE = "+32470123456"  # no route: offline
SE = [f"+4670123{i:04d}" for i in range(12)]  # answered once the test opens the gate
SE_SYNC = "+46701239999"


@dataclass
class Sources:
    live: Live
    good: Peer
    broken: Peer
    gated: Peer
    gate: threading.Event


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    gate = threading.Event()
    good, broken, gated = Peer(), Peer(mode="http500"), Peer(gate=gate)
    for peer in (good, broken, gated):
        peer.start()
    upstreams: dict[str, dict[str, object]] = {
        "good": {"url": good.url, "username": "a", "password": SECRET, "cost": str(GOOD_COST), "currency": "EUR"},
        "broken": {"url": broken.url, "username": "a", "password": SECRET},
        # One number a request, two in flight: the job may have one of them (job_live_concurrency), sync the other.
        "gated": {"url": gated.url, "username": "a", "password": SECRET, "max_batch": 1, "max_concurrency": 2},
    }
    folder = tmp_path_factory.mktemp("jobs-live")
    config = write_config(
        folder / "numlookup.toml",
        routes=[
            {"match": "cc:372", "source": "good"},
            {"match": "cc:358", "source": "broken"},
            {"match": "cc:46", "source": "gated"},
        ],
        upstreams=upstreams,
        price_offline=str(PRICE_OFFLINE),
        price_cache=str(PRICE_CACHE),
        price_live=str(PRICE_LIVE),
        live_breaker_failures=1000,  # the failing source keeps failing the same way, never "breaker open"
        live_deadline_seconds=20.0,
        job_chunk_numbers=3,  # a few numbers make several chunks
        job_poll_seconds=0.05,
        job_live_concurrency=1,
    )
    generator = start_live(folder, env={"NUMLOOKUP_CONFIG": str(config)})
    live = next(generator)
    try:
        yield Sources(live, good, broken, gated, gate)
    finally:
        gate.set()
        generator.close()
        for peer in (good, broken, gated):
            peer.stop()


def micros(amount: Decimal) -> int:
    return int(amount * 1_000_000)


def spent(live: Live, creds: NewCredentials, credits: str) -> int:
    return parse_amount(credits) - get_account(live.engine, creds.name).balance


def usage(live: Live) -> dict[str, dict[str, int]]:
    with live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"answered": 0, "credits_micros": 0, "failures": 0})
        for key in total:
            total[key] += row[key]
    return totals


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    wait_for("the job to complete", lambda: client.get(f"/v1/hlr/jobs/{job_id}").json()["status"] == "COMPLETED")
    job: dict[str, Any] = client.get(f"/v1/hlr/jobs/{job_id}").json()
    return job


def test_a_jobs_live_numbers_reserve_the_live_price_and_are_charged_as_sync_charges(sources: Sources) -> None:
    live = sources.live
    distinct = [*EE, *FI, BE]
    numbers = [EE[0], EE[1], "+372 5100 0011", FI[0], "not a number", FI[1], BE, EE[2]]
    sync_creds, creds = live.account("10"), live.account("10")
    with live.client(sync_creds) as client:
        synced = client.post("/v1/hlr/sync", json={"numbers": distinct, "max_age": 0})
    assert synced.status_code == 200, synced.text
    sync_cost = spent(live, sync_creds, "10")
    # Sync: the live price for the three numbers the source answered, the offline price for the others.
    assert sync_cost == 3 * micros(PRICE_LIVE) + 3 * micros(PRICE_OFFLINE)
    by_number = {item["number"]: item for item in synced.json()["result"]}

    before = usage(live)
    with live.client(creds) as client:
        accepted = client.post("/v1/hlr/jobs", json={"numbers": numbers, "max_age": 0})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        # Reserved: the dearest outcome, the live price for the five live-routed numbers, offline for Belgium's.
        assert (job["valid_count"], job["duplicate_count"], job["invalid_count"]) == (6, 1, 1)
        assert parse_amount(job["reserved"]) == 5 * micros(PRICE_LIVE) + micros(PRICE_OFFLINE)
        done = finished(client, job["id"])
        lines = client.get(f"/v1/hlr/jobs/{job['id']}/results", params={"format": "jsonl"}).content
    after = usage(live)

    # Charged exactly what sync charged for the same numbers; the rest of the reservation released.
    assert sum(job_charges(live.engine, creds.name)) == sync_cost == spent(live, creds, "10")
    assert parse_amount(done["charged"]) == sync_cost and done["reserved"] == "0"
    assert get_account(live.engine, creds.name).reserved == 0
    # The results: the live answers where the source answered, each input once, as sync answers them.
    objects = [msgspec.json.decode(line) for line in lines.splitlines()]
    assert [o["input"] for o in objects] == numbers
    for item in objects:
        if item["input"] == "not a number":
            continue
        theirs = by_number[item["number"]]
        assert (item["status"], item.get("source"), "error" in item) == (
            theirs["status"],
            theirs.get("source"),
            "error" in theirs,
        )
    assert {o["number"]: o.get("source") for o in objects if o["number"] in EE} == dict.fromkeys(EE, "upstream:good")
    # The source's usage: three answers and their credits, recorded from the job as from sync.
    good, was = after["upstream:good"], before.get("upstream:good", {"answered": 0, "credits_micros": 0})
    assert good["answered"] - was["answered"] == 3
    assert good["credits_micros"] - was["credits_micros"] == 3 * micros(PRICE_LIVE)
    assert after["upstream:broken"]["failures"] > before.get("upstream:broken", {"failures": 0})["failures"]


def test_a_job_takes_no_more_than_its_share_of_a_source_and_sync_goes_past_it(sources: Sources) -> None:
    live, peer, gate = sources.live, sources.gated, sources.gate
    creds, sync_creds = live.account("10"), live.account("10")
    gate.clear()
    seen = peer.hits
    synced: list[httpx.Response] = []
    with live.client(creds) as client:
        accepted = client.post("/v1/hlr/jobs", json={"numbers": SE, "max_age": 0})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        wait_for("the job's first source request", lambda: peer.hits > seen)
        time.sleep(0.5)  # room for the job to send more, were it allowed to
        assert peer.hits == seen + 1  # job_live_concurrency = 1: its other numbers wait

        def sync() -> None:
            with live.client(sync_creds) as other:
                synced.append(other.post("/v1/hlr/sync", json={"numbers": [SE_SYNC], "max_age": 0}))

        thread = threading.Thread(target=sync)
        thread.start()
        # The sync number is sent at once, while the job's request is still in flight and eleven wait behind it.
        wait_for("the sync request at the source", lambda: peer.hits == seen + 2)
        assert peer.requests[-1]["numbers"] == [SE_SYNC]
        assert client.get(f"/v1/hlr/jobs/{job['id']}").json()["status"] == "IN_PROGRESS"
        gate.set()
        thread.join(30)
        done = finished(client, job["id"])
    [answer] = synced
    assert answer.status_code == 200 and answer.json()["result"][0]["source"] == "upstream:gated"
    asked = [n for body in peer.requests for n in body["numbers"]]
    assert sorted(n for n in asked if n in SE) == sorted(SE)  # each job number asked once
    assert parse_amount(done["charged"]) == len(SE) * micros(PRICE_LIVE) == sum(job_charges(live.engine, creds.name))
    assert spent(live, sync_creds, "10") == micros(PRICE_LIVE)
