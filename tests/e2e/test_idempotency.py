"""Idempotency-Key on POST /v1/hlr/sync, over real sockets: replays, 409 in flight (across nodes), 422, expiry.

The ledger is the judge: a replay must leave it as the first request did. The
request held in flight waits on a gated live source (``Peer(gate=…)``), so the
second request meets it running without any timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, update

from numlookup.accounts import NewCredentials, get_account
from numlookup.api.idempotency import IdempotencyStore
from numlookup.billing import add_credits, parse_amount
from numlookup.store.engine import write_transaction
from numlookup.store.tables import idempotency_keys, ledger
from tests.e2e.conftest import Live, start_live
from tests.peers.messente import Peer
from tests.support import Server

SYNC = "/v1/hlr/sync"
BODY = {"numbers": ["+37251000001", "+447712345678", "12345"]}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("idempotency"))


def post(client: httpx.Client, key: str | None, body: object = BODY) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(SYNC, content=json.dumps(body).encode(), headers=headers)


def charges(engine: Engine, creds: NewCredentials) -> list[str]:
    account_id = get_account(engine, creds.name).id
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.request_id).where(ledger.c.account_id == account_id, ledger.c.kind == "lookup")
            ).scalars()
        )


def test_a_retry_replays_the_response_and_charges_nothing_more(live: Live) -> None:
    creds = live.account(credits="1")
    with live.client(creds) as client:
        first = post(client, '"retry-1"')
        again = post(client, '"retry-1"')
        bare = post(client, "retry-1")  # the same key, unquoted
    assert first.status_code == 200, first.text
    request_id = first.json()["request_id"]
    for replay in (again, bare):
        assert replay.status_code == 200
        assert replay.content == first.content  # identical body, its request_id included
        assert replay.headers["x-request-id"] == request_id
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["content-type"] == "application/json"
    assert "idempotent-replayed" not in first.headers
    assert charges(live.engine, creds) == [request_id]  # one charge
    assert get_account(live.engine, creds.name).balance == parse_amount("1") - parse_amount("0.02")
    with live.engine.connect() as conn:  # the replay record went with the charge: same request
        stored = conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == "retry-1")).one()
    assert (stored.state, stored.request_id, stored.status) == ("done", request_id, 200)


def test_the_same_key_with_another_body_is_422(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        first = post(client, '"body-1"')
        other = post(client, '"body-1"', {"numbers": ["+37251000002"]})
        spaced = client.post(  # the same JSON spelt differently is another body: fingerprints cover the bytes
            SYNC,
            content=json.dumps(BODY, indent=1).encode(),
            headers={"Idempotency-Key": '"body-1"', "Content-Type": "application/json"},
        )
    assert first.status_code == 200
    for refused in (other, spaced):
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == 102
        assert "different request" in refused.json()["error"]["description"]
    assert len(charges(live.engine, creds)) == 1


def test_another_accounts_same_key_is_its_own(live: Live) -> None:
    one, two = live.account(), live.account()
    with live.client(one) as a, live.client(two) as b:
        first, second = post(a, '"shared"'), post(b, '"shared"')
        other_body = post(b, '"shared-2"', {"numbers": ["+37251000003"]})
        not_yours = post(a, '"shared-2"')  # two's key, one's different body: one's own fresh key
    assert first.status_code == second.status_code == other_body.status_code == not_yours.status_code == 200
    assert first.json()["request_id"] != second.json()["request_id"]
    assert len(charges(live.engine, one)) == 2 and len(charges(live.engine, two)) == 2


def test_errors_are_not_remembered(live: Live) -> None:
    creds = live.account(credits="0")
    with live.client(creds) as client:
        broke = post(client, '"topup"')
        assert broke.status_code == 402
        add_credits(live.engine, get_account(live.engine, creds.name).id, parse_amount("1"))
        paid = post(client, '"topup"')
        for _ in range(200):  # the worker's account cache learns of the top-up within account_refresh_seconds
            if paid.status_code != 402:
                break
            threading.Event().wait(0.05)
            paid = post(client, '"topup"')
        assert paid.status_code == 200, paid.text
        malformed = [post(client, key) for key in ('"open', "two words", '""', "x" * 300)]
        invalid_body = post(client, '"validation"', {"numbers": []})
        valid_after = post(client, '"validation"')
    for response in malformed:
        assert response.status_code == 400 and response.json()["error"]["code"] == 102
        assert "Idempotency-Key" in response.json()["error"]["description"]
    assert invalid_body.status_code == 400 and valid_after.status_code == 200
    assert len(charges(live.engine, creds)) == 2


def test_a_request_that_charges_nothing_replays_too(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        first = post(client, '"free"', {"numbers": ["12345"]})
        again = post(client, '"free"', {"numbers": ["12345"]})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert charges(live.engine, creds) == []


def test_keys_expire_after_the_ttl(live: Live) -> None:
    creds = live.account()
    account_id = get_account(live.engine, creds.name).id
    with live.client(creds) as client:
        first = post(client, '"old"')

        def expire() -> None:
            with write_transaction(live.engine) as conn:
                conn.execute(
                    update(idempotency_keys)
                    .where(idempotency_keys.c.account_id == account_id)
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )

        expire()
        fresh = post(client, '"old"', {"numbers": ["+37251000009"]})  # a new request: no 422, no replay
        expire()
        store = IdempotencyStore(live.engine, ttl=timedelta(hours=24), lease=timedelta(seconds=60))
        assert store.prune(datetime.now(UTC)) == 1
        assert store.prune(datetime.now(UTC)) == 0
        after = post(client, '"old"')
    assert first.status_code == fresh.status_code == after.status_code == 200
    assert "idempotent-replayed" not in fresh.headers and "idempotent-replayed" not in after.headers
    assert len({first.json()["request_id"], fresh.json()["request_id"], after.json()["request_id"]}) == 3
    assert len(charges(live.engine, creds)) == 3
    with live.engine.connect() as conn:
        [left] = conn.execute(select(idempotency_keys).where(idempotency_keys.c.account_id == account_id)).all()
    assert left.expires_at - left.created_at == timedelta(hours=24)  # the default idempotency_ttl_hours


def test_the_same_key_in_flight_is_409_on_every_node(tmp_path: Path) -> None:
    """The in-flight marker is in the database: a second node sees it as the first node's own worker does."""
    gate = threading.Event()
    peer = Peer(gate=gate).start()
    env = {
        "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "cc:372", "source": "peer"}]),
        "NUMLOOKUP_UPSTREAMS": json.dumps({"peer": {"url": peer.url, "username": "u", "password": "p", "timeout": 60}}),
        "NUMLOOKUP_LIVE_DEADLINE_SECONDS": "60",
        "NUMLOOKUP_IDEMPOTENCY_LEASE_SECONDS": "120",
    }
    data_dir = tmp_path / "nodes"
    gen = start_live(data_dir, env=env)
    a = next(gen)
    b = Server(data_dir, env=env).start()
    try:
        creds = a.account()
        results: list[httpx.Response] = []
        with (
            a.client(creds) as client_a,
            httpx.Client(base_url=b.url, auth=(creds.api_username, creds.api_password), timeout=90) as client_b,
        ):
            first = threading.Thread(target=lambda: results.append(post(client_a, '"in-flight"')))
            first.start()
            for _ in range(1200):
                if peer.requests:
                    break
                threading.Event().wait(0.05)
            assert peer.requests, "the first request never reached the live source"
            on_b = post(client_b, '"in-flight"')
            with a.client(creds) as other_a:
                on_a = post(other_a, '"in-flight"')
            gate.set()
            first.join(90)
            replay = post(client_b, '"in-flight"')
        [done] = results
        for busy in (on_a, on_b):
            assert busy.status_code == 409, busy.text
            assert busy.json()["error"]["code"] == 106 and busy.headers["retry-after"] == "1"
        assert done.status_code == 200
        assert replay.status_code == 200 and replay.content == done.content
        assert charges(a.engine, creds) == [done.json()["request_id"]]
        assert len(peer.requests) == 1  # the live source was asked once
    finally:
        gate.set()
        b.stop()
        gen.close()
        peer.stop()


def test_a_crashed_requests_key_is_free_after_its_lease(live: Live) -> None:
    """A request that died holding its key (no release, no response) blocks it only until its lease ends."""
    from numlookup.api.idempotency import fingerprint
    from numlookup.api.lookup import ROUTE

    creds = live.account()
    account_id = get_account(live.engine, creds.name).id
    now = datetime.now(UTC)
    body = json.dumps(BODY).encode()
    with write_transaction(live.engine) as conn:
        for key, lease_until in (("alive", now + timedelta(hours=1)), ("crashed", now - timedelta(seconds=1))):
            conn.execute(
                idempotency_keys.insert().values(
                    account_id=account_id,
                    key=key,
                    route=ROUTE,
                    fingerprint=fingerprint(ROUTE, body),
                    state="running",
                    token="a-dead-worker",
                    lease_until=lease_until,
                    created_at=now,
                    expires_at=now + timedelta(hours=24),
                )
            )
    with live.client(creds) as client:
        held, taken_over = post(client, '"alive"'), post(client, '"crashed"')
        replay = post(client, '"crashed"')
    assert held.status_code == 409
    assert taken_over.status_code == 200 and replay.content == taken_over.content
    assert charges(live.engine, creds) == [taken_over.json()["request_id"]]
