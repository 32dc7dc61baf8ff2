"""The columnar reader of ported-number files against the per-line reader: the same imports, line for line.

Why: ``columnar.py`` reads our ported CSV in blocks of columns and sends only the
lines the columns cannot vouch for through the per-line reader. An import must
come out exactly as the per-line reader made it: the same compiled arrays (a
number's last line deciding), the same networks in the same order, the same bad
lines with the same numbers and reasons, the same abort on the first one without
``--skip-invalid``. Each case is a real file read both ways (``sources.records``,
the per-line reader, and ``sources.import_stream``, what the CLI and the admin
endpoint read) and built by the same builder; a dict of each number's last line,
filled from the per-line records, checks the builder itself. Small blocks put
block boundaries everywhere, so a line cut between two reads is read too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine

from numlookup.datasets import catalog, columnar, ported, sources
from numlookup.datasets.catalog import PORTED
from numlookup.datasets.follower import load_operator_data
from numlookup.datasets.formats import FormatError, LineError, PortedRecord
from numlookup.datasets.importer import ImportFailed, ImportReport, _Errors, import_dataset
from numlookup.datasets.ported import PortedBlock, TooManyNetworks, blocks, build
from numlookup.numbering import Resolver
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.operator_data import DataNetwork

Reader = Callable[..., Iterable[Any]]


@dataclass(frozen=True)
class Outcome:
    """What an import of the file comes to, as far as the reader and the builder decide it."""

    failure: str | None  # the exception type and message that stopped the import, if one did
    keys: list[int]
    values: list[int]
    networks: tuple[DataNetwork, ...]
    records: int
    skipped: int
    errors: list[tuple[int, str]]  # the lines the import reports (the first 100 with --skip-invalid)


def outcome(path: Path, reader: Reader, *, delta: bool, skip_invalid: bool) -> Outcome:
    """Read ``path`` with ``reader`` and build it the way ``import_dataset`` does."""
    errors = _Errors(skip_invalid)
    with path.open("rb") as raw:
        try:
            table, records = build(blocks(reader(PORTED, "csv", raw, delta=delta)), errors, None, delta)
        except (ImportFailed, TooManyNetworks, FormatError) as exc:
            kept = getattr(exc, "errors", []) or errors.kept
            failure = f"{type(exc).__name__}: {exc}"
            return Outcome(failure, [], [], (), 0, errors.count, [(e.line, e.reason) for e in kept])
    return Outcome(
        None,
        table.keys.tolist(),
        table.values.tolist(),
        table.networks,
        records,
        errors.count,
        [(e.line, e.reason) for e in errors.kept],
    )


def both_ways(tmp_path: Path, content: bytes, *, delta: bool, skip_invalid: bool) -> Outcome:
    """The file read column-wise, asserted to be what the per-line reader makes of it."""
    path = tmp_path / "ported.csv"
    path.write_bytes(content)
    line_by_line = outcome(path, sources.records, delta=delta, skip_invalid=skip_invalid)
    columns = outcome(path, sources.import_stream, delta=delta, skip_invalid=skip_invalid)
    assert columns == line_by_line
    if line_by_line.failure is None:
        assert (line_by_line.keys, line_by_line.values, line_by_line.networks) == last_lines(path, delta)
    return columns


def last_lines(path: Path, delta: bool) -> tuple[list[int], list[int], tuple[DataNetwork, ...]]:
    """The map as a dict of each number's last line, from the per-line records: the builder's oracle."""
    networks: dict[str, int] = {}
    latest: dict[int, int | None] = {}
    with path.open("rb") as raw:
        for record in sources.records(PORTED, "csv", raw, delta=delta):
            if isinstance(record, PortedRecord):
                if record.action == "remove":
                    latest[int(record.number)] = None
                else:
                    latest[int(record.number)] = networks.setdefault(record.mccmnc or "", len(networks))
    kept = sorted((k, v) for k, v in latest.items() if v is not None)
    return [k for k, _ in kept], [v for _, v in kept], tuple(DataNetwork(m) for m in networks)


@pytest.fixture(params=["blocks of 8 MiB", "blocks of 61 bytes"])
def block_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The reader's own block size, and a tiny one that cuts lines between reads; regrouping from 3 rows."""
    if request.param == "blocks of 61 bytes":
        monkeypatch.setattr(columnar, "CHUNK_BYTES", 61)
        monkeypatch.setattr(columnar, "_REGROUP", 3)
    return columnar.CHUNK_BYTES


# ---------------------------------------------------------------- the files the other tests import

