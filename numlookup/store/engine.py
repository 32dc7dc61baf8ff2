"""The database engine, tuned per backend.

SQLite is the embedded default and is shared by several worker processes, so it
runs in WAL mode with a busy timeout, and write transactions take the write lock
up front (``BEGIN IMMEDIATE``) instead of upgrading a read lock half-way, which
SQLite refuses without waiting when another process committed in between.

Only the server and ``numlookup db upgrade`` create a database: every other
caller opens the engine with ``create=False``, which refuses a SQLite file that
does not exist instead of letting SQLite create an empty one, so an admin
command pointed at the wrong folder fails instead of writing to a database the
server never reads. A file this module creates is private to its owner (0600);
SQLite gives its ``-wal`` and ``-shm`` files the database's own permissions.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

_IMMEDIATE = "numlookup_immediate"
# One writer at a time per database file, across threads and processes. Writers
# that queue on these locks wake the moment the lock is free; writers left to
# SQLite's busy handler poll with sleeps of up to 100 ms, which turned into
# multi-second tail latencies under load.
_SQLITE_WRITER = threading.Lock()
_LOCK_FILES: dict[str, int] = {}
_READ_ONLY = "numlookup_read_only"  # in a pooled connection's info: SQLite opened the file read-only


def _lock_file(database: str) -> int:
    """A descriptor of ``<database>.writer.lock``, opened once per process, for ``flock``."""
    fd = _LOCK_FILES.get(database)
    if fd is None:
        fd = _LOCK_FILES[database] = os.open(database + ".writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    return fd


def _create_file(database: str) -> None:
    """The database file (an empty file is an empty SQLite database) and its folder, if missing; the file 0600."""
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _writable(database: str) -> bool:
    """Whether SQLite may open the file read-write (a file still to be created counts as writable)."""
    return os.access(database, os.W_OK) or not os.path.exists(database)


class NoDatabase(LookupError):
    """The SQLite file an engine was asked to open without creating it does not exist."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no database at {path} (sqlite)")
        self.path = path


def shown_url(engine: Engine) -> str:
    """The engine's URL with its password masked: how errors and output name a database."""
    return engine.url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; None for an in-memory database or another backend.

    Why one place: only a file can be locked across processes, backed up, or
    opened again by another process (the ledger writer); ``:memory:`` is a
    database of one connection's own.
    """
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", create: bool = True) -> Engine:
    """An engine for ``url``.

    SQLite: with ``create`` a missing file is created (and its folder), mode 0600;
    without it a missing file raises :class:`NoDatabase` and nothing is created.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)

    database = sqlite_file(parsed)
    if database is not None:
        if create:
            _create_file(database)
        elif not os.path.exists(database):
            raise NoDatabase(database)
    # Enough pooled connections for every thread of the threadpool: an overflow
    # connection is closed when returned, and opening one (with its PRAGMAs) cost
    # 14% of a worker's time under load. Last in, first out: SQLite drops a
    # connection's page cache whenever another connection wrote since its last
    # transaction, so the group commit, handed the connection it just committed
    # on, finds the ledger's pages still cached instead of reading them again
    # (first in, first out rotated the commits over every pooled connection).
    engine = create_engine(
        url,
        pool_size=64,
        max_overflow=64,
        pool_use_lifo=True,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        record.info[_READ_ONLY] = database is not None and not _writable(database)

    if database is not None:

        @event.listens_for(engine, "checkout")
        def _on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            # SQLite opens a file it may not write read-only, and such a connection
            # fails every write for as long as it lives in the pool, even after the
            # file is fixed. Once the file is writable, the pool replaces it.
            if record.info.get(_READ_ONLY) and _writable(database):
                raise exc.DisconnectionError("the SQLite database file is writable again")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        driver = connection.connection.driver_connection
        if driver is not None and driver.in_transaction:
            return  # a driver transaction's own (``driver_transaction``), begun IMMEDIATE by it
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def one_writer(engine: Engine) -> Iterator[None]:
    """On SQLite, this process's turn to write the file (a thread lock, then ``flock``); elsewhere nothing."""
    if engine.dialect.name != "sqlite":
        yield
        return
    database = sqlite_file(engine.url)
    with _SQLITE_WRITER:
        fd = _lock_file(database) if database is not None else None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its start."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with one_writer(engine), engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, conn.begin():
        yield conn


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[tuple[Connection, Any]]:
    """A write transaction begun and committed on the DB-API connection itself: (its Connection, a driver cursor).

    Why: the group commit's transaction runs a handful of statements, and
    SQLAlchemy's own ``BEGIN`` and ``COMMIT`` (the Transaction object, the begin
    event's ``exec_driver_sql``, the commit's events) cost more of the charges'
    thread, with the event loop's GIL held, than the statements did. Here the
    driver begins (``BEGIN IMMEDIATE`` on SQLite; psycopg begins at the first
    statement) and commits; the statements go through the cursor. Statements
    run through the ``Connection`` (the charge's attachments) join the same
    transaction: SQLAlchemy begins its own on the open one (the begin event
    sends no ``BEGIN`` then) and commits it, the driver's, at the end. An error,
    of a statement or of the commit, rolls the whole transaction back.
    """
    with one_writer(engine), engine.connect() as conn, driver_transaction_on(engine, conn) as opened:
        yield opened


@contextmanager
def driver_transaction_on(engine: Engine, conn: Connection) -> Iterator[tuple[Connection, Any]]:
    """:func:`driver_transaction` on a connection the caller holds, and under the write locks it holds.

    For the ledger writer process (``billing.ledger_writer``), which keeps one
    connection for all its transactions. The connection stays open afterwards.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        yield conn, cursor
        if conn.in_transaction():
            conn.commit()
        else:
            driver.commit()
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        else:
            driver.rollback()
        raise
    finally:
        cursor.close()
