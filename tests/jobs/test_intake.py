"""Reading an upload, the columnar router, and a chunk's stored form, against what the CLI and the sync path do."""

from __future__ import annotations

import json

import numpy as np
import pytest

from numlookup.bulk import format_csv, format_jsonl
from numlookup.bulk_input import BulkReader
from numlookup.jobs import prepared, render
from numlookup.jobs.cpu import MAX_INPUT_CHARS, MAX_LINE_BYTES, Lines, UploadError, parse_lines
from numlookup.jobs.intake import LineReader, check_callback_url, check_friendly_name
from numlookup.live.router import NO_ROUTE, Router
from numlookup.numbering import Resolver
from numlookup.settings import load_settings
from tests.corpus import sample_corpus


def numbers_of(body: bytes, column: int | None = None, header: bool = False, block: int = 7) -> list[str]:
    """What the intake reads from ``body`` fed in pieces of ``block`` bytes (cut anywhere, as a socket does)."""
    reader = LineReader(column, header)
    numbers: list[str] = []
    for start in range(0, len(body), block):
        if (lines := reader.feed(body[start : start + block])) is not None:
            numbers += parse_lines(lines)
    if (lines := reader.finish()) is not None:
        numbers += parse_lines(lines)
    return numbers


def cli_numbers(body: bytes, column: int | None = None, header: bool = False) -> list[str]:
    import io

    reader = BulkReader(io.BytesIO(body), column=column, header=header, delimiter=",")
    return [n for chunk in reader.chunks() for n in chunk.numbers]


@pytest.mark.parametrize(
    ("body", "column", "header"),
    [
        (b"+37251000001\n\n  +447712345678 \r\n4915112345678", None, False),
        (b"+37251000001\r+447712345678\r\n\r\n", None, False),
        (b"number\n+37251000001\n+358401234567\n", None, True),
        (b'name,phone\n"Doe, J",+37251000001\n\nx,"+44 7712 345678"\n', 1, True),
        (b"a;b\n+37251000001;x\n", 0, False),
    ],
)
def test_an_upload_is_read_as_the_cli_reads_the_same_file(body: bytes, column: int | None, header: bool) -> None:
    """Every line is a row, a blank one too (an invalid, free input), so a job's results line up with the CLI's."""
    read = numbers_of(body, column, header)
    assert read == cli_numbers(body, column, header)
    assert read  # every case has numbers


def test_a_csv_row_too_short_for_the_column_is_an_empty_input() -> None:
    """The CLI stops at such a row; a job, already accepted, looks it up as an empty (invalid, free) input."""
    assert numbers_of(b"a,+37251000001\nshort\nb,+358401234567\n", 1) == ["+37251000001", "", "+358401234567"]


def test_a_bom_is_dropped_and_the_first_line_counts_once() -> None:
    assert numbers_of("\ufeff+37251000001\n+37251000002\n".encode()) == ["+37251000001", "+37251000002"]
    assert numbers_of("\ufeffnumber\n+37251000001\n".encode(), header=True) == ["+37251000001"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"+37251000001\n+37251\x0000002\n", "line 2 holds a NUL byte"),
        (b"+37251000001\n+3725\xff1000002\n", "line 2 is not UTF-8"),
        (b"+1\n" + b"9" * (MAX_INPUT_CHARS + 1) + b"\n", "longer than 1024 characters"),
        (b"+1\n+2\n" + b"9" * (MAX_LINE_BYTES + 1), "line 3 is longer than 65536 bytes"),
    ],
)
def test_a_body_that_is_no_list_of_numbers_says_where(body: bytes, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        numbers_of(body, block=1 << 16)


def test_lines_know_where_they_are_in_the_upload() -> None:
    reader = LineReader()
    first = reader.feed(b"+1\n+2\n+3")
    second = reader.feed(b"\n+4\n")
    assert first == Lines(b"+1\n+2\n", 1) and second == Lines(b"+3\n+4\n", 3)
    assert reader.finish() is None


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://10.0.0.1:8080/a?b=c#d", "https://a-b.example.org:65535", "http://x"],
)
def test_callback_urls_that_are_accepted(url: str) -> None:
    assert check_callback_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/hook",
        "https://user:secret@example.com/",
        "https://example.com:65536/",
        "https://exa mple.com/",
        "https://example.com/\x01",
        "https://[::1]/",
        "https://example.com/\n",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_callback_urls_that_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="callback_url"):
        check_callback_url(url)


