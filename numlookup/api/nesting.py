"""How deep a request body's JSON nests, checked before it is decoded.

Why: msgspec decodes (and skips, for a key the schema ignores) nested arrays and
objects recursively, one level per call, guarded only by the interpreter's
recursion limit. A body 1,000 levels deep — ``{"numbers": [...], "x": [[[[…]]]]}``,
2 KB — raised ``RecursionError``, which is no ``msgspec.DecodeError``: a 500
with a traceback. Catching it would leave the verdict to how deep the stack
already was when decoding began (and on Python before 3.14 the guard does not
watch the real C stack at all, msgspec#1033). A fixed limit checked first gives
every body the same verdict, and msgspec never recurses deeper than it.

The request needs two levels (``{"numbers": [...]}``); :data:`MAX_NESTING` leaves
clients' own extra keys plenty of room.
"""

from __future__ import annotations

import numpy as np

# The deepest nesting of arrays and objects a body may have; the top-level object counts as 1.
MAX_NESTING = 64

# Each byte's step in depth: +1 opens an array or object, -1 closes one.
_STEPS = np.zeros(256, dtype=np.int8)
_STEPS[list(b"[{")] = 1
_STEPS[list(b"]}")] = -1


def nesting_depth_exceeds(body: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether arrays and objects in ``body`` nest more than ``limit`` levels deep.

    A body with at most ``limit`` opening brackets cannot, so ordinary requests
    are answered by two counts. Otherwise the strings are cut out (brackets in
    them are text: escaped backslashes and quotes go first, then every other
    piece between quotes is outside a string) and the running depth is
    summed up byte by byte, all in C: a few milliseconds at most for the
    largest body, whatever its shape. Invalid JSON gets some answer here; the decoder
    refuses it either way.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    depths = np.cumsum(_STEPS[np.frombuffer(outside, dtype=np.uint8)], dtype=np.int32)
    return bool(depths.max(initial=0) > limit)
