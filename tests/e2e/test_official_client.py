"""The official ``messente-api`` clients, unchanged but for their host, against a running server.

2.7.0 (the test dependency) runs here; every other release the registries give
us (tests/e2e/clients.py) reads live answers from a server whose live source is
the Messente-compatible peer, on the default status style.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate
from messente_api.exceptions import ApiException
from messente_api.models.error_number_lookup import ErrorNumberLookup
from pydantic import ValidationError

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import parse_amount
from numlookup.status import client_style
from tests.e2e.clients import CLIENTS, OfficialClient, fetch_info, prepare
from tests.e2e.conftest import Live, start_live
from tests.peers.messente import Peer


def api(live: Live, username: str, password: str) -> NumberLookupApi:
    return NumberLookupApi(ApiClient(Configuration(username=username, password=password, host=live.url + "/v1")))


def lookup_api(live: Live, creds: NewCredentials) -> NumberLookupApi:
    return api(live, creds.api_username, creds.api_password)


def test_fetch_info_parses_results(live: Live) -> None:
    creds = live.account(credits="1")
    numbers = ["+37251000001", "+4915112345678", "not a number", "+37251000001"]
    response = lookup_api(live, creds).fetch_info(NumbersToInvestigate(numbers=numbers))
    assert response.request_id
    assert [r.number for r in response.result] == ["+37251000001", "+4915112345678", "not a number", "+37251000001"]
    estonia, germany, invalid, _ = response.result
    # No porting data is loaded and no live source answered: nobody knows whether it moved.
    assert estonia.status == "UNKNOWN" and estonia.ported is None and estonia.roaming is None
    assert estonia.current_network is not None and estonia.original_network is not None
    assert estonia.current_network.mccmnc == "24801"
    assert estonia.current_network.network_name == "Telia Eesti"
    assert estonia.original_network.country_code == "EST"
    assert estonia.original_network.country_prefix == "372"
    assert germany.current_network is not None and germany.current_network.mccmnc == "26201"
    assert invalid.status == "INVALID" and invalid.current_network is None
    assert get_account(live.engine, creds.name).balance == parse_amount("0.98")


@pytest.mark.parametrize("style", ["seed", "onoff", "truefalse"])
def test_every_status_style_parses_offline_results(live: Live, style: str) -> None:
    creds = live.account(status_style=style)
    response = lookup_api(live, creds).fetch_info(NumbersToInvestigate(numbers=["+358401234567", "x"]))
    assert [r.status for r in response.result] == ["UNKNOWN", "INVALID"]


def error_of(exc: ApiException) -> tuple[int, int]:
    """The client's own error model must parse our error body."""
    assert exc.body is not None
    parsed = ErrorNumberLookup.from_json(exc.body)
    assert parsed is not None
    [item] = parsed.errors
    assert json.loads(exc.body)["error"]["code"] == item.error.code
    return exc.status, item.error.code


def test_wrong_credentials_raise_401_with_code_101(live: Live) -> None:
    with pytest.raises(ApiException) as info:
        api(live, "nobody", "wrong").fetch_info(NumbersToInvestigate(numbers=["+37251000001"]))
    assert error_of(info.value) == (401, 101)


def test_client_limit_is_our_default_limit(live: Live) -> None:
    """The client refuses an 11th number itself, so our default of 10 never surprises its users."""
    creds = live.account()
    ten = [f"+3725100000{i}" for i in range(10)]
    assert len(lookup_api(live, creds).fetch_info(NumbersToInvestigate(numbers=ten)).result) == 10
    with pytest.raises(ValidationError):
        NumbersToInvestigate(numbers=[*ten, "+37251000010"])


def test_no_credits_raise_402_with_code_104(live: Live) -> None:
    creds = live.account(credits="0")
    with pytest.raises(ApiException) as info:
        lookup_api(live, creds).fetch_info(NumbersToInvestigate(numbers=["+37251000001"]))
    assert error_of(info.value) == (402, 104)


# ---------------------------------------------------------------- every release, live answers

# Estonia (Telia's range, 24801) is routed to the peer; Germany to no live source.
ONLINE, OFFLINE, UNKNOWN, PORTED, HOME = (f"+3725100000{i}" for i in range(1, 6))
INVALID, NOT_ROUTED = "12345", "+4915112345678"
ASKED = [ONLINE, OFFLINE, UNKNOWN, PORTED, HOME, INVALID, NOT_ROUTED]
PEER_STATUSES = {ONLINE: "ONLINE", OFFLINE: "OFFLINE", UNKNOWN: "UNKNOWN", PORTED: "ONLINE", HOME: "OFFLINE"}
WORDS = {"seed": ("ONLINE", "OFFLINE"), "onoff": ("ON", "OFF"), "truefalse": ("true", "false")}


@dataclass
class Upstreamed:
    live: Live
    peer: Peer


@pytest.fixture(scope="module")
def upstreamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreamed]:
    """A server on every default (status style ``auto``) whose live source for +372 is the peer."""
    # The peer moved PORTED to Elisa; it says HOME is not ported (Telia is its current network);
    # of the others it tells reachability only, as Messente does when it has no porting facts.
    with Peer(statuses=PEER_STATUSES, ported={PORTED: "24802"}, home={HOME: "24801"}) as peer:
        env = {
            "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "cc:372", "source": "peer"}]),
            "NUMLOOKUP_UPSTREAMS": json.dumps({"peer": {"url": peer.url, "username": "u", "password": "p"}}),
        }
        servers = start_live(tmp_path_factory.mktemp("upstreamed"), env=env)
        try:
            yield Upstreamed(next(servers), peer)
        finally:
            servers.close()


