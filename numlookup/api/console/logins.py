"""Logging in and out of the console, for both audiences, and ``GET /console/``.

An account holder logs in with the API username and password, checked by the
account cache's ``authenticate`` (the API's own check: secret, enabled, the
allow-list against the client address the abuse guard settled on). The operator
logs in with the ``admin_token``, compared in constant time. A refused login is
a 401 page: the abuse guard counts it as a failed authentication of the client
address exactly as it counts the API's 401s (``api.limits`` ``LOGIN_PATHS``), and
the request log names why (``auth_failure``) as it does for the API. A login
starts a new session with a new CSRF token, so a token seen before it is worth
nothing after.
"""

from __future__ import annotations

import hmac
import time

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import AuthFailure
from numlookup.accounts.service import StoredAccount, load_account_by_id
from numlookup.api.auth import client_ip
from numlookup.api.console.csrf import checked_form
from numlookup.api.console.guards import EXPIRED, anonymous_session, read_session, safe_next
from numlookup.api.console.pages import redirect, render, use_session
from numlookup.api.console.session import ConsoleSession, codec, new_token
from numlookup.api.state import AppState

HOME = {"account": "/console/account", "operator": "/console/operator"}
# The login pages' messages, chosen by ``?m=``: never text from the URL itself.
MESSAGES = {
    EXPIRED: "Your session expired; log in again.",
    "ended": "Your session ended (the account or its credentials changed); log in again.",
    "out": "You are logged out.",
}
REFUSED = "Wrong username or password."  # whatever the reason, as the API's one 101: a guesser learns nothing


def _message(request: Request) -> str | None:
    if getattr(request.state, EXPIRED, False):
        return MESSAGES[EXPIRED]
    return MESSAGES.get(request.query_params.get("m", ""))


async def home(request: Request) -> Response:
    session = await read_session(request)
    if session is None or session.kind is None:
        return redirect(request, "/console/login")
    return redirect(request, HOME[session.kind])


async def login_form(request: Request) -> Response:
    await anonymous_session(request)
    return render(
        request, "login.html", next=safe_next(request.query_params.get("next")) or "", message=_message(request)
    )


async def login(request: Request) -> Response:
    state: AppState = request.app.state.numlookup
    form = await checked_form(request, await read_session(request))
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", ""))) or HOME["account"]
    verdict = (
        await state.accounts.authenticate(username, password, client_ip(request))
        if username and password
        else AuthFailure.MISSING_CREDENTIALS
    )

    def load(account_id: int) -> StoredAccount | None:
        with state.engine.connect() as conn:
            return load_account_by_id(conn, account_id)

    # The secret's hash, for the session's fingerprint (the cache's copy is the one just verified, but private).
    stored = None if isinstance(verdict, AuthFailure) else await anyio.to_thread.run_sync(load, verdict.id)
    if stored is None:
        # Deleted since it was authenticated (stored None): as unknown as a username never made.
        request.state.auth_failure = verdict if isinstance(verdict, AuthFailure) else AuthFailure.UNKNOWN_USERNAME
        if username:
            request.state.username = username
        return render(request, "login.html", 401, next=target, error=REFUSED, username=username)
    sessions = await codec(request)
    request.state.account = stored.account.name
    use_session(
        request,
        ConsoleSession(
            "account", stored.account.id, new_token(), int(time.time()), sessions.fingerprint(stored.secret_hash)
        ),
    )
    return redirect(request, target)


async def operator_login_form(request: Request) -> Response:
    await anonymous_session(request)
    enabled = bool(request.app.state.numlookup.settings.admin_token)
    return render(
        request,
        "operator_login.html",
        enabled=enabled,
        next=safe_next(request.query_params.get("next")) or "",
        message=_message(request),
    )


async def operator_login(request: Request) -> Response:
    token: str = request.app.state.numlookup.settings.admin_token
    form = await checked_form(request, await read_session(request))
    target = safe_next(str(form.get("next", ""))) or HOME["operator"]
    if not token:
        return render(request, "operator_login.html", 403, enabled=False, next="", message=None)
    presented = str(form.get("token", ""))
    if not hmac.compare_digest(presented.encode(), token.encode()):
        request.state.auth_failure = AuthFailure.MISSING_CREDENTIALS if not presented else AuthFailure.WRONG_SECRET
        return render(request, "operator_login.html", 401, enabled=True, next=target, error="Wrong token.")
    sessions = await codec(request)
    use_session(
        request, ConsoleSession("operator", None, new_token(), int(time.time()), sessions.fingerprint(token.encode()))
    )
    return redirect(request, target)


async def logout(request: Request) -> Response:
    session = await read_session(request)
    await checked_form(request, session)
    kind = session.kind if session is not None else None
    use_session(request, None)
    return redirect(request, ("/console/operator/login" if kind == "operator" else "/console/login") + "?m=out")
