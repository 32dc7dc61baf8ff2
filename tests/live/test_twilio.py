"""The ``twilio`` kind against a real HTTP peer on 127.0.0.1 that answers with Twilio's own Lookup v2 examples.

Every published example used and every derived package value is mapped and
checked field by field; the request is checked as Twilio checks it; every
failure of the request as a whole is a ``SourceError`` in our words that never
holds the Account SID or the Auth Token.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from numlookup.live.networks import SourceNetworks
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.live.twilio import TwilioSource
from numlookup.numbering import Resolver
from numlookup.source_settings import TwilioSettings
from tests.peers.twilio import EXAMPLES, FIXTURE, TwilioPeer, names

SID = "AC0123456789abcdef0123456789abcdef"  # shaped like an Account SID: AC and 32 hex digits
TOKEN = "f00dfeedcafe0123456789abcdef-secret"
RESOLVER = Resolver()
UK = "+447772000001"  # the number of the spec's line status examples: an EE range (23433)
US = "+14159929960"  # the number of the spec's line type example
CANADA = "+16135550123"
WITH_CODES = ("nonFixedVoip", "mobile_ee", "mobile_vodafone_uk", "mobile_tmobile_us")  # line types with MCC and MNC


def query(peer: TwilioPeer, numbers: Sequence[str], *, token: str = TOKEN, **options: Any) -> dict[str, LiveAnswer]:
    async def run() -> dict[str, LiveAnswer]:
        source = TwilioSource("tw", options.pop("url", peer.url), SID, token, **options)
        try:
            return await source.query(numbers)
        finally:
            await source.close()

    return asyncio.run(run())


def peer(**options: Any) -> TwilioPeer:
    return TwilioPeer(account_sid=SID, auth_token=TOKEN, **options)


def one(line_status: str = "none", line_type: str = "none", number: str = UK, **options: Any) -> LiveAnswer:
    with peer(line_status={number: line_status}, line_type={number: line_type}, **options) as twilio:
        return query(twilio, [number])[number]


def porting(number: str, answer: LiveAnswer) -> tuple[bool, str | None, str | None]:
    """What the service makes of the answer's porting: (known, the ported network's MCC/MNC and name)."""
    [resolution] = RESOLVER.resolve([number])
    known, network = SourceNetworks(RESOLVER).porting(resolution, answer)
    return known, network.mccmnc if network else None, network.name if network else None


# --------------------------------------------------------------- the published examples


def test_the_spec_example_of_an_active_line_is_no_proof_of_reachability() -> None:
    """fetchLineStatusActive: "valid and active (but not necessarily reachable)"."""
    answer = one("active")
    assert (answer.reachable, answer.invalid, answer.roaming) == (None, False, None)
    assert answer.error == "upstream:tw answered line status active"
    assert answer.checked_at is not None


def test_the_spec_example_of_an_inactive_line_is_not_in_service() -> None:
    """fetchLineStatusInactive: "isn't assigned to any subscriber on the mobile network or is invalid"."""
    answer = one("inactive")
    assert (answer.reachable, answer.invalid) == (False, True)
    assert answer.error == "upstream:tw says the number is not in service (line status inactive)"
    assert answer.says_something


def test_the_spec_line_type_example_names_the_current_network_by_mcc_mnc() -> None:
    """fetchLineTypeIntelligence: 240/38 for +14159929960, the registry's Voxbone Sweden."""
    answer = one("none", "nonFixedVoip", US)
    assert (answer.ported_known, answer.ported_mccmnc) == (True, "24038")
    assert (answer.ported_name, answer.ported_country, answer.roaming, answer.roaming_mccmnc) == (None,) * 4
    assert porting(US, answer) == (True, "24038", "Voxbone Sweden")
    assert answer.reachable is None and answer.error == "upstream:tw gave no line status"


def test_the_spec_invalid_example_is_unknown_with_twilios_reasons_not_invalid() -> None:
    """fetchInvalid (valid: false, TOO_LONG): Twilio's plan check; ours found the number valid."""
    with peer(invalid=frozenset({UK})) as twilio:
        answer = query(twilio, [UK])[UK]
    assert (answer.reachable, answer.invalid, answer.ported_known) == (None, False, False)
    assert answer.error == "upstream:tw says the number is not valid (TOO_LONG)"
    assert not answer.says_something  # the route's next source is asked


