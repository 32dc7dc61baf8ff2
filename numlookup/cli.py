"""The ``numlookup`` command: serve, db, accounts, credits, lookup.

Every command that prints data takes ``--json`` so scripts never parse tables.
Amounts go in and out as exact decimal strings.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from numlookup import accounts as acc
from numlookup import billing
from numlookup.accounts.allowlist import EVERYONE
from numlookup.billing.money import AmountError
from numlookup.datasets.formats import FormatError
from numlookup.datasets.importer import ImportFailed
from numlookup.settings import STATUS_STYLES, Settings, SettingsError, get_settings
from numlookup.store import make_engine, upgrade
from numlookup.store.migrate import current_revision, head_revision

app = typer.Typer(help="numlookup: a self-hosted phone number lookup server.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts, API secrets and IP allow-lists.", no_args_is_help=True)
credits_app = typer.Typer(help="Credits and the ledger.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
data_app = typer.Typer(help="Operator data: number ranges and ported numbers.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(data_app, name="data")
app.add_typer(credits_app, name="credits")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
T = TypeVar("T")

DEMO_ACCOUNT = "demo"
DEMO_CREDITS = 100 * billing.MICROS
DEMO_NETWORKS = ("127.0.0.0/8", "::1/128")


class CliError(Exception):
    """A user mistake: printed as one line, exit status 1."""


@app.callback()
def _root(
    config: Annotated[
        Path | None, typer.Option("--config", help="A TOML settings file (also NUMLOOKUP_CONFIG).", exists=True)
    ] = None,
) -> None:
    if config is not None:
        # Through the environment, so uvicorn's worker processes read the same file.
        os.environ["NUMLOOKUP_CONFIG"] = str(config.resolve())
        get_settings.cache_clear()


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _engine(settings: Settings | None = None) -> Engine:
    """An engine on a schema at head: SQLite is migrated on first use, other databases must be upgraded."""
    settings = settings or _settings()
    engine = make_engine(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if current_revision(engine) != head_revision(engine):
        if engine.dialect.name != "sqlite":
            raise CliError("the database schema is not up to date: run `numlookup db upgrade` first")
        upgrade(engine)
    return engine


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except (CliError, acc.AccountError, AmountError, FormatError, ImportFailed, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _amount(text: str) -> int:
    return billing.parse_amount(text)


# ---------------------------------------------------------------- serve


def _demo_credentials(settings: Settings, engine: Engine) -> acc.NewCredentials:
    """The demo account's credentials, kept in the data folder so every ``make run`` can show them."""
    path = settings.data_path / "demo-credentials.json"
    try:
        acc.get_account(engine, DEMO_ACCOUNT)
    except acc.AccountError:
        creds = acc.create_account(engine, DEMO_ACCOUNT, credits=DEMO_CREDITS, allow=DEMO_NETWORKS)
    else:
        if path.exists():
            saved = json.loads(path.read_text())
            return acc.NewCredentials(DEMO_ACCOUNT, saved["api_username"], saved["api_password"])
        creds = acc.rotate_secret(engine, DEMO_ACCOUNT)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_username": creds.api_username, "api_password": creds.api_password}, fh)
    return creds


def _print_demo(creds: acc.NewCredentials, host: str, port: int) -> None:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    out.print(f"[bold]Demo account[/bold] (allowed from this machine only: {', '.join(DEMO_NETWORKS)})")
    out.print(f"  API username: {creds.api_username}", highlight=False)
    out.print(f"  API password: {creds.api_password}", highlight=False)
    out.print("Try it:")
    curl = (
        f"curl -sS {base}/v1/hlr/sync \\\n"
        "  --header 'Content-Type: application/json' --header 'Accept: application/json' \\\n"
        f"  --user '{creds.api_username}:{creds.api_password}' \\\n"
        '  --data \'{"numbers": ["+37251000001", "+447712345678", "+4915112345678"]}\''
    )
    sys.stdout.write(curl + "\n\n")
    sys.stdout.flush()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (setting: host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (setting: port).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (setting: workers).")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo account if needed and print its credentials.")
    ] = False,
) -> None:
    """Serve the API. SQLite is migrated at start; other databases need `numlookup db upgrade`."""
    from numlookup import serving

    def prepare() -> Settings:
        settings = _settings()
        engine = _engine(settings)
        if demo:
            _print_demo(_demo_credentials(settings, engine), host or settings.host, port or settings.port)
        engine.dispose()
        return settings

    settings = _run(prepare)
    serving.serve(settings, host=host or settings.host, port=port or settings.port, workers=workers or settings.workers)


