"""`numlookup lookup --input`: whole files in, one result per number out, as a user runs it."""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import phonenumbers
import pytest

from numlookup import bulk, bulk_input
from numlookup.bulk import (
    CSV_HEADER,
    LOOKUP_COLUMNS,
    OutputFormat,
    csv_header,
    format_csv,
    format_jsonl,
    lookup_file,
    write_pieces,
)
from numlookup.bulk_input import CHUNK_ROWS, BulkInputError, BulkReader
from numlookup.numbering import Resolver
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap
from tests.support import ROOT, environment, run_cli

NUMBERS = ["+37251000001", "4915112345678", "hello", "+44 7712 345678", "+3725", "+12025550123"]

# The lookup command reads imported data from the database, which must exist: only serve and db upgrade create one.
pytestmark = pytest.mark.usefixtures("engine")


def test_csv_output_matches_the_resolver(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(NUMBERS) + "\n\n")
    target = tmp_path / "out.csv"
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target))
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0]) == CSV_HEADER.strip().split(",")
    assert [r["input"] for r in rows] == [*NUMBERS, ""]  # the blank last line is a row too
    estonia, germany, hello, uk, short, us, blank = rows
    assert (estonia["number"], estonia["valid"], estonia["type"], estonia["region"], estonia["country_code"]) == (
        "+37251000001",
        "true",
        "mobile",
        "EE",
        "EST",
    )
    assert (estonia["original_mccmnc"], estonia["original_network"], estonia["ported"]) == (
        "24801",
        "Telia Eesti",
        "",  # no porting data: unknown, the API's null
    )
    assert estonia["current_mccmnc"] == "24801"
    assert germany["number"] == "+4915112345678" and germany["original_mccmnc"] == "26201"
    assert (hello["number"], hello["valid"], hello["reason"]) == ("hello", "false", "not_a_number")
    assert uk["number"] == "+447712345678" and uk["original_mccmnc"] == "23410"
    assert (short["valid"], short["reason"]) == ("false", "too_short")
    assert us["type"] == "fixed_line_or_mobile" and us["original_mccmnc"] == ""
    assert (blank["number"], blank["valid"], blank["reason"]) == ("", "false", "not_a_number")
    assert all(len(r) == len(rows[0]) for r in rows)


def test_jsonl_lines_are_api_result_objects(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(NUMBERS) + "\n")
    out = run_cli(data_dir, "lookup", "--input", str(source), "--format", "jsonl").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    api = json.loads(run_cli(data_dir, "lookup", *NUMBERS).stdout)["result"]
    assert [line.pop("input") for line in lines] == NUMBERS
    for item in (*lines, *api):  # the time of each answer: two runs differ
        assert item.pop("checkedAt")
    assert lines == api


def test_region_hint_and_csv_column_and_stdin(data_dir: Path) -> None:
    contacts = 'name,phone\n"Meyer, Anna",0151 12345678\nBob,+37251000001\nEve,0171-1234567\n'
    done = subprocess.run(
        [sys.executable, "-m", "numlookup", "lookup", "--input", "-", "--region", "de", "--column", "1", "--header"],
        input=contacts,
        capture_output=True,
        text=True,
        env=environment(data_dir),
        cwd=ROOT,
        check=True,
    )
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["name"], r["phone"], r["number"], r["region"]) for r in rows] == [
        ("Meyer, Anna", "0151 12345678", "+4915112345678", "DE"),
        ("Bob", "+37251000001", "+37251000001", "EE"),
        ("Eve", "0171-1234567", "+491711234567", "DE"),
    ]


def test_inputs_with_commas_and_quotes_are_quoted(tmp_path: Path) -> None:
    sink = io.BytesIO()
    lookup_file(Resolver(), io.BytesIO(b'12,34\n"+37251000001"\n+37251000001\n'), sink)
    rows = list(csv.reader(io.StringIO(sink.getvalue().decode())))
    assert [r[0] for r in rows[1:]] == ["12,34", '"+37251000001"', "+37251000001"]
    assert all(len(r) == 13 for r in rows)


def test_chunks_cover_every_line_across_block_boundaries() -> None:
    numbers = [f"+3725{i:07d}" for i in range(300_000)]  # about 4.5 MB: more than one read block
    data = ("\n".join(numbers)).encode()  # no final newline
    chunks = list(BulkReader(io.BytesIO(data)).chunks())
    assert len(chunks) > 1
    assert [n for chunk in chunks for n in chunk.numbers] == numbers