def test_the_spec_basic_example_without_packages_says_nothing() -> None:
    """fetch: every package null."""
    answer = one("none", "none")
    assert (answer.reachable, answer.invalid, answer.ported_known) == (None, False, False)
    assert answer.error == "upstream:tw gave no line status" and not answer.says_something


def test_a_number_twilio_finds_invalid_gets_its_own_reasons() -> None:
    """The peer validates as Twilio does: +141599299600 (the fetchInvalid example's number) is TOO_LONG."""
    with peer() as twilio:
        answer = query(twilio, ["+141599299600"])["+141599299600"]
    assert answer.error == "upstream:tw says the number is not valid (TOO_LONG)" and not answer.invalid


# --------------------------------------------------------------- every line status value


@pytest.mark.parametrize(
    ("value", "reachable", "invalid"),
    [
        ("reachable", True, False),
        ("Reachable", True, False),
        ("unreachable", False, False),
        ("Unreachable", False, False),
        ("inactive", False, True),
        ("Inactive", False, True),
    ],
)
def test_line_status_values_that_tell(value: str, reachable: bool, invalid: bool) -> None:
    answer = one(value)
    assert (answer.reachable, answer.invalid) == (reachable, invalid)
    assert answer.error == (f"upstream:tw says the number is not in service (line status {value})" if invalid else None)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("active", "upstream:tw answered line status active"),
        ("Active", "upstream:tw answered line status Active"),
        ("unknown", "upstream:tw answered line status unknown"),
        ("Unknown", "upstream:tw answered line status Unknown"),
        ("something_new", "upstream:tw answered line status something_new"),
        ("no_status", "upstream:tw gave no line status"),
        ("none", "upstream:tw gave no line status"),
        (
            "error_60601",
            "upstream:tw could not tell the line status: our Twilio account lacks the NPAC approval"
            " Canadian numbers need (Twilio error 60601)",
        ),
        ("error_unlisted", "upstream:tw could not tell the line status (Twilio error 60699)"),
    ],
)
def test_line_status_values_that_do_not_tell_keep_twilios_words(value: str, error: str) -> None:
    answer = one(value)
    assert (answer.reachable, answer.invalid, answer.error) == (None, False, error)


def test_a_canadian_number_without_npac_approval_tells_nothing() -> None:
    answer = one("error_60601", "error_60601", CANADA)
    assert (answer.reachable, answer.ported_known, answer.ported_mccmnc) == (None, False, None)
    assert answer.error is not None and "(Twilio error 60601)" in answer.error
    assert not answer.says_something


# --------------------------------------------------------------- the current network


def test_the_range_holders_own_network_is_not_ported() -> None:
    answer = one("reachable", "mobile_ee")
    assert (answer.ported_known, answer.ported_mccmnc) == (True, "23433")
    assert porting(UK, answer) == (True, None, None)  # the service: where its range is


def test_another_network_is_where_the_number_was_ported() -> None:
    answer = one("reachable", "mobile_vodafone_uk")
    assert (answer.reachable, answer.ported_known, answer.ported_mccmnc) == (True, True, "23415")
    assert porting(UK, answer) == (True, "23415", "Vodafone UK")


def test_a_three_digit_mnc() -> None:
    answer = one("reachable", "mobile_tmobile_us", "+14159929969")
    assert answer.ported_mccmnc == "310260"
    assert porting("+14159929969", answer)[1:] == ("310260", "T-Mobile")


@pytest.mark.parametrize("value", ["landline", "tollFree", "malformed", "error_60601", "none"])
def test_line_types_without_both_codes_leave_porting_unknown(value: str) -> None:
    answer = one("reachable", value)
    assert (answer.ported_known, answer.ported_mccmnc, answer.ported_name) == (False, None, None)
    assert answer.reachable is True and answer.error is None  # the line status still stands
    assert porting(UK, answer) == (False, None, None)


