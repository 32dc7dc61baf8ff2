"""The layout of the compiled numbering plan: its keys, value codes and arrays.

Shared by the compiler that writes the arrays (``compiler``) and the plan that
reads them (``plan``), so that both agree on what a value means. A key is
``L * 10**17 + int(digits)``: ``digits`` is the calling code followed by the
national significant number, ``L`` its length (part of the key because a
pattern's ``fullmatch`` depends on it). Keys reach 17 digits, not E.164's 15:
``+`` and 16 or 17 digits is a mistyped number a real file holds (a digit too
many, a national prefix kept after the calling code), and phonenumbers parses
it (stripping that prefix, or answering ``too_long``); the tables answer it as
phonenumbers does instead of sending it down the slow path. ``17 * 10**17 +
10**17`` is well inside int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from phonenumbers import PhoneNumberType

from numlookup.numbering.models import InvalidReason

FORMAT_VERSION = 5  # bump when the layout or the compile rules change: the cached plan is then rebuilt
MAX_KEYED = 17  # the most digits after a "+" the tables decide; longer inputs take the slow path
KEY_BASE = 10**MAX_KEYED  # a key is length * KEY_BASE + digits
MAX_DIGITS = 15  # E.164: the carrier table's numbers are padded to this many digits
MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
NO_REGION = -1
SLOW = -2  # a value meaning "the arrays cannot decide: ask phonenumbers"
UNKNOWN = int(PhoneNumberType.UNKNOWN)

# Reason codes: 0 = valid, then InvalidReason in declaration order.
REASONS: tuple[InvalidReason | None, ...] = (None, *InvalidReason)
REASON_CODE = {reason: code for code, reason in enumerate(REASONS)}
# carrier._is_mobile: only these types get a carrier name.
CARRIER_TYPES = (int(PhoneNumberType.MOBILE), int(PhoneNumberType.FIXED_LINE_OR_MOBILE), int(PhoneNumberType.PAGER))
# CARRIER_TYPES as a table over every one-byte type code (the plan's arrays are int8).
_CARRIER_TYPE_TABLE = np.zeros(256, dtype=np.bool_)
_CARRIER_TYPE_TABLE[list(CARRIER_TYPES)] = True


def carrier_typed(kinds: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``np.isin(kinds, CARRIER_TYPES)``, by table lookup for one-byte codes.

    Why: ``np.isin`` sorts its inputs, a fixed cost of some 20 µs that every
    resolved batch paid twice, a one-request batch of ten numbers included.
    """
    if kinds.dtype.itemsize != 1:
        return np.isin(kinds, CARRIER_TYPES)
    return _CARRIER_TYPE_TABLE[kinds.view(np.uint8)]


TYPE_NAMES: dict[int, str] = {
    int(v): k.lower() for k, v in vars(PhoneNumberType).items() if k.isupper() and isinstance(v, int)
}

Array = npt.NDArray[Any]
# The plan's arrays, by name: what the compiler returns and the cache file holds.
ARRAYS = (
    "cc_codes",
    "cc_len",
    "cc3",
    "cc_strip",
    "reason_by_len",
    "keep_by_len",
    "main_starts",
    "main_region",
    "main_type",
    "gd_starts",
    "gd_values",
    "strip_starts",
    "strip_values",  # 0: unchanged; SLOW; else an index into the strip_* rewrite arrays (compiler.Rewrite)
    "strip_drop",
    "strip_from",
    "strip_to",
    "strip_put",
    "strip_put_len",
    "carrier_starts",
    "carrier_entry",
    "entry_name",
    "entry_len",
)
