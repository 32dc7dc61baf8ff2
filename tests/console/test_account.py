"""The account holder's pages against a real server: figures that match the ledger, the API's own lookups and jobs.

Every page reads the session's account; what a page changes (a secret, the
allow-list, a lookup's charge, a job's reservation) is checked in the database
and through the API, and a refusal (a forged token, a typo, too few credits)
is checked to have changed nothing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from numlookup.accounts import NewCredentials, get_account, top_up
from numlookup.api.console.session import COOKIE, SALT
from numlookup.billing import format_amount, ledger_rows, parse_amount
from numlookup.store.console_key import session_key
from numlookup.store.tables import jobs
from numlookup.webhooks import keys
from tests.console.conftest import ADMIN_TOKEN, Console, csrf_token
from tests.e2e.conftest import Live, start_live
from tests.support import wait_for

ENV = {
    "NUMLOOKUP_ADMIN_TOKEN": ADMIN_TOKEN,
    "NUMLOOKUP_OFFLINE_PRICE": "0.01",
    "NUMLOOKUP_JOB_CHUNK_NUMBERS": "2",
    "NUMLOOKUP_JOB_POLL_SECONDS": "0.05",
    "NUMLOOKUP_MAX_NUMBERS_PER_REQUEST": "5",
}
PRICE = parse_amount("0.01")
NUMBERS = ["+37251000001", "+37251000002", "+372 5100 0001", "12345", "+37251000003", "not a number"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("console-account"), env=ENV)


def _sync(live: Live, creds: NewCredentials, numbers: list[str]) -> httpx.Response:
    return httpx.post(
        live.url + "/v1/hlr/sync", json={"numbers": numbers}, auth=(creds.api_username, creds.api_password), timeout=30
    )


def test_the_overview_shows_balance_reserved_spendable_and_prices(live: Live, console: Console) -> None:
    creds = live.account("3.5")
    console.login(creds)
    page = console.get("/console/account").text
    assert 'id="balance">3.5<' in page and 'id="reserved">0<' in page and 'id="spendable">3.5<' in page
    for charge_class in ("offline", "cache", "live"):
        assert f'<td>{charge_class}</td><td class="num">0.01</td>' in page
    for chosen in ("24h", "30d", "90d"):
        assert (
            f'data-src="/console/account/usage.json?range={chosen}"'
            in console.get(f"/console/account?range={chosen}").text
        )
    assert console.get("/console/account?range=1y").status_code == 400


def test_usage_json_sums_what_the_ledger_charged(live: Live, console: Console) -> None:
    creds = live.account()
    console.login(creds)
    assert _sync(live, creds, ["+37251000001", "+37251000002", "12345"]).status_code == 200
    assert _sync(live, creds, ["+37251000003", "+37251000003"]).status_code == 200
    account = get_account(live.engine, creds.name)
    charges = [row for row in ledger_rows(live.engine, account.id, None) if row.kind == "lookup"]
    for chosen, buckets in (("24h", 24), ("30d", 30), ("90d", 90)):
        answer = console.get(f"/console/account/usage.json?range={chosen}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        data = json.loads(answer.text, parse_float=Decimal)
        assert len(data["x"]) == buckets and data["bucket"] == ("hour" if chosen == "24h" else "day")
        series = data["series"]
        assert all(len(values) == buckets for values in series.values())
        assert sum(series["requests"]) == len(charges) == 2
        assert sum(series["offline"]) == sum(row.numbers for row in charges) == 3
        assert sum(series["invalid"]) == 1 and sum(series["cached"]) == sum(series["live"]) == 0
        assert sum(series["credits"]) == Decimal(format_amount(-sum(row.amount for row in charges))) == Decimal("0.03")
        last = series["invalid_share"][-1]
        assert last == 25  # one INVALID of four distinct numbers (a number twice counts once), all this bucket
    assert console.get("/console/account/usage.json?range=7d").status_code == 400


def test_the_ledger_pages_by_fifty_newest_first_and_exports_every_row_exactly(live: Live, console: Console) -> None:
    creds = live.account("1")
    for i in range(55):
        top_up(live.engine, creds.name, parse_amount("0.000001") * (i + 1), f"top-up {i}")
    account = get_account(live.engine, creds.name)
    rows = ledger_rows(live.engine, account.id, None)
    assert len(rows) == 56
    console.login(creds)
    first = console.get("/console/account/ledger").text
    ids = [int(cell) for cell in _column(first, 0)]
    assert ids == [row.id for row in rows[:50]]
    older = f"/console/account/ledger?before={rows[49].id}"
    assert f'href="{older}"' in first
    second = console.get(older).text
    assert [int(cell) for cell in _column(second, 0)] == [row.id for row in rows[50:]]
    assert "?before=" not in second.split('class="pager"', 1)[1]
    assert console.get("/console/account/ledger?before=abc").status_code == 400

    exported = console.get("/console/account/ledger.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(exported.text)))
    assert table[0] == ["id", "created_at", "kind", "amount", "numbers", "balance_after", "request_id", "note"]
    assert [(int(r[0]), r[3], r[5], r[7]) for r in table[1:]] == [
        (row.id, format_amount(row.amount), format_amount(row.balance_after), row.note or "") for row in rows
    ]
    assert table[1][3] == "0.000055" and table[-1][3] == "1"  # exact decimals, as the CLI prints them


def _column(page: str, index: int) -> list[str]:
    body = page.split('<table id="ledger">', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    rows = [row for row in body.split("<tr>")[1:]]
    return [row.split("<td")[index + 1].split(">", 1)[1].split("<", 1)[0] for row in rows]


def test_rotating_the_api_secret_shows_it_once_and_the_old_one_stops_at_once(live: Live, console: Console) -> None:
    creds = live.account()
    assert _sync(live, creds, ["+37251000001"]).status_code == 200  # the worker's cache now holds the account
    other = Console(live.url)
    other.login(creds)
    console.login(creds)
    answer = console.post("/console/account/security/secret", {}, token=console.token("/console/account/security"))
    assert answer.status_code == 200
    secret = answer.text.split('id="new-secret">', 1)[1].split("<", 1)[0]
    assert secret and secret != creds.api_password
    assert _sync(live, creds, ["+37251000001"]).status_code == 401  # at once: no wait for the cache's poll
    renewed = NewCredentials(creds.name, creds.api_username, secret)
    assert _sync(live, renewed, ["+37251000001"]).status_code == 200
    assert console.get("/console/account").status_code == 200  # the session that rotated it goes on
    assert other.get("/console/account").headers["location"].endswith("&m=ended")  # every other one ends
    assert secret not in console.get("/console/account/security").text  # shown once
    other.close()
    assert secret not in live.server.log_path.read_text()


def test_the_allow_list_is_validated_as_the_cli_does_and_a_typo_changes_nothing(live: Live, console: Console) -> None:
    creds = live.account()
    console.login(creds)
    before = get_account(live.engine, creds.name).allowed_networks
    token = console.token("/console/account/security")
    typo = console.post("/console/account/security/networks", {"networks": "127.0.0.1/32\n10.0.0.300/8"}, token=token)
    assert typo.status_code == 400
    assert "Nothing was saved: &#39;10.0.0.300/8&#39; is not a network in CIDR notation" in typo.text
    assert get_account(live.engine, creds.name).allowed_networks == before
    host_bits = console.post("/console/account/security/networks", {"networks": "127.0.0.1/8"}, token=token)
    assert host_bits.status_code == 400 and get_account(live.engine, creds.name).allowed_networks == before

    lock_out = console.post("/console/account/security/networks", {"networks": "192.0.2.0/24"}, token=token)
    assert lock_out.status_code == 400 and "does not admit your own address (127.0.0.1)" in lock_out.text
    assert get_account(live.engine, creds.name).allowed_networks == before

    saved = console.post(
        "/console/account/security/networks", {"networks": "127.0.0.0/8, 192.0.2.0/24\n2001:db8::/32"}, token=token
    )
    assert saved.headers["location"] == "/console/account/security?m=networks"
    assert get_account(live.engine, creds.name).allowed_networks == ("127.0.0.0/8", "192.0.2.0/24", "2001:db8::/32")
    assert _sync(live, creds, ["+37251000001"]).status_code == 200

    forged = console.post("/console/account/security/networks", {"networks": "0.0.0.0/0"}, token="forged")
    assert forged.status_code == 403
    assert get_account(live.engine, creds.name).allowed_networks == ("127.0.0.0/8", "192.0.2.0/24", "2001:db8::/32")

    console.post("/console/account/security/networks", {"networks": "192.0.2.0/24", "lock_out": "yes"}, token=token)
    assert _sync(live, creds, ["+37251000001"]).status_code == 401  # saved as asked: this address is refused
    assert console.get("/console/account").headers["location"].endswith("&m=ended")


def test_the_webhook_secret_is_shown_and_rotated_with_its_grace(live: Live, console: Console) -> None:
    creds = live.account()
    console.login(creds)
    page = console.get("/console/account/security").text
    account = get_account(live.engine, creds.name)
    current = keys.show(live.engine, account.id, datetime.now(UTC))
    assert f'id="webhook-secret">{current.secret}<' in page and 'id="webhook-grace"' not in page
    refused = console.post("/console/account/security/webhook", {}, token="forged")
    assert refused.status_code == 403
    assert keys.show(live.engine, account.id, datetime.now(UTC)).secret == current.secret
    rotated = console.post("/console/account/security/webhook", {}, token=csrf_token(page))
    assert rotated.status_code == 303
    after = keys.show(live.engine, account.id, datetime.now(UTC))
    assert after.secret != current.secret and after.previous_secret == current.secret
    shown = console.get(rotated.headers["location"]).text
    assert f'id="webhook-secret">{after.secret}<' in shown and 'id="webhook-grace"' in shown
    assert current.secret not in shown  # the old one is not shown again
    text = live.server.log_path.read_text()
    assert current.secret not in text and after.secret not in text and "whsec_" not in text


def test_the_lookup_box_answers_and_charges_exactly_as_the_api(live: Live, console: Console) -> None:
    creds = live.account("1")
    console.login(creds)
    form = console.get("/console/account/lookup").text
    key = form.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    fields = {"numbers": "+37251000001\n+37251000002, 12345", "idempotency_key": key, "csrf_token": csrf_token(form)}
    answer = console.http.post("/console/account/lookup", data=fields)
    assert answer.status_code == 200
    raw = json.loads(html.unescape(answer.text.split('<pre id="raw">', 1)[1].split("</pre>", 1)[0]))
    api = _sync(live, creds, ["+37251000001", "+37251000002", "12345"]).json()
    assert _without_times(raw) == _without_times(api)
    account = get_account(live.engine, creds.name)
    charges = [row for row in ledger_rows(live.engine, account.id, None) if row.kind == "lookup"]
    assert [(row.request_id, row.amount, row.numbers) for row in charges][-1] == (raw["request_id"], -2 * PRICE, 2)
    assert account.balance == parse_amount("1") - 4 * PRICE  # the console's lookup and the API's, 2 numbers each

    again = console.http.post("/console/account/lookup", data=fields)  # the same form sent twice
    assert again.status_code == 200 and raw["request_id"] in again.text
    assert get_account(live.engine, creds.name).balance == account.balance  # replayed, not charged again


def test_the_lookup_box_refuses_as_the_api_does_and_charges_nothing(live: Live, console: Console) -> None:
    poor = live.account("0.01")
    console.login(poor)
    token = console.token("/console/account/lookup")
    many = console.post("/console/account/lookup", {"numbers": "\n".join(["+37251000001"] * 6)}, token=token)
    assert many.status_code == 400 and "the request has 6, the limit is 5." in many.text  # the API's own words
    short = console.post("/console/account/lookup", {"numbers": "+37251000001\n+37251000002"}, token=token)
    assert short.status_code == 402 and "Not enough credits on the account" in short.text
    empty = console.post("/console/account/lookup", {"numbers": ""}, token=token)
    assert empty.status_code == 400
    forged = console.post("/console/account/lookup", {"numbers": "+37251000001"}, token="forged")
    assert forged.status_code == 403
    account = get_account(live.engine, poor.name)
    assert account.balance == parse_amount("0.01")
    assert [row.kind for row in ledger_rows(live.engine, account.id, None)] == ["credit"]


def _without_times(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A sync answer's results but their checkedAt (two lookups a moment apart)."""
    return [{k: v for k, v in result.items() if k != "checkedAt"} for result in body["result"]]