def test_every_package_value_the_peer_gives_is_mapped() -> None:
    """One request per number, each with its own values; none is lost."""
    statuses, types = names("line_status"), names("line_type_intelligence")
    numbers = {f"+44777200{i:04d}": (statuses[i % len(statuses)], types[i % len(types)]) for i in range(40)}
    with peer(
        line_status={n: s for n, (s, _) in numbers.items()}, line_type={n: t for n, (_, t) in numbers.items()}
    ) as twilio:
        answers = query(twilio, list(numbers))
    assert set(answers) == set(numbers) and len(twilio.requests) == len(numbers)
    for number, (status, kind) in numbers.items():
        told = answers[number].reachable is not None or answers[number].invalid
        assert told == (status.casefold() in ("reachable", "unreachable", "inactive")), (number, status)
        assert answers[number].ported_known == (kind in WITH_CODES), kind


# --------------------------------------------------------------- the request


def test_the_request_is_twilios_with_our_credentials_and_the_number_with_plus() -> None:
    with peer(line_status={UK: "reachable"}) as twilio:
        answers = query(twilio, [UK])
    assert answers[UK].reachable is True
    assert twilio.requests == [f"/v2/PhoneNumbers/{UK}?Fields=line_type_intelligence%2Cline_status"]
    [headers] = twilio.headers
    assert headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert headers["accept"] == "application/json" and "content-type" not in headers
    assert twilio.refusals == []


def test_one_request_per_number_concurrently() -> None:
    numbers = [f"+4477720{i:05d}" for i in range(30)]
    with peer(default_line_status="reachable") as twilio:
        answers = query(twilio, numbers, max_connections=8)
    assert set(answers) == set(numbers) and all(a.reachable for a in answers.values())
    assert sorted(twilio.requests) == sorted(
        f"/v2/PhoneNumbers/{n}?Fields=line_type_intelligence%2Cline_status" for n in numbers
    )


def test_an_answer_about_another_number_is_no_answer_for_this_one() -> None:
    with peer(mode="othernumber") as twilio:
        assert query(twilio, [UK]) == {}  # the dispatcher says "gave no answer for this number"


def test_from_settings_reads_the_kinds_settings() -> None:
    settings = TwilioSettings(url="https://lookups.twilio.com/", account_sid=SID, auth_token=TOKEN, timeout=1.5)
    source = TwilioSource.from_settings("tw", settings, 8)
    assert (source.name, source.max_batch, source.timeout) == ("upstream:tw", 1, 1.5)
    asyncio.run(source.close())


@pytest.mark.parametrize(
    "url",
    ["https://lookups.twilio.com/v2", "https://x.example/v2/PhoneNumbers/", "https://lookups.twilio.com/?x=1"],
)
def test_a_url_holding_the_path_is_refused_naming_the_setting(url: str) -> None:
    settings = TwilioSettings(url=url, account_sid=SID, auth_token=TOKEN)
    with pytest.raises(ValueError, match=r"^upstreams\.tw\.url is the API base such as https://lookups\.twilio\.com"):
        settings.check("tw")
    TwilioSettings(url="https://proxy.example/twilio", account_sid=SID, auth_token=TOKEN).check(
        "tw"
    )  # a prefix is fine


# --------------------------------------------------------------- the peer refuses what Twilio refuses


def _basic(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


@pytest.mark.parametrize(
    ("method", "target", "authorization", "status", "code"),
    [
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status", _basic(SID, "wrong"), 401, 20003),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status", "", 401, 20003),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status", f"Bearer {TOKEN}", 401, 20003),
        ("GET", f"/v1/PhoneNumbers/{UK}?Type=carrier", None, 404, 20404),
        ("GET", "/v2/PhoneNumbers/?Fields=line_status", None, 404, 20404),
        ("GET", f"/v2/PhoneNumbers/{UK}/Overrides/line_status", None, 404, 20404),
        ("GET", "/v2/PhoneNumbers/447772000001?Fields=line_status", None, 404, 20404),
        ("POST", f"/v2/PhoneNumbers/{UK}?Fields=line_status", None, 405, 20004),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=carrier", None, 400, 20001),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status,", None, 400, 20001),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status&Fields=line_type_intelligence", None, 400, 20001),
        ("GET", f"/v2/PhoneNumbers/{UK}?Fields=line_status&max_age=0", None, 400, 20001),
    ],
)
def test_the_peer_refuses_like_twilio(
    method: str, target: str, authorization: str | None, status: int, code: int
) -> None:
    with peer() as twilio, httpx.Client(base_url=twilio.url) as client:
        sent = _basic(SID, TOKEN) if authorization is None else authorization
        response = client.request(method, target, headers={"Authorization": sent} if sent else {})
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["status"], body["more_info"]) == (
        code,
        status,
        f"https://www.twilio.com/docs/errors/{code}",
    )
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic ")
    assert twilio.requests == [] and len(twilio.refusals) == 1


