"""The operator's console pages against a real server over real sockets: who may see them, what they show, change.

One server for the module, with an admin token and a live source (a
Messente-shaped peer on 127.0.0.1 for Estonian numbers), so the pages have
traffic of every answer class, source usage and a breaker to show. The figures
a page shows are compared with the database the server writes (the ledger, the
source usage, the dataset catalogue, the nodes' heartbeats), and each refusal
(a missing, forged or another session's CSRF token, a bad amount, a taken name)
is checked to have changed nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from numlookup.accounts import NewCredentials, get_account, list_accounts
from numlookup.api.console.session import COOKIE, SALT
from numlookup.billing import ledger_rows, parse_amount
from numlookup.billing.money import format_amount
from numlookup.live import usage
from numlookup.store import nodes
from numlookup.store.console_key import session_key
from numlookup.store.tables import ledger
from tests.console.conftest import ADMIN_TOKEN, Console
from tests.e2e.conftest import Live, start_live
from tests.live_config import write_config
from tests.peers.messente import Peer

SYNC = "/v1/hlr/sync"
LIVE_NUMBER = "+37255512345"  # routed to the peer
OFFLINE_NUMBER = "+4915112345678"  # routed nowhere: the offline answer
INVALID = "+3721"
PAGES = [
    "/console/operator",
    "/console/operator/accounts",
    "/console/operator/sources",
    "/console/operator/data",
    "/console/operator/data/coverage",
    "/console/operator/nodes",
]
JSON_PAGES = ["/console/operator/traffic.json?range=24h", "/console/operator/traffic.json?range=90d"]
FORMS = {
    "/console/operator/accounts": {"name": "made-by-a-form", "credits": "1"},
    "/console/operator/accounts/top-up": {"name": "{name}", "amount": "1", "note": ""},
    "/console/operator/accounts/disable": {"name": "{name}"},
    "/console/operator/accounts/enable": {"name": "{name}"},
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass
class Site:
    live: Live
    peer: Peer


def operator_site(folder: Path) -> Iterator[Site]:
    """A server with the admin token and a live source for Estonian numbers (a Messente-shaped peer)."""
    with Peer(default_status="ONLINE") as peer:
        config = write_config(
            folder / "numlookup.toml",
            routes=[{"match": "cc:372", "source": "peer"}],
            upstreams={"peer": {"url": peer.url, "username": "u", "password": "p", "cost": "0.004", "currency": "EUR"}},
            price_offline="0.01",
            price_cache="0.002",
            price_live="0.05",
        )
        env = {
            "NUMLOOKUP_CONFIG": str(config),
            "NUMLOOKUP_ADMIN_TOKEN": ADMIN_TOKEN,
            "NUMLOOKUP_ACCOUNT_REFRESH_SECONDS": "30",  # a change is seen at once only if the route says so
            "NUMLOOKUP_LOG_FORMAT": "json",
        }
        generator = start_live(folder, env=env)
        live = next(generator)
        try:
            yield Site(live, peer)
        finally:
            generator.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from operator_site(tmp_path_factory.mktemp("operator"))


@pytest.fixture
def live(site: Site) -> Live:
    return site.live


@pytest.fixture
def operator(live: Live) -> Iterator[Console]:
    console = Console(live.url)
    console.operator_login()
    yield console
    console.close()


def lookup(live: Live, creds: NewCredentials, numbers: list[str], **extra: object) -> httpx.Response:
    answer = httpx.post(
        live.url + SYNC, json={"numbers": numbers, **extra}, auth=(creds.api_username, creds.api_password), timeout=30
    )
    return answer


State = tuple[list[Any], dict[str, list[Any]]]


def everything(live: Live) -> State:
    """What an operator's POST could change: every account and every ledger row."""
    found = list_accounts(live.engine)
    return found, {a.name: ledger_rows(live.engine, a.id, None) for a in found}


def send(console: Console, path: str, fields: dict[str, str]) -> httpx.Response:
    """A form POST as the accounts page's forms send it, with that page's CSRF token."""
    return console.post(path, fields, token=console.token("/console/operator/accounts"))


