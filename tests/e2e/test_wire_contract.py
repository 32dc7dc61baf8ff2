"""The wire contract of POST /v1/hlr/sync, line by line, against a running server."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from numlookup.accounts import get_account, set_enabled
from numlookup.billing import ledger_rows, parse_amount
from numlookup.store.tables import ledger
from tests.e2e.conftest import Live, start_live
from tests.support import run_cli

SYNC = "/v1/hlr/sync"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
ESTONIA = "+37251000001"
NETWORK_KEYS = {"mccmnc", "networkName", "countryName", "countryPrefix", "countryCode"}
RESULT_KEYS = {
    "number",
    "status",
    "ported",
    "roaming",
    "currentNetwork",
    "originalNetwork",
    "portedNetwork",
    "roamingNetwork",
    "checkedAt",
    "source",
}


def post(client: httpx.Client, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(SYNC, json=body, headers=headers or JSON)


def balance(live: Live, name: str) -> int:
    return get_account(live.engine, name).balance


def assert_error(response: httpx.Response, http_status: int, code: int) -> str:
    """Both error shapes, an integer code, JSON, a request id; returns the description."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    uuid.UUID(response.headers["x-request-id"])
    body = response.json()
    assert set(body) == {"error", "errors"}
    assert body["error"]["code"] == code and isinstance(body["error"]["code"], int)
    assert body["errors"] == [{"error": body["error"]}]
    description = body["error"]["description"]
    assert isinstance(description, str) and len(description) > 10
    return description


# ------------------------------------------------------------------ success


