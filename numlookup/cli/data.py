"""``numlookup data``: operator data (ranges, ported numbers), its versions, the shipped data's coverage and sources."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, cast

import typer

from numlookup.cli.base import CliError, database, err, out, print_json, region_code, settings, user_errors
from numlookup.cli.options import JsonOption
from numlookup.datasets.catalog import PORTED, RANGES, DatasetKind

if TYPE_CHECKING:
    from rich.table import Table

    from numlookup.numbering.coverage import CoverageReport, SpaceReport

app = typer.Typer(help="Operator data: number ranges and ported numbers.", no_args_is_help=True)


class _Progress(io.RawIOBase):
    """A file whose reads advance a rich progress bar (shown only on a terminal)."""

    def __init__(self, raw: BinaryIO, advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]  # BinaryIO's stub lacks readinto; files have it
        self.advance(count or 0)
        return count or 0


def _import(
    kind: DatasetKind,
    file: Path,
    fmt: str,
    delta: bool,
    skip_invalid: bool,
    as_json: bool,
    **maps: Path | None,
) -> None:
    from numlookup.datasets import sources

    chosen = sources.source_format(fmt)
    config = settings()
    show = not as_json and out.is_terminal  # --json first: deciding about the terminal imports rich
    with file.open("rb") as raw, _progress(file, raw, show) as (stream, on_built):
        # The reader starts now (ported CSV: its first blocks are parsed on worker threads meanwhile), and only
        # then the importer and the database layer are imported and the database opened.
        records = sources.import_stream(kind, chosen, stream, delta=delta, **maps)
        from numlookup.datasets.importer import ImportFailed, import_dataset, line_errors

        engine = database(config)
        try:
            report = import_dataset(
                engine,
                config.data_path,
                kind,
                records,
                source=str(file),
                fmt=chosen,
                delta=delta,
                skip_invalid=skip_invalid,
                publish=config.publishes_datasets,
                on_built=on_built,
            )
        except ImportFailed as exc:
            if as_json:
                print_json({"ok": False, "error": str(exc), "errors": line_errors(exc.errors)})
            # A CliError: base need not import the importer (and with it the numbering plan) for every command.
            raise CliError(str(exc)) from None
    version = report.version
    if as_json:
        print_json(report.as_dict())
        return
    for error in report.errors:
        err.print(f"skipped line {error.line}: {error.reason}", highlight=False)
    out.print(
        f"{kind} version {version.version} active: {version.rows} rows "
        f"({version.records} records read, {version.skipped} skipped) in {report.seconds:.2f}s",
        highlight=False,
    )


@contextmanager
def _progress(file: Path, raw: BinaryIO, show: bool) -> Iterator[tuple[BinaryIO, Callable[[], None] | None]]:
    """The file to read, through a progress bar on a terminal, and what to call once the data is built.

    Off a terminal (or with ``--json``) the file is read as it is: rich's progress bar is not even imported.
    """
    if not show:
        yield raw, None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=out.console, transient=True) as progress:
        task = progress.add_task(f"reading {file.name}", total=file.stat().st_size)
        stream = io.BufferedReader(_Progress(raw, lambda n: progress.advance(task, n)), buffer_size=1 << 20)
        yield cast(BinaryIO, stream), lambda: progress.update(task, description="activating")


FileArgument = Annotated[Path, typer.Argument(exists=True, dir_okay=False)]
FormatOption = Annotated[str, typer.Option("--format", help="csv (ours), kamailio (pdbt CSV) or arcep (MAJNUM.csv).")]
DeltaOption = Annotated[bool, typer.Option("--delta", help="Change the active version: rows start with add/remove.")]
SkipOption = Annotated[bool, typer.Option("--skip-invalid", help="Skip bad lines (reported) instead of aborting.")]
CarrierMapOption = Annotated[Path | None, typer.Option(help="kamailio: carrier_id,mccmnc[,name] lines.", exists=True)]
CarrierNamesOption = Annotated[
    Path | None, typer.Option(help="kamailio: the carrier names file (D<id> <name>).", exists=True)
]
OperatorMapOption = Annotated[Path | None, typer.Option(help="arcep: mnemo,mccmnc[,name] lines.", exists=True)]


@app.command("import-ranges")
@user_errors
def import_ranges(
    file: FileArgument,
    fmt: FormatOption = "csv",
    delta: DeltaOption = False,
    skip_invalid: SkipOption = False,
    carrier_map: CarrierMapOption = None,
    carrier_names: CarrierNamesOption = None,
    operator_map: OperatorMapOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load number ranges (prefix or start-end → MCC/MNC); they override the shipped data, longest prefix winning."""
    maps = {"carrier_map": carrier_map, "carrier_names": carrier_names, "operator_map": operator_map}
    _import(RANGES, file, fmt, delta, skip_invalid, as_json, **maps)


