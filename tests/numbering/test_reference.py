"""The slow path's garbage: an input phonenumbers refuses leaves no cycle holding its callers' frames."""

from __future__ import annotations

import gc

from numlookup.numbering.models import InvalidReason
from numlookup.numbering.reference import reference


def test_refused_inputs_leave_no_cycle_holding_the_callers_frames() -> None:
    """Before, each refusal left a traceback cycle whose frames (through ``f_back``) held the caller's lines."""
    refused = ["abc", "+999123", "++12", "12", "+"]

    def caller() -> list[object]:
        lines = [f"line {i}" for i in range(1000)]  # what a bulk block's frame holds
        return [reference(raw, None).reason for raw in refused] + [len(lines)]

    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        reasons = caller()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
    assert all(isinstance(r, InvalidReason) for r in reasons[:-1])  # every one refused, with its reason
    assert not kinds & {"frame", "traceback", "NumberParseException"}, kinds
