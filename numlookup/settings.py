"""The one place that reads configuration.

Settings come from, in rising priority: defaults here, an optional TOML file
(``NUMLOOKUP_CONFIG`` or ``--config``), and ``NUMLOOKUP_<FIELD>`` environment
variables. Environment variables win because that is how the CLI hands its
options to uvicorn's worker processes, which re-read settings on their own.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

import msgspec

ENV_PREFIX = "NUMLOOKUP_"

StatusStyle = Literal["seed", "onoff", "truefalse"]
STATUS_STYLES: tuple[StatusStyle, ...] = ("seed", "onoff", "truefalse")


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every knob of a numlookup node. Field names double as TOML keys and env suffixes."""

    data_dir: str = "var"
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_numbers_per_request: int = 10
    default_price: Decimal = Decimal("0.01")
    status_style: StatusStyle = "seed"
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    # How often each worker checks for a newly activated dataset version.
    dataset_poll_seconds: float = 2.0
    # Bearer token for the admin endpoints (dataset imports); empty disables them.
    admin_token: str = ""

    def __post_init__(self) -> None:
        if self.max_numbers_per_request < 1:
            raise ValueError("max_numbers_per_request must be at least 1")
        if self.default_price < 0:
            raise ValueError("default_price must not be negative")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'numlookup.db'}"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the setting and its source."""


def _from_env(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    fields = set(Settings.__struct_fields__)
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in fields:
                found[name] = value
    return found


def load_settings(config_file: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, the TOML file and the environment."""
    env = dict(os.environ) if environ is None else environ
    merged: dict[str, object] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                merged.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    merged.update(_from_env(env))
    try:
        return msgspec.convert(merged, Settings, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return load_settings()