def test_csv_chunks_cover_every_record_across_chunk_boundaries() -> None:
    """More records than a chunk holds, some spanning lines: each comes out once, whole, in order."""
    rows = [[f"row {i}", f"+3725{i:07d}", "two\nlines" if i % 1000 == 0 else ""] for i in range(CHUNK_ROWS + 5_000)]
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    chunks = list(BulkReader(io.BytesIO(text.getvalue().encode()), column=1).chunks())
    assert len(chunks) > 1
    assert [r for chunk in chunks for r in chunk.rows or []] == rows
    assert [n for chunk in chunks for n in chunk.numbers] == [r[1] for r in rows]


def test_bulk_agrees_with_phonenumbers_on_mixed_input(tmp_path: Path) -> None:
    """Every region's example mobile number and a near miss, through the file path."""
    inputs = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is not None:
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            inputs += [e164, e164 + "1"]
    sink = io.BytesIO()
    stats = lookup_file(Resolver(), io.BytesIO("\n".join(inputs).encode()), sink)
    rows = list(csv.DictReader(io.StringIO(sink.getvalue().decode())))
    assert stats.numbers == len(inputs) == len(rows)
    for row in rows:
        parsed = phonenumbers.parse(row["input"])
        assert (row["valid"] == "true") == phonenumbers.is_valid_number(parsed), row["input"]
        if row["valid"] == "true":
            assert row["region"] == phonenumbers.region_code_for_number(parsed)


def test_ported_column_says_what_porting_data_knows() -> None:
    """true/false where the ported dataset covers the country, empty (the API's null) where nothing knows."""
    moved = PortedMap.build(
        np.array([37251000002], dtype=np.int64), np.zeros(1, dtype=np.uint16), [DataNetwork("24802")]
    )
    resolver = Resolver(operator=OperatorData(ported=moved))
    numbers = b"+37251000001\n+37251000002\n+37120012345\nhello\n"
    sink = io.BytesIO()
    lookup_file(resolver, io.BytesIO(numbers), sink)
    rows = list(csv.DictReader(io.StringIO(sink.getvalue().decode())))
    assert [r["ported"] for r in rows] == ["false", "true", "", ""]
    assert [r["current_mccmnc"] for r in rows[:2]] == ["24801", "24802"]
    assert rows[2]["current_mccmnc"] == rows[2]["original_mccmnc"]  # Latvia: its range holder, porting unknown
    sink = io.BytesIO()
    lookup_file(resolver, io.BytesIO(numbers), sink, fmt="jsonl")
    assert [json.loads(line)["ported"] for line in sink.getvalue().splitlines()] == [False, True, None, None]


def _lookup_file(data_dir: Path, tmp_path: Path, content: bytes, *args: str) -> bytes:
    """``numlookup lookup --input FILE --output FILE ARGS`` on ``content``: the output's bytes, exactly."""
    source, target = tmp_path / "in.csv", tmp_path / "out"
    source.write_bytes(content)
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target), *args)
    return target.read_bytes()


def _records(output: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(output.decode(), newline=""), delimiter=delimiter))


def _mixed_lines(count: int) -> list[str]:
    """Numbers, blank and space-only lines, garbage (a form feed and U+2028 inside a line are no line ends)."""
    kinds = [
        "",
        "   ",
        "+37251000001",
        "hello\x0cworld",
        "x\u2028y",
        "4915112345678",
        "+3725",
        "00372 5100 0001",
        'é,"',
    ]
    return [kinds[i % len(kinds)] if i % 7 else f"+3725{i:07d}" for i in range(count)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("shape", ["lines", "csv"])
def test_output_rows_are_the_input_lines_on_a_large_mixed_file(
    data_dir: Path, tmp_path: Path, shape: str, fmt: str
) -> None:
    lines = _mixed_lines(100_000)
    if shape == "lines":
        content = "".join(line + ("\r\n" if i % 3 else "\n") for i, line in enumerate(lines))
        args: tuple[str, ...] = ()
    else:  # a CSV with the number in the middle column; a blank line stays blank
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        for i, line in enumerate(lines):
            writer.writerow([str(i), line, "end"] if line.strip() else [])
        content = text.getvalue()
        args = ("--column", "1")
    source = tmp_path / "mixed"
    source.write_text(content, newline="")
    with source.open(newline=None) as written:  # universal newlines: the file's line count
        assert len(written.readlines()) == len(lines)

    target = tmp_path / "out"
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target), "--format", fmt, *args)
    if fmt == "csv":
        out = _records(target.read_bytes())
        head, rows = out[0], out[1:]
        picked = head.index("column_1" if shape == "csv" else "input")
        inputs = [row[picked] for row in rows]
        reasons = [row[head.index("reason")] for row in rows]
    else:
        objects = [json.loads(line) for line in target.read_bytes().splitlines()]
        inputs = [o["input"] for o in objects]
        reasons = [o.get("error") for o in objects]
    assert len(inputs) == len(lines)
    assert inputs == [line.strip() for line in lines]
    blank = "not_a_number" if fmt == "csv" else "Not a phone number"
    assert all(reason == blank for line, reason in zip(lines, reasons, strict=True) if not line.strip())
    if shape == "csv" and fmt == "csv":
        assert [row[0] for row in rows] == [str(i) if line.strip() else "" for i, line in enumerate(lines)]


