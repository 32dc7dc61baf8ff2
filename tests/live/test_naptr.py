"""NAPTR substitution expressions and URI parameters, the part of ENUM dnspython leaves to its user.

The expressions are the ones providers publish (Sinch, Datafon, a Go MNP
client, PathFinder fixtures) and the corner cases RFC 3402 §3.2 defines:
escaped delimiters, backreferences, the ``i`` flag, sed-like partial matches.
"""

from __future__ import annotations

import pytest

from numlookup.live.naptr import Rule, is_pstn, pstn_uris, substitute, uri_parameters

AUS = "+4915112345678"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("!^(.*)$!tel:\\1;mcc=310;mnc=012!", "tel:+4915112345678;mcc=310;mnc=012"),  # Sinch
        ("!^.*$!tel:+73422461703;npdi;rn=d2701;rn-context=+7!", "tel:+73422461703;npdi;rn=d2701;rn-context=+7"),
        ("!^(.*)$!tel:\\1;npdi;spn=41077;q_stat=001!", "tel:+4915112345678;npdi;spn=41077;q_stat=001"),  # PathFinder
        ("!^\\+49(.*)$!tel:0\\1!", "tel:015112345678"),  # a group of a part
        ("!^\\+49151!tel:+49151!", "tel:+4915112345678"),  # sed-like: what the ERE does not match stays
        ("/^\\+(49)(151)(.*)$/\\3-\\2-\\1/", "12345678-151-49"),  # another delimiter, three groups
        ("!^(.*)$!sip:\\1\\!x@host!", "sip:+4915112345678!x@host"),  # an escaped delimiter in the replacement
        ("!^(.*)$!a\\\\b!", "a\\b"),  # an escaped backslash is one backslash
        ("!^(.*)$!country=null\\;mcc=604!", "country=null;mcc=604"),  # dig's ``\\;`` read as ``;``
        ("!^\\+49(15[[:digit:]])(.*)$!\\1!", "151"),  # a POSIX bracket class
        ("!^TEL(.*)$!x!i", None),  # no match, even ignoring case
        ("!^\\+4915(1)!\\1!i", "112345678"),
    ],
)
def test_substitution_expressions(expression: str, expected: str | None) -> None:
    assert substitute(expression, AUS) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "!^(.*)$!tel:\\1",  # two delimiters only
        "!^(.*)$!tel:\\1!x!",  # four
        "!^(.*)$!tel:\\1!g",  # an unknown flag
        "1^(.*)$1tel:\\11",  # a digit cannot delimit
        "!^(.*$!tel:\\1!",  # an ERE that does not compile
        "!^(.*)$!tel:\\2!",  # a group the ERE lacks
        "!^\\+44(.*)$!tel:\\1!",  # an ERE that does not match the number
        "",
    ],
)
def test_malformed_or_unmatched_expressions_give_nothing(expression: str) -> None:
    assert substitute(expression, AUS) is None


@pytest.mark.parametrize(
    ("service", "pstn"),
    [
        ("E2U+pstn:tel", True),
        ("E2U+pstn:sip", True),
        ("e2u+PSTN:SIP", True),
        ("E2U+sip+pstn:tel", True),  # RFC 6116 allows several Enumservices in one field
        ("E2U+sip", False),
        ("E2U+pstn", False),  # RFC 4769 requires the subtype
        ("E2U+pstn:mailto", False),
        ("SIP+D2U", False),
    ],
)
def test_only_pstn_enumservices_count(service: str, pstn: bool) -> None:
    assert is_pstn(service) is pstn


def test_terminal_pstn_records_in_order_then_preference() -> None:
    rules = [
        Rule(20, 10, "u", "E2U+pstn:tel", "!^(.*)$!tel:\\1;n=20-10!"),
        Rule(10, 90, "U", "E2U+pstn:sip", "!^(.*)$!sip:\\1@h;n=10-90!"),
        Rule(1, 1, "u", "E2U+sip", "!^.*$!sip:desk@h!"),  # not pstn
        Rule(2, 2, "", "E2U+pstn:tel", "!^.*$!x!"),  # not terminal
        Rule(3, 3, "u", "E2U+pstn:tel", "!^\\+44(.*)$!tel:x!"),  # does not match
        Rule(10, 20, "u", "E2U+pstn:tel", "!^(.*)$!tel:\\1;n=10-20!"),
    ]
    assert pstn_uris(rules, AUS) == [f"tel:{AUS};n=10-20", f"sip:{AUS}@h;n=10-90", f"tel:{AUS};n=20-10"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("tel:+73422461703;npdi;rn=d2701;rn-context=+7", {"npdi": "", "rn": "d2701", "rn-context": "+7"}),
        ("tel:+1-202-555-0123;NPDI=yes;RN=+1-215-555-0000", {"npdi": "yes", "rn": "+1-215-555-0000"}),
        (
            "sip:+12006005287;npdi;rn=+12044311399@1.2.3.4;user=phone",
            {"npdi": "", "rn": "+12044311399", "user": "phone"},
        ),
        ("sip:lnp.example.net;rn=%2B4917212345678", {"rn": "+4917212345678"}),
        (
            "country=null;operator=null;mcc=604;mnc=001;ported=false;err=0",
            {"country": "null", "operator": "null", "mcc": "604", "mnc": "001", "ported": "false", "err": "0"},
        ),
        ("tel:+4915112345678;mcc=262;mcc=263", {"mcc": "262"}),  # the first of a repeated name
        ("tel:+4915112345678", {}),
    ],
)
def test_uri_parameters(uri: str, expected: dict[str, str]) -> None:
    assert uri_parameters(uri) == expected
