"""Two numlookup nodes on one database behind a real nginx running deploy/nginx/numlookup.conf.

The example config is used as written; only the node addresses, the listen
address and the log directory are replaced (the file says so). nginx runs as a
child of the test with its own prefix, pid file, logs and temporary folders.

Loopback holds every 127.x address: nginx listens on 127.0.0.1 and reaches the
nodes from 127.0.0.1, the one address the nodes trust as a proxy; clients
speak from 127.0.0.2 and 127.0.0.3, so the allow-list can tell them apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from numlookup.accounts import NewCredentials, create_account, get_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import ledger
from tests.support import ROOT, Server, database_url, free_port, until_healthy

EXAMPLE = ROOT / "deploy" / "nginx" / "numlookup.conf"
SYNC = "/v1/hlr/sync"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
PROXY = "127.0.0.1"  # nginx's address, as the nodes see it
CLIENT = "127.0.0.2"  # the client an allow-list lets in
STRANGER = "127.0.0.3"  # a client it does not
NODE_ENV = {"NUMLOOKUP_TRUSTED_PROXIES": json.dumps([PROXY + "/32"])}
PRICE = 10_000  # micro-credits: the default 0.01 credits per number
ESTONIA, BRITAIN = "+37251000001", "+447712345678"
SERVER_LIMIT = 64 * 1024  # the nodes' max_body_bytes
LOG_LINE = re.compile(  # the example's log_format
    r'"(?P<request>[^"]*)" (?P<status>\d+) \d+ upstream=(?P<upstream>.*) upstream_status=(?P<upstream_status>.*) '
    r"request_id=(?P<request_id>\S*) "
)


def find_nginx() -> str | None:
    """The nginx executable: on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def require_nginx() -> str:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (scripts/ensure-nginx.sh installs it; `make test` runs that script)")
    return binary


def render_example(nodes: list[Server], port: int, log_dir: Path) -> str:
    """The example config with this test's nodes, listen address and log folder, everything else as written."""
    text = EXAMPLE.read_text()
    servers = list(re.finditer(r"^(\s*)server 10\.0\.0\.1\d:8080( [^;\n]*)?;\n", text, re.M))
    assert len(servers) == len(nodes), "the example's upstream lists one node per test node"
    for match, node in zip(reversed(servers), reversed(nodes), strict=True):
        line = f"{match.group(1)}server {node.host}:{node.port}{match.group(2) or ''};\n"
        text = text[: match.start()] + line + text[match.end() :]
    text, listens = re.subn(r"^(\s*)listen 80;$", rf"\1listen {PROXY}:{port};", text, flags=re.M)
    assert listens == 1, "the example listens on port 80 once"
    assert "/var/log/nginx/" in text
    return text.replace("/var/log/nginx/", f"{log_dir}/")


class Nginx:
    """nginx in the foreground (``daemon off``), configured inside ``folder``; needs no root."""

    def __init__(self, folder: Path, nodes: list[Server]) -> None:
        self.binary = require_nginx()
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "numlookup.conf").write_text(render_example(nodes, self.port, folder))
        temp = {name: folder / "temp" / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(parents=True, exist_ok=True)
        # Run as root (CI does), nginx would switch its workers to `nobody`, which
        # may not enter the test's private temporary folder: keep them as root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            f"pid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            # Debian's nginx has its temporary folders and default access log
            # under /var: everything goes into the test's folder instead.
            f"    client_body_temp_path {temp['client_body']};\n"
            f"    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n"
            f"    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"    access_log {folder / 'access.log'};\n"
            f"    include {folder / 'numlookup.conf'};\n"
            "}\n"
        )

    @property
    def url(self) -> str:
        return f"http://{PROXY}:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.folder / "numlookup.access.log"

    def start(self, timeout: float = 20.0) -> Nginx:
        config = self.folder / "nginx.conf"
        command = [self.binary, "-p", str(self.folder), "-c", str(config), "-e", str(self.folder / "error.log")]
        checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx rejects the rendered example:\n{checked.stderr}"
        self.process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not until_healthy(self.url, self.process, timeout, self.errors):
            self.stop()
            raise AssertionError(f"nginx did not answer within {timeout}s:\n{self.errors()}")
        return self

    def stop(self) -> None:
        """Graceful stop (SIGQUIT): workers finish their requests and every log line is written."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def errors(self) -> str:
        path = self.folder / "error.log"
        return path.read_text() if path.exists() else "(no error log)"

    def log_lines(self) -> list[dict[str, str]]:
        """The access log, parsed; complete only after ``stop`` (nginx writes a line after answering)."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        parsed = [LOG_LINE.search(line) for line in lines]
        assert all(parsed), f"access log lines not in the example's log_format:\n{lines}"
        return [m.groupdict() for m in parsed if m]