def test_crlf_and_a_byte_order_mark(data_dir: Path, tmp_path: Path) -> None:
    plain = _lookup_file(data_dir, tmp_path, b"\xef\xbb\xbf+37251000001\r\n\r\n+4915112345678\r\n")
    assert b"\r" not in plain and b"\xef\xbb\xbf" not in plain
    rows = list(csv.DictReader(io.StringIO(plain.decode())))
    assert [(r["input"], r["valid"]) for r in rows] == [
        ("+37251000001", "true"),
        ("", "false"),
        ("+4915112345678", "true"),
    ]

    table = _lookup_file(
        data_dir, tmp_path, b"\xef\xbb\xbfname,phone\r\nAnna,+37251000001\r\n", "--column", "1", "--header"
    )
    assert b"\r" not in table
    head, anna = _records(table)
    assert head == ["name", "phone", *LOOKUP_COLUMNS]
    assert anna[:4] == ["Anna", "+37251000001", "+37251000001", "true"]


def test_a_semicolon_export_is_detected_and_keeps_its_delimiter(data_dir: Path, tmp_path: Path) -> None:
    export = 'name;phone;city\r\n"Meyer; Anna";0151 12345678;Köln\r\nBob;+37251000001;Tallinn, Harju\r\n'
    out = _lookup_file(data_dir, tmp_path, export.encode(), "--column", "1", "--header", "--region", "DE")
    head, meyer, bob = _records(out, ";")
    assert head == ["name", "phone", "city", *LOOKUP_COLUMNS]
    assert _records(export.encode(), ";")[1:] == [meyer[:3], bob[:3]]
    assert (meyer[3], meyer[head.index("region")]) == ("+4915112345678", "DE")
    assert (bob[3], bob[head.index("region")]) == ("+37251000001", "EE")
    assert out.decode().splitlines()[1].startswith('"Meyer; Anna";')  # the delimiter inside a field is quoted


def test_delimiter_given_overrides_the_detection(data_dir: Path, tmp_path: Path) -> None:
    """The first line has a ``;`` and no comma outside quotes: ``;``-separated, unless ``--delimiter ,`` says not."""
    content = b'+37251000001;x\n"+4915112345678;y"\n'
    detected = _records(_lookup_file(data_dir, tmp_path, content, "--column", "0"), ";")
    assert detected[0][:3] == ["column_0", "column_1", "number"]
    assert [row[:3] for row in detected[1:]] == [
        ["+37251000001", "x", "+37251000001"],
        ["+4915112345678;y", "", "+4915112345678;y"],
    ]
    given = _records(_lookup_file(data_dir, tmp_path, content, "--column", "0", "--delimiter", ","))
    assert given[0][:2] == ["column_0", "number"]
    assert [row[0] for row in given[1:]] == ["+37251000001;x", "+4915112345678;y"]
    tabs = _lookup_file(
        data_dir, tmp_path, b"+37251000001\tnote, with a comma\n", "--column", "0", "--delimiter", "\\t"
    )
    assert _records(tabs, "\t")[1][:4] == ["+37251000001", "note, with a comma", "+37251000001", "true"]


