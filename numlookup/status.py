"""The status vocabulary, in one place: which words a result's ``status`` may hold.

Clients of different years read different words for "reachable": the product
brief's ``ONLINE``/``OFFLINE`` (``seed``), the live service and its clients up to
2025 ``ON``/``OFF`` (``onoff``), and clients generated in 2026 ``"true"``/``"false"``
(``truefalse``). ``INVALID`` and ``UNKNOWN`` are the same in every style. Every
module that writes, reads or counts a status word asks this one.
"""

from __future__ import annotations

from typing import Literal, get_args

StatusStyle = Literal["seed", "onoff", "truefalse"]
STATUS_STYLES: tuple[StatusStyle, ...] = get_args(StatusStyle)

INVALID = "INVALID"
UNKNOWN = "UNKNOWN"
_REACHABLE: dict[StatusStyle, tuple[str, str]] = {
    "seed": ("ONLINE", "OFFLINE"),
    "onoff": ("ON", "OFF"),
    "truefalse": ("true", "false"),
}
# Every style's words, case-folded, back to the fact they spell: how an upstream's answer is read.
_FACTS = {word.upper(): fact for words in _REACHABLE.values() for word, fact in zip(words, (True, False), strict=True)}
# The class a word belongs to, whatever the style: the lookups metric's label.
Outcome = Literal["online", "offline", "unknown", "invalid"]


class UnknownStyle(ValueError):
    """A status style that is none of ``STATUS_STYLES``; the message lists them."""


def status_style(text: str) -> StatusStyle:
    """``text`` as a style, or ``UnknownStyle`` naming the choices."""
    for style in STATUS_STYLES:
        if text == style:
            return style
    raise UnknownStyle(f"unknown status style {text!r}; choose one of {', '.join(STATUS_STYLES)}")


def status_word(valid: bool, reachable: bool | None, style: StatusStyle) -> str:
    """The word for a result: INVALID, UNKNOWN (reachability not known), or reachability in ``style``."""
    if not valid:
        return INVALID
    if reachable is None:
        return UNKNOWN
    online, offline = _REACHABLE[style]
    return online if reachable else offline


def reachability(status: str | bool | None) -> bool | None:
    """A status word of any style (or a JSON boolean) as a fact; UNKNOWN, INVALID and anything else → None."""
    if isinstance(status, bool):
        return status
    if status is None:
        return None
    return _FACTS.get(status.strip().upper())


def outcome(status: str) -> Outcome:
    """The class of a status word in any style, so metrics count the same thing whatever the account reads."""
    if status == INVALID:
        return "invalid"
    fact = reachability(status)
    if fact is None:
        return "unknown"
    return "online" if fact else "offline"
