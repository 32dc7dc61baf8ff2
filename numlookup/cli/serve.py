"""``numlookup serve``: the API, and the demo account ``make run`` prints."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from typing import Annotated

import typer
from sqlalchemy import Engine

from numlookup import accounts
from numlookup.billing.money import MICROS
from numlookup.cli.base import database, out, settings, user_errors
from numlookup.cli.info import summary, summary_line
from numlookup.logs import logging_config, resolve_format
from numlookup.settings import Settings, default_data_dir

log = logging.getLogger("numlookup.serve")

DEMO_ACCOUNT = "demo"
DEMO_CREDITS = 100 * MICROS
DEMO_NETWORKS = ("127.0.0.0/8", "::1/128")


def demo_credentials(config: Settings, engine: Engine) -> accounts.NewCredentials:
    """The demo account's credentials, kept in the data folder so every ``make run`` can show them."""
    path = config.data_path / "demo-credentials.json"
    try:
        accounts.get_account(engine, DEMO_ACCOUNT)
    except accounts.AccountError:
        creds = accounts.create_account(engine, DEMO_ACCOUNT, credits=DEMO_CREDITS, allow=DEMO_NETWORKS)
    else:
        if path.exists():
            saved = json.loads(path.read_text())
            return accounts.NewCredentials(DEMO_ACCOUNT, saved["api_username"], saved["api_password"])
        creds = accounts.rotate_secret(engine, DEMO_ACCOUNT)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_username": creds.api_username, "api_password": creds.api_password}, fh)
    return creds


def print_demo(creds: accounts.NewCredentials, host: str, port: int) -> None:
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


def print_data_dir(config: Settings) -> None:
    """Where this server's data is, and how an admin command in another shell finds it when it is not the default."""
    path = config.data_path
    if path == default_data_dir():
        out.print(f"Data directory: {path}", highlight=False, markup=False)
    else:
        out.print(
            f"Data directory: {path} (for admin commands on it: export NUMLOOKUP_DATA_DIR={path})",
            highlight=False,
            markup=False,
        )


def log_start(config: Settings, data: dict[str, object]) -> None:
    """The settings in effect as one log line (JSON logs carry them as the ``settings`` field); never a secret.

    Logging is set up here as uvicorn will set it up again, so this line has the
    server's format and goes where its log goes.
    """
    logging.config.dictConfig(logging_config(resolve_format(config.log_format), config.log_level))
    log.info("starting numlookup: %s", summary_line(data), extra={"settings": data})


@user_errors
def _prepare(host: str | None, port: int | None, workers: int | None, demo: bool) -> Settings:
    config = settings()
    engine = database(config, create=True)  # serve, with db upgrade, is what creates a database
    data = summary(config, host=host, port=port, workers=workers)
    if demo:
        print_demo(demo_credentials(config, engine), host or config.host, port or config.port)
        print_data_dir(config)
    engine.dispose()
    log_start(config, data)
    return config


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (setting: host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (setting: port).", min=0, max=65535)] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (setting: workers).", min=1)] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo account if needed and print its credentials.")
    ] = False,
) -> None:
    """Serve the API. SQLite is migrated at start; other databases need `numlookup db upgrade`."""
    from numlookup import serving

    config = _prepare(host, port, workers, demo)
    serving.serve(config, host=host or config.host, port=port or config.port, workers=workers or config.workers)
