"""A real webhook receiver on 127.0.0.1 that verifies every delivery with the official ``standardwebhooks`` library.

It plays a script of answers, one per request in arrival order, then ``then``
for the rest: ``ok`` (204), an HTTP status (``500``, ``410``), ``reset`` (the
connection closed with a TCP RST, no answer), ``redirect`` (a 302 to this
receiver's ``/trap``: a sender that follows it shows up in ``trapped``),
``429:N`` (429 with ``Retry-After: N``) and ``hold`` (wait until ``release``
is set, then 204: a delivery kept in flight for as long as a test needs).

Each request is recorded with its headers, its raw body and, per secret the
receiver knows, whether ``Webhook(secret).verify(body, headers)`` accepted it.
It verifies the raw bytes, as receivers must.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: dict[str, bool]  # secret → accepted
    answer: str

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    then: str = "ok"
    requests: list[Received] = field(default_factory=list)
    trapped: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)  # set once a "hold" request arrived

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path == "/trap":
                    receiver.trapped.append(self.path)
                    self._answer(204)
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = {}
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified[secret] = True
                    except WebhookVerificationError:
                        verified[secret] = False
                with receiver._lock:
                    n = len(receiver.requests)
                    answer = receiver.script[n] if n < len(receiver.script) else receiver.then
                    receiver.requests.append(Received(self.path, headers, body, verified, answer))
                self._play(answer)

            def _play(self, answer: str) -> None:
                if answer == "ok":
                    self._answer(204)
                elif answer == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                elif answer == "redirect":
                    self._answer(302, {"Location": receiver.url("/trap")})
                elif answer.startswith("429:"):
                    self._answer(429, {"Retry-After": answer.split(":", 1)[1]})
                elif answer == "hold":
                    receiver.held.set()
                    receiver.release.wait(60)
                    try:
                        self._answer(204)
                    except OSError:
                        pass  # the sender is gone
                else:
                    self._answer(int(answer))

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.answer in ("ok", "hold")]
