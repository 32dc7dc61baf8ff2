"""HTTP Basic credentials from the request; the account check itself lives in ``accounts``."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(username, password)`` from ``Authorization: Basic …``, or None if absent or malformed."""
    header = request.headers.get("authorization")
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
    if not sep:
        return None
    return username, password


def client_ip(request: Request) -> str | None:
    """The socket peer. Proxies' X-Forwarded-For is not trusted until it can be configured."""
    return request.client.host if request.client else None
