"""The console's session: a signed cookie, so any node can read it without a session table.

The cookie holds who is logged in (an account or the operator), the session's
CSRF token, when it was issued and a fingerprint of the credential it was made
from. It is signed, not encrypted: it carries nothing secret (the fingerprint is
an HMAC under the session key, so it tells a reader nothing of the secret hash).
Rotating the API secret (or the ``admin_token``) changes the fingerprint, which
ends every other session made with the old one; ``console_session_hours`` bounds
a session's life, checked on every request from the signature's own timestamp.

The key is ``store.console_key.session_key``: one key in the database that every
node and worker shares, so a cookie one worker issued is good on every other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts.allowlist import parse_address
from numlookup.api.proxies import TrustedProxies
from numlookup.store.console_key import session_key

COOKIE = "numlookup_console"
PATH = "/console"
SALT = "numlookup.console.session"  # itsdangerous' namespace: a key used elsewhere cannot forge these
Kind = Literal["account", "operator"]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """One browser's session; ``kind`` None is an anonymous one, holding only the login forms' CSRF token."""

    kind: Kind | None
    account_id: int | None
    csrf_token: str
    issued_at: int
    fingerprint: str | None

    @staticmethod
    def anonymous() -> ConsoleSession:
        return ConsoleSession(None, None, new_token(), int(time.time()), None)

    def payload(self) -> dict[str, object]:
        return {"k": self.kind, "a": self.account_id, "c": self.csrf_token, "t": self.issued_at, "v": self.fingerprint}


class Expired(Exception):
    """The cookie was good but is older than ``console_session_hours``."""


async def codec(request: Request) -> SessionCodec:
    """This app's codec, made on first use: the key is read (or created) in the database once per worker."""
    app_state = request.app.state
    made: SessionCodec | None = getattr(app_state, "console_codec", None)
    if made is None:
        state = request.app.state.numlookup
        key = await anyio.to_thread.run_sync(session_key, state.engine)
        made = app_state.console_codec = SessionCodec(key, state.settings.console_session_hours * 3600)
    return made


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SessionCodec:
    """Signs and reads the cookie under the shared session key."""

    def __init__(self, key: bytes, max_age_seconds: int) -> None:
        self.key = key
        self.max_age = max_age_seconds
        self._serializer = URLSafeTimedSerializer(key, salt=SALT)

    def dumps(self, session: ConsoleSession) -> str:
        return self._serializer.dumps(session.payload())

    def loads(self, text: str) -> ConsoleSession | None:
        """The session, None for a forged or malformed cookie; ``Expired`` for one past its age."""
        try:
            data = self._serializer.loads(text, max_age=self.max_age)
        except SignatureExpired:
            raise Expired from None
        except BadSignature:
            return None
        session = _session(data)
        # The payload's issue time too: a session re-signed since its login (a secret rotated) ends on time.
        if session is not None and time.time() - session.issued_at > self.max_age:
            raise Expired
        return session

    def fingerprint(self, credential: bytes) -> str:
        """What a session remembers of the secret it was made with: changes when the secret does."""
        return hmac.new(self.key, b"credential:" + credential, hashlib.sha256).hexdigest()[:32]


def _session(data: object) -> ConsoleSession | None:
    if not isinstance(data, dict):
        return None
    kind, account_id, token, issued, fingerprint = (data.get(k) for k in ("k", "a", "c", "t", "v"))
    if kind not in (None, "account", "operator") or not isinstance(token, str) or not isinstance(issued, int):
        return None
    if kind == "account" and not isinstance(account_id, int):
        return None
    if fingerprint is not None and not isinstance(fingerprint, str):
        return None
    return ConsoleSession(kind, account_id if kind == "account" else None, token, issued, fingerprint)


def https(request: Request) -> bool:
    """Whether the client reached us over https: the socket's scheme, or a trusted proxy's X-Forwarded-Proto.

    The same rule as the client address (``api.proxies``): the header is believed
    only from a peer among ``trusted_proxies``.
    """
    if request.url.scheme == "https":
        return True
    peer = parse_address(request.client.host) if request.client else None
    proxies = TrustedProxies(request.app.state.numlookup.settings.trusted_proxies)
    if peer is None or not proxies.networks or not proxies.trusts(peer):
        return False
    forwarded = [
        part.strip().lower() for value in request.headers.getlist("x-forwarded-proto") for part in value.split(",")
    ]
    return bool(forwarded) and forwarded[-1] == "https"


def set_cookie(request: Request, response: Response, codec: SessionCodec, session: ConsoleSession) -> None:
    response.set_cookie(
        COOKIE,
        codec.dumps(session),
        max_age=codec.max_age,
        path=PATH,
        secure=https(request),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=https(request), httponly=True, samesite="lax")
