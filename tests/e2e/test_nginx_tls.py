"""deploy/nginx/numlookup-tls.conf: numlookup.conf's proxy over HTTPS, run by a real nginx in front of a node.

The certificate is made here with the openssl command: a throwaway CA and a
server certificate it signs for 127.0.0.1. Clients verify it against that CA,
and a client without the CA is refused. As in test_nginx.py the example is
used as written, but for the node addresses, the listen address, the
certificate paths and the log folder.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from numlookup.accounts import create_account, get_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.e2e.test_nginx import EXAMPLE, JSON, NODE_ENV, PROXY, SYNC, Nginx, assert_error, padded, require_nginx
from tests.support import Server, database_url

TLS_EXAMPLE = EXAMPLE.with_name("numlookup-tls.conf")
ESTONIA = "+37251000001"
PRICE = 10_000  # micro-credits: the default 0.01 credits per number
HSTS = "Strict-Transport-Security"
# Directives only TLS needs, which numlookup.conf does not have.
TLS_ONLY = re.compile(r"^(listen|server_name|ssl_\w+|add_header Strict-Transport-Security) ")


def directives(path: Path) -> list[str]:
    """Every directive of an nginx file with the blocks it sits in (``server > location / > proxy_pass …``).

    Comments and layout are dropped; quoted strings are kept whole.
    """
    tokens = re.findall(r"'[^']*'|\"[^\"]*\"|#[^\n]*|[{};]|[^\s{};'\"#]+", path.read_text())
    found: list[str] = []
    context: list[str] = []
    words: list[str] = []
    for token in tokens:
        if token.startswith("#"):  # a comment, to the end of its line (a # inside quotes is part of the string)
            continue
        if token == "{":
            context.append(" ".join(words))
            words = []
        elif token == "}":
            context.pop()
        elif token == ";":
            found.append(" > ".join([*context, " ".join(words)]))
            words = []
        else:
            words.append(token)
    assert not context and not words, f"unbalanced {path}"
    return found


def test_the_tls_file_has_numlookup_confs_proxy_settings_and_nothing_else_but_tls() -> None:
    plain = directives(EXAMPLE)
    tls = directives(TLS_EXAMPLE)
    assert [d for d in tls if not TLS_ONLY.match(d.rsplit(" > ", 1)[-1])] == [
        d for d in plain if not d.startswith("server > listen ")
    ]
    inside = [d.removeprefix("server > ") for d in tls if d.startswith("server > ")]
    assert "listen 443 ssl" in inside
    assert "ssl_protocols TLSv1.2 TLSv1.3" in inside
    assert any(d.startswith('add_header Strict-Transport-Security "max-age=') and d.endswith(" always") for d in inside)
    assert not [d for d in tls if re.search(r"listen (\S+:)?80\b", d)], "nothing on port 80"


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}:\n{done.stderr}"


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian: openssl)")
    folder.mkdir()
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=numlookup test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    openssl("req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={PROXY}", cwd=folder)
    (folder / "server.ext").write_text(
        f"subjectAltName = IP:{PROXY}\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "authorityKeyIdentifier = keyid\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def render_tls_example(node: Server, port: int, folder: Path, certificate: Path, key: Path) -> str:
    text = TLS_EXAMPLE.read_text()
    text, servers = re.subn(
        r"^(\s*)server 10\.0\.0\.11:8080( [^;\n]*)?;\n", rf"\1server {node.host}:{node.port}\2;\n", text, flags=re.M
    )
    text, others = re.subn(r"^\s*server 10\.0\.0\.1\d:8080[^;\n]*;\n", "", text, flags=re.M)  # one node here
    text, listens = re.subn(r"^(\s*)listen 443 ssl;$", rf"\1listen {PROXY}:{port} ssl;", text, flags=re.M)
    text, certs = re.subn(r"^(\s*)ssl_certificate(\s+)\S+;$", rf"\1ssl_certificate\2{certificate};", text, flags=re.M)
    text, keys = re.subn(r"^(\s*)ssl_certificate_key(\s+)\S+;$", rf"\1ssl_certificate_key\2{key};", text, flags=re.M)
    assert (servers, others, listens, certs, keys) == (1, 1, 1, 1, 1)
    assert "/var/log/nginx/" in text
    return text.replace("/var/log/nginx/", f"{folder}/")


class TlsNginx(Nginx):
    """test_nginx's nginx, running the TLS example; answers https:// only."""

    def __init__(self, folder: Path, node: Server, ca: Path, certificate: Path, key: Path) -> None:
        super().__init__(folder, [node, node])  # writes numlookup.conf's rendering, replaced here
        (folder / "numlookup.conf").write_text(render_tls_example(node, self.port, folder, certificate, key))
        self.ca = ca

    @property
    def url(self) -> str:
        return f"https://{PROXY}:{self.port}"

    def verified(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self, timeout: float = 20.0) -> TlsNginx:
        config = self.folder / "nginx.conf"
        command = [self.binary, "-p", str(self.folder), "-c", str(config), "-e", str(self.folder / "error.log")]
        checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx rejects the rendered TLS example:\n{checked.stderr}"
        self.process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"nginx exited:\n{self.errors()}"
            try:
                if httpx.get(self.url + "/healthz", verify=self.verified(), timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"nginx did not answer over https within {timeout}s:\n{self.errors()}")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsNginx, Engine]]:
    require_nginx()
    folder = tmp_path_factory.mktemp("nginx-tls")
    ca, certificate, key = make_certificates(folder / "tls")
    data_dir = folder / "node"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    node = Server(data_dir, env=NODE_ENV).start()
    nginx: TlsNginx | None = None
    try:
        nginx = TlsNginx(folder / "nginx", node, ca, certificate, key).start()
        yield nginx, engine
    finally:
        if nginx is not None:
            nginx.stop()
        node.stop()
        engine.dispose()


