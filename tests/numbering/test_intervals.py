"""``sorted_search`` answers as ``np.searchsorted`` whichever way it searches (needles sorted first or not)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest

from numlookup.numbering.intervals import SORT_HAYSTACK_FROM, SORT_PROBES_FROM, sorted_search


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("tables", [3_000, SORT_HAYSTACK_FROM + 1])
def test_sorted_search_is_searchsorted(side: Literal["left", "right"], tables: int) -> None:
    """A small table is searched as it is, a large one with its needles sorted: the same positions."""
    rng = np.random.default_rng(tables)
    haystack = np.unique(rng.integers(0, 10**15, tables))
    needles = np.concatenate([rng.integers(0, 10**15, SORT_PROBES_FROM * 4), haystack[::7], haystack[::11] + 1])
    rng.shuffle(needles)
    assert np.array_equal(sorted_search(haystack, needles, side), np.searchsorted(haystack, needles, side=side))


def test_a_large_batch_on_a_large_table_takes_the_sorted_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only there are the needles sorted; everywhere else the plain search is as fast or faster."""
    sorts: list[int] = []
    real = np.argsort

    def counted(keys: Any, kind: Any = None) -> Any:
        sorts.append(len(keys))
        return real(keys, kind=kind)

    monkeypatch.setattr(np, "argsort", counted)
    needles = np.arange(SORT_PROBES_FROM, dtype=np.int64)
    sorted_search(np.arange(3_000, dtype=np.int64), needles, "right")
    assert sorts == []
    sorted_search(np.arange(SORT_HAYSTACK_FROM, dtype=np.int64), needles, "right")
    assert sorts == [SORT_PROBES_FROM]
