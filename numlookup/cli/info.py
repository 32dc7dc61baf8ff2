"""``numlookup info``: the settings in effect, and the one-line summary ``serve`` logs at start.

Which file, which data directory, which database: the first questions when a
command and the server seem to disagree. Nothing secret is shown, ever: the
database URL's password is masked, sources are named but their URLs and
credentials left out, and the admin API is shown on or off, never its token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from numlookup.billing.money import format_amount
from numlookup.billing.prices import CHARGE_CLASSES, Prices
from numlookup.cli.base import out, print_json, settings, user_errors
from numlookup.cli.options import JsonOption
from numlookup.settings import OSMO_HLR, UPSTREAM_PREFIX, Settings, config_path


def summary(
    config: Settings, *, host: str | None = None, port: int | None = None, workers: int | None = None
) -> dict[str, Any]:
    """The effective settings as JSON-ready data; ``host``, ``port`` and ``workers`` as ``serve`` was told."""
    file = config_path()
    database = make_url(config.effective_database_url)
    sources = [
        {"name": UPSTREAM_PREFIX + name, "kind": upstream.__struct_config__.tag}
        for name, upstream in config.upstreams.items()
    ]
    if config.osmo_hlr is not None:
        sources.insert(0, {"name": OSMO_HLR, "kind": OSMO_HLR})
    prices = Prices.from_settings(config)
    return {
        "config_file": None if file is None else str(file),
        "data_dir": str(config.data_path),
        "database": {
            "url": config.shown_database_url,
            "backend": database.get_backend_name(),
            "exists": _sqlite_exists(database),
        },
        "live_routes": [
            {"match": r.match, "sources": [config.source_name(s) for s in r.chain]} for r in config.live_routes
        ],
        "live_sources": sources,
        "prices": {c: format_amount(prices.of(c, None)) for c in CHARGE_CLASSES},
        "status_style": config.status_style,
        "max_numbers_per_request": config.max_numbers_per_request,
        "listen": {"host": host or config.host, "port": port or config.port, "workers": workers or config.workers},
        "admin_api": bool(config.admin_token),
    }


def _sqlite_exists(url: URL) -> bool | None:
    """Whether the SQLite file exists (None for other databases: telling would mean connecting)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).exists()


def summary_line(data: dict[str, Any]) -> str:
    """The summary as one line of ``key=value`` words, for the log."""
    listen = data["listen"]
    routes = ",".join(f"{r['match']}>{'|'.join(r['sources'])}" for r in data["live_routes"]) or "none"
    sources = ",".join(f"{s['name']}({s['kind']})" for s in data["live_sources"]) or "none"
    prices = ",".join(f"{name}:{price}" for name, price in data["prices"].items())
    return (
        f"config={data['config_file'] or 'none'} data_dir={data['data_dir']} database={data['database']['url']} "
        f"live_routes={routes} live_sources={sources} prices={prices} status_style={data['status_style']} "
        f"max_numbers_per_request={data['max_numbers_per_request']} "
        f"listen={listen['host']}:{listen['port']} workers={listen['workers']} "
        f"admin_api={'on' if data['admin_api'] else 'off'}"
    )


@user_errors
def info(as_json: JsonOption = False) -> None:
    """The settings in effect: config file, data directory, database, live sources, prices, listen address."""
    data = summary(settings())
    if as_json:
        print_json(data)
        return
    database = data["database"]
    exists = {True: "", False: " (does not exist yet)", None: ""}[database["exists"]]
    listen = data["listen"]
    rows = {
        "config file": data["config_file"] or "none",
        "data directory": data["data_dir"],
        "database": database["url"] + exists,
        "live routes": ", ".join(f"{r['match']} -> {' then '.join(r['sources'])}" for r in data["live_routes"])
        or "none",
        "live sources": ", ".join(f"{s['name']} ({s['kind']})" for s in data["live_sources"]) or "none",
        "prices": ", ".join(f"{name} {price}" for name, price in data["prices"].items()),
        "status style": data["status_style"],
        "max numbers": str(data["max_numbers_per_request"]),
        "listen": f"{listen['host']}:{listen['port']}, {listen['workers']} worker(s)",
        "admin API": "on" if data["admin_api"] else "off",
    }
    for key, value in rows.items():
        out.print(f"{key:>14}: {value}", highlight=False, markup=False)
