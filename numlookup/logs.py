"""Server logs: one line per record on stderr, as JSON for machines or as text for people.

``numlookup serve`` hands :func:`logging_config` to uvicorn, which applies it in
the supervisor and in every worker process, so uvicorn's own records, ours and
those of libraries share one handler and one format. uvicorn's access log is
off: the request-id middleware writes the request log instead, because only it
knows the request id, the client the abuse guard settled on and the account.

A record emitted while a request is handled (a warning deep in the live layer, a
traceback of a 500) carries that request's id without being passed it: the
middleware sets :data:`REQUEST_ID`, a context variable, which the handler's filter
copies onto the record. Starlette runs blocking work in threads with a copy of
the context, so records from those threads carry it too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
import weakref
from contextvars import ContextVar
from datetime import UTC, datetime
from threading import get_ident
from typing import Any, Literal

import msgspec

LogFormat = Literal["json", "text"]

# The request being handled in this context; None outside requests.
REQUEST_ID: ContextVar[str | None] = ContextVar("numlookup_request_id", default=None)

# Fields a record may carry (as ``extra``) beyond the message; in this order in JSON.
REQUEST_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "client",
    "account",
    "auth_failure",
    "username",
)
# ``serve``'s start record carries the settings in effect (no secrets) as one object.
START_FIELDS = ("settings",)

_encoder = msgspec.json.Encoder()


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id on records that do not name one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601 with milliseconds), level, logger, message, fields.

    Only the fields in :data:`REQUEST_FIELDS` and :data:`START_FIELDS` are copied from a record's extras, so
    a library's private attributes (uvicorn's ``color_message``) never leak into
    the line. An exception becomes ``traceback``, one string, so the object stays
    on one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in (*REQUEST_FIELDS, *START_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message request_id=…``, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return text if request_id is None else f"{text} request_id={request_id}"


class TurnStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]  # typeshed: generic over the stream
    """A stream handler that writes the lines logged on an event loop once per turn of that loop.

    Why: the request log is a line per request, and stderr is line-buffered, so
    each line was a ``write`` system call of its own, made on the event loop with
    the GIL held. Lines logged while a loop runs in this thread are formatted at
    once (their content and order are what ``StreamHandler`` writes) and kept;
    the first of a turn schedules one write of them all for the loop's next turn,
    which comes as soon as the turn's callbacks are done. A line from anywhere
    else (a worker thread, no loop) first writes what is kept, then itself, so the
    stream's order is the order of the records. ``flush`` (logging's shutdown
    calls it) writes what is kept, and so does a turn that kept
    ``MAX_KEPT_LINES``; :func:`flush_kept_lines` is for a process ending without
    ``atexit`` (a uvicorn worker: ``serving`` calls it). A process killed
    outright (SIGKILL) loses the lines of the turn it was killed in.
    """

    MAX_KEPT_LINES = 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._kept_by = 0  # the thread whose loop will write the kept lines
        self.writes = 0  # the kept lines written so far, each time: ``turn_json_handler``'s clock
        _turn_handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except RecursionError:  # as StreamHandler: see CPython issue 36272
            raise
        except Exception:
            self.handleError(record)
            return
        self._keep(line, record)

    def emit_line(self, line: str) -> None:
        """Write ``line`` (formatted already, without the terminator) as ``emit`` writes a record's.

        For the request log's line built without a record (see :func:`direct_json_handler`),
        under the handler's lock as logging's ``Handler.handle`` calls ``emit``.
        """
        self.acquire()
        try:
            self._keep(line + self.terminator, None)
        finally:
            self.release()

    def _keep(self, line: str, record: logging.LogRecord | None) -> None:
        kept = self._kept
        if kept and get_ident() == self._kept_by:  # a write is due on this thread's loop: join it
            kept.append(line)
            if len(kept) >= self.MAX_KEPT_LINES:
                self._write_kept(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            kept.append(line)
            self._write_kept(record)
            return
        kept.append(line)
        if len(kept) == 1:
            self._kept_by = get_ident()
            loop.call_soon(self.flush)
        elif len(kept) >= self.MAX_KEPT_LINES:
            self._write_kept(record)

    def keeping_since(self, writes: int) -> bool:
        """Whether this thread's loop keeps lines of its turn, and nothing was written since ``writes``."""
        return self.writes == writes and bool(self._kept) and self._kept_by == get_ident()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_kept(None)
        finally:
            self.release()

    def _write_kept(self, record: logging.LogRecord | None) -> None:
        """Write and flush the kept lines; the caller holds the handler's lock."""
        kept, self._kept = self._kept, []
        self.writes += 1
        stream = self.stream
        if not stream:
            return
        try:
            if kept:
                stream.write("".join(kept))
            if hasattr(stream, "flush"):
                stream.flush()
        except RecursionError:
            raise
        except Exception:
            if record is not None:
                self.handleError(record)