@pytest.fixture(params=CLIENTS, ids=[c.id for c in CLIENTS])
def official_client(request: pytest.FixtureRequest) -> OfficialClient:
    client: OfficialClient = request.param
    prepare(client)  # installs it on first use, or skips saying why
    return client


def test_each_client_sends_the_user_agent_its_words_are_chosen_by(official_client: OfficialClient) -> None:
    """The real header on the wire, read by a peer: OpenAPI-Generator's for Python, superagent's for Node."""
    with Peer(default_status="UNKNOWN") as peer:
        [item] = fetch_info(official_client, peer.url, "u", "p", [ONLINE])
        user_agent = peer.headers[-1]["user-agent"]
    assert item["status"] == "UNKNOWN"
    if official_client.language == "python":
        assert user_agent == f"OpenAPI-Generator/{official_client.version}/python"
    else:
        assert user_agent.startswith("node-superagent/")
    assert client_style(user_agent) == official_client.style


def test_every_client_reads_live_answers_on_the_default_style(
    upstreamed: Upstreamed, official_client: OfficialClient
) -> None:
    creds = upstreamed.live.account()  # no style of its own: the server's default, auto
    results = fetch_info(official_client, upstreamed.live.url + "/v1", creds.api_username, creds.api_password, ASKED)
    on, off = WORDS[official_client.style]
    assert [r["number"] for r in results] == [*ASKED[:5], "+12345", NOT_ROUTED]
    assert [r["status"] for r in results] == [on, off, "UNKNOWN", on, off, "INVALID", "UNKNOWN"]
    # Porting is known where the live source told the current network, else null.
    assert [r["ported"] for r in results] == [None, None, None, True, False, None, None]
    assert [r["portedNetwork"] for r in results] == [None, None, None, "24802", None, None, None]
    assert [r["currentNetwork"] for r in results] == ["24801", "24801", "24801", "24802", "24801", None, "26201"]
    assert [r["originalNetwork"] for r in results] == ["24801"] * 5 + [None, "26201"]
    assert [r["roaming"] for r in results] == [False, None, None, False, None, None, None]


@pytest.mark.parametrize(
    ("user_agent", "words"),
    [
        ("OpenAPI-Generator/2.7.0/python", ("true", "false")),
        ("OpenAPI-Generator/2.6.0/python", ("ON", "OFF")),
        ("OpenAPI-Generator/4.7.0/java", ("true", "false")),
        ("OpenAPI-Generator%2F4.2.0%2Fcsharp", ("ON", "OFF")),
        ("curl/8.5.0", ("ONLINE", "OFFLINE")),
        (None, ("ONLINE", "OFFLINE")),
    ],
)
def test_auto_answers_in_the_words_of_the_user_agent(
    upstreamed: Upstreamed, user_agent: str | None, words: tuple[str, str]
) -> None:
    creds = upstreamed.live.account()
    with upstreamed.live.client(creds) as client:
        if user_agent is None:
            del client.headers["user-agent"]
        else:
            client.headers["user-agent"] = user_agent
        response = client.post("/v1/hlr/sync", json={"numbers": [ONLINE, OFFLINE]})
    assert response.status_code == 200, response.text
    assert tuple(r["status"] for r in response.json()["result"]) == words


def test_an_account_may_choose_auto_where_the_server_default_is_explicit(tmp_path: Path) -> None:
    """The wire contract: the style is per account with a server default, and ``auto`` is one of them."""
    with Peer(statuses={ONLINE: "ONLINE", OFFLINE: "OFFLINE"}) as peer:
        generator = start_live(
            tmp_path / "server",
            env={
                "NUMLOOKUP_STATUS_STYLE": "onoff",
                "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "cc:372", "source": "peer"}]),
                "NUMLOOKUP_UPSTREAMS": json.dumps({"peer": {"url": peer.url, "username": "u", "password": "p"}}),
            },
        )
        live = next(generator)
        try:
            on_auto = live.account(status_style="auto")
            on_default = live.account()
            agent = {"User-Agent": "OpenAPI-Generator/2.7.0/python"}
            for creds, words in ((on_auto, ("true", "false")), (on_default, ("ON", "OFF"))):
                with live.client(creds, headers=agent) as client:
                    response = client.post("/v1/hlr/sync", json={"numbers": [ONLINE, OFFLINE], "max_age": 0})
                assert tuple(r["status"] for r in response.json()["result"]) == words
        finally:
            generator.close()


@pytest.mark.parametrize("style", ["seed", "onoff", "truefalse"])
def test_an_account_style_wins_over_the_user_agent(upstreamed: Upstreamed, style: str) -> None:
    creds = upstreamed.live.account(status_style=style)
    headers = {"User-Agent": "OpenAPI-Generator/2.7.0/python"}
    with upstreamed.live.client(creds, headers=headers) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": [ONLINE, OFFLINE]})
    assert tuple(r["status"] for r in response.json()["result"]) == WORDS[style]
    if style != "truefalse":  # the words 2.7.0 does not read, because the account asked for them
        config = Configuration(
            username=creds.api_username, password=creds.api_password, host=upstreamed.live.url + "/v1"
        )
        with pytest.raises(ValidationError):
            NumberLookupApi(ApiClient(config)).fetch_info(NumbersToInvestigate(numbers=[ONLINE]))