@app.command("import-ported")
@user_errors
def import_ported(
    file: FileArgument,
    fmt: FormatOption = "csv",
    delta: DeltaOption = False,
    skip_invalid: SkipOption = False,
    carrier_map: CarrierMapOption = None,
    carrier_names: CarrierNamesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load ported numbers (number → the MCC/MNC it was ported to)."""
    _import(PORTED, file, fmt, delta, skip_invalid, as_json, carrier_map=carrier_map, carrier_names=carrier_names)


@app.command("status")
@user_errors
def status(as_json: JsonOption = False) -> None:
    """Every imported dataset version; the active one of each kind is marked."""
    from rich.table import Table

    from numlookup.datasets import catalog

    versions = catalog.all_versions(database())
    if as_json:
        print_json([v.as_dict() for v in versions])
        return
    if not versions:
        out.print("no operator data imported; serving the shipped data only")
        return
    table = Table("kind", "version", "active", "mode", "format", "rows", "skipped", "imported at", "source")
    for v in versions:
        table.add_row(
            v.kind,
            str(v.version),
            "yes" if v.active else "",
            v.mode,
            v.format,
            str(v.rows),
            str(v.skipped),
            v.imported_at.isoformat()[:19],
            v.source,
        )
    out.print(table)


@app.command("coverage")
@user_errors
def coverage(
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Only these regions (ISO alpha-2); repeat.")
    ] = None,
    by_source: Annotated[
        bool, typer.Option("--by-source", help="Also show which source decided each resolved share.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """How much resolves to an MCC/MNC: libphonenumber's named carrier prefixes, and the whole mobile number space."""
    from numlookup.numbering import coverage as measure
    from numlookup.numbering.networks import NetworkRegistry
    from numlookup.numbering.resolver import shared_plan

    codes = [region_code(r) for r in region or ()]
    config = settings()
    networks = NetworkRegistry.shipped()
    report = measure.coverage(networks)
    # The compiled plan is cached in the data directory when there is one; coverage never creates it.
    cache = config.data_path / "cache" if config.data_path.is_dir() else None
    space = measure.mobile_space(networks, shared_plan(cache))
    if codes:
        report, space = report.select(codes), space.select(codes)
        missing = [code for code in codes if report.region(code) is None and space.region(code) is None]
        if missing:
            raise CliError(f"--region: libphonenumber has no mobile numbers for {', '.join(missing)}")
    if as_json:
        print_json(coverage_json(report, space))
        return
    for line in source_lines():
        out.print(line, highlight=False)
    out.print(coverage_table(report))
    out.print(space_table(space))
    if by_source:
        out.print(source_table(report, space))
        for line in agreement_lines(space):
            out.print(line, highlight=False)


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def source_lines() -> list[str]:
    """The registry and range sources the figures come from, with their versions and dates."""
    from numlookup.numbering.provenance import shipped_sources

    sources = shipped_sources()
    lines = []
    for kind, title in (("registry", "Registry"), ("ranges", "Ranges")):
        labels = [s.label for s in sources if s.kind == kind]
        lines.append(f"{title}: " + "; ".join(labels))
    return lines


def coverage_table(report: CoverageReport) -> Table:
    """A rich table: one row per region, then the total and the TOP_40 total."""
    from rich.table import Table

    from numlookup.numbering.coverage import TOP_40

    table = Table(title="Mobile carrier prefixes resolving to an MCC/MNC (weighted by numbers covered)")
    table.add_column("Region")
    table.add_column("Prefixes", justify="right")
    table.add_column("Mapped", justify="right")
    table.add_column("Weighted share", justify="right")
    table.add_column("Unmapped carrier names")
    for r in report.regions:
        table.add_row(
            r.region + (" *" if r.region in TOP_40 else ""),
            str(r.prefixes),
            str(r.mapped_prefixes),
            _percent(r.share),
            ", ".join(name for name, _ in r.unmapped),
        )
    table.add_section()
    top = report.select(TOP_40)
    if top.regions and len(top.regions) != len(report.regions):
        table.add_row("TOP 40 *", str(top.prefixes), str(top.mapped_prefixes), _percent(top.share), "")
    table.add_row("Total", str(report.prefixes), str(report.mapped_prefixes), _percent(report.share), "")
    return table


def space_table(space: SpaceReport) -> Table:
    """A rich table: per region, the mobile numbers, the share resolving, the largest unresolved blocks."""
    from rich.table import Table

    from numlookup.numbering.coverage import TOP_40

    table = Table(title="Mobile number space (numbers libphonenumber's mobile patterns accept) resolving to an MCC/MNC")
    table.add_column("Region")
    table.add_column("Mobile numbers", justify="right")
    table.add_column("Resolved", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Largest unresolved blocks")
    for r in space.regions:
        blocks = "; ".join(
            f"{b.label} {b.numbers:,}" + (f" ({b.carrier})" if b.carrier else " (no carrier name)")
            for b in r.unresolved
        )
        table.add_row(
            r.region + (" *" if r.region in TOP_40 else ""),
            f"{r.numbers:,}",
            f"{r.resolved:,}",
            _percent(r.share),
            blocks,
        )
    table.add_section()
    top = space.select(TOP_40)
    if top.regions and len(top.regions) != len(space.regions):
        table.add_row("TOP 40 *", f"{top.numbers:,}", f"{top.resolved:,}", _percent(top.share), "")
    table.add_row("Total", f"{space.numbers:,}", f"{space.resolved:,}", _percent(space.share), "")
    return table


def source_table(report: CoverageReport, space: SpaceReport) -> Table:
    """Which source decided each resolved share, for both measures."""
    from rich.table import Table

    named, mobile = dict(report.by_source), dict(space.by_source)
    table = Table(title="What decided the MCC/MNC (share of all numbers measured)")
    table.add_column("Decided by")
    table.add_column("Named prefixes", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Mobile space", justify="right")
    table.add_column("Share", justify="right")
    for source in sorted(set(named) | set(mobile), key=lambda s: (-named.get(s, 0), -mobile.get(s, 0), s)):
        n, m = named.get(source, 0), mobile.get(source, 0)
        table.add_row(
            source,
            f"{n:,}",
            _percent(n / report.numbers if report.numbers else 0.0),
            f"{m:,}",
            _percent(m / space.numbers if space.numbers else 0.0),
        )
    table.add_section()
    table.add_row(
        "resolved", f"{report.mapped_numbers:,}", _percent(report.share), f"{space.resolved:,}", _percent(space.share)
    )
    return table


def agreement_lines(space: SpaceReport) -> list[str]:
    """Per block source: how often libphonenumber's answer (carrier name → MCC/MNC) matches the block holder's."""
    lines = []
    sources = sorted({name for r in space.regions for name, _ in r.agreement})
    for source in sources:
        a = space.agreement(source)
        if not (a.agree or a.disagree or a.prefix_only):
            continue  # libphonenumber's names give no MCC/MNC here (India's, by design): nothing to compare
        base = a.agree + a.disagree + a.block_only
        lines.append(
            f"{source} blocks: {a.numbers:,} mobile numbers; of the {base:,} whose holder has an MCC/MNC, "
            f"libphonenumber's carrier gives the same for {_percent(a.share)}, another for "
            f"{_percent(a.disagree / base if base else 0.0)}, none for {_percent(a.block_only / base if base else 0.0)}"
        )
    return lines


def coverage_json(report: CoverageReport, space: SpaceReport | None = None) -> dict[str, Any]:
    """A JSON-ready dict: totals, the TOP_40 totals, one object per region; the mobile space beside."""
    from numlookup.numbering.coverage import TOP_40
    from numlookup.numbering.provenance import shipped_sources

    def totals(r: CoverageReport) -> dict[str, Any]:
        return {
            "prefixes": r.prefixes,
            "mapped_prefixes": r.mapped_prefixes,
            "numbers": r.numbers,
            "mapped_numbers": r.mapped_numbers,
            "share": round(r.share, 6),
            "by_source": dict(r.by_source),
        }

    data: dict[str, Any] = {
        "sources": [
            {"id": s.id, "kind": s.kind, "title": s.title, "version": s.version, "date": s.date}
            for s in shipped_sources()
            if s.kind in ("registry", "ranges")
        ],
        "total": totals(report),
        "top_40": {"regions": list(TOP_40), **totals(report.select(TOP_40))},
        "regions": [
            {
                "region": r.region,
                "top_40": r.region in TOP_40,
                "prefixes": r.prefixes,
                "mapped_prefixes": r.mapped_prefixes,
                "numbers": r.numbers,
                "mapped_numbers": r.mapped_numbers,
                "share": round(r.share, 6),
                "unmapped": [{"carrier_name": name, "numbers": n} for name, n in r.unmapped],
                "by_source": dict(r.by_source),
            }
            for r in report.regions
        ],
    }
    if space is not None:
        data["mobile_space"] = space_json(space)
    return data


def space_json(space: SpaceReport) -> dict[str, Any]:
    from numlookup.numbering.coverage import TOP_40

    def totals(s: SpaceReport) -> dict[str, Any]:
        return {
            "numbers": s.numbers,
            "resolved": s.resolved,
            "share": round(s.share, 6),
            "by_source": dict(s.by_source),
        }

    sources = sorted({name for r in space.regions for name, _ in r.agreement})
    return {
        "total": totals(space),
        "top_40": {"regions": list(TOP_40), **totals(space.select(TOP_40))},
        "agreement": {
            source: {
                "numbers": (a := space.agreement(source)).numbers,
                "agree": a.agree,
                "disagree": a.disagree,
                "prefix_only": a.prefix_only,
                "block_only": a.block_only,
                "neither": a.neither,
                "share": round(a.share, 6),
            }
            for source in sources
        },
        "regions": [
            {
                "region": r.region,
                "top_40": r.region in TOP_40,
                "numbers": r.numbers,
                "resolved": r.resolved,
                "share": round(r.share, 6),
                "by_source": dict(r.by_source),
                "largest_unresolved": [
                    {"low": "+" + b.low, "high": "+" + b.high, "numbers": b.numbers, "carrier_name": b.carrier or None}
                    for b in r.unresolved
                ],
            }
            for r in space.regions
        ],
    }


@app.command("sources")
@user_errors
def sources(as_json: JsonOption = False) -> None:
    """Every source of the shipped data: origin, commit or date, licence, attribution (see PROVENANCE.md, NOTICE)."""
    from rich.table import Table

    from numlookup.numbering.provenance import shipped_sources

    found = shipped_sources()
    if as_json:
        print_json(
            [
                {
                    "id": s.id,
                    "kind": s.kind,
                    "title": s.title,
                    "origin": s.origin,
                    "version": s.version,
                    "date": s.date,
                    "licence": s.licence,
                    "attribution": s.attribution,
                    "inputs": s.inputs,
                    "outputs": list(s.outputs),
                }
                for s in found
            ]
        )
        return
    table = Table("source", "kind", "origin", "commit or version", "date", "licence", "attribution", "feeds")
    for s in found:
        table.add_row(
            s.title, s.kind, s.origin, s.version, s.date, s.licence, s.attribution, ", ".join(s.outputs) or "-"
        )
    out.print(table)
