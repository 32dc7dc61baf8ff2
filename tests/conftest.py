"""Fixtures shared by the whole suite: a data folder with a migrated SQLite database, and accounts in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.support import BACKEND, database_url, stop_cluster


@pytest.fixture(scope="session", autouse=True)
def database_backend() -> Iterator[str]:
    """Which database the suite runs on; a PostgreSQL cluster lives as long as the session."""
    yield BACKEND
    stop_cluster()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    """The engine on ``data_dir``'s database, the same file a server started on ``data_dir`` uses."""
    db = make_engine(database_url(data_dir))
    upgrade(db)
    yield db
    db.dispose()


class AccountFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, credits: str = "100", **options: object) -> NewCredentials:
        self.count += 1
        return create_account(self.engine, f"account-{self.count}", credits=parse_amount(credits), **options)  # type: ignore[arg-type]  # the keywords pass through to their owner


@pytest.fixture
def make_account(engine: Engine) -> AccountFactory:
    return AccountFactory(engine)
