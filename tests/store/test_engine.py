"""The engine's pool and its driver transaction, against a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from numlookup.store.engine import driver_transaction, make_engine, sqlite_file, write_transaction


def test_the_pool_hands_out_the_connection_returned_last(tmp_path: Path) -> None:
    """Last in, first out: the next write gets the connection that wrote last, its page cache still valid."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    first, second = engine.connect(), engine.connect()  # two pooled connections
    older, newer = first.connection.driver_connection, second.connection.driver_connection
    first.close()
    second.close()
    with write_transaction(engine) as conn:
        assert conn.connection.driver_connection is newer
    with driver_transaction(engine) as (conn, _cursor):
        assert conn.connection.driver_connection is newer
    assert older is not newer
    engine.dispose()


def test_a_driver_transaction_is_one_transaction_with_its_connections_statements(tmp_path: Path) -> None:
    """Statements on the cursor and through SQLAlchemy commit together, or roll back together."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")

    def values() -> list[int]:
        with engine.connect() as conn:
            return [int(v) for (v,) in conn.execute(text("SELECT v FROM t ORDER BY v"))]

    with driver_transaction(engine) as (conn, cursor):
        cursor.execute("INSERT INTO t VALUES (1)")
        conn.execute(text("INSERT INTO t VALUES (2)"))  # joins the driver's transaction
        cursor.execute("INSERT INTO t VALUES (3)")
    assert values() == [1, 2, 3]

    with pytest.raises(RuntimeError), driver_transaction(engine) as (conn, cursor):
        cursor.execute("INSERT INTO t VALUES (4)")
        conn.execute(text("INSERT INTO t VALUES (5)"))
        raise RuntimeError("after both statements")
    with pytest.raises(RuntimeError), driver_transaction(engine) as (conn, cursor):
        cursor.execute("INSERT INTO t VALUES (6)")  # the driver's statements alone
        raise RuntimeError("after the cursor's statement")
    assert values() == [1, 2, 3]
    with driver_transaction(engine) as (conn, cursor):  # the pooled connection came back clean
        cursor.execute("INSERT INTO t VALUES (7)")
    assert values() == [1, 2, 3, 7]
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/numlookup/numlookup.db", "/srv/numlookup/numlookup.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u:p@localhost/numlookup", None),
    ],
)
def test_sqlite_file_is_the_file_a_sqlite_url_names(url: str, expected: str | None) -> None:
    """Only a file can be locked by another process or backed up; an in-memory database has none."""
    assert sqlite_file(make_url(url)) == expected