def cell(html: str, row: str, column: int) -> str:
    """The text of the ``column``-th cell of the table row carrying the ``data-…="row"`` attribute."""
    found = re.search(rf'<tr data-[a-z]+="{re.escape(row)}">(.*?)</tr>', html, re.S)
    assert found, f"no row {row!r} in:\n{html}"
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", found.group(1), re.S)
    return re.sub(r"<[^>]+>", "", cells[column]).strip()


# ------------------------------------------------------------------------------------------ who may see what


def test_without_a_session_every_operator_page_sends_to_the_operator_login(live: Live) -> None:
    with closing(Console(live.url)) as console:
        for path in [*PAGES, *JSON_PAGES]:
            answer = console.get(path)
            assert answer.status_code == 303, path
            bare = path.split("?")[0]
            assert answer.headers["location"] == f"/console/operator/login?next={bare}", path
        for path, fields in FORMS.items():
            before = everything(live)
            answer = console.post(path, fields, token="")
            assert answer.status_code in (303, 403), path
            assert everything(live) == before


def test_an_account_holder_gets_403_on_every_operator_page(live: Live) -> None:
    creds = live.account("3")
    with closing(Console(live.url)) as console:
        console.login(creds)
        for path in [*PAGES, *JSON_PAGES]:
            answer = console.get(path)
            assert answer.status_code == 403, path
            assert "This page is not part of an account holder's console." in unescape(answer.text)
            assert answer.headers["content-security-policy"] == CSP
        token = console.token("/console/account")
        for path, fields in FORMS.items():
            before = everything(live)
            answer = console.post(path, {k: v.replace("{name}", creds.name) for k, v in fields.items()}, token=token)
            assert answer.status_code == 403, path
            assert everything(live) == before


def test_every_operator_page_answers_with_the_consoles_headers(operator: Console) -> None:
    for path in [*PAGES, *JSON_PAGES]:
        answer = operator.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-request-id"]
        if "json" not in path:
            assert "<script>" not in answer.text and " style=" not in answer.text and " onclick" not in answer.text
    assert operator.get("/console/operator/traffic.json?range=7d").status_code == 400


def test_a_forged_cookie_opens_no_operator_page(live: Live) -> None:
    """A cookie not signed with the server's key, in place of the operator's good one, sends to the login."""
    with closing(Console(live.url)) as console:
        console.operator_login()
        assert console.get("/console/operator").status_code == 200
        console.http.cookies.set("numlookup_console", "forged." + "x" * 40, domain="127.0.0.1", path="/console")
        answer = console.get("/console/operator/accounts")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/operator/login")


class _ThirteenHoursAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time() - 13 * 3600)


def test_an_expired_operator_session_is_sent_to_log_in_again(live: Live) -> None:
    """The operator's cookie re-signed 13 hours ago (``console_session_hours`` is 12) opens nothing."""
    with closing(Console(live.url)) as console:
        console.operator_login()
        key = session_key(live.engine)
        payload = URLSafeTimedSerializer(key, salt=SALT).loads(console.http.cookies[COOKIE])
        old = URLSafeTimedSerializer(key, salt=SALT, signer=_ThirteenHoursAgo).dumps(payload)
        console.http.cookies.clear()
        console.http.cookies.set(COOKIE, old, domain="127.0.0.1", path="/console")
        answer = console.get("/console/operator/accounts")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/operator/login?next=/console/operator/accounts&m=expired"
        assert "Your session expired; log in again." in console.get(answer.headers["location"]).text


def test_the_metrics_name_operator_routes_by_their_template(live: Live, operator: Console) -> None:
    assert operator.get("/console/operator/nodes").status_code == 200
    text = httpx.get(live.url + "/metrics", timeout=30).text
    assert 'numlookup_http_requests_total{method="GET",route="/console/operator/nodes",status="200"}' in text


# ------------------------------------------------------------------------------------------ traffic


def ledger_sums(live: Live, since: datetime) -> dict[str, int]:
    """Sums over every charge row (lookup and job) since ``since``: what the traffic chart must add up to."""
    charges = ledger.c.kind.in_(("lookup", "job")) & (ledger.c.created_at >= since)
    with live.engine.connect() as conn:
        row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(-ledger.c.amount), 0),
                *(func.coalesce(func.sum(ledger.c[c]), 0) for c in ("offline", "cached", "live", "invalid")),
            ).where(charges)
        ).one()
    return dict(zip(("requests", "credits", "offline", "cached", "live", "invalid"), map(int, row), strict=True))