def _job_count(live: Live) -> int:
    with live.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def test_an_uploaded_job_runs_and_its_results_are_the_job_apis(live: Live, console: Console) -> None:
    creds = live.account("1")
    console.login(creds)
    token = console.token("/console/account/jobs")
    content = ("\n".join(NUMBERS) + "\n").encode()
    answer = console.http.post(
        "/console/account/jobs",
        data={"csrf_token": token, "friendly_name": "from the console"},
        files={"file": ("numbers.txt", content, "text/plain")},
    )
    assert answer.status_code == 303, answer.text
    page_path = answer.headers["location"]
    job_id = page_path.rsplit("/", 1)[1]
    page = console.get(page_path).text
    assert "from the console" in page and f'hx-get="/console/account/jobs/{job_id}/progress"' in page

    def done() -> bool:
        fragment = console.get(f"/console/account/jobs/{job_id}/progress").text
        return 'data-status="COMPLETED"' in fragment

    wait_for("the job to complete", done)
    fragment = console.get(f"/console/account/jobs/{job_id}/progress").text
    assert "hx-trigger" not in fragment  # a finished job is not polled any more
    assert 'id="job-charged">0.03<' in fragment
    with live.client(creds) as api:
        for fmt in ("csv", "jsonl"):
            mine = console.get(f"/console/account/jobs/{job_id}/results?format={fmt}")
            theirs = api.get(f"/v1/hlr/jobs/{job_id}/results?format={fmt}")
            assert mine.status_code == theirs.status_code == 200
            assert mine.content == theirs.content and mine.headers["content-type"] == theirs.headers["content-type"]
            assert mine.headers["content-security-policy"]
        assert api.get(f"/v1/hlr/jobs/{job_id}").json()["friendly_name"] == "from the console"
    assert job_id in console.get("/console/account/jobs").text
    ended = console.post(f"/console/account/jobs/{job_id}/stop", {}, token=csrf_token(page))
    assert ended.status_code == 409 and "COMPLETED" in ended.text
    assert get_account(live.engine, creds.name).balance == parse_amount("1") - 3 * PRICE

    intruder = live.account()
    other = Console(live.url)
    other.login(intruder)
    none = other.get("/console/account/jobs/J0000000000000000000000").text
    for path in ("", "/progress", "/results?format=csv"):
        refused = other.get(f"/console/account/jobs/{job_id}{path}")
        assert refused.status_code == 404 and "There is no job with that id on this account." in refused.text
    assert none.split("<main>", 1)[1] == refused.text.split("<main>", 1)[1]  # the same page as an id never made
    stop = other.post(f"/console/account/jobs/{job_id}/stop", {}, token=other.token("/console/account/jobs"))
    assert stop.status_code == 404
    other.close()
    with live.client(creds) as api:
        assert api.get(f"/v1/hlr/jobs/{job_id}").json()["status"] == "COMPLETED"  # the intruder changed nothing


