"""``numlookup accounts``: accounts, API secrets, IP allow-lists, prices and status styles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from numlookup import accounts
from numlookup.accounts.allowlist import EVERYONE
from numlookup.billing.money import format_amount, parse_amount
from numlookup.cli.base import database, out, print_json, settings, user_errors
from numlookup.cli.options import JsonOption
from numlookup.status import STYLE_SETTINGS, style_setting

app = typer.Typer(help="Accounts, API secrets and IP allow-lists.", no_args_is_help=True)


def account_data(account: accounts.Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "api_username": account.api_username,
        "enabled": account.enabled,
        "balance": format_amount(account.balance),
        "price": None if account.price is None else format_amount(account.price),
        "status_style": account.status_style,
        "allowed_networks": list(account.allowed_networks),
        "created_at": account.created_at.isoformat(),
    }


def print_credentials(creds: accounts.NewCredentials, as_json: bool, what: str) -> None:
    if as_json:
        print_json({"name": creds.name, "api_username": creds.api_username, "api_password": creds.api_password})
        return
    out.print(f"{what} [bold]{creds.name}[/bold]. The password is shown only now:")
    out.print(f"  API username: {creds.api_username}", highlight=False)
    out.print(f"  API password: {creds.api_password}", highlight=False)


def report(message: str, as_json: bool, **data: Any) -> None:
    """A change's outcome: the message, or ``{..., "ok": true, "message": ...}`` with ``--json``."""
    if as_json:
        print_json({**data, "ok": True, "message": message})
    else:
        out.print(message, highlight=False)


@app.command("create")
@user_errors
def create(
    name: str,
    credits: Annotated[str, typer.Option(help="Initial credits, a decimal.")] = "0",
    allow_ip: Annotated[
        list[str] | None,
        typer.Option("--allow-ip", help="Allowed client network (CIDR); repeat. Default: everyone."),
    ] = None,
    status_style_name: Annotated[
        str | None,
        typer.Option("--status-style", help=f"One of {', '.join(STYLE_SETTINGS)}; default: the server's."),
    ] = None,
    price: Annotated[str | None, typer.Option(help="Price per number for this account; default: the server's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account and print its API username and password (once)."""
    creds = accounts.create_account(
        database(),
        name,
        credits=parse_amount(credits),
        allow=allow_ip or EVERYONE,
        status_style=None if status_style_name is None else style_setting(status_style_name),
        price=None if price is None else parse_amount(price),
    )
    print_credentials(creds, as_json, "Created account")


@app.command("list")
@user_errors
def list_(as_json: JsonOption = False) -> None:
    """All accounts."""
    items = accounts.list_accounts(database())
    if as_json:
        print_json([account_data(a) for a in items])
        return
    table = Table("name", "API username", "enabled", "balance", "price", "style", "allowed")
    for a in items:
        table.add_row(
            a.name,
            a.api_username,
            "yes" if a.enabled else "no",
            format_amount(a.balance),
            "default" if a.price is None else format_amount(a.price),
            a.status_style or "default",
            ", ".join(a.allowed_networks) or "nobody",
        )
    out.print(table)


@app.command("show")
@user_errors
def show(name: str, as_json: JsonOption = False) -> None:
    """One account."""
    data = account_data(accounts.get_account(database(), name))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        out.print(f"{key:>16}: {shown if shown not in (None, '') else '-'}", highlight=False)


@app.command("disable")
@user_errors
def disable(name: str, as_json: JsonOption = False) -> None:
    """Refuse the account's requests (101) until enabled again."""
    accounts.set_enabled(database(), name, False)
    report(f"disabled {name}", as_json, name=name)


@app.command("enable")
@user_errors
def enable(name: str, as_json: JsonOption = False) -> None:
    """Serve the account's requests again."""
    accounts.set_enabled(database(), name, True)
    report(f"enabled {name}", as_json, name=name)


@app.command("rotate-secret")
@user_errors
def rotate_secret(name: str, as_json: JsonOption = False) -> None:
    """A new API password; running servers refuse the old one within account_refresh_seconds (1 s by default)."""
    print_credentials(accounts.rotate_secret(database(), name), as_json, "New secret for")


@app.command("allow-ip")
@user_errors
def allow_ip(name: str, cidr: str, as_json: JsonOption = False) -> None:
    """Add a network (IPv4 or IPv6 CIDR) to the allow-list; 0.0.0.0/0 and ::/0 allow everyone."""
    network = accounts.allow_network(database(), name, cidr)
    report(f"{name} now allows {network}", as_json, name=name, cidr=cidr)


@app.command("deny-ip")
@user_errors
def deny_ip(name: str, cidr: str, as_json: JsonOption = False) -> None:
    """Remove a network from the allow-list (an empty list lets nobody in)."""
    network = accounts.deny_network(database(), name, cidr)
    report(f"{name} no longer allows {network}", as_json, name=name, cidr=cidr)


@app.command("set-price")
@user_errors
def set_price(
    name: str,
    price: Annotated[str, typer.Argument(help="A decimal, or 'default' for the server's price.")],
    as_json: JsonOption = False,
) -> None:
    """Price per chargeable number for this account."""
    value = None if price == "default" else parse_amount(price)
    accounts.set_price(database(), name, value)
    shown = "the default price" if value is None else format_amount(value)
    report(f"{name} now pays {shown} per number", as_json, name=name)


@app.command("set-style")
@user_errors
def set_style(
    name: str,
    style: Annotated[str, typer.Argument(help=f"{', '.join(STYLE_SETTINGS)} or 'default'.")],
    as_json: JsonOption = False,
) -> None:
    """The status vocabulary this account's responses use."""
    accounts.set_status_style(database(), name, None if style == "default" else style_setting(style))
    report(f"{name} now gets status style {style}", as_json, name=name)


@app.command("webhook-secret")
@user_errors
def webhook_secret(
    name: str,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new secret; the old one keeps signing during the grace period.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The account's webhook signing secret (whsec_…), made at first use; receivers verify with it."""
    from numlookup.webhooks import keys

    engine = database()
    account = accounts.get_account(engine, name)
    now = datetime.now(UTC)
    grace = timedelta(hours=settings().webhook_rotation_grace_hours)
    found = keys.rotate(engine, account.id, now, grace) if rotate else keys.show(engine, account.id, now)
    previous_until = (
        found.previous_until if found.previous_secret and found.previous_until and found.previous_until > now else None
    )
    if as_json:
        print_json(
            {
                "name": name,
                "secret": found.secret,
                "previous_secret_valid_until": None if previous_until is None else previous_until.isoformat(),
                "callbacks_enabled": not found.disabled,
                "disabled_reason": found.disabled_reason,
            }
        )
        return
    out.print(f"Webhook signing secret of [bold]{name}[/bold]:", highlight=False)
    out.print(f"  {found.secret}", highlight=False)
    if previous_until is not None:
        out.print(f"The previous secret also signs until {previous_until:%Y-%m-%d %H:%M:%S} UTC.", highlight=False)
    if found.disabled:
        out.print(
            f"Callbacks are off ({found.disabled_reason}); `numlookup webhooks enable {name}` turns them on.",
            highlight=False,
        )
