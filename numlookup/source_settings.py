"""The settings of each live source kind: one ``[upstreams.NAME]`` table of the settings file, one Struct per kind.

Why a Struct per kind, tagged by ``kind``: each provider takes different
credentials and limits, and a table that names another kind's field, misses its
own credential or names an unknown kind must stop the start with the setting's
name, which msgspec's tagged union does for us. A table without ``kind`` is the
Messente-compatible kind, as before kinds existed.

Every credential may be given inline (``api_key = "…"``) or as the name of an
environment variable (``api_key_env = "INFOBIP_KEY"``), read once at start; the
resolved value replaces the field, so nothing later needs to know which it was.
Exactly one of the two must be given. Credentials never leave this module in an
error message: errors name the setting, never its value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar, Literal, get_args
from urllib.parse import urlsplit

import msgspec

SourceKind = Literal["messente", "infobip", "hlr-lookups", "twilio", "tyntec", "enum"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)
DEFAULT_KIND: SourceKind = "messente"

_CURRENCY = re.compile(r"[A-Z]{3}")
_MCCMNC = re.compile(r"[0-9]{5,6}")
# A domain name: labels of letters, digits, ``-`` and ``_``, 1 to 63 characters each; a final dot allowed.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_API_V2 = re.compile(r"/api/v2(?:/|$)")  # the HLR-Lookups API's own path, which the kind appends
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")


class _SourceSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """What every source kind has: its limits, what a query costs us, and a number to probe it with."""

    timeout: float = 3.0  # seconds for one request to the source
    max_concurrency: int | None = None  # requests in flight; None: live_max_concurrency
    # What the provider charges us per number asked, in ``currency`` (exact decimal; a string in TOML).
    cost: Decimal = Decimal(0)
    currency: str = ""
    # A number ``numlookup sources check`` asks; default: the first number its routes cover.
    probe_number: str | None = None

    def check(self, name: str) -> None:
        where = f"upstreams.{name}"
        if self.timeout <= 0:
            raise ValueError(f"{where}.timeout must be positive")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"{where}.max_concurrency must be at least 1")
        if not self.cost.is_finite() or self.cost < 0:
            raise ValueError(f"{where}.cost must be a non-negative decimal")
        if self.cost * 1_000_000 != (self.cost * 1_000_000).to_integral_value():
            raise ValueError(f"{where}.cost has more than 6 decimal places")
        if self.cost and not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"{where}.currency must be an ISO 4217 code such as EUR when cost is set")


class _HttpSourceSettings(_SourceSettings, kw_only=True):
    url: str  # the provider's API base; each kind appends its path

    def check(self, name: str) -> None:
        super().check(name)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstreams.{name}.url must start with http:// or https://")


class MessenteSettings(_HttpSourceSettings, kw_only=True, tag="messente"):
    """A Messente-compatible Number Lookup API: Messente itself, or another numlookup."""

    username: str = ""
    username_env: str = ""
    password: str = ""
    password_env: str = ""
    max_batch: int = 10  # the upstream's numbers-per-request limit

    def check(self, name: str) -> None:
        super().check(name)
        if self.max_batch < 1:
            raise ValueError(f"upstreams.{name}.max_batch must be at least 1")


class InfobipSettings(_HttpSourceSettings, kw_only=True, tag="infobip"):
    """Infobip Number Lookup (``POST /number/1/query``), ``Authorization: App <api_key>``."""

    api_key: str = ""
    api_key_env: str = ""
    max_batch: int = 1000  # numbers per request; the API takes at most 1,000 (``to``'s maxItems)

    def check(self, name: str) -> None:
        super().check(name)
        if not 1 <= self.max_batch <= 1000:
            raise ValueError(f"upstreams.{name}.max_batch must be between 1 and 1000 (Infobip's limit)")


class HlrLookupsSettings(_HttpSourceSettings, kw_only=True, tag="hlr-lookups"):
    """HLR-Lookups.com API v2, HMAC-signed requests, one number each.

    ``url`` is the provider's base (``https://www.hlr-lookups.com``): the API's
    own paths (``/api/v2/hlr-lookup``, ``/api/v2/time``) are appended, so a url
    that already ends in them would double them and every request would fail.
    """

    api_key: str = ""
    api_key_env: str = ""
    api_secret: str = ""
    api_secret_env: str = ""
    # Sign with the provider's clock (learnt from GET /api/v2/time, as its SDK does); false: with this host's.
    server_clock: bool = True
    max_batch: ClassVar[int] = 1  # the API looks one number up per request

    def check(self, name: str) -> None:
        super().check(name)
        if "?" in self.url or "#" in self.url or _API_V2.search(self.url):
            raise ValueError(
                f"upstreams.{name}.url must be the provider's base such as https://www.hlr-lookups.com"
                " (/api/v2/hlr-lookup is appended), without a query"
            )


class TwilioSettings(_HttpSourceSettings, kw_only=True, tag="twilio"):
    """Twilio Lookup v2 (line type intelligence and line status), Basic ``account_sid:auth_token``."""

    account_sid: str = ""
    account_sid_env: str = ""
    auth_token: str = ""
    auth_token_env: str = ""
    max_batch: ClassVar[int] = 1  # Lookup v2 answers one number per request

    def check(self, name: str) -> None:
        super().check(name)
        # The adapter appends /v2/PhoneNumbers/<number>?Fields=…: a url that already holds the path
        # would ask /v2/v2/…, and a query of its own would be sent to Twilio with every lookup.
        segments = {segment.casefold() for segment in urlsplit(self.url).path.split("/")}
        if segments & {"v2", "phonenumbers"} or "?" in self.url or "#" in self.url:
            raise ValueError(
                f"upstreams.{name}.url is the API base such as https://lookups.twilio.com"
                " (without /v2/PhoneNumbers: the source appends it), without a query"
            )


class TyntecSettings(_HttpSourceSettings, kw_only=True, tag="tyntec"):
    """tyntec Global Number Verification (``GET /nis/v1/gnv``), header ``apiKey``."""

    api_key: str = ""
    api_key_env: str = ""
    max_batch: ClassVar[int] = 1

    def check(self, name: str) -> None:
        super().check(name)
        # The spec's server URL ends in /nis/v1/; the kind appends /nis/v1/gnv to the API base itself.
        path = urlsplit(self.url).path.rstrip("/")
        if "?" in self.url or "#" in self.url or path.endswith(("/nis/v1", "/gnv")):
            raise ValueError(
                f"upstreams.{name}.url must be the API base such as https://api.tyntec.com"
                " (/nis/v1/gnv is appended), without a query"
            )


class EnumSettings(_SourceSettings, kw_only=True, tag="enum"):
    """ENUM portability (RFC 6116 NAPTR): which network a number is served by, never whether it is reachable."""

    suffix: str = "e164.arpa"
    nameservers: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1:5353"])
    # Routing numbers (RFC 4694 ``rn``) to MCC/MNC, e.g. {"D2701" = "25001"}.
    rn_map: dict[str, str] = {}
    max_batch: ClassVar[int] = 1  # one NAPTR query per number

    def check(self, name: str) -> None:
        super().check(name)
        where = f"upstreams.{name}"
        if not _DOMAIN.fullmatch(self.suffix) or len(self.suffix.rstrip(".")) > 253:
            raise ValueError(f"{where}.suffix: {self.suffix!r} is not a domain name such as e164.arpa")
        if not self.nameservers:
            raise ValueError(f"{where}.nameservers must name at least one server (address or address:port)")
        for server in self.nameservers:
            host, _ = nameserver_address(server, f"{where}.nameservers")
            try:  # a resolver is given addresses, as in resolv.conf: a name would need a resolver to find it
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{where}.nameservers: {server!r} is not an IP address (or address:port)") from None
        for rn, mccmnc in self.rn_map.items():
            if not rn or not _MCCMNC.fullmatch(mccmnc):
                raise ValueError(f"{where}.rn_map: {rn!r} must map to a 5- or 6-digit MCC/MNC, not {mccmnc!r}")


UpstreamSettings = (
    MessenteSettings | InfobipSettings | HlrLookupsSettings | TwilioSettings | TyntecSettings | EnumSettings
)

# Each kind's credentials: a field and its ``_env`` twin. The resolved value is always in the field.
SECRETS: dict[type[_SourceSettings], tuple[str, ...]] = {
    MessenteSettings: ("username", "password"),
    InfobipSettings: ("api_key",),
    HlrLookupsSettings: ("api_key", "api_secret"),
    TwilioSettings: ("account_sid", "auth_token"),
    TyntecSettings: ("api_key",),
    EnumSettings: (),
}


def nameserver_address(text: str, where: str = "nameservers") -> tuple[str, int]:
    """``host`` or ``host:port`` (``[v6]:port``) as (host, port); 53 when no port is given."""
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None or not match["host"]:
        raise ValueError(f"{where}: {text!r} is not host or host:port")
    port = int(match["port"] or 53)
    if not 0 < port < 65536:
        raise ValueError(f"{where}: {text!r} has no valid port")
    return match["host"].strip("[]"), port


def with_kind(name: str, raw: object) -> object:
    """A raw ``[upstreams.NAME]`` table with ``kind`` filled in (the Messente kind when absent).

    An unknown kind is refused here, naming the table: msgspec's own message for
    a tag it does not know names the field but not which upstream wrote it.
    """
    if not isinstance(raw, dict):
        return raw
    kind = raw.get("kind", DEFAULT_KIND)
    if kind not in SOURCE_KINDS:
        raise ValueError(f"upstreams.{name}.kind: unknown kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
    return {**raw, "kind": kind}


def resolve_secrets(name: str, source: UpstreamSettings, environ: Mapping[str, str]) -> UpstreamSettings:
    """``source`` with every credential read from its ``_env`` variable where one is named.

    Raises ValueError naming the setting (never a value): neither or both of a
    credential and its ``_env`` given, or the variable unset or empty.
    """
    resolved: dict[str, str] = {}
    for field in SECRETS[type(source)]:
        inline, variable = getattr(source, field), getattr(source, f"{field}_env")
        where = f"upstreams.{name}.{field}"
        if inline and variable:
            raise ValueError(f"{where}: give {field} or {field}_env, not both")
        if variable:
            value = environ.get(variable, "")
            if not value:
                raise ValueError(f"{where}_env: the environment variable {variable} is not set or empty")
            resolved[field] = value
        elif not inline:
            raise ValueError(f"{where}: the {source.__struct_config__.tag} source needs {field} (or {field}_env)")
    return msgspec.structs.replace(source, **resolved) if resolved else source
