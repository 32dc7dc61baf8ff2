"""The ``enum`` kind: which network serves a number, asked of an ENUM portability server (RFC 6116 NAPTR over DNS).

One NAPTR query per number, UDP, for the number's ENUM domain under ``suffix``
(``+4915112345678`` is ``8.7.6.5.4.3.2.1.1.5.1.9.4.e164.arpa``), sent to the
configured nameservers in order: one that times out, refuses (REFUSED), fails
(SERVFAIL) or cannot be reached is passed over for the next, and when every one
failed the source has failed (``SourceError``: the route's next source takes
the number). dnspython's asyncio resolver does the DNS; ``naptr`` turns the
records into URIs and parameters; this module says what they mean:

- ``mcc``/``mnc`` (Sinch, Datafon): the network the number is served by now;
- ``rn`` (RFC 4694): a routing number, mapped to an MCC/MNC by ``rn_map``, or,
  when it is itself a phone number (``rn=+4917…``, or national digits with an
  ``rn-context`` of ``+CC``), resolved to its range holder by the numbering data;
- ``npdi`` without ``rn`` (the portability database was dipped and gave no
  routing number), or ``ported=false``: not ported;
- NXDOMAIN (the server has no record for the number): not ported.

Anything else (a record with no portability parameter, a routing number we
cannot place, no E2U+pstn record at all) is an answer that cannot tell, with
the reason, so the route's next source is asked. ENUM never says whether a
subscriber is reachable or roaming: ``reachable`` is always None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import dns.asyncresolver
import dns.e164
import dns.exception
import dns.name
import dns.nameserver
import dns.rdtypes.IN.NAPTR
import dns.resolver

from numlookup.live.naptr import Rule, pstn_uris, uri_parameters
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.numbering import Resolver
from numlookup.source_settings import EnumSettings, nameserver_address

_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")  # RFC 3966 visual separators in a tel URI's digits
_ABSENT = ("", "null")  # Datafon writes ``mcc=null`` for a value it does not know


def _rn_key(rn: str) -> str:
    """A routing number compared loosely: visual separators and case ignored (``d2701`` is ``D2701``)."""
    return rn.translate(_VISUAL_SEPARATORS).upper()


def _value(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return None if value is None or value.lower() in _ABSENT else value


class EnumSource:
    """``name`` is ``upstream:<name>``; one number per query (``max_batch`` 1)."""

    max_batch = 1

    def __init__(
        self,
        name: str,
        nameservers: Sequence[tuple[str, int]],
        *,
        suffix: str = "e164.arpa",
        rn_map: Mapping[str, str] | None = None,
        timeout: float = 3.0,
        resolver: Resolver | None = None,
    ) -> None:
        self.name = f"upstream:{name}"
        self.timeout = timeout
        self._origin = dns.name.from_text(suffix)  # absolute: no search list ever applies
        self._rn_map = {_rn_key(rn): mccmnc for rn, mccmnc in (rn_map or {}).items()}
        self._numbering = resolver
        self._dns = dns.asyncresolver.Resolver(configure=False)  # no /etc/resolv.conf: only our servers
        self._dns.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
        self._dns.timeout = timeout  # each server's turn
        self._dns.lifetime = timeout * len(nameservers)  # every server its turn, then the source has failed
        self._dns.retry_servfail = False  # a server that answers SERVFAIL is passed over, not asked again
        self._dns.cache = None  # answers are cached by the live cache, with the porting TTL

    @classmethod
    def from_settings(cls, name: str, settings: EnumSettings, max_connections: int) -> EnumSource:
        """``max_connections`` is not needed: UDP has no pool, and the dispatcher bounds queries in flight."""
        where = f"upstreams.{name}.nameservers"
        return cls(
            name,
            [nameserver_address(server, where) for server in settings.nameservers],
            suffix=settings.suffix,
            rn_map=settings.rn_map,
            timeout=settings.timeout,
        )

    def use_numbering(self, resolver: Resolver) -> None:
        """Place routing numbers that are phone numbers with the server's numbering data."""
        self._numbering = resolver

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One NAPTR query per number, concurrently; a failure of every nameserver fails the call."""
        answers = await asyncio.gather(*(self._ask(number) for number in numbers))
        return {answer.number: answer for answer in answers}

    async def _ask(self, number: str) -> LiveAnswer:
        now = datetime.now(UTC)
        try:
            found = await self._dns.resolve(
                dns.e164.from_e164(number, self._origin), "NAPTR", raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:  # no record for the number: it is where its range is
            return LiveAnswer(number=number, reachable=None, ported_known=True, checked_at=now)
        except dns.resolver.NoNameservers as failed:
            raise SourceError(f"{self.name}: no nameserver answered ({self._failures(failed)})") from None
        except dns.resolver.LifetimeTimeout as failed:
            raise SourceError(f"{self.name} timed out ({self._failures(failed)})") from None
        except dns.exception.DNSException:
            raise SourceError(f"{self.name} sent an answer that is not an ENUM answer") from None
        rules = [
            Rule(
                order=int(record.order),
                preference=int(record.preference),
                flags=bytes(record.flags).decode("utf-8", "replace"),
                service=bytes(record.service).decode("utf-8", "replace"),
                regexp=bytes(record.regexp).decode("utf-8", "replace"),
            )
            for record in (found.rrset or ())
            if isinstance(record, dns.rdtypes.IN.NAPTR.NAPTR)
        ]
        return replace(self.answer(number, pstn_uris(rules, "+" + number.lstrip("+"))), checked_at=now)

    def answer(self, number: str, uris: Sequence[str]) -> LiveAnswer:
        """What the URIs (best first) say: the first that tells the current network or "not ported" wins.

        A URI that tells neither is passed over for the next (RFC 3403 lets a
        client pass over a record it cannot use); if none tells, the answer
        cannot tell, with the best URI's reason.
        """
        reasons: list[str] = []
        for uri in uris:
            answer = self._from_parameters(number, uri_parameters(uri))
            if answer.says_something:
                return answer
            reasons.append(answer.error or "")
        reason = reasons[0] if reasons else "has no E2U+pstn NAPTR record for the number"
        return LiveAnswer(number=number, reachable=None, ported_known=False, error=f"{self.name} {reason}")

    def _from_parameters(self, number: str, params: Mapping[str, str]) -> LiveAnswer:
        unknown = LiveAnswer(number=number, reachable=None, ported_known=False)
        err = _value(params, "err")
        if err is not None and err != "0":  # Datafon's own error code; 0 is success
            return replace(unknown, error=f"answered err={err}")
        mcc, mnc = _value(params, "mcc"), _value(params, "mnc")
        if mcc and mnc and mcc.isdigit() and mnc.isdigit() and len(mcc) == 3 and len(mnc) in (2, 3):
            return LiveAnswer(number=number, reachable=None, ported_known=True, ported_mccmnc=self._mccmnc(mcc, mnc))
        rn = _value(params, "rn")
        if rn is not None:
            placed = self._routing_network(number, rn, _value(params, "rn-context"))
            return placed or replace(
                unknown, error=f"answered routing number {rn}, which neither rn_map nor the numbering data knows"
            )
        ported = (_value(params, "ported") or "").lower()
        if ported == "true":
            return replace(unknown, error="says the number is ported but names no network")
        if ported == "false" or "npdi" in params:
            return LiveAnswer(number=number, reachable=None, ported_known=True)  # dipped, no routing number
        return replace(unknown, error="answered a record with no portability parameter (rn, npdi, mcc/mnc)")

    def _mccmnc(self, mcc: str, mnc: str) -> str:
        """MCC+MNC, with a 3-digit MNC padded by a leading 0 (Datafon's ``mnc=001``) read as the registry's 2-digit one.

        Where the MCC's networks have 2-digit MNCs, ``604``/``001`` can only mean
        60401; kept as 604001 it would name no network and compare unequal to
        the number's own range holder.
        """
        mccmnc = mcc + mnc
        if self._numbering is not None and len(mnc) == 3 and mnc[0] == "0":
            records = self._numbering.networks.records
            if mccmnc not in records and mcc + mnc[1:] in records:
                return mcc + mnc[1:]
        return mccmnc

    def _routing_network(self, number: str, rn: str, context: str | None) -> LiveAnswer | None:
        """The network of a routing number: ``rn_map``, else its range holder when it is a phone number."""
        mapped = self._rn_map.get(_rn_key(rn))
        if mapped is not None:
            return LiveAnswer(number=number, reachable=None, ported_known=True, ported_mccmnc=mapped)
        digits = rn.translate(_VISUAL_SEPARATORS)
        prefix = (context or "").translate(_VISUAL_SEPARATORS)
        if digits.startswith("+") and digits[1:].isdigit():  # a global rn: an E.164 number
            e164 = digits
        elif digits.isdigit() and prefix.startswith("+") and prefix[1:].isdigit():  # national, in a +CC context
            e164 = prefix + digits
        else:
            return None
        if self._numbering is None:
            return None
        [resolution] = self._numbering.resolve([e164])
        network = resolution.original_network
        if network is None:
            return None
        if network.mccmnc is not None:
            return LiveAnswer(number=number, reachable=None, ported_known=True, ported_mccmnc=network.mccmnc)
        if network.name is not None:
            return LiveAnswer(
                number=number,
                reachable=None,
                ported_known=True,
                ported_name=network.name,
                ported_country=network.country.calling_code,
            )
        return None  # the numbering data knows the country only: no network to name

    def _failures(self, failed: dns.exception.DNSException) -> str:
        """What each nameserver did, by its place in ``nameservers`` (addresses are not for clients' eyes)."""
        places = {str(server): i + 1 for i, server in enumerate(self._dns.nameservers)}
        said: dict[int, str] = {}
        for error in failed.kwargs.get("errors") or ():
            server, what = str(error[0]), error[3]
            if isinstance(what, str):
                text = f"answered {what}"  # an rcode: REFUSED, SERVFAIL, NOTIMP, …
            elif isinstance(what, dns.exception.Timeout):
                text = "timed out"
            elif isinstance(what, OSError):
                text = "is unreachable"
            else:
                text = "sent an answer that is not DNS"
            said[places.get(server, 0)] = text
        if not said:
            return "no answer"
        return "; ".join(f"nameserver {place} {text}" for place, text in sorted(said.items()))

    async def close(self) -> None:
        """Nothing to close: each query opens and closes its own UDP socket."""