def test_quoted_fields_with_delimiters_quotes_and_newlines_are_kept_intact(data_dir: Path, tmp_path: Path) -> None:
    content = (
        b'"Meyer, Anna",+37251000001,"line one\nline two"\r\n'
        b'"she said ""hi""",+4915112345678,"a\r\nb"\r\n'
        b"plain,hello,\r\n"
    )
    given = _records(content)
    for fmt in ("csv", "jsonl"):
        out = _lookup_file(data_dir, tmp_path, content, "--column", "1", "--format", fmt)
        if fmt == "csv":
            head, *rows = _records(out)
            assert head == ["column_0", "column_1", "column_2", *LOOKUP_COLUMNS]
            assert [row[:3] for row in rows] == given  # three records over five lines
            assert [row[4] for row in rows] == ["true", "true", "false"]
        else:
            objects = [json.loads(line) for line in out.decode().split("\n") if line]
            assert [o["row"] for o in objects] == given
            assert [o["input"] for o in objects] == [row[1] for row in given]


def test_jsonl_of_a_csv_carries_the_row_and_the_api_result(data_dir: Path, tmp_path: Path) -> None:
    content = b"name,phone\nAnna,+37251000001\n\nBob,hello\n"
    out = _lookup_file(data_dir, tmp_path, content, "--column", "1", "--header", "--format", "jsonl")
    objects = [json.loads(line) for line in out.splitlines()]
    assert [(o.pop("input"), o.pop("row")) for o in objects] == [
        ("+37251000001", ["Anna", "+37251000001"]),
        ("", []),
        ("hello", ["Bob", "hello"]),
    ]
    api = json.loads(run_cli(data_dir, "lookup", "+37251000001", "", "hello").stdout)["result"]
    for item in (*objects, *api):
        assert item.pop("checkedAt")
    assert objects == api


def test_short_rows_are_padded_and_blank_lines_get_every_column(tmp_path: Path) -> None:
    sink = io.BytesIO()
    lookup_file(Resolver(), io.BytesIO(b"a,+37251000001,c,d\n\nb,+37251000001\n"), sink, column=1)
    head, full, blank, short = _records(sink.getvalue())
    assert len(head) == len(full) == len(blank) == len(short) == 4 + len(LOOKUP_COLUMNS)
    assert (blank[:5], short[:5]) == (["", "", "", "", ""], ["b", "+37251000001", "", "", "+37251000001"])


def test_empty_inputs_write_the_header_alone() -> None:
    for content, column, header in ((b"", None, False), (b"", 0, False), (b"name,phone\r\n", 1, True)):
        sink = io.BytesIO()
        stats = lookup_file(Resolver(), io.BytesIO(content), sink, column=column, header=header)
        assert stats.numbers == 0
        assert len(_records(sink.getvalue())) == 1


def test_a_missing_column_is_an_error_naming_its_line(data_dir: Path, tmp_path: Path) -> None:
    good = "a,b,c,d,e,+37251000001\n"
    content = good + 'a,"two\nlines",c,d,e,+37251000001\n' + good * 3 + "x,y,+37251000001\n" + good
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(content)
    done = run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target), "--column", "5", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: line 7 has 3 columns; --column 5 needs at least 6"
    assert not target.exists()  # no half file of results
    to_stdout = run_cli(data_dir, "lookup", "--input", str(source), "--column", "5", check=False)
    assert to_stdout.returncode == 1 and "line 7 has 3 columns" in to_stdout.stderr


def test_a_row_wider_than_the_header_is_an_error_unless_its_extra_fields_are_empty() -> None:
    sink = io.BytesIO()
    lookup_file(Resolver(), io.BytesIO(b"name,phone\nAnna,+37251000001,,\n"), sink, column=1, header=True)
    assert _records(sink.getvalue())[1][:3] == ["Anna", "+37251000001", "+37251000001"]  # a trailing delimiter
    with pytest.raises(BulkInputError, match=r"^line 3 has 3 columns, line 1 has 2: a ',' in an unquoted field\?$"):
        lookup_file(
            Resolver(),
            io.BytesIO(b"name,phone\nBob,+37251000001\nMeyer, Anna,+4915112345678\n"),
            sink,
            column=1,
            header=True,
        )


