"""The status vocabulary, in one function: clients of different years read different words."""

from __future__ import annotations

from numlookup.settings import StatusStyle

_REACHABLE = {"seed": ("ONLINE", "OFFLINE"), "onoff": ("ON", "OFF"), "truefalse": ("true", "false")}


def status_word(valid: bool, reachable: bool | None, style: StatusStyle) -> str:
    """INVALID and UNKNOWN are the same in every style; reachability is spelled per style."""
    if not valid:
        return "INVALID"
    if reachable is None:
        return "UNKNOWN"
    online, offline = _REACHABLE[style]
    return online if reachable else offline
