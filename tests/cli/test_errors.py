"""Every command, given a bad value of each kind it takes, fails with one ``error:`` line and changes nothing.

(``test_commands.py``'s mistakes test holds a few more: bad credits, an existing
name, a network already listed or not listed, unknown styles.)

A person who mistypes a CIDR, an amount or a region gets one line saying what
is wrong and a non-zero status, never a traceback; the database is as it was.
Real processes (``python -m numlookup``) on a real database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from numlookup.accounts import create_account, list_accounts
from numlookup.billing import ledger_rows, parse_amount
from numlookup.datasets import catalog
from numlookup.store import make_engine, upgrade
from tests.support import BACKEND, database_url, run_cli

# Files the cases name, written once into the module's folder (see ``place``).
FILES = {
    "bad.toml": "max_numbers_per_request = \n",
    "wrong.toml": 'max_numbers_per_request = "lots"\n',
    "ranges.csv": "37251,24801\n",
    "ported.csv": "37251000001,24802\n",
    "bad-ranges.csv": "37251,24801\n37256,2480X\n",
    "bad-ported.csv": "37251000001,24802\nnot-a-number,24802\n",
    "cr-ported.csv": "37251000001,24802\n3725\r1000002,24802\n",  # a CR inside a field: csv stops there
    "numbers.txt": "+37251000001\n",
}
MISSING = "no-such-file.csv"


@dataclass
class Place:
    folder: Path
    data_dir: Path
    engine: Engine

    def arguments(self, args: tuple[str, ...]) -> list[str]:
        """``@name`` becomes the path of ``name`` in the folder; everything else stays."""
        return [str(self.folder / a[1:]) if a.startswith("@") else a for a in args]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    folder = tmp_path_factory.mktemp("cli-errors")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    (folder / "a-folder").mkdir()
    data_dir = folder / "data"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    create_account(engine, "shop", credits=parse_amount("5"), allow=["0.0.0.0/0"])
    yield Place(folder, data_dir, engine)
    engine.dispose()


# Each command with arguments that work: the bad-config cases run every one of them.
COMMANDS: list[tuple[str, ...]] = [
    ("serve",),
    ("info",),
    ("db", "upgrade"),
    ("accounts", "create", "new"),
    ("accounts", "list"),
    ("accounts", "show", "shop"),
    ("accounts", "disable", "shop"),
    ("accounts", "enable", "shop"),
    ("accounts", "rotate-secret", "shop"),
    ("accounts", "allow-ip", "shop", "10.0.0.0/8"),
    ("accounts", "deny-ip", "shop", "0.0.0.0/0"),
    ("accounts", "set-price", "shop", "0.5"),
    ("accounts", "set-style", "shop", "onoff"),
    ("credits", "add", "shop", "1"),
    ("credits", "show", "shop"),
    ("lookup", "+37251000001"),
    ("lookup", "--input", "@numbers.txt"),
    ("data", "import-ranges", "@ranges.csv"),
    ("data", "import-ported", "@ported.csv"),
    ("data", "status"),
    ("data", "coverage", "--region", "EE"),
]

# (arguments, what stderr must say); ``@name`` is the path of ``name`` in the module's folder (see FILES).
CASES: list[tuple[tuple[str, ...], str]] = [
    # unreadable or invalid config files, for every command
    *((("--config", "@bad.toml", *c), "cannot read config file") for c in COMMANDS),
    (("--config", "@wrong.toml", "info"), "max_numbers_per_request"),
    (("--config", "@a-folder", "info"), "--config"),
    (("--config", "@" + MISSING, "accounts", "list"), "does not exist"),
    # serve
    (("serve", "--port", "70000"), "--port"),
    (("serve", "--workers", "0"), "--workers"),
    # accounts: bad amounts, CIDRs, styles, names; unknown accounts
    (("accounts", "create", "other", "--credits", "ten"), "'ten' is not a decimal number"),
    (("accounts", "create", "other", "--price", "1,5"), "not a decimal number"),
    (("accounts", "create", "other", "--allow-ip", "10.0.0.0/8", "--allow-ip", "10.1.2.3/8"), "host bits set"),
    (("accounts", "create", " "), "needs a name"),
    (("accounts", "show", "nobody"), "no account named 'nobody' in "),
    (("accounts", "disable", "nobody"), "no account named 'nobody' in "),
    (("accounts", "enable", "nobody"), "no account named 'nobody' in "),
    (("accounts", "rotate-secret", "nobody"), "no account named 'nobody' in "),
    (("accounts", "allow-ip", "shop", "10.0.0.0/40"), "not a network in CIDR notation"),
    (("accounts", "allow-ip", "shop", "nonsense"), "not a network in CIDR notation"),
    (("accounts", "allow-ip", "nobody", "10.0.0.0/8"), "no account named 'nobody' in "),
    (("accounts", "deny-ip", "shop", "::1/129"), "not a network in CIDR notation"),
    (("accounts", "deny-ip", "nobody", "0.0.0.0/0"), "no account named 'nobody' in "),
    (("accounts", "set-price", "shop", "cheap"), "not a decimal number"),
    (("accounts", "set-price", "nobody", "0.5"), "no account named 'nobody' in "),
    (("accounts", "set-style", "nobody", "onoff"), "no account named 'nobody' in "),
    # credits
    (("credits", "show", "nobody"), "no account named 'nobody' in "),
    (("credits", "show", "shop", "--last", "-1"), "--last"),
    # lookup: styles, regions, files, formats, columns
    (("lookup", "+37251000001", "--style", "loud"), "unknown status style"),
    (("lookup", "--input", "@numbers.txt", "--region", "XX"), "unknown region 'XX'"),
    (("lookup", "--input", "@" + MISSING), "No such file or directory"),
    (("lookup", "--input", "@numbers.txt", "--output", "@a-folder/missing/out.csv"), "No such file or directory"),
    (("lookup", "--input", "@numbers.txt", "--format", "xml"), "--format is csv or jsonl"),
    (("lookup", "--input", "@numbers.txt", "--column", "-1"), "--column"),
    (("lookup",), "give NUMBERS or --input FILE"),
    # data: files, formats, contents, maps, regions
    (("data", "import-ranges", "@" + MISSING), "does not exist"),
    (("data", "import-ranges", "@ranges.csv", "--format", "xlsx"), "unknown format 'xlsx'"),
    (("data", "import-ranges", "@bad-ranges.csv"), "line 2"),
    (("data", "import-ranges", "@ranges.csv", "--format", "kamailio"), "needs --carrier-map"),
    (("data", "import-ranges", "@ranges.csv", "--format", "arcep", "--operator-map", "@" + MISSING), "exist"),
    (("data", "import-ported", "@" + MISSING), "does not exist"),
    (("data", "import-ported", "@ported.csv", "--format", "xlsx"), "unknown format 'xlsx'"),
    (("data", "import-ported", "@bad-ported.csv"), "line 2"),
    (("data", "import-ported", "@cr-ported.csv"), "line 2: not readable as csv"),
    (("data", "coverage", "--region", "XX"), "unknown region 'XX'"),
    # settings from the environment (as every command reads them)
    (("info",), "NUMLOOKUP_PORT=eighty"),
    (("accounts", "list"), "NUMLOOKUP_DATA_DIR=relative/data"),
    (("db", "upgrade"), "NUMLOOKUP_DATABASE_URL=postgresql+psycopg://u:hunter2@127.0.0.1:1/x"),
]


def _environment(message: str) -> tuple[dict[str, str], str]:
    """A case whose "message" is ``NAME=value`` sets that variable and expects the error to name the setting."""
    if not message.startswith("NUMLOOKUP_"):
        return {}, message
    name, value = message.split("=", 1)
    expected = {
        "NUMLOOKUP_PORT": "port",
        "NUMLOOKUP_DATA_DIR": "NUMLOOKUP_DATA_DIR must be an absolute path",
        "NUMLOOKUP_DATABASE_URL": "cannot open the database postgresql+psycopg://u:***@127.0.0.1:1/x",
    }[name]
    return {name: value}, expected


def snapshot(engine: Engine) -> tuple[Any, ...]:
    """Everything a command could change: accounts (balances, allow-lists, styles), ledgers, dataset versions."""
    accounts = list_accounts(engine)
    return (accounts, [ledger_rows(engine, a.id, 1000) for a in accounts], catalog.all_versions(engine))


def assert_one_error_line(result: Any, expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(("args", "message"), CASES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_a_bad_value_is_one_error_line_and_changes_nothing(place: Place, args: tuple[str, ...], message: str) -> None:
    env, expected = _environment(message)
    named = place.arguments(args)
    before = snapshot(place.engine)
    result = run_cli(place.data_dir, *named, env=env, check=False)
    assert_one_error_line(result, expected)
    assert "hunter2" not in result.stdout + result.stderr
    assert snapshot(place.engine) == before


# Every command that opens the database, which none of them may create.
NEEDS_DATABASE: list[tuple[str, ...]] = [c for c in COMMANDS if c[0] in ("accounts", "credits", "lookup")] + [
    c for c in COMMANDS if c[:2] in (("data", "import-ranges"), ("data", "import-ported"), ("data", "status"))
]


@pytest.mark.parametrize("args", NEEDS_DATABASE, ids=" ".join)
def test_a_missing_database_is_one_error_line_naming_it_and_nothing_is_created(
    place: Place, tmp_path: Path, args: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "nowhere" / "data"
    named = place.arguments(args)
    if BACKEND == "sqlite":
        env: dict[str, str] = {}
        expected = f"error: no database at {data_dir / 'numlookup.db'} (sqlite); start the server or run "
    else:  # a PostgreSQL database without numlookup's tables
        env = {"NUMLOOKUP_DATABASE_URL": database_url(tmp_path / "empty", migrated=False)}
        expected = "error: no numlookup database in postgresql+psycopg://"
    result = run_cli(data_dir, *named, env=env, check=False)
    assert_one_error_line(result, expected)
    assert "`numlookup db upgrade` first" in result.stderr
    assert not (tmp_path / "nowhere").exists()
