"""``numlookup db backup``'s refusals: one ``error:`` line, exit status 1, nothing overwritten."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine

from numlookup.accounts import create_account
from numlookup.billing import parse_amount
from numlookup.store.backup import BackupError, backup_database
from tests.support import BACKEND, free_port, run_cli


def error_line(stderr: str) -> str:
    """The one line a refusal prints, however long its paths."""
    assert stderr.startswith("error: ") and stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    return stderr.rstrip("\n")


def balances(backup: Path) -> list[tuple[str, int]]:
    """The accounts in a SQLite copy (a PostgreSQL dump is read back by tests/e2e/test_backup.py)."""
    with closing(sqlite3.connect(backup)) as conn:
        return [(str(name), int(balance)) for name, balance in conn.execute("SELECT name, balance FROM accounts")]


def test_an_existing_file_is_replaced_only_with_force(data_dir: Path, engine: Engine, tmp_path: Path) -> None:
    create_account(engine, "first", credits=parse_amount("2"))
    target = tmp_path / "numlookup.backup"
    made = json.loads(run_cli(data_dir, "db", "backup", str(target), "--json").stdout)
    assert made["path"] == str(target) and made["bytes"] == target.stat().st_size > 0
    assert made["backend"] == BACKEND
    first = target.read_bytes()

    create_account(engine, "second", credits=parse_amount("3"))
    refused = run_cli(data_dir, "db", "backup", str(target), check=False)
    assert refused.returncode == 1
    assert error_line(refused.stderr) == f"error: {target} exists: pass --force to replace it"
    assert target.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []

    run_cli(data_dir, "db", "backup", str(target), "--force")
    assert target.read_bytes() != first
    if BACKEND == "sqlite":
        assert balances(target) == [("first", 2_000_000), ("second", 3_000_000)]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing/backup.db", "error: directory {tmp}/missing does not exist"),
        (".", "error: {tmp} is a directory: give the backup's file name"),
    ],
)
def test_a_target_that_cannot_be_written_is_a_clear_error(
    data_dir: Path, engine: Engine, tmp_path: Path, where: str, message: str
) -> None:
    result = run_cli(data_dir, "db", "backup", str(tmp_path / where), check=False)
    assert result.returncode == 1
    assert error_line(result.stderr) == message.format(tmp=tmp_path)


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite files: the PostgreSQL run has no database file")
def test_sqlite_refuses_the_live_database_and_a_missing_one(data_dir: Path, engine: Engine, tmp_path: Path) -> None:
    create_account(engine, "kept", credits=parse_amount("1"))
    live = data_dir / "numlookup.db"
    for target in (live, Path(f"{live}-wal")):
        result = run_cli(data_dir, "db", "backup", str(target), "--force", check=False)
        assert result.returncode == 1
        assert "is the live database" in error_line(result.stderr)
    assert balances(live) == [("kept", 1_000_000)]

    elsewhere = tmp_path / "empty-data-dir"
    result = run_cli(elsewhere, "db", "backup", str(tmp_path / "copy.db"), check=False)
    assert result.returncode == 1
    assert error_line(result.stderr).startswith(f"error: no SQLite database at {elsewhere / 'numlookup.db'}")
    assert not (elsewhere / "numlookup.db").exists(), "a backup must not create the database it looks for"


def test_pg_dump_failures_and_absence_name_the_cause_and_never_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real pg_dump against a port nobody listens on; then no pg_dump on PATH at all."""
    url = f"postgresql+psycopg://numlookup:not-this-S3cret@127.0.0.1:{free_port()}/numlookup"
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed (Debian: postgresql-client; scripts/ensure-postgres.sh installs it)")
    with pytest.raises(BackupError) as failed:
        backup_database(url, tmp_path / "x.dump")
    assert str(failed.value).startswith("pg_dump failed: connection to server at ")
    assert "\n" not in str(failed.value)
    assert "not-this-S3cret" not in str(failed.value)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a partial file is left

    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    with pytest.raises(BackupError) as missing:
        backup_database(url, tmp_path / "x.dump")
    assert str(missing.value).startswith("pg_dump is not on PATH: install PostgreSQL's client programs")
    assert f"pg_dump --format=custom --file={tmp_path / 'x.dump'} 'postgresql://numlookup@127.0.0.1:" in str(
        missing.value
    )
    assert "not-this-S3cret" not in str(missing.value)


def test_other_databases_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="cannot back up a mysql database"):
        backup_database("mysql://user@localhost/numlookup", tmp_path / "x")
    with pytest.raises(BackupError, match="in memory"):
        backup_database("sqlite://", tmp_path / "x")
