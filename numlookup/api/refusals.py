"""The answer to a request the server refuses before the app can see it: headers that never finish.

uvicorn hands the app a request only once its header block is complete, so a
client that sends half a header block and then waits is the server's to stop
(``serving.DrainingHttpToolsProtocol`` times it out). The answer is built here,
though, so that it is like every other: the wire's error body (code 106, as for a
body that is too slow), an ``X-Request-Id``, a line in the request log and a count
in ``numlookup_http_requests_total`` (route ``unmatched``, method ``none``: no
request line may have been read). The app passes a :class:`ProtocolRefusals` to
the server in its lifespan state, under :data:`LIFESPAN_KEY`.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec

from numlookup.api.errors import ApiError, header_timeout
from numlookup.api.request_id import log_unread_request, new_request_id
from numlookup.metrics import Metrics

# The lifespan state's key; serving.py reads the same name (tests/e2e/test_abuse.py holds them equal).
LIFESPAN_KEY = "numlookup.protocol_refusals"
UNREAD = "none"  # the method label of a request whose request line may not have arrived

_encoder = msgspec.json.Encoder()


class ProtocolRefusals:
    """What the server writes, as raw HTTP/1.1, for a refusal it makes itself; counted and logged like a request."""

    def __init__(self, metrics: Metrics, *, access_log: bool) -> None:
        self.metrics = metrics
        self.access_log = access_log

    def header_timeout(
        self, seconds: float, client: str | None, waited: float, default_headers: list[tuple[bytes, bytes]]
    ) -> bytes:
        """The whole 408 response (``Connection: close``) for headers not complete within ``seconds``."""
        request_id = new_request_id()
        response = _raw(header_timeout(seconds), request_id, default_headers)
        self.metrics.request_done("unmatched", UNREAD, 408, waited)
        if self.access_log:
            log_unread_request(request_id, 408, client, waited)
        return response


def _raw(error: ApiError, request_id: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = _encoder.encode(error.body())
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
        (b"x-request-id", request_id.encode()),
    ]
    status = f"HTTP/1.1 {error.http_status} {HTTPStatus(error.http_status).phrase}\r\n".encode()
    return status + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
