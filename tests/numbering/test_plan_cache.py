"""The memory-mapped plan cache: used when whole, rebuilt when stale or damaged, never answering wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import phonenumbers
import pytest

from numlookup.numbering import plan_cache
from numlookup.numbering.layout import FORMAT_VERSION
from numlookup.numbering.plan import NumberingPlan

SAMPLE = ["+37251234567", "+4915112345678", "+447712345678", "+80012345678", "+12025550123", "12345"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object]]:
    cache_dir = tmp_path_factory.mktemp("plan-cache")
    plan = NumberingPlan.load(cache_dir)
    result = plan.resolve_e164(SAMPLE)
    return cache_dir, [result.row(i) for i in range(len(SAMPLE))]


def _copy(source: Path, target: Path) -> Path:
    folder = target / NumberingPlan.cache_name()
    folder.mkdir(parents=True)
    for entry in (source / NumberingPlan.cache_name()).iterdir():
        (folder / entry.name).write_bytes(entry.read_bytes())
    return folder


def _answers(plan: NumberingPlan) -> list[object]:
    result = plan.resolve_e164(SAMPLE)
    return [result.row(i) for i in range(len(SAMPLE))]


def test_warm_cache_is_memory_mapped(compiled: tuple[Path, list[object]]) -> None:
    cache_dir, expected = compiled
    plan = NumberingPlan.load(cache_dir)
    assert isinstance(plan.main_starts, np.memmap) and not plan.main_starts.flags.writeable
    assert _answers(plan) == expected


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest", "no-manifest"])
def test_damaged_cache_is_rebuilt_not_used(compiled: tuple[Path, list[object]], tmp_path: Path, damage: str) -> None:
    cache_dir, expected = compiled
    folder = _copy(cache_dir, tmp_path)
    target = folder / "carrier_entry.npy"  # a flipped byte here would name the wrong carrier
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[-1] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "delete":
        target.unlink()
    elif damage == "manifest":
        (folder / plan_cache.MANIFEST).write_text("{not json")
    else:
        (folder / plan_cache.MANIFEST).unlink()
    assert plan_cache.read(folder, phonenumbers.__version__) is None
    plan = NumberingPlan.load(tmp_path)
    assert _answers(plan) == expected
    assert plan_cache.read(folder, phonenumbers.__version__) is not None  # replaced by a whole one
    assert [e.name for e in tmp_path.iterdir()] == [folder.name]  # nothing left beside it


def test_stale_cache_is_rebuilt_and_older_ones_removed(compiled: tuple[Path, list[object]], tmp_path: Path) -> None:
    cache_dir, expected = compiled
    folder = _copy(cache_dir, tmp_path)
    manifest = json.loads((folder / plan_cache.MANIFEST).read_text())
    manifest["phonenumbers"] = "0.0.1"  # compiled by another phonenumbers release
    (folder / plan_cache.MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "numbering-plan-v2-phonenumbers-8.0.0.npz").write_bytes(b"an older release's cache")
    assert plan_cache.read(folder, phonenumbers.__version__) is None
    plan = NumberingPlan.load(tmp_path)
    assert _answers(plan) == expected
    assert plan_cache.read(folder, phonenumbers.__version__) is not None
    assert [e.name for e in tmp_path.iterdir()] == [folder.name]


def test_a_cache_of_an_older_format_is_rebuilt_not_misread(compiled: tuple[Path, list[object]], tmp_path: Path) -> None:
    """Keys changed meaning between formats (v3 keyed 15 digits, v4 keys 17): an older cache must never answer.

    Its manifest's format alone refuses it, even under the current folder name,
    and an older format's folder beside it is removed once the new one is written.
    """
    cache_dir, expected = compiled
    folder = _copy(cache_dir, tmp_path)
    manifest = json.loads((folder / plan_cache.MANIFEST).read_text())
    manifest["format"] = FORMAT_VERSION - 1
    (folder / plan_cache.MANIFEST).write_text(json.dumps(manifest))
    older = tmp_path / f"{plan_cache.PREFIX}{FORMAT_VERSION - 1}-phonenumbers-{phonenumbers.__version__}"
    older.mkdir()
    (older / plan_cache.MANIFEST).write_text(json.dumps(manifest))
    assert plan_cache.read(folder, phonenumbers.__version__) is None
    plan = NumberingPlan.load(tmp_path)
    assert _answers(plan) == expected
    assert plan_cache.read(folder, phonenumbers.__version__) is not None
    assert [e.name for e in tmp_path.iterdir()] == [folder.name]
