"""``numlookup data``: operator data (number ranges, ported numbers), its versions and the shipped data's coverage."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from numlookup.cli.base import CliError, JsonOption, database, err, out, print_json, region_code, settings, user_errors
from numlookup.datasets.catalog import PORTED, RANGES, DatasetKind

if TYPE_CHECKING:
    from rich.table import Table

    from numlookup.numbering.coverage import CoverageReport

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
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from numlookup.datasets import sources
    from numlookup.datasets.importer import ImportFailed, import_dataset, line_errors

    chosen = sources.source_format(fmt)
    config = settings()
    engine = database(config)
    show = out.is_terminal and not as_json
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with (
        Progress(*columns, TimeRemainingColumn(), console=out, disable=not show, transient=True) as progress,
        file.open("rb") as raw,
    ):
        task = progress.add_task(f"reading {file.name}", total=file.stat().st_size)
        stream = io.BufferedReader(_Progress(raw, lambda n: progress.advance(task, n)), buffer_size=1 << 20)
        records = sources.import_stream(kind, chosen, stream, delta=delta, **maps)
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
                on_built=lambda: progress.update(task, description="activating"),
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
    as_json: JsonOption = False,
) -> None:
    """Share of libphonenumber's mobile carrier prefixes (weighted by numbers covered) that resolve to an MCC/MNC."""
    from numlookup.numbering import coverage as measure
    from numlookup.numbering.networks import NetworkRegistry

    codes = [region_code(r) for r in region or ()]
    report = measure.coverage(NetworkRegistry.shipped())
    if codes:
        report = report.select(codes)
        missing = [code for code in codes if report.region(code) is None]
        if missing:
            raise CliError(f"--region: libphonenumber has no mobile carrier prefixes for {', '.join(missing)}")
    if as_json:
        print_json(coverage_json(report))
    else:
        out.print(coverage_table(report))


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


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


def coverage_json(report: CoverageReport) -> dict[str, Any]:
    """A JSON-ready dict: totals, the TOP_40 totals, and one object per region."""
    from numlookup.numbering.coverage import TOP_40

    def totals(r: CoverageReport) -> dict[str, Any]:
        return {
            "prefixes": r.prefixes,
            "mapped_prefixes": r.mapped_prefixes,
            "numbers": r.numbers,
            "mapped_numbers": r.mapped_numbers,
            "share": round(r.share, 6),
        }

    return {
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
            }
            for r in report.regions
        ],
    }
