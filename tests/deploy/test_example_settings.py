"""deploy/numlookup.example.toml and deploy/systemd/numlookup.env.example: complete, valid, secret-free, used.

The example's convention: prose comments start with ``# ``; a setting left off
is ``#name = value`` (no space), and so are the lines of a left-off table.
Switching those on (removing the ``#``) must give valid settings too, so the
examples in comments cannot rot.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import get_args

import httpx
import msgspec
import pytest
from sqlalchemy import Engine

from numlookup.accounts import create_account
from numlookup.billing import parse_amount
from numlookup.settings import OsmoHlrSettings, Settings, load_settings
from numlookup.source_settings import SECRETS, SOURCE_KINDS, MessenteSettings, UpstreamSettings
from tests.support import ROOT, Server

EXAMPLE = ROOT / "deploy" / "numlookup.example.toml"
ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "numlookup.env.example"
LEFT_OFF = re.compile(r"^#(?=[\[a-zA-Z_{}\]])", re.M)  # "#name = …", "#[table]", "#{…},", "#]"
KEY = re.compile(r"^#?([a-z_]+) = ")
TABLE = re.compile(r"^#?\[([a-z_.]+)\]$")
# A placeholder: capitals, dashes and underscores, like PASSWORD, UPSTREAM-PASSWORD or INFOBIP_API_KEY
# (an environment variable's name, which a `<field>_env` setting holds).
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_-]*$")
KINDS = {struct.__struct_config__.tag: struct for struct in get_args(UpstreamSettings)}


def switched_on(text: str) -> str:
    return LEFT_OFF.sub("", text)


def keys_with_comments(text: str) -> dict[str, tuple[bool, str]]:
    """Each key (a table's as ``table.key``) and table: whether it is on, and the comment block just above it."""
    found: dict[str, tuple[bool, str]] = {}
    table = ""
    block: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            block = []
        elif match := TABLE.match(line):
            table = match.group(1).split(".")[0]
            found[table] = (not line.startswith("#"), " ".join(block))
            table += "."
        elif match := KEY.match(line):
            found[table + match.group(1)] = (not line.startswith("#"), " ".join(block))
        elif line.startswith("# "):
            block.append(line[2:])
    return found


def defaults() -> dict[str, object]:
    return msgspec.to_builtins(Settings())  # type: ignore[no-any-return]  # a dict: Settings is a Struct


def test_the_example_names_every_setting_and_loads_as_written() -> None:
    text = EXAMPLE.read_text()
    keys = keys_with_comments(text)
    missing = set(Settings.__struct_fields__) - {k for k in keys if "." not in k}
    assert not missing, f"settings the example does not mention: {sorted(missing)}"
    osmo = {k.split(".", 1)[1] for k in keys if k.startswith("osmo_hlr.")}
    assert osmo == set(OsmoHlrSettings.__struct_fields__), f"[osmo_hlr] lists {sorted(osmo)}"
    # One table of every source kind, each with every field of its kind; a credential inline or as `_env`.
    tables = tomllib.loads(switched_on(text))["upstreams"]
    assert {table["kind"] for table in tables.values()} == set(SOURCE_KINDS)
    for name, table in tables.items():
        struct = KINDS[table["kind"]]
        secrets = {f for field in SECRETS[struct] for f in (field, f"{field}_env")}
        for field in SECRETS[struct]:
            assert (field in table) != (f"{field}_env" in table), f"[upstreams.{name}] gives {field} once"
        expected = set(struct.__struct_fields__) - {"kind"} - secrets
        assert set(table) - {"kind"} - secrets == expected, f"[upstreams.{name}] lists {sorted(table)}"
    assert all(comment for comment in keys.values()), "every setting has a comment"

    loaded = msgspec.to_builtins(load_settings(str(EXAMPLE), environ={}))
    # A value that is not the default says so, and names the default.
    for name, value in loaded.items():
        on, comment = keys[name]
        if value != defaults()[name]:
            assert on and "default" in comment, f"{name} = {value!r} is not the default and the comment does not say so"


def test_every_left_off_setting_is_valid_and_takes_effect(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    left_off = [name for name, (on, _) in keys_with_comments(text).items() if not on and "." not in name]
    assert left_off, "the example leaves some settings off"
    config = tmp_path / "all-on.toml"
    config.write_text(switched_on(text))
    loaded = msgspec.to_builtins(load_settings(str(config), environ=credentials()))
    for name in left_off:
        assert loaded[name] != defaults()[name], f"switching on {name} changes nothing"
    routed = {source for route in loaded["live_routes"] for source in [route["source"], *route["sources"]] if source}
    assert routed <= {"offline", "osmo-hlr", *loaded["upstreams"]}
    assert set(loaded["upstreams"]) <= routed  # every example source is on a route


def credentials() -> dict[str, str]:
    """The upstream credentials the environment file names (``…_env`` settings read them), switched on."""
    found = re.findall(r"^#?([A-Z][A-Z_]*)='([^']*)'", ENV_EXAMPLE.read_text(), re.M)
    return {name: value for name, value in found if not name.startswith("NUMLOOKUP_")}


def secret_values(text: str) -> list[tuple[str, str]]:
    """(name, value) of every password, token and URL password in ``text``, whether on or left off."""
    found = re.findall(r'^#?\s*"?([a-z_]*(?:password|username|token|secret)[a-z_]*)"? = "([^"]*)"', text, re.M | re.I)
    found += [("password in " + url, pw) for url, pw in re.findall(r"(\w[\w+]*://[^:/@\s'\"]+:([^@\s'\"]+)@)", text)]
    found += re.findall(r'"(password|username)": "([^"]*)"', text)
    found += re.findall(r"^#?(NUMLOOKUP_ADMIN_TOKEN)='([^']*)'", text, re.M)
    return found


@pytest.mark.parametrize("example", [EXAMPLE, ENV_EXAMPLE], ids=lambda p: p.name)
def test_examples_hold_placeholders_never_secrets(example: Path) -> None:
    values = secret_values(example.read_text())
    assert values, f"{example.name} shows where its secrets go"
    for name, value in values:
        assert value == "" or PLACEHOLDER.match(value), f"{example.name}: {name} = {value!r} is not a placeholder"


def test_the_environment_file_is_read_by_sh_as_the_docs_say_and_makes_valid_settings(tmp_path: Path) -> None:
    """Every line switched on; sourced by sh with ``set -a``, as docs/deploying.md runs admin commands."""
    env_file = tmp_path / "numlookup.env"
    env_file.write_text(switched_on(ENV_EXAMPLE.read_text()))
    done = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; exec env -0', "sh", str(env_file)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    environ = dict(item.split("=", 1) for item in done.stdout.split("\0") if item.startswith("NUMLOOKUP_"))
    names = re.findall(r"^#?(NUMLOOKUP_[A-Z_]+)=", ENV_EXAMPLE.read_text(), re.M)
    assert sorted(environ) == sorted(names)
    loaded = load_settings(str(EXAMPLE), environ=environ)
    assert loaded.database_url == environ["NUMLOOKUP_DATABASE_URL"]
    assert loaded.admin_token == environ["NUMLOOKUP_ADMIN_TOKEN"]
    assert msgspec.to_builtins(loaded.upstreams) == {
        name: {**msgspec.to_builtins(MessenteSettings(**upstream)), **upstream}
        for name, upstream in json.loads(environ["NUMLOOKUP_UPSTREAMS"]).items()
    }


def test_a_server_runs_with_the_example(data_dir: Path, engine: Engine) -> None:
    """data_dir comes from NUMLOOKUP_DATA_DIR (the environment wins); everything else from the example."""
    config = load_settings(str(EXAMPLE), environ={})
    # The test's requests come from 127.0.0.1: the proxy the example trusts.
    assert any(ipaddress.ip_address("127.0.0.1") in ipaddress.ip_network(c) for c in config.trusted_proxies)
    client = "192.0.2.7"
    creds = create_account(engine, "example", credits=parse_amount("1"), allow=[f"{client}/32"])
    server = Server(data_dir, env={"NUMLOOKUP_CONFIG": str(EXAMPLE)}).start()
    try:
        auth = (creds.api_username, creds.api_password)
        body = {"numbers": ["+37251000001"]}
        forwarded = httpx.post(
            server.url + "/v1/hlr/sync", json=body, auth=auth, headers={"X-Forwarded-For": client}, timeout=30
        )
        direct = httpx.post(server.url + "/v1/hlr/sync", json=body, auth=auth, timeout=30)
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    finally:
        server.stop()
    # The example's trusted_proxies applied: the forwarded client is let in, the proxy itself is not.
    assert forwarded.status_code == 200, forwarded.text
    assert direct.status_code == 401, direct.text
    assert (data_dir / "cache").is_dir(), "the compiled numbering plan went to NUMLOOKUP_DATA_DIR"