def test_a_lookup_over_https_verified_against_the_ca_is_answered_and_charged(proxied: tuple[TlsNginx, Engine]) -> None:
    nginx, engine = proxied
    creds = create_account(engine, "over-tls", credits=parse_amount("1"))
    with httpx.Client(
        base_url=nginx.url, verify=nginx.verified(), auth=(creds.api_username, creds.api_password)
    ) as client:
        response = client.post(SYNC, json={"numbers": [ESTONIA]}, headers=JSON, timeout=30)
        assert response.status_code == 200, response.text
        stream = response.extensions["network_stream"]
        version = stream.get_extra_info("ssl_object").version()
    assert version in ("TLSv1.2", "TLSv1.3")
    assert response.json()["result"][0]["number"] == ESTONIA
    assert response.headers["x-request-id"] == response.json()["request_id"]
    assert response.headers[HSTS].startswith("max-age=")
    assert get_account(engine, "over-tls").balance == 1_000_000 - PRICE


def test_hsts_comes_with_errors_too_both_the_nodes_and_nginxs_own(proxied: tuple[TlsNginx, Engine]) -> None:
    nginx, _ = proxied
    with httpx.Client(base_url=nginx.url, verify=nginx.verified(), auth=("nobody", "wrong"), timeout=30) as client:
        refused = client.post(SYNC, json={"numbers": [ESTONIA]}, headers=JSON)
        too_large = client.post(SYNC, content=padded(1_000_000), headers=JSON)
    assert_error(refused, 401, 101)
    assert_error(too_large, 413, 102)
    assert "x-request-id" not in too_large.headers  # nginx's own answer
    assert refused.headers[HSTS] == too_large.headers[HSTS]


def test_a_client_that_does_not_trust_the_ca_is_refused(proxied: tuple[TlsNginx, Engine]) -> None:
    nginx, _ = proxied
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(nginx.url + "/healthz", timeout=10)  # the system's CAs, not ours


def test_plain_http_to_the_tls_port_gets_no_lookup(proxied: tuple[TlsNginx, Engine]) -> None:
    nginx, _ = proxied
    response = httpx.post(nginx.url.replace("https://", "http://") + SYNC, json={"numbers": [ESTONIA]}, timeout=10)
    assert response.status_code == 400  # nginx: "The plain HTTP request was sent to HTTPS port"
    assert "x-request-id" not in response.headers
