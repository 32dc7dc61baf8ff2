"""Runs the app under uvicorn: logging, worker processes and a graceful shutdown.

On SIGTERM (or Ctrl+C) uvicorn stops listening, lets the requests in flight
finish, for at most ``timeout_graceful_shutdown_seconds``, and then runs the
app's lifespan shutdown, which waits for the last charge commit. Two gaps in
uvicorn's own handling are closed here:

- a keep-alive client whose next request was already on its way when the
  shutdown began lost it to a reset or an empty reply (see
  :class:`DrainingHttpToolsProtocol`);
- with several workers, each worker stopped listening on its own tick while the
  others, and the supervisor until the very end, still held the shared socket:
  clients reconnecting from a draining worker were taken into a queue nobody
  served and then reset, instead of being refused (see :class:`Supervisor`).

A graceful stop exits 0, with one worker or many.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from numlookup.logs import logging_config, resolve_format
from numlookup.settings import Settings

# How long a connection idle when the shutdown begins may still bring one request.
# Long enough for a busy client's next request, which is typically already in
# flight; an idle pool's connections are let go after it.
DRAIN_IDLE_SECONDS = 1.0
# prometheus-client's multiprocess folder (see numlookup.metrics). Named here rather
# than imported: prometheus-client reads it once, at import, which must come after.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# uvicorn's exit status when the app cannot start.
STARTUP_FAILURE = 3


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a shutdown that cuts no request off.

    uvicorn closes every connection without a response in progress at once. Under
    load a keep-alive client has often just sent its next request on such a
    connection, or the server has read part of it: closing then resets the
    connection or ends it without a reply, and the client cannot know whether it
    was charged.

    Here, once the shutdown begins, a connection closes only at a request boundary:
    after the response to a request that was read completely (that response says
    ``Connection: close``). A connection that is idle, or whose response went out
    before its body came in (closing then, with body bytes still arriving, would
    make the kernel reset it), gets ``DRAIN_IDLE_SECONDS`` to bring its next request.
    """

    _draining = False

    def shutdown(self) -> None:
        self._draining = True
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._arm_drain_timer()
        elif not cycle.more_body:
            cycle.keep_alive = False
        # else: on_message_complete or on_response_complete decides.

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._draining and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._draining and not self.transport.is_closing():
            self._arm_drain_timer()

    def _arm_drain_timer(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(DRAIN_IDLE_SECONDS, self.timeout_keep_alive_handler)


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, which stops the listening socket for every worker at once.

    The workers share one listening socket, and uvicorn lets each close its own copy
    when it notices the signal, on its own 0.1 s tick. Meanwhile the clients of a
    worker that is already draining reconnect to the socket, still open in the
    others: some land in its queue just before the last copy closes and are reset
    with their request sent. And the supervisor kept its copy open until every
    worker had exited, so clients that connected in between hung and were then
    reset.

    Here the supervisor's signal handler shuts the socket down, for every process
    holding it, the moment SIGTERM or SIGINT arrives (whether it came to the
    supervisor alone, as from ``docker stop``, or to every process, as from
    systemd), and passes SIGTERM on to the workers at once: from then on a
    connection is refused, never accepted and dropped. A worker's event loop spins
    on the dead socket until it notices the signal (at most one tick). The handler
    only makes system calls; uvicorn's loop then logs the signal, stops supervising
    and waits for the workers, as before.

    The handler signals the workers itself, not with uvicorn's ``terminate()``: that
    also closes the pipe the supervisor pings each worker on, and a signal that came
    during uvicorn's health check (``keep_subprocess_alive``) made it take a healthy
    worker for hung: SIGKILL, requests lost in flight, and a new worker started.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_listening()
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        self.signal_queue.append(signum)

    def _stop_listening(self) -> None:
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already shut down

    def terminate_all(self) -> None:
        self._stop_listening()
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def config(settings: Settings, *, host: str, port: int, workers: int) -> uvicorn.Config:
    """uvicorn's configuration for ``numlookup serve``."""
    return uvicorn.Config(
        "numlookup.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=f"{__name__}:{DrainingHttpToolsProtocol.__name__}",
        log_config=logging_config(resolve_format(settings.log_format), settings.log_level),
        log_level=settings.log_level,
        # The request log is the request-id middleware's (settings.access_log).
        access_log=False,
        timeout_graceful_shutdown=settings.timeout_graceful_shutdown_seconds,
        timeout_keep_alive=settings.timeout_keep_alive_seconds,
        # The app decides who the client is (trusted_proxies); uvicorn must not
        # rewrite the peer from X-Forwarded-For before the app sees it.
        proxy_headers=False,
    )


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Serve until SIGTERM or Ctrl+C, then shut down gracefully and return (exit status 0)."""
    if os.environ.get(METRICS_DIR_VARIABLE):  # the operator chose the folder: theirs to manage
        _serve(settings, host=host, port=port, workers=workers)
        return
    # One folder per serve, so nodes sharing a data directory keep apart; set before
    # any worker imports prometheus-client, which reads it at import.
    folder = tempfile.mkdtemp(prefix="numlookup-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = folder
    try:
        _serve(settings, host=host, port=port, workers=workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    cfg = config(settings, host=host, port=port, workers=workers)
    if cfg.workers > 1:
        Supervisor(cfg, sockets=[cfg.bind_socket()]).run()
        return
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default disposition a SIGTERM would then kill the process (status -15) after
    # an orderly stop. A service manager should see 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server = uvicorn.Server(cfg)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