def test_stdin_to_stdout_with_dashes(data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "numlookup", "lookup", "--input", "-", "--output", "-", "--column", "0"],
        input=b"\xef\xbb\xbf+37251000001;x\r\n\r\nhello;y\r\n",
        capture_output=True,
        env=environment(data_dir),
        cwd=ROOT,
        check=True,
    )
    head, *rows = _records(done.stdout, ";")
    assert head == ["column_0", "column_1", *LOOKUP_COLUMNS]
    assert [row[:4] for row in rows] == [
        ["+37251000001", "x", "+37251000001", "true"],
        ["", "", "", "false"],
        ["hello", "y", "hello", "false"],
    ]


def test_the_garbage_collector_runs_again_after_a_file_even_a_refused_one() -> None:
    """lookup_file pauses the collector during each chunk; the process must get it back whatever happens."""
    assert gc.isenabled()
    lookup_file(Resolver(), io.BytesIO(b"+37251000001\n"), io.BytesIO(), column=0)
    assert gc.isenabled()
    with pytest.raises(BulkInputError, match="line 1 has 1 column; --column 3 needs at least 4"):
        lookup_file(Resolver(), io.BytesIO(b"+37251000001\n"), io.BytesIO(), column=3)
    assert gc.isenabled()


def test_before_an_exit_the_collector_stays_paused_after_the_last_chunk() -> None:
    """``then_exit``: what the run left is not collected (freed) as the process ends; the output is the same."""
    content = b"+37251000001\nnope\n+4915112345678\n"
    expected = io.BytesIO()
    lookup_file(Resolver(), io.BytesIO(content), expected, fmt="jsonl")
    assert gc.isenabled()
    sink = io.BytesIO()
    try:
        lookup_file(Resolver(), io.BytesIO(content), sink, fmt="jsonl", then_exit=True)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert _timeless(sink.getvalue()) == _timeless(expected.getvalue())


@pytest.mark.parametrize("column", [None, 0])
def test_the_collector_runs_between_chunks_not_after_the_last(
    monkeypatch: pytest.MonkeyPatch, column: int | None
) -> None:
    """One collection before each chunk but the first: what a chunk left is freed before the next is resolved."""
    monkeypatch.setattr(bulk_input, "CHUNK_BYTES", 4096)  # plain: 14-byte lines, 11 blocks
    monkeypatch.setattr(bulk_input, "CHUNK_ROWS", 300)  # CSV: 10 chunks of 300 records, taken 100 at a time
    monkeypatch.setattr(bulk_input, "_BATCH", 100)
    content = b"".join(b"+3725100%04d\n" % i for i in range(3000))
    reader = BulkReader(io.BytesIO(content), column=column)
    chunks = len(list(reader.blocks() if column is None else reader.chunks()))
    assert chunks >= 10
    resolver = Resolver()
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(record)
    try:
        stats = lookup_file(resolver, io.BytesIO(content), io.BytesIO(), column=column)
    finally:
        gc.callbacks.remove(record)
    assert stats.numbers == 3000
    assert collections == [1] * (chunks - 1)


@pytest.mark.parametrize(
    "inputs",
    [
        ["+37251000001", "+447712345678", "hello", "", "+٣٧٢٥١٠٠٠٠٠١", "Zoë +372 5100 0001"],  # no escapes: as text
        ["+37251000001", 'say "hi"', "back\\slash", "tab\there", "\x01"],  # escapes: every line through msgspec
    ],
)
def test_jsonl_lines_are_what_msgspec_encodes(inputs: list[str]) -> None:
    """Whichever way a chunk is formatted, each line is ``{"input", "number", …}`` exactly as msgspec writes it."""
    import msgspec

    from numlookup.bulk import format_jsonl
    from numlookup.results import number_result

    columns = Resolver().resolve_columns(inputs)
    lines = format_jsonl(columns, "seed").splitlines()
    assert len(lines) == len(inputs)
    for i, line in enumerate(lines):
        result = msgspec.to_builtins(number_result(columns.resolution(i), "seed"))
        decoded = json.loads(line)
        assert decoded["input"] == inputs[i]
        result["checkedAt"] = decoded["checkedAt"]
        assert decoded == {"input": inputs[i], **result}
        expected = msgspec.json.encode({"input": inputs[i], **result})
        assert line == expected


