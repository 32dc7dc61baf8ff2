"""A real osmo-hlr for tests: start it, provision subscribers, attach them as a VLR would.

``start_osmo_hlr(tmp_dir)`` writes a config and an empty SQLite database under
``tmp_dir`` and runs ``osmo-hlr -c CFG -l DB``. Subscribers are created over the
VTY (the telnet-style admin port, 4258) exactly as an operator would, and put on
a VLR/SGSN by ``attach``: a tiny test VLR that connects to GSUP (4222), names
itself in the IPA identity exchange (osmo-hlr records that name as the
subscriber's ``vlr_number``/``sgsn_number``), and runs the Update Location
dialogue.

Addresses: osmo-hlr 1.5.0 lets the VTY port be configured but not the CTRL
(4259) or GSUP (4222) ports — only the address they bind. So every instance gets
its own loopback address in 127.0.0.0/8 (Linux answers the whole /8 on ``lo``
without configuration) with the standard ports. That keeps instances from
colliding with each other and with a system osmo-hlr that the Debian package
starts on 127.0.0.1.

The fixtures at the bottom (``osmo_hlr_binary``, ``osmo_hlr``) are imported by
test modules that need them.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from numlookup.live import ipa

ROOT = Path(__file__).resolve().parent.parent.parent
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-osmo-hlr.sh"

CTRL_PORT = 4259
VTY_PORT = 4258
GSUP_PORT = 4222

# GSUP (libosmocore gsup.h): message types and information elements we use.
GSUP_UPDATE_LOCATION_REQUEST = 0x04
GSUP_UPDATE_LOCATION_ERROR = 0x05
GSUP_UPDATE_LOCATION_RESULT = 0x06
GSUP_PURGE_MS_REQUEST = 0x0C
GSUP_PURGE_MS_ERROR = 0x0D
GSUP_PURGE_MS_RESULT = 0x0E
GSUP_INSERT_DATA_REQUEST = 0x10
GSUP_INSERT_DATA_RESULT = 0x12
GSUP_IE_IMSI = 0x01
GSUP_IE_CAUSE = 0x02
GSUP_IE_CN_DOMAIN = 0x28
CN_DOMAIN = {"ps": 1, "cs": 2}

STARTUP_TIMEOUT = 10.0
DIALOGUE_TIMEOUT = 5.0


class HarnessError(RuntimeError):
    """osmo-hlr did not do what a test asked of it (the message says what it answered)."""


class GsupError(HarnessError):
    """osmo-hlr answered a GSUP request with an error message (``cause`` is the GMM cause)."""

    def __init__(self, message: str, cause: int | None) -> None:
        super().__init__(message)
        self.cause = cause


# --- finding / installing the binary -------------------------------------------------------

_install_attempted: list[str] = []


def find_osmo_hlr() -> str | None:
    """The osmo-hlr executable: on PATH, or where the package puts it (a trimmed PATH may miss it)."""
    return shutil.which("osmo-hlr") or next(
        (str(p) for p in (Path("/usr/bin/osmo-hlr"), Path("/usr/local/bin/osmo-hlr")) if p.exists()), None
    )


def require_osmo_hlr() -> str:
    """The osmo-hlr executable; installs it through the project script once if missing, else skips.

    ``make test`` runs the same script before pytest, so this path only matters
    for a bare ``pytest``; the skip is reserved for machines where installing
    is impossible (no apt, not root and no password-less sudo, no registry).
    """
    binary = find_osmo_hlr()
    if binary:
        return binary
    if not _install_attempted:
        _install_attempted.append(_try_install())
    binary = find_osmo_hlr()
    if binary:
        return binary
    pytest.skip(f"osmo-hlr is not installed and could not be installed: {_install_attempted[0]}")


def _try_install() -> str:
    """Run the install script without a terminal (so sudo cannot prompt); returns what it said last."""
    try:
        result = subprocess.run(
            ["sh", str(ENSURE_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    lines = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()
    return lines[-1]


# --- the process ---------------------------------------------------------------------------


def _ports_free(address: str) -> bool:
    for port in (CTRL_PORT, VTY_PORT, GSUP_PORT):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def pick_loopback_address() -> str:
    """A 127.x.y.z address whose CTRL/VTY/GSUP ports are free (see the module docstring)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(100):
        address = f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if _ports_free(address):
            return address
    raise HarnessError("no free loopback address for osmo-hlr")