def test_a_friendly_name_holds_no_control_character() -> None:
    assert check_friendly_name("March, the list of 2026 ✓") == "March, the list of 2026 ✓"
    for wrong in ("a\x00b", "tab\there", "x" * 201):
        with pytest.raises(ValueError, match="friendly_name"):
            check_friendly_name(wrong)


def test_routing_in_columns_agrees_with_routing_each_number() -> None:
    routes = [
        {"match": "prefix:3725100", "source": "offline"},  # a carve-out first
        {"match": "cc:372", "source": "a"},
        {"match": "mccmnc:24405", "sources": ["b", "a"]},
        {"match": "prefix:4915", "source": "b"},
        {"match": "cc:1", "source": "a"},
    ]
    peer = {"username": "u", "password": "p"}
    upstreams = {"a": {"url": "http://127.0.0.1:1/v1", **peer}, "b": {"url": "http://127.0.0.1:2/v1", **peer}}
    environ = {"NUMLOOKUP_LIVE_ROUTES": json.dumps(routes), "NUMLOOKUP_UPSTREAMS": json.dumps(upstreams)}
    settings = load_settings(environ={**environ, "NUMLOOKUP_DATA_DIR": "/nonexistent"})
    router = Router.from_settings(settings)
    inputs, _ = sample_corpus(20_000)
    inputs += ["+37251000001", "+37252000001", "+358401234567", "+4915112345678", "+12025550123"]
    columns = Resolver().resolve_columns(inputs)
    current = np.where(columns.ported >= 0, columns.ported, columns.original)
    rows = router.route_rows(columns.batch.digits, columns.original, current, columns.networks)
    expected = [router.route(columns.resolution(i)) for i in range(len(inputs))]
    got = [() if r == NO_ROUTE else router.chain(int(r)) for r in rows.tolist()]
    assert got == expected
    assert sum(1 for chain in expected if chain) > 1000  # the corpus reaches the routes


def test_a_stored_chunk_renders_what_the_cli_prints() -> None:
    inputs, _ = sample_corpus(5_000)
    inputs += ["1,2", '"+3725"', "+37251000001", "+37251000001"]  # quoting, and a repeat
    columns = Resolver().resolve_columns(inputs)
    stored = prepared.encode(prepared.Prepared(columns, np.full(len(inputs), NO_ROUTE, dtype=np.int16)))
    back = prepared.decode(stored).columns
    assert format_csv(back) == format_csv(columns)
    checked = "2026-12-02T10:00:00.000Z"
    results = render.build(back, "onoff", checked, {})
    assert render.render(results, "csv").decode() == format_csv(columns)
    cli = format_jsonl(columns, "onoff").splitlines()
    job = render.render(results, "jsonl").splitlines()
    assert len(job) == len(cli) == len(inputs)
    drop = [line.split(b'"checkedAt":')[0] for line in cli]
    assert [line.split(b'"checkedAt":')[0] for line in job] == drop
    assert all(f'"checkedAt":"{checked}"'.encode() in line for line in job)


def test_pieces_of_a_chunk_keep_their_rows() -> None:
    inputs, _ = sample_corpus(3_000)
    columns = Resolver().resolve_columns(inputs)
    whole = prepared.Prepared(columns, np.arange(len(inputs), dtype=np.int16) % 3 - 1)
    parts = [prepared.piece(whole, a, b) for a, b in ((0, 1000), (1000, 2999), (2999, 3000))]
    assert "".join(format_csv(p.columns) for p in parts) == format_csv(columns)
    assert np.array_equal(np.concatenate([p.routes for p in parts]), whole.routes)
