"""Imports in-process: real files, a real SQLite catalogue, compiled tables on disk, the real resolver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from numlookup.datasets import catalog, sources
from numlookup.datasets.catalog import dataset_kind
from numlookup.datasets.follower import load_operator_data, refresh
from numlookup.datasets.importer import ImportFailed, ImportReport, import_dataset, load_version
from numlookup.numbering import Resolver
from numlookup.numbering.intervals import NO_NETWORK, pad_low
from numlookup.numbering.models import Resolution
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.operator_data import DataNetwork, PortedMap, RangeMap
from tests import resolutions as has

NETWORKS = NetworkRegistry.shipped()

# Shipped data (libphonenumber + the registry): 37251… is Telia (24801), 37256… Elisa (24802).
TELIA, ELISA, TELE2, TOP = "24801", "24802", "24803", "24804"


def write(folder: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def run_import(
    engine: Engine,
    data_dir: Path,
    kind: str,
    content: str | bytes,
    *,
    fmt: str = "csv",
    delta: bool = False,
    skip_invalid: bool = False,
    **maps: Path,
) -> ImportReport:
    path = write(data_dir.parent / "files", f"{kind}-{fmt}.txt", content, "iso-8859-1" if fmt == "arcep" else "utf-8")
    chosen = dataset_kind(kind)
    assert chosen is not None, kind
    with path.open("rb") as raw:
        return import_dataset(
            engine,
            data_dir,
            chosen,
            sources.records(chosen, sources.source_format(fmt), raw, delta=delta, **maps),
            source=str(path),
            fmt=fmt,
            delta=delta,
            skip_invalid=skip_invalid,
        )


def resolve(engine: Engine, data_dir: Path, *numbers: str) -> list[Resolution]:
    return Resolver(NETWORKS, load_operator_data(engine, data_dir)).resolve(list(numbers))


def original(engine: Engine, data_dir: Path, *numbers: str) -> list[str | None]:
    return [r.original_network.mccmnc if r.original_network else None for r in resolve(engine, data_dir, *numbers)]


def ported_to(engine: Engine, data_dir: Path, *numbers: str) -> list[str | None]:
    return [r.ported_network.mccmnc if r.ported_network else None for r in resolve(engine, data_dir, *numbers)]


def dataset_files(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "datasets"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- ranges


def test_shipped_data_before_any_import(engine: Engine, data_dir: Path) -> None:
    assert catalog.all_versions(engine) == []
    assert original(engine, data_dir, "+37251000001", "+37256000001") == [TELIA, ELISA]
    assert [r.ported for r in resolve(engine, data_dir, "+37251000001")] == [None]  # no porting data: unknown


def test_full_range_load_overrides_shipped_data(engine: Engine, data_dir: Path) -> None:
    report = run_import(engine, data_dir, "ranges", "prefix,mccmnc,network_name\n37251,24803,Own Name\n37256,24804\n")
    assert (report.version.kind, report.version.version, report.version.mode, report.version.rows) == (
        "ranges",
        1,
        "full",
        2,
    )
    assert report.version.records == 2 and report.version.skipped == 0 and report.errors == []
    telia, elisa, other = resolve(engine, data_dir, "+37251000001", "+37256000001", "+37253000001")
    assert (has.original(telia).mccmnc, has.original(telia).name) == (TELE2, "Own Name")
    # No name in the file: the registry's.
    assert (has.original(elisa).mccmnc, has.original(elisa).name) == (TOP, "Top Connect")
    assert has.original(elisa).country.alpha3 == "EST"
    assert not telia.ported and telia.current_network == telia.original_network
    # A number no imported range covers keeps its shipped network.
    assert other.original_network == resolve(engine, data_dir, "+37253000001")[0].original_network
    assert has.original(other).mccmnc != TOP


def test_a_full_load_replaces_the_dataset(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ranges", "37251,24803\n37256,24804\n")
    run_import(engine, data_dir, "ranges", "37256,24803\n")
    assert original(engine, data_dir, "+37251000001", "+37256000001") == [TELIA, TELE2]


def test_longest_prefix_wins_whatever_the_line_order(engine: Engine, data_dir: Path) -> None:
    numbers = ("+37256000001", "+37251000001", "+37251200001", "+37251290001")
    expected = [TELE2, ELISA, TOP, "24805"]
    lines = ["3725,24803", "37251,24802", "372512,24804", "3725129,24805"]
    run_import(engine, data_dir, "ranges", "\n".join(lines) + "\n")
    assert original(engine, data_dir, *numbers) == expected
    run_import(engine, data_dir, "ranges", "\n".join(reversed(lines)) + "\n")
    assert original(engine, data_dir, *numbers) == expected


def test_nested_ranges_the_innermost_wins(engine: Engine, data_dir: Path) -> None:
    run_import(
        engine,
        data_dir,
        "ranges",
        "37251,24802\n37251000000,37251000999,24803\n37251000100,37251000199,24804\n",
    )
    numbers = {
        "+37251000000": TELE2,
        "+37251000099": TELE2,
        "+37251000100": TOP,
        "+37251000150": TOP,
        "+37251000199": TOP,
        "+37251000200": TELE2,
        "+37251000999": TELE2,
        "+37251001000": ELISA,
        "+37251999999": ELISA,
        "+37252000000": TELIA,  # outside every imported range: shipped
    }
    assert dict(zip(numbers, original(engine, data_dir, *numbers), strict=True)) == numbers


def test_a_prefix_inside_a_range_wins(engine: Engine, data_dir: Path) -> None:
    """E.g. a MAJNUM-style block of full numbers, corrected for part of it by a prefix."""
    run_import(engine, data_dir, "ranges", "37251000000,37251999999,24803\n372510,24804\n")
    assert original(engine, data_dir, "+37251500001", "+37251000001") == [TELE2, TOP]


def test_delta_ranges_add_and_remove(engine: Engine, data_dir: Path) -> None:
    [shipped] = original(engine, data_dir, "+37253000001")
    assert shipped != TOP
    run_import(engine, data_dir, "ranges", "37251,24803\n37256,24803\n37253000000,37253999999,24804\n")
    report = run_import(
        engine,
        data_dir,
        "ranges",
        "action,prefix,mccmnc\nadd,372512,24804\nremove,37256\nremove,37253000000,37253999999\nadd,37251,24805\n",
        delta=True,
    )
    assert (report.version.version, report.version.mode, report.version.rows) == (2, "delta", 2)
    numbers = ("+37251000001", "+37251200001", "+37256000001", "+37253000001")
    assert original(engine, data_dir, *numbers) == ["24805", TOP, ELISA, shipped]


def test_delta_onto_nothing_starts_the_dataset(engine: Engine, data_dir: Path) -> None:
    report = run_import(engine, data_dir, "ranges", "add,37251,24803\n", delta=True)
    assert (report.version.version, report.version.mode) == (1, "delta")
    assert original(engine, data_dir, "+37251000001") == [TELE2]


def test_delta_removing_what_is_not_there_fails_and_changes_nothing(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ranges", "37251,24803\n")
    before = dataset_files(data_dir)
    with pytest.raises(ImportFailed, match="line 2"):
        run_import(engine, data_dir, "ranges", "add,37256,24804\nremove,37257\n", delta=True)
    assert [(v.version, v.active) for v in catalog.all_versions(engine)] == [(1, True)]
    assert dataset_files(data_dir) == before
    assert original(engine, data_dir, "+37251000001", "+37256000001") == [TELE2, ELISA]


# ---------------------------------------------------------------- ported


def test_ported_number_overrides_its_range(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ranges", "37251,24803,Range Holder\n")
    report = run_import(
        engine, data_dir, "ported", "number,mccmnc,ported_at\n+37251000001,24804,2025-01-31\n37256000001,24801\n"
    )
    assert (report.version.kind, report.version.rows) == ("ported", 2)
    in_range, shipped_range, untouched = resolve(engine, data_dir, "+37251000001", "+37256000001", "+37251000002")
    assert in_range.ported
    assert (has.original(in_range).mccmnc, has.original(in_range).name) == (TELE2, "Range Holder")
    assert (has.ported(in_range).mccmnc, has.ported(in_range).name) == (TOP, "Top Connect")
    assert in_range.current_network == in_range.ported_network
    assert shipped_range.ported
    assert (has.original(shipped_range).mccmnc, has.ported(shipped_range).mccmnc) == (ELISA, TELIA)
    assert not untouched.ported and untouched.ported_network is None


def test_ported_back_to_its_range_holder_is_not_ported(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ranges", "37251,24803\n")
    run_import(engine, data_dir, "ported", "37251000001,24803\n37256000001,24802\n37251000002,24801\n")
    home_imported, home_shipped, away = resolve(engine, data_dir, "+37251000001", "+37256000001", "+37251000002")
    for result, holder in ((home_imported, TELE2), (home_shipped, ELISA)):
        assert not result.ported and result.ported_network is None
        assert has.original(result).mccmnc == has.current(result).mccmnc == holder
    assert away.ported and (has.original(away).mccmnc, has.ported(away).mccmnc) == (TELE2, TELIA)


def test_ported_full_load_last_row_of_a_number_wins(engine: Engine, data_dir: Path) -> None:
    report = run_import(engine, data_dir, "ported", "37256000001,24801\n37256000002,24803\n37256000001,24803\n")
    assert (report.version.rows, report.version.records) == (2, 3)
    assert ported_to(engine, data_dir, "+37256000001", "+37256000002") == [TELE2, TELE2]


def test_delta_ported_add_and_remove(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ported", "37256000001,24801\n37256000002,24801\n37256000004,24803\n")
    report = run_import(
        engine,
        data_dir,
        "ported",
        "remove,37256000001\nadd,37256000003,24803\nadd,37256000002,24803\n",
        delta=True,
    )
    assert (report.version.version, report.version.mode, report.version.rows) == (2, "delta", 3)
    numbers = ("+37256000001", "+37256000002", "+37256000003", "+37256000004")
    assert ported_to(engine, data_dir, *numbers) == [None, TELE2, TELE2, TELE2]
    # A further full load drops everything the deltas built.
    run_import(engine, data_dir, "ported", "37256000005,24801\n")
    assert ported_to(engine, data_dir, *numbers, "+37256000005") == [None, None, None, None, TELIA]


def test_delta_ported_lines_apply_in_order(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ported", "37256000001,24801\n")
    run_import(engine, data_dir, "ported", "add,37256000002,24801\nremove,37256000002\n", delta=True)
    assert ported_to(engine, data_dir, "+37256000001", "+37256000002") == [TELIA, None]


# ---------------------------------------------------------------- atomicity and the catalogue


def test_a_bad_line_aborts_and_leaves_the_active_version_intact(engine: Engine, data_dir: Path) -> None:
    run_import(engine, data_dir, "ranges", "37251,24803\n")
    run_import(engine, data_dir, "ported", "37256000001,24801\n")
    before_files = dataset_files(data_dir)
    before_versions = catalog.all_versions(engine)
    assert before_files  # the compiled tables are on disk

    with pytest.raises(ImportFailed) as caught:
        run_import(engine, data_dir, "ranges", "prefix,mccmnc\n37251,24804\n37256,248o4\n37257,24804\n")
    assert [(e.line, e.reason) for e in caught.value.errors] == [(3, "mccmnc '248o4' must be 5 or 6 digits")]
    assert "line 3" in str(caught.value) and "--skip-invalid" in str(caught.value)

    with pytest.raises(ImportFailed) as caught_ported:
        run_import(engine, data_dir, "ported", "add,37256000002,24803\n\nadd,372560,24803\n", delta=True)
    assert [e.line for e in caught_ported.value.errors] == [3]

    assert catalog.all_versions(engine) == before_versions
    assert dataset_files(data_dir) == before_files  # nothing new, nothing touched, no half-built folder
    assert original(engine, data_dir, "+37251000001", "+37256000001") == [TELE2, ELISA]
    assert ported_to(engine, data_dir, "+37256000001", "+37256000002") == [TELIA, None]


def test_skip_invalid_imports_the_good_lines_and_reports_the_bad(engine: Engine, data_dir: Path) -> None:
    report = run_import(
        engine, data_dir, "ranges", "37251,24803\n0372,24804\n37256,24804\n\n37257,1\n", skip_invalid=True
    )
    assert [e.line for e in report.errors] == [2, 5]
    assert (report.version.records, report.version.skipped, report.version.rows) == (2, 2, 2)
    assert original(engine, data_dir, "+37251000001", "+37256000001") == [TELE2, TOP]

    ported = run_import(engine, data_dir, "ported", "37256000001,24801\nnope\n37256000002,24803\n", skip_invalid=True)
    assert [e.line for e in ported.errors] == [2]
    assert (ported.version.records, ported.version.skipped, ported.version.rows) == (2, 1, 2)


def test_skip_invalid_reports_at_most_a_hundred_lines_but_counts_all(engine: Engine, data_dir: Path) -> None:
    lines = ["37251,24803"] + [f"37256{i:03d},bad" for i in range(150)]
    report = run_import(engine, data_dir, "ranges", "\n".join(lines) + "\n", skip_invalid=True)
    assert report.version.skipped == 150
    assert [e.line for e in report.errors] == list(range(2, 102))


def test_a_file_without_valid_rows_is_refused(engine: Engine, data_dir: Path) -> None:
    with pytest.raises(ImportFailed, match="no valid rows"):
        run_import(engine, data_dir, "ranges", "prefix,mccmnc\n# nothing\n")
    with pytest.raises(ImportFailed, match="no valid rows") as caught:
        run_import(engine, data_dir, "ported", "1,2\n3,4\n", skip_invalid=True)
    assert [e.line for e in caught.value.errors] == [1, 2]
    assert catalog.all_versions(engine) == []
    assert dataset_files(data_dir) == {}


def test_versions_increment_and_one_is_active_per_kind(engine: Engine, data_dir: Path) -> None:
    for prefix in ("37251", "37252", "37253"):
        run_import(engine, data_dir, "ranges", f"{prefix},24803\n")
    run_import(engine, data_dir, "ported", "37256000001,24801\n")
    run_import(engine, data_dir, "ported", "add,37256000002,24801\n", delta=True)
    versions = [(v.kind, v.version, v.active, v.mode) for v in catalog.all_versions(engine)]
    assert versions == [
        ("ported", 1, False, "full"),
        ("ported", 2, True, "delta"),
        ("ranges", 1, False, "full"),
        ("ranges", 2, False, "full"),
        ("ranges", 3, True, "full"),
    ]
    active = catalog.active_versions(engine)
    assert {k: v.version for k, v in active.items()} == {"ranges": 3, "ported": 2}
    # Every version has its own folder; the active ones are on disk and are what loads.
    assert len({v.path for v in catalog.all_versions(engine)}) == 5
    assert all(catalog.dataset_folder(data_dir, v).is_dir() for v in active.values())
    assert original(engine, data_dir, "+37253000001", "+37251000001") == [TELE2, TELIA]
    assert isinstance(load_version(engine, data_dir, active["ranges"]), RangeMap)
    assert isinstance(load_version(engine, data_dir, active["ported"]), PortedMap)


def test_refresh_swaps_a_running_resolver_onto_the_new_version(engine: Engine, data_dir: Path) -> None:
    resolver = Resolver(NETWORKS, load_operator_data(engine, data_dir))
    assert refresh(resolver, engine, data_dir) is False
    run_import(engine, data_dir, "ranges", "37251,24803\n")
    assert has.original(resolver.resolve(["+37251000001"])[0]).mccmnc == TELIA
    assert refresh(resolver, engine, data_dir) is True
    assert has.original(resolver.resolve(["+37251000001"])[0]).mccmnc == TELE2
    assert refresh(resolver, engine, data_dir) is False


def test_too_many_networks_in_a_ported_dataset(engine: Engine, data_dir: Path) -> None:
    """Network indices are uint16: 65,536 distinct networks fit, one more is refused cleanly."""
    rows = [f"3725{i:07d},{10000 + i}" for i in range(65_537)]
    with pytest.raises(ImportFailed, match="65,535"):
        run_import(engine, data_dir, "ported", "\n".join(rows) + "\n")
    report = run_import(engine, data_dir, "ported", "\n".join(rows[:-1]) + "\n")
    assert report.version.rows == 65_536
    table = load_version(engine, data_dir, report.version)
    assert isinstance(table, PortedMap)
    last = table.lookup(np.array([37250065535], dtype=np.int64))[0]
    assert table.networks[last].mccmnc == str(10000 + 65_535)


# ---------------------------------------------------------------- other formats, end to end


def test_arcep_import_resolves_french_territories(engine: Engine, data_dir: Path) -> None:
    content = (
        "EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution\r\n"
        "0612000;0612000000;0612099999;BOUY;Métropole;01/01/2000\r\n"
        "0690100;0690100000;0690109999;ORAN;Guadeloupe;02/02/2002\r\n"
        "0692200;0692200000;0692209999;SFR0;La Réunion;03/03/2003\r\n"
    )
    report = run_import(engine, data_dir, "ranges", content, fmt="arcep")
    assert (report.version.format, report.version.rows) == ("arcep", 3)
    france, guadeloupe, reunion = resolve(engine, data_dir, "+33612000001", "+590690100001", "+262692200001")
    assert (has.original(france).mccmnc, has.original(france).name) == ("20820", "Bouygues Telecom")
    assert (has.original(guadeloupe).mccmnc, has.country(guadeloupe).alpha3) == ("20801", "GLP")
    assert (has.original(reunion).mccmnc, has.country(reunion).alpha3) == ("20810", "REU")


def test_kamailio_import_ranges_and_ported(engine: Engine, data_dir: Path) -> None:
    files = data_dir.parent / "kamailio"
    carrier_map = write(files, "map.csv", "1,24801\n2,24802\n3,24803\n")
    names = write(files, "names.txt", "D001 Telia via pdb\nD002 Elisa via pdb\nD003 Tele2 via pdb\n")
    run_import(
        engine, data_dir, "ranges", "37251;3\n37256;1\n", fmt="kamailio", carrier_map=carrier_map, carrier_names=names
    )
    run_import(engine, data_dir, "ported", "37251000001;2\n37251000002;3\n", fmt="kamailio", carrier_map=carrier_map)
    moved, home, other = resolve(engine, data_dir, "+37251000001", "+37251000002", "+37256000001")
    assert (has.original(moved).mccmnc, has.original(moved).name) == (TELE2, "Tele2 via pdb")
    assert (has.ported(moved).mccmnc, has.ported(moved).name) == (ELISA, "Elisa Eesti")
    assert not home.ported
    assert (has.original(other).mccmnc, has.original(other).name) == (TELIA, "Telia via pdb")


# ---------------------------------------------------------------- the tables themselves


def test_ported_table_build_dedups_last_row_wins_and_looks_up_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(20261129)
    pool = rng.choice(np.arange(37250000000, 37259999999, dtype=np.int64), size=3000, replace=False)
    keys = rng.choice(pool, size=8000)  # many numbers repeat
    values = rng.integers(0, 7, size=8000).astype(np.uint16)
    networks = [DataNetwork(f"2480{i}") for i in range(7)]
    expected: dict[int, int] = {}
    for key, value in zip(keys.tolist(), values.tolist(), strict=True):
        expected[key] = value  # a later row corrects an earlier one

    table = PortedMap.build(keys, values, networks)
    assert table.keys.tolist() == sorted(expected)
    assert len(table) == len(expected)

    misses = rng.integers(30000000000, 49999999999, size=3000, dtype=np.int64)
    neighbours = np.concatenate([pool - 1, pool + 1])
    probe = np.concatenate([pool, misses, neighbours, np.array([0, 1, 999999999999999], dtype=np.int64)])
    rng.shuffle(probe)
    want = [expected.get(k, NO_NETWORK) for k in probe.tolist()]
    assert table.lookup(probe).tolist() == want

    table.save(tmp_path)
    loaded = PortedMap.load(tmp_path)
    assert loaded.lookup(probe).tolist() == want
    assert loaded.networks == tuple(networks)


def test_empty_tables_find_nothing(tmp_path: Path) -> None:
    probe = np.array([37251000001, 0], dtype=np.int64)
    empty_ported = PortedMap.build(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint16), [])
    assert empty_ported.lookup(probe).tolist() == [NO_NETWORK, NO_NETWORK]
    empty_ranges = RangeMap.compile(np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int32), [])
    assert empty_ranges.lookup(probe).tolist() == [NO_NETWORK, NO_NETWORK]


def test_range_table_longest_prefix_matches_a_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    prefixes: dict[str, int] = {}
    while len(prefixes) < 400:
        prefixes["3725" + "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(0, 5))))] = int(
            rng.integers(0, 9)
        )
    intervals = np.array([[pad_low(p), int(p.ljust(15, "9")), len(p)] for p in prefixes], dtype=np.int64)
    values = np.array(list(prefixes.values()), dtype=np.int32)
    table = RangeMap.compile(intervals, values, [DataNetwork(f"2480{i}") for i in range(9)])

    numbers = ["3725" + "".join(str(d) for d in rng.integers(0, 10, size=7)) for _ in range(4000)]
    numbers += [p + "0" * (11 - len(p)) for p in prefixes] + [p + "9" * (11 - len(p)) for p in prefixes]
    numbers += ["3724999999", "3726000000"]

    def longest(number: str) -> int:
        for end in range(len(number), 0, -1):
            if number[:end] in prefixes:
                return prefixes[number[:end]]
        return NO_NETWORK

    padded = np.array([pad_low(n) for n in numbers], dtype=np.int64)
    assert table.lookup(padded).tolist() == [longest(n) for n in numbers]
    table.save(tmp_path)
    assert RangeMap.load(tmp_path).lookup(padded).tolist() == [longest(n) for n in numbers]