# Lines a user's file holds, beside every region's numbers: spacing, separators, prefixes, garbage, escapes.
_ODD_LINES = [
    "",
    "   ",
    "hello",
    "+",
    "++",
    "+0123456",
    "+1234567890123456",  # 16 digits: past the tables, phonenumbers decides
    "+" + "1" * 40,
    "+37251000001",
    " +37251000001",
    "+37251000001 ",
    "\t+37251000001\t",
    "\x1c+37251000001\x1f",  # str.strip strips these, bytes.strip does not
    "\u00a0+372 5100 0001\u00a0",
    "\u3000+37251000001",
    "+３７２５１０００００１",
    "+٣٧٢٥١٠٠٠٠٠١",
    "(+372) 5100-0001",
    "+372 5100 0001 ext. 12",
    "00372 5100 0001",
    "0037251000001",
    "372.5100.0001",
    "+1-800-FLOWERS",
    "tel:+441234567890",
    "+44 (0) 20 7946 0958",
    '"+37251000001"',
    'say "hi"',
    "back\\slash",
    "12,34",
    "a;b",
    "x\u2028y",
    "form\x0cfeed",
    "del\x7f",
    "Zoë +372 5100 0001",
    "0151 12345678",
    "5123 4567",
]


def _every_region_lines() -> list[str]:
    """Each region's example numbers (mobile, fixed line) as people write them, and near misses."""
    lines = []
    formats = phonenumbers.PhoneNumberFormat
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, formats.E164)
            lines += [
                e164,
                "00" + e164[1:],
                e164[1:],
                phonenumbers.format_number(example, formats.INTERNATIONAL),
                phonenumbers.format_number(example, formats.RFC3966),
                phonenumbers.format_number(example, formats.NATIONAL),
                e164 + "1",
                e164[:-2],
            ]
    return lines


def _mixed_file(lines: list[str]) -> bytes:
    """``lines`` with a byte order mark, every kind of line end, blank lines, and no end after the last."""
    ends = ["\n", "\r\n", "\r", "\n\n"]
    text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    return ("\ufeff" + text.rstrip("\r\n")).encode("utf-8") + b"\xff\xfe+372\n+37251000001"  # bad UTF-8 too


def _read_as_documented(content: bytes) -> list[str]:
    """bulk_input's rule spelled out: UTF-8 (bad bytes as U+FFFD), no BOM, \\n, \\r\\n or \\r end a line, stripped."""
    text = content.decode("utf-8", "replace").removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def _timeless(output: bytes) -> bytes:
    """JSON lines with each ``checkedAt`` (the time of the answer, which two runs do not share) made one value."""
    return re.sub(rb'"checkedAt":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', b'"checkedAt":"T"', output)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("region", [None, "DE"])
def test_a_file_is_written_as_the_same_numbers_given_one_by_one(
    data_dir: Path, tmp_path: Path, fmt: str, region: str | None
) -> None:
    """``lookup --input FILE`` (read and written from the file's bytes) against ``lookup NUMBERS`` (the general path).

    The numbers given are the file's lines as the reader documents them, so both
    commands resolve the same strings; their outputs must be the same bytes but
    for the time of the answer.
    """
    content = _mixed_file(_every_region_lines() + _ODD_LINES)
    numbers = _read_as_documented(content)
    assert len(numbers) > 3000 and "" in numbers
    source, fast, general = tmp_path / "numbers.txt", tmp_path / "fast", tmp_path / "general"
    source.write_bytes(content)
    options = ["--format", fmt, *(["--region", region] if region else [])]
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(fast), *options)
    run_cli(data_dir, "lookup", "--output", str(general), *options, "--", *numbers)
    out = fast.read_bytes()
    assert out.count(b"\n") == len(numbers) + (fmt == "csv")
    if fmt == "jsonl":
        assert b'"checkedAt":"T"' not in out and _timeless(out).count(b'"checkedAt":"T"') == len(numbers)
    assert _timeless(out) == _timeless(general.read_bytes())


def _general_path(content: bytes, fmt: OutputFormat, region: str | None, header: bool) -> bytes:
    """What ``lookup_file`` wrote for plain input before its block path: decoded lines resolved and formatted."""
    resolver = Resolver()
    reader = BulkReader(io.BytesIO(content), header=header)
    out: list[bytes] = []
    for chunk in reader.chunks():
        if fmt == "csv" and not out:
            out.append(csv_header(reader).encode())
        columns = resolver.resolve_columns(chunk.numbers, region)
        out.append(format_csv(columns).encode() if fmt == "csv" else format_jsonl(columns, "seed"))
    return b"".join(out)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize(("region", "header"), [(None, False), ("EE", True)])
