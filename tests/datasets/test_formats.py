"""The operator data readers, line by line: good rows, bad rows and their line numbers.

Readers are fed real files (written to ``tmp_path`` in the encoding the format
uses) through ``sources.records``, the path the CLI and the admin endpoint take.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TypedDict

import pytest

from numlookup.datasets import formats, sources
from numlookup.datasets.catalog import dataset_kind
from numlookup.datasets.formats import FormatError, LineError, PortedRecord, RangeRecord

ARCEP_HEADER = "EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution"


def read(
    tmp_path: Path,
    kind: str,
    content: str | bytes,
    *,
    fmt: str = "csv",
    delta: bool = False,
    encoding: str = "utf-8",
    carrier_map: Path | None = None,
    carrier_names: Path | None = None,
    operator_map: Path | None = None,
) -> list[RangeRecord | PortedRecord | LineError]:
    """Write ``content`` to a file and read it back the way an import does."""
    path = tmp_path / f"input-{kind}.{fmt}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    with path.open("rb") as raw:
        chosen = dataset_kind(kind)
        assert chosen is not None, kind
        records = sources.records(
            chosen,
            sources.source_format(fmt),
            raw,
            delta=delta,
            carrier_map=carrier_map,
            carrier_names=carrier_names,
            operator_map=operator_map,
        )
        return list(records)


def errors(items: list[RangeRecord | PortedRecord | LineError]) -> list[tuple[int, str]]:
    return [(e.line, e.reason) for e in items if isinstance(e, LineError)]


def good(items: list[RangeRecord | PortedRecord | LineError]) -> list[RangeRecord | PortedRecord]:
    return [r for r in items if not isinstance(r, LineError)]


def only_error(items: list[RangeRecord | PortedRecord | LineError]) -> LineError:
    [error] = [e for e in items if isinstance(e, LineError)]
    return error


# ---------------------------------------------------------------- our csv: ranges


def test_ranges_prefix_rows(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", "37251,24801,Telia Test\n+37256,24802\n37257,24803,\n1201,310410\n")
    assert items == [
        RangeRecord(1, "37251", "37251", "24801", "Telia Test"),
        RangeRecord(2, "37256", "37256", "24802", None),
        RangeRecord(3, "37257", "37257", "24803", None),  # an empty name is no name
        RangeRecord(4, "1201", "1201", "310410", None),  # a 6-digit mccmnc is still an mccmnc
    ]
    assert all(isinstance(r, RangeRecord) and r.is_prefix and r.action == "add" for r in items)


def test_ranges_start_end_rows(tmp_path: Path) -> None:
    items = read(
        tmp_path,
        "ranges",
        "37251000000,37251499999,24803,Tele2 Block\n+3725600000,+3725600999,24802\n12015550000,12015559999,310410\n",
    )
    assert items == [
        RangeRecord(1, "37251000000", "37251499999", "24803", "Tele2 Block"),
        RangeRecord(2, "3725600000", "3725600999", "24802", None),
        RangeRecord(3, "12015550000", "12015559999", "310410", None),
    ]
    assert not any(isinstance(r, RangeRecord) and r.is_prefix for r in items)


def test_range_versus_prefix_is_told_by_the_second_field(tmp_path: Path) -> None:
    """A second field of 7+ digits is a range end; of 5-6 digits it is an mccmnc."""
    items = read(tmp_path, "ranges", "3725100,3725199,24801\n372510,248010\n3725100,24801,3725199\n")
    assert items[0] == RangeRecord(1, "3725100", "3725199", "24801", None)
    assert items[1] == RangeRecord(2, "372510", "372510", "248010", None)
    # A prefix whose network happens to be named with digits stays a prefix.
    assert items[2] == RangeRecord(3, "3725100", "3725100", "24801", "3725199")


def test_ranges_header_comments_and_blank_lines(tmp_path: Path) -> None:
    text = (
        "prefix,mccmnc,network_name\n"
        "# Estonia, reviewed\n"
        "\n"
        "37251,24801\n"
        "   \n"
        "  # indented comment, with a comma\n"
        ",,\n"
        "37256,24802,Elisa\n"
    )
    items = read(tmp_path, "ranges", text)
    assert items == [RangeRecord(4, "37251", "37251", "24801"), RangeRecord(8, "37256", "37256", "24802", "Elisa")]


def test_ranges_header_after_a_utf8_bom_is_skipped(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", b"\xef\xbb\xbfrange_start,range_end,mccmnc\r\n37251000000,37251999999,24801\r\n")
    assert items == [RangeRecord(2, "37251000000", "37251999999", "24801")]


def test_only_the_first_line_can_be_a_header(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", "37251,24801\nprefix,mccmnc\n")
    assert good(items) == [RangeRecord(1, "37251", "37251", "24801")]
    assert only_error(items).line == 2


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("0372,24801", ["prefix", "'0372'"]),
        ("37x51,24801", ["prefix", "'37x51'"]),
        ("1234567890123456,24801", ["prefix"]),
        ("37251,2480", ["mccmnc", "'2480'"]),
        ("37251,2480123", ["range_end"]),  # 7 digits: read as a range end, which has another length
        ("37251,abcde", ["mccmnc", "'abcde'"]),
        ("37251", ["expected prefix,mccmnc"]),
        ("37251,24801,Name,extra", ["expected prefix,mccmnc"]),
        ("37251999999,37251000000,24801", ["after", "37251000000"]),
        ("3725100000,37251999999,24801", ["differ in length"]),
        ("37251000000,37251999999", ["expected prefix,mccmnc"]),
    ],
)
def test_bad_range_lines_name_their_line_and_reason(tmp_path: Path, line: str, words: list[str]) -> None:
    items = read(tmp_path, "ranges", f"prefix,mccmnc\n37251,24801\n# fine\n{line}\n37256,24802\n")
    error = only_error(items)
    assert error.line == 4
    assert str(error).startswith("line 4: ")
    for word in words:
        assert word in error.reason
    # Reading goes on after a bad line, so --skip-invalid can report every one.
    assert [r.line for r in good(items)] == [2, 5]


def test_error_line_numbers_count_every_physical_line(tmp_path: Path) -> None:
    text = (
        "\r\n".join(["# header comment", "", "37251,24801", "bad,24801", "", "", "37256,2480x", "37257,24803"]) + "\r\n"
    )
    items = read(tmp_path, "ranges", text)
    assert [e[0] for e in errors(items)] == [4, 7]
    assert [r.line for r in good(items)] == [3, 8]


def test_delta_range_actions(tmp_path: Path) -> None:
    text = (
        "action,prefix,mccmnc,network_name\n"
        "add,37251,24801,Telia\n"
        "remove,37256\n"
        "ADD,37251000000,37251000999,24803\n"
        "Remove,37257000000,37257999999\n"
        "+,37258,24802\n"
        "-,37259,24801\n"
        "delete,37260\n"
    )
    items = read(tmp_path, "ranges", text, delta=True)
    assert items == [
        RangeRecord(2, "37251", "37251", "24801", "Telia", "add"),
        RangeRecord(3, "37256", "37256", None, None, "remove"),
        RangeRecord(4, "37251000000", "37251000999", "24803", None, "add"),
        RangeRecord(5, "37257000000", "37257999999", None, None, "remove"),
        RangeRecord(6, "37258", "37258", "24802", None, "add"),
        RangeRecord(7, "37259", "37259", None, None, "remove"),
        RangeRecord(8, "37260", "37260", None, None, "remove"),
    ]


def test_bad_delta_range_lines(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", "replace,37251,24801\nadd\nadd,37251\nremove,0372\nadd,37251,24801\n", delta=True)
    assert [line for line, _ in errors(items)] == [1, 2, 3, 4]
    reasons = dict(errors(items))
    assert "action" in reasons[1] and "'replace'" in reasons[1]
    assert "after the action" in reasons[2]
    assert "expected prefix,mccmnc" in reasons[3]
    assert "prefix" in reasons[4]
    assert good(items) == [RangeRecord(5, "37251", "37251", "24801")]


def test_a_full_load_does_not_read_actions(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", "37250,24802\nadd,37251,24801\n")
    assert only_error(items).line == 2


# ---------------------------------------------------------------- our csv: ported


def test_ported_rows(tmp_path: Path) -> None:
    text = "number,mccmnc,ported_at\n+37251000001,24802,2025-01-31\n37256000001,24801\n37256000002,24803,\n"
    items = read(tmp_path, "ported", text)
    assert items == [
        PortedRecord(2, "37251000001", "24802", "2025-01-31"),
        PortedRecord(3, "37256000001", "24801", None),
        PortedRecord(4, "37256000002", "24803", None),
    ]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("372510,24802", ["too short"]),
        ("037251000001,24802", ["number"]),
        ("+37251000001,x4802", ["mccmnc"]),
        ("37251000001", ["expected number,mccmnc", "1 fields"]),
        ("37251000001,24802,2025-01-01,extra", ["4 fields"]),
        ("372 51000001,24802", ["number"]),
    ],
)
def test_bad_ported_lines(tmp_path: Path, line: str, words: list[str]) -> None:
    items = read(tmp_path, "ported", f"37251000001,24802\n\n{line}\n")
    error = only_error(items)
    assert error.line == 3
    for word in words:
        assert word in error.reason


def test_delta_ported_actions(tmp_path: Path) -> None:
    text = (
        "action,number,mccmnc\nadd,37251000001,24802\nremove,37256000001\n"
        "remove,37256000002,24801\nbogus,37256000003,24801\nremove\n"
    )
    items = read(tmp_path, "ported", text, delta=True)
    assert good(items) == [
        PortedRecord(2, "37251000001", "24802", None, "add"),
        PortedRecord(3, "37256000001", None, None, "remove"),
        PortedRecord(4, "37256000002", None, None, "remove"),
    ]
    assert [line for line, _ in errors(items)] == [5, 6]


# ---------------------------------------------------------------- Kamailio pdb


def test_kamailio_carrier_names_file() -> None:
    text = "D001 Deutsche Telekom\nD002  Vodafone GmbH \n\n# comment\n3;O2 Germany\n004 1&1\nD10,Lyca\n"
    assert formats.read_kamailio_carriers(io.StringIO(text)) == {
        "1": "Deutsche Telekom",
        "2": "Vodafone GmbH",
        "3": "O2 Germany",
        "4": "1&1",
        "10": "Lyca",
    }


def test_kamailio_carrier_names_file_bad_line() -> None:
    with pytest.raises(LineError) as caught:
        formats.read_kamailio_carriers(io.StringIO("D001 Telekom\n\nno id here\n"))
    assert caught.value.line == 3


def test_id_map() -> None:
    mapping = formats.read_id_map(io.StringIO("carrier_id,mccmnc,name\n001,26201\n2,26202,Vodafone DE\n"), "carrier_id")
    assert mapping == {"1": ("26201", None), "2": ("26202", "Vodafone DE")}
    mnemos = formats.read_id_map(io.StringIO("oran,20801,Orange\nSfr0,20810\n"), "mnemo")
    assert mnemos == {"ORAN": ("20801", "Orange"), "SFR0": ("20810", None)}
    with pytest.raises(LineError) as caught:
        formats.read_id_map(io.StringIO("1,26201\n2,262x2\n"), "carrier_id")
    assert caught.value.line == 2


class KamailioFiles(TypedDict):
    carrier_map: Path
    carrier_names: Path


def _kamailio_files(tmp_path: Path) -> KamailioFiles:
    carrier_map = tmp_path / "carriers.csv"
    carrier_map.write_text("carrier_id,mccmnc,name\n1,26201\n2,26202\n3,26203,O2 from the map\n")
    names = tmp_path / "carrier_names.txt"
    names.write_text("D001 Telekom Deutschland\nD002 Vodafone\nD003 Telefonica\n")
    return {"carrier_map": carrier_map, "carrier_names": names}


def test_kamailio_prefixes_become_ranges(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", "49151;1\n+49162;002\n49176;3\n", fmt="kamailio", **_kamailio_files(tmp_path))
    assert items == [
        RangeRecord(1, "49151", "49151", "26201", "Telekom Deutschland"),  # the name from the names file
        RangeRecord(2, "49162", "49162", "26202", "Vodafone"),
        RangeRecord(3, "49176", "49176", "26203", "O2 from the map"),  # the map's own name wins
    ]


def test_kamailio_full_numbers_become_ported(tmp_path: Path) -> None:
    items = read(
        tmp_path, "ported", "4915112345678;2\n4917612345678;001\n", fmt="kamailio", **_kamailio_files(tmp_path)
    )
    assert items == [PortedRecord(1, "4915112345678", "26202"), PortedRecord(2, "4917612345678", "26201")]


def test_kamailio_names_are_optional(tmp_path: Path) -> None:
    files = _kamailio_files(tmp_path)
    items = read(tmp_path, "ranges", "49151;1\n", fmt="kamailio", carrier_map=files["carrier_map"])
    assert items == [RangeRecord(1, "49151", "49151", "26201", None)]


@pytest.mark.parametrize(
    ("kind", "line", "words"),
    [
        ("ranges", "49151;9", ["carrier_id 9", "carrier map"]),
        ("ranges", "49151;x", ["carrier_id", "not a number"]),
        ("ranges", "49151", ["1 fields"]),
        ("ranges", "49151;1;extra", ["3 fields"]),
        ("ranges", "049151;1", ["prefix"]),
        ("ported", "491511;1", ["too short"]),
    ],
)
def test_bad_kamailio_lines(tmp_path: Path, kind: str, line: str, words: list[str]) -> None:
    first = "49151;1" if kind == "ranges" else "4915112345678;1"
    items = read(tmp_path, kind, f"{first}\n{line}\n", fmt="kamailio", **_kamailio_files(tmp_path))
    error = only_error(items)
    assert error.line == 2
    for word in words:
        assert word in error.reason


def test_kamailio_without_a_carrier_map_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="carrier-map"):
        read(tmp_path, "ranges", "49151;1\n", fmt="kamailio")


def test_a_bad_carrier_map_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad-map.csv"
    bad.write_text("1,26201\n2,2620\n")
    with pytest.raises(FormatError) as caught:
        read(tmp_path, "ranges", "49151;1\n", fmt="kamailio", carrier_map=bad)
    assert "bad-map.csv" in str(caught.value) and "line 2" in str(caught.value)


def test_a_utf8_bom_in_the_carrier_map_is_ignored(tmp_path: Path) -> None:
    carrier_map = tmp_path / "bom-map.csv"
    carrier_map.write_bytes(b"\xef\xbb\xbf1,26201\n2,26202\n")
    items = read(tmp_path, "ranges", "49151;1\n49162;2\n", fmt="kamailio", carrier_map=carrier_map)
    assert errors(items) == []


def test_a_utf8_bom_in_a_kamailio_file_is_ignored(tmp_path: Path) -> None:
    items = read(tmp_path, "ranges", b"\xef\xbb\xbf49151;1\n", fmt="kamailio", **_kamailio_files(tmp_path))
    assert items == [RangeRecord(1, "49151", "49151", "26201", "Telekom Deutschland")]


# ---------------------------------------------------------------- ARCEP MAJNUM.csv


def majnum(*rows: str, header: str = ARCEP_HEADER) -> bytes:
    """A MAJNUM.csv as ARCEP publishes it: ISO-8859-1, ';'-separated, CRLF."""
    return ("\r\n".join([header, *rows]) + "\r\n").encode("iso-8859-1")


def test_arcep_territories_in_e164(tmp_path: Path) -> None:
    content = majnum(
        "0612000;0612000000;0612099999;SFR0;Métropole;01/01/2000",
        "0690100;0690100000;0690109999;ORAN;Guadeloupe;02/02/2002",
        "0692200;0692200000;0692209999;BOUY;La Réunion;03/03/2003",
        "0775000;0775000000;0775099999;frmo;Metropole;04/04/2004",
    )
    assert b"Mn\xe9mo" in content and b"R\xe9union" in content  # really ISO-8859-1, not UTF-8
    items = read(tmp_path, "ranges", content, fmt="arcep")
    assert items == [
        RangeRecord(2, "33612000000", "33612099999", "20810", "SFR"),
        RangeRecord(3, "590690100000", "590690109999", "20801", "Orange"),
        RangeRecord(4, "262692200000", "262692209999", "20820", "Bouygues Telecom"),
        RangeRecord(5, "33775000000", "33775099999", "20815", "Free Mobile"),
    ]


def test_arcep_default_operator_map() -> None:
    defaults = formats.ARCEP_DEFAULT_OPERATORS
    assert {m: defaults[m][0] for m in ("ORAN", "SFR0", "BOUY", "FRMO")} == {
        "ORAN": "20801",
        "SFR0": "20810",
        "BOUY": "20820",
        "FRMO": "20815",
    }


def test_arcep_operator_map_replaces_the_default(tmp_path: Path) -> None:
    operator_map = tmp_path / "operators.csv"
    operator_map.write_text("mnemo,mccmnc,name\nORAN,34001,Orange Caraïbe\ndigi,34020\n", encoding="utf-8")
    content = majnum(
        "0690100;0690100000;0690109999;ORAN;Guadeloupe;02/02/2002",
        "0690500;0690500000;0690509999;DIGI;Guadeloupe;02/02/2002",
        "0612000;0612000000;0612099999;SFR0;Métropole;01/01/2000",
    )
    items = read(tmp_path, "ranges", content, fmt="arcep", operator_map=operator_map)
    assert good(items) == [
        RangeRecord(2, "590690100000", "590690109999", "34001", "Orange Caraïbe"),
        RangeRecord(3, "590690500000", "590690509999", "34020", None),
    ]
    error = only_error(items)
    assert error.line == 4 and "'SFR0'" in error.reason


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("0612000;0612000000;0612099999;LYCA;Métropole;01/01/2000", ["'LYCA'", "operator map"]),
        ("0612000;0612000000;0612099999;SFR0;Atlantide;01/01/2000", ["Territoire", "'Atlantide'"]),
        ("0612000;0612099999;0612000000;SFR0;Métropole;01/01/2000", ["after"]),
        ("0612000;612000000;612099999;SFR0;Métropole;01/01/2000", ["national numbers"]),
        ("0612000;0612000000;061209999;SFR0;Métropole;01/01/2000", ["national numbers"]),
        ("0612000;0612000000;0612099999;SFR0", ["expected 6 fields, got 4"]),
    ],
)
def test_bad_arcep_rows(tmp_path: Path, row: str, words: list[str]) -> None:
    content = majnum("0612000;0612000000;0612099999;SFR0;Métropole;01/01/2000", "", row)
    error = only_error(read(tmp_path, "ranges", content, fmt="arcep"))
    assert error.line == 4  # header 1, good row 2, blank 3
    for word in words:
        assert word in error.reason


def test_arcep_needs_its_header(tmp_path: Path) -> None:
    content = majnum("0612000;0612000000;0612099999;SFR0;Métropole;01/01/2000", header="a;b;c;d;e;f")
    with pytest.raises(FormatError, match="MAJNUM"):
        read(tmp_path, "ranges", content, fmt="arcep")


def test_arcep_is_ranges_only_and_full_only(tmp_path: Path) -> None:
    content = majnum("0612000;0612000000;0612099999;SFR0;Métropole;01/01/2000")
    with pytest.raises(FormatError, match="import-ranges"):
        read(tmp_path, "ported", content, fmt="arcep")
    with pytest.raises(FormatError, match="delta"):
        read(tmp_path, "ranges", content, fmt="arcep", delta=True)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="unknown format"):
        read(tmp_path, "ranges", "37251,24801\n", fmt="xml")