def test_an_upload_the_credits_cannot_cover_is_refused_and_creates_nothing(live: Live, console: Console) -> None:
    poor = live.account("0.01")
    console.login(poor)
    token = console.token("/console/account/jobs")
    before = _job_count(live)
    answer = console.http.post(
        "/console/account/jobs",
        data={"csrf_token": token},
        files={"file": ("numbers.txt", b"+37251000001\n+37251000002\n", "text/plain")},
    )
    assert answer.status_code == 402 and "Not enough credits on the account: the job needs 0.02 reserved" in answer.text
    forged = console.http.post(
        "/console/account/jobs", data={"csrf_token": "forged"}, files={"file": ("n.txt", b"+37251000001\n")}
    )
    assert forged.status_code == 403
    missing = console.http.post("/console/account/jobs", data={"csrf_token": token})
    assert missing.status_code == 400 and "Choose a file" in missing.text
    bad_url = console.http.post(
        "/console/account/jobs",
        data={"csrf_token": token, "callback_url": "ftp://example.com/x"},
        files={"file": ("n.txt", b"+37251000001\n")},
    )
    assert bad_url.status_code == 400
    assert _job_count(live) == before
    assert get_account(live.engine, poor.name).reserved == 0


class _OldSigner(TimestampSigner):
    """Signs as if 13 hours ago: a cookie older than console_session_hours (12)."""

    def get_timestamp(self) -> int:
        return int(time.time() - timedelta(hours=13).total_seconds())