# Ported-number files of tests/datasets/test_formats.py, test_import.py and tests/e2e/test_operator_data.py.
FULL_FILES = [
    "number,mccmnc,ported_at\n+37251000001,24802,2025-01-31\n37256000001,24801\n37256000002,24803,\n",
    *(
        f"37251000001,24802\n\n{line}\n"
        for line in (
            "372510,24802",
            "037251000001,24802",
            "+37251000001,x4802",
            "37251000001",
            "37251000001,24802,2025-01-01,extra",
            "372 51000001,24802",
        )
    ),
    "37251000001,24803\n37256000001,24802\n37251000002,24801\n",
    "37256000001,24801\n37256000002,24803\n37256000001,24803\n",
    "37256000001,24801\nnope\n37256000002,24803\n",
    "1,2\n3,4\n",
    "number,mccmnc,ported_at\n+37251000002,24802,2025-06-01\n37256000001,24804\n",
    "37256000021,24801\n37256000022,24803\n",
]
DELTA_FILES = [
    "action,number,mccmnc\nadd,37251000001,24802\nremove,37256000001\n"
    "remove,37256000002,24801\nbogus,37256000003,24801\nremove\n",
    "remove,37256000001\nadd,37256000003,24803\nadd,37256000002,24803\n",
    "add,37256000002,24801\nremove,37256000002\n",
    "add,37256000002,24803\n\nadd,372560,24803\n",
    "add,37256000008,24803\nadd,372560,24803\nadd,37256000007,x\n",
    "action,number,mccmnc\nadd,37256000009,24801\n",
    "add,37256000011,24803\nadd,123,24803\n",
]


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["abort", "skip-invalid"])
@pytest.mark.parametrize(("text", "delta"), [(t, False) for t in FULL_FILES] + [(t, True) for t in DELTA_FILES])
def test_the_other_tests_files_read_the_same(
    tmp_path: Path, block_size: int, text: str, delta: bool, skip_invalid: bool
) -> None:
    got = both_ways(tmp_path, text.encode(), delta=delta, skip_invalid=skip_invalid)
    assert got.failure is not None or got.records + got.skipped > 0  # each file has rows, good or bad


# ---------------------------------------------------------------- generated files, every kind of line

MCCMNCS = ["24801", "24802", "26201", "310410", "00101", "024801"]
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _number(rng: random.Random, pool: list[str]) -> str:
    if pool and rng.random() < 0.2:
        return rng.choice(pool)  # a number seen before: its last line decides
    number = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 14)))
    pool.append(number)
    return number


def _good(rng: random.Random, pool: list[str]) -> str:
    number, mccmnc = _number(rng, pool), rng.choice(MCCMNCS)
    plus = "+" if rng.random() < 0.2 else ""
    return rng.choice(
        [
            f"{plus}{number},{mccmnc}",
            f"{plus}{number},{mccmnc},2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            f"{plus}{number},{mccmnc},",
            f" {number} , {mccmnc} ",  # fields are stripped
            f'"{number}",{mccmnc}',  # a quoted field, closed on its line
            f"{number.translate(ARABIC)},{mccmnc}",  # \d is Unicode: the per-line reader takes these
            f"{number},{mccmnc},at 10:00 «ok»",
        ]
    )


def _bad(rng: random.Random, pool: list[str]) -> str:
    number = _number(rng, pool)
    return rng.choice(
        [
            f"{number[:5]},24801",  # too short
            f"0{number},24801",
            f"{number[:3]}x{number[3:]},24801",
            f"++{number},24801",
            f"{number}99999999,24801",  # more than 15 digits
            f"{number},2480",
            f"{number},2480123",
            f"{number},24x01",
            f"{number},",
            f"{number}",
            f"{number},24801,2025-01-01,extra",
            f"-{number},24801",
            f"0x{number[:10]},24801",  # pyarrow casts hex: the columns must not
            f'{number[:4]}"{number[4:]},24801',  # a quote inside a field is a character
            f"{number[:4]}\x00{number[4:]},24801",
            f"{number},+24801",
            "prefix,mccmnc",  # a header anywhere but line 1 is a bad line
            "   ",
            "",
            "# a comment, with a comma",
            "  # an indented one",
            ",,",
        ]
    )


def _delta(rng: random.Random, pool: list[str]) -> str:
    number = _number(rng, pool)
    add, remove = rng.choice(["add", "ADD", " Add ", "+", "a"]), rng.choice(["remove", "delete", "-", "r", "D"])
    return rng.choice(
        [
            f"{add},{number},{rng.choice(MCCMNCS)}",
            f"{add},{number},{rng.choice(MCCMNCS)},2025-01-01",
            f"{remove},{number}",
            f"{remove},{number},anything,at,all",
            f"{remove},+{number},24801",
            f"replace,{number},24801",
            f",{number},24801",
            f"{add},{number}",
            f"{add},{number},2480",
            f"{remove},{number[:5]}",
            f"{remove}",
            f"{add},{_bad(rng, pool)}",
        ]
    )