def test_traffic_is_the_ledgers_sums_by_answer_class(live: Live, operator: Console) -> None:
    creds = live.account("10")
    assert lookup(live, creds, [LIVE_NUMBER, OFFLINE_NUMBER, INVALID], max_age=0).status_code == 200
    assert lookup(live, creds, [LIVE_NUMBER]).status_code == 200  # from the live cache
    assert lookup(live, creds, [OFFLINE_NUMBER]).status_code == 200
    for name, buckets in (("24h", 24), ("30d", 30), ("90d", 90)):
        data = json.loads(operator.get(f"/console/operator/traffic.json?range={name}").text, parse_float=Decimal)
        assert (data["range"], len(data["x"])) == (name, buckets)
        series = data["series"]
        drawn = {k: sum(series[k]) for k in ("requests", "offline", "cached", "live", "invalid")}
        drawn["credits"] = sum(series["credits_micros"])
        assert drawn == ledger_sums(live, datetime.fromtimestamp(data["x"][0], UTC))
        assert [parse_amount(str(c)) for c in series["credits"]] == series["credits_micros"]  # exact decimals
    charges = [r for r in ledger_rows(live.engine, get_account(live.engine, creds.name).id, None) if r.kind == "lookup"]
    assert len(charges) == 3
    with live.engine.connect() as conn:
        classes = conn.execute(
            select(*(func.sum(ledger.c[c]) for c in ("offline", "cached", "live", "invalid"))).where(
                ledger.c.id.in_([r.id for r in charges])
            )
        ).one()
    assert tuple(classes) == (2, 1, 1, 1)
    home = operator.get("/console/operator?range=24h").text
    assert 'data-src="/console/operator/traffic.json?range=24h"' in home
    day = json.loads(operator.get("/console/operator/traffic.json?range=24h").text)
    sums = ledger_sums(live, datetime.fromtimestamp(day["x"][0], UTC))
    figures = dict(re.findall(r'id="total-([a-z]+)">([^<]*)<', home))
    assert figures == {
        "requests": str(sums["requests"]),
        "numbers": str(sums["offline"] + sums["cached"] + sums["live"]),
        "invalid": str(sums["invalid"]),
        "credits": format_amount(sums["credits"]),
    }
    spent = -sum(r.amount for r in charges)
    assert spent == 2 * parse_amount("0.01") + parse_amount("0.002") + parse_amount("0.05")
    top = re.search(r'<table id="top-accounts">(.*?)</table>', home, re.S)
    assert top
    assert [cell(top.group(1), creds.name, i) for i in range(4)] == [creds.name, "3", "4", format_amount(spent)]


# ------------------------------------------------------------------------------------------ accounts


def test_create_shows_the_credentials_once_and_they_work(live: Live, operator: Console) -> None:
    answer = operator.post("/console/operator/accounts", {"name": "acme corp", "credits": "2.000001"})
    assert answer.status_code == 201, answer.text
    username = re.search(r'id="api-username">([^<]+)<', answer.text)
    password = re.search(r'id="api-password"[^>]*>([^<]+)<', answer.text)
    assert username and password
    account = get_account(live.engine, "acme corp")
    assert account.api_username == username.group(1) and account.balance == parse_amount("2.000001")
    creds = NewCredentials("acme corp", username.group(1), password.group(1))
    assert lookup(live, creds, [OFFLINE_NUMBER]).status_code == 200
    listing = operator.get("/console/operator/accounts").text
    assert password.group(1) not in listing
    assert cell(listing, "acme corp", 1) == "1.990001"  # the balance after one offline lookup
    assert cell(listing, "acme corp", 5) != "–"  # its last activity


