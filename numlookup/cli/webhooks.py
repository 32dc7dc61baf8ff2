"""``numlookup webhooks``: what the outbox holds and did, a manual retry, and callbacks on again after a 410.

The signing secret is an account's (``numlookup accounts webhook-secret``);
this group is the operator's view of deliveries. URLs are shown without their
query (it may carry a receiver's token); bodies and secrets are never shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.table import Table

from numlookup import accounts
from numlookup.cli.base import database, out, print_json, user_errors
from numlookup.cli.options import JsonOption
from numlookup.webhooks import keys, outbox

app = typer.Typer(help="Webhook deliveries: list, show, retry; callbacks on again after a 410.", no_args_is_help=True)


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def delivery_data(d: outbox.Delivery) -> dict[str, Any]:
    return {
        "webhook_id": d.webhook_id,
        "account": d.account,
        "event_type": d.event_type,
        "url": shown_url(d.url),
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": _time(d.next_attempt_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "last_attempt_at": _time(d.last_attempt_at),
        "created_at": _time(d.created_at),
        "delivered_at": _time(d.delivered_at),
    }


@app.command("list")
@user_errors
def list_(
    account: Annotated[str | None, typer.Option(help="Only this account's deliveries.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only those still to be delivered.")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Only those that failed or were not sent.")] = False,
    last: Annotated[int, typer.Option(help="At most this many, the newest first.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest deliveries, with their state and last attempt."""
    engine = database()
    account_id = accounts.get_account(engine, account).id if account is not None else None
    states = [*([outbox.PENDING] if pending else []), *([outbox.FAILED, outbox.UNSENT] if failed else [])]
    items = outbox.list_deliveries(engine, account_id=account_id, states=states, limit=last)
    if as_json:
        print_json([delivery_data(d) for d in items])
        return
    table = Table("webhook id", "account", "event", "state", "attempts", "last", "next attempt", "url")
    for d in items:
        last_outcome = d.last_error or (str(d.last_status) if d.last_status is not None else "-")
        when = f"{d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.next_attempt_at and d.state == outbox.PENDING else "-"
        table.add_row(
            d.webhook_id, d.account, d.event_type, d.state, str(d.attempts), last_outcome, when, shown_url(d.url)
        )
    out.print(table)


@app.command("show")
@user_errors
def show(webhook_id: str, as_json: JsonOption = False) -> None:
    """One delivery and every attempt made (time, status, error)."""
    delivery, attempts = outbox.get_delivery(database(), webhook_id)
    data = delivery_data(delivery)
    tried = [
        {
            "attempt": a.attempt,
            "started_at": _time(a.started_at),
            "duration_ms": a.duration_ms,
            "status": a.status,
            "error": a.error,
        }
        for a in attempts
    ]
    if as_json:
        print_json({**data, "attempt_log": tried})
        return
    for key, value in data.items():
        out.print(f"{key:>16}: {value if value not in (None, '') else '-'}", highlight=False)
    table = Table("attempt", "started", "ms", "status", "error")
    for a in attempts:
        status = "-" if a.status is None else str(a.status)
        table.add_row(str(a.attempt), f"{a.started_at:%Y-%m-%d %H:%M:%S}", str(a.duration_ms), status, a.error or "-")
    out.print(table)


@app.command("retry")
@user_errors
def retry(
    webhook_ids: Annotated[list[str], typer.Argument(help="Webhook ids (msg_…).")], as_json: JsonOption = False
) -> None:
    """Send deliveries again now, with a fresh retry schedule and the same webhook-id (receivers deduplicate on it)."""
    engine = database()
    now = datetime.now(UTC)
    done = [outbox.retry(engine, webhook_id, now) for webhook_id in webhook_ids]
    if as_json:
        print_json([delivery_data(d) for d in done])
        return
    for d in done:
        out.print(f"{d.webhook_id} is due now (it had {d.account}'s callback to {shown_url(d.url)})", highlight=False)


@app.command("enable")
@user_errors
def enable(name: str, as_json: JsonOption = False) -> None:
    """Turn an account's callbacks on again after a receiver's 410 turned them off.

    Deliveries recorded as unsent meanwhile stay so; send any of them with `webhooks retry ID`.
    """
    engine = database()
    account = accounts.get_account(engine, name)
    changed = keys.enable(engine, account.id, datetime.now(UTC))
    message = f"{name}'s callbacks are on again" if changed else f"{name}'s callbacks were on"
    if as_json:
        print_json({"name": name, "ok": True, "changed": changed, "message": message})
    else:
        out.print(message, highlight=False)
