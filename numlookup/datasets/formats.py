"""Readers for the operator data formats numlookup imports.

Each reader turns a file into records with their line numbers; a line it cannot
read raises ``LineError`` naming the line and the reason, so an import can stop
(or skip it, when asked) and report exactly where the file is wrong.

- ``csv``: our own. Ranges ``prefix,mccmnc[,network_name]`` or
  ``range_start,range_end,mccmnc[,network_name]``; ported numbers
  ``number,mccmnc[,ported_at]``. Delta files put an action (``add``/``remove``)
  first. Numbers are E.164 digits with or without ``+``; ``#`` starts a comment;
  a first line naming the columns is skipped.
- ``kamailio``: the ``pdbt`` source CSV, ``number-or-prefix;carrier_id``, with a
  carrier names file (``D<id> <name>`` lines) and a ``carrier_id,mccmnc`` map.
- ``arcep``: France's ``MAJNUM.csv`` (``;``-separated, ISO-8859-1:
  ``EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution``), with
  an operator map ``mnemo,mccmnc[,name]`` (ARCEP publishes no MCC/MNC).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

Action = Literal["add", "remove"]
_MCCMNC = re.compile(r"\d{5,6}")
_DIGITS = re.compile(r"\d{1,15}")
T = TypeVar("T")


class LineError(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class FormatError(ValueError):
    """The file as a whole cannot be read in the format asked for."""


@dataclass(frozen=True, slots=True)
class RangeRecord:
    line: int
    low: str  # E.164 digits; for a prefix, low == high == the prefix
    high: str
    mccmnc: str | None
    name: str | None = None
    action: Action = "add"

    @property
    def is_prefix(self) -> bool:
        return self.low == self.high


@dataclass(frozen=True, slots=True)
class PortedRecord:
    line: int
    number: str  # E.164 digits
    mccmnc: str | None
    ported_at: str | None = None
    action: Action = "add"


def _digits(value: str, line: int, what: str) -> str:
    text = value.strip().removeprefix("+")
    if not _DIGITS.fullmatch(text) or text.startswith("0"):
        raise LineError(line, f"{what} {value.strip()!r} is not an E.164 number or prefix (1-15 digits, no leading 0)")
    return text


def _mccmnc(value: str, line: int) -> str:
    text = value.strip()
    if not _MCCMNC.fullmatch(text):
        raise LineError(line, f"mccmnc {text!r} must be 5 or 6 digits")
    return text


def _action(value: str, line: int) -> Action:
    text = value.strip().lower()
    if text in ("add", "+", "a"):
        return "add"
    if text in ("remove", "delete", "-", "r", "d"):
        return "remove"
    raise LineError(line, f"action {value.strip()!r} must be add or remove")


def _is_number(field: str) -> bool:
    return field.strip().removeprefix("+").isdigit()


def _kept(row: list[str], line: int) -> list[str] | None:
    """A row's stripped fields; None for a blank line, a comment, or a first line without numbers (a header)."""
    if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
        return None
    if line == 1 and not any(_is_number(f) for f in row):
        return None
    return [f.strip() for f in row]


