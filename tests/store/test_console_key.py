"""The console's session key: made once, by whichever process asks first, and the same for all of them."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from sqlalchemy import Engine, func, select

from numlookup.store import make_engine
from numlookup.store.console_key import KEY_BYTES, session_key
from numlookup.store.tables import console_keys


def _key_of(url: str) -> bytes:
    """In a process of its own, as a worker of another node would: a fresh engine on the same database."""
    engine = make_engine(url, create=False)
    try:
        return session_key(engine)
    finally:
        engine.dispose()


def test_processes_racing_for_the_key_all_get_the_one_committed(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(max_workers=6, mp_context=get_context("spawn")) as pool:
        keys = list(pool.map(_key_of, [url] * 12))
    assert len(set(keys)) == 1 and len(keys[0]) == KEY_BYTES
    assert session_key(engine) == keys[0]  # and it stays
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(console_keys)).scalar_one() == 1
