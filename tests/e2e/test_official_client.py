"""The official ``messente-api`` client (2.7.0), unchanged but for its host, against a running server."""

from __future__ import annotations

import json

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate
from messente_api.exceptions import ApiException
from messente_api.models.error_number_lookup import ErrorNumberLookup
from pydantic import ValidationError

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import parse_amount
from tests.e2e.conftest import Live


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