@dataclass
class Cluster:
    nodes: list[Server]
    nginx: Nginx
    engine: Engine
    accounts: int = 0

    def account(self, credits: str = "100", allow: tuple[str, ...] = ("0.0.0.0/0", "::/0")) -> NewCredentials:
        self.accounts += 1
        return create_account(self.engine, f"behind-nginx-{self.accounts}", credits=parse_amount(credits), allow=allow)

    def client(self, creds: NewCredentials | None, source: str = CLIENT, url: str | None = None) -> httpx.Client:
        """A client connecting from ``source`` to nginx (or to ``url``)."""
        auth = (creds.api_username, creds.api_password) if creds else None
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=url or self.nginx.url, auth=auth, timeout=60, transport=transport)

    def charges(self, creds: NewCredentials) -> dict[str, int]:
        """The account's lookup ledger rows: request id -> amount (negative)."""
        account = get_account(self.engine, creds.name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ledger.c.request_id, ledger.c.amount).where(
                    ledger.c.account_id == account.id, ledger.c.kind == "lookup"
                )
            ).all()
        return {row.request_id: row.amount for row in rows}

    def balance(self, creds: NewCredentials) -> int:
        return get_account(self.engine, creds.name).balance


def start_cluster(folder: Path) -> Iterator[Cluster]:
    data_dir = folder / "shared"  # one data folder, so both nodes use one SQLite file or one PostgreSQL database
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    nodes = [Server(data_dir, env=NODE_ENV) for _ in range(2)]
    nginx: Nginx | None = None
    try:
        for node in nodes:
            node.start()
        nginx = Nginx(folder / "nginx", nodes).start()
        yield Cluster(nodes=nodes, nginx=nginx, engine=engine)
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes:
            node.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_nginx()
    yield from start_cluster(tmp_path_factory.mktemp("nginx"))


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for a test that kills its nodes."""
    require_nginx()
    yield from start_cluster(tmp_path)


def lookup(client: httpx.Client, *numbers: str) -> httpx.Response:
    return client.post(SYNC, json={"numbers": list(numbers)}, headers=JSON)


def assert_error(response: httpx.Response, status: int, code: int) -> str:
    """Our error body, both shapes; returns the description."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert body["errors"] == [{"error": body["error"]}]
    return str(body["error"]["description"])


def test_lookups_through_nginx_are_answered_by_both_nodes_and_charged_once(cluster: Cluster) -> None:
    creds = cluster.account(credits="1")
    ids: list[str] = []
    with cluster.client(creds) as client:
        for _ in range(4):
            response = lookup(client, ESTONIA, BRITAIN, ESTONIA, "12345")  # two distinct valid numbers, one invalid
            assert response.status_code == 200, response.text
            body = response.json()
            assert [r["number"] for r in body["result"]] == [ESTONIA, BRITAIN, ESTONIA, "+12345"]
            assert response.headers["x-request-id"] == body["request_id"]  # passed through by nginx
            ids.append(body["request_id"])
    assert len(set(ids)) == 4
    assert cluster.charges(creds) == {request_id: -2 * PRICE for request_id in ids}
    assert cluster.balance(creds) == 1_000_000 - 4 * 2 * PRICE

    # nginx spread the requests over both nodes and logged each node's request id.
    cluster.nginx.stop()
    try:
        served = {
            line["request_id"]: line["upstream"] for line in cluster.nginx.log_lines() if line["request_id"] in ids
        }
    finally:
        cluster.nginx.start()
    assert set(served) == set(ids)
    assert set(served.values()) == {f"{node.host}:{node.port}" for node in cluster.nodes}


