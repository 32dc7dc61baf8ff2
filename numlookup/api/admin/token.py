"""The admin API's one credential: ``Authorization: Bearer <admin_token>``.

Checked before anything else a route does (before its body is read), and
compared in constant time, so the time of a refusal says nothing of the token.
With no token set the admin API is off: every route answers 404 saying so. A
wrong token is a 401 with a Bearer challenge, which the abuse guard counts as a
failed authentication of the client address, like a wrong lookup password.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from numlookup.api.errors import admin_disabled, admin_unauthorized
from numlookup.api.state import AppState


def admin_state(request: Request) -> AppState:
    """The app's state, once the request has shown the admin token; else the refusal."""
    state: AppState = request.app.state.numlookup
    token = state.settings.admin_token
    if not token:
        raise admin_disabled()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise admin_unauthorized()
    return state
