"""What a source says about networks, as the wire's networks: by MCC/MNC, by name and country, by global title.

Sources describe a subscriber's current and serving networks in different
terms: an MCC/MNC (Messente-compatible APIs, tyntec, Twilio, ENUM with
``mcc``/``mnc``), only a name and a country (Infobip and HLR-Lookups give
names and prefixes, no MCC/MNC), or the E.164 global title of the serving
switch (osmo-hlr). This module turns each into a ``numbering.Network``: a
registry network where one matches, else the name passed through with its
country, so the client still learns what the source said.
"""

from __future__ import annotations

import re
from functools import cached_property

import phonenumbers

from numlookup.live.source import LiveAnswer
from numlookup.numbering import Resolver
from numlookup.numbering.countries import NON_GEOGRAPHIC, country_for_region
from numlookup.numbering.models import Country, Network, Resolution

_NOT_NAME = re.compile(r"[^0-9a-z]+")


def _folded(name: str) -> str:
    """A network name compared loosely: case, spaces and punctuation ignored (``T-Mobile US`` = ``tmobileus``)."""
    return _NOT_NAME.sub("", name.casefold())


class SourceNetworks:
    """Resolves the networks live answers name, against the resolver's registry and numbering data."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def porting(self, resolution: Resolution, answer: LiveAnswer) -> tuple[bool, Network | None]:
        """(does the answer know the current network, the network the number was ported to or None at home)."""
        if not answer.knows_porting:
            return False, None
        original = resolution.original_network
        if answer.ported_mccmnc is not None:
            if original is not None and original.mccmnc == answer.ported_mccmnc:
                return True, None
            return True, self.by_mccmnc(answer.ported_mccmnc, resolution.country)
        if answer.ported_name is not None:
            network = self.by_name(answer.ported_name, answer.ported_country, resolution.country)
            if original is not None and _same(network, original):
                return True, None
            return True, network
        return True, None  # the source says the number is where its range is: not ported

    def location(self, answer: LiveAnswer, resolution: Resolution) -> Network | None:
        """The network serving the subscriber: from the MCC/MNC, the name or the VLR/MSC global title a source gave."""
        if answer.roaming_mccmnc:
            return self.by_mccmnc(answer.roaming_mccmnc, None)
        if answer.roaming_name:
            return self.by_name(answer.roaming_name, answer.roaming_country, None)
        if answer.roaming_gt:
            [gt] = self.resolver.resolve(["+" + answer.roaming_gt.lstrip("+")])
            if gt.original_network is not None:
                return gt.original_network
            country = self.country_of_digits(answer.roaming_gt.lstrip("+"))
            if country is not None:  # not a valid number (GTs of switches often are not): its calling code
                return Network(mccmnc=None, name=None, country=country)
        return None

    def by_mccmnc(self, mccmnc: str, fallback: Country | None) -> Network | None:
        """A registry network by MCC/MNC; its country from the registry, else the MCC's, else ``fallback``."""
        record = self.resolver.networks.records.get(mccmnc)
        region = (record.countries[:1] or (None,))[0] if record is not None else None
        country = country_for_region(region) if region else self._mcc_countries.get(mccmnc[:3]) or fallback
        if country is None:
            return None
        return Network(mccmnc=mccmnc, name=record.name if record is not None else None, country=country)

    def by_name(self, name: str, calling_code: str | None, fallback: Country | None) -> Network | None:
        """A network a source names: the registry's, if exactly one of the country's networks has that name.

        Otherwise the name passes through with no MCC/MNC, in the country of
        ``calling_code`` (else ``fallback``); None if no country is known either.
        """
        country = self.country_of_digits(calling_code) if calling_code else None
        country = country or fallback
        if country is None:
            return None
        wanted = _folded(name)
        regions = set(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country.calling_code), ()))
        matches = {
            record.mccmnc
            for record in self.resolver.networks.records.values()
            if regions.intersection(record.countries)
            and wanted in {_folded(record.name), _folded(record.brand), _folded(record.operator)} - {""}
        }
        if len(matches) == 1:
            [mccmnc] = matches
            return Network(mccmnc=mccmnc, name=self.resolver.networks.records[mccmnc].name, country=country)
        return Network(mccmnc=None, name=name, country=country)

    @staticmethod
    def country_of_digits(digits: str) -> Country | None:
        """The country of the calling code that starts ``digits`` (a calling code alone, or a whole number)."""
        for length in (1, 2, 3):
            if len(digits) < length or not digits[:length].isdigit():
                break
            region = phonenumbers.region_code_for_country_code(int(digits[:length]))
            if region not in (phonenumbers.UNKNOWN_REGION, NON_GEOGRAPHIC):
                return country_for_region(region)
        return None

    @cached_property
    def _mcc_countries(self) -> dict[str, Country]:
        found: dict[str, Country] = {}
        for record in self.resolver.networks.records.values():
            if record.countries and record.mcc not in found:
                found[record.mcc] = country_for_region(record.countries[0])
        return found


def _same(network: Network | None, original: Network) -> bool:
    if network is None:
        return False
    if network.mccmnc and original.mccmnc:
        return network.mccmnc == original.mccmnc
    return bool(network.name and original.name and _folded(network.name) == _folded(original.name))
