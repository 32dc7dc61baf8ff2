"""``numlookup credits``: top-ups, corrections and the ledger."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from numlookup import accounts, billing
from numlookup.billing.ledger import LedgerRow
from numlookup.billing.money import format_amount, parse_amount, parse_signed_amount
from numlookup.cli.base import database, out, print_json, user_errors
from numlookup.cli.options import JsonOption

app = typer.Typer(help="Credits and the ledger.", no_args_is_help=True)


def ledger_data(row: LedgerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "request_id": row.request_id,
        "amount": format_amount(row.amount),
        "numbers": row.numbers,
        "balance_after": format_amount(row.balance_after),
        "note": row.note,
        "created_at": row.created_at.isoformat(),
    }


@app.command("add")
@user_errors
def add(
    name: str,
    amount: Annotated[str, typer.Argument(help="A positive decimal, e.g. 25 or 0.002.")],
    note: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add credits to an account (one ledger row)."""
    micros = parse_amount(amount)
    row = accounts.top_up(database(), name, micros, note)
    added, balance = format_amount(micros), format_amount(row.balance_after)
    if as_json:
        print_json({"name": name, "added": added, "balance": balance, "ledger_id": row.ledger_id})
    else:
        out.print(f"added {added} to {name}; balance {balance}", highlight=False)


# A negative AMOUNT (-5) looks like an option to the parser: unknown options stay arguments.
@app.command("adjust", context_settings={"ignore_unknown_options": True})
@user_errors
def adjust(
    name: str,
    amount: Annotated[str, typer.Argument(help="A signed decimal: -5 takes 5 credits away, 2.5 adds them.")],
    note: Annotated[str, typer.Option(help="Why (required), for the ledger.")],
    as_json: JsonOption = False,
) -> None:
    """Correct a balance either way (its own ledger row, kind adjustment); never below zero."""
    micros = parse_signed_amount(amount)
    row = accounts.correct(database(), name, micros, note)
    adjusted, balance = format_amount(micros), format_amount(row.balance_after)
    if as_json:
        print_json({"name": name, "adjusted": adjusted, "balance": balance, "ledger_id": row.ledger_id})
    else:
        out.print(f"adjusted {name} by {adjusted}; balance {balance}", highlight=False)


@app.command("show")
@user_errors
def show(
    name: str,
    last: Annotated[int, typer.Option(help="How many ledger rows to show.", min=0)] = 10,
    as_json: JsonOption = False,
) -> None:
    """Balance, what bulk jobs hold of it (reservations), and the newest ledger rows."""
    from numlookup.jobs import queue

    engine = database()
    account = accounts.get_account(engine, name)
    rows = billing.ledger_rows(engine, account.id, last)
    holding = queue.holding(engine, account.id)
    balance = format_amount(account.balance)
    if as_json:
        reservations = [
            {"job": j.public_id, "status": j.status, "reserved": format_amount(j.reserved)} for j in holding
        ]
        print_json(
            {
                "name": name,
                "balance": balance,
                "reserved": format_amount(account.reserved),
                "spendable": format_amount(account.spendable),
                "reservations": reservations,
                "ledger": [ledger_data(r) for r in rows],
            }
        )
        return
    out.print(f"[bold]{name}[/bold] balance {balance}", highlight=False)
    if account.reserved:
        jobs = ", ".join(f"{j.public_id} ({j.status}) {format_amount(j.reserved)}" for j in holding)
        reserved, spendable = format_amount(account.reserved), format_amount(account.spendable)
        out.print(
            f"reserved {reserved} for bulk jobs: {jobs}; spendable {spendable}",
            highlight=False,
            soft_wrap=True,
        )
    table = Table("id", "when", "kind", "amount", "numbers", "balance after", "request / note")
    for r in rows:
        table.add_row(
            str(r.id),
            r.created_at.isoformat()[:19],
            r.kind,
            format_amount(r.amount),
            str(r.numbers),
            format_amount(r.balance_after),
            r.request_id or r.note or "",
        )
    out.print(table)
