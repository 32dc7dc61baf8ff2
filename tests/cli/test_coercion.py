"""Command-line values converted without pydantic (``numlookup.cli.coercion``), with typer's answers kept."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param, resolve_type_descriptor

from numlookup.cli import coercion
from tests.support import run_cli

# lookup reads imported data from the database, which must exist: only serve and db upgrade create one.
pytestmark = pytest.mark.usefixtures("engine")


def imported(stderr: str) -> set[str]:
    """The modules ``PYTHONPROFILEIMPORTTIME`` reports a process imported."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_lookup_of_a_number_imports_no_pydantic(data_dir: Path) -> None:
    done = run_cli(data_dir, "lookup", "+37251234567", "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert json.loads(done.stdout)["result"][0]["currentNetwork"]["mccmnc"] == "24801"
    modules = imported(done.stderr)
    assert "numlookup.cli.base" in modules  # the report is there: the absence below means something
    assert not {m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core") or m == "typer._adapters"}


def test_a_file_lookup_imports_neither_pydantic_nor_rich_progress(data_dir: Path, tmp_path: Path) -> None:
    """``--input``/``--output`` paths become ``Path``s without typer's adapter; no progress bar off a terminal."""
    source, target = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("+37251234567\n")
    args = ("lookup", "--input", str(source), "--output", str(target), "--format", "jsonl")
    done = run_cli(data_dir, *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert json.loads(target.read_text())["currentNetwork"]["mccmnc"] == "24801"
    modules = imported(done.stderr)
    assert "numlookup.bulk" in modules
    assert not {m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core") or m == "typer._adapters"}
    assert "rich.progress" not in modules


def test_paths_typer_would_refuse_get_typers_errors(data_dir: Path, tmp_path: Path) -> None:
    """``--config`` must exist and be a file: typer's own checks, so its own messages."""
    done = run_cli(data_dir, "--config", str(tmp_path), "info", check=False)
    assert done.returncode != 0 and "Invalid value for '--config'" in done.stderr and "is a directory" in done.stderr


def test_values_converted_plainly_are_the_values_given(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id;number\n1;+37251234567\n")
    done = run_cli(data_dir, "lookup", "--input", str(source), "--column", "1", "--delimiter", ";", "--header")
    assert done.stdout.splitlines()[1].split(";")[:4] == ["1", "+37251234567", "+37251234567", "true"]
    done = run_cli(data_dir, "lookup", "--input", str(source), "--column", "2", "--delimiter", ";", check=False)
    assert done.stderr == "error: line 1 has 2 columns; --column 2 needs at least 3\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lookup", "--input", "-", "--column", "two"), "Invalid value for '--column'"),
        (("lookup", "--input", "-", "--column", "-1"), "Invalid value for '--column'"),
        (("serve", "--port", "70000"), "Invalid value for '--port'"),
        (("serve", "--workers", "0"), "Invalid value for '--workers'"),
        (("--config", "/no/such/file.toml", "info"), "Invalid value for '--config'"),
    ],
)
def test_values_it_does_not_convert_get_typers_errors(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    done = run_cli(data_dir, *args, check=False)
    assert done.returncode != 0 and message in done.stderr and done.stderr.startswith("error: ")


def test_an_import_of_a_file_loads_none_of_what_it_does_not_use(data_dir: Path, tmp_path: Path) -> None:
    """Its path argument converted without pydantic; no rich console with --json; pyarrow without its compute module's
    wrappers; numpy without numpy.ma."""
    source = tmp_path / "ported.csv"
    source.write_text("number,mccmnc\n491701234567,26203\n491701234568,26203\n491701234567,26202\n")
    done = run_cli(data_dir, "data", "import-ported", str(source), "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert json.loads(done.stdout)["rows"] == 2
    modules = imported(done.stderr)
    assert "numlookup.datasets.columnar" in modules  # the report is there: the absence below means something
    assert not {m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core") or m == "typer._adapters"}
    assert not {"pyarrow.compute", "numpy.ma", "rich.console", "rich.progress"} & modules


def _coerced(runtime: Any, value: str) -> tuple[str, object]:
    """What a conversion gives for ``value``: ("value", the result) or ("error", typer's message)."""
    param = SimpleNamespace(multiple=False, nargs=1)
    try:
        return "value", runtime.coerce(value, param=param, ctx=None)
    except BadParameter as exc:
        return "error", exc.message


@pytest.mark.parametrize(
    "info",
    [
        typer.Argument(exists=True, dir_okay=False),
        typer.Option(exists=True, file_okay=False),
        typer.Option(resolve_path=True),
        typer.Option(exists=True, allow_dash=True),
        typer.Option(),
    ],
    ids=["file-that-exists", "folder-that-exists", "resolved", "dash-allowed", "any"],
)
def test_a_path_converted_plainly_is_what_typer_gives(
    tmp_path: Path, info: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of path value, through the plain conversion and through typer's own (pydantic's adapter)."""
    (tmp_path / "file.csv").write_text("x\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "file.csv")
    monkeypatch.chdir(tmp_path)
    descriptor = resolve_type_descriptor(Path, info)
    plain = coercion._Plain(parameter_info=info, annotation=Path, descriptor=descriptor)
    values = ["file.csv", str(tmp_path / "file.csv"), "folder", "folder/", "link", "missing.csv", "-", "", "./file.csv"]
    for value in values:
        assert _coerced(plain, value) == _coerced(build_runtime_param(descriptor), value), value
