"""osmo-hlr as a live source, asked over its CTRL interface.

osmo-hlr (the Osmocom HLR that private and community GSM/UMTS networks run)
answers ``GET <id> subscriber.by-msisdn-<digits>.info`` on its CTRL port (TCP
4259, IPA-framed) with the subscriber record. osmo-hlr 1.5.0 replies::

    GET_REPLY 7 subscriber.by-msisdn-4917200000001.info \\nid\\t1\\nimsi\\t262420000000001
    \\nmsisdn\\t4917200000001\\nnam_cs\\t1\\nnam_ps\\t1\\nvlr_number\\t491720000001
    \\nms_purged_cs\\t0\\nms_purged_ps\\t0\\nperiodic_lu_timer\\t0
    \\nperiodic_rau_tau_timer\\t0\\nlmsi\\t00000000

(one line on the wire; ``\\n``/``\\t`` are real newlines and tabs; ``vlr_number``
and ``sgsn_number`` appear only once a VLR/SGSN has sent an Update Location) and,
for an MSISDN it does not know, ``ERROR 7 No such subscriber.``.

Reading of the record:

- reachable: a VLR (CS) or SGSN (PS) holds the subscriber — its number is set
  and the matching ``ms_purged_*`` flag is 0 — *and* that domain's network
  access (``nam_cs``/``nam_ps``) is enabled. Anything else is unreachable.
  Caveat of osmo-hlr itself (1.5.0, and its source to date): a later Update
  Location does not clear ``ms_purged_*`` (a TODO in its lu_fsm.c), and
  ``vlr_number`` is never cleared either. So a subscriber whose VLR once sent
  Purge MS reads as unreachable until the flag is reset in osmo-hlr's
  database, and one whose VLR never purges reads as reachable at the last VLR.
- No subscriber: ``reachable=False`` with ``error="Unknown Subscriber"`` (the
  caller shows that as OFFLINE with the error, as an HLR answering "unknown
  subscriber" means the number is not served).
- Where: osmo-hlr stores the serving VLR's (or SGSN's) IPA unit name as
  ``vlr_number``/``sgsn_number``. When that name is listed in ``vlr_map`` the
  mapped MCC/MNC is returned as ``roaming_mccmnc``; otherwise, when it is an
  E.164 global title (5-15 digits, optionally with "+"), it is returned as
  ``roaming_gt`` ("+" and digits); any other name gives neither. Whether that means roaming
  (another country or network than the subscriber's home) is the caller's
  decision: it knows the home network, this source does not.

MSISDN spelling: osmo-hlr stores MSISDNs as bare digits (its VTY refuses
``+4917…``), and its CTRL parser rejects ``+`` inside a variable name
("GET variable contains invalid characters"). So numbers are sent without the
``+``: ``+4917200000001`` and ``4917200000001`` look up the same subscriber, and
the subscriber must be provisioned in international format without ``+``
(an HLR provisioned with national or short numbers will answer "Unknown
Subscriber" for their E.164 forms).

One persistent CTRL connection carries all queries; GETs are pipelined with
unique ids and matched on the reply's id (``ctrl``), so a batch costs one round
trip's latency rather than one per number.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from numlookup.live.ctrl import CtrlClient, CtrlReply
from numlookup.live.source import LiveAnswer, SourceError

log = logging.getLogger(__name__)

UNKNOWN_SUBSCRIBER = "Unknown Subscriber"
"""The per-item error for an MSISDN osmo-hlr has no subscriber for."""

# osmo-hlr's own text for a missing subscriber (src/ctrl.c, get_subscriber()).
_NO_SUCH_SUBSCRIBER = "No such subscriber."

# What osmo-hlr accepts as an MSISDN (osmo_msisdn_str_valid: 1 to 15 digits).
_MSISDN = re.compile(r"\+?([0-9]{1,15})")
# A VLR/SGSN name that is an E.164 global title rather than a free-form name.
# Five digits at least: a name like "1" or "101" is a label, not an address.
_GLOBAL_TITLE = re.compile(r"\+?([0-9]{5,15})")
_MCCMNC = re.compile(r"[0-9]{5,6}")


class OsmoHlrSource:
    """A ``LiveSource`` asking one osmo-hlr over CTRL.

    ``timeout`` (seconds) bounds one ``query`` as a whole — connecting, every
    GET, and the one reconnect — so a caller can guard it with a little more;
    ``max_concurrency``
    bounds GETs in flight on the connection (osmo-hlr answers them one after
    the other from one SQLite file, so a deep pipeline buys nothing but lets a
    big batch crowd out other requests). ``vlr_map`` maps VLR/SGSN names that
    are not E.164 global titles to MCC/MNC (e.g. ``{"vlr-berlin": "26242"}``).
    """

    name = "osmo-hlr"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4259,
        timeout: float = 2.0,
        max_concurrency: int = 32,
        vlr_map: Mapping[str, str] | None = None,
        max_batch: int = 100,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        for vlr, mccmnc in (vlr_map or {}).items():
            if not _MCCMNC.fullmatch(mccmnc):
                raise ValueError(f"vlr_map: {vlr!r} maps to {mccmnc!r}, not a 5- or 6-digit MCC/MNC")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.max_batch = max_batch
        self.vlr_map: dict[str, str] = dict(vlr_map or {})
        self._ctrl = CtrlClient(host, port, peer=self.name, max_in_flight=max_concurrency)

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """Look each number up; keys are the numbers as given.

        A number osmo-hlr could not hold (not 1-15 digits after an optional
        ``+``) gets ``reachable=None`` with an error and is not sent. An HLR
        answers from its live record, so ``max_age`` asks nothing of it.
        """
        answers: dict[str, LiveAnswer] = {}
        todo: dict[str, str] = {}
        for number in numbers:
            match = _MSISDN.fullmatch(number)
            if match is None:
                answers[number] = LiveAnswer(
                    number=number, reachable=None, error="Not a number osmo-hlr can look up", checked_at=_now()
                )
            else:
                todo[number] = match.group(1)
        if not todo:
            return answers
        variables = {number: f"subscriber.by-msisdn-{digits}.info" for number, digits in todo.items()}
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._ctrl.get_all(variables)
        except TimeoutError:
            # A CTRL GET is a single SQLite read: no answer in time means the
            # peer is stuck or is not osmo-hlr.
            self._ctrl.abort(SourceError("osmo-hlr timed out"))
            raise SourceError("osmo-hlr timed out") from None
        checked_at = _now()
        for number, reply in replies.items():
            answers[number] = self._answer(number, reply, checked_at)
        return answers

    async def close(self) -> None:
        await self._ctrl.close()

    def _answer(self, number: str, reply: CtrlReply, checked_at: datetime) -> LiveAnswer:
        if not reply.ok:
            if reply.value.strip() == _NO_SUCH_SUBSCRIBER:
                return LiveAnswer(number=number, reachable=False, error=UNKNOWN_SUBSCRIBER, checked_at=checked_at)
            # Any other refusal concerns this one lookup (osmo-hlr answered);
            # its text is osmo-hlr's internals, so the client gets a plain one.
            log.warning("osmo-hlr refused a subscriber lookup: %s", reply.value)
            return LiveAnswer(
                number=number, reachable=None, error="osmo-hlr could not look the number up", checked_at=checked_at
            )
        record = _parse_info(reply.value)
        cs = _serving(record, "vlr_number", "ms_purged_cs", "nam_cs")
        ps = _serving(record, "sgsn_number", "ms_purged_ps", "nam_ps")
        serving = cs or ps  # the MSC/VLR says more about where the subscriber is than the SGSN
        if serving is None:
            return LiveAnswer(number=number, reachable=False, checked_at=checked_at)
        # An operator's vlr_map entry wins over reading the name as a number:
        # it is the explicit statement of which network that node is in.
        mccmnc = self.vlr_map.get(serving)
        gt = None if mccmnc else _GLOBAL_TITLE.fullmatch(serving)
        return LiveAnswer(
            number=number,
            reachable=True,
            roaming_gt=f"+{gt.group(1)}" if gt else None,
            roaming_mccmnc=mccmnc,
            checked_at=checked_at,
        )


def _parse_info(value: str) -> dict[str, str]:
    """The ``key<TAB>value`` lines of an ``.info`` reply.

    A reply without the fields every osmo-hlr since 1.0 sends is not from an
    osmo-hlr we understand: that fails the source, not the number.
    """
    record: dict[str, str] = {}
    for line in value.split("\n"):
        key, tab, field = line.partition("\t")
        if tab:
            record[key] = field.strip()
    if not {"imsi", "nam_cs", "nam_ps"} <= record.keys():
        raise SourceError("osmo-hlr sent an unreadable answer")
    return record


def _serving(record: Mapping[str, str], number_key: str, purged_key: str, nam_key: str) -> str | None:
    """The serving node's name in one domain, or None when that domain cannot reach the subscriber."""
    node = record.get(number_key, "")
    if not node or record.get(purged_key) == "1" or record.get(nam_key) != "1":
        return None
    return node


def _now() -> datetime:
    return datetime.now(UTC)
