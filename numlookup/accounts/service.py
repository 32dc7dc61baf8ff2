"""Account operations for the CLI and the API. Functions take an engine and return typed values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from numlookup.accounts import credentials
from numlookup.accounts.allowlist import EVERYONE, Network, in_networks, parse_network
from numlookup.accounts.errors import AccountConflict, AccountError, NotFound, UnknownAccount
from numlookup.billing.ledger import Charge, add_credits, adjust_credits, book_credit
from numlookup.status import StyleSetting, UnknownStyle, style_setting
from numlookup.store import account_epoch
from numlookup.store.engine import shown_url, write_transaction
from numlookup.store.tables import accounts, allowed_networks

# A name is shown in tables and addressed in URLs (/admin/v1/accounts/{name}): so no
# control characters (C0, DEL, C1), no "/", and at most the column's 100 characters.
NAME_MAX_LENGTH = 100
_NOT_IN_NAMES = frozenset([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "/"])
# The same rule as a JSON Schema pattern (the admin API's decoder enforces it): something
# besides spaces, none of the characters above.
NAME_PATTERN = r"^\s*[^\s\x00-\x1f\x7f-\x9f/][^\x00-\x1f\x7f-\x9f/]*$"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    api_username: str
    enabled: bool
    balance: int
    price: int | None
    status_style: StyleSetting | None  # None: the server's default; "auto": the calling client's words
    allowed_networks: tuple[str, ...]
    created_at: datetime
    reserved: int = 0  # held for bulk jobs: not the account's to spend

    @property
    def spendable(self) -> int:
        return self.balance - self.reserved

    def with_balance(self, balance: int, reserved: int) -> Account:
        """``dataclasses.replace(self, balance=balance, reserved=reserved)``, spelled out.

        Why: every charge writes its outcome back into the account cache, and ``replace``
        looks the fields up each time, twice per request with the stored account's own copy
        (``tests/accounts/test_cache.py`` holds this to ``replace`` field by field).
        """
        return Account(
            self.id,
            self.name,
            self.api_username,
            self.enabled,
            balance,
            self.price,
            self.status_style,
            self.allowed_networks,
            self.created_at,
            reserved,
        )


@dataclass(frozen=True, slots=True)
class NewCredentials:
    """Shown once, at creation or rotation; only a hash of the secret is kept."""

    name: str
    api_username: str
    api_password: str


def _allowed(conn: Connection, account_id: int) -> tuple[str, ...]:
    rows = conn.execute(
        select(allowed_networks.c.cidr)
        .where(allowed_networks.c.account_id == account_id)
        .order_by(allowed_networks.c.id)
    )
    return tuple(r[0] for r in rows)


def _account(conn: Connection, row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        api_username=row.api_username,
        enabled=bool(row.enabled),
        balance=row.balance,
        price=row.price,
        status_style=None if row.status_style is None else style_setting(row.status_style),
        allowed_networks=_allowed(conn, row.id),
        created_at=row.created_at,
        reserved=row.reserved,
    )


def _check_name(name: str) -> str:
    """The name a new account gets (surrounding spaces dropped), or AccountError saying what is wrong."""
    name = name.strip()
    if not name:
        raise AccountError("an account needs a name")
    if len(name) > NAME_MAX_LENGTH:
        raise AccountError(f"an account name has at most {NAME_MAX_LENGTH} characters")
    if any(c in _NOT_IN_NAMES for c in name):
        raise AccountError("an account name has no control characters and no '/'")
    return name


def _addressable(name: str) -> str:
    """``name`` as a key to look up, or UnknownAccount: no account holds a NUL (PostgreSQL refuses it in text)."""
    if "\x00" in name:
        raise UnknownAccount(name)
    return name


def _check_style(style: str | None) -> None:
    if style is not None:
        try:
            style_setting(style)
        except UnknownStyle as exc:
            raise AccountError(str(exc)) from None


def create_account(
    engine: Engine,
    name: str,
    *,
    credits: int = 0,
    allow: Sequence[str] = EVERYONE,
    status_style: str | None = None,
    price: int | None = None,
) -> NewCredentials:
    """Create an account; ``credits`` are booked through the ledger like any top-up, in the same transaction."""
    name = _check_name(name)
    _check_style(status_style)
    networks = [str(parse_network(c)) for c in allow]
    username, secret = credentials.new_username(), credentials.new_secret()
    salt, digest = credentials.hash_secret(secret)
    now = datetime.now(UTC)
    try:
        with write_transaction(engine) as conn:
            account_id = conn.execute(
                insert(accounts)
                .values(
                    name=name,
                    api_username=username,
                    secret_salt=salt,
                    secret_hash=digest,
                    enabled=True,
                    balance=0,
                    price=price,
                    status_style=status_style,
                    created_at=now,
                    updated_at=now,
                )
                .returning(accounts.c.id)
            ).scalar_one()
            for cidr in dict.fromkeys(networks):
                conn.execute(insert(allowed_networks).values(account_id=account_id, cidr=cidr))
            if credits:  # in the same transaction: an account exists with its credits or not at all
                book_credit(conn, account_id, credits, note="initial credits")
            account_epoch.bump(conn)
    except IntegrityError:
        raise AccountConflict(f"an account named {name!r} exists already") from None
    return NewCredentials(name=name, api_username=username, api_password=secret)


def _no_account(engine: Engine, name: str) -> UnknownAccount:
    """Names the database too: an unknown account is most often the right name in the wrong database."""
    return UnknownAccount(name, shown_url(engine))


def get_account(engine: Engine, name: str) -> Account:
    with engine.connect() as conn:
        row = conn.execute(select(accounts).where(accounts.c.name == _addressable(name))).first()
        if row is None:
            raise _no_account(engine, name)
        return _account(conn, row)


def list_accounts(engine: Engine) -> list[Account]:
    with engine.connect() as conn:
        return [_account(conn, row) for row in conn.execute(select(accounts).order_by(accounts.c.name))]


def _update(engine: Engine, name: str, **values: object) -> None:
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(accounts).where(accounts.c.name == _addressable(name)).values(updated_at=datetime.now(UTC), **values)
        )
        if result.rowcount == 0:
            raise _no_account(engine, name)
        account_epoch.bump(conn)


def set_enabled(engine: Engine, name: str, enabled: bool) -> None:
    _update(engine, name, enabled=enabled)


def set_price(engine: Engine, name: str, price: int | None) -> None:
    _update(engine, name, price=price)


def set_status_style(engine: Engine, name: str, style: str | None) -> None:
    _check_style(style)
    _update(engine, name, status_style=style)


def rotate_secret(engine: Engine, name: str) -> NewCredentials:
    """A new secret; running servers refuse the old one within account_refresh_seconds. The API username stays."""
    secret = credentials.new_secret()
    salt, digest = credentials.hash_secret(secret)
    _update(engine, name, secret_salt=salt, secret_hash=digest)
    return NewCredentials(name=name, api_username=get_account(engine, name).api_username, api_password=secret)


def allow_network(engine: Engine, name: str, cidr: str) -> str:
    network = str(parse_network(cidr))
    account = get_account(engine, name)
    if network in account.allowed_networks:
        raise AccountConflict(f"{network} is already on the allow-list of {name!r}")
    try:
        with write_transaction(engine) as conn:
            conn.execute(insert(allowed_networks).values(account_id=account.id, cidr=network))
            account_epoch.bump(conn)
    except IntegrityError:  # added by someone else since it was read
        raise AccountConflict(f"{network} is already on the allow-list of {name!r}") from None
    return network


def deny_network(engine: Engine, name: str, cidr: str) -> str:
    network = str(parse_network(cidr))
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        result = conn.execute(
            delete(allowed_networks).where(
                allowed_networks.c.account_id == account.id, allowed_networks.c.cidr == network
            )
        )
        account_epoch.bump(conn)
    if result.rowcount == 0:
        listed = ", ".join(account.allowed_networks) or "nothing"
        raise NotFound(f"{network} is not on the allow-list of {name!r} (it holds {listed})")
    return network


def replace_networks(engine: Engine, name: str, cidrs: Sequence[str]) -> tuple[str, ...]:
    """The allow-list of ``name`` becomes exactly ``cidrs`` (each checked as ``allow_network`` checks it), at once.

    One transaction: a typo in any of them raises before anything changed, and no
    request sees half a list. Duplicates count once.
    """
    networks = tuple(dict.fromkeys(str(parse_network(cidr)) for cidr in cidrs))
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        conn.execute(delete(allowed_networks).where(allowed_networks.c.account_id == account.id))
        if networks:
            conn.execute(insert(allowed_networks), [{"account_id": account.id, "cidr": n} for n in networks])
        account_epoch.bump(conn)
    return networks


def top_up(engine: Engine, name: str, amount: int, note: str | None = None) -> Charge:
    """Add credits to the account named ``name`` (a ``credit`` row): ``credits add``, and the admin top-up."""
    return add_credits(engine, get_account(engine, name).id, amount, note)


def correct(engine: Engine, name: str, amount: int, note: str) -> Charge:
    """A correction of the balance of ``name``, either way (an ``adjustment`` row); never below zero."""
    return adjust_credits(engine, get_account(engine, name).id, amount, note)


# Verified against when the username is unknown, so both paths cost the same.
_DUMMY_SALT, _DUMMY_DIGEST = credentials.hash_secret(credentials.new_secret())


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """What authentication needs of an account: the account, its secret's hash, its parsed allow-list."""

    account: Account
    secret_salt: bytes
    secret_hash: bytes
    networks: tuple[Network, ...]
    # The allow-list's verdicts on the client addresses seen, by address (see ``allows``); shared by the
    # entries the account cache rebuilds with a new balance, and gone with the entry when the account changes.
    allowed: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def allows(self, client_ip: str | None) -> bool:
        """``in_networks(client_ip, self.networks)``, judged once per address.

        Why: a client calls from the same few addresses, request after request, and the
        test (a parse and a containment per network, in Python) was 2 % of the sync
        edge's loop CPU (bench/edge.py's py-spy). The networks never change for this
        object (a changed allow-list is a new entry), so neither does a verdict.
        """
        if client_ip is None:
            return False
        verdict = self.allowed.get(client_ip)
        if verdict is None:
            verdict = in_networks(client_ip, self.networks)
            if len(self.allowed) >= ALLOWED_VERDICTS:
                self.allowed.clear()  # a bound on memory against a spray of addresses, not an eviction policy
            self.allowed[client_ip] = verdict
        return verdict


