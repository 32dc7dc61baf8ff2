"""The ceiling ``bench/server.py`` sets the lookup route against: a raw ASGI app on uvicorn.

Why: requests per second on these shared machines vary fourfold from day to day,
so a figure means something only against a reference measured in the same
minute on the same cores. This app does the least any Basic-authenticated JSON
route must do: check the ``Authorization`` header, decode the body
(``{"numbers": [...]}``) with msgspec and encode a response of the size and
shape the lookup route answers (one result object per number), on uvicorn with
the loop and HTTP parser ``numlookup serve`` uses, one worker, no access log. No
framework, no database, no numbering plan: what ``numlookup`` spends beyond this
is its own.

``bench/server.py`` starts it (``BENCH_AUTHORIZATION='Basic …' python
bench/raw_asgi.py --port N``: the credentials stay out of the process list) and
loads it with the same wrk script, connections and body as the lookups.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import uuid
from typing import Any

import msgspec
import uvicorn


class Numbers(msgspec.Struct):
    numbers: list[str]


class Network(msgspec.Struct):
    """A result's network object, as the wire has it (field names are the wire's)."""

    mccmnc: str
    networkName: str  # the wire's field name
    countryName: str  # the wire's field name
    countryPrefix: str  # the wire's field name
    countryCode: str  # the wire's field name


class Item(msgspec.Struct):
    """One result object of the size and shape the lookup route answers for a valid mobile number."""

    number: str
    status: str
    ported: bool | None
    roaming: bool | None
    currentNetwork: Network | None  # the wire's field name
    originalNetwork: Network | None  # the wire's field name
    portedNetwork: Network | None  # the wire's field name
    roamingNetwork: Network | None  # the wire's field name
    checkedAt: str  # the wire's field name
    source: str


class Answer(msgspec.Struct):
    request_id: str
    result: list[Item]


_decoder = msgspec.json.Decoder(Numbers)
_encoder = msgspec.json.Encoder()
_UNAUTHORIZED = b'{"error":{"code":101,"title":"Unauthorized"}}'
_NETWORK = Network("24801", "Telia Eesti", "Estonia", "372", "EST")
CHECKED_AT = "2026-01-01T00:00:00.000Z"


def _basic_matches(presented: bytes, username: bytes, password: bytes) -> bool:
    """Basic credentials as a server must check them: decoded, split at the colon, compared in constant time."""
    scheme, _, encoded = presented.partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        user, sep, secret = base64.b64decode(encoded, validate=True).partition(b":")
    except ValueError:
        return False
    return bool(sep) & hmac.compare_digest(user, username) & hmac.compare_digest(secret, password)


def make_app(authorization: str) -> Any:
    """The app; ``authorization`` is the one ``Authorization`` value it accepts (``Basic …``)."""
    username, _, password = base64.b64decode(authorization.partition(" ")[2]).partition(b":")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        presented = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if scope["path"] == "/healthz":  # readiness, as numlookup's: no credentials
            status, payload = 200, b'{"status":"ok"}'
        elif not _basic_matches(presented, username, password):
            status, payload = 401, _UNAUTHORIZED
        else:
            numbers = _decoder.decode(body).numbers
            result = [Item(n, "ON", None, None, _NETWORK, _NETWORK, None, None, CHECKED_AT, "offline") for n in numbers]
            status, payload = 200, _encoder.encode(Answer(str(uuid.uuid4()), result))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="The raw ASGI reference app of bench/server.py.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        make_app(os.environ["BENCH_AUTHORIZATION"]),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
