"""Dataset copies in the database: stored whole, fetched whole, and refused when damaged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from numlookup.datasets import catalog, distribution
from numlookup.datasets.importer import import_dataset
from numlookup.datasets.sources import records
from numlookup.store.tables import dataset_files


def imported(engine: Engine, data_dir: Path, rows: int) -> catalog.DatasetVersion:
    lines = "".join(f"3725{i:07d},24802\n" for i in range(rows)).encode()
    report = import_dataset(
        engine, data_dir, "ported", records("ported", "csv", io.BytesIO(lines)), source="test", fmt="csv", publish=True
    )
    return report.version


def test_a_fetched_copy_equals_the_original(
    engine: Engine, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks so that the files span several rows, as large tables do.
    monkeypatch.setattr(distribution, "CHUNK_BYTES", 4096)
    version = imported(engine, data_dir, 5000)
    with engine.connect() as conn:
        chunks = conn.execute(
            select(dataset_files.c.name, dataset_files.c.chunk).where(dataset_files.c.path == version.path)
        ).all()
    assert max(chunk for _, chunk in chunks) >= 9  # keys.npy: 5,000 × 8 bytes in 4 KiB rows
    other = tmp_path / "other-node"
    folder = distribution.ensure_local(engine, other, version)
    original = catalog.dataset_folder(data_dir, version)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in original.iterdir())
    for path in original.iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind


def test_a_damaged_copy_is_refused_and_leaves_nothing(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    version = imported(engine, data_dir, 100)
    with engine.begin() as conn:
        row = conn.execute(
            select(dataset_files.c.id, dataset_files.c.data).where(
                dataset_files.c.path == version.path, dataset_files.c.name == "keys.npy"
            )
        ).first()
        assert row is not None
        damaged = bytes(row.data[:-1]) + bytes([row.data[-1] ^ 0xFF])
        conn.execute(update(dataset_files).where(dataset_files.c.id == row.id).values(data=damaged))
    other = tmp_path / "other-node"
    with pytest.raises(distribution.MissingDataset, match="damaged"):
        distribution.ensure_local(engine, other, version)
    assert not catalog.dataset_folder(other, version).exists()
    assert list(catalog.dataset_folder(other, version).parent.iterdir()) == []
