"""A chunk of a job as the submit resolved it, stored until a worker processes it.

Why the resolution itself is stored, not the inputs: the submit must resolve
every number anyway (the reservation is for the distinct *valid* numbers, at the
live price for the live-routed ones), and resolving again in the worker would
double the work and could disagree with what was reserved if operator data or
routes changed in between. So the columns the bulk engine produced (validity,
type, E.164 digits, networks; the live route of each row) are kept, packed with
msgpack and zlib: about 8 bytes a number.

The carrier column is not kept: results are rendered from the networks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from numlookup.numbering.models import Country, Network
from numlookup.numbering.plan import BatchResult
from numlookup.numbering.resolver import Columns

# zlib's fastest level: the inputs compress about 3:1 either way, and the submit is on the clock.
LEVEL = 1


class _Packed(msgspec.Struct, array_like=True):
    inputs: list[str]
    valid: bytes
    reason: bytes
    number_type: bytes
    region: bytes
    digits: bytes
    regions: list[str]
    long_e164: dict[int, str]
    original: bytes
    ported: bytes
    porting_known: bytes
    # mccmnc, name, and the country: region, alpha-3, name, calling code
    networks: list[tuple[str | None, str | None, str, str, str, str]]
    routes: bytes


@dataclass(frozen=True, slots=True)
class Prepared:
    """A resolved chunk and, per row, the index of its live route (``live.router.NO_ROUTE``: none)."""

    columns: Columns
    routes: npt.NDArray[np.int16]


def encode(prepared: Prepared) -> bytes:
    c, b = prepared.columns, prepared.columns.batch
    packed = _Packed(
        inputs=list(c.inputs),
        valid=b.valid.tobytes(),
        reason=b.reason.tobytes(),
        number_type=b.number_type.tobytes(),
        region=b.region.tobytes(),
        digits=b.digits.tobytes(),
        regions=list(b.regions),
        long_e164=dict(b.long_e164),
        original=c.original.tobytes(),
        ported=c.ported.tobytes(),
        porting_known=c.porting_known.tobytes(),
        networks=[
            (n.mccmnc, n.name, n.country.region, n.country.alpha3, n.country.name, n.country.calling_code)
            for n in c.networks
        ],
        routes=prepared.routes.astype(np.int16).tobytes(),
    )
    return zlib.compress(msgspec.msgpack.encode(packed), LEVEL)


def decode(data: bytes) -> Prepared:
    packed = msgspec.msgpack.decode(zlib.decompress(data), type=_Packed)
    rows = len(packed.inputs)
    batch = BatchResult(
        np.frombuffer(packed.valid, dtype=np.bool_),
        np.frombuffer(packed.reason, dtype=np.int8),
        np.frombuffer(packed.number_type, dtype=np.int8),
        np.frombuffer(packed.region, dtype=np.int16),
        np.full(rows, -1, dtype=np.int32),
        np.frombuffer(packed.digits, dtype=np.int64),
        tuple(packed.regions),
        (),
        0,
        packed.long_e164,
    )
    networks = tuple(
        Network(mccmnc=mccmnc, name=name, country=Country(region=region, alpha3=alpha3, name=country, calling_code=cc))
        for mccmnc, name, region, alpha3, country, cc in packed.networks
    )
    columns = Columns(
        packed.inputs,
        batch,
        np.frombuffer(packed.original, dtype=np.int32),
        np.frombuffer(packed.ported, dtype=np.int32),
        networks,
        np.frombuffer(packed.porting_known, dtype=np.bool_),
    )
    return Prepared(columns, np.frombuffer(packed.routes, dtype=np.int16))


def piece(prepared: Prepared, start: int, stop: int) -> Prepared:
    """Rows ``start:stop`` of a chunk (a batch is cut where it holds too many live-routed numbers)."""
    c, b = prepared.columns, prepared.columns.batch
    cut = slice(start, stop)
    batch = BatchResult(
        b.valid[cut],
        b.reason[cut],
        b.number_type[cut],
        b.region[cut],
        b.carrier[cut],
        b.digits[cut],
        b.regions,
        b.carriers,
        0,
        {i - start: text for i, text in b.long_e164.items() if start <= i < stop},
    )
    columns = Columns(c.inputs[cut], batch, c.original[cut], c.ported[cut], c.networks, c.porting_known[cut])
    return Prepared(columns, prepared.routes[cut])


def chargeable(columns: Columns) -> npt.NDArray[np.bool_]:
    """Rows a job may charge for: valid numbers (each distinct one once per job)."""
    return columns.batch.valid & (columns.batch.digits > 0)