def test_the_peer_reads_a_percent_encoded_plus_as_a_plus() -> None:
    with peer(line_status={UK: "reachable"}) as twilio, httpx.Client(base_url=twilio.url) as client:
        response = client.get(
            f"/v2/PhoneNumbers/%2B{UK[1:]}?Fields=line_status", headers={"Authorization": _basic(SID, TOKEN)}
        )
    assert response.status_code == 200 and response.json()["phone_number"] == UK
    assert response.json()["line_status"] == {"status": "reachable", "error_code": None}
    assert response.json()["line_type_intelligence"] is None  # not asked for: null, as in the spec's examples


# --------------------------------------------------------------- failures of the source as a whole


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "upstream:tw refused the connection"),
        ("reset", "upstream:tw broke the connection"),
        ("hang", "upstream:tw timed out after 0.5 s"),
        ("garbage", "upstream:tw broke the connection"),
        ("http500", "upstream:tw had a server error (HTTP 500)"),
        ("http401", "upstream:tw rejected our credentials (HTTP 401)"),
        ("http403", "upstream:tw rejected our credentials (HTTP 403)"),
        ("http429", "upstream:tw is rate limiting us (HTTP 429; retry after 7 s)"),
        ("badjson", "upstream:tw sent an answer that is not a Lookup result"),
        ("badshape", "upstream:tw sent an answer that is not a Lookup result"),
    ],
)
def test_each_failure_is_a_source_error_in_our_words(mode: str, reason: str) -> None:
    with peer(mode=mode, retry_after=7) as twilio:
        with pytest.raises(SourceError) as info:
            query(twilio, [UK, "+447772000002"], timeout=0.5)
    assert str(info.value) == reason
    assert info.value.retry_after == (7.0 if mode == "http429" else None)
    for secret in (SID, TOKEN):
        assert secret not in str(info.value) and secret not in repr(info.value)


def test_a_wrong_token_is_refused_and_never_shown() -> None:
    wrong = "not-the-token-" + TOKEN[::-1]
    with peer() as twilio:
        with pytest.raises(SourceError, match=r"rejected our credentials \(HTTP 401\)") as info:
            query(twilio, [UK], token=wrong)
    assert twilio.refusals == [(401, "credentials")]
    assert wrong not in str(info.value) and SID not in str(info.value)


def test_a_refused_request_is_a_source_error_naming_only_the_status() -> None:
    """A 404 (a url whose prefix Twilio does not serve): the source's failure; Twilio's text stays out."""
    with peer() as twilio:
        with pytest.raises(SourceError) as info:
            query(twilio, [UK], url=twilio.url + "/lookups")
    assert str(info.value) == "upstream:tw refused the request (HTTP 404)"
    assert twilio.refusals == [(404, "path /lookups/v2/PhoneNumbers/+447772000001")]


def test_the_fixture_names_the_source_of_every_example() -> None:
    for name, example in EXAMPLES.items():
        assert re.search(r"^twilio/twilio-oai \S+ @ [0-9a-f]{40}: ", example["_source"]), name
        assert name in example["_source"]
    for kind in ("line_status", "line_type_intelligence"):
        for name in names(kind):
            entry = FIXTURE[kind][name]
            assert entry["_source"] and (entry.get("example") in EXAMPLES or "value" in entry), (kind, name)
    assert all(entry["_source"] for entry in FIXTURE["errors"].values() if isinstance(entry, dict))