def test_an_expired_session_goes_back_to_the_login_page_saying_so(live: Live, console: Console) -> None:
    creds = live.account()
    console.login(creds)
    cookie = console.http.cookies[COOKIE]
    key = session_key(live.engine)
    payload = URLSafeTimedSerializer(key, salt=SALT).loads(cookie)
    old = URLSafeTimedSerializer(key, salt=SALT, signer=_OldSigner).dumps(payload)
    fresh = URLSafeTimedSerializer(key, salt=SALT).dumps(payload)
    console.http.cookies.clear()
    console.http.cookies.set(COOKIE, fresh, path="/console")
    assert console.get("/console/account").status_code == 200  # the key is the server's: a fresh copy works
    console.http.cookies.clear()
    console.http.cookies.set(COOKIE, old, path="/console")
    answer = console.get("/console/account")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/account&m=expired"
    assert "Your session expired; log in again." in console.get(answer.headers["location"]).text
    # Re-signed since (a rotation re-issues the cookie): the login's own time still ends it.
    resigned = URLSafeTimedSerializer(key, salt=SALT).dumps({**payload, "t": payload["t"] - 13 * 3600})
    console.http.cookies.clear()
    console.http.cookies.set(COOKIE, resigned, path="/console")
    assert console.get("/console/account").headers["location"].endswith("&m=expired")