def test_blocks_read_from_bytes_write_what_the_general_path_writes(
    monkeypatch: pytest.MonkeyPatch, fmt: OutputFormat, region: str | None, header: bool
) -> None:
    """Small reads, so lines (and ``\\r\\n`` pairs) are cut between blocks; a NUL and other controls too."""
    monkeypatch.setattr(bulk_input, "CHUNK_BYTES", 4096)
    lines = _every_region_lines()[:1500] + _ODD_LINES + ["nul\x00byte", "\x01", "+37251000001\x00"]
    content = _mixed_file(lines) + b"\n\n"  # a blank last line: a block's last byte is a line's start
    sink = io.BytesIO()
    stats = lookup_file(Resolver(), io.BytesIO(content), sink, fmt=fmt, region=region, header=header)
    expected = _general_path(content, fmt, region, header)
    assert stats.numbers == len(_read_as_documented(content)) - header
    assert _timeless(sink.getvalue()) == _timeless(expected)


def test_writing_from_pieces_to_a_file_a_pipe_and_a_buffer(tmp_path: Path) -> None:
    """``write_pieces`` to a file after buffered bytes, a pipe smaller than a run (its reader slower) and a buffer."""
    import os
    import threading

    pieces = [b"x" * (i % 700) + b"\n" for i in range(5000)]
    whole = b"".join(pieces)
    target = tmp_path / "out"
    with target.open("wb") as sink:
        sink.write(b"head\n")  # buffered: it must come first
        write_pieces(sink, pieces)
        sink.write(b"tail\n")
    assert target.read_bytes() == b"head\n" + whole + b"tail\n"
    buffer = io.BytesIO()
    write_pieces(buffer, pieces)
    assert buffer.getvalue() == whole
    sizes = np.array([len(piece) for piece in pieces], dtype=np.int64)
    with target.open("wb") as sink:
        write_pieces(sink, pieces, sizes)
    assert target.read_bytes() == whole
    read_end, write_end = os.pipe()  # it holds 64 KiB: each write waits for the reader
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as source:
            while chunk := source.read(1000):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(write_end, "wb") as sink:
        write_pieces(sink, pieces)
    reader.join()
    assert bytes(received) == whole


def test_a_short_write_is_finished_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw sink may take part of a run (a signal, a full disk): the rest follows before the next run."""
    monkeypatch.setattr(bulk, "WRITE_BYTES", 1000)  # many runs, each cut short again and again

    class Partial(io.RawIOBase):
        """A raw file that takes at most half of what it is given, as ``os.write`` may."""

        def __init__(self, target: IO[bytes]) -> None:
            self.target = target
            self.calls = 0

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.calls += 1
            return self.target.write(bytes(data)[: max(1, len(data) // 2)])

    pieces = [b"%d," % i * (i % 5 + 1) for i in range(3000)]
    whole = b"".join(pieces)
    target = tmp_path / "out"
    with target.open("wb") as sink:
        partial = Partial(sink)
        write_pieces(cast(IO[bytes], partial), pieces)
    assert target.read_bytes() == whole
    assert partial.calls > 2 * (len(whole) // 1000)  # each run was cut short at least once


def test_the_odd_bytes_are_those_a_plain_line_cannot_hold() -> None:
    """``bulk_input._odd`` by comparisons is the byte class it names: controls but ``\\n``, ``"``, ``\\``, DEL on."""
    every = np.arange(256, dtype=np.uint8)
    named = [b < 32 and b != 10 or b in (34, 92) or b >= 127 for b in range(256)]
    assert bulk_input._odd(every).tolist() == named


def test_a_chunks_rows_are_checked_at_one_time_the_time_of_the_lookup() -> None:
    """The clock is read once per chunk: every row of it has that ``checkedAt``, between the call's start and end."""
    from datetime import UTC, datetime

    lines = _every_region_lines()[:2000] + _ODD_LINES
    before = datetime.now(UTC).replace(microsecond=0)
    sink = io.BytesIO()
    content = "".join(line.replace("\n", " ") + "\n" for line in lines).encode("utf-8")  # one block
    lookup_file(Resolver(), io.BytesIO(content), sink, fmt="jsonl")
    after = datetime.now(UTC)
    stamps = {json.loads(line)["checkedAt"] for line in sink.getvalue().splitlines()}
    assert len(stamps) == 1
    moment = datetime.fromisoformat(stamps.pop().replace("Z", "+00:00"))
    assert before <= moment <= after
