"""`numlookup lookup --input`: whole files in, one result per number out, as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import phonenumbers
import pytest

from numlookup.bulk import CSV_HEADER, lookup_file, read_chunks
from numlookup.numbering import Resolver
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap
from tests.support import ROOT, environment, run_cli

NUMBERS = ["+37251000001", "4915112345678", "hello", "+44 7712 345678", "+3725", "+12025550123"]


@pytest.mark.usefixtures("engine")  # lookup reads imported data from the database, which must exist
def test_csv_output_matches_the_resolver(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(NUMBERS) + "\n\n")
    target = tmp_path / "out.csv"
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target))
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0]) == CSV_HEADER.strip().split(",")
    assert [r["input"] for r in rows] == NUMBERS
    estonia, germany, hello, uk, short, us = rows
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
    assert all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.usefixtures("engine")
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


@pytest.mark.usefixtures("engine")
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
    assert [(r["input"], r["number"], r["region"]) for r in rows] == [
        ("0151 12345678", "+4915112345678", "DE"),
        ("+37251000001", "+37251000001", "EE"),
        ("0171-1234567", "+491711234567", "DE"),
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
    seen = [n for chunk, _ in read_chunks(io.BytesIO(data)) for n in chunk]
    assert seen == numbers


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