@dataclass
class OsmoHlr:
    """One osmo-hlr process with its own database, config and loopback address."""

    binary: str
    workdir: Path
    address: str
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    ctrl_port: int = CTRL_PORT
    vty_port: int = VTY_PORT
    gsup_port: int = GSUP_PORT

    @property
    def config_path(self) -> Path:
        return self.workdir / "osmo-hlr.cfg"

    @property
    def db_path(self) -> Path:
        return self.workdir / "hlr.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "osmo-hlr.log"

    def write_config(self) -> None:
        # Config keys of osmo-hlr 1.5.0: `line vty`/`bind A.B.C.D [<port>]`,
        # `ctrl`/`bind A.B.C.D`, `hlr`/`gsup`/`bind ip A.B.C.D`.
        self.config_path.write_text(
            "log stderr\n"
            " logging filter all 1\n"
            " logging color 0\n"
            " logging print category 1\n"
            " logging print level 1\n"
            " logging level main notice\n"
            " logging level db notice\n"
            " logging level lgsup notice\n"
            " logging level linp error\n"
            "line vty\n"
            f" bind {self.address} {self.vty_port}\n"
            "ctrl\n"
            f" bind {self.address}\n"
            "hlr\n"
            " gsup\n"
            f"  bind ip {self.address}\n"
        )

    def start(self) -> None:
        """Start osmo-hlr and wait until CTRL, VTY and GSUP all accept connections."""
        if self.process is not None and self.process.poll() is None:
            return
        self.write_config()
        log = open(self.log_path, "ab")
        self._log = log
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path), "-l", str(self.db_path)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        waiting = [self.ctrl_port, self.vty_port, self.gsup_port]
        while waiting:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise HarnessError(f"osmo-hlr exited with {code}:\n{self.log_tail()}")
            try:
                socket.create_connection((self.address, waiting[0]), timeout=0.5).close()
                waiting.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError(f"osmo-hlr did not open port {waiting[0]}:\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop osmo-hlr: SIGTERM, then SIGKILL after 5 s. Its database stays."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- VTY provisioning ------------------------------------------------------------------

    def vty(self, *commands: str) -> list[str]:
        """Run commands in the VTY's enable node; returns each command's output.

        Raises ``HarnessError`` when osmo-hlr answers with an error line ("% …"
        other than its "% Created/Updated/Deleted …" confirmations).
        """
        outputs: list[str] = []
        with Vty(self.address, self.vty_port) as session:
            session.command("enable")
            for command in commands:
                output = session.command(command)
                for line in output.splitlines():
                    line = line.strip()
                    if line.startswith("%") and not line.startswith(("% Created", "% Updated", "% Deleted")):
                        raise HarnessError(f"osmo-hlr VTY refused {command!r}: {line}")
                outputs.append(output)
        return outputs

    def create_subscriber(self, imsi: str, msisdn: str | None = None, mode: str = "cs+ps") -> None:
        commands = [f"subscriber imsi {imsi} create"]
        if msisdn is not None:
            commands.append(f"subscriber imsi {imsi} update msisdn {msisdn}")
        if mode != "cs+ps":  # the default for a new subscriber
            commands.append(f"subscriber imsi {imsi} update network-access-mode {mode}")
        self.vty(*commands)

    def set_network_access_mode(self, imsi: str, mode: str) -> None:
        """``none``, ``cs``, ``ps`` or ``cs+ps``."""
        self.vty(f"subscriber imsi {imsi} update network-access-mode {mode}")

    def update_msisdn(self, imsi: str, msisdn: str) -> None:
        self.vty(f"subscriber imsi {imsi} update msisdn {msisdn}")

    def delete_subscriber(self, imsi: str) -> None:
        self.vty(f"subscriber imsi {imsi} delete")

    # --- a test VLR over GSUP --------------------------------------------------------------

    def attach(self, imsi: str, vlr_name: str, cn_domain: str = "cs") -> None:
        """Put ``imsi`` on the VLR (``cs``) or SGSN (``ps``) named ``vlr_name``.

        Runs the Update Location dialogue as an MSC/VLR or SGSN does; raises
        ``GsupError`` if osmo-hlr rejects it (unknown IMSI, domain not allowed).
        """
        with TestVlr(self.address, self.gsup_port, vlr_name) as vlr:
            vlr.update_location(imsi, cn_domain)

    def purge(self, imsi: str, vlr_name: str, cn_domain: str = "cs") -> None:
        """Tell osmo-hlr the VLR dropped ``imsi`` (GSUP Purge MS): it sets ``ms_purged_cs/ps``."""
        with TestVlr(self.address, self.gsup_port, vlr_name) as vlr:
            vlr.purge_ms(imsi, cn_domain)


def start_osmo_hlr(tmp_dir: Path, binary: str | None = None) -> OsmoHlr:
    """Start a fresh osmo-hlr whose files live in ``tmp_dir``; the caller stops it."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    hlr = OsmoHlr(binary=binary or require_osmo_hlr(), workdir=tmp_dir, address=pick_loopback_address())
    hlr.start()
    return hlr


class Vty:
    """A minimal telnet client for the Osmocom VTY: send a line, read up to the next prompt."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=DIALOGUE_TIMEOUT)
        self.buffer = b""
        self.read_to_prompt()

    def __enter__(self) -> Vty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def read_to_prompt(self) -> str:
        """Everything up to the next prompt ("OsmoHLR> " in view, "OsmoHLR# " in enable mode).

        Telnet option negotiation (IAC …) precedes the first prompt; it is
        dropped unanswered, which the VTY tolerates.
        """
        while True:
            text = _strip_telnet(self.buffer).decode("utf-8", "replace").replace("\r\n", "\n")
            for prompt in ("OsmoHLR> ", "OsmoHLR# "):
                if text.endswith(prompt):
                    self.buffer = b""
                    return text[: -len(prompt)]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HarnessError(f"osmo-hlr VTY closed the connection after {text[-200:]!r}")
            self.buffer += chunk

    def command(self, line: str) -> str:
        """Send one command; returns its output without the echo and prompt."""
        self.sock.sendall(line.encode() + b"\n")
        output = self.read_to_prompt()
        echo, _, rest = output.partition("\n")
        return rest if echo.strip() == line else output


def _strip_telnet(data: bytes) -> bytes:
    """Remove telnet IAC command sequences (3 bytes each; the VTY sends WILL/WONT/DO)."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0xFF and i + 2 < len(data):
            i += 3
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


# --- GSUP ----------------------------------------------------------------------------------


def tbcd(digits: str) -> bytes:
    """TBCD-encode digits (two per octet, low nibble first, 0xF filler), as GSUP carries an IMSI."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16) for i in range(0, len(digits), 2))


def gsup_ie(tag: int, value: bytes) -> bytes:
    return bytes((tag, len(value))) + value


def gsup_decode(payload: bytes) -> tuple[int, dict[int, bytes]]:
    """Message type and IEs (tag → value; the last wins) of one GSUP message."""
    if not payload:
        raise HarnessError("empty GSUP message")
    ies: dict[int, bytes] = {}
    pos = 1
    while pos + 2 <= len(payload):
        tag, length = payload[pos], payload[pos + 1]
        ies[tag] = payload[pos + 2 : pos + 2 + length]
        pos += 2 + length
    return payload[0], ies


class TestVlr:
    """A GSUP client that behaves as an MSC/VLR (or SGSN) named ``name`` — just enough for osmo-hlr."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, host: str, port: int, name: str) -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=DIALOGUE_TIMEOUT)
        self.buffer = b""

    def __enter__(self) -> TestVlr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send_gsup(self, payload: bytes) -> None:
        self.sock.sendall(ipa.encode(ipa.STREAM_OSMO, payload, ipa.EXT_GSUP))

    def recv_gsup(self) -> tuple[int, dict[int, bytes]]:
        """The next GSUP message, answering IPA CCM (identity, ping) on the way."""
        while True:
            stream, body = self._recv_frame()
            if stream == ipa.STREAM_CCM and body:
                if body[0] == ipa.CCM_ID_GET:
                    self.sock.sendall(ipa.encode(ipa.STREAM_CCM, ipa.encode_id_resp(ipa.identity(self.name))))
                elif body[0] == ipa.CCM_PING:
                    self.sock.sendall(ipa.encode(ipa.STREAM_CCM, bytes((ipa.CCM_PONG,))))
                continue
            if stream == ipa.STREAM_OSMO and body[:1] == bytes((ipa.EXT_GSUP,)):
                return gsup_decode(body[1:])

    def _recv_frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buffer) >= 3:
                length = int.from_bytes(self.buffer[:2], "big")
                if len(self.buffer) >= 3 + length:
                    stream, body = self.buffer[2], self.buffer[3 : 3 + length]
                    self.buffer = self.buffer[3 + length :]
                    return stream, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HarnessError("osmo-hlr closed the GSUP connection")
            self.buffer += chunk

    def identify(self) -> None:
        """Complete the identity exchange osmo-hlr starts on connect (its ID_GET)."""
        stream, body = self._recv_frame()
        if stream != ipa.STREAM_CCM or body[:1] != bytes((ipa.CCM_ID_GET,)):
            raise HarnessError(f"expected an IPA ID_GET from osmo-hlr, got stream 0x{stream:02x} {body!r}")
        # osmo-hlr asks for the unit name but files the peer (and so the
        # subscriber's vlr_number) under the serial number tag; ipa.identity
        # gives the name as both.
        self.sock.sendall(ipa.encode(ipa.STREAM_CCM, ipa.encode_id_resp(ipa.identity(self.name))))

    def update_location(self, imsi: str, cn_domain: str = "cs") -> None:
        self.identify()
        imsi_ie = gsup_ie(GSUP_IE_IMSI, tbcd(imsi))
        self.send_gsup(
            bytes((GSUP_UPDATE_LOCATION_REQUEST,))
            + imsi_ie
            + gsup_ie(GSUP_IE_CN_DOMAIN, bytes((CN_DOMAIN[cn_domain],)))
        )
        while True:
            kind, ies = self.recv_gsup()
            if kind == GSUP_INSERT_DATA_REQUEST:
                self.send_gsup(bytes((GSUP_INSERT_DATA_RESULT,)) + gsup_ie(GSUP_IE_IMSI, ies.get(GSUP_IE_IMSI, b"")))
            elif kind == GSUP_UPDATE_LOCATION_RESULT:
                return
            elif kind == GSUP_UPDATE_LOCATION_ERROR:
                cause = ies.get(GSUP_IE_CAUSE, b"")
                raise GsupError(
                    f"Update Location for {imsi} rejected (cause {cause.hex()})", cause[0] if cause else None
                )

    def purge_ms(self, imsi: str, cn_domain: str = "cs") -> None:
        self.identify()
        self.send_gsup(
            bytes((GSUP_PURGE_MS_REQUEST,))
            + gsup_ie(GSUP_IE_IMSI, tbcd(imsi))
            + gsup_ie(GSUP_IE_CN_DOMAIN, bytes((CN_DOMAIN[cn_domain],)))
        )
        while True:
            kind, ies = self.recv_gsup()
            if kind == GSUP_PURGE_MS_RESULT:
                return
            if kind == GSUP_PURGE_MS_ERROR:
                cause = ies.get(GSUP_IE_CAUSE, b"")
                raise GsupError(f"Purge MS for {imsi} rejected (cause {cause.hex()})", cause[0] if cause else None)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def osmo_hlr_binary() -> str:
    """The osmo-hlr executable (installed on first use if possible, else the test is skipped)."""
    return require_osmo_hlr()


@pytest.fixture(scope="module")
def osmo_hlr(osmo_hlr_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OsmoHlr]:
    """One osmo-hlr shared by a module's tests: give each test its own IMSIs and MSISDNs."""
    hlr = start_osmo_hlr(tmp_path_factory.mktemp("osmo-hlr"), osmo_hlr_binary)
    try:
        yield hlr
    finally:
        hlr.stop()