_turn_handlers: weakref.WeakSet[TurnStreamHandler] = weakref.WeakSet()


def direct_json_handler(logger: logging.Logger) -> TurnStreamHandler | None:
    """The handler an INFO record of ``logger`` would reach, when :func:`logging_config`'s JSON one is all it reaches.

    Why: the request log writes a line per request, and a record made for it
    (``LogRecord``'s dozen attributes, the process id and thread name among them,
    then the filter and the formatter's pass over its fields) was a tenth of the
    edge's own time in a loaded worker. When nothing but this handler, with our
    formatter and filter, would see the record, :func:`json_line` writes the
    formatter's line without one. Any other set-up (a test's capture, a text log,
    a handler of someone else's, a filter anywhere) gets None: log a record.
    """
    if logger.disabled or logger.manager.disable >= logging.INFO or not logger.isEnabledFor(logging.INFO):
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or (current.handlers and found is not None) or len(current.handlers) > 1:
            return None
        if current.handlers:
            found = current.handlers[0]
        current = current.parent if current.propagate else None
    if (
        type(found) is not TurnStreamHandler
        or type(found.formatter) is not JsonFormatter
        or found.level > logging.INFO
        or any(type(f) is not RequestIdFilter for f in found.filters)
    ):
        return None
    return found


def turn_json_handler(logger: logging.Logger) -> TurnStreamHandler | None:
    """:func:`direct_json_handler` of ``logger``, found once per loop turn that writes its lines.

    Why: walking the logger chain was the request line's largest part (140 of its
    500 bytecodes), for an answer that changes only when logging is configured
    anew. Found once, the handler is asked again only after it has written what it
    kept (a turn's end, a full turn, ``flush``): reconfiguring logging flushes and
    closes the old handlers, so the lines of the turn that found it are the only
    ones that can still go to it. A handler added in the middle of a turn without
    such a flush (an ``addHandler`` between two requests of one turn) gets that
    turn's later lines through the next turn's walk instead: none is lost, they
    go where the turn began. The caller checks ``isEnabledFor`` first, so a level
    or ``logging.disable`` takes effect at once.
    """
    found = _turn_found.get(logger)
    if found is not None and found[0].keeping_since(found[1]):
        return found[0]
    handler = direct_json_handler(logger)
    if handler is None:
        _turn_found.pop(logger, None)
    else:
        _turn_found[logger] = (handler, handler.writes)
    return handler


_turn_found: dict[logging.Logger, tuple[TurnStreamHandler, int]] = {}  # a logger's handler, its writes when found


def json_line(logger: str, message: str, fields: tuple[object, ...]) -> str:
    """The line :class:`JsonFormatter` writes for an INFO record of ``logger`` with ``message`` and these
    fields (as ``extra``: the values of :data:`REQUEST_FIELDS`, in its order, None where the record has
    none) that passed :class:`RequestIdFilter`, at this moment, in this process.

    Why values and not a dict: the fused edge writes every request's line from the
    values it holds, and a dict made of them only to be read back by name was an
    eighth of the line's bytecode.
    """
    request_id = fields[0]
    line = _RequestLine(
        utc_now_iso(),
        "info",
        logger,
        message,
        _process_id() if logging.logProcesses else None,
        REQUEST_ID.get() if request_id is None else request_id,  # what the filter stamps on a record naming none
        *fields[1:],
    )
    return _encoder.encode(line).decode()


class _RequestLine(msgspec.Struct, omit_defaults=True, gc=False):
    """:class:`JsonFormatter`'s object for a request line: its keys in its order, a field left out where None.

    Why a Struct rather than the formatter's dict: the request log writes one per
    request, and the dict filled field by field (a lookup, a test and a store for
    each of :data:`REQUEST_FIELDS`) cost more than building this positionally
    (``omit_defaults`` leaves out what the dict path skips). ``pid`` has no default:
    the formatter writes it even when null. tests/test_log_lines.py holds the two
    to the same bytes.
    """

    time: str
    level: str
    logger: str
    message: str
    pid: int | None
    request_id: Any = None
    method: Any = None
    path: Any = None
    status: Any = None
    duration_ms: Any = None
    client: Any = None
    account: Any = None
    auth_failure: Any = None
    username: Any = None


