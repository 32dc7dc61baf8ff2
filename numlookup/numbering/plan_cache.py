"""The compiled plan on disk: a folder of ``.npy`` arrays, memory-mapped, and a manifest that vouches for them.

Why a folder of ``.npy`` rather than one ``.npz``: ``numpy.load`` maps a ``.npy``
(``mmap_mode="r"``) in well under a millisecond and the pages are shared by
every process on the machine (each server worker, each CLI run), where an
``.npz`` is unzipped and copied into every process, tens of milliseconds a
start. Mapped read-only, the arrays cannot be changed by accident either.

Why a manifest with digests: a cache is only an optimisation, so a damaged one
must never answer. ``manifest.json`` is written last and names the format
version, the phonenumbers version, and each file's BLAKE2b digest; a folder
whose manifest is missing, unreadable, of another version, or whose files do
not match their digests is not used (the caller compiles again and replaces
it). Checking 1.3 MB of digests costs about a millisecond.

A new folder is built beside the old under a temporary name and renamed into
place, so a reader sees a whole cache or none; a process that loses the race to
another writing the same cache uses the winner's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numlookup.numbering.layout import FORMAT_VERSION, Array

MANIFEST = "manifest.json"
PREFIX = "numbering-plan-v"


@dataclass(frozen=True, slots=True)
class CachedPlan:
    """What a cache folder holds: the arrays (memory-mapped when loaded) and the plan's other data (JSON)."""

    arrays: dict[str, Array]
    meta: dict[str, Any]


def folder_name(library_version: str) -> str:
    return f"{PREFIX}{FORMAT_VERSION}-phonenumbers-{library_version}"


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()


def read(folder: Path, library_version: str) -> CachedPlan | None:
    """The cache in ``folder`` if it is whole and of these versions; None otherwise (compile again)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest["format"] != FORMAT_VERSION or manifest["phonenumbers"] != library_version:
            return None
        arrays: dict[str, Array] = {}
        for name, digest in manifest["arrays"].items():
            path = folder / f"{name}.npy"
            if _digest(path) != digest:
                return None
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        meta = manifest["meta"]
        assert isinstance(meta, dict)
        return CachedPlan(arrays, meta)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):  # missing, truncated, not our JSON
        return None


def write(cache_dir: Path, library_version: str, arrays: dict[str, Array], meta: dict[str, Any]) -> None:
    """Store the compiled plan as ``cache_dir/folder_name(…)``, replacing a damaged one and older versions'."""
    import shutil  # here, not with the module: a warm start only reads, and tempfile is some 4 ms to import
    import tempfile

    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / folder_name(library_version)
    building = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".building-"))
    try:
        digests = {}
        for name, array in arrays.items():
            path = building / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            digests[name] = _digest(path)
        manifest = {"format": FORMAT_VERSION, "phonenumbers": library_version, "arrays": digests, "meta": meta}
        (building / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        if final.exists():  # damaged, or another process has just written it: set it aside, then swap
            _set_aside(final, cache_dir)
        try:
            os.rename(building, final)
        except OSError:  # another process renamed its copy in first: theirs is as good
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _prune(cache_dir, keep=final.name)


def _set_aside(folder: Path, cache_dir: Path) -> None:
    import shutil
    import tempfile

    aside = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".old-"))
    try:
        os.rename(folder, aside / folder.name)
    except OSError:
        pass  # gone already
    shutil.rmtree(aside, ignore_errors=True)


def _prune(cache_dir: Path, keep: str) -> None:
    """Remove other versions' caches (and the ``.npz`` of older releases): they are never read again."""
    import shutil

    for entry in cache_dir.iterdir():
        if entry.name == keep or not entry.name.startswith(PREFIX):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
