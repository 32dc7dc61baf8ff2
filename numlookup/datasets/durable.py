"""fsync for files and folders: a dataset folder is renamed into place only once its bytes are on disk."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def sync_files(paths: Iterable[Path]) -> None:
    for path in paths:
        with path.open("rb") as fh:
            os.fsync(fh.fileno())


def sync_dir(folder: Path) -> None:
    """The folder's entries (a rename into it) on disk too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
