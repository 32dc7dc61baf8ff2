"""``numlookup lookup`` read without typer (``numlookup.cli.quick``) only where typer would read it the same."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from numlookup.cli import app, lookup, quick
from numlookup.settings import get_settings
from tests.support import run_cli

PLAIN = [
    ["lookup", "+37251234567"],
    ["lookup", "+37251234567", "254712345678", "nope"],
    ["lookup", "--region", "de", "0151 12345678", "+37251000001"],
    ["lookup", "+37251000001", "--format", "jsonl", "--style", "onoff"],
    ["lookup", "+37251000001", "--json"],
    ["lookup", "--input", "numbers.txt", "--output", "out.csv", "--format", "csv"],
    ["lookup", "--input", "-", "--output", "-"],
    ["lookup", "--header", "--input", "numbers.txt"],
    ["lookup", "--input", "numbers.txt", "--json", "--format", "xml", "+1"],  # nonsense: run_lookup refuses it
    ["lookup"],
]
NOT_PLAIN = [
    ["lookup", "--help"],
    ["lookup", "-h"],
    ["lookup", "--input", "numbers.txt", "--column", "0"],
    ["lookup", "--input", "numbers.txt", "--delimiter", ";", "--column", "1"],
    ["lookup", "--input=numbers.txt"],
    ["lookup", "--format", "csv", "--format", "jsonl", "+1"],
    ["lookup", "--json", "--json", "+1"],
    ["lookup", "-5"],
    ["lookup", "--", "+1"],
    ["lookup", "--region"],
    ["lookup", "--region", "--json", "+1"],
    ["--config", "settings.toml", "lookup", "+1"],
    ["accounts", "list"],
    [],
]


def _typer_arguments(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What typer hands ``run_lookup`` for ``argv`` (run in this process, ``run_lookup`` replaced by a recorder)."""
    seen: list[dict[str, Any]] = []
    names = ("numbers", "input_file", "output_file", "fmt", "region", "column", "header", "delimiter", "style")

    def record(*args: Any) -> None:
        seen.append(dict(zip((*names, "json_output"), args, strict=True)))

    monkeypatch.setattr(lookup, "run_lookup", record)
    assert app.app(argv, standalone_mode=False) in (None, 0)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_is_read_as_typer_reads_it(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMLOOKUP_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    parsed = quick.parse(argv)
    assert parsed is not None
    expected = _typer_arguments(argv, monkeypatch)
    assert parsed == expected
    assert {k: type(v) for k, v in parsed.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize("argv", NOT_PLAIN, ids=" ".join)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert quick.parse(argv) is None


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.usefixtures("engine")
def test_a_lookup_starts_without_typer_and_answers_as_typer_did(data_dir: Path, tmp_path: Path) -> None:
    """The same answers and errors from a plain command line (no typer imported) and one typer reads (``--column``)."""
    report = {"PYTHONPROFILEIMPORTTIME": "1"}
    done = run_cli(data_dir, "lookup", "+37251234567", env=report)
    assert json.loads(done.stdout)["result"][0]["currentNetwork"]["mccmnc"] == "24801"
    modules = imported(done.stderr)
    assert "numlookup.cli.offline" in modules
    assert not {m for m in modules if m.split(".")[0] == "typer"}

    source = tmp_path / "numbers.csv"
    source.write_text("+37251234567\n+4915112345678\nnope\n")
    plain = run_cli(data_dir, "lookup", "--input", str(source), "--format", "jsonl", env=report)
    through_typer = run_cli(
        data_dir, "lookup", "--input", str(source), "--format", "jsonl", "--column", "0", env=report
    )
    assert "typer.main" not in imported(plain.stderr) and "typer.main" in imported(through_typer.stderr)

    def without_times(text: str) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in text.splitlines()]
        for row in rows:
            row.pop("checkedAt", None)
            row.pop("row", None)
        return rows

    assert without_times(plain.stdout) == without_times(through_typer.stdout)

    for args in (("+37251234567", "--format", "xml"), ("+37251234567", "--region", "XX")):
        quick_error = run_cli(data_dir, "lookup", *args, check=False)
        typer_error = run_cli(data_dir, "lookup", *args, "--style", "seed", "--style", "seed", check=False)
        assert quick_error.returncode == typer_error.returncode == 1
        assert quick_error.stderr.startswith("error: ") and quick_error.stderr == typer_error.stderr


@pytest.mark.usefixtures("engine")
def test_a_quick_exit_keeps_what_the_interpreters_exit_gives(data_dir: Path, tmp_path: Path) -> None:
    """``cli.end`` skips the teardown only: every byte reaches a pipe, an atexit handler runs, the status is kept.

    Megabytes to stdout (a pipe, its buffer flushed at the end) equal the same
    lookup written to a file; a ``sitecustomize`` registers an atexit handler
    that must still write its line; an error keeps its status and message.
    """
    source = tmp_path / "numbers.txt"
    source.write_text("".join(f"+3725{i:07d}\n" for i in range(40_000)))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import atexit, sys\natexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
    )
    with_hook = {"PYTHONPATH": str(hook)}
    piped = run_cli(data_dir, "lookup", "--input", str(source), "--format", "jsonl", env=with_hook)
    written = tmp_path / "out.jsonl"
    run_cli(data_dir, "lookup", "--input", str(source), "--format", "jsonl", "--output", str(written))

    def timeless(text: str) -> list[str]:
        return [re.sub(r'"checkedAt":"[^"]*"', "", line) for line in text.splitlines()]

    assert len(piped.stdout) > 10_000_000
    assert timeless(piped.stdout) == timeless(written.read_text())
    assert piped.stderr.endswith("atexit ran\n")
    failed = run_cli(data_dir, "lookup", "+37251234567", "--region", "XX", env=with_hook, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and failed.stderr.endswith("atexit ran\n")