def _rows(stream: Iterable[str], delimiter: str, first_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """Non-blank, non-comment rows with their line numbers, counting ``stream``'s first line as ``first_line``."""
    reader = csv.reader(stream, delimiter=delimiter)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise unreadable(reader.line_num + first_line - 1, exc) from None
        line = reader.line_num + first_line - 1
        fields = _kept(row, line)
        if fields is not None:
            yield line, fields


def _range_fields(fields: list[str], line: int) -> tuple[str, str, list[str]]:
    """(low, high, rest): a range when the second field is a full number (mccmncs have at most 6 digits)."""
    if len(fields) >= 2 and _is_number(fields[1]) and len(fields[1].removeprefix("+")) > 6:
        low, high = _digits(fields[0], line, "range_start"), _digits(fields[1], line, "range_end")
        if len(low) != len(high):
            raise LineError(line, f"range_start {low} and range_end {high} differ in length")
        if int(low) > int(high):
            raise LineError(line, f"range_start {low} is after range_end {high}")
        return low, high, fields[2:]
    prefix = _digits(fields[0], line, "prefix")
    return prefix, prefix, fields[1:]


Parsed = RangeRecord | PortedRecord | LineError


def _guarded(parse: Callable[[int, list[str]], T], rows: Iterator[tuple[int, list[str]]]) -> Iterator[T | LineError]:
    """Parse every row; a bad row becomes its LineError in the stream, and reading goes on."""
    for line, fields in rows:
        try:
            yield parse(line, fields)
        except LineError as exc:
            yield exc


def read_ranges_csv(stream: Iterable[str], *, delta: bool = False) -> Iterator[RangeRecord | LineError]:
    return _guarded(lambda line, fields: _range_row(line, fields, delta), _rows(stream, ","))


def _range_row(line: int, fields: list[str], delta: bool) -> RangeRecord:
    action: Action = "add"
    if delta:
        action, fields = _action(fields[0], line), fields[1:]
        if not fields:
            raise LineError(line, "expected a prefix or range after the action")
    low, high, rest = _range_fields(fields, line)
    if action == "remove":
        return RangeRecord(line, low, high, None, None, "remove")
    if len(rest) not in (1, 2):
        raise LineError(line, "expected prefix,mccmnc[,network_name] or range_start,range_end,mccmnc[,network_name]")
    return RangeRecord(line, low, high, _mccmnc(rest[0], line), rest[1] if len(rest) == 2 and rest[1] else None, action)


def read_ported_csv(
    stream: Iterable[str], *, delta: bool = False, first_line: int = 1
) -> Iterator[PortedRecord | LineError]:
    """``first_line``: the line number of ``stream``'s first line (the columnar reader hands over mid-file)."""
    return _guarded(lambda line, fields: _ported_row(line, fields, delta), _rows(stream, ",", first_line))


class RecordContinues(Exception):
    """A quoted field runs past the end of its line: the csv record goes on in the lines after it."""


def _one_row(text: str) -> list[str]:
    """The csv fields of one line, or RecordContinues if csv would read on into the next line for them."""
    wanted_more = False

    def lines() -> Iterator[str]:
        nonlocal wanted_more
        yield text
        wanted_more = True

    row = next(csv.reader(lines()), [])
    if wanted_more:
        raise RecordContinues(text)
    return row


def ported_line(text: str, line: int, *, delta: bool = False) -> PortedRecord | LineError | None:
    """Line ``line`` of a ported-number file read alone, exactly as ``read_ported_csv`` reads it in the file.

    None for a line it skips (blank, a comment, a header on line 1); RecordContinues when the line opens a
    quoted field it does not close, whose record only the whole-file reader can read.
    """
    try:
        row = _one_row(text)
    except csv.Error as exc:
        raise unreadable(line, exc) from None
    fields = _kept(row, line)
    if fields is None:
        return None
    try:
        return _ported_row(line, fields, delta)
    except LineError as exc:
        return exc


def mccmnc_of(text: str) -> str | None:
    """A ported row's MCC/MNC field as the per-line reader keeps it, or None if it would refuse it."""
    value = text.strip()
    return value if _MCCMNC.fullmatch(value) else None


def action_of(text: str) -> Action | None:
    """A delta row's action field as the per-line reader reads it, or None if it would refuse it."""
    try:
        return _action(text, 0)
    except LineError:
        return None


def _full_number(value: str, line: int) -> str:
    number = _digits(value, line, "number")
    if len(number) < 7:
        raise LineError(line, f"number {number} is too short to be a full E.164 number")
    return number


def _ported_row(line: int, fields: list[str], delta: bool) -> PortedRecord:
    action: Action = "add"
    if delta:
        action, fields = _action(fields[0], line), fields[1:]
    if action == "remove" and len(fields) >= 1:
        return PortedRecord(line, _full_number(fields[0], line), None, None, "remove")
    if len(fields) not in (2, 3):
        raise LineError(line, f"expected number,mccmnc[,ported_at], got {len(fields)} fields")
    ported_at = fields[2] if len(fields) == 3 and fields[2] else None
    return PortedRecord(line, _full_number(fields[0], line), _mccmnc(fields[1], line), ported_at, action)


# ---------------------------------------------------------------- Kamailio pdb


def read_kamailio_carriers(stream: Iterable[str]) -> dict[str, str]:
    """``D<id> <name>`` (as ``pdbt`` writes them; ``<id> <name>`` and ``<id>;<name>`` too) → {id: name}."""
    names: dict[str, str] = {}
    for number, raw in enumerate(stream, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = re.fullmatch(r"D?(\d+)[\s;,]+(.+)", text)
        if not match:
            raise LineError(number, f"expected 'D<id> <name>', got {text!r}")
        names[str(int(match.group(1)))] = match.group(2).strip()
    return names


def read_id_map(stream: Iterable[str], what: str) -> dict[str, tuple[str, str | None]]:
    """``id,mccmnc[,name]`` lines → {id: (mccmnc, name)}; ids as written (case-insensitive for mnemonics)."""
    mapping: dict[str, tuple[str, str | None]] = {}
    for line, fields in _rows(stream, ","):
        if len(fields) not in (2, 3) or not fields[0]:
            raise LineError(line, f"expected {what},mccmnc[,name] in the map, got {','.join(fields)!r}")
        key = str(int(fields[0])) if fields[0].isdigit() else fields[0].upper()
        mapping[key] = (_mccmnc(fields[1], line), fields[2] if len(fields) == 3 and fields[2] else None)
    return mapping


IdMap = dict[str, tuple[str, str | None]]


def read_kamailio(
    stream: Iterable[str], carrier_map: IdMap, carrier_names: dict[str, str], *, full_numbers: bool
) -> Iterator[RangeRecord | PortedRecord | LineError]:
    """``number-or-prefix;carrier_id``: prefixes become ranges, full numbers ported numbers."""
    return _guarded(
        lambda line, fields: _kamailio_row(line, fields, carrier_map, carrier_names, full_numbers), _rows(stream, ";")
    )


def _kamailio_row(
    line: int, fields: list[str], carrier_map: IdMap, carrier_names: dict[str, str], full_numbers: bool
) -> RangeRecord | PortedRecord:
    if len(fields) != 2:
        raise LineError(line, f"expected number-or-prefix;carrier_id, got {len(fields)} fields")
    digits = _digits(fields[0], line, "number" if full_numbers else "prefix")
    carrier = fields[1]
    if not carrier.isdigit():
        raise LineError(line, f"carrier_id {carrier!r} is not a number")
    carrier = str(int(carrier))
    if carrier not in carrier_map:
        raise LineError(line, f"carrier_id {carrier} has no mccmnc in the carrier map")
    mccmnc, name = carrier_map[carrier]
    if full_numbers:
        return PortedRecord(line, _full_number(digits, line), mccmnc)
    return RangeRecord(line, digits, digits, mccmnc, name or carrier_names.get(carrier))


# ---------------------------------------------------------------- ARCEP MAJNUM


# Calling codes of the territories MAJNUM.csv lists; metropolitan France is +33.
ARCEP_TERRITORIES: dict[str, str] = {
    "metropole": "33",
    "guadeloupe": "590",
    "saint-martin": "590",
    "saint-barthelemy": "590",
    "guyane": "594",
    "martinique": "596",
    "la reunion": "262",
    "reunion": "262",
    "mayotte": "262",
    "saint-pierre-et-miquelon": "508",
}

# The metropolitan mobile network operators' mnemonics and home MCC/MNCs, used when no map is given.
ARCEP_DEFAULT_OPERATORS: dict[str, tuple[str, str | None]] = {
    "ORAN": ("20801", "Orange"),
    "SFR0": ("20810", "SFR"),
    "BOUY": ("20820", "Bouygues Telecom"),
    "FRMO": ("20815", "Free Mobile"),
    "FREE": ("20815", "Free Mobile"),
}


def _plain(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", folded.strip().lower())


def read_arcep(stream: Iterable[str], operators: IdMap) -> Iterator[RangeRecord | LineError]:
    """MAJNUM rows → ranges in E.164. Operators missing from the map are reported per line."""
    reader = csv.reader(stream, delimiter=";")
    header = next(reader, None)
    if header is None:
        return iter(())
    columns = {_plain(name): i for i, name in enumerate(header)}
    missing = [c for c in ("tranche_debut", "tranche_fin", "mnemo", "territoire") if c not in columns]
    if missing:
        raise FormatError(f"not a MAJNUM.csv header (missing {', '.join(missing)}): {';'.join(header)}")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for row in reader:
            if row and "".join(row).strip():
                yield reader.line_num, [f.strip() for f in row]

    def parse(line: int, row: list[str]) -> RangeRecord:
        if len(row) < len(header):
            raise LineError(line, f"expected {len(header)} fields, got {len(row)}")
        start, end = row[columns["tranche_debut"]], row[columns["tranche_fin"]]
        mnemo, territory = row[columns["mnemo"]].upper(), _plain(row[columns["territoire"]])
        if not (start.isdigit() and end.isdigit() and start.startswith("0") and len(start) == len(end)):
            raise LineError(line, f"Tranche_Debut/Tranche_Fin {start!r}/{end!r} are not national numbers of one length")
        code = ARCEP_TERRITORIES.get(territory)
        if code is None:
            raise LineError(line, f"unknown Territoire {row[columns['territoire']]!r}")
        if mnemo not in operators:
            raise LineError(line, f"operator {mnemo!r} has no mccmnc in the operator map")
        if int(start) > int(end):
            raise LineError(line, f"Tranche_Debut {start} is after Tranche_Fin {end}")
        mccmnc, name = operators[mnemo]
        return RangeRecord(line, code + start[1:], code + end[1:], mccmnc, name)

    return _guarded(parse, rows())


def undecodable(line: int, codec: str, exc: UnicodeDecodeError) -> FormatError:
    """The error for a line that does not decode: the whole file is refused."""
    return FormatError(f"line {line}: not valid {codec} text ({exc.reason}); nothing was imported")


def unreadable(line: int, exc: csv.Error) -> FormatError:
    """The error for a line csv itself cannot read (a CR inside an unquoted field): the whole file is refused.

    Why not a bad line to skip: csv stops at it as it stops at a byte that does not decode.
    """
    return FormatError(f"line {line}: not readable as csv ({exc}); nothing was imported")


def text_stream(raw: Iterable[bytes], encoding: str, first_line: int = 1) -> Iterator[str]:
    """Lines of ``raw`` decoded one by one, so a byte that does not decode is reported with its line.

    ``first_line`` numbers ``raw``'s first line (a UTF-8 BOM is dropped from line 1 only).
    """
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    for number, line in enumerate(raw, first_line):
        if number == 1 and encoding == "utf-8-sig":
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            yield line.decode(codec)
        except UnicodeDecodeError as exc:
            raise undecodable(number, codec, exc) from None