def generated(seed: int, *, delta: bool, rare: bool = False) -> bytes:
    """A file of a few hundred lines: good ones, and bad ones of every kind at random places."""
    rng = random.Random(seed)
    pool: list[str] = []
    lines = []
    if rng.random() < 0.5:
        lines.append("action,number,mccmnc" if delta else "number,mccmnc,ported_at")
    for _ in range(rng.randint(1, 400)):
        kind = rng.random()
        line = _bad(rng, pool) if kind < 0.15 else _good(rng, pool)
        lines.append(_delta(rng, pool) if delta and kind < 0.6 else line)
    newline = rng.choice(["\n", "\r\n"])
    text = newline.join(lines) + (newline if rng.random() < 0.8 else "")
    content = (b"\xef\xbb\xbf" if rng.random() < 0.3 else b"") + text.encode()
    if rare:  # one of the lines that stop the columns or the whole file, somewhere
        at = content.find(b"\n", rng.randint(0, len(content))) + 1
        content = (
            content[:at]
            + rng.choice([b"37251\xff000001,24801\n", b'"3725100\n0001",24801\n', b"3725\r1,2\n"])
            + content[at:]
        )
    return content


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["abort", "skip-invalid"])
@pytest.mark.parametrize("delta", [False, True], ids=["full", "delta"])
@pytest.mark.parametrize("seed", range(12))
def test_generated_files_read_the_same(
    tmp_path: Path, block_size: int, seed: int, delta: bool, skip_invalid: bool
) -> None:
    got = both_ways(tmp_path, generated(seed, delta=delta), delta=delta, skip_invalid=skip_invalid)
    if skip_invalid:
        assert got.failure is not None or got.skipped == len(got.errors) or len(got.errors) == 100


@pytest.mark.parametrize("delta", [False, True], ids=["full", "delta"])
@pytest.mark.parametrize("seed", range(12))
def test_generated_files_with_a_line_that_stops_the_columns_read_the_same(
    tmp_path: Path, block_size: int, seed: int, delta: bool
) -> None:
    """A byte that is not UTF-8, a quote that opens a field over two lines, a CR inside a line."""
    both_ways(tmp_path, generated(seed, delta=delta, rare=True), delta=delta, skip_invalid=True)


# ---------------------------------------------------------------- the cases by name


def read(tmp_path: Path, content: bytes, *, delta: bool = False) -> list[Any]:
    path = tmp_path / "named.csv"
    path.write_bytes(content)
    with path.open("rb") as raw:
        return list(sources.import_stream(PORTED, "csv", raw, delta=delta))


def rows(items: list[Any]) -> list[tuple[int, str]]:
    """The blocks' rows as (number, mccmnc), removals as (number, "-"); bad lines as (line, reason)."""
    out: list[tuple[int, str]] = []
    for item in items:
        if isinstance(item, LineError):
            out.append((item.line, item.reason))
        else:
            assert isinstance(item, PortedBlock)
            pairs = zip(item.keys.tolist(), item.networks.tolist(), strict=True)
            out += [(k, item.names[n] if n >= 0 else "-") for k, n in pairs]
    return out


def test_crlf_lines_and_their_numbers(tmp_path: Path, block_size: int) -> None:
    content = b"number,mccmnc\r\n37251000001,24801\r\n\r\n372510,24801\r\n+37251000002,24802\r\n"
    assert rows(read(tmp_path, content)) == [
        (37251000001, "24801"),
        (4, "number 372510 is too short to be a full E.164 number"),
        (37251000002, "24802"),
    ]
    both_ways(tmp_path, content, delta=False, skip_invalid=True)


def test_a_bom_then_a_header(tmp_path: Path, block_size: int) -> None:
    assert rows(read(tmp_path, b"\xef\xbb\xbfnumber,mccmnc\n37251000001,24801\n")) == [(37251000001, "24801")]
    assert rows(read(tmp_path, b"\xef\xbb\xbf37251000001,24801\n")) == [(37251000001, "24801")]  # no header
    # Only the file's first three bytes: a BOM later is part of its line (pyarrow would skip one that starts
    # what it is given), here at the start of the second line, of a later block, and of a group of rows.
    bom_later = b"37251000001,24801\n\xef\xbb\xbf37251000002,24801\n"
    assert rows(read(tmp_path, bom_later)) == [
        (37251000001, "24801"),
        (2, "number '\\ufeff37251000002' is not an E.164 number or prefix (1-15 digits, no leading 0)"),
    ]
    both_ways(tmp_path, bom_later * 50, delta=False, skip_invalid=True)
    regrouped = b"".join(b"+,37256%06d,24801\n" % i for i in range(9)) + b"\xef\xbb\xbf-,37251000002\n" * 9
    both_ways(tmp_path, regrouped * 20, delta=True, skip_invalid=True)


