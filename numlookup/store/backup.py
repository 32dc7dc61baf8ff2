"""Online, consistent copies of the database, for ``numlookup db backup``.

The money is in the database (balances in ``accounts``, every movement in
``ledger``), and a backup is only worth keeping if balances and ledger agree in
it. Both backends copy one snapshot while the nodes keep serving and charging:

- SQLite: the backup API (``sqlite3.Connection.backup``) in a single step, i.e.
  one read transaction. In WAL mode that reader does not hold up the writers;
  it sees the database as of its start, so a charge is in the copy whole or not
  at all. The copy is a self-contained file (rollback journal, no ``-wal``).
- PostgreSQL: ``pg_dump`` (custom format), which dumps in one ``REPEATABLE READ``
  transaction. The password goes to it through ``PGPASSWORD``, never on its
  command line, where every user of the machine could read it.

The copy is written beside the target under a temporary name (mode 0600: it
holds the API secrets' hashes), flushed to disk, checked and only then renamed
to the target, so the target is either missing or a whole copy. An existing
target is replaced only when asked (``force``), and never when it is the live
database itself.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

from numlookup.store.engine import sqlite_file

# pg_dump's custom format: compressed, and pg_restore can pick tables from it.
PG_DUMP_ARGS = ("--format=custom", "--no-password")


class BackupError(Exception):
    """A backup that cannot be made; the message says why, for the person at the terminal."""


@dataclass(frozen=True)
class Backup:
    """What ``backup_database`` wrote."""

    path: Path
    size: int  # bytes
    backend: str  # "sqlite" or "postgresql"
    revision: str | None  # the schema revision in the copy (SQLite; None where it is not read back)


def backup_database(database_url: str, target: Path, *, force: bool = False) -> Backup:
    """Write a consistent copy of the database at ``database_url`` to ``target``."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = sqlite_file(url)
        if database is None:
            raise BackupError("the database is in memory: there is no file to back up")
        source = Path(database)
        _check_target(target, force, live=source)
        return _backup_sqlite(source, target, force)
    if backend == "postgresql":
        _check_target(target, force, live=None)
        return _backup_postgresql(database_url, target, force)
    raise BackupError(f"cannot back up a {backend} database: numlookup backs up SQLite and PostgreSQL")


def _check_target(target: Path, force: bool, live: Path | None) -> None:
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give the backup's file name")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")
    if live is not None:
        for path in (live, Path(f"{live}-wal"), Path(f"{live}-shm")):
            if target.exists() and path.exists() and os.path.samefile(target, path):
                raise BackupError(f"{target} is the live database: a backup must go to another file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: pass --force to replace it")


def _temporary(target: Path) -> Path:
    """A new, empty file beside ``target`` (same file system, so the rename is atomic), mode 0600."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    return Path(name)


def _install(partial: Path, target: Path, force: bool) -> int:
    """Flush ``partial`` to disk and rename it to ``target``; returns its size.

    Without ``force`` the new name is made with ``link``, which fails if a file
    took ``target`` since it was checked, rather than replacing that file.
    """
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if force:
        os.replace(partial, target)
    else:
        try:
            os.link(partial, target)
        except FileExistsError:
            raise BackupError(f"{target} exists: pass --force to replace it") from None
        partial.unlink()
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power loss
    finally:
        os.close(directory)
    return target.stat().st_size


def _backup_sqlite(source: Path, target: Path, force: bool) -> Backup:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source} (is data_dir or NUMLOOKUP_DATA_DIR right?)")
    partial = _temporary(target)
    try:
        # mode=rw: never create an empty database where the real one was expected.
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=30)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # pages=-1: every page in one step, one read transaction
                # The copy keeps the source's WAL flag; a rollback journal makes it one
                # self-contained file that needs no -wal or -shm beside it.
                dst.execute("PRAGMA journal_mode=DELETE")
                problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
                if problems != ["ok"]:
                    raise BackupError(f"the copy of {source} fails SQLite's integrity check: {'; '.join(problems)}")
                revision = _sqlite_revision(dst, source)
            finally:
                dst.close()
        finally:
            src.close()
        size = _install(partial, target, force)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=target, size=size, backend="sqlite", revision=revision)


def _sqlite_revision(copy: sqlite3.Connection, source: Path) -> str:
    try:
        row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None:
        raise BackupError(f"{source} holds no numlookup schema (run `numlookup db upgrade` to create it)")
    return str(row[0])


def _backup_postgresql(database_url: str, target: Path, force: bool) -> Backup:
    binary = shutil.which("pg_dump")
    url = make_url(database_url)
    # libpq's own URL: no SQLAlchemy driver name, and no password.
    libpq_url = URL.create(
        "postgresql", username=url.username, host=url.host, port=url.port, database=url.database, query=url.query
    ).render_as_string(hide_password=False)
    if binary is None:
        raise BackupError(
            "pg_dump is not on PATH: install PostgreSQL's client programs (Debian: postgresql-client), "
            f"or run it yourself: pg_dump --format=custom --file={target} '{libpq_url}'"
        )
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    partial = _temporary(target)
    try:
        done = subprocess.run(
            [binary, *PG_DUMP_ARGS, f"--file={partial}", f"--dbname={libpq_url}"],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            # Its message on one line (libpq adds indented hints below the error).
            reason = " ".join(done.stderr.split()).removeprefix("pg_dump: error: ")
            raise BackupError(f"pg_dump failed: {reason or f'exit status {done.returncode}'}")
        size = _install(partial, target, force)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=target, size=size, backend="postgresql", revision=None)
