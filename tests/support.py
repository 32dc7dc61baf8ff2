"""Real processes for tests: the `numlookup` command and a running server on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The database the suite runs on: "sqlite" (default) or "postgresql" (a throwaway cluster, see tests/pg.py).
BACKEND = os.environ.get("NUMLOOKUP_TEST_BACKEND", "sqlite")
_database_urls: dict[Path, str] = {}
_cluster: Any = None


def database_url(data_dir: Path, *, migrated: bool = True) -> str:
    """The database of ``data_dir``: its SQLite file, or a fresh PostgreSQL database of its own.

    A PostgreSQL database is migrated at creation, as an operator would with
    ``numlookup db upgrade`` (SQLite migrates itself), unless ``migrated`` is False.
    """
    global _cluster
    if BACKEND == "sqlite":
        return f"sqlite:///{data_dir / 'numlookup.db'}"
    url = _database_urls.get(data_dir)
    if url is None:
        if _cluster is None:
            from tests.pg import PostgresCluster

            _cluster = PostgresCluster().start()
        url = _database_urls[data_dir] = _cluster.create_database()
        if migrated:
            from numlookup.store import make_engine, upgrade

            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
    return url


def cluster() -> Any:
    """The session's PostgreSQL cluster (tests that restart it)."""
    assert _cluster is not None, "no PostgreSQL cluster in a SQLite run"
    return _cluster


def stop_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env["NUMLOOKUP_DATA_DIR"] = str(data_dir)
    if BACKEND != "sqlite":
        env["NUMLOOKUP_DATABASE_URL"] = database_url(data_dir)
    env.update(extra or {})
    return env


def run_cli(
    data_dir: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m numlookup ARGS`` as a user would type it."""
    result = subprocess.run(
        [sys.executable, "-m", "numlookup", *args],
        env=environment(data_dir, env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"numlookup {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def cli_json(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Any:
    return json.loads(run_cli(data_dir, *args, "--json", env=env).stdout)


def until_healthy(url: str, process: subprocess.Popen[Any], timeout: float, details: Callable[[], str]) -> bool:
    """Poll ``url``/healthz until it answers 200 (True) or ``timeout`` passes (False).

    Raises AssertionError, with ``details()`` (the process's log, say), if the process exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited {process.returncode}:\n{details()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


class Server:
    """``numlookup serve`` in a subprocess; the test talks to it over a real socket."""

    module = "numlookup"  # what ``python -m`` runs: a subclass may run another entry point with the same options

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.env = dict(env or {})
        self.host = host
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=environment(self.data_dir, self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        if not until_healthy(self.url, self.process, timeout, self.log_path.read_text):
            self.stop()
            raise AssertionError(f"server did not answer within {timeout}s:\n{self.log_path.read_text()}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL to every process of the server (the uvicorn supervisor and its workers)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of the server's ``GET /metrics`` (a counter's ``name`` ends in ``_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in /metrics:\n{text}")


def wait_for(what: str, check: Callable[[], bool], polls: int = 1200) -> None:
    """Poll every 50 ms, at most ``polls`` times (a bound on waiting, not a measured time)."""
    for _ in range(polls):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@dataclass
class RawResponse:
    """A response read off a raw socket: for tests that must write the request bytes themselves."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def read_response(sock: socket.socket) -> RawResponse:
    """One whole HTTP/1.1 response read off a raw socket (Content-Length framed, as the server answers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return RawResponse(int(status_line.split()[1]), headers, rest[:length])
