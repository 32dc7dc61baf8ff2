"""Countries as the wire shows them: English short name, ISO alpha-3, calling code.

Names come from libphonenumber's CLDR-derived locale data ("South Korea", not
pycountry's formal "Korea, Republic of"); alpha-3 codes from pycountry. The few
regions libphonenumber knows that ISO 3166-1 does not are listed in ``_EXTRA``.

Both sources are slow to load (phonenumbers' geodata alone is half a second), so
the compiled plan caches :func:`country_table` beside its arrays and hands it
to :func:`remember` on a warm start; the sources are read only for a region the
table lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import phonenumbers

from numlookup.numbering.models import Country

NON_GEOGRAPHIC = "001"

# region -> (English name, alpha-3) for codes outside ISO 3166-1 or without a CLDR name.
_EXTRA: dict[str, tuple[str, str]] = {
    "XK": ("Kosovo", "XKX"),  # user-assigned code, as used by the EU and IMF
    "AC": ("Ascension Island", "SHN"),  # part of Saint Helena, Ascension and Tristan da Cunha
    "TA": ("Tristan da Cunha", "SHN"),
    # International networks (+800, +808, +870, +881, +882, +883, +888, +979): no country.
    # "XXX" lies in ISO 3166-1's user-assigned range, so it can never clash with a real one.
    NON_GEOGRAPHIC: ("International Networks", "XXX"),
}


# region -> (English name, alpha-3), as the compiled plan's cache holds them.
_KNOWN: dict[str, tuple[str, str]] = {}


def _english_name(region: str) -> str | None:
    from phonenumbers.geodata.locale import LOCALE_DATA

    names = LOCALE_DATA.get(region)
    if not names:
        return None
    name = names.get("en")
    while name and name.startswith("*"):  # "*aa" means "same as the 'aa' entry"
        name = names.get(name[1:])
    return name or None


def _name_and_alpha3(region: str) -> tuple[str, str]:
    """From the sources: ``_EXTRA``, libphonenumber's English name, pycountry."""
    if region in _EXTRA:
        return _EXTRA[region]
    import pycountry

    record = pycountry.countries.get(alpha_2=region)
    alpha3 = record.alpha_3 if record else region
    name = _english_name(region) or (record.name if record else region)
    return name, alpha3


def country_table() -> dict[str, tuple[str, str]]:
    """Every region libphonenumber knows (and ``001``): its English name and alpha-3, for the plan's cache."""
    return {region: _name_and_alpha3(region) for region in sorted({*phonenumbers.SUPPORTED_REGIONS, NON_GEOGRAPHIC})}


def remember(table: Mapping[str, tuple[str, str]]) -> None:
    """Answer these regions from ``table`` (the plan cache's copy of :func:`country_table`)."""
    _KNOWN.update(table)


@cache
def country_for(region: str, calling_code: int) -> Country:
    """The country of ``region``; ``calling_code`` matters only for non-geographic numbers."""
    known = _KNOWN.get(region)
    name, alpha3 = known if known is not None else _name_and_alpha3(region)
    return Country(region=region, alpha3=alpha3, name=name, calling_code=str(calling_code))


def country_for_region(region: str) -> Country:
    return country_for(region, phonenumbers.country_code_for_region(region))
