"""The admin API against a running server over real sockets: every route, every refusal, the money they move.

The server's account cache polls every 30 s here (``account_refresh_seconds``),
far beyond any test: a change an admin request makes is seen by the lookups that
follow at once only because the route lets its own worker's cache know. Each
refusal is checked to have changed nothing: the accounts, every ledger row and
the dataset versions are compared before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from numlookup.accounts import Account, NewCredentials, get_account, list_accounts
from numlookup.api.admin import ROUTES
from numlookup.billing import ledger_rows
from numlookup.billing.ledger import LedgerRow
from numlookup.datasets import catalog
from tests.e2e.conftest import Live, start_live
from tests.e2e.ledger import ledger_total

TOKEN = "admin-token-for-tests-3f9c1d"
CHALLENGE = 'Bearer realm="numlookup-admin"'
SYNC = "/v1/hlr/sync"
ESTONIA = "+37251000001"
PREFIX = "/admin/v1"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(
        tmp_path_factory.mktemp("admin"),
        env={
            "NUMLOOKUP_ADMIN_TOKEN": TOKEN,
            "NUMLOOKUP_ACCOUNT_REFRESH_SECONDS": "30",
            "NUMLOOKUP_RATE_LIMIT_PER_IP": "0",
            "NUMLOOKUP_AUTH_FAILURE_LIMIT": "0",  # this module sends wrong tokens on purpose
        },
    )


@pytest.fixture
def admin(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        yield client


def lookup(live: Live, username: str, password: str, numbers: list[str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{live.url}{SYNC}", json={"numbers": numbers or [ESTONIA]}, auth=(username, password), timeout=30
    )


def assert_error(response: httpx.Response, http_status: int, code: int) -> str:
    """The wire's error body, both shapes, JSON, a request id; returns the description."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"] == "application/json"
    uuid.UUID(response.headers["x-request-id"])
    body = response.json()
    assert set(body) == {"error", "errors"} and body["errors"] == [{"error": body["error"]}]
    assert body["error"]["code"] == code
    return str(body["error"]["description"])


State = tuple[list[Account], dict[str, list[LedgerRow]], list[Any]]


def state(live: Live) -> State:
    """Everything an admin request could change: accounts, every ledger row, dataset versions."""
    found = list_accounts(live.engine)
    return found, {a.name: ledger_rows(live.engine, a.id, None) for a in found}, catalog.all_versions(live.engine)


def every_route(name: str) -> list[tuple[str, str, Any]]:
    """One well-formed request per admin route, on the account ``name``: (method, path, JSON body or raw file)."""
    account = f"{PREFIX}/accounts/{name}"
    return [
        ("GET", f"{PREFIX}/accounts", None),
        ("POST", f"{PREFIX}/accounts", {"name": f"made-by-{name}", "credits": "1"}),
        ("GET", account, None),
        ("POST", f"{account}/disable", None),
        ("POST", f"{account}/enable", None),
        ("PUT", f"{account}/price", {"price": "0.5"}),
        ("PUT", f"{account}/status-style", {"status_style": "onoff"}),
        ("POST", f"{account}/allowed-networks", {"cidr": "10.9.0.0/16"}),
        ("DELETE", f"{account}/allowed-networks?cidr=0.0.0.0/0", None),
        ("POST", f"{account}/rotate-secret", None),
        ("POST", f"{account}/credits", {"amount": "5", "note": "top-up"}),
        ("POST", f"{account}/adjustments", {"amount": "-1", "note": "correction"}),
        ("GET", f"{account}/ledger", None),
        ("POST", f"{PREFIX}/datasets/ranges?delta=1", b"action,prefix,mccmnc\nadd,3725199,24805\n"),
    ]


