"""Copies of compiled dataset versions in the database, for nodes that do not share a data directory.

Why: nodes on a shared PostgreSQL usually each have a local disk. An import
compiles a version into the importing machine's data directory; the catalogue
row then tells every node to serve it, and a node without the files could not.
So an import also stores the compiled files in the database (``publish``), in
chunks, before it activates the version. A node that lacks a version's folder
(at start, or when its follower sees a new version) fetches the copy into its
own data directory, checks each file's size and SHA-256, and maps it like its
own (``ensure_local``). Pruning an old version deletes its copy too.

The folder appears only complete: it is written under a name of its own,
synced, and renamed into place. Several worker processes of one node may fetch
the same version at once; the first rename wins and the others drop their copy.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, delete, insert, select

from numlookup.datasets import catalog
from numlookup.datasets.durable import sync_dir, sync_files
from numlookup.store.engine import write_transaction
from numlookup.store.tables import dataset_files

# Bytes per row: small enough for any driver's buffers, large enough that a
# 1 GB ported-number table is ~128 rows.
CHUNK_BYTES = 8 << 20


class MissingDataset(RuntimeError):
    """A version is active but neither this node's data directory nor the database holds its files."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def publish(engine: Engine, data_dir: Path, relative: str) -> int:
    """Store every file of the version folder ``relative`` in the database; returns bytes stored."""
    folder = data_dir / relative
    stored = 0
    with write_transaction(engine) as conn:
        conn.execute(delete(dataset_files).where(dataset_files.c.path == relative))  # a retried publish
        for path in sorted(folder.iterdir()):
            size, sha256 = path.stat().st_size, _sha256(path)
            with path.open("rb") as fh:
                chunk = 0
                while True:
                    data = fh.read(CHUNK_BYTES)
                    if not data and chunk > 0:
                        break
                    conn.execute(
                        insert(dataset_files).values(
                            path=relative, name=path.name, chunk=chunk, size=size, sha256=sha256, data=data
                        )
                    )
                    stored += len(data)
                    chunk += 1
                    if len(data) < CHUNK_BYTES:
                        break
    return stored


def fetch(engine: Engine, data_dir: Path, relative: str) -> Path:
    """Write the database's copy of ``relative`` into ``data_dir``; returns the folder."""
    folder = data_dir / relative
    staging = folder.with_name(f"{folder.name}.fetch-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        with engine.connect() as conn:
            index = conn.execute(
                select(dataset_files.c.id, dataset_files.c.name, dataset_files.c.size, dataset_files.c.sha256)
                .where(dataset_files.c.path == relative)
                .order_by(dataset_files.c.name, dataset_files.c.chunk)
            ).all()
            if not index:
                raise MissingDataset(f"the database holds no copy of {relative}")
            expected: dict[str, tuple[int, str]] = {}
            for row in index:  # one chunk in memory at a time
                expected[row.name] = (row.size, row.sha256)
                data = conn.execute(select(dataset_files.c.data).where(dataset_files.c.id == row.id)).scalar_one()
                with (staging / row.name).open("ab") as fh:
                    fh.write(data)
        for name, (size, sha256) in expected.items():
            path = staging / name
            if path.stat().st_size != size or _sha256(path) != sha256:
                raise MissingDataset(f"the database's copy of {relative}/{name} is damaged (size or SHA-256 differ)")
        sync_files(staging.iterdir())
        try:
            staging.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another worker of this node was first
        sync_dir(folder.parent)
        return folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def ensure_local(engine: Engine, data_dir: Path, version: catalog.DatasetVersion) -> Path:
    """The version's folder in ``data_dir``, fetched from the database first if it is not there."""
    folder = catalog.dataset_folder(data_dir, version)
    if folder.is_dir():
        return folder
    try:
        return fetch(engine, data_dir, version.path)
    except MissingDataset as exc:
        raise MissingDataset(
            f"{version.kind} version {version.version} is active but its files are not in {folder}, and {exc}. "
            'Import with dataset_distribution = "database" (the default on PostgreSQL), or share the data directory.'
        ) from None


def discard(engine: Engine, relatives: Iterable[str]) -> None:
    paths = list(relatives)
    if paths:
        with write_transaction(engine) as conn:
            conn.execute(delete(dataset_files).where(dataset_files.c.path.in_(paths)))