def test_top_up_books_the_exact_amount_with_its_note(live: Live, operator: Console) -> None:
    creds = live.account("0.5")
    answer = send(
        operator,
        "/console/operator/accounts/top-up",
        {"name": creds.name, "amount": "0.000001", "note": "trial credit"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/operator/accounts?done=top-up"
    page = operator.get(answer.headers["location"]).text
    assert "Credits added." in page
    assert cell(page, creds.name, 1) == "0.500001" and cell(page, creds.name, 3) == "0.500001"
    [row, _] = ledger_rows(live.engine, get_account(live.engine, creds.name).id, None)
    assert (row.kind, row.amount, row.note, row.balance_after) == (
        "credit",
        1,
        "trial credit",
        parse_amount("0.500001"),
    )


def test_disable_refuses_the_api_at_once_and_enable_lets_it_back(live: Live, operator: Console) -> None:
    creds = live.account("1")
    assert lookup(live, creds, [OFFLINE_NUMBER]).status_code == 200
    answer = send(operator, "/console/operator/accounts/disable", {"name": creds.name})
    assert answer.status_code == 303
    assert "its API requests are refused" in operator.get(answer.headers["location"]).text
    assert lookup(live, creds, [OFFLINE_NUMBER]).status_code == 401  # this worker's cache was told
    assert cell(operator.get("/console/operator/accounts").text, creds.name, 4) == "no"
    assert send(operator, "/console/operator/accounts/enable", {"name": creds.name}).status_code == 303
    assert lookup(live, creds, [OFFLINE_NUMBER]).status_code == 200


@pytest.mark.parametrize(
    ("path", "fields", "sentence"),
    [
        ("/console/operator/accounts", {"name": "{name}", "credits": "1"}, "An account named '{name}' exists already."),
        ("/console/operator/accounts", {"name": "", "credits": "1"}, "An account needs a name."),
        (
            "/console/operator/accounts",
            {"name": "new one", "credits": "0.0000001"},
            "1E-7 has more than 6 decimal places.",  # the money module's words, as the admin API says them
        ),
        ("/console/operator/accounts", {"name": "new one", "credits": "1,5"}, "'1,5' is not a decimal number."),
        ("/console/operator/accounts/top-up", {"name": "{name}", "amount": "-2", "note": ""}, "-2 is negative."),
        (
            "/console/operator/accounts/top-up",
            {"name": "{name}", "amount": "0", "note": ""},
            "A top-up must be more than zero.",
        ),
        (
            "/console/operator/accounts/top-up",
            {"name": "{name}", "amount": "NaN", "note": ""},
            "NaN is not a finite amount.",
        ),
        (
            "/console/operator/accounts/top-up",
            {"name": "nobody", "amount": "1", "note": ""},
            "There is no account named 'nobody'.",
        ),
        ("/console/operator/accounts/disable", {"name": "nobody"}, "There is no account named 'nobody'."),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(
    live: Live, operator: Console, path: str, fields: dict[str, str], sentence: str
) -> None:
    creds = live.account("4")
    filled = {k: v.replace("{name}", creds.name) for k, v in fields.items()}
    before = everything(live)
    answer = send(operator, path, filled)
    assert answer.status_code == 400, answer.text
    assert sentence.replace("{name}", creds.name) in unescape(answer.text)
    assert '<table id="accounts">' in answer.text  # the list, as it still is
    assert everything(live) == before


def test_every_form_without_its_sessions_token_changes_nothing(live: Live, operator: Console) -> None:
    creds = live.account("2")
    with closing(Console(live.url)) as other:
        other.operator_login()
        stolen = other.token("/console/operator/accounts")
    for path, fields in FORMS.items():
        filled = {k: v.replace("{name}", creds.name) for k, v in fields.items()}
        for token in ("", "forged-token", stolen):
            before = everything(live)
            answer = operator.post(path, filled, token=token)
            assert answer.status_code == 403, (path, token)
            assert "nothing was changed" in answer.text
            assert everything(live) == before
        before = everything(live)
        assert operator.http.post(path, data=filled).status_code == 403  # no field at all
        assert everything(live) == before


# ------------------------------------------------------------------------------------------ sources, data, nodes


def test_sources_show_this_workers_breaker_and_the_stored_usage(live: Live, operator: Console) -> None:
    creds = live.account("5")
    assert lookup(live, creds, [LIVE_NUMBER], max_age=0).status_code == 200
    page = operator.get("/console/operator/sources").text
    assert "this server process's own" in page
    assert cell(page, "upstream:peer", 1) == "messente" and cell(page, "upstream:peer", 2) == "closed"
    assert int(cell(page, "upstream:peer", 3)) >= 1  # requests ok, this worker's
    assert cell(page, "upstream:peer", 7).endswith(" ms")
    [stored] = [
        d for d in usage.read(live.engine, datetime.now(UTC).date() - timedelta(days=29)) if d.source == "upstream:peer"
    ]
    totals = re.search(r'<table id="sources-totals">(.*?)</table>', page, re.S)
    assert totals
    row = cell(totals.group(1), "upstream:peer", 0)
    assert row == "upstream:peer"
    values = [cell(totals.group(1), "upstream:peer", i) for i in range(1, 9)]
    answered_share = (2000 * stored.answered + stored.numbers) // (2 * stored.numbers)
    assert values == [
        str(stored.queries),
        str(stored.numbers),
        str(stored.answered),
        f"{answered_share // 10}.{answered_share % 10}%",
        str(stored.failures),
        f"{format_amount(stored.cost_micros)} EUR",
        format_amount(stored.credits_micros),
        format_amount(stored.credits_micros - stored.cost_micros),
    ]


def test_data_lists_the_imports_and_the_coverage_computed_once(live: Live, operator: Console) -> None:
    ranges = b"prefix,mccmnc\n+3725551,24801\n"
    imported = httpx.post(
        live.url + "/admin/v1/datasets/ranges",
        content=ranges,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    )
    assert imported.status_code == 200, imported.text
    page = operator.get("/console/operator/data").text
    table = re.search(r'<table id="datasets">(.*?)</table>', page, re.S)
    assert table and "<strong>active</strong>" in table.group(1) and "http upload" in table.group(1)
    deadline = time.monotonic() + 300  # computed once, in the worker's CPU process: seconds of CPU
    fragment = operator.get("/console/operator/data/coverage").text
    while 'id="coverage-table"' not in fragment and time.monotonic() < deadline:
        assert 'hx-get="/console/operator/data/coverage"' in fragment  # the placeholder polls
        time.sleep(0.5)
        fragment = operator.get("/console/operator/data/coverage").text
    assert cell(fragment, "EE", 1) == "Estonia"
    assert cell(fragment, "total", 0) == "All regions"
    assert 'id="coverage-table"' in operator.get("/console/operator/data").text  # now part of the page itself


def test_nodes_show_this_worker_ready_and_others_as_their_heartbeats_say(live: Live, operator: Console) -> None:
    now = datetime.now(UTC)
    gone = nodes.Identity("elsewhere:41:aa", "elsewhere", 41, now - timedelta(minutes=30), "0.0.9")
    nodes.beat(live.engine, gone, ready=True, requests=7, now=now - timedelta(minutes=5))  # its last beat
    starting = nodes.Identity("elsewhere:42:bb", "elsewhere", 42, now, "0.1.0")
    nodes.beat(live.engine, starting, ready=False, requests=0, now=now)
    long_gone = nodes.Identity("elsewhere:40:cc", "elsewhere", 40, now - timedelta(hours=3), "0.0.9")
    nodes.beat(live.engine, long_gone, ready=True, requests=1, now=now - timedelta(hours=2))  # outside the hour
    page = operator.get("/console/operator/nodes").text
    found = re.findall(r'<tr data-node="([^"]+)">', page)
    assert "elsewhere:40:cc" not in found
    assert cell(page, "elsewhere:41:aa", 5) == "stale" and cell(page, "elsewhere:41:aa", 6) == "7"
    assert cell(page, "elsewhere:42:bb", 5) == "not ready"
    mine = [n for n in found if not n.startswith("elsewhere:")]
    assert len(mine) == 1 and cell(page, mine[0], 5) == "ready (this worker)"


def test_no_secret_reaches_the_log(live: Live, operator: Console) -> None:
    answer = operator.post("/console/operator/accounts", {"name": "secretive", "credits": "1"})
    password = re.search(r'id="api-password"[^>]*>([^<]+)<', answer.text)
    assert password
    log = live.server.log_path.read_text()
    assert ADMIN_TOKEN not in log and password.group(1) not in log
    assert "/console/operator/accounts" in log  # the console's requests are in the request log
