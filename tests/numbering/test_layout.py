"""The layout's type-code table answers as ``np.isin`` over ``CARRIER_TYPES`` does, for every one-byte code."""

from __future__ import annotations

import numpy as np

from numlookup.numbering.layout import CARRIER_TYPES, carrier_typed


def test_carrier_typed_is_isin_for_every_code() -> None:
    every = np.arange(-128, 128).astype(np.int8)
    assert (carrier_typed(every) == np.isin(every, CARRIER_TYPES)).all()
    assert carrier_typed(every).sum() == len(CARRIER_TYPES)
    wide = np.array([*CARRIER_TYPES, 300, -1, 99], dtype=np.int16)  # not one byte: np.isin itself
    assert (carrier_typed(wide) == np.isin(wide, CARRIER_TYPES)).all()
    assert carrier_typed(np.zeros(0, dtype=np.int8)).shape == (0,)