def test_the_allow_list_sees_the_real_client_and_a_forged_forwarded_for_changes_nothing(cluster: Cluster) -> None:
    creds = cluster.account(credits="1", allow=(f"{CLIENT}/32",))
    with cluster.client(creds, source=CLIENT) as client:
        allowed = lookup(client, ESTONIA)
    assert allowed.status_code == 200, allowed.text

    forgeries = [
        {},
        {"X-Forwarded-For": CLIENT},
        {"X-Forwarded-For": f"{CLIENT}, {CLIENT}"},
        {"X-Forwarded-For": f"{STRANGER}, {CLIENT}"},
        {"X-Real-IP": CLIENT, "Forwarded": f"for={CLIENT}"},
    ]
    # A stranger, and a client on nginx's own address (which the nodes trust as a
    # proxy): nginx replaces X-Forwarded-For with the address it saw.
    for source in (STRANGER, PROXY):
        with cluster.client(creds, source=source) as client:
            for headers in forgeries:
                response = client.post(SYNC, json={"numbers": [ESTONIA]}, headers={**JSON, **headers})
                assert_error(response, 401, 101)

    # A node reached directly, not through nginx, believes X-Forwarded-For only from nginx's address.
    with cluster.client(creds, source=STRANGER, url=cluster.nodes[0].url) as client:
        response = client.post(SYNC, json={"numbers": [ESTONIA]}, headers={**JSON, "X-Forwarded-For": CLIENT})
        assert_error(response, 401, 101)

    assert cluster.charges(creds) == {allowed.json()["request_id"]: -PRICE}


def padded(size: int) -> bytes:
    """A valid lookup body of ``size`` bytes (the padding is an unknown key, which the server ignores)."""
    head = b'{"numbers": ["' + ESTONIA.encode() + b'"], "padding": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_oversized_bodies_get_the_json_413_and_are_not_charged(cluster: Cluster) -> None:
    creds = cluster.account(credits="1")
    with cluster.client(creds) as client:
        # Just under the nodes' limit: answered.
        fits = client.post(SYNC, content=padded(SERVER_LIMIT), headers=JSON)
        assert fits.status_code == 200, fits.text

        # Over the nodes' limit but within nginx's: the node itself refuses it.
        for body in (padded(SERVER_LIMIT + 1), padded(100_000)):
            response = client.post(SYNC, content=body, headers=JSON)
            description = assert_error(response, 413, 102)
            assert str(SERVER_LIMIT) in description
            assert "x-request-id" in response.headers  # a node's answer

        # The same without Content-Length (chunked): nginx reads it whole, the node refuses it.
        chunks = [padded(100_000)[i : i + 8192] for i in range(0, 100_000, 8192)]
        response = client.post(SYNC, content=iter(chunks), headers=JSON)
        assert str(SERVER_LIMIT) in assert_error(response, 413, 102)

        # Over nginx's own limit: nginx answers, with the same body shape and code.
        response = client.post(SYNC, content=padded(1_000_000), headers=JSON)
        assert_error(response, 413, 102)
        assert "x-request-id" not in response.headers

        # The client goes on as before.
        after = lookup(client, ESTONIA)
        assert after.status_code == 200, after.text
    assert cluster.charges(creds) == {fits.json()["request_id"]: -PRICE, after.json()["request_id"]: -PRICE}


def test_when_a_node_dies_nginx_serves_from_the_other_and_charges_once(own_cluster: Cluster) -> None:
    cluster = own_cluster
    dead, alive = cluster.nodes
    creds = cluster.account(credits="1")
    ok: list[str] = []
    with cluster.client(creds) as client:
        # Both nodes serve, so nginx holds idle keep-alive connections to both.
        for _ in range(4):
            response = lookup(client, ESTONIA)
            assert response.status_code == 200, response.text
            ok.append(response.json()["request_id"])

        dead.kill()
        after_kill: list[str] = []
        for _ in range(10):
            response = lookup(client, ESTONIA)
            assert response.status_code == 200, response.text
            after_kill.append(response.json()["request_id"])

        # With no node left, nginx answers 502 in our error shape, and nothing is charged.
        alive.kill()
        response = lookup(client, ESTONIA)
        assert "may have been charged" in assert_error(response, 502, 103)

    assert cluster.charges(creds) == {request_id: -PRICE for request_id in ok + after_kill}
    assert cluster.balance(creds) == 1_000_000 - len(ok + after_kill) * PRICE

    cluster.nginx.stop()
    served = {line["request_id"]: line for line in cluster.nginx.log_lines()}
    dead_addr, alive_addr = f"{dead.host}:{dead.port}", f"{alive.host}:{alive.port}"
    # Every request after the kill was answered by the live node; the one that
    # nginx first sent towards the dead node was refused at connect and passed on
    # (never sent twice: its one ledger row is above).
    assert {served[request_id]["upstream"].split(", ")[-1] for request_id in after_kill} == {alive_addr}
    failed_over = [served[request_id] for request_id in after_kill if ", " in served[request_id]["upstream"]]
    assert failed_over, "some request after the kill was first sent towards the dead node"
    assert all(line["upstream"] == f"{dead_addr}, {alive_addr}" for line in failed_over), failed_over
    assert all(line["upstream_status"] == "502, 200" for line in failed_over), failed_over
