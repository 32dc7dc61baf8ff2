"""The one place that reads configuration.

Settings come from, in rising priority: defaults here, an optional TOML file
(``NUMLOOKUP_CONFIG`` or ``--config``), and ``NUMLOOKUP_<FIELD>`` environment
variables. Environment variables win because that is how the CLI hands its
options to uvicorn's worker processes, which re-read settings on their own.

Where the data lives never depends on the shell's working directory: a server
started in one folder and an admin command run in another must open the same
database. So ``data_dir`` is absolute once loaded: a relative one in the TOML
file is relative to that file's folder, a relative one in the environment is
refused, and without one it is :func:`default_data_dir`. A SQLite
``database_url`` follows the same rule.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from numlookup.source_settings import UpstreamSettings, resolve_secrets, with_kind
from numlookup.status import StyleSetting

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

ENV_PREFIX = "NUMLOOKUP_"

OSMO_HLR = "osmo-hlr"
OFFLINE = "offline"
UPSTREAM_PREFIX = "upstream:"
MATCH_KINDS = ("cc", "mccmnc", "prefix")


class LiveRoute(msgspec.Struct, forbid_unknown_fields=True):
    """Which live sources serve which numbers, in the order they are tried.

    ``match`` is ``cc:<calling code>``, ``mccmnc:<MCC+MNC of the number's network>``
    or ``prefix:<E.164 digits>``. ``source`` is ``osmo-hlr``, the name of an
    upstream (``NAME`` or ``upstream:NAME``), or ``offline`` to carve numbers out
    of a broader route; ``sources`` lists several, tried in order until one
    answers (failover). The first route that matches wins.
    """

    match: str
    source: str = ""
    sources: list[str] = []

    @property
    def chain(self) -> tuple[str, ...]:
        """The route's sources as written, in the order they are tried."""
        return (self.source,) if self.source else tuple(self.sources)

    @property
    def kind(self) -> str:
        return self.match.split(":", 1)[0]

    @property
    def value(self) -> str:
        return self.match.split(":", 1)[1]


class OsmoHlrSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An osmo-hlr reached over its CTRL interface."""

    host: str = "127.0.0.1"
    port: int = 4259
    timeout: float = 2.0
    vlr_map: dict[str, str] = {}
    max_concurrency: int | None = None


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every knob of a numlookup node. Field names double as TOML keys and env suffixes."""

    # Absolute; empty: default_data_dir() (see load_settings for relative paths).
    data_dir: str = ""
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_numbers_per_request: int = 10
    default_price: Decimal = Decimal("0.01")
    # The status words of accounts without a style of their own: "auto" answers each
    # official client in the words its version accepts (status.client_style), others in the seed's.
    status_style: StyleSetting = "auto"
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Server logs on stderr, one record a line: "json" objects, "text" for people, or
    # "auto": text on a terminal, JSON otherwise (systemd, containers, files).
    log_format: Literal["auto", "json", "text"] = "auto"
    # One log line per request (request id, method, path, status, duration, client, account).
    access_log: bool = True
    # On SIGTERM, requests in flight get this long to finish (and commit their charges)
    # before they are cancelled; the process then exits.
    timeout_graceful_shutdown_seconds: int = 10
    # Commit the charges of concurrent requests together (one transaction, one fsync).
    group_commit: bool = True
    # On SQLite, commit those batches in a process of each worker's own (the ledger writer),
    # beside its event loop instead of under its GIL; false commits them in a thread of the worker.
    ledger_writer_process: bool = True
    # How often each worker checks for a newly activated dataset version.
    dataset_poll_seconds: float = 2.0
    # Where nodes find the compiled files of imported datasets: "database" stores a
    # copy in the database at import, fetched by nodes that lack it; "files" expects
    # a shared data directory; "auto" is "database" on PostgreSQL, "files" on SQLite.
    dataset_distribution: Literal["auto", "database", "files"] = "auto"
    # Accounts are cached in each worker; a change (CLI or another node) reaches every
    # worker within this many seconds. 0 reads the database on every request.
    account_refresh_seconds: float = 1.0
    # Bearer token for the admin endpoints (dataset imports); empty disables them.
    admin_token: str = ""

    # Live lookups (see README "Live lookups"). Complex values come from the TOML
    # file, or as JSON in NUMLOOKUP_<NAME>.
    live_routes: list[LiveRoute] = []
    upstreams: dict[str, UpstreamSettings] = {}
    osmo_hlr: OsmoHlrSettings | None = None
    # How long cached live answers stay usable, per field class.
    live_ttl_reachability_seconds: float = 300.0  # reachable, roaming, roaming network
    live_ttl_network_seconds: float = 3 * 86400.0  # porting facts (the current network)
    # A request waits at most this long for live answers (it may ask for less).
    live_deadline_seconds: float = 5.0
    # Source requests in flight per source (each carries up to the source's batch size).
    live_max_concurrency: int = 64
    # Consecutive failures that open a source's circuit, and how long it stays open
    # before one probe request may test it again.
    live_breaker_failures: int = 5
    live_breaker_reset_seconds: float = 10.0
    # Prices per answer class. None: the offline price (default_price, or the account's).
    price_offline: Decimal | None = None
    price_cache: Decimal | None = None
    price_live: Decimal | None = None

    # Abuse protection (see README "Abuse protection"). Limits live in each worker
    # process. Rates are requests per second; a burst of 0 means "the rate" (at least 1).
    rate_limit_per_ip: float = 150.0  # Messente's own per-IP limit; 0 disables
    rate_limit_per_ip_burst: int = 0
    rate_limit_per_account: float = 0.0  # 0: off
    rate_limit_per_account_burst: int = 0
    # This many rejected credentials from one client IP within the window refuse
    # that IP's credentialed requests (429) for the penalty; 0 disables.
    auth_failure_limit: int = 20
    auth_failure_window_seconds: float = 60.0
    auth_failure_penalty_seconds: float = 60.0
    # Proxies whose X-Forwarded-For names the client (CIDRs). Empty: the socket peer is the client.
    trusted_proxies: list[str] = []
    # Request bodies: at most this many bytes, all of it within this many seconds.
    max_body_bytes: int = 64 * 1024
    body_timeout_seconds: float = 10.0
    # How long uvicorn keeps an idle keep-alive connection open.
    timeout_keep_alive_seconds: int = 5
    # A request's header block must be complete this many seconds after its first
    # byte arrived (408, then the connection closes).
    header_timeout_seconds: float = 10.0

    # Bulk jobs (see README "Bulk jobs"). Numbers per job, and the largest upload
    # (a file, streamed; max_body_bytes does not apply to it); a JSON body is read
    # whole, so it has a smaller limit of its own.
    max_job_numbers: int = 10_000_000
    max_job_bytes: int = 512 * 1024 * 1024
    max_job_json_bytes: int = 16 * 1024 * 1024
    # Numbers per chunk: the unit a worker claims, charges and stores in one transaction.
    job_chunk_numbers: int = 50_000
    # Every serve worker process also works on jobs; false leaves them to `numlookup jobs work`.
    job_worker: bool = True
    # A claimed chunk is a worker's for this long, renewed every third of it while it works;
    # after a crash another worker takes the chunk over once the lease has run out.
    job_lease_seconds: float = 60.0
    # How often an idle worker looks for a chunk to claim.
    job_poll_seconds: float = 1.0
    # Source requests in flight per live source for jobs, in each process: the rest of a
    # source's max_concurrency is the sync API's, and sync numbers always go first.
    job_live_concurrency: int = 4
    # How long a job's live numbers may wait for their answers (sync requests wait live_deadline_seconds).
    job_live_deadline_seconds: float = 30.0
    # Results are kept this many days after a job ends, then deleted.
    job_retention_days: float = 7.0

    # Idempotency-Key (see README "Safe retries"): a key is remembered this many hours
    # after its first request; an in-flight marker whose request died frees the key
    # after its lease (longer than any request may take).
    idempotency_ttl_hours: float = 24.0
    idempotency_lease_seconds: float = 60.0

    # Job webhooks (see README "Webhooks"). Callback URLs that resolve to loopback,
    # private, link-local, reserved or multicast addresses are refused unless allowed.
    webhook_allow_private: bool = False
    # One delivery attempt may take this long (the Standard Webhooks range is 15-30 s).
    webhook_timeout_seconds: float = 15.0
    # A claimed delivery is another worker's to retry once its lease ran out (a worker that died).
    webhook_lease_seconds: float = 60.0
    # How often each worker looks for deliveries that are due, and how many it sends at once.
    webhook_poll_seconds: float = 1.0
    webhook_concurrency: int = 8
    # After a secret is rotated, deliveries carry signatures by the old and the new one this long.
    webhook_rotation_grace_hours: float = 24.0
    # Testing only: multiplies the retry schedule's delays (1: the specification's schedule).
    webhook_retry_scale: float = 1.0

    # The web console under /console/ (see README "Web console"): account holders log in with
    # their API credentials, the operator with admin_token. false: /console/... is the API's 404.
    console: bool = True
    # A console session ends this many hours after its login (checked on every request).
    console_session_hours: int = 12

    def __post_init__(self) -> None:
        if self.data_dir and not Path(self.data_dir).expanduser().is_absolute():
            raise ValueError(f"data_dir must be an absolute path, not {self.data_dir!r}")
        if self.database_url:
            _check_database_url(self.database_url)
        if self.max_numbers_per_request < 1:
            raise ValueError("max_numbers_per_request must be at least 1")
        if self.default_price < 0:
            raise ValueError("default_price must not be negative")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        for price in (self.price_offline, self.price_cache, self.price_live):
            if price is not None and price < 0:
                raise ValueError("prices must not be negative")
        if self.live_deadline_seconds <= 0 or self.live_max_concurrency < 1 or self.live_breaker_failures < 1:
            raise ValueError("live_deadline_seconds, live_max_concurrency and live_breaker_failures must be positive")
        for name, upstream in self.upstreams.items():
            upstream.check(name)
        for route in self.live_routes:
            kind, _, value = route.match.partition(":")
            if kind not in MATCH_KINDS or not value.isdigit():
                raise ValueError(
                    f"live_routes: match {route.match!r} must be cc:DIGITS, mccmnc:DIGITS or prefix:DIGITS"
                )
            if bool(route.source) == bool(route.sources):
                raise ValueError(f"live_routes: the route {route.match!r} needs source = NAME or sources = [NAMES]")
            chain = [self.source_name(source) for source in route.chain]  # raises for an unknown source
            if len(chain) > 1 and OFFLINE in chain:
                raise ValueError(f"live_routes: {route.match!r} lists offline among its sources; offline stands alone")
            if len(set(chain)) != len(chain):
                raise ValueError(f"live_routes: {route.match!r} names a source twice")
        if self.account_refresh_seconds < 0:
            raise ValueError("account_refresh_seconds must be 0 (no cache) or positive")
        self._check_abuse_settings()
        self._check_idempotency_and_webhooks()
        if self.console_session_hours < 1:
            raise ValueError("console_session_hours must be at least 1")

    def _check_idempotency_and_webhooks(self) -> None:
        """Each refusal names its setting: the message is the operator's only clue."""
        positive = {
            "idempotency_ttl_hours": self.idempotency_ttl_hours,
            "idempotency_lease_seconds": self.idempotency_lease_seconds,
            "webhook_timeout_seconds": self.webhook_timeout_seconds,
            "webhook_lease_seconds": self.webhook_lease_seconds,
            "webhook_poll_seconds": self.webhook_poll_seconds,
            "webhook_retry_scale": self.webhook_retry_scale,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if self.webhook_concurrency < 1:
            raise ValueError(f"webhook_concurrency must be at least 1, not {self.webhook_concurrency}")
        if self.webhook_rotation_grace_hours < 0:
            raise ValueError(
                f"webhook_rotation_grace_hours must not be negative, not {self.webhook_rotation_grace_hours}"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                f"webhook_lease_seconds ({self.webhook_lease_seconds:g}) must be longer than webhook_timeout_seconds "
                f"({self.webhook_timeout_seconds:g}): a delivery still running must not be claimed by another worker"
            )
        if self.idempotency_lease_seconds <= self.live_deadline_seconds:
            raise ValueError(
                f"idempotency_lease_seconds ({self.idempotency_lease_seconds:g}) must be longer than "
                f"live_deadline_seconds ({self.live_deadline_seconds:g}): a request still running must keep its key"
            )

    def _check_abuse_settings(self) -> None:
        if (
            min(
                self.rate_limit_per_ip,
                self.rate_limit_per_account,
                self.rate_limit_per_ip_burst,
                self.rate_limit_per_account_burst,
                self.auth_failure_limit,
            )
            < 0
        ):
            raise ValueError("rate limits, bursts and auth_failure_limit must not be negative (0 disables)")
        if self.auth_failure_window_seconds <= 0 or self.auth_failure_penalty_seconds <= 0:
            raise ValueError("auth_failure_window_seconds and auth_failure_penalty_seconds must be positive")
        if self.max_body_bytes < 1 or self.body_timeout_seconds <= 0 or self.timeout_keep_alive_seconds < 1:
            raise ValueError("max_body_bytes, body_timeout_seconds and timeout_keep_alive_seconds must be positive")
        if self.header_timeout_seconds <= 0:
            raise ValueError("header_timeout_seconds must be positive")
        self._check_job_settings()

    def _check_job_settings(self) -> None:
        if min(self.max_job_numbers, self.max_job_bytes, self.max_job_json_bytes, self.job_chunk_numbers) < 1:
            raise ValueError(
                "max_job_numbers, max_job_bytes, max_job_json_bytes and job_chunk_numbers must be positive"
            )
        if min(self.job_lease_seconds, self.job_poll_seconds, self.job_live_deadline_seconds) <= 0:
            raise ValueError("job_lease_seconds, job_poll_seconds and job_live_deadline_seconds must be positive")
        if self.job_live_concurrency < 1 or self.job_retention_days <= 0:
            raise ValueError("job_live_concurrency and job_retention_days must be positive")
        if self.timeout_graceful_shutdown_seconds < 1:
            raise ValueError("timeout_graceful_shutdown_seconds must be positive")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {cidr!r} is not a network in CIDR notation: {exc}") from None

    def source_name(self, source: str) -> str:
        """The canonical name of a route's source: ``offline``, ``osmo-hlr`` or ``upstream:NAME``."""
        if source in (OFFLINE, OSMO_HLR):
            if source == OSMO_HLR and self.osmo_hlr is None:
                raise ValueError("live_routes: a route uses osmo-hlr but the osmo_hlr setting is missing")
            return source
        name = source.removeprefix(UPSTREAM_PREFIX)
        if name not in self.upstreams:
            raise ValueError(f"live_routes: source {source!r} is neither offline, osmo-hlr nor a configured upstream")
        return UPSTREAM_PREFIX + name

    @property
    def offline_price(self) -> Decimal:
        return self.default_price if self.price_offline is None else self.price_offline

    @property
    def data_path(self) -> Path:
        """The data directory: ``data_dir``, or :func:`default_data_dir` when it is not set."""
        return Path(self.data_dir).expanduser().resolve() if self.data_dir else default_data_dir()

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'numlookup.db'}"

    @property
    def shown_database_url(self) -> str:
        """``effective_database_url`` with its password masked, for output, logs and errors."""
        from sqlalchemy.engine import make_url  # SQLAlchemy only where a URL is parsed: the CLI's lookup needs none

        return make_url(self.effective_database_url).render_as_string(hide_password=True)

    @property
    def publishes_datasets(self) -> bool:
        """Whether an import stores a copy of its compiled files in the database (``dataset_distribution``)."""
        if self.dataset_distribution == "auto":
            return not self.effective_database_url.startswith("sqlite")
        return self.dataset_distribution == "database"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the setting and its source."""


DATA_DIR_NAME = "numlookup"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/numlookup``, or ``~/.local/share/numlookup`` (the XDG base directory default).

    One place per user whatever the working directory, so ``numlookup serve`` and
    an admin command run from another folder share one database. A relative
    ``XDG_DATA_HOME`` is ignored, as the XDG specification says.
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / DATA_DIR_NAME
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "share" / DATA_DIR_NAME


def config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML settings file in use (``NUMLOOKUP_CONFIG``, which ``--config`` sets), absolute; None without one."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_PREFIX + "CONFIG")
    return Path(os.path.abspath(os.path.expanduser(path))) if path else None


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy can parse; a SQLite file must be named by an absolute path. The URL is never echoed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "database_url is not a SQLAlchemy URL (dialect+driver://user:password@host/database)"
        ) from None
    relative = _relative_sqlite_file(parsed)
    if relative is not None:
        raise ValueError(f"database_url: the SQLite file must be an absolute path, not {relative!r}")


def _relative_sqlite_file(url: URL) -> str | None:
    """The file of a SQLite URL if it is a relative path (``sqlite:///var/x.db``), else None."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return None if Path(database).expanduser().is_absolute() else database


def _anchor_paths(values: dict[str, object], folder: Path) -> None:
    """Make the file's relative ``data_dir`` and SQLite ``database_url`` relative to the file's ``folder``."""
    data_dir = values.get("data_dir")
    if isinstance(data_dir, str) and data_dir and not Path(data_dir).expanduser().is_absolute():
        values["data_dir"] = str(folder / data_dir)
    url = values.get("database_url")
    if isinstance(url, str) and url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            return  # refused, without echoing the URL, when the settings are built
        relative = _relative_sqlite_file(parsed)
        if relative is not None:
            values["database_url"] = parsed.set(database=str(folder / relative)).render_as_string(hide_password=False)


def _check_env_paths(found: dict[str, object]) -> None:
    """A relative path in the environment would mean a different database in every folder: refuse it."""
    data_dir = found.get("data_dir")
    if isinstance(data_dir, str) and data_dir and not Path(data_dir).expanduser().is_absolute():
        raise SettingsError(
            f"{ENV_PREFIX}DATA_DIR must be an absolute path, not {data_dir!r} "
            "(a relative one would name a different folder in every working directory)"
        )
    url = found.get("database_url")
    if isinstance(url, str) and url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            relative = _relative_sqlite_file(make_url(url))
        except ArgumentError:
            return  # refused, without echoing the URL, when the settings are built
        if relative is not None:
            raise SettingsError(f"{ENV_PREFIX}DATABASE_URL: the SQLite file must be an absolute path, not {relative!r}")


_COMPLEX = {"live_routes", "upstreams", "osmo_hlr", "trusted_proxies"}


def _from_env(environ: os._Environ[str] | dict[str, str]) -> dict[str, object]:
    """Scalars as strings (converted leniently); the few structured settings as JSON."""
    fields = set(Settings.__struct_fields__)
    found: dict[str, object] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in _COMPLEX:
                try:
                    found[name] = msgspec.json.decode(value)
                except msgspec.DecodeError as exc:
                    raise SettingsError(f"{key} must be JSON: {exc}") from exc
            elif name in fields:
                found[name] = value
    return found


def load_settings(config_file: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, the TOML file and the environment."""
    env = dict(os.environ) if environ is None else environ
    merged: dict[str, object] = {}
    path = Path(os.path.abspath(os.path.expanduser(config_file))) if config_file else config_path(env)
    if path is not None:
        try:
            with open(path, "rb") as fh:
                merged.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        _anchor_paths(merged, path.parent)
    from_env = _from_env(env)
    _check_env_paths(from_env)
    merged.update(from_env)
    merged.setdefault("data_dir", "")
    if not merged["data_dir"]:
        merged["data_dir"] = str(default_data_dir(env))
    upstreams = merged.get("upstreams")
    try:
        if isinstance(upstreams, dict):
            merged["upstreams"] = {name: with_kind(name, table) for name, table in upstreams.items()}
        settings = msgspec.convert(merged, Settings, strict=False)
        resolved = {name: resolve_secrets(name, source, env) for name, source in settings.upstreams.items()}
    except (msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
    return msgspec.structs.replace(settings, upstreams=resolved)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return load_settings()