def test_a_file_that_is_not_utf8_stops_at_its_line_after_the_lines_before_it(tmp_path: Path, block_size: int) -> None:
    content = b"37251000001,24801\n372510,24801\n37251000002,Telia\xe9\n37251000003,24801\n"
    with pytest.raises(FormatError, match=r"^line 3: not valid utf-8 text \(invalid continuation byte\)"):
        read(tmp_path, content)
    # Without --skip-invalid the bad line 2 stops the import first, as reading line by line.
    skipping = both_ways(tmp_path, content, delta=False, skip_invalid=True)
    aborting = both_ways(tmp_path, content, delta=False, skip_invalid=False)
    assert skipping.failure is not None and skipping.failure.startswith("FormatError: line 3")
    assert aborting.failure is not None and aborting.failure.startswith("ImportFailed: line 2")


def test_a_quoted_field_over_two_lines_is_read_as_one_record(tmp_path: Path, block_size: int) -> None:
    """csv lets a quoted field hold a newline: from such a line on, the per-line reader reads the file."""
    content = b'37251000001,24801\n"3725100\n0002",24801\n37251000003,24802\n372510,1\n'
    items = rows(read(tmp_path, content))
    assert items[0] == (37251000001, "24801")
    assert items[1][0] == 3 and "'3725100\\n0002'" in items[1][1]  # the record ends on line 3
    assert items[2:] == [(37251000003, "24802"), (5, "number 372510 is too short to be a full E.164 number")]
    both_ways(tmp_path, content, delta=False, skip_invalid=True)


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["abort", "skip-invalid"])
@pytest.mark.parametrize("quoted", [True, False], ids=["handover", "no-handover"])
@pytest.mark.parametrize("where", [3, 9_000, 19_998], ids=["first block", "a middle block", "the last block"])
def test_blocks_read_ahead_of_a_handover_or_a_stop_go_to_the_per_line_reader_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: int, quoted: bool, skip_invalid: bool
) -> None:
    """Worker threads hold the blocks read ahead of the one that hands over (a quoted field over two lines) or
    stops the import (a bad line, a CR inside a line, bytes that are not UTF-8): what they hold is read exactly
    as if the blocks had been read one after the other. Blocks of 4 KiB, so ~90 of them; no final newline."""
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 4096)
    lines = [f"49{i:010d},2620{i % 4 + 1}" for i in range(20_000)]
    for at, bad in ((where + 700, "49123,26201"), (where + 1_400, "4900000000\r7,26201")):
        if at < len(lines):
            lines[at] = bad
    if quoted:
        lines[where : where + 1] = ['"4912', '34567890",26202']  # one record over two lines
    else:
        lines[where : where + 1] = ["4912", "34567890,26202"]  # a line of one field, then a good line
    content = "\n".join(lines).encode() + b"\n\xff\xfe,26201\n4900000000001,26203"
    got = both_ways(tmp_path, content, delta=False, skip_invalid=skip_invalid)
    if not quoted:  # the columns stop the import (a bad line, or the CR) while later blocks are in work
        if not skip_invalid:
            assert (got.failure or "").startswith(f"ImportFailed: line {where + 1}: ")
        elif where + 1_400 < len(lines):
            assert [line for line, _ in got.errors] == [where + 1, where + 702]
            assert (got.failure or "").startswith(f"FormatError: line {where + 1_402}: not readable as csv")
        else:
            assert [line for line, _ in got.errors] == [where + 1]
            assert (got.failure or "").startswith(f"FormatError: line {len(lines) + 1}: ")
        return
    reason = "number '4912\\n34567890' is not an E.164 number or prefix (1-15 digits, no leading 0)"
    if not skip_invalid:  # the record's last line
        assert (got.failure or "").startswith(f"ImportFailed: line {where + 2}: {reason}")
        return
    assert got.errors[0] == (where + 2, reason)
    if where + 1_400 < len(lines):
        assert [line for line, _ in got.errors] == [where + 2, where + 702]
        assert (got.failure or "").startswith(f"FormatError: line {where + 1_402}: not readable as csv")
    else:
        assert [line for line, _ in got.errors] == [where + 2]
        assert (got.failure or "").startswith(f"FormatError: line {len(lines) + 1}: ")  # the bytes not UTF-8


