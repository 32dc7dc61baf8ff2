"""Real DNS servers for the ENUM tests: NSD serving a zone from a temporary folder, and one that never answers.

``Nsd`` writes a zone file and an ``nsd.conf`` into its folder and runs Debian's
``nsd`` (NLnet Labs' authoritative server) in the foreground (``-d``) on a
loopback address of its own (127.x.y.z, any of which Linux answers on ``lo``)
and a free high port, never 53 and never as the system service. What it
answers, and why each case is real DNS and not an imitation:

- names in a zone it serves: NOERROR with the records, NXDOMAIN for the rest;
- names in a zone it is not authoritative for: REFUSED (NSD refuses what it
  does not serve), so a server with another zone is the refusing server;
- names in a zone configured whose file is missing: SERVFAIL (NSD could not
  load the zone).

``Silent`` is a UDP socket that reads every query and drops it: a server that
never answers. ``ENUM_ZONE`` is what the ENUM tests serve: each number's records
in the shape of a provider's published answers (see its comments).

The fixtures at the bottom (``nsd_binary``, ``enum_dns``) are imported by the
test modules that need them.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.e164
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-nsd.sh"
STARTUP_TIMEOUT = 15.0
ENUM_SUFFIX = "e164.arpa"
BROKEN_SUFFIX = "broken.example"  # configured on the answering server without a zone file: SERVFAIL
REFUSING_ZONE = "refusing.example"  # the only zone of the refusing server


class HarnessError(RuntimeError):
    """NSD did not start or did not answer (the message carries its log)."""


# --- finding / installing the binary -------------------------------------------------------

_install_attempted: list[str] = []


def find_nsd() -> str | None:
    """The nsd executable: on PATH, or in /usr/sbin where Debian puts it (a user's PATH may lack sbin)."""
    return shutil.which("nsd") or next(
        (str(p) for p in (Path("/usr/sbin/nsd"), Path("/usr/local/sbin/nsd")) if p.exists()), None
    )


def require_nsd() -> str:
    """The nsd executable; installs it through the project script once if missing, else skips.

    ``make test`` runs the same script before pytest; the skip is for machines
    where installing is impossible (no apt, not root and no password-less sudo).
    """
    binary = find_nsd()
    if binary:
        return binary
    if not _install_attempted:
        try:
            result = subprocess.run(
                ["sh", str(ENSURE_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
            )
            said = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = str(exc)
        _install_attempted.append(said.splitlines()[-1])
    binary = find_nsd()
    if binary:
        return binary
    pytest.skip(f"NSD (Debian package nsd) is not installed and could not be installed: {_install_attempted[0]}")


# --- zones ---------------------------------------------------------------------------------


def enum_zone_lines(records: Mapping[str, Sequence[str]], suffix: str = ENUM_SUFFIX) -> list[str]:
    """Zone-file lines for ``{number: [RDATA-with-type, …]}``, each number at its ENUM name (dnspython's rule)."""
    origin = dns.name.from_text(suffix)
    lines = []
    for number, rdatas in records.items():
        owner = dns.e164.from_e164(number, origin).relativize(origin).to_text()
        lines += [f"{owner} IN {rdata}" for rdata in rdatas]
    return lines


def _zone_text(zone: str, lines: Sequence[str]) -> str:
    head = [
        f"$ORIGIN {zone.rstrip('.')}.",
        "$TTL 60",
        "@ IN SOA ns.numlookup.test. hostmaster.numlookup.test. 1 3600 600 86400 60",
        "@ IN NS ns.numlookup.test.",
    ]
    return "\n".join([*head, *lines]) + "\n"


# --- the servers ---------------------------------------------------------------------------


def _free_loopback_port() -> tuple[str, int]:
    """A 127.x.y.z address and a port free there for both UDP and TCP (NSD listens on both)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(100):
        address = f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind((address, 0))
                port = int(udp.getsockname()[1])
                tcp.bind((address, port))
            except OSError:
                continue
            return address, port
    raise HarnessError("no free loopback address and port for NSD")


@dataclass
class Nsd:
    """One NSD process serving ``zones`` ({zone: zone-file lines}); ``unloaded`` zones have no file (SERVFAIL)."""

    binary: str
    workdir: Path
    zones: Mapping[str, Sequence[str]]
    unloaded: Sequence[str] = ()
    address: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def nameserver(self) -> str:
        """As the ``nameservers`` setting spells it."""
        return f"{self.address}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "nsd.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # NSD 4 settings: no privilege drop or chroot (it runs as whoever runs the tests), every
        # state file in the folder, no zone database (zone files are read at start), no remote control.
        config = [
            "server:",
            f"    ip-address: {self.address}@{self.port}",
            f"    port: {self.port}",
            '    username: ""',
            '    chroot: ""',
            '    database: ""',
            f'    zonesdir: "{self.workdir}"',
            f'    zonelistfile: "{self.workdir / "zone.list"}"',
            f'    xfrdfile: "{self.workdir / "xfrd.state"}"',
            f'    xfrdir: "{self.workdir}"',
            f'    pidfile: "{self.workdir / "nsd.pid"}"',
            f'    logfile: "{self.log_path}"',
            "    server-count: 1",
            "    verbosity: 1",
            "    hide-version: yes",
            "remote-control:",
            "    control-enable: no",
        ]
        for zone, lines in self.zones.items():
            path = self.workdir / f"{zone}.zone"
            path.write_text(_zone_text(zone, lines))
            config += ["zone:", f'    name: "{zone}"', f'    zonefile: "{path}"']
        for zone in self.unloaded:
            config += ["zone:", f'    name: "{zone}"', f'    zonefile: "{self.workdir / (zone + ".missing")}"']
        path = self.workdir / "nsd.conf"
        path.write_text("\n".join(config) + "\n")
        return path

    def start(self) -> Nsd:
        """Start NSD and wait until it answers for its first zone; a port taken meanwhile means another try."""
        for _ in range(5):
            self.address, self.port = _free_loopback_port()
            config = self._write_config()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, "-d", "-c", str(config)],
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stop() ends NSD and the children it forks
                )
            if self._wait_answering():
                return self
            self.stop()
            if "already in use" not in self.log_path.read_text(errors="replace"):
                break
        raise HarnessError(f"NSD did not answer within {STARTUP_TIMEOUT}s:\n{self.log_path.read_text()}")

    def _wait_answering(self) -> bool:
        assert self.process is not None
        zone = next(iter([*self.zones, *self.unloaded]))
        query = dns.message.make_query(dns.name.from_text(zone), "SOA")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                dns.query.udp(query, self.address, port=self.port, timeout=0.2)
                return True
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        return False

    def rcode(self, name: str, rdtype: str = "NAPTR") -> str:
        """The server's rcode for a query, asked directly: how a test shows what the server itself answers."""
        response = dns.query.udp(dns.message.make_query(name, rdtype), self.address, port=self.port, timeout=2)
        return dns.rcode.to_text(response.rcode())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)  # SIGTERM to the group we started
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


class Silent:
    """A UDP socket on a loopback address that reads every datagram and drops it: a nameserver that never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.received = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._drop, name="silent-dns", daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Silent:
        self._thread.start()
        return self

    def _drop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._sock.recvfrom(4096)
                self.received += 1
            except TimeoutError:
                continue
            except OSError:
                return

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._sock.close()


# --- what the ENUM tests serve ---------------------------------------------------------------

# Each number's records imitate one provider's published answer (reference: providers.md §4.2).
# RFC 4694 (as a public Go MNP client receives it): a national routing number the operator maps with rn_map.
RN_MAPPED = "+79161234567"
# RFC 4694 with a global rn (an E.164 number, with visual separators): Telekom → Vodafone's 0172.
RN_GLOBAL = "+4915112345678"
# RFC 4694 with a national rn in an rn-context of +49: Telekom's 0160 → O2's 0176.
RN_NATIONAL = "+4916012345678"
# RFC 4694 npdi without rn: the database was dipped and gave no routing number.
NPDI_ONLY = "+4915112340000"
# An rn nobody can place (not in rn_map, not a number).
RN_UNKNOWN = "+4915112343333"
# Sinch's ENUM Lookup Server: the port-corrected carrier as mcc/mnc, its own example (Verizon, 310/012).
SINCH = "+12125551234"
# Sinch-shaped, naming the number's own range holder (Telia Eesti, 24801).
SINCH_HOME = "+37251000001"
# Datafon's documented answer, exactly as their help page prints it (604/001: IAM, Morocco).
DATAFON_HOME = "+212661234567"
# Datafon-shaped, a ported number (O2 UK's range, now at EE: 234/030).
DATAFON_PORTED = "+447712345678"
# Datafon-shaped, with their error code set and no values.
DATAFON_ERROR = "+447712340000"
# E2U+pstn:SIP with the number's parameters in the SIP user part (as haim9798/lnp_api answers): Lycamobile → O2.
SIP = "+4915212345678"
# Several records: a non-pstn one first, a pstn one whose regexp does not match, then order and preference decide.
ORDERED = "+4915112349999"
# Only an E2U+sip record (VoIP, not portability): nothing usable.
NO_PSTN = "+4915112341111"
# A pstn record whose URI carries no portability parameter.
NO_PARAMETERS = "+4915112342222"
# The name exists with a TXT record only: NOERROR, no NAPTR.
NO_NAPTR = "+4915112344444"
# No record at all: NXDOMAIN.
NO_RECORD = "+4915112345555"

_PSTN_TEL = '"u" "E2U+pstn:tel"'
ENUM_RECORDS: dict[str, list[str]] = {
    RN_MAPPED: [f'NAPTR 10 10 {_PSTN_TEL} "!^.*$!tel:+79161234567;npdi;rn=d2701;rn-context=+7!" .'],
    RN_GLOBAL: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1;npdi;rn=+49-172-12345678!" .'],
    RN_NATIONAL: [f'NAPTR 10 50 {_PSTN_TEL} "!^\\\\+49(.*)$!tel:+49\\\\1;npdi;rn=17612345678;rn-context=+49!" .'],
    NPDI_ONLY: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1;npdi!" .'],
    RN_UNKNOWN: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1;npdi;rn=X9999!" .'],
    SINCH: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1;mcc=310;mnc=012!" .'],
    SINCH_HOME: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1;mcc=248;mnc=01!" .'],
    # Datafon's help page prints the answer as dig does, ``;`` escaped; the zone file reads ``\;`` as ``;``.
    DATAFON_HOME: [
        f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!country=null\\;operator=null\\;mcc=604\\;mnc=001\\;ported=false\\;err=0!" .'
    ],
    DATAFON_PORTED: [
        f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!country=GB\\;operator=EE\\;mcc=234\\;mnc=030\\;ported=true\\;err=0!" .'
    ],
    DATAFON_ERROR: [
        f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!country=null\\;operator=null\\;mcc=null\\;mnc=null\\;ported=null\\;err=1!" .'
    ],
    SIP: [
        'NAPTR 10 50 "u" "E2U+pstn:SIP" "!^.*$!sip:+4915212345678;npdi;rn=+4917712345678@lnp.example.net;user=phone!" .'
    ],
    ORDERED: [
        'NAPTR 20 10 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\\\1;mcc=262;mnc=43!" .',
        'NAPTR 10 90 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\\\1;mcc=262;mnc=02!" .',
        'NAPTR 1 1 "u" "E2U+sip" "!^.*$!sip:info@voip.example.net!" .',
        'NAPTR 5 5 "u" "E2U+pstn:tel" "!^\\\\+44(.*)$!tel:+44\\\\1;mcc=234;mnc=15!" .',
        'NAPTR 10 20 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\\\1;mcc=262;mnc=03!" .',
    ],
    NO_PSTN: ['NAPTR 10 50 "u" "E2U+sip" "!^.*$!sip:desk@voip.example.net!" .'],
    NO_PARAMETERS: [f'NAPTR 10 50 {_PSTN_TEL} "!^(.*)$!tel:\\\\1!" .'],
    NO_NAPTR: ['TXT "no NAPTR here"'],
}
RN_MAP = {"D2701": "25099"}  # the operator's table: D2701 is Beeline (25099)


@dataclass
class EnumDns:
    """The servers the ENUM tests use: ``answering`` serves ``ENUM_RECORDS`` (and SERVFAILs ``BROKEN_SUFFIX``)."""

    answering: Nsd
    refusing: Nsd
    silent: Silent


@pytest.fixture(scope="session")
def nsd_binary() -> str:
    return require_nsd()


@pytest.fixture(scope="session")
def enum_dns(nsd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnumDns]:
    answering = Nsd(
        nsd_binary,
        tmp_path_factory.mktemp("nsd-enum"),
        {ENUM_SUFFIX: enum_zone_lines(ENUM_RECORDS)},
        unloaded=[BROKEN_SUFFIX],
    ).start()
    refusing = Nsd(nsd_binary, tmp_path_factory.mktemp("nsd-refusing"), {REFUSING_ZONE: []})
    silent = Silent().start()
    try:
        refusing.start()
        yield EnumDns(answering, refusing, silent)
    finally:
        answering.stop()
        refusing.stop()
        silent.stop()
