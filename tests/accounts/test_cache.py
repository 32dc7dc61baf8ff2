"""The worker's account cache against a real database: what it saves, and how soon it learns of changes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event

from numlookup.accounts import Account, AuthFailure, get_account, rotate_secret, set_enabled
from numlookup.accounts.cache import AccountCache
from numlookup.accounts.service import StoredAccount, replace_networks
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


def test_an_allow_list_edit_reaches_the_cache_whatever_it_remembered(
    engine: Engine, make_account: AccountFactory
) -> None:
    """The entry remembers an address's verdict (``StoredAccount.allows``): an edited allow-list is a new entry."""
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def scenario() -> None:
        for _ in range(2):
            assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        replace_networks(engine, creds.name, ["10.0.0.0/8"])
        cache.note_balance(creds.api_username, 5, 0)  # a charge settled meanwhile: its rebuilt entry is still old
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        await cache.refresh()
        refused = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert refused is AuthFailure.IP_NOT_ALLOWED
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, "10.1.2.3"), Account)

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


def test_a_noted_balance_changes_the_balance_and_what_jobs_hold_and_nothing_else(
    engine: Engine, make_account: AccountFactory
) -> None:
    """``note_balance`` builds the entry field by field (for speed): it must be what ``dataclasses.replace`` makes."""
    creds = make_account(credits="1")
    cache = AccountCache(engine, refresh_seconds=1.0)

    async def scenario() -> None:
        assert isinstance(await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK), Account)
        stored = cache._entries[creds.api_username]
        # Every field of both is named here: a new one must be carried over by with_balance and note_balance too.
        assert [f.name for f in dataclasses.fields(Account)] == [
            "id", "name", "api_username", "enabled", "balance", "price",
            "status_style", "allowed_networks", "created_at", "reserved",
        ]  # fmt: skip
        assert [f.name for f in dataclasses.fields(StoredAccount)] == [
            "account", "secret_salt", "secret_hash", "networks", "allowed",
        ]  # fmt: skip
        # Every field away from its default, so a field dropped on the way would show.
        unusual = dataclasses.replace(stored.account, price=7, status_style="auto", allowed_networks=("10.0.0.0/8",))
        assert unusual.with_balance(123, 45) == dataclasses.replace(unusual, balance=123, reserved=45)
        cache.note_balance(creds.api_username, 1, 2)
        cache.note_balance(creds.api_username, 456, 78)  # the last noted is the one applied
        noted = cache.entry(creds.api_username)
        assert noted == dataclasses.replace(
            stored, account=dataclasses.replace(stored.account, balance=456, reserved=78)
        )
        assert noted is not None and noted.allowed is stored.allowed  # the verdicts carried over
        account = await cache.authenticate(creds.api_username, creds.api_password, LOOPBACK)
        assert account == noted.account

    asyncio.run(scenario())