def send(
    client: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    if isinstance(body, bytes):
        return client.request(method, path, content=body, headers=headers)
    return client.request(method, path, json=body, headers=headers)


def template(path: str, name: str) -> str:
    return path.split("?")[0].replace(f"/accounts/{name}", "/accounts/{name}").replace("/ranges", "/{kind}")


# ---------------------------------------------------------------- authentication


def test_the_route_list_here_is_every_admin_route(live: Live) -> None:
    """So the tests below, which walk it, cover every route the server has and the document lists."""
    ours = {(method, template(path, "x")) for method, path, _ in every_route("x")}
    served = {(method, route.path) for route in ROUTES for method in route.methods or () if method != "HEAD"}
    document = httpx.get(f"{live.url}/openapi.json").json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() if path.startswith(PREFIX) for method in item
    }
    assert ours == served == documented


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        "Bearer",
        f"Bearer {TOKEN[:-1]}",
    ],
    ids=["none", "wrong", "longer", "basic-scheme", "other-scheme", "empty", "shorter"],
)
def test_every_route_refuses_a_missing_or_wrong_token_with_a_bearer_challenge(
    live: Live, authorization: str | None
) -> None:
    creds = live.account(credits="3")
    before = state(live)
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for method, path, body in every_route(creds.name):
            response = send(client, method, path, body, headers)
            assert "admin_token" in assert_error(response, 401, 101), (method, path)
            assert response.headers["www-authenticate"] == CHALLENGE
    assert state(live) == before


def test_with_admin_token_unset_every_admin_route_says_the_api_is_disabled(tmp_path: Path) -> None:
    for off in start_live(tmp_path / "off"):
        creds = off.account(credits="3")
        before = state(off)
        with httpx.Client(base_url=off.url, timeout=30) as client:
            for token in (None, TOKEN):
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                for method, path, body in every_route(creds.name):
                    response = send(client, method, path, body, headers)
                    assert assert_error(response, 404, 102) == "admin API disabled: set admin_token", (method, path)
            document = client.get("/openapi.json").json()
        assert not [path for path in document["paths"] if path.startswith("/admin/")]
        assert set(document["components"]["securitySchemes"]) == {"basicAuth"}
        assert state(off) == before
        assert lookup(off, creds.api_username, creds.api_password).status_code == 200


def test_every_route_answers_the_right_token(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="3")
    for method, path, body in every_route(creds.name):
        response = send(admin, method, path, body)
        assert response.status_code in (200, 201), (method, path, response.text)
        assert response.headers["content-type"] == "application/json"


def test_the_document_declares_the_bearer_scheme_but_never_the_token(live: Live) -> None:
    raw = httpx.get(f"{live.url}/openapi.json").text
    assert TOKEN not in raw
    document = httpx.get(f"{live.url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The server's admin_token setting.",
    }
    for path, item in document["paths"].items():
        if path.startswith(PREFIX):
            for operation in item.values():
                assert operation["security"] == [{"adminToken": []}]
                challenge = operation["responses"]["401"]["headers"]["WWW-Authenticate"]
                assert challenge["schema"] == {"const": CHALLENGE}


# ---------------------------------------------------------------- accounts