def test_an_old_anonymous_cookie_is_no_session_not_an_expired_login(live: Live, console: Console) -> None:
    key = session_key(live.engine)
    token = console.token("/console/login")
    payload = URLSafeTimedSerializer(key, salt=SALT).loads(console.http.cookies[COOKIE])
    assert payload["k"] is None and payload["c"] == token
    console.http.cookies.clear()
    console.http.cookies.set(
        COOKIE, URLSafeTimedSerializer(key, salt=SALT, signer=_OldSigner).dumps(payload), path="/console"
    )
    page = console.get("/console/login")
    assert page.status_code == 200 and "expired" not in page.text
    assert csrf_token(page.text) != token  # a fresh anonymous session, its own token
    assert console.get("/console/account").headers["location"] == "/console/login?next=/console/account"


def test_a_cookie_naming_another_account_without_its_fingerprint_gets_nothing(live: Live, console: Console) -> None:
    mine, theirs = live.account(), live.account("7")
    console.login(mine)
    key = session_key(live.engine)
    payload = URLSafeTimedSerializer(key, salt=SALT).loads(console.http.cookies[COOKIE])
    payload["a"] = get_account(live.engine, theirs.name).id  # signed by the server's key, even
    console.http.cookies.clear()
    console.http.cookies.set(COOKIE, URLSafeTimedSerializer(key, salt=SALT).dumps(payload), path="/console")
    answer = console.get("/console/account")
    assert answer.status_code == 303 and answer.headers["location"].endswith("&m=ended")
    assert 'id="balance">7<' not in console.get("/console/login").text


def test_console_routes_with_ids_are_metered_by_their_template(live: Live, console: Console) -> None:
    console.login(live.account())
    console.get("/console/account/jobs/J1")
    console.get("/console/account/jobs/J2/progress")
    metrics = httpx.get(live.url + "/metrics").text
    assert 'route="/console/account/jobs/{job_id}"' in metrics
    assert 'route="/console/account/jobs/{job_id}/progress"' in metrics
    assert "J1" not in metrics and "J2" not in metrics


def test_the_console_spends_the_accounts_request_rate_as_the_api_does(tmp_path: Path) -> None:
    env = {**ENV, "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT": "0.001", "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT_BURST": "2"}
    for limited in start_live(tmp_path / "limited", env=env):
        creds = limited.account()
        console = Console(limited.url)
        try:
            console.login(creds)
            token = console.token("/console/account/lookup")
            assert console.post("/console/account/lookup", {"numbers": "+37251000001"}, token=token).status_code == 200
            assert _sync(limited, creds, ["+37251000001"]).status_code == 200  # the burst of two is spent
            refused = console.post("/console/account/lookup", {"numbers": "+37251000001"}, token=token)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            upload = console.http.post(
                "/console/account/jobs", data={"csrf_token": token}, files={"file": ("n.txt", b"+37251000001\n")}
            )
            assert upload.status_code == 429
            assert _sync(limited, creds, ["+37251000001"]).status_code == 429  # one allowance for both
        finally:
            console.close()
        account = get_account(limited.engine, creds.name)
        assert [row.kind for row in ledger_rows(limited.engine, account.id, None)].count("lookup") == 2