ALLOWED_VERDICTS = 1024  # addresses an entry remembers the verdict of


def load_account(conn: Connection, username: str) -> StoredAccount | None:
    return _load(conn, accounts.c.api_username == username)


def load_account_by_id(conn: Connection, account_id: int) -> StoredAccount | None:
    """The same as :func:`load_account`, by id: the console's session names its account by id."""
    return _load(conn, accounts.c.id == account_id)


def _load(conn: Connection, which: ColumnElement[bool]) -> StoredAccount | None:
    row = conn.execute(select(accounts).where(which)).first()
    if row is None:
        return None
    account = _account(conn, row)
    return StoredAccount(
        account, row.secret_salt, row.secret_hash, tuple(parse_network(c) for c in account.allowed_networks)
    )


class AuthFailure(StrEnum):
    """Why a request's credentials were refused, for the operator's log.

    The client is told none of this: every refusal is the same 401 (code 101),
    so a guesser learns nothing, not even whether a username exists. The operator
    needs to tell a client with a stale secret from one calling from a new
    address. The first two are decided at the HTTP edge, before an account is
    looked up; :func:`verify` decides the rest, in this order, and names a
    disabled account or a refused address only to a caller whose secret was right.
    """

    MISSING_CREDENTIALS = "missing_credentials"  # no Authorization header
    MALFORMED_CREDENTIALS = "malformed_credentials"  # not Basic, not base64 of UTF-8 "user:secret", control characters
    UNKNOWN_USERNAME = "unknown_username"
    WRONG_SECRET = "wrong_secret"
    ACCOUNT_DISABLED = "account_disabled"
    IP_NOT_ALLOWED = "ip_not_allowed"


def verify(stored: StoredAccount | None, password: str, client_ip: str | None) -> Account | AuthFailure:
    """The account if the secret is right, it is enabled and ``client_ip`` is allowed; else why not."""
    if stored is None:
        credentials.verify_secret(password, _DUMMY_SALT, _DUMMY_DIGEST)
        return AuthFailure.UNKNOWN_USERNAME
    if not credentials.verify_secret(password, stored.secret_salt, stored.secret_hash):
        return AuthFailure.WRONG_SECRET
    if not stored.account.enabled:
        return AuthFailure.ACCOUNT_DISABLED
    if not stored.allows(client_ip):
        return AuthFailure.IP_NOT_ALLOWED
    return stored.account


def authenticate(engine: Engine, username: str, password: str, client_ip: str | None) -> Account | AuthFailure:
    """The account if the credentials are right, it is enabled and ``client_ip`` is allowed; else why not."""
    with engine.connect() as conn:
        stored = load_account(conn, username)
    return verify(stored, password, client_ip)