class _ProcessId:
    """``os.getpid()``, asked once per process (a system call each time on Linux's C library)."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pid = os.getpid()

    def __call__(self) -> int:
        return self._pid


_process_id = _ProcessId()


def flush_kept_lines() -> None:
    """Write the lines every :class:`TurnStreamHandler` keeps: for a process about to end without ``atexit``."""
    for handler in list(_turn_handlers):
        handler.flush()


def printable(text: str, limit: int) -> str:
    """``text`` fit for a log line whoever wrote it: at most ``limit`` characters of it, then ``…``.

    Characters that are not printable (control characters, line and paragraph
    separators, bidirectional overrides) and the backslash are written as Python
    escapes (``\\x1b``, ``\\u202e``, ``\\\\``), so a client's text can neither forge
    a line of a text log nor hide what it was.
    """
    shown = "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode() for c in text[:limit])
    return shown + "…" if len(text) > limit else shown


def _utc_iso(created: float) -> str:
    """``2026-12-06T10:15:30.123Z``: what ``datetime.fromtimestamp(created, UTC)`` prints to the millisecond.

    Every record's line starts with it, and a loaded server writes thousands a second:
    the text up to the second is made once per second, the milliseconds per record,
    rounded as ``datetime`` rounds (its microseconds half to even, then cut).
    """
    fraction, whole = math.modf(created)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if created < 0 or micros < 0:  # before 1970: not worth a fast path
        return _iso_from_datetime(created)
    second = int(whole)
    return f"{_second_text(second)}{micros // 1000:03d}Z"


def utc_now_iso() -> str:
    """``iso_time(datetime.now(UTC))`` of ``numlookup.results``: now, to the millisecond (cut, as ``datetime`` prints).

    Why: every lookup's answer carries the moment it was checked and every request
    log line the moment it was written, and building a ``datetime`` to print it
    (``now``, ``astimezone``, ``isoformat``, ``replace``) was 1–2 % of the sync
    edge's loop CPU, and :func:`_utc_iso`'s float arithmetic (the rounding a
    record's float ``created`` needs) about as much. Here the clock's integer
    nanoseconds give the second, whose text is made once per second (shared with
    :func:`_utc_iso`), and the millisecond; the whole text is kept for the next call in the same
    millisecond (a loaded loop answers and logs several requests in one: 0.5 µs a call saved).
    """
    millisecond = time.time_ns() // 1_000_000
    last = _last_millisecond[0]  # one read of the pair, as _second_text's
    if last[0] == millisecond:
        return last[1]  # a loaded loop asks several times a millisecond (each answer, each log line)
    text = f"{_second_text(millisecond // 1000)}{millisecond % 1000:03d}Z"
    _last_millisecond[0] = (millisecond, text)
    return text


def _second_text(second: int) -> str:
    """The ISO text of a UTC second, up to its ``.``: made once per second, shared by both clocks above."""
    last = _last_second[0]  # one read of the pair: another thread may be replacing it
    if last[0] != second:
        last = _last_second[0] = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return last[1]


def _iso_from_datetime(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_last_millisecond: list[tuple[int, str]] = [(-1, "")]  # the millisecond utc_now_iso last printed, and its text
_last_second: list[tuple[int, str]] = [(-1, "")]  # the second last printed, and its text up to the milliseconds


def resolve_format(setting: Literal["auto", "json", "text"], stream: Any = None) -> LogFormat:
    """``auto`` is text on a terminal (``make run``) and JSON otherwise (systemd, containers, files)."""
    if setting != "auto":
        return setting
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary for uvicorn's ``log_config``.

    Plain data naming classes by import path: uvicorn pickles it into each worker
    process and applies it there. Everything propagates to one stderr handler on
    the root logger (a :class:`TurnStreamHandler`: one write per loop turn);
    ``uvicorn`` and ``numlookup`` log at ``level``, libraries (httpx logs every
    request at INFO) only from WARNING. uvicorn then sets its ``uvicorn.error``
    level itself, and silences ``uvicorn.access`` because serve passes
    ``access_log=False``.
    """
    formatter = "numlookup.logs.JsonFormatter" if log_format == "json" else "numlookup.logs.TextFormatter"
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "numlookup.logs.RequestIdFilter"}},
        "formatters": {"main": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "numlookup.logs.TurnStreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "uvicorn": {"level": upper},
            "numlookup": {"level": upper},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