def test_a_delta_of_adds_and_removes_in_columns(tmp_path: Path, block_size: int) -> None:
    lines = [f"add,3725600{i:04d},24801" if i % 3 else f"remove,3725600{i:04d}" for i in range(3000)]
    items = rows(read(tmp_path, ("\n".join(lines) + "\n").encode(), delta=True))
    assert items == [(int(line.split(",")[1]), "24801" if line[0] == "a" else "-") for line in lines]


def test_a_big_file_reports_exactly_its_bad_lines(tmp_path: Path) -> None:
    """Several of the reader's own blocks (8 MiB), bad lines at both ends and where a block ends."""
    total = 1_000_000
    lines = [f"49{i:010d},26201" for i in range(total)]  # 19 bytes a line with its newline
    boundary = columnar.CHUNK_BYTES // 19  # the last whole line of the first block; the next one is cut
    bad_at = sorted({1, 2, boundary - 1, boundary, boundary + 1, boundary + 2, 654_321, total - 1, total})
    for line in bad_at:  # as long as a good line, so the block ends where it would
        lines[line - 1] = f"09{line:010d},26201" if line % 2 else f"49{line:010d},2620x"
    path = tmp_path / "big.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    got = outcome(path, sources.import_stream, delta=False, skip_invalid=True)
    assert [line for line, _ in got.errors] == bad_at
    assert (got.records, got.skipped, len(got.keys)) == (total - len(bad_at), len(bad_at), total - len(bad_at))
    assert got.errors[0] == (1, "number '090000000001' is not an E.164 number or prefix (1-15 digits, no leading 0)")
    assert got.errors[1] == (2, "mccmnc '2620x' must be 5 or 6 digits")
    first = outcome(path, sources.import_stream, delta=False, skip_invalid=False)
    assert (first.failure or "").startswith("ImportFailed: line 1: number '090000000001'")


def test_too_many_networks_stops_the_columnar_import_too(tmp_path: Path) -> None:
    lines = [f"3725{i:07d},{10000 + i}" for i in range(65_537)]
    got = both_ways(tmp_path, ("\n".join(lines) + "\n").encode(), delta=False, skip_invalid=True)
    assert got.failure == "TooManyNetworks: more than 65,535 distinct networks in one ported-number dataset"


def test_the_import_stream_of_ported_csv_is_the_columnar_reader(tmp_path: Path) -> None:
    """What the CLI and the admin endpoint read: blocks for our ported CSV, records for every other file."""
    path = tmp_path / "one.csv"
    path.write_bytes(b"37251000001,24801\n")
    with path.open("rb") as raw:
        assert [type(item) for item in sources.import_stream(PORTED, "csv", raw)] == [PortedBlock]
    with path.open("rb") as raw:
        assert [type(item) for item in sources.records(PORTED, "csv", raw)] == [PortedRecord]


# ---------------------------------------------------------------- every reason, by line

NOT_E164 = "is not an E.164 number or prefix (1-15 digits, no leading 0)"
FULL_BAD = [  # (line, why the per-line reader refuses it)
    ("372510,24801", "number 372510 is too short to be a full E.164 number"),
    ("037251000001,24801", f"number '037251000001' {NOT_E164}"),
    ("3725x1000001,24801", f"number '3725x1000001' {NOT_E164}"),
    ("++37251000001,24801", f"number '++37251000001' {NOT_E164}"),
    ("3725100000112345,24801", f"number '3725100000112345' {NOT_E164}"),  # 16 digits
    ("0x3725100000,24801", f"number '0x3725100000' {NOT_E164}"),  # pyarrow's cast reads hex
    ("-37251000001,24801", f"number '-37251000001' {NOT_E164}"),
    ('3725"1000001,24801', f"number '3725\"1000001' {NOT_E164}"),  # a quote inside a field is a character
    ('"3725,1000001",24801', f"number '3725,1000001' {NOT_E164}"),  # a quoted comma is in the field
    ("number,mccmnc", f"number 'number' {NOT_E164}"),  # a header after line 1
    ("37251000001,2480", "mccmnc '2480' must be 5 or 6 digits"),
    ("37251000001,+24801", "mccmnc '+24801' must be 5 or 6 digits"),
    ("37251000001,24x01", "mccmnc '24x01' must be 5 or 6 digits"),
    ("37251000001,", "mccmnc '' must be 5 or 6 digits"),
    ("37251000001", "expected number,mccmnc[,ported_at], got 1 fields"),
    ("37251000001,24801,2025-01-01,extra", "expected number,mccmnc[,ported_at], got 4 fields"),
]
DELTA_BAD = [
    ("replace,37256000001,24801", "action 'replace' must be add or remove"),
    (",37256000001,24801", "action '' must be add or remove"),
    ("add,37256000001", "expected number,mccmnc[,ported_at], got 1 fields"),
    ("add,37256000001,2480", "mccmnc '2480' must be 5 or 6 digits"),
    ("add,372560,24801", "number 372560 is too short to be a full E.164 number"),
    ("add,037256000001,24801", f"number '037256000001' {NOT_E164}"),
    ("remove,37256", "number 37256 is too short to be a full E.164 number"),
    ("remove", "expected number,mccmnc[,ported_at], got 0 fields"),
    ("add,37256000001,24801,2025-01-01,extra", "expected number,mccmnc[,ported_at], got 4 fields"),
]


