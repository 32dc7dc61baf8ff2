"""``numlookup db downgrade REVISION``: the rollback of docs/deploying.md keeps every account and ledger row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, select

from numlookup.store import shown_url
from numlookup.store.migrate import current_revision, head_revision, older_revisions
from numlookup.store.tables import accounts, allowed_networks, ledger
from tests.support import cli_json, run_cli

MONEY = {"accounts", "ledger", "allowed_networks"}


def money(engine: Engine) -> list[list[dict[str, Any]]]:
    """Every row of the money tables, in the columns the database has now (a downgrade may drop a newer one)."""
    engine.dispose()  # the schema may have changed under the pool's connections
    inspector = inspect(engine)
    with engine.connect() as conn:
        found = []
        for table in (accounts, allowed_networks, ledger):
            present = {column["name"] for column in inspector.get_columns(table.name)}
            columns = [column for column in table.c if column.name in present]
            found.append([dict(r._mapping) for r in conn.execute(select(*columns).order_by(*table.primary_key))])
        return found


def kept(now: list[list[dict[str, Any]]], before: list[list[dict[str, Any]]]) -> bool:
    """Every row is still there with the same values, in the columns that are still there."""
    pairs = zip(now, before, strict=True)
    return now == [[{key: old[key] for key in new} for new, old in zip(n, b, strict=True)] for n, b in pairs]


def tables(engine: Engine) -> set[str]:
    engine.dispose()  # the schema changed under the pool's connections
    return set(inspect(engine).get_table_names())


def test_a_downgrade_undoes_the_newest_migration_and_keeps_the_money(data_dir: Path, engine: Engine) -> None:
    cli_json(data_dir, "accounts", "create", "kept", "--credits", "12.5", "--allow-ip", "192.0.2.0/24")
    cli_json(data_dir, "credits", "add", "kept", "0.000001", "--note", "before the rollback")
    head = head_revision()
    previous = older_revisions(engine)[1]  # the revision below the newest
    before_money, before_tables = money(engine), tables(engine)

    done = run_cli(data_dir, "db", "downgrade", previous)
    assert done.stdout.strip() == f"database {shown_url(engine)} at revision {previous}"
    assert current_revision(engine) == previous
    dropped = before_tables - tables(engine)
    assert dropped and not dropped & MONEY, dropped
    assert kept(money(engine), before_money)

    # Forward again, as the newer version's nodes would need.
    assert run_cli(data_dir, "db", "upgrade").stdout.strip() == f"database {shown_url(engine)} at revision {head}"
    assert tables(engine) == before_tables
    assert money(engine) == before_money


def test_only_the_revisions_below_the_database_are_accepted(data_dir: Path, engine: Engine) -> None:
    cli_json(data_dir, "accounts", "create", "kept", "--credits", "1")
    choices = older_revisions(engine)
    assert choices[0] == current_revision(engine) and len(choices) == len(set(choices)) > 1
    for wrong in ("base", "0000", "no-such-revision"):
        result = run_cli(data_dir, "db", "downgrade", wrong, check=False)
        assert result.returncode == 1
        assert result.stderr == (
            f"error: cannot go back to revision {wrong!r}: the database is at {choices[0]}, "
            f"and can go back to {', '.join(choices)}\n"
        )
    assert current_revision(engine) == choices[0]
    assert len(money(engine)[0]) == 1
