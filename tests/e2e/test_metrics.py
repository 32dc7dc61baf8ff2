"""``GET /metrics`` counts what the node did: requests by route and status, lookups by outcome, credits spent."""

from __future__ import annotations

from pathlib import Path

import httpx

from numlookup.billing.money import to_micros
from numlookup.settings import Settings
from tests.e2e.conftest import Live, start_live
from tests.support import metric

SYNC = "/v1/hlr/sync"
SPENT = "numlookup_credits_spent_micros_total"
PRICE = to_micros(Settings().offline_price)  # what one valid number costs an account without a price of its own


def test_requests_lookups_and_credits_are_counted(live: Live) -> None:
    creds = live.account(credits="1")
    before = {status: _requests(live, SYNC, "POST", status) for status in ("200", "401")}
    spent = _optional(live, SPENT)
    unknown = _optional(live, "numlookup_lookups_total", status="unknown", source="offline")
    invalid = _optional(live, "numlookup_lookups_total", status="invalid", source="offline")
    with live.client(creds) as client:
        response = client.post(SYNC, json={"numbers": ["+37251000001", "+358401234567", "12"]})
        assert response.status_code == 200
    assert httpx.post(live.url + SYNC, json={"numbers": ["+37251000001"]}).status_code == 401
    assert httpx.get(live.url + "/no-such-route").status_code == 404

    assert _requests(live, SYNC, "POST", "200") == before["200"] + 1
    assert _requests(live, SYNC, "POST", "401") == before["401"] + 1
    assert metric(live.url, "numlookup_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert metric(live.url, "numlookup_http_request_duration_seconds_count", route=SYNC) >= 2
    assert metric(live.url, "numlookup_lookups_total", status="unknown", source="offline") == unknown + 2
    assert metric(live.url, "numlookup_lookups_total", status="invalid", source="offline") == invalid + 1
    spent_now = metric(live.url, SPENT)
    assert spent_now.is_integer() and spent_now - spent == 2 * PRICE  # two valid numbers, in whole micro-credits
    assert metric(live.url, "numlookup_charge_batch_size_count") >= 1


def _requests(live: Live, route: str, method: str, status: str) -> float:
    return _optional(live, "numlookup_http_requests_total", route=route, method=method, status=status)


def _optional(live: Live, name: str, **labels: str) -> float:
    """A sample that may not exist yet (a counter with labels appears at its first use)."""
    try:
        return metric(live.url, name, **labels)
    except AssertionError:
        return 0.0


def test_every_worker_answers_for_the_whole_node(tmp_path: Path) -> None:
    """With two workers, any scrape counts the requests both served (multiprocess mode)."""
    for live in start_live(tmp_path / "two", workers=2):
        creds = live.account(credits="10")
        requests = 40
        for _ in range(requests):  # a new connection each: the kernel spreads them over the workers
            with live.client(creds) as client:
                assert client.post(SYNC, json={"numbers": ["+37251000001"]}).status_code == 200
        scrapes = {_requests(live, SYNC, "POST", "200") for _ in range(10)}
        assert scrapes == {requests}
        assert metric(live.url, "numlookup_charge_batch_size_count") == requests
        assert metric(live.url, SPENT) == requests * PRICE
