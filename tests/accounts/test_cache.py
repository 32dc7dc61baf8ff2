"""The worker's account cache against a real database: what it saves, and how soon it learns of changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event

from numlookup.accounts import Account, AuthFailure, get_account, rotate_secret, set_enabled
from numlookup.accounts.cache import AccountCache
from numlookup.billing import add_credits, parse_amount
from tests.conftest import AccountFactory

LOOPBACK = "127.0.0.1"


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends, as the database receives it."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def test_a_cached_account_needs_no_query(engine: Engine, make_account: AccountFactory, statements: list[str]) -> None:
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def scenario() -> None:
        first = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert isinstance(first, Account) and first.name == creds.name
        statements.clear()
        assert await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK) == first
        wrong = await cache.authenticate(creds.api_username, creds.api_password + "x", LOOPBACK)
        assert wrong is AuthFailure.WRONG_SECRET
        elsewhere = await cache.authenticate(creds.api_username, creds.api_password, "not an address")
        assert elsewhere is AuthFailure.IP_NOT_ALLOWED
        assert statements == []

    asyncio.run(scenario())
    assert (cache.hits, cache.misses) == (3, 1)


def test_changes_reach_the_cache_at_its_next_refresh(engine: Engine, make_account: AccountFactory) -> None:
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def scenario() -> None:
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        set_enabled(engine, creds.name, False)
        # Until the counter is read again the entry is served: the bound is refresh_seconds.
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        await cache.refresh()
        disabled = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert disabled is AuthFailure.ACCOUNT_DISABLED
        set_enabled(engine, creds.name, True)
        rotated = rotate_secret(engine, creds.name)
        await cache.refresh()
        stale = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert stale is AuthFailure.WRONG_SECRET
        assert isinstance(await cache.authenticate(rotated.api_username, rotated.api_password, LOOPBACK), Account)

    asyncio.run(scenario())


def test_a_top_up_refreshes_the_cached_balance(engine: Engine, make_account: AccountFactory) -> None:
    creds = make_account(credits="1")
    account_id = get_account(engine, creds.name).id
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def balance() -> int:
        account = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert isinstance(account, Account)
        return account.balance

    async def scenario() -> None:
        assert await balance() == parse_amount("1")
        cache.note_balance(creds.api_username, parse_amount("0.5"), 0)  # a charge through this worker
        assert await balance() == parse_amount("0.5")
        add_credits(engine, account_id, parse_amount("2"))
        await cache.refresh()
        assert await balance() == parse_amount("3")  # the database's balance: the noted one was dropped

    asyncio.run(scenario())


def test_entries_are_not_trusted_once_the_counter_goes_unread(
    engine: Engine, make_account: AccountFactory, statements: list[str]
) -> None:
    """No poll for three intervals (the database away, say): requests read the database again."""
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=0.05)

    async def scenario() -> None:
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        time.sleep(0.2)
        statements.clear()
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        assert statements, "an untrusted entry was served without reading the database"

    asyncio.run(scenario())


def test_no_cache_reads_every_time(engine: Engine, make_account: AccountFactory, statements: list[str]) -> None:
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=0)

    async def scenario() -> None:
        for _ in range(3):
            statements.clear()
            assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
            assert statements

    asyncio.run(scenario())


def test_a_burst_on_a_cold_cache_reads_the_account_once(
    engine: Engine, make_account: AccountFactory, statements: list[str]
) -> None:
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def scenario() -> None:
        accounts = await asyncio.gather(
            *(cache.authenticate(creds.api_username, creds.api_password, LOOPBACK) for _ in range(50))
        )
        assert all(isinstance(a, Account) and a.name == creds.name for a in accounts)

    statements.clear()
    asyncio.run(scenario())
    assert sum("FROM accounts" in s for s in statements) == 1, statements
