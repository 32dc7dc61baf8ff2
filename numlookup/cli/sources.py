"""``numlookup sources``: what each live source did and cost, and whether each answers right now."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from numlookup.billing.money import format_amount
from numlookup.cli.base import CliError, database, err, out, print_json, settings, user_errors
from numlookup.cli.options import JsonOption

if TYPE_CHECKING:
    from numlookup.live.usage import DayUsage
    from numlookup.settings import Settings

app = typer.Typer(help="Live sources: usage and cost per day, and a probe of each.", no_args_is_help=True)


def _usage_data(row: DayUsage) -> dict[str, Any]:
    """One (day, source) row; money as exact decimals (cost in the source's currency, credits in credits)."""
    return {
        "day": row.day.isoformat(),
        "source": row.source,
        "queries": row.queries,
        "numbers": row.numbers,
        "answered": row.answered,
        "failures": row.failures,
        "cost": format_amount(row.cost_micros),
        "currency": row.currency or None,
        "credits_charged": format_amount(row.credits_micros),
    }


@app.command("usage")
@user_errors
def usage(
    days: Annotated[int, typer.Option(help="Days to show, today (UTC) included.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """Per source and day: queries, numbers answered, failures, what the provider charges, what customers paid.

    ``cache`` is the answers served from the live cache (no provider cost). The
    margin of a source is its credits charged against its cost.
    """
    from rich.table import Table

    from numlookup.live import usage as recorded

    if days < 1:
        raise CliError("--days must be at least 1")
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    rows = recorded.read(database(), since)
    if as_json:
        print_json([_usage_data(r) for r in rows])
        return
    if not rows:
        out.print(f"no live source usage recorded since {since.isoformat()}")
        return
    table = Table("day", "source", "queries", "numbers", "answered", "failures", "cost", "credits charged")
    for r in rows:
        data = _usage_data(r)
        cost = f"{data['cost']} {data['currency']}" if data["currency"] else data["cost"]
        table.add_row(
            data["day"],
            r.source,
            str(r.queries),
            str(r.numbers),
            str(r.answered),
            str(r.failures),
            cost,
            data["credits_charged"],
        )
    out.print(table)


@dataclass(frozen=True, slots=True)
class Probe:
    source: str
    kind: str
    number: str | None
    ok: bool
    seconds: float | None
    answer: dict[str, Any] | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        milliseconds = None if self.seconds is None else round(self.seconds * 1000, 1)
        return {
            "source": self.source,
            "kind": self.kind,
            "number": self.number,
            "ok": self.ok,
            "ms": milliseconds,
            "answer": self.answer,
            "error": self.reason,
        }


def probe_number(config: Settings, source: str) -> str | None:
    """The number ``sources check`` asks: the source's ``probe_number``, else one its first route covers.

    For a ``cc:`` route that is the example mobile number libphonenumber gives
    the calling code's main region; for a ``prefix:`` route the same example
    with its first digits replaced by the prefix. ``mccmnc:`` routes name no
    digits: such a source needs ``probe_number``.
    """
    import phonenumbers

    from numlookup.settings import UPSTREAM_PREFIX

    if source.startswith(UPSTREAM_PREFIX):
        configured = config.upstreams[source.removeprefix(UPSTREAM_PREFIX)].probe_number
        if configured:
            return configured
    for route in config.live_routes:
        if route.kind == "mccmnc" or source not in (config.source_name(s) for s in route.chain):
            continue
        digits = route.value
        for length in (1, 2, 3):
            region = phonenumbers.region_code_for_country_code(int(digits[:length]))
            if region == phonenumbers.UNKNOWN_REGION:
                continue
            example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
            if example is None:
                break
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
            return "+" + (e164 if route.kind == "cc" else digits + e164[len(digits) :])
    return None


async def _probe(config: Settings, name: str) -> Probe:
    from numlookup.live.kinds import build_sources, kind_of
    from numlookup.settings import UPSTREAM_PREFIX

    kind = kind_of(config.upstreams[name.removeprefix(UPSTREAM_PREFIX)]) if name.startswith(UPSTREAM_PREFIX) else name
    number = probe_number(config, name)
    if number is None:
        return Probe(name, kind, None, False, None, None, "no number to ask: set probe_number for this source")
    built = build_sources(config, {name})[name]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(built.guard_seconds):
            answers = await built.source.query([number], 0)
    except TimeoutError:
        return Probe(name, kind, number, False, time.perf_counter() - started, None, f"{name} timed out")
    except Exception as exc:  # the reason is what this command is for: print it, whatever it is
        return Probe(name, kind, number, False, time.perf_counter() - started, None, str(exc) or type(exc).__name__)
    finally:
        await built.source.close()
    seconds = time.perf_counter() - started
    answer = answers.get(number)
    if answer is None:
        return Probe(name, kind, number, False, seconds, None, f"{name} gave no answer for {number}")
    mapped = {
        "reachable": answer.reachable,
        "invalid": answer.invalid,
        "ported_known": answer.knows_porting,
        "ported_mccmnc": answer.ported_mccmnc,
        "ported_name": answer.ported_name,
        "roaming": answer.roaming,
        "roaming_mccmnc": answer.roaming_mccmnc,
        "roaming_name": answer.roaming_name,
        "error": answer.error,
    }
    ok = answer.says_something
    return Probe(name, kind, number, ok, seconds, mapped, None if ok else (answer.error or f"{name} could not tell"))


@app.command("check")
@user_errors
def check(
    name: Annotated[
        str | None, typer.Argument(help="One source (NAME or upstream:NAME, osmo-hlr); default: all.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask each configured source one probe number; print latency and the mapped answer, or why it failed.

    Exits non-zero if any source failed. Charges nobody; the provider may charge
    us for the probe.
    """
    config = settings()
    names = sorted({f"upstream:{n}" for n in config.upstreams} | ({"osmo-hlr"} if config.osmo_hlr else set()))
    if name is not None:
        try:
            wanted = config.source_name(name)
        except ValueError:
            raise CliError(f"no live source named {name!r}; configured: {', '.join(names) or 'none'}") from None
        names = [wanted]
    if not names:
        raise CliError("no live sources are configured (settings: upstreams, osmo_hlr)")

    async def run() -> list[Probe]:
        return list(await asyncio.gather(*(_probe(config, n) for n in names)))

    probes = asyncio.run(run())
    if as_json:
        print_json([p.as_dict() for p in probes])
    else:
        for p in probes:
            latency = "" if p.seconds is None else f" in {p.seconds * 1000:.0f} ms"
            if p.ok:
                out.print(f"ok    {p.source} ({p.kind}) {p.number}{latency}: {p.answer}", highlight=False)
            else:
                err.print(f"FAIL  {p.source} ({p.kind}) {p.number or '-'}{latency}: {p.reason}", highlight=False)
    if not all(p.ok for p in probes):
        raise typer.Exit(1)