def test_success_shape_and_request_id(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        response = post(client, {"numbers": [ESTONIA]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"request_id", "result"}
    assert body["request_id"] == response.headers["x-request-id"]
    uuid.UUID(body["request_id"])
    [item] = body["result"]
    assert set(item) == RESULT_KEYS
    assert item["number"] == ESTONIA
    assert item["status"] == "UNKNOWN"
    assert item["ported"] is None  # no porting data loaded, no live source: unknown, never a guessed false
    assert item["roaming"] is None
    assert item["portedNetwork"] is None and item["roamingNetwork"] is None
    network = item["originalNetwork"]
    assert set(network) == NETWORK_KEYS
    assert network == {
        "mccmnc": "24801",
        "networkName": "Telia Eesti",
        "countryName": "Estonia",
        "countryPrefix": "372",
        "countryCode": "EST",
    }
    assert item["currentNetwork"] == network


def test_request_ids_are_unique(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        ids = {post(client, {"numbers": [ESTONIA]}).json()["request_id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("number", "alpha3", "prefix", "name"),
    [
        ("+447712345678", "GBR", "44", "United Kingdom"),
        ("+4915112345678", "DEU", "49", "Germany"),
        ("+358401234567", "FIN", "358", "Finland"),
        ("+2348031234567", "NGA", "234", "Nigeria"),
        ("+12025550123", "USA", "1", "United States"),
        ("+82212345678", "KOR", "82", "South Korea"),
    ],
)
def test_country_fields_are_strings_with_alpha3(live: Live, number: str, alpha3: str, prefix: str, name: str) -> None:
    creds = live.account()
    with live.client(creds) as client:
        [item] = post(client, {"numbers": [number]}).json()["result"]
    network = item["currentNetwork"]
    assert network["countryCode"] == alpha3
    assert network["countryPrefix"] == prefix
    assert network["countryName"] == name
    for key in NETWORK_KEYS:
        assert network[key] is None or isinstance(network[key], str)


def test_fixed_line_number_has_country_but_no_network(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        [item] = post(client, {"numbers": ["+3726123456"]}).json()["result"]  # Tallinn fixed line
    assert item["status"] == "UNKNOWN"
    assert item["currentNetwork"]["countryCode"] == "EST"
    assert item["currentNetwork"]["mccmnc"] is None
    assert item["currentNetwork"]["networkName"] is None


def test_invalid_numbers_are_invalid_with_null_networks_and_free(live: Live) -> None:
    creds = live.account(credits="1")
    inputs = ["+3725", "hello", "+999123456789", "+372510000011111111"]
    with live.client(creds) as client:
        response = post(client, {"numbers": inputs})
    assert response.status_code == 200
    results = response.json()["result"]
    assert [r["status"] for r in results] == ["INVALID"] * 4
    for item in results:
        for key in ("ported", "roaming", "currentNetwork", "originalNetwork", "portedNetwork", "roamingNetwork"):
            assert item[key] is None
        assert isinstance(item["error"], str)
    # Parseable input comes back in E.164, unparseable input as given.
    assert results[0]["number"] == "+3725"
    assert results[1]["number"] == "hello"
    assert balance(live, creds.name) == parse_amount("1")
    assert [r.kind for r in ledger_rows(live.engine, get_account(live.engine, creds.name).id)] == ["credit"]


def test_input_spellings_mean_one_number_charged_once(live: Live) -> None:
    creds = live.account(credits="1")
    spellings = ["+37251000001", "37251000001", "0037251000001", "+372 5100 0001", "+372-5100-0001"]
    with live.client(creds) as client:
        results = post(client, {"numbers": spellings}).json()["result"]
    assert [r["number"] for r in results] == ["+37251000001"] * 5
    assert all(r["status"] == "UNKNOWN" for r in results)
    assert balance(live, creds.name) == parse_amount("0.99")


def test_order_preserved_duplicates_charged_once(live: Live) -> None:
    creds = live.account(credits="1")
    numbers = ["+4915112345678", "bad", ESTONIA, "+4915112345678", "+447712345678", ESTONIA]
    with live.client(creds) as client:
        response = post(client, {"numbers": numbers})
    results = response.json()["result"]
    assert [r["number"] for r in results] == [
        "+4915112345678",
        "bad",
        ESTONIA,
        "+4915112345678",
        "+447712345678",
        ESTONIA,
    ]
    assert results[0] == results[3] and results[2] == results[5]
    account = get_account(live.engine, creds.name)
    assert account.balance == parse_amount("0.97")
    [row, _credit] = ledger_rows(live.engine, account.id)
    assert (row.kind, row.request_id, row.amount, row.numbers, row.balance_after) == (
        "lookup",
        response.json()["request_id"],
        -parse_amount("0.03"),
        3,
        parse_amount("0.97"),
    )


def test_per_account_price(live: Live) -> None:
    creds = live.account(credits="1", price=parse_amount("0.0025"))
    with live.client(creds) as client:
        post(client, {"numbers": [ESTONIA, "+447712345678"]})
    assert balance(live, creds.name) == parse_amount("0.995")


def test_charset_and_unknown_keys_headers_and_query_are_accepted(live: Live) -> None:
    creds = live.account()
    with live.client(creds) as client:
        response = client.post(
            SYNC + "?verbose=1",
            content=b'{"numbers": ["+37251000001"], "extra": {"x": 1}}',
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
                "X-Whatever": "1",
            },
        )
    assert response.status_code == 200
    assert response.json()["result"][0]["number"] == ESTONIA


def test_ten_numbers_are_allowed(live: Live) -> None:
    creds = live.account()
    numbers = [f"+3725100000{i}" for i in range(10)]
    with live.client(creds) as client:
        response = post(client, {"numbers": numbers})
    assert response.status_code == 200
    assert len(response.json()["result"]) == 10


def test_status_style_does_not_change_unknown_or_invalid(live: Live) -> None:
    for style in ("seed", "onoff", "truefalse"):
        creds = live.account(status_style=style)
        with live.client(creds) as client:
            results = post(client, {"numbers": [ESTONIA, "nope"]}).json()["result"]
        assert [r["status"] for r in results] == ["UNKNOWN", "INVALID"]


@pytest.fixture(scope="module")
def with_porting_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server whose ported dataset covers Estonia: one Estonian number moved to Elisa."""
    data_dir = tmp_path_factory.mktemp("ported")
    ported = data_dir / "ported.csv"
    ported.write_text("number,mccmnc,ported_at\n+37251000002,24802,2025-06-01\n")
    run_cli(data_dir, "db", "upgrade")  # admin commands never create the database
    run_cli(data_dir, "data", "import-ported", str(ported))
    yield from start_live(data_dir)


def test_ported_is_true_or_false_only_where_porting_data_covers_the_country(with_porting_data: Live) -> None:
    creds = with_porting_data.account()
    with with_porting_data.client(creds) as client:
        numbers = [ESTONIA, "+37251000002", "+37120012345", "+4915112345678", "nope"]
        stayed, moved, latvia, germany, invalid = post(client, {"numbers": numbers}).json()["result"]
    assert (stayed["ported"], stayed["portedNetwork"]) == (False, None)
    assert stayed["currentNetwork"] == stayed["originalNetwork"] and stayed["originalNetwork"]["mccmnc"] == "24801"
    assert moved["ported"] is True and moved["portedNetwork"]["mccmnc"] == "24802"
    assert moved["currentNetwork"] == moved["portedNetwork"] and moved["originalNetwork"]["mccmnc"] == "24801"
    # The dataset says nothing of Latvia or Germany: unknown there, as with no dataset at all.
    assert latvia["status"] == germany["status"] == "UNKNOWN"
    assert (latvia["ported"], germany["ported"], invalid["ported"]) == (None, None, None)


# ------------------------------------------------------------------ 101


def test_101_without_credentials(live: Live) -> None:
    with live.client() as client:
        response = post(client, {"numbers": [ESTONIA]})
    assert_error(response, 401, 101)
    assert response.headers["www-authenticate"] == 'Basic realm="numlookup"'


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"no-colon").decode()],
)
def test_101_for_malformed_authorization(live: Live, header: str) -> None:
    with live.client() as client:
        response = post(client, {"numbers": [ESTONIA]}, headers={**JSON, "Authorization": header})
    assert_error(response, 401, 101)


def test_101_for_wrong_password_and_unknown_user(live: Live) -> None:
    creds = live.account(credits="1")
    with httpx.Client(base_url=live.url, auth=(creds.api_username, creds.api_password + "x")) as client:
        assert_error(post(client, {"numbers": [ESTONIA]}), 401, 101)
    with httpx.Client(base_url=live.url, auth=("nobody", creds.api_password)) as client:
        assert_error(post(client, {"numbers": [ESTONIA]}), 401, 101)
    assert balance(live, creds.name) == parse_amount("1")


def until_status(client: httpx.Client, status: int, within: float = 10.0) -> httpx.Response:
    """Post until the answer has ``status``: account changes reach workers within account_refresh_seconds."""
    deadline = time.monotonic() + within
    while True:
        response = post(client, {"numbers": [ESTONIA]})
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.25)  # slow enough that the 401s stay under the failed-login throttle


def test_101_for_disabled_account_then_enabled(live: Live) -> None:
    """A worker that has the account cached learns of the change from the account change counter."""
    creds = live.account(credits="1")
    # A source address of its own: the failed-login throttle counts per address,
    # and other tests' 401s come from 127.0.0.1.
    with live.client(creds, transport=httpx.HTTPTransport(local_address="127.0.0.9")) as client:
        assert post(client, {"numbers": [ESTONIA]}).status_code == 200  # the worker now holds the account
        set_enabled(live.engine, creds.name, False)
        assert_error(until_status(client, 401), 401, 101)
        spent = balance(live, creds.name)
        set_enabled(live.engine, creds.name, True)
        assert until_status(client, 200).status_code == 200
    assert balance(live, creds.name) == spent - parse_amount("0.01")


def test_101_for_ip_outside_allow_list(live: Live) -> None:
    outside = live.account(credits="1", allow=["10.0.0.0/8", "2001:db8::/32"])
    with live.client(outside) as client:
        assert "whitelisted" in assert_error(post(client, {"numbers": [ESTONIA]}), 401, 101)
    assert balance(live, outside.name) == parse_amount("1")


def test_allow_list_tells_source_addresses_apart(live: Live) -> None:
    """Loopback has every 127.x address, so two real source IPs can be compared."""
    creds = live.account(credits="1", allow=["127.0.0.2/32"])
    allowed = httpx.HTTPTransport(local_address="127.0.0.2")
    other = httpx.HTTPTransport(local_address="127.0.0.3")
    with live.client(creds, transport=allowed) as client:
        assert post(client, {"numbers": [ESTONIA]}).status_code == 200
    with live.client(creds, transport=other) as client:
        assert_error(post(client, {"numbers": [ESTONIA]}), 401, 101)


def test_credentials_are_checked_before_the_body(live: Live) -> None:
    with live.client() as client:
        response = client.post(SYNC, content=b"not json", headers=JSON)
    assert_error(response, 401, 101)


# ------------------------------------------------------------------ 102


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "missing"),
        (b"not json", "not valid JSON"),
        (b'["+37251000001"]', "object"),
        (b"{}", "numbers"),
        (b'{"numbers": "+37251000001"}', "numbers"),
        (b'{"numbers": []}', "at least one"),
        (b'{"numbers": ["+37251000001", 37251000002]}', "numbers[1]"),
        (b'{"numbers": [null]}', "numbers[0]"),
        (b'{"numbers": ["+37251000001"]', "not valid JSON"),
    ],
)
def test_102_for_bad_bodies(live: Live, content: bytes, fragment: str) -> None:
    creds = live.account(credits="1")
    with live.client(creds) as client:
        response = client.post(SYNC, content=content, headers=JSON)
    assert fragment in assert_error(response, 400, 102)
    assert balance(live, creds.name) == parse_amount("1")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_102_for_wrong_content_type(live: Live, content_type: str | None) -> None:
    creds = live.account(credits="1")
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    with live.client(creds) as client:
        response = client.post(SYNC, content=b'{"numbers": ["+37251000001"]}', headers=headers)
    assert "Content-Type" in assert_error(response, 400, 102)
    assert balance(live, creds.name) == parse_amount("1")


# ------------------------------------------------------------------ 103 / 104 / 500


def test_103_for_too_many_numbers(live: Live) -> None:
    creds = live.account(credits="1")
    with live.client(creds) as client:
        response = post(client, {"numbers": [f"+372510000{i:02d}" for i in range(11)]})
    description = assert_error(response, 400, 103)
    assert "11" in description and "10" in description
    assert balance(live, creds.name) == parse_amount("1")


def test_104_when_credits_do_not_cover_and_nothing_changes(live: Live) -> None:
    creds = live.account(credits="0.015")
    with live.client(creds) as client:
        description = assert_error(post(client, {"numbers": [ESTONIA, "+447712345678"]}), 402, 104)
        assert "0.02" in description and "0.015" in description
        assert balance(live, creds.name) == parse_amount("0.015")
        # One number is covered.
        assert post(client, {"numbers": [ESTONIA]}).status_code == 200
        assert balance(live, creds.name) == parse_amount("0.005")
        # Invalid numbers cost nothing, so they pass even on an empty purse.
        assert post(client, {"numbers": ["nope"]}).status_code == 200


def test_every_response_is_json_with_request_id(live: Live) -> None:
    with live.client() as client:
        for response in (client.get("/nowhere"), client.get(SYNC), client.get("/healthz")):
            assert response.headers["content-type"].startswith("application/json")
            uuid.UUID(response.headers["x-request-id"])
        assert_error(client.get("/nowhere"), 404, 102)
        assert_error(client.get(SYNC), 405, 102)


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[Live]:
    yield from start_live(tmp_path / "broken")


def test_500_is_clean_and_charges_nothing(broken: Live) -> None:
    """A real fault: the ledger table vanishes under a running server."""
    creds = broken.account(credits="1")
    with broken.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ledger RENAME TO ledger_gone")
    with broken.client(creds) as client:
        response = post(client, {"numbers": [ESTONIA]})
    description = assert_error(response, 500, 103)
    assert "ledger" not in description.lower() and "Traceback" not in response.text
    assert balance(broken, creds.name) == parse_amount("1")
    with broken.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ledger_gone RENAME TO ledger")
        assert conn.execute(select(ledger.c.id).where(ledger.c.kind == "lookup")).first() is None


# ------------------------------------------------------------------ configuration and documents


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("limit"), env={"NUMLOOKUP_MAX_NUMBERS_PER_REQUEST": "3"})


def test_limit_is_configurable(small_limit: Live) -> None:
    creds = small_limit.account()
    with small_limit.client(creds) as client:
        assert post(client, {"numbers": [ESTONIA] * 3}).status_code == 200
        assert "3" in assert_error(post(client, {"numbers": [ESTONIA] * 4}), 400, 103)
        schema = client.get("/openapi.json").json()["components"]["schemas"]["NumbersToInvestigate"]
    assert schema["properties"]["numbers"]["maxItems"] == 3


def test_openapi_document_describes_what_is_served(live: Live) -> None:
    with live.client() as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    operation = document["paths"]["/v1/hlr/sync"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "402", "408", "409", "413", "422", "429", "500"}
    assert "Idempotency-Key" in operation["description"]
    schemas = document["components"]["schemas"]
    assert set(schemas["NumberResult"]["required"]) == RESULT_KEYS
    ported = schemas["NumberResult"]["properties"]["ported"]
    assert ported["anyOf"] == [{"type": "boolean"}, {"type": "null"}] and "null (unknown)" in ported["description"]
    assert set(schemas["MobileNetwork"]["properties"]) == NETWORK_KEYS
    assert schemas["NumbersToInvestigate"]["properties"]["numbers"]["maxItems"] == 10


def test_healthz(live: Live) -> None:
    with live.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
