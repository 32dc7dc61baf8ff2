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
    assert settings.effective_database_url == f"sqlite:///{Path('var').resolve() / 'numlookup.db'}"
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


def test_an_unknown_source_kind_names_its_upstream() -> None:
    upstreams = '{"mine": {"kind": "infobjp", "url": "https://x"}}'
    with pytest.raises(SettingsError, match="upstreams.mine.kind: unknown kind 'infobjp'; choose one of messente"):
        load_settings(environ={"NUMLOOKUP_UPSTREAMS": upstreams})