def test_an_account_created_over_http_looks_up_at_once(live: Live, admin: httpx.Client) -> None:
    response = admin.post(
        f"{PREFIX}/accounts",
        json={
            "name": "  shop-http  ",
            "credits": "2.5",
            "allowed_networks": ["127.0.0.0/8", "::1/128", "127.0.0.0/8"],
            "status_style": "truefalse",
            "price": "0.002",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{PREFIX}/accounts/shop-http"
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    account = created["account"]
    assert account | {"created_at": None} == {
        "name": "shop-http",
        "api_username": account["api_username"],
        "enabled": True,
        "balance": "2.5",
        "price": "0.002",
        "status_style": "truefalse",
        "allowed_networks": ["127.0.0.0/8", "::1/128"],
        "created_at": None,
    }
    stored = get_account(live.engine, "shop-http")
    assert (stored.api_username, stored.balance, stored.price) == (account["api_username"], 2_500_000, 2_000)
    answer = lookup(live, account["api_username"], created["api_password"])
    assert answer.status_code == 200, answer.text
    assert get_account(live.engine, "shop-http").balance == 2_500_000 - 2_000
    assert admin.get(f"{PREFIX}/accounts/shop-http").json()["balance"] == "2.498"
    listed = admin.get(f"{PREFIX}/accounts").json()["accounts"]
    assert [a["name"] for a in listed] == sorted(a.name for a in list_accounts(live.engine))
    assert "shop-http" in [a["name"] for a in listed]
    assert all("api_password" not in a and "secret" not in str(a) for a in listed)


def test_create_defaults_to_everyone_no_credits_and_the_server_defaults(admin: httpx.Client) -> None:
    response = admin.post(f"{PREFIX}/accounts", json={"name": "plain-http"})
    assert response.status_code == 201, response.text
    account = response.json()["account"]
    assert (account["balance"], account["price"], account["status_style"], account["allowed_networks"]) == (
        "0",
        None,
        None,
        ["0.0.0.0/0", "::/0"],
    )


def test_any_text_is_a_name_and_its_location_is_percent_encoded(admin: httpx.Client) -> None:
    """A header is Latin-1: the Location of a name beyond it is percent-encoded, and leads to the account."""
    response = admin.post(f"{PREFIX}/accounts", json={"name": "Zürich ☎ 東京"})
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location == f"{PREFIX}/accounts/Z%C3%BCrich%20%E2%98%8E%20%E6%9D%B1%E4%BA%AC"
    assert admin.get(location).json()["name"] == "Zürich ☎ 東京"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "   "}, "name"),
        ({"name": "c1\u0085control"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({}, "name"),
        ({"name": "ok", "credits": "-1"}, "credits"),
        ({"name": "ok", "credits": "0.0000001"}, "credits"),
        ({"name": "ok", "credits": 5}, "credits"),
        ({"name": "ok", "price": "cheap"}, "price"),
        ({"name": "ok", "allowed_networks": ["10.0.0.1/8"]}, "host bits"),
        ({"name": "ok", "allowed_networks": ["999.0.0.0/8"]}, "not a network"),
        ({"name": "ok", "allowed_networks": "0.0.0.0/0"}, "allowed_networks"),
        ({"name": "ok", "status_style": "loud"}, "status_style"),
        ({"name": "ok", "alowed_networks": ["10.0.0.0/8"]}, "alowed_networks"),
    ],
)
def test_create_refuses_bad_input_with_400_and_makes_nothing(
    live: Live, admin: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    before = state(live)
    assert fragment in assert_error(admin.post(f"{PREFIX}/accounts", json=body), 400, 102)
    assert state(live) == before


def test_bodies_must_be_json_objects(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    before = state(live)
    price = f"{PREFIX}/accounts/{creds.name}/price"
    cases = [
        admin.put(price, content=b'{"price": "1"}', headers={"Content-Type": "text/plain"}),
        admin.put(price, content=b"", headers={"Content-Type": "application/json"}),
        admin.put(price, content=b"{price: 1}", headers={"Content-Type": "application/json"}),
        admin.put(price, json=["1"]),
        admin.put(price, json={}),  # the key is required: null is the way back to the default
    ]
    for response in cases:
        assert_error(response, 400, 102)
    assert state(live) == before


def test_a_taken_name_is_409_and_changes_nothing(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    before = state(live)
    assert "exists already" in assert_error(admin.post(f"{PREFIX}/accounts", json={"name": creds.name}), 409, 102)
    assert state(live) == before


def test_an_unknown_account_is_404_naming_it_on_every_route(live: Live, admin: httpx.Client) -> None:
    before = state(live)
    for method, path, body in every_route("nobody-here"):
        if "/accounts/nobody-here" not in path:
            continue
        response = send(admin, method, path, body)
        assert assert_error(response, 404, 102) == "There is no account named 'nobody-here'.", (method, path)
    # A NUL cannot be in a name (PostgreSQL refuses it in text): unknown, not a server error.
    assert_error(admin.get(f"{PREFIX}/accounts/a%00b"), 404, 102)
    assert state(live) == before


def test_disable_and_enable_take_effect_at_once(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200  # now cached by the worker
    off = admin.post(f"{PREFIX}/accounts/{creds.name}/disable")
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert_error(lookup(live, creds.api_username, creds.api_password), 401, 101)
    on = admin.post(f"{PREFIX}/accounts/{creds.name}/enable")
    assert on.status_code == 200 and on.json()["enabled"] is True
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200


def test_price_and_style_set_and_back_to_default(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    account = f"{PREFIX}/accounts/{creds.name}"
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200
    assert admin.put(f"{account}/price", json={"price": "0.25"}).json()["price"] == "0.25"
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200
    charged = [r.amount for r in ledger_rows(live.engine, get_account(live.engine, creds.name).id, 2)]
    assert charged == [-250_000, -10_000]  # the new price, at once; the default before it
    assert admin.put(f"{account}/price", json={"price": None}).json()["price"] is None
    assert admin.put(f"{account}/status-style", json={"status_style": "onoff"}).json()["status_style"] == "onoff"
    assert get_account(live.engine, creds.name).status_style == "onoff"
    assert admin.put(f"{account}/status-style", json={"status_style": None}).json()["status_style"] is None
    before = state(live)
    assert "status_style" in assert_error(
        admin.put(f"{account}/status-style", json={"status_style": "yesno"}), 400, 102
    )
    assert "price" in assert_error(admin.put(f"{account}/price", json={"price": "-1"}), 400, 102)
    assert state(live) == before


def test_allow_list_add_and_remove_take_effect_at_once(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1", allow=["192.0.2.0/24"])
    networks = f"{PREFIX}/accounts/{creds.name}/allowed-networks"
    assert_error(lookup(live, creds.api_username, creds.api_password), 401, 101)
    added = admin.post(networks, json={"cidr": "127.0.0.0/8"})
    assert added.status_code == 200 and added.json()["allowed_networks"] == ["192.0.2.0/24", "127.0.0.0/8"]
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200
    before = state(live)
    assert "already on the allow-list" in assert_error(admin.post(networks, json={"cidr": "127.0.0.0/8"}), 409, 102)
    assert "host bits" in assert_error(admin.post(networks, json={"cidr": "127.0.0.1/8"}), 400, 102)
    assert_error(admin.delete(networks, params={"cidr": "not a network"}), 400, 102)
    assert_error(admin.delete(networks), 400, 102)
    assert "not on the allow-list" in assert_error(admin.delete(networks, params={"cidr": "10.0.0.0/8"}), 404, 102)
    assert state(live) == before
    removed = admin.delete(networks, params={"cidr": "127.0.0.0/8"})
    assert removed.status_code == 200 and removed.json()["allowed_networks"] == ["192.0.2.0/24"]
    assert_error(lookup(live, creds.api_username, creds.api_password), 401, 101)


def test_a_rotated_secret_works_at_once_and_the_old_one_stops(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200  # cached
    response = admin.post(f"{PREFIX}/accounts/{creds.name}/rotate-secret")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert rotated["account"]["api_username"] == creds.api_username
    new_password = rotated["api_password"]
    assert new_password != creds.api_password and len(new_password) == len(creds.api_password)
    assert lookup(live, creds.api_username, new_password).status_code == 200
    assert_error(lookup(live, creds.api_username, creds.api_password), 401, 101)
    # Shown once: in no other answer, not in the log, not in the metrics.
    assert new_password not in admin.get(f"{PREFIX}/accounts/{creds.name}").text
    assert new_password not in admin.get(f"{PREFIX}/accounts").text
    assert new_password not in httpx.get(f"{live.url}/metrics").text
    log = live.server.log_path.read_text()
    assert new_password not in log and TOKEN not in log
    assert f"POST {PREFIX}/accounts/{creds.name}/rotate-secret 200" in log  # the request was logged, without it


# ---------------------------------------------------------------- credits and the ledger


def booked(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_top_up_and_correction_each_write_their_row(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="1")
    account = f"{PREFIX}/accounts/{creds.name}"
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200  # 0.99 left, cached
    top = booked(admin.post(f"{account}/credits", json={"amount": "0.011", "note": "invoice 17"}))
    assert top["balance"] == "1.001"
    assert top["entry"] | {"id": 0, "created_at": None} == {
        "id": 0,
        "kind": "credit",
        "request_id": None,
        "amount": "0.011",
        "numbers": 0,
        "balance_after": "1.001",
        "note": "invoice 17",
        "created_at": None,
    }
    fix = booked(admin.post(f"{account}/adjustments", json={"amount": "-0.501", "note": "refund"}))
    assert (fix["balance"], fix["entry"]["kind"], fix["entry"]["amount"], fix["entry"]["note"]) == (
        "0.5",
        "adjustment",
        "-0.501",
        "refund",
    )
    up = booked(admin.post(f"{account}/adjustments", json={"amount": "0.25", "note": "goodwill"}))
    assert up["balance"] == "0.75" and up["entry"]["id"] > fix["entry"]["id"] > top["entry"]["id"]
    stored = get_account(live.engine, creds.name)
    assert stored.balance == 750_000 == ledger_total(live.engine, stored.id)


def test_a_correction_below_zero_is_refused_and_changes_nothing(live: Live, admin: httpx.Client) -> None:
    creds = live.account(credits="0.5")
    account = f"{PREFIX}/accounts/{creds.name}"
    before = state(live)
    description = assert_error(
        admin.post(f"{account}/adjustments", json={"amount": "-0.500001", "note": "x"}), 409, 102
    )
    assert description == "A correction of -0.500001 would take the balance of 0.5 below zero."
    assert state(live) == before
    # The worker's cached balance was not touched either: a lookup still goes through.
    assert lookup(live, creds.api_username, creds.api_password).status_code == 200


@pytest.mark.parametrize(
    ("route", "body", "fragment"),
    [
        ("credits", {"amount": "0"}, "amount"),
        ("credits", {"amount": "-1"}, "amount"),
        ("credits", {"amount": "1.0000001"}, "amount"),
        ("credits", {"amount": 1}, "amount"),
        ("credits", {}, "amount"),
        ("credits", {"amount": "1", "note": "a\u0000b"}, "note"),
        ("adjustments", {"amount": "-1"}, "note"),
        ("adjustments", {"amount": "-1", "note": "  "}, "note"),
        ("adjustments", {"amount": "0", "note": "why"}, "amount"),
        ("adjustments", {"amount": "-0.0000001", "note": "why"}, "amount"),
        ("adjustments", {"amount": "- 1", "note": "why"}, "amount"),
        ("adjustments", {"amount": "-1", "note": "why", "kind": "credit"}, "kind"),
    ],
)
def test_bad_amounts_and_notes_are_400_and_change_nothing(
    live: Live, admin: httpx.Client, route: str, body: dict[str, Any], fragment: str
) -> None:
    creds = live.account(credits="5")
    before = state(live)
    assert fragment in assert_error(admin.post(f"{PREFIX}/accounts/{creds.name}/{route}", json=body), 400, 102)
    assert state(live) == before


def ledger_pages(admin: httpx.Client, name: str, limit: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    params: dict[str, int] = {"limit": limit}
    while True:
        page = booked(admin.get(f"{PREFIX}/accounts/{name}/ledger", params=params))
        pages.append(page)
        if page["next_before"] is None:
            return pages
        params["before"] = page["next_before"]


def test_ledger_pages_newest_first_and_its_sum_is_the_balance(live: Live, admin: httpx.Client) -> None:
    """Lookups, top-ups, corrections and a refused one: the pages are the ledger, which sums to the balance."""
    creds = live.account(credits="1")
    account = f"{PREFIX}/accounts/{creds.name}"
    for i in range(3):
        assert (
            lookup(live, creds.api_username, creds.api_password, [f"+3725100000{i}", "+447712345678"]).status_code
            == 200
        )
        booked(admin.post(f"{account}/credits", json={"amount": f"0.00{i + 1}"}))
        booked(admin.post(f"{account}/adjustments", json={"amount": "-0.003", "note": f"fix {i}"}))
    assert_error(admin.post(f"{account}/adjustments", json={"amount": "-100", "note": "too much"}), 409, 102)
    pages = ledger_pages(admin, creds.name, limit=4)
    assert [len(p["entries"]) for p in pages] == [4, 4, 2]
    entries = [e for p in pages for e in p["entries"]]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    stored = get_account(live.engine, creds.name)
    assert ids == [r.id for r in ledger_rows(live.engine, stored.id, None)]
    assert [e["kind"] for e in entries].count("lookup") == 3
    assert [e["kind"] for e in entries].count("adjustment") == 3
    assert {p["balance"] for p in pages} == {pages[0]["balance"]}
    total = sum(Decimal(e["amount"]) for e in entries)
    assert total == Decimal(pages[0]["balance"]) == Decimal(stored.balance) / 1_000_000
    # Each row's balance_after is the running sum of the rows up to it.
    running = Decimal(0)
    for entry in reversed(entries):
        running += Decimal(entry["amount"])
        assert Decimal(entry["balance_after"]) == running, entry
    one = booked(admin.get(f"{account}/ledger", params={"limit": 1000}))
    assert one["entries"] == entries and one["next_before"] is None
    assert booked(admin.get(f"{account}/ledger", params={"before": ids[-1]}))["entries"] == []
    assert booked(admin.get(f"{account}/ledger", params={"before": 2**31 - 1}))["entries"] == one["entries"][:50]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"limit": "٣"},  # a digit, but not an ASCII one
        {"before": "0"},
        {"before": str(2**31)},  # beyond the ledger's id column on every backend
        {"before": "1" * 30},
    ],
)
def test_ledger_paging_refuses_bad_parameters(live: Live, admin: httpx.Client, params: dict[str, str]) -> None:
    creds = live.account(credits="1")
    key = next(iter(params))
    assert f"`{key}`" in assert_error(admin.get(f"{PREFIX}/accounts/{creds.name}/ledger", params=params), 400, 102)


def test_an_admin_body_over_the_limit_is_413(live: Live, admin: httpx.Client) -> None:
    """Only dataset uploads are exempt from max_body_bytes; an account body is not."""
    before = state(live)
    response = admin.post(f"{PREFIX}/accounts", json={"name": "big", "pad": "x" * 70_000})
    assert_error(response, 413, 102)
    assert state(live) == before


# ---------------------------------------------------------------- rate limits and the failed-login throttle


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(
        tmp_path_factory.mktemp("admin-limited"),
        env={
            "NUMLOOKUP_ADMIN_TOKEN": TOKEN,
            "NUMLOOKUP_RATE_LIMIT_PER_IP": "0.1",
            "NUMLOOKUP_RATE_LIMIT_PER_IP_BURST": "2",
            "NUMLOOKUP_AUTH_FAILURE_LIMIT": "3",
            "NUMLOOKUP_AUTH_FAILURE_PENALTY_SECONDS": "30",
        },
    )


def from_address(live: Live, source: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=30, transport=httpx.HTTPTransport(local_address=source))


def test_admin_requests_skip_the_rate_limits_but_wrong_tokens_count_as_failed_logins(limited: Live) -> None:
    creds: NewCredentials = limited.account(credits="1")
    right = {"Authorization": f"Bearer {TOKEN}"}
    with from_address(limited, "127.0.0.21") as client:
        # The address's two lookups spend its bucket; admin requests go on regardless.
        for _ in range(2):
            assert (
                client.post(
                    SYNC, json={"numbers": [ESTONIA]}, auth=(creds.api_username, creds.api_password)
                ).status_code
                == 200
            )
        assert_error(
            client.post(SYNC, json={"numbers": [ESTONIA]}, auth=(creds.api_username, creds.api_password)), 429, 106
        )
        for _ in range(10):
            assert client.get(f"{PREFIX}/accounts/{creds.name}", headers=right).status_code == 200
    with from_address(limited, "127.0.0.22") as client:
        for _ in range(3):
            assert_error(client.get(f"{PREFIX}/accounts", headers={"Authorization": "Bearer guess"}), 401, 101)
        # Blocked: the right token is not even checked during the penalty, nor a lookup's password.
        penalty = client.get(f"{PREFIX}/accounts", headers=right)
        assert "failed authentications" in assert_error(penalty, 429, 106)
        assert int(penalty.headers["retry-after"]) >= 1
        blocked = client.post(SYNC, json={"numbers": [ESTONIA]}, auth=(creds.api_username, creds.api_password))
        assert_error(blocked, 429, 106)
    with from_address(limited, "127.0.0.23") as client:  # another address is not affected
        assert client.get(f"{PREFIX}/accounts", headers=right).status_code == 200
