from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from numlookup.settings import SettingsError, load_settings


def test_defaults_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(environ={}).max_numbers_per_request == 10
    config = tmp_path / "n.toml"
    config.write_text('default_price = "0.005"\nport = 9000\nstatus_style = "onoff"\n')
    settings = load_settings(str(config), environ={"NUMLOOKUP_PORT": "9100", "NUMLOOKUP_UNRELATED": "x"})
    assert settings.default_price == Decimal("0.005") and settings.port == 9100 and settings.status_style == "onoff"
    home = Path.home() / ".local" / "share" / "numlookup"
    assert settings.effective_database_url == f"sqlite:///{home / 'numlookup.db'}"
    assert load_settings(environ={"NUMLOOKUP_DATABASE_URL": "postgresql+psycopg://h/db"}).effective_database_url == (
        "postgresql+psycopg://h/db"
    )


@pytest.mark.parametrize(
    "environ",
    [{"NUMLOOKUP_PORT": "eighty"}, {"NUMLOOKUP_STATUS_STYLE": "loud"}, {"NUMLOOKUP_MAX_NUMBERS_PER_REQUEST": "0"}],
)
def test_bad_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ=environ)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "n.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(str(config), environ={})


def test_the_default_data_dir_is_one_place_per_user_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    seen = set()
    for folder in (tmp_path, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        seen.add(load_settings(environ={"HOME": str(home)}).data_path)
    assert seen == {home / ".local" / "share" / "numlookup"}
    assert load_settings(environ={"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "xdg")}).data_path == (
        tmp_path / "xdg" / "numlookup"
    )
    # The XDG specification: a relative XDG_DATA_HOME is ignored.
    assert load_settings(environ={"HOME": str(home), "XDG_DATA_HOME": "xdg"}).data_path == seen.pop()
    assert load_settings(environ={"NUMLOOKUP_DATA_DIR": str(tmp_path / "d")}).data_path == tmp_path / "d"
    assert load_settings(environ={"NUMLOOKUP_DATA_DIR": "~/d", "HOME": str(home)}).data_path.is_absolute()


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "numlookup.toml"
    config.write_text('data_dir = "data"\ndatabase_url = "sqlite:///db/n.db"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings("etc/numlookup.toml", environ={})
    assert settings.data_path == etc / "data"
    assert settings.effective_database_url == f"sqlite:///{etc / 'db' / 'n.db'}"
    # The same file named through the environment, from another folder: the same places.
    monkeypatch.chdir(etc)
    again = load_settings(environ={"NUMLOOKUP_CONFIG": str(config)})
    assert (again.data_path, again.effective_database_url) == (settings.data_path, settings.effective_database_url)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"NUMLOOKUP_DATA_DIR": "var"}, "NUMLOOKUP_DATA_DIR must be an absolute path, not 'var'"),
        ({"NUMLOOKUP_DATA_DIR": "./var"}, "NUMLOOKUP_DATA_DIR"),
        ({"NUMLOOKUP_DATABASE_URL": "sqlite:///var/n.db"}, "NUMLOOKUP_DATABASE_URL: the SQLite file must be absolute"),
    ],
)
def test_relative_paths_in_the_environment_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert named.replace("must be absolute", "must be an absolute path") in str(caught.value)


def test_a_bad_database_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match="database_url is not a SQLAlchemy URL") as caught:
        load_settings(environ={"NUMLOOKUP_DATABASE_URL": "postgres ql://user:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


def test_the_shown_database_url_masks_the_password(tmp_path: Path) -> None:
    settings = load_settings(environ={"NUMLOOKUP_DATABASE_URL": "postgresql+psycopg://numlookup:hunter2@db/numlookup"})
    assert settings.shown_database_url == "postgresql+psycopg://numlookup:***@db/numlookup"
    assert settings.effective_database_url.endswith(":hunter2@db/numlookup")  # the engine still gets it
    local = load_settings(environ={"NUMLOOKUP_DATA_DIR": str(tmp_path)})
    assert local.shown_database_url == f"sqlite:///{tmp_path / 'numlookup.db'}"


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_header_timeout_must_be_positive_seconds_and_says_so(value: str) -> None:
    with pytest.raises(SettingsError, match="header_timeout_seconds"):
        load_settings(environ={"NUMLOOKUP_HEADER_TIMEOUT_SECONDS": value})


def test_header_timeout_is_read_from_the_environment() -> None:
    assert load_settings(environ={"NUMLOOKUP_HEADER_TIMEOUT_SECONDS": "2.5"}).header_timeout_seconds == 2.5


def test_an_unknown_source_kind_names_its_upstream() -> None:
    upstreams = '{"mine": {"kind": "infobjp", "url": "https://x"}}'
    with pytest.raises(SettingsError, match="upstreams.mine.kind: unknown kind 'infobjp'; choose one of messente"):
        load_settings(environ={"NUMLOOKUP_UPSTREAMS": upstreams})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"NUMLOOKUP_WEBHOOK_TIMEOUT_SECONDS": "0"}, "webhook_timeout_seconds"),
        ({"NUMLOOKUP_WEBHOOK_LEASE_SECONDS": "10"}, "webhook_lease_seconds"),  # not longer than the 15 s timeout
        ({"NUMLOOKUP_WEBHOOK_POLL_SECONDS": "-1"}, "webhook_poll_seconds"),
        ({"NUMLOOKUP_WEBHOOK_CONCURRENCY": "0"}, "webhook_concurrency"),
        ({"NUMLOOKUP_WEBHOOK_RETRY_SCALE": "0"}, "webhook_retry_scale"),
        ({"NUMLOOKUP_WEBHOOK_ROTATION_GRACE_HOURS": "-1"}, "webhook_rotation_grace_hours"),
        ({"NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE": "maybe"}, "webhook_allow_private"),
        ({"NUMLOOKUP_IDEMPOTENCY_TTL_HOURS": "0"}, "idempotency_ttl_hours"),
        ({"NUMLOOKUP_IDEMPOTENCY_LEASE_SECONDS": "3"}, "idempotency_lease_seconds"),  # not beyond the live deadline
    ],
)
def test_webhook_and_idempotency_settings_name_themselves(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ)


def test_webhook_and_idempotency_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.webhook_allow_private is False and settings.webhook_timeout_seconds == 15.0
    assert settings.idempotency_ttl_hours == 24.0 and settings.webhook_retry_scale == 1.0
    assert load_settings(environ={"NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE": "true"}).webhook_allow_private is True


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"NUMLOOKUP_CONSOLE_SESSION_HOURS": "0"}, "console_session_hours"),
        ({"NUMLOOKUP_CONSOLE_SESSION_HOURS": "1.5"}, "console_session_hours"),
        ({"NUMLOOKUP_CONSOLE": "maybe"}, "console"),
    ],
)
def test_console_settings_name_themselves(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ)


def test_console_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.console is True and settings.console_session_hours == 12
    assert load_settings(environ={"NUMLOOKUP_CONSOLE": "false"}).console is False
