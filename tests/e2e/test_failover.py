"""Ordered failover between live sources, their back-off, and what each source did and cost.

A route lists several sources (``sources = [...]``); a number goes to the next
when its source fails for it. Every source here is a real HTTP peer on
127.0.0.1 (``tests/peers/messente.py``) that answers, or fails the way
providers fail: refused, hung, 500, 429 with ``Retry-After``, 401.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from numlookup.store.tables import source_usage
from tests.e2e.conftest import Live, start_live
from tests.live_config import write_config
from tests.peers.messente import Peer
from tests.support import metric, run_cli

SECRET = "s3cr3t-PASSWORD-never-shown"
PRICE_OFFLINE, PRICE_LIVE = Decimal("0.01"), Decimal("0.05")
GOOD_COST = Decimal("0.004")  # what the good provider charges us per number, EUR
# Country → the sources its route tries, in order.
ROUTES = {
    "372": ["dead", "good"],  # refused, then answered
    "358": ["hung", "good"],  # timed out, then answered
    "46": ["err500", "good"],  # 500, then answered
    "45": ["limited", "good"],  # 429 with Retry-After, then answered
    "47": ["badcreds", "good"],  # our credentials refused, then answered
    "49": ["dead", "breaker"],  # both fail: the error lists both
    "44": ["good", "dead"],  # the first answers: the second is never asked
}
EE, FI, SE, DK, NO, DE, GB = (
    "+37251000001",
    "+358401234567",
    "+46701234567",
    "+4520123456",
    "+4741234567",
    "+4915112345678",
    "+447712345678",
)


@dataclass
class Sources:
    live: Live
    peers: dict[str, Peer]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    peers = {
        "dead": Peer(mode="refuse"),
        "hung": Peer(mode="hang"),
        "err500": Peer(mode="http500"),
        "limited": Peer(mode="http429", retry_after=3),
        "badcreds": Peer(credentials=("a", "the-right-one")),
        "breaker": Peer(mode="http500"),
        "good": Peer(default_status="ONLINE", statuses={DE: "OFFLINE"}),
    }
    for peer in peers.values():
        peer.start()
    upstreams: dict[str, dict[str, object]] = {
        name: {"url": peer.url, "username": "a", "password": SECRET, "timeout": 0.5} for name, peer in peers.items()
    }
    upstreams["good"].update(cost=str(GOOD_COST), currency="EUR")
    folder = tmp_path_factory.mktemp("failover")
    config = write_config(
        folder / "numlookup.toml",
        routes=[{"match": f"cc:{cc}", "sources": chain} for cc, chain in ROUTES.items()],
        upstreams=upstreams,
        price_offline=str(PRICE_OFFLINE),
        price_live=str(PRICE_LIVE),
        live_breaker_failures=2,
        live_breaker_reset_seconds=60.0,
        live_deadline_seconds=5.0,
    )
    generator = start_live(folder, env={"NUMLOOKUP_CONFIG": str(config), "NUMLOOKUP_LOG_FORMAT": "json"})
    live = next(generator)
    try:
        yield Sources(live, peers)
    finally:
        generator.close()
        for peer in peers.values():
            peer.stop()


def lookup(sources: Sources, numbers: list[str], credits: str = "100") -> list[dict[str, Any]]:
    creds = sources.live.account(credits=credits)
    with sources.live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


@pytest.mark.parametrize(
    ("number", "first", "reason"),
    [
        (EE, "dead", "upstream:dead refused the connection"),
        (FI, "hung", "upstream:hung timed out"),
        (SE, "err500", "upstream:err500 had a server error (HTTP 500)"),
        (NO, "badcreds", "upstream:badcreds rejected our credentials (HTTP 401)"),
    ],
)
def test_a_failing_first_source_hands_the_number_to_the_next(
    sources: Sources, number: str, first: str, reason: str
) -> None:
    good_before = len(sources.peers["good"].requests)
    [item] = lookup(sources, [number])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:good")
    assert "error" not in item
    assert len(sources.peers["good"].requests) == good_before + 1


def test_the_first_source_that_answers_wins(sources: Sources) -> None:
    dead_hits = sources.peers["dead"].hits
    [item] = lookup(sources, [GB])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:good")
    assert sources.peers["dead"].hits == dead_hits


def test_when_every_source_fails_the_error_lists_each_reason_and_the_answer_is_offline(sources: Sources) -> None:
    [item] = lookup(sources, [DE])
    assert (item["status"], item["source"]) == ("UNKNOWN", "offline")
    assert item["error"] == (
        "Live lookup failed: upstream:dead refused the connection; "
        "upstream:breaker had a server error (HTTP 500); prefix based response used"
    )
    assert item["currentNetwork"]["mccmnc"] == "26201"  # the offline answer still stands


def test_an_open_circuit_sends_numbers_on_at_once(sources: Sources) -> None:
    """``breaker`` opens after two failures; then it is not asked and the number fails over without waiting."""
    for _ in range(2):
        lookup(sources, [DE])
    hits = sources.peers["breaker"].hits
    started = time.monotonic()
    [item] = lookup(sources, [DE])
    assert sources.peers["breaker"].hits == hits  # not asked
    assert "upstream:breaker is unavailable (circuit open after repeated failures)" in item["error"]
    assert time.monotonic() - started < 5.0  # no source timeout was waited for (a loose bound: the deadline)


def test_a_429_backs_the_source_off_for_its_retry_after(sources: Sources) -> None:
    limited = sources.peers["limited"]
    [item] = lookup(sources, [DK])
    assert (item["source"], "error" in item) == ("upstream:good", False)
    hits = limited.hits
    assert hits >= 1
    # Within Retry-After (3 s) nothing reaches the limited source; the next source answers.
    [item] = lookup(sources, [DK])
    assert item["source"] == "upstream:good"
    assert limited.hits == hits
    time.sleep(3.2)
    lookup(sources, [DK])
    assert limited.hits == hits + 1  # asked again once the back-off passed
    assert (
        metric(sources.live.url, "numlookup_live_source_requests_total", source="upstream:limited", outcome="backoff")
        >= 1
    )


def test_no_credential_appears_in_answers_logs_or_metrics(sources: Sources) -> None:
    answers = lookup(sources, [NO, DE, EE])
    assert all(SECRET not in str(item) for item in answers)
    with sources.live.client() as client:
        assert SECRET not in client.get("/metrics").text
        assert SECRET not in client.get("/openapi.json").text
    assert SECRET not in sources.live.server.log_path.read_text()


def test_usage_and_cost_per_source_are_recorded(sources: Sources) -> None:
    before = _usage(sources)
    answers = lookup(sources, [EE, SE, GB])
    assert [item["source"] for item in answers] == ["upstream:good"] * 3
    deadline = time.monotonic() + 30  # counts reach the database with the charge's commit
    while True:
        after = _usage(sources)
        grew = after.get("upstream:good", {}).get("answered", 0) - before.get("upstream:good", {}).get("answered", 0)
        if grew >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    good_before, good = before.get("upstream:good", _zero()), after["upstream:good"]
    answered = good["answered"] - good_before["answered"]
    assert answered == 3
    assert good["cost_micros"] - good_before["cost_micros"] == answered * int(GOOD_COST * 1_000_000)
    assert good["credits_micros"] - good_before["credits_micros"] == answered * int(PRICE_LIVE * 1_000_000)
    assert good["currency"] == "EUR"
    dead = after["upstream:dead"]
    assert dead["failures"] >= 1 and dead["cost_micros"] == 0
    # The CLI shows the same figures, as exact decimals.
    shown = _cli_usage(sources)
    row = next(r for r in shown if r["source"] == "upstream:good")
    assert Decimal(row["cost"]) == Decimal(good["cost_micros"]) / 1_000_000 and row["currency"] == "EUR"
    assert Decimal(row["credits_charged"]) == Decimal(good["credits_micros"]) / 1_000_000
    assert metric(sources.live.url, "numlookup_live_source_cost_total", source="upstream:good", currency="EUR") > 0


def _zero() -> dict[str, Any]:
    return {"answered": 0, "cost_micros": 0, "credits_micros": 0}


def _usage(sources: Sources) -> dict[str, dict[str, Any]]:
    with sources.live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"currency": row["currency"], **_zero(), "failures": 0})
        for key in ("answered", "cost_micros", "credits_micros", "failures"):
            total[key] += row[key]
    return totals


def _cli_usage(sources: Sources) -> list[dict[str, Any]]:
    import json

    folder = sources.live.server.data_dir
    env = {"NUMLOOKUP_CONFIG": sources.live.server.env["NUMLOOKUP_CONFIG"]}
    result: list[dict[str, Any]] = json.loads(run_cli(folder, "sources", "usage", "--json", env=env).stdout)
    return result


def test_sources_check_probes_each_source_and_fails_when_one_fails(tmp_path: Path) -> None:
    import json

    with Peer() as good, Peer(mode="http500") as broken:
        config = write_config(
            tmp_path / "numlookup.toml",
            routes=[{"match": "cc:372", "sources": ["good", "broken"]}],
            upstreams={
                "good": {"url": good.url, "username": "a", "password": SECRET},
                "broken": {"url": broken.url, "username": "a", "password": SECRET, "probe_number": "+37256000000"},
            },
        )
        env = {"NUMLOOKUP_CONFIG": str(config)}
        done = run_cli(tmp_path / "data", "sources", "check", "--json", env=env, check=False)
        assert done.returncode == 1, done.stderr
        probes = {p["source"]: p for p in json.loads(done.stdout)}
        assert probes["upstream:good"]["ok"] is True and probes["upstream:good"]["answer"]["reachable"] is True
        assert probes["upstream:good"]["number"].startswith("+372") and probes["upstream:good"]["ms"] >= 0
        assert probes["upstream:broken"] == {
            **probes["upstream:broken"],
            "ok": False,
            "number": "+37256000000",
            "error": "upstream:broken had a server error (HTTP 500)",
        }
        assert SECRET not in done.stdout + done.stderr
        one = run_cli(tmp_path / "data", "sources", "check", "good", env=env, check=False)
        assert one.returncode == 0 and "ok    upstream:good (messente)" in one.stdout
        unknown = run_cli(tmp_path / "data", "sources", "check", "nope", env=env, check=False)
        assert unknown.returncode == 1 and "no live source named 'nope'" in unknown.stderr
