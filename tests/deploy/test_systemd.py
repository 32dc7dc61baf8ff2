"""deploy/systemd/: systemd accepts the units, rates the services well hardened, and their commands work.

systemd-analyze checks the file offline (no running systemd is needed). Only
the path of the numlookup executable is replaced, by this environment's, since
``verify`` insists that it exists. Where systemd-analyze is missing the
systemd tests skip: it comes with Debian's ``systemd`` package, the init
system's own, which ``make test`` does not install on a machine that lacks it.

The last tests run the services' commands with their environment (paths moved
into a temporary folder). numlookup.service is stopped as ``KillMode=mixed``
does: SIGTERM to the main process only; with two workers it must exit 0 well
within ``TimeoutStopSec``. numlookup-backup.service must leave a backup.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from numlookup.settings import Settings
from tests.support import BACKEND, ROOT, database_url, free_port, until_healthy

UNITS = ROOT / "deploy" / "systemd"
UNIT = UNITS / "numlookup.service"
BACKUP_UNIT = UNITS / "numlookup-backup.service"
ALL_UNITS = sorted(p.name for p in UNITS.glob("*.service")) + sorted(p.name for p in UNITS.glob("*.timer"))
EXAMPLE = ROOT / "deploy" / "numlookup.example.toml"
INSTALLED = "/opt/numlookup/bin/numlookup"  # where docs/deploying.md installs it
# systemd-analyze security's overall exposure, 0 (locked down) to 10; "OK" is below 4.
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip(
            "systemd-analyze is not installed: it comes with Debian's systemd package (the init system's), "
            "which make test does not install"
        )
    return binary


def service(unit: Path = UNIT) -> dict[str, list[str]]:
    """The [Service] section: each key's values, in order (systemd allows a key many times)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def environment(unit: Path = UNIT) -> dict[str, str]:
    """The unit's Environment= assignments."""
    return dict(item.split("=", 1) for value in service(unit)["Environment"] for item in shlex.split(value))


def seconds(value: str) -> float:
    """A systemd time span: ``30``, ``30s``, ``1min 30s``."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(number) * units[unit] for number, unit in parts)


def executable() -> str:
    """This environment's numlookup command, in place of the installed one."""
    path = Path(sys.executable).parent / "numlookup"
    assert path.exists(), path
    return str(path)


def rendered(folder: Path, name: str, text: str | None = None) -> Path:
    """Every unit file in ``folder`` (a timer needs its service), ``name`` as ``text`` if given."""
    for unit in ALL_UNITS:
        source = text if unit == name and text is not None else (UNITS / unit).read_text()
        assert unit.endswith(".timer") or INSTALLED in source, f"{unit} runs {INSTALLED}"
        (folder / unit).write_text(source.replace(INSTALLED, executable()))
    return folder / name


def verify(path: Path) -> list[str]:
    """What ``systemd-analyze verify`` says about the unit (lines about other units on this machine dropped)."""
    done = subprocess.run(
        [systemd_analyze(), "verify", str(path)], capture_output=True, text=True, timeout=60, cwd=path.parent
    )
    said = [line for line in (done.stdout + done.stderr).splitlines() if "numlookup" in line]
    if done.returncode != 0 and not said:
        said = [f"exit status {done.returncode}: {done.stderr}"]
    return said


