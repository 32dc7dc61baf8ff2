"""``numlookup db backup`` while a server is charging, and a server started on the restored copy.

The copy is taken mid-load, so it holds some of the load's charges and not
others; it is consistent if every account's balance is still its ledger's sum
(README "Backups": that query returns no rows) and SQLite finds nothing wrong
with the file. On PostgreSQL the dump is restored with ``pg_restore`` into an
empty database of the test cluster.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from numlookup.accounts import create_account, get_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import accounts, ledger
from tests.e2e.ledger import LOAD_ENV, Load
from tests.support import BACKEND, Server, cluster, database_url, run_cli

# The README's consistency query: the accounts whose balance is not their ledger's sum.
INCONSISTENT = text(
    "SELECT a.name, a.balance, SUM(l.amount) AS ledger_sum "
    "FROM accounts a JOIN ledger l ON l.account_id = a.id "
    "GROUP BY a.id, a.name, a.balance HAVING a.balance <> SUM(l.amount)"
)


def lookups_charged(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger).where(ledger.c.kind == "lookup")).scalar_one())


def restore(backup: Path, data_dir: Path) -> str:
    """The backup put back as README says; returns the restored database's URL."""
    data_dir.mkdir(parents=True)
    if BACKEND == "sqlite":
        shutil.copyfile(backup, data_dir / "numlookup.db")
        return f"sqlite:///{data_dir / 'numlookup.db'}"
    url: str = cluster().create_database()  # an empty database
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    pg_restore = shutil.which("pg_restore")
    assert pg_restore, "pg_restore is installed with pg_dump"
    done = subprocess.run([pg_restore, "--exit-on-error", f"--dbname={libpq}", str(backup)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return url


def test_a_backup_taken_under_load_restores_to_a_consistent_database(tmp_path: Path) -> None:
    live_dir = tmp_path / "live"
    engine = make_engine(database_url(live_dir))
    upgrade(engine)
    busy = create_account(engine, "busy", credits=parse_amount("1000"))
    create_account(engine, "idle", credits=parse_amount("7.25"))
    server = Server(live_dir, env=LOAD_ENV).start()
    backup = tmp_path / "backups" / "numlookup.backup"
    backup.parent.mkdir()
    load = Load([server], busy, threads=4)
    try:
        deadline = time.monotonic() + 30
        while lookups_charged(engine) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = lookups_charged(engine)
        assert before >= 50, f"the load charged only {before} lookups: {load.outcomes}"
        made = run_cli(live_dir, "db", "backup", str(backup))
        after = lookups_charged(engine)
        # The load goes on after the backup, so the copy cannot hold its last charges.
        while lookups_charged(engine) < after + 50 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
    finally:
        load.stop()
        server.stop()
    final = lookups_charged(engine)
    assert set(load.outcomes) == {"200"}, f"the server refused requests during the backup: {load.outcomes}"
    assert str(backup) in made.stdout
    assert backup.stat().st_mode & 0o077 == 0, "the backup holds secret hashes: readable by its owner only"

    restored_dir = tmp_path / "restored"
    restored_url = restore(backup, restored_dir)
    restored = make_engine(restored_url)
    with restored.connect() as conn:
        assert conn.execute(INCONSISTENT).all() == []
        names = set(conn.execute(select(accounts.c.name)).scalars())
        if BACKEND == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalars().all() == ["ok"]
    assert names == {"busy", "idle"}
    copied = lookups_charged(restored)
    assert before <= copied <= after < final, (before, copied, after, final)
    assert get_account(restored, "idle").balance == parse_amount("7.25")
    for name in names:  # every account, including one without lookups
        account = get_account(restored, name)
        with restored.connect() as conn:
            total = conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.account_id == account.id))
            assert account.balance == total.scalar_one()

    # A server on the restored copy answers and charges the restored balance.
    balance = get_account(restored, "busy").balance
    node = Server(restored_dir, env={"NUMLOOKUP_DATABASE_URL": restored_url}).start()
    try:
        response = httpx.post(
            node.url + "/v1/hlr/sync",
            json={"numbers": ["+37251000001"]},
            auth=(busy.api_username, busy.api_password),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert httpx.get(node.url + "/readyz", timeout=10).status_code == 200
    finally:
        node.stop()
    assert get_account(restored, "busy").balance == balance - 10_000  # the default price, 0.01 credits
    with restored.connect() as conn:
        assert conn.execute(INCONSISTENT).all() == []
    restored.dispose()
    engine.dispose()


def test_the_sqlite_copy_is_one_self_contained_file(tmp_path: Path) -> None:
    """No -wal beside it is needed: the copy uses a rollback journal, whatever the live file uses."""
    if BACKEND != "sqlite":
        pytest.skip("a SQLite file's journal: the PostgreSQL run backs up with pg_dump")
    data_dir = tmp_path / "data"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    create_account(engine, "solo", credits=parse_amount("3"))
    backup = tmp_path / "copy.db"
    run_cli(data_dir, "db", "backup", str(backup))
    with closing(sqlite3.connect(backup)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("SELECT name, balance FROM accounts").fetchall() == [("solo", parse_amount("3"))]
    assert not Path(f"{backup}-wal").exists()
    engine.dispose()