@pytest.mark.parametrize(("bad", "delta"), [(FULL_BAD, False), (DELTA_BAD, True)], ids=["full", "delta"])
def test_every_kind_of_bad_line_is_reported_with_its_line_and_reason(
    tmp_path: Path, block_size: int, bad: list[tuple[str, str]], delta: bool
) -> None:
    """Each bad line between 300 good ones (so the columns read them), then all of them in a row."""
    good = [f"{'add,' if delta else ''}3725{i:07d},24801" for i in range(300)]
    lines = list(good)
    for at, (text, _) in enumerate(bad):
        lines.insert(10 + at * 17, text)
    lines += [text for text, _ in bad]
    content = ("\n".join(lines) + "\n").encode()
    wanted = sorted((number, reason) for number, text in enumerate(lines, 1) for t, reason in bad if t == text)
    assert len(wanted) == 2 * len(bad)
    got = both_ways(tmp_path, content, delta=delta, skip_invalid=True)
    assert (got.failure, got.errors, got.skipped, got.records) == (None, wanted, len(wanted), len(good))
    first = both_ways(tmp_path, content, delta=delta, skip_invalid=False)
    line, reason = wanted[0]
    assert (
        first.failure
        == f"ImportFailed: line {line}: {reason}; nothing was imported (use --skip-invalid to skip bad lines)"
    )
    assert first.errors == [wanted[0]]


# ---------------------------------------------------------------- the last line decides


def test_the_last_line_of_a_repeated_number_decides(tmp_path: Path, block_size: int) -> None:
    """Repeats far apart (other blocks with small ones), a bad repeat that does not count, a removal in a delta."""
    filler = [f"4915{i:08d},26201" for i in range(200)]
    full = ["37251000001,24801", "37251000002,24801", *filler, "37251000001,24802", "37251000002,24803"]
    full += [*filler[:50], "37251000001,24803", "37251000001,2480", "37251000002,24801"]
    got = both_ways(tmp_path, ("\n".join(full) + "\n").encode(), delta=False, skip_invalid=True)
    assert got.networks == tuple(DataNetwork(m) for m in ("24801", "26201", "24802", "24803"))
    table = dict(zip(got.keys, (got.networks[v].mccmnc for v in got.values), strict=True))
    assert (table[37251000001], table[37251000002]) == ("24803", "24801")
    assert len(table) == 202 and got.errors == [(len(full) - 1, "mccmnc '2480' must be 5 or 6 digits")]

    delta = ["add,37256000001,24801", "add,37256000002,24801", *(f"add,{line}" for line in filler)]
    delta += ["remove,37256000001", "add,37256000002,24803", "remove,37256000002", "add,37256000001,24802"]
    got = both_ways(tmp_path, ("\n".join(delta) + "\n").encode(), delta=True, skip_invalid=False)
    table = dict(zip(got.keys, (got.networks[v].mccmnc for v in got.values), strict=True))
    assert table.get(37256000001) == "24802" and 37256000002 not in table and len(table) == 201


