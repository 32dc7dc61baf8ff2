"""The `numlookup` command as a user types it: real processes on a real SQLite file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from numlookup.accounts import Account, AuthFailure, authenticate, create_account, list_accounts
from numlookup.billing import ledger_rows, parse_amount
from numlookup.billing.money import parse_signed_amount
from numlookup.store import make_engine
from tests.support import ROOT, cli_json, database_url, environment, free_port, run_cli


@pytest.mark.usefixtures("engine")  # the database exists: only serve and db upgrade create one
def test_account_lifecycle(data_dir: Path) -> None:
    created = cli_json(
        data_dir,
        "accounts",
        "create",
        "acme",
        "--credits",
        "25",
        "--allow-ip",
        "10.1.0.0/16",
        "--allow-ip",
        "2001:db8::/48",
        "--status-style",
        "onoff",
    )
    assert created["name"] == "acme"
    assert re.fullmatch(r"[A-Za-z0-9]{13}", created["api_username"])
    assert re.fullmatch(r"[A-Za-z0-9]{24}", created["api_password"])

    shown = cli_json(data_dir, "accounts", "show", "acme")
    assert shown["balance"] == "25"
    assert shown["status_style"] == "onoff"
    assert shown["allowed_networks"] == ["10.1.0.0/16", "2001:db8::/48"]
    assert shown["enabled"] is True and shown["price"] is None
    assert "api_password" not in shown

    cli_json(data_dir, "accounts", "disable", "acme")
    assert cli_json(data_dir, "accounts", "show", "acme")["enabled"] is False
    cli_json(data_dir, "accounts", "enable", "acme")
    cli_json(data_dir, "accounts", "deny-ip", "acme", "10.1.0.0/16")
    cli_json(data_dir, "accounts", "allow-ip", "acme", "0.0.0.0/0")
    cli_json(data_dir, "accounts", "set-price", "acme", "0.002")
    cli_json(data_dir, "accounts", "set-style", "acme", "default")
    listed = cli_json(data_dir, "accounts", "list")
    assert [(a["name"], a["allowed_networks"], a["price"], a["status_style"]) for a in listed] == [
        ("acme", ["2001:db8::/48", "0.0.0.0/0"], "0.002", None)
    ]

    engine = make_engine(database_url(data_dir))
    assert isinstance(authenticate(engine, created["api_username"], created["api_password"], "192.0.2.1"), Account)
    rotated = cli_json(data_dir, "accounts", "rotate-secret", "acme")
    assert rotated["api_username"] == created["api_username"]
    assert rotated["api_password"] != created["api_password"]
    stale = authenticate(engine, created["api_username"], created["api_password"], "192.0.2.1")
    assert stale is AuthFailure.WRONG_SECRET
    assert isinstance(authenticate(engine, rotated["api_username"], rotated["api_password"], "192.0.2.1"), Account)
    engine.dispose()

    human = run_cli(data_dir, "accounts", "list").stdout
    assert "acme" in human and created["api_username"] in human


@pytest.mark.usefixtures("engine")
def test_credits_are_exact_decimals(data_dir: Path) -> None:
    cli_json(data_dir, "accounts", "create", "shop")
    assert cli_json(data_dir, "credits", "add", "shop", "0.1")["balance"] == "0.1"
    assert cli_json(data_dir, "credits", "add", "shop", "0.2", "--note", "top-up")["balance"] == "0.3"
    assert cli_json(data_dir, "credits", "add", "shop", "0.000001")["balance"] == "0.300001"
    shown = cli_json(data_dir, "credits", "show", "shop")
    assert shown["balance"] == "0.300001"
    assert [(r["kind"], r["amount"], r["balance_after"], r["note"]) for r in shown["ledger"]] == [
        ("credit", "0.000001", "0.300001", None),
        ("credit", "0.2", "0.3", "top-up"),
        ("credit", "0.1", "0.1", None),
    ]
    assert "0.300001" in run_cli(data_dir, "credits", "show", "shop").stdout


def test_credits_adjust_corrects_either_way_with_a_note(data_dir: Path, engine: Engine) -> None:
    cli_json(data_dir, "accounts", "create", "shop", "--credits", "5")
    taken = cli_json(data_dir, "credits", "adjust", "shop", "-1.25", "--note", "refund: duplicate top-up")
    assert (taken["adjusted"], taken["balance"]) == ("-1.25", "3.75")
    given = cli_json(data_dir, "credits", "adjust", "shop", "0.5", "--note", "goodwill")
    assert (given["adjusted"], given["balance"]) == ("0.5", "4.25")
    assert given["ledger_id"] > taken["ledger_id"]
    human = run_cli(data_dir, "credits", "adjust", "shop", "-0.25", "--note", "rounding").stdout
    assert "adjusted shop by -0.25; balance 4" in human
    shown = cli_json(data_dir, "credits", "show", "shop")
    assert shown["balance"] == "4"
    assert [(r["kind"], r["amount"], r["balance_after"], r["note"]) for r in shown["ledger"]] == [
        ("adjustment", "-0.25", "4", "rounding"),
        ("adjustment", "0.5", "4.25", "goodwill"),
        ("adjustment", "-1.25", "3.75", "refund: duplicate top-up"),
        ("credit", "5", "5", "initial credits"),
    ]
    assert sum(parse_signed_amount(r["amount"]) for r in shown["ledger"]) == parse_amount(shown["balance"])
    # The note is required: a usage error (exit 2) before anything runs.
    missing = run_cli(data_dir, "credits", "adjust", "shop", "-1", check=False)
    assert missing.returncode == 2 and "--note" in missing.stderr
    assert cli_json(data_dir, "credits", "show", "shop")["ledger"] == shown["ledger"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("credits", "adjust", "shop", "-5.000001", "--note", "too much"), "would take the balance of 5 below zero"),
        (("credits", "adjust", "shop", "-1", "--note", "   "), "needs a note"),
        (("credits", "adjust", "shop", "0", "--note", "nothing"), "must not be zero"),
        (("credits", "adjust", "shop", "-0.0000001", "--note", "tiny"), "more than 6 decimal places"),
        (("credits", "adjust", "nobody", "-1", "--note", "who"), "no account named 'nobody'"),
        (("credits", "add", "shop", "0.0000001"), "more than 6 decimal places"),
        (("credits", "add", "shop", "--", "-1"), "negative"),
        (("credits", "add", "shop", "ten"), "not a decimal"),
        (("credits", "add", "shop", "0"), "greater than zero"),
        (("credits", "add", "nobody", "1"), "no account named 'nobody' in "),
        (("accounts", "create", "shop"), "exists already"),
        (("accounts", "allow-ip", "shop", "10.0.0.1/8"), "not a network"),
        (("accounts", "allow-ip", "shop", "0.0.0.0/0"), "already on the allow-list"),
        (("accounts", "deny-ip", "shop", "192.168.0.0/16"), "not on the allow-list"),
        (("accounts", "set-style", "shop", "yesno"), "unknown status style"),
        (("accounts", "create", "other", "--status-style", "loud"), "unknown status style"),
    ],
)
def test_mistakes_are_clear_errors_that_change_nothing(
    data_dir: Path, engine: Engine, args: tuple[str, ...], message: str
) -> None:
    create_account(engine, "shop", credits=parse_amount("5"), allow=["0.0.0.0/0"])
    before = list_accounts(engine)
    result = run_cli(data_dir, *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list_accounts(engine) == before
    assert len(ledger_rows(engine, before[0].id)) == 1


@pytest.mark.usefixtures("engine")
def test_lookup_prints_the_api_result_objects(data_dir: Path) -> None:
    out = json.loads(run_cli(data_dir, "lookup", "+37251000001", "254712345678", "nope", "--style", "onoff").stdout)
    estonia, kenya, bad = out["result"]
    assert estonia["currentNetwork"]["mccmnc"] == "24801"
    assert kenya["number"] == "+254712345678" and kenya["currentNetwork"]["mccmnc"] == "63902"
    assert bad["status"] == "INVALID" and bad["number"] == "nope"


def _without_times(items: list[dict[str, object]]) -> list[dict[str, object]]:
    """Result objects minus ``checkedAt`` (each run's own time), which every one must carry."""
    for item in items:
        assert item.pop("checkedAt")
    return items


@pytest.mark.usefixtures("engine")
def test_lookup_numbers_honour_region(data_dir: Path) -> None:
    national = json.loads(run_cli(data_dir, "lookup", "--region", "de", "0151 12345678", "+37251000001").stdout)
    international = json.loads(run_cli(data_dir, "lookup", "+4915112345678", "+37251000001").stdout)
    assert _without_times(national["result"]) == _without_times(international["result"])
    assert national["result"][0]["currentNetwork"]["countryCode"] == "DEU"
    without = json.loads(run_cli(data_dir, "lookup", "0151 12345678").stdout)["result"]
    assert without[0]["number"] != "+4915112345678"  # read as international without the hint


@pytest.mark.usefixtures("engine")
def test_lookup_numbers_in_every_output_format(data_dir: Path, tmp_path: Path) -> None:
    numbers = ["+37251000001", "254712345678", "nope", "0151 12345678"]
    document = json.loads(run_cli(data_dir, "lookup", *numbers, "--region", "DE").stdout)
    assert list(document) == ["result"]
    results = _without_times(document["result"])
    explicit = json.loads(run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--json").stdout)
    assert _without_times(explicit["result"]) == results

    lines = run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--format", "jsonl", "--style", "onoff").stdout
    objects = [json.loads(line) for line in lines.splitlines()]
    assert [o.pop("input") for o in objects] == numbers
    onoff = json.loads(run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--style", "onoff").stdout)
    assert _without_times(objects) == _without_times(onoff["result"])

    # CSV: exactly what the same numbers give as a file, to stdout or to --output.
    source, target = tmp_path / "numbers.txt", tmp_path / "out.csv"
    source.write_text("\n".join(numbers) + "\n")
    run_cli(data_dir, "lookup", "--input", str(source), "--output", str(target), "--region", "DE")
    as_args = run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--format", "csv").stdout
    assert as_args == target.read_text() and len(as_args.splitlines()) == 1 + len(numbers)
    written = tmp_path / "args.csv"
    run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--format", "csv", "--output", str(written))
    assert written.read_text() == as_args
    document_file = tmp_path / "result.json"
    run_cli(data_dir, "lookup", *numbers, "--region", "DE", "--output", str(document_file))
    assert _without_times(json.loads(document_file.read_text())["result"]) == results


@pytest.mark.usefixtures("engine")
def test_a_bulk_summary_off_a_terminal_is_the_same_line_without_importing_rich(data_dir: Path, tmp_path: Path) -> None:
    """The summary of a file written to --output, into a log: rich's console is imported only where rich may colour.

    ``PYTHONPROFILEIMPORTTIME`` makes the interpreter list every import on stderr,
    beside the summary; with ``TTY_COMPATIBLE=1`` rich takes over (and draws
    its progress bar), and the summary says the same.
    """
    source, target = tmp_path / "numbers.txt", tmp_path / "out.jsonl"
    source.write_text("+37251000001\n+4915112345678\nnope\n")
    args = ("lookup", "--input", str(source), "--output", str(target), "--format", "jsonl")
    plain = run_cli(data_dir, *args, env={"PYTHONPROFILEIMPORTTIME": "1"}).stderr.splitlines()
    summary = [line for line in plain if not line.startswith("import time:")]
    assert len(summary) == 1 and summary[0].startswith("3 numbers (2 valid) in "), plain[-3:]
    assert summary[0].endswith("/s; slow path: 1")
    assert not [line for line in plain if line.endswith(" rich.console")]
    rich = run_cli(data_dir, *args, env={"PYTHONPROFILEIMPORTTIME": "1", "TTY_COMPATIBLE": "1"}).stderr
    assert any(line.endswith(" rich.console") for line in rich.splitlines())
    assert "3 numbers (2 valid) in " in rich and "/s; slow path: 1" in rich
    assert len(target.read_text().splitlines()) == 3


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("+37251000001", "--column", "0"), "--column is for an --input file"),
        (("+37251000001", "--header"), "--header is for an --input file"),
        (("+37251000001", "--delimiter", ";"), "--delimiter is for an --input file"),
        (("+37251000001", "--json", "--format", "jsonl"), "--json and --format both choose the output"),
        (("+37251000001", "--format", "csv", "--style", "onoff"), "--style needs result objects"),
        (("+37251000001", "--format", "xml"), "--format is csv or jsonl"),
        (("+37251000001", "--region", "XX"), "--region: unknown region 'XX'"),
        (("+37251000001", "--input", "FILE"), "give NUMBERS or --input FILE (not both)"),
        (("--input", "FILE", "--json"), "--json is for NUMBERS"),
        (("--input", "FILE", "--style", "onoff"), "--style needs result objects"),
        (("--input", "FILE", "--delimiter", ";"), "--delimiter separates a CSV input's fields: it needs --column N"),
        (("--input", "FILE", "--column", "0", "--delimiter", ";;"), "--delimiter is one character"),
        (("--input", "FILE", "--column", "0", "--delimiter", '"'), "--delimiter is one character"),
    ],
)
def test_lookup_refuses_options_that_would_do_nothing(
    data_dir: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    source = tmp_path / "numbers.txt"
    source.write_text("+37251000001\n")
    result = run_cli(data_dir, "lookup", *(str(source) if a == "FILE" else a for a in args), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.usefixtures("engine")
def test_config_file_and_environment(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "numlookup.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-config"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    for command in (["db", "upgrade"], ["accounts", "create", "c"]):
        args = [sys.executable, "-m", "numlookup", "--config", str(config), *command]
        subprocess.run(args, env=env, check=True, capture_output=True, cwd=ROOT)
    engine = make_engine(f"sqlite:///{tmp_path / 'from-config' / 'numlookup.db'}", create=False)
    assert [a.name for a in list_accounts(engine)] == ["c"]
    engine.dispose()
    # The environment wins over the file.
    run_cli(data_dir, "--config", str(config), "accounts", "create", "d")
    engine = make_engine(database_url(data_dir))
    assert [a.name for a in list_accounts(engine)] == ["d"]
    engine.dispose()
    bad = tmp_path / "bad.toml"
    bad.write_text('max_numbers_per_request = "lots"\n')
    result = run_cli(data_dir, "--config", str(bad), "accounts", "list", check=False)
    assert result.returncode == 1 and "max_numbers_per_request" in result.stderr


def test_serve_demo_prints_working_credentials_and_curl(data_dir: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "numlookup", "serve", "--demo", "--port", str(port)],
        env=environment(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Uvicorn running on" in line:  # listening (the app starts up before the socket is bound)
                break
        printed = "".join(lines)
        curl = printed[printed.index("curl ") : printed.index("}'") + 2]
        assert f"127.0.0.1:{port}" in curl
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        body = json.loads(done.stdout)
        assert [r["status"] for r in body["result"]] == ["UNKNOWN", "UNKNOWN", "UNKNOWN"]
        username, password = (re.findall(rf"API {what}: (\S+)", printed)[0] for what in ("username", "password"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    assert oct((data_dir / "demo-credentials.json").stat().st_mode & 0o777) == "0o600"

    # A second start shows the same, still valid, credentials.
    again = subprocess.Popen(
        [sys.executable, "-m", "numlookup", "serve", "--demo", "--port", str(port)],
        env=environment(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert again.stdout is not None
        seen = ""
        deadline = time.monotonic() + 30
        while "Uvicorn running on" not in seen and time.monotonic() < deadline:  # the socket listens only then
            seen += again.stdout.readline()
        assert f"API username: {username}" in seen and f"API password: {password}" in seen
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/hlr/sync", auth=(username, password), json={"numbers": ["+37251000001"]}
        )
        assert response.status_code == 200
    finally:
        os.killpg(again.pid, signal.SIGTERM)
        again.wait(timeout=20)


def test_python_dash_m_and_help() -> None:
    result = subprocess.run([sys.executable, "-m", "numlookup", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for command in ("serve", "accounts", "credits", "lookup", "db"):
        assert command in result.stdout
