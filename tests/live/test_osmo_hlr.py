"""OsmoHlrSource against a real osmo-hlr, and against peers that misbehave on purpose.

Subscribers are provisioned over osmo-hlr's VTY and attached by a test VLR over
GSUP (see ``tests/peers/osmo_hlr.py``), so every answer below is what osmo-hlr itself
says over CTRL. Each test uses its own IMSIs/MSISDNs on the shared instance;
tests that stop or restart osmo-hlr start their own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from numlookup.live import ipa
from numlookup.live.osmo_hlr import UNKNOWN_SUBSCRIBER, OsmoHlrSource
from numlookup.live.source import LiveAnswer, SourceError
from tests.peers.osmo_hlr import GsupError, HarnessError, OsmoHlr, osmo_hlr, osmo_hlr_binary, start_osmo_hlr
from tests.peers.tcp import CtrlRelay, against

__all__ = ["osmo_hlr", "osmo_hlr_binary"]  # fixtures used below, imported from the harness

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
_serial = itertools.count(1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def subscriber(hlr: OsmoHlr, mode: str = "cs+ps") -> tuple[str, str]:
    """A fresh (IMSI, MSISDN digits) pair provisioned on ``hlr``."""
    n = next(_serial)
    imsi, msisdn = f"26242{n:010d}", f"49172{n:08d}"
    hlr.create_subscriber(imsi, msisdn, mode=mode)
    return imsi, msisdn


async def ask(host: str, numbers: list[str], **options: Any) -> dict[str, LiveAnswer]:
    source = OsmoHlrSource(host, **options)
    try:
        return await source.query(numbers)
    finally:
        await source.close()


def ask_one(hlr: OsmoHlr, number: str, **options: Any) -> LiveAnswer:
    return run(ask(hlr.address, [number], **options))[number]


# --- what osmo-hlr says about a subscriber --------------------------------------------------


def test_cs_attached_to_e164_vlr_is_reachable_with_its_global_title(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "491720000001")

    answer = ask_one(osmo_hlr, f"+{msisdn}")

    assert answer.reachable is True
    assert answer.error is None
    assert answer.roaming_gt == "+491720000001"
    assert answer.roaming_mccmnc is None
    assert answer.roaming is None  # the caller decides roaming against the home network
    assert answer.checked_at is not None


def test_foreign_vlr_global_title_is_passed_on_for_the_caller_to_resolve(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "37250000001")  # an Estonian VLR serving a German subscriber

    answer = ask_one(osmo_hlr, f"+{msisdn}")

    assert (answer.reachable, answer.roaming_gt, answer.roaming_mccmnc) == (True, "+37250000001", None)


def test_named_vlr_is_mapped_to_mccmnc_through_vlr_map(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "vlr-berlin")
    unmapped_imsi, unmapped_msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(unmapped_imsi, "vlr-nowhere")

    answers = run(ask(osmo_hlr.address, [f"+{msisdn}", f"+{unmapped_msisdn}"], vlr_map={"vlr-berlin": "26201"}))

    mapped = answers[f"+{msisdn}"]
    assert (mapped.reachable, mapped.roaming_mccmnc, mapped.roaming_gt) == (True, "26201", None)
    unmapped = answers[f"+{unmapped_msisdn}"]
    assert (unmapped.reachable, unmapped.roaming_mccmnc, unmapped.roaming_gt) == (True, None, None)


def test_vlr_map_wins_over_reading_a_numeric_name_as_global_title(osmo_hlr: OsmoHlr) -> None:
    listed_imsi, listed_msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(listed_imsi, "4917299")
    short_imsi, short_msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(short_imsi, "101")  # a label, too short for an E.164 address

    answers = run(ask(osmo_hlr.address, [f"+{listed_msisdn}", f"+{short_msisdn}"], vlr_map={"4917299": "26203"}))

    listed, short = answers[f"+{listed_msisdn}"], answers[f"+{short_msisdn}"]
    assert (listed.reachable, listed.roaming_mccmnc, listed.roaming_gt) == (True, "26203", None)
    assert (short.reachable, short.roaming_mccmnc, short.roaming_gt) == (True, None, None)


def test_ps_attached_to_sgsn_is_reachable(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "sgsn-tallinn", cn_domain="ps")

    answer = ask_one(osmo_hlr, f"+{msisdn}", vlr_map={"sgsn-tallinn": "24801"})

    assert (answer.reachable, answer.roaming_mccmnc) == (True, "24801")


def test_vlr_is_preferred_over_sgsn_for_where_the_subscriber_is(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "sgsn-tallinn", cn_domain="ps")
    osmo_hlr.attach(imsi, "491720000002", cn_domain="cs")

    answer = ask_one(osmo_hlr, f"+{msisdn}", vlr_map={"sgsn-tallinn": "24801"})

    assert (answer.reachable, answer.roaming_gt, answer.roaming_mccmnc) == (True, "+491720000002", None)


def test_never_attached_is_unreachable(osmo_hlr: OsmoHlr) -> None:
    _imsi, msisdn = subscriber(osmo_hlr)

    answer = ask_one(osmo_hlr, f"+{msisdn}")

    assert (answer.reachable, answer.error, answer.roaming_gt, answer.roaming_mccmnc) == (False, None, None, None)


def test_network_access_mode_none_is_unreachable(osmo_hlr: OsmoHlr) -> None:
    # Provisioned without access: osmo-hlr refuses the attach itself.
    imsi, msisdn = subscriber(osmo_hlr, mode="none")
    with pytest.raises(GsupError) as refused:
        osmo_hlr.attach(imsi, "491720000001")
    assert refused.value.cause == 0x0B  # GMM cause "PLMN not allowed"
    assert ask_one(osmo_hlr, f"+{msisdn}").reachable is False

    # Attached, then access withdrawn: osmo-hlr keeps vlr_number, but nam_cs is 0.
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "491720000001")
    assert ask_one(osmo_hlr, f"+{msisdn}").reachable is True
    osmo_hlr.set_network_access_mode(imsi, "none")
    answer = ask_one(osmo_hlr, f"+{msisdn}")
    assert (answer.reachable, answer.roaming_gt) == (False, None)


def test_domain_without_access_does_not_count(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "sgsn-tallinn", cn_domain="ps")
    osmo_hlr.set_network_access_mode(imsi, "cs")  # PS withdrawn; CS allowed but not attached

    assert ask_one(osmo_hlr, f"+{msisdn}").reachable is False


def test_purged_subscriber_is_unreachable(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "491720000001")
    osmo_hlr.purge(imsi, "491720000001")

    answer = ask_one(osmo_hlr, f"+{msisdn}")

    assert (answer.reachable, answer.roaming_gt) == (False, None)


def test_unknown_msisdn_is_unknown_subscriber(osmo_hlr: OsmoHlr) -> None:
    answer = ask_one(osmo_hlr, "+4917299999999")

    assert answer == LiveAnswer(
        number="+4917299999999", reachable=False, error=UNKNOWN_SUBSCRIBER, checked_at=answer.checked_at
    )


def test_msisdn_spelling_with_and_without_plus(osmo_hlr: OsmoHlr) -> None:
    imsi, msisdn = subscriber(osmo_hlr)
    osmo_hlr.attach(imsi, "491720000001")

    answers = run(ask(osmo_hlr.address, [f"+{msisdn}", msisdn]))

    assert set(answers) == {f"+{msisdn}", msisdn}  # keyed as given
    assert answers[f"+{msisdn}"].reachable is True
    assert answers[msisdn].reachable is True
    # osmo-hlr itself only stores bare digits: its VTY refuses the "+" form.
    with pytest.raises(HarnessError, match="MSISDN invalid"):
        osmo_hlr.update_msisdn(imsi, f"+{msisdn}")


def test_numbers_osmo_hlr_cannot_hold_are_answered_without_asking(osmo_hlr: OsmoHlr) -> None:
    answers = run(ask(osmo_hlr.address, ["+49x", "+1234567890123456", ""]))

    for number, answer in answers.items():
        assert answer.reachable is None, number
        assert answer.error, number


def test_batch_is_pipelined_on_one_connection(osmo_hlr: OsmoHlr, tmp_path: Path) -> None:
    first = next(_serial)
    count = 60
    imsis = [f"26242{first + i:010d}" for i in range(count)]
    msisdns = [f"49172{first + i:08d}" for i in range(count)]
    for _ in range(count):
        next(_serial)
    commands: list[str] = []
    for imsi, msisdn in zip(imsis, msisdns, strict=True):
        commands += [f"subscriber imsi {imsi} create", f"subscriber imsi {imsi} update msisdn {msisdn}"]
    osmo_hlr.vty(*commands)
    attached = set(range(0, count, 3))
    for i in attached:
        osmo_hlr.attach(imsis[i], "491720000001")
    unknown = [f"+49173{n:08d}" for n in range(10)]
    numbers = [f"+{m}" for m in msisdns] + unknown

    async def scenario() -> tuple[dict[str, LiveAnswer], CtrlRelay]:
        relay = await CtrlRelay.start(osmo_hlr.address, osmo_hlr.ctrl_port)
        source = OsmoHlrSource(relay.host, relay.port, max_concurrency=16)
        try:
            answers = await source.query(numbers)
            # Two callers at once share the connection too.
            again, more = await asyncio.gather(source.query(numbers[:5]), source.query(numbers[-5:]))
            for number, answer in {**again, **more}.items():
                assert (answer.reachable, answer.error) == (answers[number].reachable, answers[number].error)
            return answers, relay
        finally:
            await source.close()
            await relay.close()

    answers, relay = run(scenario())

    assert len(answers) == len(numbers)
    for i, msisdn in enumerate(msisdns):
        assert answers[f"+{msisdn}"].reachable is (i in attached), msisdn
    for number in unknown:
        assert answers[number].error == UNKNOWN_SUBSCRIBER
    assert relay.connections == 1  # every query on one persistent connection
    assert relay.max_outstanding > 1  # GETs were in flight together, not one round trip each
    assert relay.max_outstanding <= 16  # bounded by max_concurrency


# --- when the source as a whole fails ---------------------------------------------------------


def test_stopped_osmo_hlr_is_a_source_error(osmo_hlr_binary: str, tmp_path: Path) -> None:
    hlr = start_osmo_hlr(tmp_path, osmo_hlr_binary)
    hlr.stop()

    with pytest.raises(SourceError, match="^osmo-hlr refused the connection$"):
        run(ask(hlr.address, ["+4917200000001"]))


def test_reconnects_after_osmo_hlr_restart(osmo_hlr_binary: str, tmp_path: Path) -> None:
    hlr = start_osmo_hlr(tmp_path, osmo_hlr_binary)
    try:
        imsi, msisdn = subscriber(hlr)
        hlr.attach(imsi, "491720000001")

        async def scenario() -> None:
            source = OsmoHlrSource(hlr.address, timeout=2.0)
            try:
                assert (await source.query([f"+{msisdn}"]))[f"+{msisdn}"].reachable is True
                # Restarted while the event loop was busy elsewhere (this call
                # blocks it on purpose): the source still holds the dead
                # connection, finds out only when it sends, and asks again on
                # a fresh one without the caller noticing.
                hlr.restart()
                assert (await source.query([f"+{msisdn}"]))[f"+{msisdn}"].reachable is True
                # Restarted while the loop watched: the reader sees the hang-up.
                await asyncio.to_thread(hlr.restart)
                assert (await source.query([f"+{msisdn}"]))[f"+{msisdn}"].reachable is True
                # Down: a source error. Back up: the same source object recovers.
                await asyncio.to_thread(hlr.stop)
                with pytest.raises(SourceError, match="refused"):
                    await source.query([f"+{msisdn}"])
                await asyncio.to_thread(hlr.start)
                assert (await source.query([f"+{msisdn}"]))[f"+{msisdn}"].reachable is True
            finally:
                await source.close()

        run(scenario())
    finally:
        hlr.stop()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"this is not IPA at all\r\n", id="raw-bytes"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", id="http"),
        pytest.param(ipa.encode(ipa.STREAM_OSMO, b"HELLO 1 there", ipa.EXT_CTRL), id="ipa-framed-nonsense"),
        pytest.param(ipa.encode(ipa.STREAM_OSMO, b"", None), id="osmo-frame-without-extension"),
    ],
)
def test_garbage_answer_is_a_source_error(garbage: bytes) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # once asked, answer nonsense and keep the line open
        writer.write(garbage)
        await writer.drain()
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(SourceError, match="^osmo-hlr sent an unreadable answer$"):
        run(against(respond, lambda host, port: ask(host, ["+4917200000001"], port=port, timeout=5.0)))
    assert time.monotonic() - started < 4  # recognised at once, not by waiting for the timeout


def test_silent_peer_is_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(SourceError, match="^osmo-hlr timed out$"):
        run(against(silent, lambda host, port: ask(host, ["+4917200000001", "+4917200000002"], port=port, timeout=0.5)))
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3


def test_peer_that_hangs_up_is_a_source_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    with pytest.raises(SourceError, match="^osmo-hlr closed the connection$"):
        run(against(hang_up, lambda host, port: ask(host, ["+4917200000001"], port=port, timeout=2.0)))


def test_ccm_ping_and_identity_requests_are_answered() -> None:
    """A CTRL peer may ping us or ask who we are before answering; we must reply and carry on."""
    seen: list[bytes] = []

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        msg = await ipa.read_message(reader)
        cmd_id = msg.payload.split(b" ")[1].decode()
        writer.write(ipa.encode(ipa.STREAM_CCM, bytes((ipa.CCM_ID_GET, 0x01, ipa.IDTAG_UNITNAME))))
        writer.write(ipa.encode(ipa.STREAM_CCM, bytes((ipa.CCM_PING,))))
        await writer.drain()
        for _ in range(2):
            seen.append((await ipa.read_message(reader)).payload)
        writer.write(ipa.encode(ipa.STREAM_OSMO, f"ERROR {cmd_id} No such subscriber.".encode(), ipa.EXT_CTRL))
        await writer.drain()
        await asyncio.sleep(10)

    answers = run(against(chatty, lambda host, port: ask(host, ["+4917200000001"], port=port, timeout=2.0)))

    assert answers["+4917200000001"].error == UNKNOWN_SUBSCRIBER
    resp, pong = seen
    assert resp[0] == ipa.CCM_ID_RESP
    assert ipa.parse_id_resp(resp[1:])[ipa.IDTAG_UNITNAME] == "numlookup"
    assert pong == bytes((ipa.CCM_PONG,))
