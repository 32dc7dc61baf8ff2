"""One database, wherever the command is run from: the data directory, ``info``, the start log line, file modes.

The bug these pin: run from any folder but the checkout, ``numlookup credits add
demo 5`` answered "no account named 'demo'" from a new, empty ``./var`` the
server never read. Now the data directory does not depend on the working
directory, only ``serve`` and ``db upgrade`` create a database, and every
"not found" names the database it looked in.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from numlookup.accounts import create_account
from numlookup.store import make_engine, write_transaction
from tests.support import ROOT, Server, cli_json, database_url, free_port, run_cli, until_healthy


def clean_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a user who set no NUMLOOKUP_ variable (and no XDG_DATA_HOME), with ``home`` as HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_") and k != "XDG_DATA_HOME"}
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


def numlookup(cwd: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m numlookup ARGS`` typed in the folder ``cwd``."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "numlookup", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``numlookup serve`` started in one folder with every setting at its default; yields its URL and environment."""
    env = clean_environment(tmp_path / "home")
    port = free_port()
    (tmp_path / "started-here").mkdir()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "numlookup", "serve", "--port", str(port)],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path / "started-here",
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert until_healthy(url, process, 60, (tmp_path / "server.log").read_text)
        yield url, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_admin_commands_in_any_folder_use_the_servers_database(
    tmp_path: Path, default_server: tuple[str, dict[str, str]]
) -> None:
    url, env = default_server
    created = json.loads(numlookup(tmp_path / "a", env, "accounts", "create", "demo", "--json").stdout)
    added = numlookup(tmp_path / "b" / "deeper", env, "credits", "add", "demo", "5", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["balance"] == "5"
    response = httpx.post(
        url + "/v1/hlr/sync",
        auth=(created["api_username"], created["api_password"]),
        json={"numbers": ["+37251000001"]},
        timeout=30,
    )
    assert response.status_code == 200, response.text  # the server sees the account and the credits
    shown = json.loads(numlookup(tmp_path / "c", env, "credits", "show", "demo", "--json").stdout)
    assert shown["balance"] == "4.99"
    data_dir = tmp_path / "home" / ".local" / "share" / "numlookup"
    assert (data_dir / "numlookup.db").is_file()
    info = json.loads(numlookup(tmp_path / "c", env, "info", "--json").stdout)
    assert (info["data_dir"], info["database"]["url"]) == (str(data_dir), f"sqlite:///{data_dir / 'numlookup.db'}")
    for folder in ("started-here", "a", "b/deeper", "c"):
        assert list((tmp_path / folder).iterdir()) == [], folder  # no ./var, no second database


@pytest.mark.usefixtures("engine")
def test_not_found_names_the_database(data_dir: Path) -> None:
    shown = make_url(database_url(data_dir)).render_as_string(hide_password=True)
    result = run_cli(data_dir, "credits", "add", "demo", "5", check=False)
    assert (result.returncode, result.stderr) == (1, f"error: no account named 'demo' in {shown}\n")


def test_the_sqlite_files_are_private_to_their_owner(tmp_path: Path) -> None:
    """0600 for the database, its -wal and -shm, and the writer lock, even with a umask that keeps nothing private."""
    database = tmp_path / "data" / "numlookup.db"
    previous = os.umask(0)
    try:
        engine = make_engine(f"sqlite:///{database}")
        with write_transaction(engine) as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", ".writer.lock"))]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        engine.dispose()
    finally:
        os.umask(previous)
    assert modes == {f.name: 0o600 for f in files}


def test_db_upgrade_creates_the_database_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = clean_environment(tmp_path / "home", {"NUMLOOKUP_DATA_DIR": str(data_dir)})
    done = numlookup(tmp_path, env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert f"database sqlite:///{data_dir / 'numlookup.db'} at revision" in done.stdout
    assert stat.S_IMODE((data_dir / "numlookup.db").stat().st_mode) == 0o600


SECRETS = ("upstream-secret", "admin-secret", "db-secret")


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True)
    config = folder / "numlookup.toml"
    config.write_text(
        """
data_dir = "relative-data"
admin_token = "admin-secret"
default_price = "0.002"
price_live = "0.0125"
status_style = "onoff"
max_numbers_per_request = 5
port = 9999
workers = 2
live_routes = [{match = "cc:372", source = "ee"}, {match = "cc:49", source = "osmo-hlr"}]

[upstreams.ee]
url = "https://user:upstream-secret@upstream.example/v1"
username = "u"
password = "upstream-secret"

[osmo_hlr]
host = "127.0.0.1"
"""
    )
    return config


def test_info_shows_the_settings_in_effect_and_no_secret(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc")
    env = clean_environment(
        tmp_path / "home", {"NUMLOOKUP_DATABASE_URL": "postgresql+psycopg://numlookup:db-secret@db.example/numlookup"}
    )
    done = numlookup(tmp_path / "elsewhere", env, "--config", str(config), "info", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "config_file": str(config),
        "data_dir": str(tmp_path / "etc" / "relative-data"),  # relative to the file, not to the shell
        "database": {
            "url": "postgresql+psycopg://numlookup:***@db.example/numlookup",
            "backend": "postgresql",
            "exists": None,
        },
        "live_routes": [{"match": "cc:372", "sources": ["upstream:ee"]}, {"match": "cc:49", "sources": ["osmo-hlr"]}],
        "live_sources": [{"name": "osmo-hlr", "kind": "osmo-hlr"}, {"name": "upstream:ee", "kind": "messente"}],
        "prices": {"offline": "0.002", "cache": "0.002", "live": "0.0125"},
        "status_style": "onoff",
        "max_numbers_per_request": 5,
        "listen": {"host": "127.0.0.1", "port": 9999, "workers": 2},
        "admin_api": True,
    }
    human = numlookup(tmp_path / "elsewhere", env, "--config", str(config), "info")
    assert human.returncode == 0, human.stderr
    assert "postgresql+psycopg://numlookup:***@db.example/numlookup" in human.stdout
    assert "cc:372 -> upstream:ee" in human.stdout and "live 0.0125" in human.stdout
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr + human.stdout + human.stderr

    plain = numlookup(tmp_path, clean_environment(tmp_path / "home"), "info", "--json")
    assert json.loads(plain.stdout)["config_file"] is None
    assert json.loads(plain.stdout)["database"]["exists"] is False
    assert not (tmp_path / "home").exists()  # info creates nothing


def test_serve_logs_the_settings_once_at_start_and_no_secret(data_dir: Path, tmp_path: Path) -> None:
    env = {
        "NUMLOOKUP_LOG_FORMAT": "json",
        "NUMLOOKUP_ADMIN_TOKEN": "admin-secret",
        "NUMLOOKUP_UPSTREAMS": json.dumps(
            {"ee": {"url": "http://127.0.0.1:9/v1", "username": "u", "password": "upstream-secret"}}
        ),
        "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "cc:372", "source": "ee"}]),
        "NUMLOOKUP_PRICE_CACHE": "0.005",
    }
    expected = cli_json(data_dir, "info", env=env)
    server = Server(data_dir, env=env, workers=2).start(timeout=120)  # two workers: still one line
    server.stop()
    log = server.log_path.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    starts = [r for r in records if r["message"].startswith("starting numlookup: ")]
    assert len(starts) == 1, log
    [start] = starts
    expected["listen"] = {"host": "127.0.0.1", "port": server.port, "workers": 2}
    expected["database"]["exists"] = True if expected["database"]["exists"] is not None else None
    assert start["settings"] == expected
    assert start["level"] == "info" and start["logger"] == "numlookup.serve"
    assert f"data_dir={data_dir} " in start["message"] and "live_routes=cc:372>upstream:ee " in start["message"]
    assert f"listen=127.0.0.1:{server.port} workers=2 admin_api=on" in start["message"]
    for secret in SECRETS:
        assert secret not in log


def test_piped_tables_are_neither_wrapped_nor_cut(data_dir: Path, engine: Engine) -> None:
    networks = [f"2001:db8:{i:x}::/48" for i in range(1, 40)]
    create_account(engine, "a-customer-with-a-long-name-" + "x" * 60, allow=networks)
    listed = run_cli(data_dir, "accounts", "list").stdout
    rows = [line for line in listed.splitlines() if "a-customer-with-a-long-name-" in line]
    assert len(rows) == 1 and ", ".join(networks) in rows[0]  # one row, one line, every network
    note = "paid by invoice 2026-001 " * 20
    run_cli(data_dir, "credits", "add", "a-customer-with-a-long-name-" + "x" * 60, "1", "--note", note.strip())
    shown = run_cli(data_dir, "credits", "show", "a-customer-with-a-long-name-" + "x" * 60).stdout
    assert any(note.strip() in line for line in shown.splitlines())