@pytest.mark.parametrize("window", [ported._WINDOW, 5], ids=["own windows", "windows of 5 rows"])
def test_repeats_on_identical_rows_and_on_rows_that_disagree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """Only the numbers whose rows disagree are searched for their last line; identical repeats need not be."""
    monkeypatch.setattr(ported, "_WINDOW", window)
    filler = [f"4915{i:08d},2620{i % 3 + 1}" for i in range(300)]
    same = ["37251000003,24802"] * 3  # one number, identical rows
    agree_then_not = ["37251000004,24801", "37251000004,24801", "37251000004,24802"]
    full = [*same, *filler[:100], *agree_then_not[:2], *filler[100:200], *same, agree_then_not[2], *filler[200:]]
    full += ["37251000005,24803", "37251000005,24801", "37251000005,24803"]  # disagree, then the first again
    got = both_ways(tmp_path, ("\n".join(full) + "\n").encode(), delta=False, skip_invalid=False)
    table = dict(zip(got.keys, (got.networks[v].mccmnc for v in got.values), strict=True))
    assert (table[37251000003], table[37251000004], table[37251000005]) == ("24802", "24802", "24803")
    assert len(table) == 303

    delta = ["add,37256000001,24801", *(f"add,{line}" for line in filler), "remove,37256000001", "remove,37256000001"]
    delta += ["add,37256000002,24801", "add,37256000002,24801", "remove,37256000002"]
    got = both_ways(tmp_path, ("\n".join(delta) + "\n").encode(), delta=True, skip_invalid=False)
    table = dict(zip(got.keys, (got.networks[v].mccmnc for v in got.values), strict=True))
    assert 37256000001 not in table and 37256000002 not in table and len(table) == 300


@pytest.mark.parametrize(
    ("networks", "fixed"),
    [
        (["26201", "26202", "00101", "99999"], True),
        (["310012", "310410", "001001", "999999"], True),
        (["26201", "262010", "26202"], False),  # two widths
        (["26201", "2620x", "26202"], False),  # a letter
        (["26201", "2620/", "26202"], False),  # a byte just below "0"
        (["26201", "2620:", "26202"], False),  # a byte just above "9"
        (["26201", " 2620", "26202"], False),  # a space
        (["2620", "2621", "2622"], False),  # 4 digits: not an MCC/MNC
        (["2620111", "2620122", "2620133"], False),  # 7 digits
    ],
)
def test_mccmnc_columns_of_one_width_read_as_numbers_the_same(
    tmp_path: Path, block_size: int, networks: list[str], fixed: bool
) -> None:
    """A column of 5 (or 6) digits throughout is read as numbers; every other column is dictionary-encoded:
    both give the per-line reader's networks, errors and line numbers."""
    lines = [f"4915{i:08d},{networks[i % len(networks)]}" for i in range(500)]
    got = both_ways(tmp_path, ("\n".join(lines) + "\n").encode(), delta=False, skip_invalid=True)
    delta = [f"add,{line}" if i % 4 else f"remove,{line.split(',')[0]}" for i, line in enumerate(lines)]
    both_ways(tmp_path, ("\n".join(delta) + "\n").encode(), delta=True, skip_invalid=True)
    assert (columnar._fixed_width_digits(pa.array(networks * 3)) is not None) == fixed
    assert got.records + got.skipped == 500


# ---------------------------------------------------------------- the shapes a file comes in


def test_blank_lines_comments_and_a_header_only_on_line_1(tmp_path: Path, block_size: int) -> None:
    content = (
        b"msisdn,operator\n\n   \n# a comment, with a comma\n,,\n37251000001,24801\n  # indented\n"
        b"\r\n , \n number , mccmnc \n37251000002 , 24802 ,\n"
    )
    assert rows(read(tmp_path, content)) == [
        (37251000001, "24801"),
        (10, f"number 'number' {NOT_E164}"),
        (37251000002, "24802"),
    ]
    both_ways(tmp_path, content, delta=False, skip_invalid=True)
    numbers_first = b"37251000001,24801\nnumber,mccmnc\n"  # line 1 with a number is a row, not a header
    assert rows(read(tmp_path, numbers_first)) == [(37251000001, "24801"), (2, f"number 'number' {NOT_E164}")]