# ---------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations the database is missing."""

    def action() -> None:
        settings = _settings()
        engine = make_engine(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
        upgrade(engine)
        out.print(f"database at revision {current_revision(engine)}")

    _run(action)


# ---------------------------------------------------------------- accounts


def _account_data(account: acc.Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "api_username": account.api_username,
        "enabled": account.enabled,
        "balance": billing.format_amount(account.balance),
        "price": None if account.price is None else billing.format_amount(account.price),
        "status_style": account.status_style,
        "allowed_networks": list(account.allowed_networks),
        "created_at": account.created_at.isoformat(),
    }


def _print_credentials(creds: acc.NewCredentials, as_json: bool, what: str) -> None:
    if as_json:
        _print_json({"name": creds.name, "api_username": creds.api_username, "api_password": creds.api_password})
        return
    out.print(f"{what} [bold]{creds.name}[/bold]. The password is shown only now:")
    out.print(f"  API username: {creds.api_username}", highlight=False)
    out.print(f"  API password: {creds.api_password}", highlight=False)


@accounts_app.command("create")
def accounts_create(
    name: str,
    credits: Annotated[str, typer.Option(help="Initial credits, a decimal.")] = "0",
    allow_ip: Annotated[
        list[str] | None,
        typer.Option("--allow-ip", help="Allowed client network (CIDR); repeat. Default: everyone."),
    ] = None,
    status_style: Annotated[
        str | None, typer.Option(help=f"One of {', '.join(STATUS_STYLES)}; default: the server's.")
    ] = None,
    price: Annotated[str | None, typer.Option(help="Price per number for this account; default: the server's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account and print its API username and password (once)."""

    def action() -> None:
        creds = acc.create_account(
            _engine(),
            name,
            credits=_amount(credits),
            allow=allow_ip or EVERYONE,
            status_style=status_style,
            price=None if price is None else _amount(price),
        )
        _print_credentials(creds, as_json, "Created account")

    _run(action)


@accounts_app.command("list")
def accounts_list(as_json: JsonOption = False) -> None:
    """All accounts."""

    def action() -> None:
        items = acc.list_accounts(_engine())
        if as_json:
            _print_json([_account_data(a) for a in items])
            return
        table = Table("name", "API username", "enabled", "balance", "price", "style", "allowed")
        for a in items:
            data = _account_data(a)
            table.add_row(
                a.name,
                a.api_username,
                "yes" if a.enabled else "no",
                data["balance"],
                data["price"] or "default",
                a.status_style or "default",
                ", ".join(a.allowed_networks) or "nobody",
            )
        out.print(table)

    _run(action)


@accounts_app.command("show")
def accounts_show(name: str, as_json: JsonOption = False) -> None:
    """One account."""

    def action() -> None:
        data = _account_data(acc.get_account(_engine(), name))
        if as_json:
            _print_json(data)
            return
        for key, value in data.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            out.print(f"{key:>16}: {shown if shown not in (None, '') else '-'}", highlight=False)

    _run(action)


def _simple(action: Callable[[Engine], str], as_json: bool, **data: Any) -> None:
    def run() -> None:
        message = action(_engine())
        if as_json:
            _print_json({**data, "ok": True, "message": message})
        else:
            out.print(message, highlight=False)

    _run(run)


@accounts_app.command("disable")
def accounts_disable(name: str, as_json: JsonOption = False) -> None:
    """Refuse the account's requests (101) until enabled again."""
    _simple(lambda e: (acc.set_enabled(e, name, False), f"disabled {name}")[1], as_json, name=name)


@accounts_app.command("enable")
def accounts_enable(name: str, as_json: JsonOption = False) -> None:
    """Serve the account's requests again."""
    _simple(lambda e: (acc.set_enabled(e, name, True), f"enabled {name}")[1], as_json, name=name)


@accounts_app.command("rotate-secret")
def accounts_rotate(name: str, as_json: JsonOption = False) -> None:
    """A new API password; running servers refuse the old one within account_refresh_seconds (1 s by default)."""
    _run(lambda: _print_credentials(acc.rotate_secret(_engine(), name), as_json, "New secret for"))


@accounts_app.command("allow-ip")
def accounts_allow_ip(name: str, cidr: str, as_json: JsonOption = False) -> None:
    """Add a network (IPv4 or IPv6 CIDR) to the allow-list; 0.0.0.0/0 and ::/0 allow everyone."""
    _simple(lambda e: f"{name} now allows {acc.allow_network(e, name, cidr)}", as_json, name=name, cidr=cidr)


@accounts_app.command("deny-ip")
def accounts_deny_ip(name: str, cidr: str, as_json: JsonOption = False) -> None:
    """Remove a network from the allow-list (an empty list lets nobody in)."""
    _simple(lambda e: f"{name} no longer allows {acc.deny_network(e, name, cidr)}", as_json, name=name, cidr=cidr)


@accounts_app.command("set-price")
def accounts_set_price(
    name: str,
    price: Annotated[str, typer.Argument(help="A decimal, or 'default' for the server's price.")],
    as_json: JsonOption = False,
) -> None:
    """Price per chargeable number for this account."""

    def action(engine: Engine) -> str:
        value = None if price == "default" else _amount(price)
        acc.set_price(engine, name, value)
        return f"{name} now pays {'the default price' if value is None else billing.format_amount(value)} per number"

    _simple(action, as_json, name=name)


@accounts_app.command("set-style")
def accounts_set_style(
    name: str,
    style: Annotated[str, typer.Argument(help=f"{', '.join(STATUS_STYLES)} or 'default'.")],
    as_json: JsonOption = False,
) -> None:
    """The status vocabulary this account's responses use."""

    def action(engine: Engine) -> str:
        acc.set_status_style(engine, name, None if style == "default" else style)
        return f"{name} now gets status style {style}"

    _simple(action, as_json, name=name)


# ---------------------------------------------------------------- credits


def _ledger_data(row: billing.ledger.LedgerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "request_id": row.request_id,
        "amount": billing.format_amount(row.amount),
        "numbers": row.numbers,
        "balance_after": billing.format_amount(row.balance_after),
        "note": row.note,
        "created_at": row.created_at.isoformat(),
    }


@credits_app.command("add")
def credits_add(
    name: str,
    amount: Annotated[str, typer.Argument(help="A positive decimal, e.g. 25 or 0.002.")],
    note: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add credits to an account (one ledger row)."""

    def action() -> None:
        micros = _amount(amount)
        if micros == 0:
            raise CliError("the amount must be greater than zero")
        engine = _engine()
        row = billing.add_credits(engine, acc.get_account(engine, name).id, micros, note)
        balance = billing.format_amount(row.balance_after)
        if as_json:
            _print_json(
                {"name": name, "added": billing.format_amount(micros), "balance": balance, "ledger_id": row.ledger_id}
            )
        else:
            out.print(f"added {billing.format_amount(micros)} to {name}; balance {balance}", highlight=False)

    _run(action)


@credits_app.command("show")
def credits_show(
    name: str,
    last: Annotated[int, typer.Option(help="How many ledger rows to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Balance and the newest ledger rows."""

    def action() -> None:
        engine = _engine()
        account = acc.get_account(engine, name)
        rows = [_ledger_data(r) for r in billing.ledger_rows(engine, account.id, last)]
        balance = billing.format_amount(account.balance)
        if as_json:
            _print_json({"name": name, "balance": balance, "ledger": rows})
            return
        out.print(f"[bold]{name}[/bold] balance {balance}", highlight=False)
        table = Table("id", "when", "kind", "amount", "numbers", "balance after", "request / note")
        for r in rows:
            table.add_row(
                str(r["id"]),
                r["created_at"][:19],
                r["kind"],
                r["amount"],
                str(r["numbers"]),
                r["balance_after"],
                r["request_id"] or r["note"] or "",
            )
        out.print(table)

    _run(action)


# ---------------------------------------------------------------- data


class _Progress(io.RawIOBase):
    """A file whose reads advance a rich progress bar (shown only on a terminal)."""

    def __init__(self, raw: BinaryIO, advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.advance(count or 0)
        return count or 0


def _import(
    kind: Literal["ranges", "ported"],
    file: Path,
    fmt: str,
    delta: bool,
    skip_invalid: bool,
    as_json: bool,
    **maps: Path | None,
) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from numlookup.datasets import sources
    from numlookup.datasets.importer import import_dataset, line_errors

    def action() -> None:
        if fmt not in sources.FORMATS:
            raise CliError(f"unknown format {fmt!r}; choose one of {', '.join(sources.FORMATS)}")
        settings = _settings()
        engine = _engine(settings)
        show = out.is_terminal and not as_json
        with (
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=out,
                disable=not show,
                transient=True,
            ) as progress,
            file.open("rb") as raw,
        ):
            task = progress.add_task(f"reading {file.name}", total=file.stat().st_size)
            stream = io.BufferedReader(_Progress(raw, lambda n: progress.advance(task, n)), buffer_size=1 << 20)
            records = sources.records(kind, fmt, stream, delta=delta, **maps)  # type: ignore[arg-type]
            try:
                report = import_dataset(
                    engine,
                    settings.data_path,
                    kind,
                    records,
                    source=str(file),
                    fmt=fmt,
                    delta=delta,
                    skip_invalid=skip_invalid,
                    publish=settings.publishes_datasets,
                    on_built=lambda: progress.update(task, description="activating"),
                )
            except ImportFailed as exc:
                if as_json:
                    _print_json({"ok": False, "error": str(exc), "errors": line_errors(exc.errors)})
                    raise typer.Exit(1) from None
                raise
        version = report.version
        if as_json:
            _print_json(report.as_dict())
            return
        for error in report.errors:
            err.print(f"skipped line {error.line}: {error.reason}", highlight=False)
        out.print(
            f"{kind} version {version.version} active: {version.rows} rows "
            f"({version.records} records read, {version.skipped} skipped) in {report.seconds:.2f}s",
            highlight=False,
        )

    _run(action)


FormatOption = Annotated[str, typer.Option("--format", help="csv (ours), kamailio (pdbt CSV) or arcep (MAJNUM.csv).")]
DeltaOption = Annotated[bool, typer.Option("--delta", help="Change the active version: rows start with add/remove.")]
SkipOption = Annotated[bool, typer.Option("--skip-invalid", help="Skip bad lines (reported) instead of aborting.")]
CarrierMapOption = Annotated[Path | None, typer.Option(help="kamailio: carrier_id,mccmnc[,name] lines.", exists=True)]
CarrierNamesOption = Annotated[
    Path | None, typer.Option(help="kamailio: the carrier names file (D<id> <name>).", exists=True)
]


@data_app.command("import-ranges")
def data_import_ranges(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    fmt: FormatOption = "csv",
    delta: DeltaOption = False,
    skip_invalid: SkipOption = False,
    carrier_map: CarrierMapOption = None,
    carrier_names: CarrierNamesOption = None,
    operator_map: Annotated[Path | None, typer.Option(help="arcep: mnemo,mccmnc[,name] lines.", exists=True)] = None,
    as_json: JsonOption = False,
) -> None:
    """Load number ranges (prefix or start-end → MCC/MNC); they override the shipped data, longest prefix winning."""
    _import(
        "ranges",
        file,
        fmt,
        delta,
        skip_invalid,
        as_json,
        carrier_map=carrier_map,
        carrier_names=carrier_names,
        operator_map=operator_map,
    )


@data_app.command("import-ported")
def data_import_ported(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    fmt: FormatOption = "csv",
    delta: DeltaOption = False,
    skip_invalid: SkipOption = False,
    carrier_map: CarrierMapOption = None,
    carrier_names: CarrierNamesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load ported numbers (number → the MCC/MNC it was ported to)."""
    _import("ported", file, fmt, delta, skip_invalid, as_json, carrier_map=carrier_map, carrier_names=carrier_names)


@data_app.command("status")
def data_status(as_json: JsonOption = False) -> None:
    """Every imported dataset version; the active one of each kind is marked."""
    from numlookup.datasets import catalog

    def action() -> None:
        versions = catalog.all_versions(_engine())
        rows = [
            {
                "kind": v.kind,
                "version": v.version,
                "active": v.active,
                "mode": v.mode,
                "format": v.format,
                "source": v.source,
                "rows": v.rows,
                "records": v.records,
                "skipped": v.skipped,
                "imported_at": v.imported_at.isoformat(),
            }
            for v in versions
        ]
        if as_json:
            _print_json(rows)
            return
        if not rows:
            out.print("no operator data imported; serving the shipped data only")
            return
        table = Table("kind", "version", "active", "mode", "format", "rows", "skipped", "imported at", "source")
        for r in rows:
            table.add_row(
                r["kind"],
                str(r["version"]),
                "yes" if r["active"] else "",
                r["mode"],
                r["format"],
                str(r["rows"]),
                str(r["skipped"]),
                r["imported_at"][:19],
                r["source"],
            )
        out.print(table)

    _run(action)


@data_app.command("coverage")
def data_coverage(
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Only these regions (ISO alpha-2); repeat.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Share of libphonenumber's mobile carrier prefixes (weighted by numbers covered) that resolve to an MCC/MNC."""
    from numlookup.numbering.coverage import coverage, render, to_json
    from numlookup.numbering.networks import NetworkTable

    def action() -> None:
        report = coverage(NetworkTable.shipped())
        if region:
            report = report.select(region)
        if as_json:
            _print_json(to_json(report))
        else:
            out.print(render(report))

    _run(action)


# ---------------------------------------------------------------- lookup


@app.command()
def lookup(
    numbers: Annotated[list[str] | None, typer.Argument(help="Numbers in international form.")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="A file of numbers, one a line ('-': stdin).")
    ] = None,
    output_file: Annotated[Path | None, typer.Option("--output", help="Where results go (default: stdout).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Bulk output: csv or jsonl (API result objects).")] = "csv",
    region: Annotated[
        str | None, typer.Option(help="Read numbers without + as this region's (ISO alpha-2) national format.")
    ] = None,
    column: Annotated[
        int | None, typer.Option(help="The input is CSV: take the numbers from this column (0-based).")
    ] = None,
    header: Annotated[bool, typer.Option("--header", help="Skip the input's first line.")] = False,
    style: Annotated[str | None, typer.Option(help=f"Status style: {', '.join(STATUS_STYLES)}.")] = None,
) -> None:
    """Look numbers up offline (shipped and imported data). Charges nothing.

    With NUMBERS, print the API's result objects as JSON. With --input, resolve a
    whole file in chunks (memory stays flat) into CSV or JSON lines; a progress bar
    shows on a terminal.
    """
    import msgspec

    from numlookup.api.wire import number_result
    from numlookup.datasets.follower import load_operator_data
    from numlookup.numbering import Resolver
    from numlookup.numbering.resolver import shared_engine

    def action() -> None:
        settings = _settings()
        chosen = style or settings.status_style
        if chosen not in STATUS_STYLES:
            raise CliError(f"unknown status style {chosen!r}; choose one of {', '.join(STATUS_STYLES)}")
        if region is not None and region.upper() not in phonenumbers_regions():
            raise CliError(f"unknown region {region!r}; use an ISO 3166-1 alpha-2 code such as DE")
        if (input_file is None) == (not numbers):
            raise CliError("give NUMBERS or --input FILE (not both)")
        if fmt not in ("csv", "jsonl"):
            raise CliError("--format is csv or jsonl")
        resolver = Resolver(
            operator=load_operator_data(_engine(settings), settings.data_path),
            engine=shared_engine(settings.data_path / "cache"),
        )
        if numbers:
            results = [number_result(r, chosen) for r in resolver.resolve(numbers)]  # type: ignore[arg-type]
            _print_json(msgspec.to_builtins({"result": results}))
            return
        assert input_file is not None
        _bulk(resolver, input_file, output_file, fmt, region.upper() if region else None, column, header, chosen)

    _run(action)


def phonenumbers_regions() -> set[str]:
    import phonenumbers

    return set(phonenumbers.SUPPORTED_REGIONS)


def _bulk(
    resolver: Any,
    input_file: Path,
    output_file: Path | None,
    fmt: str,
    region: str | None,
    column: int | None,
    header: bool,
    style: str,
) -> None:
    import time
    from contextlib import ExitStack

    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    from numlookup.bulk import lookup_file

    with ExitStack() as stack:
        source = sys.stdin.buffer if str(input_file) == "-" else stack.enter_context(input_file.open("rb"))
        to_stdout = output_file is None or str(output_file) == "-"
        sink = sys.stdout.buffer if to_stdout else stack.enter_context(output_file.open("wb"))  # type: ignore[union-attr]
        total = None if str(input_file) == "-" else input_file.stat().st_size
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "[progress.percentage]{task.percentage:>3.0f}%",
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=False,
        )
        stack.enter_context(progress)
        task = progress.add_task("looking up", total=total)
        started = time.perf_counter()
        done = 0

        def advance(count: int, consumed: int) -> None:
            nonlocal done
            done += count
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=consumed, description=f"{done:,} numbers, {rate:,.0f}/s")

        stats = lookup_file(
            resolver,
            source,
            sink,
            fmt=fmt,
            region=region,
            column=column,
            header=header,  # type: ignore[arg-type]
            style=style,
            progress=advance,  # type: ignore[arg-type]
        )
        sink.flush()
    elapsed = time.perf_counter() - started
    if not to_stdout or err.is_terminal:
        err.print(
            f"{stats.numbers:,} numbers ({stats.valid:,} valid) in {elapsed:.1f}s, "
            f"{stats.numbers / max(elapsed, 1e-9):,.0f}/s; slow path: {resolver.engine.stats.slow:,}",
            highlight=False,
        )


def main() -> None:
    app()