def running(pid: str) -> bool:
    """Whether the process exists and is not a zombie waiting for a parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids(main: int) -> list[str]:
    """The uvicorn workers under ``main``: its multiprocessing children, not multiprocessing's resource tracker.

    The tracker exits by itself once the main process has gone (systemd's final
    SIGKILL of the rest of the unit would take it too); it holds no request.
    """
    children = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()
    workers = []
    for pid in children:
        try:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
                workers.append(pid)
        except FileNotFoundError:
            pass
    return workers


@pytest.mark.parametrize("name", ALL_UNITS)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, name: str) -> None:
    assert verify(rendered(tmp_path, name)) == []


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above has teeth: a misspelt value and an unknown option are reported."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictest")
    broken = broken.replace("KillMode=mixed", "KillMode=mixed\nKillMood=mixed")
    said = " ".join(verify(rendered(tmp_path, UNIT.name, broken)))
    assert "strictest" in said and "KillMood" in said, said


@pytest.mark.parametrize("name", [n for n in ALL_UNITS if n.endswith(".service")])
def test_systemd_analyze_security_rates_the_service_well_hardened(tmp_path: Path, name: str) -> None:
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNITS / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (systemd < 250)")
    level = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", done.stdout)
    assert level, done.stdout + done.stderr
    assert float(level.group(1)) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unit_stops_in_time_restarts_on_failure_and_writes_only_its_data_dir() -> None:
    unit = service()
    example = tomllib.loads(EXAMPLE.read_text())
    graceful = max(Settings().timeout_graceful_shutdown_seconds, example["timeout_graceful_shutdown_seconds"])
    assert seconds(unit["TimeoutStopSec"][-1]) > graceful
    assert unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["User"] and unit["User"] != ["root"]
    env = environment()
    # The only place numlookup writes outside its private /tmp is its data directory.
    assert unit["ReadWritePaths"] == [env["NUMLOOKUP_DATA_DIR"]]
    assert env["NUMLOOKUP_DATA_DIR"] == example["data_dir"]
    assert f"/var/lib/{unit['StateDirectory'][0]}" == env["NUMLOOKUP_DATA_DIR"]
    assert any(value.lstrip("-") for value in unit["EnvironmentFile"])


def test_the_units_command_stops_cleanly_on_sigterm_to_the_main_process_alone(tmp_path: Path) -> None:
    """KillMode=mixed without systemd: the unit's ExecStart and Environment=, SIGTERM to the main process only."""
    unit = service()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    for name, value in environment().items():
        env[name] = value
    env["NUMLOOKUP_CONFIG"] = str(EXAMPLE)  # in place of /etc/numlookup/numlookup.toml
    env["NUMLOOKUP_DATA_DIR"] = str(tmp_path / "data")  # in place of /var/lib/numlookup
    if BACKEND != "sqlite":
        env["NUMLOOKUP_DATABASE_URL"] = database_url(tmp_path / "data")
    port = free_port()
    env["NUMLOOKUP_PORT"] = str(port)
    env["NUMLOOKUP_WORKERS"] = "2"
    command = shlex.split(unit["ExecStart"][0])
    assert command[0] == INSTALLED
    command[0] = executable()
    # Create the database as an operator would (admin commands never do), then compile the numbering plan into the
    # data directory, so the workers start from the cache.
    subprocess.run([command[0], "db", "upgrade"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([command[0], "lookup", "+37251000001"], env=env, check=True, capture_output=True, timeout=300)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert until_healthy(f"http://127.0.0.1:{port}", process, 60, log_path.read_text), log_path.read_text()
        workers = worker_pids(process.pid)
        assert len(workers) == 2, f"two workers under the main process: {workers}"
        started = time.monotonic()
        os.kill(process.pid, getattr(signal, unit["KillSignal"][-1]))  # to the main process only
        status = process.wait(timeout=seconds(unit["TimeoutStopSec"][-1]))
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert status == 0, log_path.read_text()
    assert took < seconds(unit["TimeoutStopSec"][-1])
    leftover = [pid for pid in workers if running(pid)]
    assert not leftover, f"workers still running after the main process exited: {leftover}"
    logged = log_path.read_text()
    assert '"level"' in logged, "NUMLOOKUP_LOG_FORMAT=json from the unit: JSON lines"


def test_the_backup_service_uses_the_nodes_settings_and_leaves_a_backup(tmp_path: Path) -> None:
    """Its ExecStart as systemd runs it (``%%`` is ``%``), with the node's settings moved into ``tmp_path``."""
    unit, node = service(BACKUP_UNIT), service()
    for key in ("EnvironmentFile", "User", "Group"):
        assert unit[key] == node[key], f"{key}: the backup must see the node's database, as the node's user"
    for name in ("NUMLOOKUP_CONFIG", "NUMLOOKUP_DATA_DIR"):
        assert environment(BACKUP_UNIT)[name] == environment()[name]
    data_dir = environment(BACKUP_UNIT)["NUMLOOKUP_DATA_DIR"]
    (script,) = unit["ExecStart"]
    target_dir = re.search(r'"(/[^"$]+)/numlookup-\$', script)
    assert target_dir, script
    assert unit["ReadWritePaths"] == [f"{data_dir} {target_dir.group(1)}"]

    backups, data = tmp_path / "backups", tmp_path / "data"
    backups.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env.update(environment(BACKUP_UNIT))
    env.update(NUMLOOKUP_CONFIG=str(EXAMPLE), NUMLOOKUP_DATA_DIR=str(data))
    if BACKEND != "sqlite":
        env["NUMLOOKUP_DATABASE_URL"] = database_url(data)
    for step in (["db", "upgrade"], ["accounts", "create", "nightly"]):  # admin commands never create the database
        prepared = subprocess.run([executable(), *step], env=env, capture_output=True, text=True, timeout=120)
        assert prepared.returncode == 0, prepared.stderr
    command = shlex.split(
        script.replace("%%", "%").replace(INSTALLED, executable()).replace(target_dir.group(1), str(backups))
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (made,) = backups.iterdir()
    assert re.fullmatch(r"numlookup-\d{8}T\d{6}Z\.backup", made.name), made.name
    assert made.stat().st_size > 0 and str(made) in done.stdout
