"""From a file in a named format to the record stream an import consumes.

Shared by the CLI and the admin HTTP endpoint, so both accept exactly the same files.
``import_stream`` is what they read: our ported-number CSV column-wise
(``columnar.py``: the one file that runs to a hundred million rows), every other
file line by line with ``records``, which stays the reference reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, get_args

from numlookup.datasets import columnar, formats
from numlookup.datasets.catalog import PORTED, RANGES, DatasetKind
from numlookup.datasets.formats import FormatError, IdMap, LineError, PortedRecord, RangeRecord
from numlookup.datasets.ported import PortedBlock

Format = Literal["csv", "kamailio", "arcep"]
FORMATS: tuple[Format, ...] = get_args(Format)


def source_format(text: str) -> Format:
    """``text`` as a file format, or ``FormatError`` naming the choices."""
    for fmt in FORMATS:
        if text == fmt:
            return fmt
    raise FormatError(f"unknown format {text!r}; choose one of {', '.join(FORMATS)}")


def _map(path: Path | None, what: str) -> IdMap | None:
    if path is None:
        return None
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return formats.read_id_map(fh, what)
    except (LineError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: {exc}") from None


def records(
    kind: DatasetKind,
    fmt: Format,
    raw: IO[bytes],
    *,
    delta: bool = False,
    carrier_map: Path | None = None,
    carrier_names: Path | None = None,
    operator_map: Path | None = None,
) -> Iterator[RangeRecord | PortedRecord | LineError]:
    """The records of ``raw``; a problem with the file as a whole raises FormatError."""
    if fmt == "csv":
        stream = formats.text_stream(raw, "utf-8-sig")
        return (
            formats.read_ranges_csv(stream, delta=delta)
            if kind == RANGES
            else formats.read_ported_csv(stream, delta=delta)
        )
    if delta:
        raise FormatError(f"delta imports are in our csv format; {fmt} files are full loads")
    if fmt == "kamailio":
        mapping = _map(carrier_map, "carrier_id")
        if mapping is None:
            raise FormatError("a kamailio import needs --carrier-map (carrier_id,mccmnc lines)")
        names: dict[str, str] = {}
        if carrier_names is not None:
            try:
                with carrier_names.open(encoding="utf-8-sig") as fh:
                    names = formats.read_kamailio_carriers(fh)
            except (LineError, UnicodeDecodeError) as exc:
                raise FormatError(f"{carrier_names}: {exc}") from None
        stream = formats.text_stream(raw, "utf-8-sig")
        return formats.read_kamailio(stream, mapping, names, full_numbers=kind == PORTED)
    if fmt == "arcep":
        if kind != RANGES:
            raise FormatError("MAJNUM.csv holds number ranges: import it with import-ranges")
        operators = _map(operator_map, "mnemo") or formats.ARCEP_DEFAULT_OPERATORS
        return formats.read_arcep(formats.text_stream(raw, "iso-8859-1"), operators)
    raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def import_stream(
    kind: DatasetKind,
    fmt: Format,
    raw: IO[bytes],
    *,
    delta: bool = False,
    carrier_map: Path | None = None,
    carrier_names: Path | None = None,
    operator_map: Path | None = None,
) -> Iterator[RangeRecord | PortedRecord | PortedBlock | LineError]:
    """What an import reads from ``raw``: the same records as ``records``, ported CSV rows in blocks."""
    if kind == PORTED and fmt == "csv":
        return columnar.read_ported_csv(raw, delta=delta)
    return records(
        kind,
        fmt,
        raw,
        delta=delta,
        carrier_map=carrier_map,
        carrier_names=carrier_names,
        operator_map=operator_map,
    )
