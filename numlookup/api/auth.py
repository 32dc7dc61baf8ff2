"""HTTP Basic credentials and the client address; the account check itself lives in ``accounts``."""

from __future__ import annotations

import base64
import binascii
import re

from starlette.requests import Request

from numlookup.api.proxies import TrustedProxies


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic …`` value, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not _printable(username):
        return None
    return username, password


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL


def _printable(user_id: str) -> bool:
    """RFC 7617 forbids control characters in the user-id, and the user-id goes to the
    database: PostgreSQL refuses a NUL in text, so one would be a 500 instead of a 401."""
    return _CONTROL.search(user_id) is None


CLIENT_IP = "client_ip"  # the key in the request's scope state


def client_ip(request: Request) -> str | None:
    """The client address the allow-list judges.

    The abuse guard resolves it once per request (socket peer, or the right-most
    untrusted ``X-Forwarded-For`` hop when the peer is a trusted proxy) and keeps it
    in the request state, so rate limits and the allow-list agree on who the
    client is. Without the guard in front (an app built differently), it is
    resolved here by the same rule.
    """
    state = request.scope.get("state", {})
    if CLIENT_IP in state:
        resolved: str | None = state[CLIENT_IP]
        return resolved
    peer = request.client.host if request.client else None
    proxies = TrustedProxies(request.app.state.numlookup.settings.trusted_proxies)
    return proxies.client_address(peer, request.headers.getlist("x-forwarded-for"))
