"""Countries as the wire shows them: English short name, ISO alpha-3, calling code.

Names come from libphonenumber's CLDR-derived locale data ("South Korea", not
pycountry's formal "Korea, Republic of"); alpha-3 codes from pycountry. The few
regions libphonenumber knows that ISO 3166-1 does not are listed in ``_EXTRA``.
"""

from __future__ import annotations

from functools import cache

import phonenumbers
import pycountry
from phonenumbers.geodata.locale import LOCALE_DATA

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


def _english_name(region: str) -> str | None:
    names = LOCALE_DATA.get(region)
    if not names:
        return None
    name = names.get("en")
    while name and name.startswith("*"):  # "*aa" means "same as the 'aa' entry"
        name = names.get(name[1:])
    return name or None


@cache
def country_for(region: str, calling_code: int) -> Country:
    """The country of ``region``; ``calling_code`` matters only for non-geographic numbers."""
    if region in _EXTRA:
        name, alpha3 = _EXTRA[region]
    else:
        record = pycountry.countries.get(alpha_2=region)
        alpha3 = record.alpha_3 if record else region
        name = _english_name(region) or (record.name if record else region)
    return Country(region=region, alpha3=alpha3, name=name, calling_code=str(calling_code))


def country_for_region(region: str) -> Country:
    return country_for(region, phonenumbers.country_code_for_region(region))