def test_quoted_fields_closed_on_their_line(tmp_path: Path, block_size: int) -> None:
    """Quotes send a line to the per-line reader; the lines around it stay in the columns, numbered right."""
    good = [f"3725{i:07d},24801" for i in range(400)]
    lines = [*good[:150], '"37256000001","24802"', '"+37256000002",24803,"2025-01-01"', *good[150:], "372510,24801"]
    items = rows(read(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert items[150:152] == [(37256000001, "24802"), (37256000002, "24803")]
    assert items[-1] == (403, "number 372510 is too short to be a full E.164 number")
    assert len(items) == 403
    both_ways(tmp_path, ("\n".join(lines) + "\n").encode(), delta=False, skip_invalid=True)


def test_crlf_with_a_bom_and_no_final_newline(tmp_path: Path, block_size: int) -> None:
    lines = ["number,mccmnc", *(f"3725{i:07d},24801" for i in range(300)), "372510,24801", "37256000001,24802"]
    content = b"\xef\xbb\xbf" + "\r\n".join(lines).encode()
    items = rows(read(tmp_path, content))
    assert items[-2:] == [(302, "number 372510 is too short to be a full E.164 number"), (37256000001, "24802")]
    assert len(items) == 302
    both_ways(tmp_path, content, delta=False, skip_invalid=True)


def test_a_carriage_return_inside_a_line_stops_the_file_at_its_line(tmp_path: Path, block_size: int) -> None:
    """csv cannot read on past it (as past a byte that is not UTF-8): one error naming the line, nothing imported."""
    good = [f"3725{i:07d},24801" for i in range(300)]
    content = ("\n".join([*good[:200], "3725\r1000001,24801", *good[200:]]) + "\n").encode()
    with pytest.raises(FormatError, match=r"^line 201: not readable as csv \(.*\); nothing was imported$"):
        read(tmp_path, content)
    got = both_ways(tmp_path, content, delta=False, skip_invalid=True)
    assert (got.failure or "").startswith("FormatError: line 201: not readable as csv")
    old_mac = b"37251000001,24801\r37251000002,24801\r"  # CR alone ends no line: the whole file is line 1
    with pytest.raises(FormatError, match=r"^line 1: not readable as csv"):
        read(tmp_path, old_mac)


# ---------------------------------------------------------------- a failed import keeps the old data serving


def _import(engine: Engine, data_dir: Path, content: bytes, *, delta: bool = False) -> ImportReport:
    path = data_dir.parent / "files" / "ported.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with path.open("rb") as raw:
        stream = sources.import_stream(PORTED, "csv", raw, delta=delta)
        return import_dataset(engine, data_dir, PORTED, stream, source=str(path), fmt="csv", delta=delta)


def _ported_to(engine: Engine, data_dir: Path, *numbers: str) -> list[str | None]:
    resolver = Resolver(NetworkRegistry.shipped(), load_operator_data(engine, data_dir))
    return [r.ported_network.mccmnc if r.ported_network else None for r in resolver.resolve(list(numbers))]


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes() for p in sorted((data_dir / "datasets").rglob("*")) if p.is_file()
    }


def test_a_failed_columnar_import_changes_nothing_and_the_old_data_keeps_serving(
    engine: Engine, data_dir: Path
) -> None:
    """Every way the column-wise import can fail, on a file big enough for the columns; then a good one works."""
    report = _import(engine, data_dir, b"37256000001,24801\n37256000002,24803\n")
    assert report.version.rows == 2
    versions, files = catalog.all_versions(engine), _files(data_dir)
    serving = ["+37256000001", "+37256000002", "+37256000003"]
    assert _ported_to(engine, data_dir, *serving) == ["24801", "24803", None]

    many = [f"37256{i:06d},24803" for i in range(50_000)]

    def body(*inserted: tuple[int, str]) -> bytes:
        lines = list(many)
        for at, text in inserted:
            lines.insert(at, text)
        return ("\n".join(lines) + "\n").encode()

    failures: list[tuple[bytes, type[Exception], str]] = [
        (body((40_000, "37256000003,2480")), ImportFailed, "line 40001: mccmnc '2480' must be 5 or 6 digits"),
        (
            body((30_000, "37256000003,Telia\xe9")).replace(b"Telia\xc3\xa9", b"Telia\xe9"),
            FormatError,
            "line 30001: not valid utf-8",
        ),
        (body((20_000, "3725\r6000003,24801")), FormatError, "line 20001: not readable as csv"),
        (
            ("\n".join(f"3725{i:07d},{10000 + i}" for i in range(65_537)) + "\n").encode(),
            ImportFailed,
            "more than 65,535",
        ),
        (b"number,mccmnc\n# only a header\n\n", ImportFailed, "the file holds no valid rows"),
    ]
    for content, error, message in failures:
        with pytest.raises(error) as caught:
            _import(engine, data_dir, content)
        assert str(caught.value).startswith(message)
        assert catalog.all_versions(engine) == versions
        assert _files(data_dir) == files  # nothing new, nothing touched, no half-built folder
        assert _ported_to(engine, data_dir, *serving) == ["24801", "24803", None]
    with pytest.raises(ImportFailed, match=r"^line 3: "):  # a delta fails the same way
        _import(engine, data_dir, b"add,37256000003,24802\n\nadd,372560,24802\n", delta=True)
    assert _ported_to(engine, data_dir, *serving) == ["24801", "24803", None]

    _import(engine, data_dir, body((10, "37256000003,24801")))
    assert _ported_to(engine, data_dir, *serving) == ["24803", "24803", "24801"]
