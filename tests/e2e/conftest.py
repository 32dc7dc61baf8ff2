"""A server per test module: starting one costs about a second, so modules share it."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.support import Server, database_url


@dataclass
class Live:
    """A running server, the engine on its database, and a way to make accounts in it."""

    server: Server
    engine: Engine
    count: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def account(self, credits: str = "100", **options: object) -> NewCredentials:
        self.count += 1
        return create_account(self.engine, f"client-{self.count}", credits=parse_amount(credits), **options)  # type: ignore[arg-type]  # the keywords pass through to their owner

    def client(self, creds: NewCredentials | None = None, timeout: float = 30, **options: object) -> httpx.Client:
        auth = (creds.api_username, creds.api_password) if creds else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=timeout, **options)  # type: ignore[arg-type]  # the keywords pass through to their owner


def start_live(data_dir: Path, **server_options: object) -> Generator[Live, None, None]:
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    server = Server(data_dir, **server_options).start()  # type: ignore[arg-type]  # Server's own keywords, passed through
    try:
        yield Live(server=server, engine=engine)
    finally:
        server.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("live"))
