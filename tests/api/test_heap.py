"""The worker's start-up heap is frozen out of the garbage collector's full collections (``api.app.freeze_heap``).

A full collection walks every tracked object; the ones start-up loads live as
long as the worker, and walking them under a burst stalled the event loop for
~150 ms each time (bench/live.py). The app's own lifespan is run here, on a real
database, as uvicorn runs it.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from numlookup.api.app import YOUNG_GENERATION_THRESHOLD, create_app
from numlookup.settings import Settings
from numlookup.store import make_engine, upgrade
from tests.support import database_url


def test_the_objects_alive_once_the_app_has_started_are_frozen(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(data_dir=str(tmp_path), database_url=url)
    app = create_app(settings)
    started = [settings]  # made before the start and alive through it: frozen by it
    gc.unfreeze()

    async def run() -> tuple[int, bool]:
        async with app.router.lifespan_context(app):
            collected = (o for generation in range(3) for o in gc.get_objects(generation))
            return gc.get_freeze_count(), any(o is started for o in collected)

    try:
        frozen, still_collected = asyncio.run(run())
    finally:
        gc.unfreeze()
    assert frozen > 10_000  # the start-up heap: modules, tables, settings, the app itself
    assert not still_collected  # out of the collected generations


def test_the_young_generation_is_collected_less_often_while_the_app_serves_and_cycles_still_go(
    tmp_path: Path,
) -> None:
    """``api.app.collect_young_less_often``: the threshold is raised for the lifespan and put back after it.

    A cycle made while the app serves is still collected by the collector on its
    own, once enough objects have been allocated; none is left behind by the change.
    """
    url = database_url(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    app = create_app(Settings(data_dir=str(tmp_path), database_url=url))
    before = gc.get_threshold()

    class Node:
        other: Node | None = None

    async def run() -> tuple[tuple[int, int, int], bool]:
        async with app.router.lifespan_context(app):
            serving = gc.get_threshold()
            first, second = Node(), Node()
            first.other, second.other = second, first  # only the collector can free these
            alive = weakref.ref(first)
            del first, second
            kept: list[list[int]] = [
                [] for _ in range(3 * YOUNG_GENERATION_THRESHOLD)
            ]  # tracked allocations, no explicit collect
            del kept
            return serving, alive() is not None

    try:
        serving, cycle_left = asyncio.run(run())
    finally:
        gc.unfreeze()
    assert serving == (YOUNG_GENERATION_THRESHOLD, *before[1:])
    assert YOUNG_GENERATION_THRESHOLD > before[0]
    assert not cycle_left
    assert gc.get_threshold() == before
