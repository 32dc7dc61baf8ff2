"""The ENUM source against a real NSD on a loopback port: each provider's record shape, then every failure.

The zone (``tests/peers/dns.py`` ``ENUM_RECORDS``) holds records shaped like
the answers Sinch, Datafon, a Go MNP client's server and an LNP SIP server
publish, and RFC 4694's ``npdi``/``rn``. The expected networks are facts of the
numbering plan (``0172`` is Vodafone Deutschland's range, ``0176`` O2's) and of
the providers' own examples (Sinch's 310/012 is Verizon).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from numlookup.live.enum import EnumSource
from numlookup.live.kinds import build_sources
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.numbering import Resolver
from numlookup.settings import SettingsError, load_settings
from numlookup.source_settings import EnumSettings, nameserver_address
from tests.peers import dns as peer
from tests.peers.dns import BROKEN_SUFFIX, ENUM_SUFFIX, RN_MAP, EnumDns, enum_dns, nsd_binary  # noqa: F401  # fixtures

RESOLVER = Resolver()


def ask(
    servers: Sequence[str],
    numbers: Sequence[str],
    *,
    suffix: str = ENUM_SUFFIX,
    timeout: float = 1.0,
    resolver: Resolver | None = RESOLVER,
) -> dict[str, LiveAnswer]:
    async def run() -> dict[str, LiveAnswer]:
        source = EnumSource(
            "enum",
            [nameserver_address(s) for s in servers],
            suffix=suffix,
            rn_map=RN_MAP,
            timeout=timeout,
            resolver=resolver,
        )
        try:
            return await source.query(numbers)
        finally:
            await source.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("number", "current"),
    [
        (peer.RN_MAPPED, "25099"),  # rn=d2701 through rn_map (case and all): Beeline
        (peer.RN_GLOBAL, "26202"),  # rn=+49-172-…: Vodafone Deutschland's range
        (peer.RN_NATIONAL, "26203"),  # rn=176… in rn-context +49: O2 Deutschland's range
        (peer.SIP, "26203"),  # sip:…;npdi;rn=+49177…@host: O2 Deutschland's range
        (peer.SINCH, "310012"),  # mcc=310;mnc=012: Verizon
        (peer.SINCH_HOME, "24801"),  # the number's own range holder, Telia Eesti
        (peer.DATAFON_HOME, "60401"),  # mcc=604;mnc=001, IAM, whose MNC the registry writes 01
        (peer.DATAFON_PORTED, "23430"),  # mcc=234;mnc=030;ported=true: EE
        (peer.ORDERED, "26203"),  # order 10 preference 20 wins over 10/90 and 20/10
    ],
)
def test_each_record_shape_names_the_current_network(enum_dns: EnumDns, number: str, current: str) -> None:  # noqa: F811  # the fixture parameter shadows its import
    [answer] = ask([enum_dns.answering.nameserver], [number]).values()
    assert answer.number == number and answer.ported_known is True and answer.ported_mccmnc == current
    assert answer.reachable is None and answer.roaming is None and answer.error is None  # ENUM never tells these
    assert answer.says_something and answer.checked_at is not None


@pytest.mark.parametrize("number", [peer.NPDI_ONLY, peer.NO_RECORD])
def test_npdi_without_rn_and_nxdomain_mean_not_ported(enum_dns: EnumDns, number: str) -> None:  # noqa: F811  # the fixture parameter shadows its import
    if number == peer.NO_RECORD:  # the server itself says the name does not exist
        assert enum_dns.answering.rcode(f"8.7.6.5.4.3.2.1.1.5.1.9.4.{ENUM_SUFFIX}.") == "NOERROR"
        assert enum_dns.answering.rcode(f"5.5.5.5.4.3.2.1.1.5.1.9.4.{ENUM_SUFFIX}.") == "NXDOMAIN"
    [answer] = ask([enum_dns.answering.nameserver], [number]).values()
    assert answer.ported_known is True and answer.ported_mccmnc is None and answer.ported_name is None
    assert answer.reachable is None and answer.says_something


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (peer.RN_UNKNOWN, "routing number X9999, which neither rn_map nor the numbering data knows"),
        (peer.DATAFON_ERROR, "answered err=1"),
        (peer.NO_PSTN, "has no E2U+pstn NAPTR record"),
        (peer.NO_NAPTR, "has no E2U+pstn NAPTR record"),
        (peer.NO_PARAMETERS, "no portability parameter"),
    ],
)
def test_answers_that_cannot_tell_say_why_and_send_the_number_on(enum_dns: EnumDns, number: str, reason: str) -> None:  # noqa: F811  # the fixture parameter shadows its import
    [answer] = ask([enum_dns.answering.nameserver], [number]).values()
    assert answer.ported_known is False and answer.ported_mccmnc is None and answer.reachable is None
    assert not answer.says_something  # the service asks the route's next source
    assert answer.error is not None and answer.error.startswith("upstream:enum ") and reason in answer.error


def test_a_batch_is_one_query_per_number(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    numbers = [peer.RN_GLOBAL, peer.SINCH, peer.NO_RECORD, peer.NO_PSTN]
    answers = ask([enum_dns.answering.nameserver], numbers)
    assert list(answers) == numbers
    assert [answers[n].ported_mccmnc for n in numbers] == ["26202", "310012", None, None]
    assert [answers[n].ported_known for n in numbers] == [True, True, True, False]


def test_a_global_rn_needs_the_numbering_data(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    """Without a resolver (a source nobody handed one) a phone-number rn cannot be placed; rn_map still can."""
    answers = ask([enum_dns.answering.nameserver], [peer.RN_GLOBAL, peer.RN_MAPPED], resolver=None)
    assert answers[peer.RN_GLOBAL].ported_known is False and "+49-172-12345678" in str(answers[peer.RN_GLOBAL].error)
    assert answers[peer.RN_MAPPED].ported_mccmnc == "25099"


def test_the_settings_build_a_source_with_the_servers_numbering_data(enum_dns: EnumDns, tmp_path: Path) -> None:  # noqa: F811  # the fixture parameter shadows its import
    config = tmp_path / "numlookup.toml"
    config.write_text(
        'live_routes = [{match = "cc:49", source = "enum"}]\n'
        "[upstreams.enum]\n"
        'kind = "enum"\n'
        f'nameservers = ["{enum_dns.refusing.nameserver}", "{enum_dns.answering.nameserver}"]\n'
        "timeout = 1.0\n"
    )
    settings = load_settings(str(config), environ={})
    built = build_sources(settings, {"upstream:enum"}, RESOLVER)["upstream:enum"]
    assert isinstance(built.source, EnumSource) and built.source.max_batch == 1

    async def run() -> dict[str, LiveAnswer]:
        try:
            return await built.source.query([peer.RN_GLOBAL])
        finally:
            await built.source.close()

    assert asyncio.run(run())[peer.RN_GLOBAL].ported_mccmnc == "26202"  # past the refusing server, rn resolved


# ---------------------------------------------------------------- failures of the servers


def test_a_refusing_server_fails_the_source(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    assert enum_dns.refusing.rcode(f"8.7.6.5.4.3.2.1.1.5.1.9.4.{ENUM_SUFFIX}.") == "REFUSED"  # not its zone
    with pytest.raises(SourceError) as failed:
        ask([enum_dns.refusing.nameserver], [peer.RN_GLOBAL])
    assert str(failed.value) == "upstream:enum: no nameserver answered (nameserver 1 answered REFUSED)"


def test_servfail_fails_the_source(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    assert enum_dns.answering.rcode(f"8.7.6.5.4.3.2.1.1.5.1.9.4.{BROKEN_SUFFIX}.") == "SERVFAIL"  # zone not loaded
    with pytest.raises(SourceError, match=r"^upstream:enum: no nameserver answered \(nameserver 1 answered SERVFAIL\)"):
        ask([enum_dns.answering.nameserver], [peer.RN_GLOBAL], suffix=BROKEN_SUFFIX)


def test_a_server_that_never_answers_times_out(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    received = enum_dns.silent.received
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        ask([enum_dns.silent.nameserver], [peer.RN_GLOBAL], timeout=0.5)
    elapsed = time.monotonic() - started
    assert str(failed.value) == "upstream:enum timed out (nameserver 1 timed out)"
    assert elapsed >= 0.5 and enum_dns.silent.received > received  # it was asked, and kept silent


@pytest.mark.parametrize("first", ["refusing", "silent"])
def test_the_next_nameserver_answers_when_the_first_fails(enum_dns: EnumDns, first: str) -> None:  # noqa: F811  # the fixture parameter shadows its import
    failing = enum_dns.refusing.nameserver if first == "refusing" else enum_dns.silent.nameserver
    received = enum_dns.silent.received
    started = time.monotonic()
    [answer] = ask([failing, enum_dns.answering.nameserver], [peer.SINCH], timeout=0.5).values()
    elapsed = time.monotonic() - started
    assert answer.ported_mccmnc == "310012" and answer.error is None
    if first == "silent":  # it was asked first and had its whole turn
        assert enum_dns.silent.received > received and elapsed >= 0.5


def test_every_server_failing_names_what_each_did(enum_dns: EnumDns) -> None:  # noqa: F811  # the fixture parameter shadows its import
    with pytest.raises(SourceError) as failed:
        ask([enum_dns.refusing.nameserver, enum_dns.silent.nameserver], [peer.RN_GLOBAL], timeout=0.3)
    message = str(failed.value)
    assert message.startswith("upstream:enum timed out")
    assert "nameserver 1 answered REFUSED; nameserver 2 timed out" in message
    assert "127." not in message  # the servers' addresses are the operator's business, not the client's


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('nameservers = ["ns.example.net"]', "upstreams.enum.nameservers"),
        ('nameservers = ["127.0.0.1:70000"]', "upstreams.enum.nameservers"),
        ('nameservers = ["127.0.0.1:dns"]', "upstreams.enum.nameservers"),
        ("nameservers = []", "upstreams.enum.nameservers"),
        ('rn_map = {D2701 = "Beeline"}', "upstreams.enum.rn_map"),
        ('rn_map = {D2701 = "2509"}', "upstreams.enum.rn_map"),
        ('suffix = "e164..arpa"', "upstreams.enum.suffix"),
        ("timeout = 0", "upstreams.enum.timeout"),
        ('resolver = "8.8.8.8"', "resolver"),
    ],
)
def test_bad_enum_settings_are_refused_naming_the_setting(tmp_path: Path, line: str, setting: str) -> None:
    config = tmp_path / "numlookup.toml"
    config.write_text(f'[upstreams.enum]\nkind = "enum"\n{line}\n')
    with pytest.raises(SettingsError, match=setting.replace(".", r"\.")):
        load_settings(str(config), environ={})


def test_good_enum_settings_are_read(tmp_path: Path) -> None:
    config = tmp_path / "numlookup.toml"
    config.write_text(
        '[upstreams.enum]\nkind = "enum"\nsuffix = "e164.example.net."\n'
        'nameservers = ["192.0.2.53", "[2001:db8::53]:5353"]\nrn_map = {D2701 = "25099"}\n'
    )
    settings = load_settings(str(config), environ={}).upstreams["enum"]
    assert isinstance(settings, EnumSettings) and settings.rn_map == {"D2701": "25099"}
    assert [nameserver_address(s) for s in settings.nameservers] == [("192.0.2.53", 53), ("2001:db8::53", 5353)]
