"""ENUM's NAPTR records turned into URIs (RFC 6116, RFC 3402 §3.2), and the parameters of those URIs.

Why code of our own: dnspython reads NAPTR records off the wire but does not
apply them. An ENUM client keeps the terminal (flag ``u``) records of the
Enumservices it understands, orders them by ``order`` then ``preference``, and
applies each one's regexp field, a substitution expression, to the Application
Unique String (the number as ``+`` and digits) to get a URI. For portability the
Enumservice is ``pstn`` with subtype ``tel`` or ``sip`` (RFC 4769), and the
URI's parameters carry the answer: RFC 4694's ``rn``, ``rn-context`` and ``npdi``,
or the ``mcc``/``mnc``/``ported`` some providers add. This module does that and
nothing else: no I/O, no settings, no idea what the parameters mean.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

PSTN_SERVICES = frozenset({"pstn:tel", "pstn:sip"})

# POSIX bracket classes (ERE) as Python spells them inside brackets: ``[[:digit:]]`` is ``[0-9]``.
_POSIX_CLASSES = {
    "[:digit:]": "0-9",
    "[:alpha:]": "A-Za-z",
    "[:alnum:]": "A-Za-z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:space:]": r" \t\n\r\f\v",
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class Rule:
    """One NAPTR record's fields as ENUM reads them (RFC 3403 §4.1), text decoded."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str


def is_pstn(service: str) -> bool:
    """Whether the service field names E2U+pstn:tel or E2U+pstn:sip.

    RFC 6116 §3.4.3: ``E2U`` and then one or more ``+type[:subtype]``, compared
    without regard to case (``E2U+pstn:SIP`` is seen in the field).
    """
    parts = service.lower().split("+")
    return parts[0] == "e2u" and any(part in PSTN_SERVICES for part in parts[1:])


def pstn_uris(rules: Iterable[Rule], aus: str) -> list[str]:
    """The URIs of the terminal E2U+pstn records whose expression applies to ``aus``, best first.

    Best is the lowest ``order``, then the lowest ``preference`` (RFC 3403 §4.1).
    Non-terminal records (no ``u`` flag: "look the replacement up next") are not
    followed: RFC 6116 §3.4.1 leaves them to clients that want them, and no
    portability service answers with them.
    """
    uris: list[str] = []
    for rule in sorted(rules, key=lambda r: (r.order, r.preference)):
        if "u" in rule.flags.lower() and is_pstn(rule.service):
            uri = substitute(rule.regexp, aus)
            if uri:
                uris.append(uri)
    return uris


def substitute(expression: str, subject: str) -> str | None:
    """Apply a NAPTR substitution expression ``<d>ERE<d>replacement<d>[i]`` to ``subject``, as sed's ``s`` does.

    RFC 3402 §3.2: the delimiter is the expression's first character; an escaped
    delimiter (``\\!``) stands for itself; ``\\1``…``\\9`` in the replacement are the
    ERE's groups; the flag ``i`` ignores case. The part of ``subject`` the ERE
    matches is replaced, the rest kept (ENUM's ``^.*$`` matches all of it).
    Returns None for a malformed expression, or one whose ERE does not match.
    """
    if len(expression) < 3 or expression[0].isdigit() or expression[0] in "\\i":
        return None
    delimiter = expression[0]
    parts = _split(expression[1:], delimiter)
    if parts is None:
        return None
    ere, replacement, flags = parts
    flag_text = "".join(c for _, c in flags)
    if flag_text.lower() not in ("", "i"):
        return None
    pattern = "".join(
        re.escape(c) if kind == "escaped" and c == delimiter else _regex_token(kind, c) for kind, c in ere
    )
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    try:
        match = re.compile(pattern, re.IGNORECASE if flag_text else 0).search(subject)
    except re.error:
        return None
    if match is None:
        return None
    expanded: list[str] = []
    for kind, c in replacement:
        if kind == "escaped" and c.isdigit() and c != "0":
            if int(c) > (match.re.groups or 0):
                return None  # a backreference to a group the ERE does not have
            expanded.append(match.group(int(c)) or "")
        else:
            expanded.append(c)  # ``\\x`` is a literal x: ``\\\\`` a backslash, ``\\!`` the delimiter, ``\\;`` a ;
    return subject[: match.start()] + "".join(expanded) + subject[match.end() :]


def _regex_token(kind: str, char: str) -> str:
    return "\\" + char if kind == "escaped" else char


def _split(body: str, delimiter: str) -> list[list[tuple[str, str]]] | None:
    """The ERE, replacement and flags after the first delimiter, as (``char``|``escaped``, character) tokens.

    None unless exactly two more unescaped delimiters follow (three in all).
    """
    parts: list[list[tuple[str, str]]] = [[]]
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            parts[-1].append(("escaped", body[i + 1]))
            i += 2
            continue
        if char == delimiter:
            parts.append([])
        else:
            parts[-1].append(("char", char))
        i += 1
    return parts if len(parts) == 3 else None


def uri_parameters(uri: str) -> dict[str, str]:
    """The ``;name=value`` parameters of a tel or sip URI, names lowercased; a flag (``;npdi``) has value "".

    A tel URI's parameters follow its number (RFC 3966, RFC 4694). In a sip URI
    the telephone number's parameters sit in the user part before ``@``
    (``sip:+49…;npdi;rn=+49…@host;user=phone``, RFC 3261 §19.1.6) and the URI's
    own follow the host: both are read. A result without a scheme (Datafon
    answers ``country=…;operator=…;mcc=…;mnc=…;ported=…``) is read as parameters
    alone. Values are percent-decoded; the first of a repeated name wins.
    """
    scheme = _SCHEME.match(uri)
    if scheme is None:
        pieces = uri.split(";")
    else:
        rest = uri[scheme.end() :]
        if scheme[1].lower() in ("sip", "sips"):
            user, at, host = rest.partition("@")
            pieces = user.split(";")[1:] + (host.partition("?")[0].split(";")[1:] if at else [])
        else:
            pieces = rest.split(";")[1:]
    found: dict[str, str] = {}
    for piece in pieces:
        name, _, value = piece.partition("=")
        name = unquote(name).strip().lower()
        if name:
            found.setdefault(name, unquote(value).strip())
    return found
