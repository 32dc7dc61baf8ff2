"""Who may see a console page: an account holder's session, or the operator's.

Each page starts with :func:`require_account` or :func:`require_operator`. No
session, a forged one or an expired one sends the browser to its login page
(303, with ``next`` so it comes back); a session of the other kind gets a 403
page. An account session is checked against the account as it is now, on every
request: it must exist, be enabled, be asked from an allowed address, and its
secret must be the one the session was made with, so disabling an account,
narrowing its allow-list or rotating its secret ends its other sessions at once.
The account holder's data always comes from the session's account id, never from
the URL.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import quote

import anyio.to_thread
from starlette.datastructures import FormData
from starlette.requests import Request

from numlookup.accounts.allowlist import in_networks
from numlookup.accounts.service import Account, StoredAccount, load_account_by_id
from numlookup.api.auth import client_ip
from numlookup.api.console.csrf import checked_form
from numlookup.api.console.pages import SESSION, PageExit, redirect, refusal, use_session
from numlookup.api.console.session import COOKIE, ConsoleSession, Expired, Kind, codec
from numlookup.api.limits import GUARD, AbuseGuard, retry_after
from numlookup.api.state import AppState

LOGIN = {"account": "/console/login", "operator": "/console/operator/login"}
EXPIRED = "expired"  # request.state: the cookie was good but too old (the login page says so)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    kind: Kind
    session: ConsoleSession
    account: Account | None = None  # an account session's account, read afresh for this request

    @property
    def account_id(self) -> int:
        assert self.account is not None, "an operator session has no account"
        return self.account.id


async def read_session(request: Request) -> ConsoleSession | None:
    """The cookie's session (anonymous ones included), or None; an expired cookie is noted for the login page."""
    if hasattr(request.state, SESSION):
        found: ConsoleSession | None = getattr(request.state, SESSION)
        return found
    sessions = await codec(request)
    cookie = request.cookies.get(COOKIE)
    session = None
    if cookie:
        try:
            session = sessions.loads(cookie)
        except Expired:
            setattr(request.state, EXPIRED, True)
    setattr(request.state, SESSION, session)
    return session


async def anonymous_session(request: Request) -> ConsoleSession:
    """The request's session, or a new anonymous one (its cookie set): what a login form's CSRF token needs."""
    session = await read_session(request)
    if session is None:
        session = ConsoleSession.anonymous()
        use_session(request, session)
    return session


def safe_next(value: str | None) -> str | None:
    """A ``next`` to go back to after login: a console path of ours, never another site."""
    if not value or not value.startswith("/console/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 0x21 for c in value):
        return None
    return value


def _to_login(request: Request, kind: Kind, reason: str | None) -> PageExit:
    target = f"{LOGIN[kind]}?next={quote(request.url.path, safe='/')}"
    if reason:
        target += f"&m={reason}"
    return PageExit(redirect(request, target))


async def _require(request: Request, kind: Kind) -> ConsoleSession:
    session = await read_session(request)
    if session is None or session.kind is None:
        raise _to_login(request, kind, EXPIRED if getattr(request.state, EXPIRED, False) else None)
    if session.kind != kind:
        other = "an account holder's" if session.kind == "account" else "the operator's"
        raise refusal(request, 403, "Not for this session", f"This page is not part of {other} console.")
    return session


def _ended(request: Request, kind: Kind) -> PageExit:
    use_session(request, None)
    return _to_login(request, kind, "ended")


async def require_account(request: Request) -> ConsoleUser:
    session = await _require(request, "account")
    state: AppState = request.app.state.numlookup
    assert session.account_id is not None

    def load() -> StoredAccount | None:
        with state.engine.connect() as conn:
            return load_account_by_id(conn, session.account_id)  # type: ignore[arg-type]  # checked above

    stored = await anyio.to_thread.run_sync(load)
    sessions = await codec(request)
    if (
        stored is None
        or not stored.account.enabled
        or not in_networks(client_ip(request), stored.networks)
        or not _same(session.fingerprint, sessions.fingerprint(stored.secret_hash))
    ):
        raise _ended(request, "account")
    request.state.account = stored.account.name  # for the request log, as the API's routes name it
    return ConsoleUser("account", session, stored.account)


async def require_operator(request: Request) -> ConsoleUser:
    session = await _require(request, "operator")
    token = request.app.state.numlookup.settings.admin_token
    sessions = await codec(request)
    if not token or not _same(session.fingerprint, sessions.fingerprint(token.encode())):
        raise _ended(request, "operator")
    return ConsoleUser("operator", session)


def _same(kept: str | None, current: str) -> bool:
    return kept is not None and hmac.compare_digest(kept.encode(), current.encode())


def spend_account_token(request: Request, user: ConsoleUser) -> None:
    """The account's request rate (``rate_limit_per_account``), spent as an API call with its credentials spends it.

    The abuse guard keys that limit by a Basic username before any route runs;
    the console's requests carry none, so the pages that do an API call's work
    (a lookup, a job's upload) spend the token here, or are refused with 429.
    """
    guard = request.scope.get("state", {}).get(GUARD)
    if not isinstance(guard, AbuseGuard) or user.account is None:
        return
    wait = guard.account_wait(user.account.api_username)
    if wait:
        exit_ = refusal(
            request, 429, "Too many requests", "This account's request rate limit is exceeded; try again shortly."
        )
        exit_.response.headers["Retry-After"] = str(retry_after(wait))
        raise exit_


async def api_work_form(request: Request) -> tuple[ConsoleUser, Account, FormData]:
    """The account holder, their account and their checked form, for a page that does an API call's work.

    Such a page (a lookup, a job's upload) is refused as the API would refuse
    the call: not logged in, a bad CSRF token, or the account's request rate spent.
    """
    user = await require_account(request)
    form = await checked_form(request, user.session)
    spend_account_token(request, user)
    assert user.account is not None
    return user, user.account, form
