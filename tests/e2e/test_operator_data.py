"""Operator data against a running server: CLI and admin-endpoint imports reach every worker.

One server with two worker processes and a 0.2 s dataset poll serves the whole
module; the tests run in file order and each leaves the server on a known
version. A request is tied to the worker that served it through the socket
tables in /proc, so "every worker switched" is observed, not assumed: the
polling loops wait (up to a generous bound) until each worker has answered with
the new data, and only then assert that consecutive requests all show it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from numlookup.accounts import NewCredentials
from numlookup.datasets import catalog
from numlookup.datasets.follower import load_operator_data
from numlookup.numbering import Resolver
from numlookup.numbering.models import Resolution
from numlookup.store import make_engine
from tests import resolutions as has
from tests.e2e.conftest import Live, start_live
from tests.support import Server, cli_json, database_url, run_cli

SYNC = "/v1/hlr/sync"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
TOKEN = "test-admin-token-5c1f"
POLL = "0.2"
WAIT = 20.0  # an upper bound for waiting, never a measured expectation

NUMBERS = ["+37251000001", "+37251000002", "+37256000001"]

Result = dict[str, Any]


def estonia(mccmnc: str | None, name: str | None) -> dict[str, Any]:
    return {
        "mccmnc": mccmnc,
        "networkName": name,
        "countryName": "Estonia",
        "countryPrefix": "372",
        "countryCode": "EST",
    }


def result(
    number: str, original: dict[str, Any], ported: dict[str, Any] | None = None, *, known: bool = True
) -> Result:
    """``known``: a ported dataset covering Estonia is loaded (else ``ported`` is null: unknown)."""
    return {
        "number": number,
        "status": "UNKNOWN",
        "ported": (ported is not None) if known else None,
        "roaming": None,
        "currentNetwork": ported or original,
        "originalNetwork": original,
        "portedNetwork": ported,
        "roamingNetwork": None,
        "source": "offline",
    }


def items(response: httpx.Response) -> list[Result]:
    """The result items without ``checkedAt``, which is the time of each answer."""
    found = response.json()["result"]
    for item in found:
        assert item.pop("checkedAt")
    return cast(list[Result], found)  # the wire contract fixes the shape; the tests check the fields


SHIPPED = [
    result("+37251000001", estonia("24801", "Telia Eesti"), known=False),
    result("+37251000002", estonia("24801", "Telia Eesti"), known=False),
    result("+37256000001", estonia("24802", "Elisa Eesti"), known=False),
]

RANGES_CSV = "prefix,mccmnc,network_name\n# our own ranges\n37251,24803,Operator Range Name\n37256,24804\n"
PORTED_CSV = "number,mccmnc,ported_at\n+37251000002,24802,2025-06-01\n37256000001,24804\n"
IMPORTED = [
    # In an imported range: the file's network name.
    result("+37251000001", estonia("24803", "Operator Range Name")),
    # Ported away from that range: the ported network's name comes from the registry.
    result("+37251000002", estonia("24803", "Operator Range Name"), estonia("24802", "Elisa Eesti")),
    # "Ported" to its own range holder: not ported; the range had no name, so the registry's.
    result("+37256000001", estonia("24804", "Top Connect")),
]


# ---------------------------------------------------------------- which worker answered


def worker_pids(server: Server) -> set[int]:
    """uvicorn's worker processes: the supervisor's children, minus multiprocessing's resource tracker."""
    assert server.process is not None
    workers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server.process.pid and b"resource_tracker" not in cmdline:
            workers.add(int(stat.parent.name))
    return workers


def served_by(response: httpx.Response, server: Server, workers: set[int]) -> int | None:
    """The worker holding the server side of the (still open) connection ``response`` came on."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == server.port and remote_port == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in workers:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(
        tmp_path_factory.mktemp("operator-data"),
        workers=2,
        env={"NUMLOOKUP_DATASET_POLL_SECONDS": POLL, "NUMLOOKUP_ADMIN_TOKEN": TOKEN},
    )


@pytest.fixture(scope="module")
def creds(live: Live) -> NewCredentials:
    return live.account(credits="100000")


def lookup(client: httpx.Client, creds: NewCredentials, numbers: list[str]) -> httpx.Response:
    response = client.post(SYNC, json={"numbers": numbers}, headers=JSON, auth=(creds.api_username, creds.api_password))
    assert response.status_code == 200, response.text
    return response


def results(live: Live, creds: NewCredentials, numbers: list[str]) -> list[Result]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        return items(lookup(client, creds, numbers))


def until_every_worker_serves(
    live: Live, creds: NewCredentials, numbers: list[str], expected: list[Result] | Callable[[list[Result]], bool]
) -> None:
    """Poll on fresh connections until each worker has answered with ``expected``; then 20 requests in a row must."""
    check = expected if callable(expected) else (lambda got: got == expected)
    workers = worker_pids(live.server)
    assert len(workers) == live.server.workers, workers
    seen: set[int] = set()
    last: list[Result] = []
    deadline = time.monotonic() + WAIT
    while seen != workers:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {WAIT}s only workers {seen} of {workers} serve the new data; last answer: {last}"
            )
        with httpx.Client(base_url=live.url, timeout=30) as client:  # a new connection: the kernel picks the worker
            response = lookup(client, creds, numbers)
            pid = served_by(response, live.server, workers)
        last = items(response)
        if check(last) and pid is not None:
            seen.add(pid)
    for i in range(20):
        got = results(live, creds, numbers)
        assert check(got), f"request {i + 1} after every worker switched answered {got}"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run_cli_together(data_dir: Path, *commands: list[str], check: bool = True) -> list[Any]:
    """Independent CLI runs side by side: each costs about a second of interpreter start-up."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: run_cli(data_dir, *args, check=check), commands))


def one_line(text: str) -> str:
    """Rich wraps stderr at 80 columns; compare messages with the wrapping undone."""
    return " ".join(text.split())


def versions(live: Live) -> list[tuple[str, int, bool]]:
    """The catalogue, read in-process (``data status --json`` itself is tested once, below)."""
    return [(v.kind, v.version, v.active) for v in catalog.all_versions(live.engine)]


def admin(client: httpx.Client, kind: str, body: bytes, token: str | None = TOKEN, **params: str) -> httpx.Response:
    headers = {"Content-Type": "text/csv"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(f"/admin/v1/datasets/{kind}", content=body, params=params, headers=headers)


# ---------------------------------------------------------------- CLI imports while serving


def test_cli_imports_reach_every_worker(live: Live, creds: NewCredentials) -> None:
    data_dir = live.server.data_dir
    assert results(live, creds, NUMBERS) == SHIPPED

    files = data_dir / "files"
    ranges = run_cli(data_dir, "data", "import-ranges", str(write(files, "ranges.csv", RANGES_CSV)), "--json")
    assert json.loads(ranges.stdout) | {"seconds": 0} == {
        "ok": True,
        "kind": "ranges",
        "version": 1,
        "mode": "full",
        "rows": 2,
        "records": 2,
        "skipped": 0,
        "seconds": 0,
        "errors": [],
    }
    ported = run_cli(data_dir, "data", "import-ported", str(write(files, "ported.csv", PORTED_CSV)))
    assert "ported version 1 active: 2 rows" in one_line(ported.stdout)

    until_every_worker_serves(live, creds, NUMBERS, IMPORTED)

    # The wire fields, spelled out once more on the final answer.
    moved = results(live, creds, NUMBERS)[1]
    assert moved["ported"] is True
    assert moved["portedNetwork"]["mccmnc"] == "24802" and moved["portedNetwork"]["networkName"] == "Elisa Eesti"
    assert moved["originalNetwork"]["mccmnc"] == "24803"
    assert moved["originalNetwork"]["networkName"] == "Operator Range Name"
    assert moved["currentNetwork"] == moved["portedNetwork"]


def test_a_failing_cli_import_changes_nothing(live: Live, creds: NewCredentials) -> None:
    data_dir = live.server.data_dir
    before = results(live, creds, NUMBERS)
    versions_before = versions(live)
    bad = write(
        data_dir / "files", "bad-ranges.csv", "37251,24805\n37256,24805\n# the next line is wrong\n37257,2480\n"
    )

    failed, failed_json = run_cli_together(
        data_dir, ["data", "import-ranges", str(bad)], ["data", "import-ranges", str(bad), "--json"], check=False
    )
    assert failed.returncode == 1
    message = one_line(failed.stderr)
    assert "line 4" in message and "mccmnc '2480' must be 5 or 6 digits" in message
    assert "Traceback" not in failed.stderr

    assert failed_json.returncode == 1
    report = json.loads(failed_json.stdout)
    assert report["ok"] is False
    assert report["errors"] == [{"line": 4, "reason": "mccmnc '2480' must be 5 or 6 digits"}]

    assert versions(live) == versions_before

    # Move the servers on with a good (ported) delta: once every worker serves it, every
    # worker has re-read the catalogue after the failed import, and the ranges are the old ones.
    with httpx.Client(base_url=live.url, timeout=30) as client:
        moved_on = admin(client, "ported", b"action,number,mccmnc\nadd,37256000009,24801\n", delta="1")
    assert moved_on.status_code == 200, moved_on.text
    probe = [*NUMBERS, "+37256000009"]
    expected = [*before, result("+37256000009", before[2]["originalNetwork"], estonia("24801", "Telia Eesti"))]
    until_every_worker_serves(live, creds, probe, expected)


def test_cli_skip_invalid_reports_the_skipped_lines(live: Live, creds: NewCredentials) -> None:
    data_dir = live.server.data_dir
    path = write(data_dir / "files", "ported-skip.csv", "add,37256000008,24803\nadd,372560,24803\nadd,37256000007,x\n")
    run = run_cli(data_dir, "data", "import-ported", str(path), "--delta", "--skip-invalid")
    err = one_line(run.stderr)
    assert "skipped line 2:" in err and "too short" in err
    assert "skipped line 3:" in err and "mccmnc 'x'" in err
    assert "(1 records read, 2 skipped)" in one_line(run.stdout)
    until_every_worker_serves(
        live, creds, ["+37256000008"], lambda got: (got[0]["portedNetwork"] or {}).get("mccmnc") == "24803"
    )


# ---------------------------------------------------------------- the admin endpoint


def test_admin_endpoint_needs_the_bearer_token(live: Live) -> None:
    versions_before = versions(live)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for response in (
            admin(client, "ranges", b"37251,24805\n", token=None),
            admin(client, "ranges", b"37251,24805\n", token="wrong-token"),
            admin(client, "ported", b"37251000001,24805\n", token=TOKEN + "x"),
            client.post("/admin/v1/datasets/ranges", content=b"37251,24805\n", auth=("admin", TOKEN)),
        ):
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == 101
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert versions(live) == versions_before


def test_admin_import_with_a_bad_line_is_a_400_naming_it(live: Live, creds: NewCredentials) -> None:
    versions_before = versions(live)
    before = results(live, creds, NUMBERS)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = admin(client, "ranges", b"prefix,mccmnc\n37251,24805\n+0372,24805\n37256,24805\n")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["code"] == 102 and "line 3" in body["error"]["description"]
    assert body["lines"] == [
        {"line": 3, "reason": "prefix '+0372' is not an E.164 number or prefix (1-15 digits, no leading 0)"}
    ]
    assert versions(live) == versions_before
    assert results(live, creds, NUMBERS) == before


def test_admin_rejects_unknown_kinds_and_formats(live: Live) -> None:
    versions_before = versions(live)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        assert admin(client, "numbers", b"37251,24805\n").status_code == 404
        for fmt in ("xml", "kamailio"):  # kamailio needs its map files: CLI only
            response = admin(client, "ranges", b"37251;1\n", format=fmt)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == 102
        response = admin(
            client, "ported", b"0612000;0612000000;0612099999;SFR0;M\xe9tropole;01/01/2000\n", format="arcep"
        )
        assert response.status_code == 400 and "import-ranges" in response.json()["error"]["description"]
        assert client.get("/admin/v1/datasets/ranges", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405
    assert versions(live) == versions_before


def test_admin_import_is_served_at_once_by_its_worker_then_by_all(live: Live, creds: NewCredentials) -> None:
    ranges_before = catalog.active_versions(live.engine).get("ranges")
    workers = worker_pids(live.server)
    number = "+37251900001"
    # Earlier tests of this module loaded Estonian porting data; run alone, none is loaded.
    known = "ported" in catalog.active_versions(live.engine)
    expected = result(number, estonia("24805", "Admin Range"), known=known)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = admin(client, "ranges", b"action,prefix,mccmnc,name\nadd,372519,24805,Admin Range\n", delta="1")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report | {"seconds": 0} == {
            "ok": True,
            "kind": "ranges",
            "version": (ranges_before.version if ranges_before else 0) + 1,
            "mode": "delta",
            "rows": (ranges_before.rows if ranges_before else 0) + 1,
            "records": 1,
            "skipped": 0,
            "seconds": 0,
            "errors": [],
        }
        importer = served_by(response, live.server, workers)
        # The same keep-alive connection, so the same worker: it switched before answering the import.
        answer = lookup(client, creds, [number])
        assert importer is not None and served_by(answer, live.server, workers) == importer
        assert items(answer) == [expected]
    until_every_worker_serves(live, creds, [number], [expected])


def test_admin_skip_invalid(live: Live, creds: NewCredentials) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = admin(client, "ported", b"add,37256000011,24803\nadd,123,24803\n", delta="1", skip_invalid="1")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["kind"], report["mode"], report["records"], report["skipped"]) == ("ported", "delta", 1, 1)
    assert [e["line"] for e in report["errors"]] == [2]
    until_every_worker_serves(
        live, creds, ["+37256000011"], lambda got: (got[0]["portedNetwork"] or {}).get("mccmnc") == "24803"
    )


def test_admin_arcep_full_load_replaces_the_ranges(live: Live, creds: NewCredentials) -> None:
    majnum = (
        "EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution\r\n"
        "0612000;0612000000;0612099999;BOUY;Métropole;01/01/2000\r\n"
        "0692200;0692200000;0692209999;ORAN;La Réunion;03/03/2003\r\n"
    ).encode("iso-8859-1")
    france = {"countryName": "France", "countryPrefix": "33", "countryCode": "FRA"}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = admin(client, "ranges", majnum, format="arcep")
        assert response.status_code == 200, response.text
        assert (response.json()["mode"], response.json()["rows"]) == ("full", 2)
    until_every_worker_serves(
        live,
        creds,
        ["+33612000001", "+262692200001", "+37251000001"],
        lambda got: (
            got[0]["originalNetwork"] == {"mccmnc": "20820", "networkName": "Bouygues Telecom", **france}
            and (got[1]["originalNetwork"]["mccmnc"], got[1]["originalNetwork"]["countryCode"]) == ("20801", "REU")
            # A full load replaced the Estonian ranges: the shipped holder again.
            and got[2]["originalNetwork"] == SHIPPED[0]["originalNetwork"]
        ),
    )


def test_admin_import_that_is_not_utf8_is_a_400(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = admin(client, "ranges", "37251,24805,Télia\n".encode("iso-8859-1"))
    assert response.status_code == 400, response.text


# ---------------------------------------------------------------- status


def test_data_status_lists_every_version_and_the_active_ones(live: Live) -> None:
    data_dir = live.server.data_dir
    path = write(data_dir / "files", "status-ported.csv", "37256000021,24801\n37256000022,24803\n")
    run_cli(data_dir, "data", "import-ported", str(path))
    rows = cli_json(data_dir, "data", "status")
    assert rows and all(
        set(r) >= {"kind", "version", "active", "mode", "format", "source", "rows", "records", "skipped", "imported_at"}
        for r in rows
    )
    for kind in ("ranges", "ported"):
        mine = [r for r in rows if r["kind"] == kind]
        assert [r["version"] for r in mine] == list(range(1, len(mine) + 1))
        assert [r["active"] for r in mine] == [False] * (len(mine) - 1) + [True]
        stamps = [datetime.fromisoformat(r["imported_at"]) for r in mine]
        assert all(s.tzinfo is not None for s in stamps) and stamps == sorted(stamps)
    newest = [r for r in rows if r["kind"] == "ported"][-1]
    assert (newest["source"], newest["rows"], newest["mode"], newest["format"]) == (str(path), 2, "full", "csv")
    by_http = [r for r in rows if r["source"].startswith("http upload")]
    assert by_http and all(r["format"] in ("csv", "arcep") for r in by_http)
    assert [(r["kind"], r["version"], r["active"]) for r in rows] == versions(live)


# ---------------------------------------------------------------- without a token, without a server


def test_without_an_admin_token_the_admin_route_says_it_is_disabled(tmp_path: Path) -> None:
    for other in start_live(tmp_path / "no-admin"):
        with httpx.Client(base_url=other.url, timeout=30) as client:
            for token in (None, "anything", TOKEN):
                response = admin(client, "ranges", b"37251,24805\n", token=token)
                assert response.status_code == 404, response.text
                assert response.json()["error"] == {"code": 102, "description": "admin API disabled: set admin_token"}
        assert catalog.all_versions(other.engine) == []


def test_cli_kamailio_and_arcep_imports(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_cli(data_dir, "db", "upgrade")
    files = tmp_path / "files"
    carrier_map = write(files, "map.csv", "carrier_id,mccmnc\n1,24801\n2,24802\n3,24803\n")
    names = write(files, "names.txt", "D001 Telia via pdb\nD002 Elisa via pdb\nD003 Tele2 via pdb\n")
    run_cli(
        data_dir,
        "data",
        "import-ranges",
        str(write(files, "pdb.csv", "37251;3\n")),
        "--format",
        "kamailio",
        "--carrier-map",
        str(carrier_map),
        "--carrier-names",
        str(names),
    )
    run_cli(
        data_dir,
        "data",
        "import-ported",
        str(write(files, "pdb-ported.csv", "37251000002;002\n")),
        "--format",
        "kamailio",
        "--carrier-map",
        str(carrier_map),
    )
    first, moved = resolved(data_dir, "+37251000001", "+37251000002")
    assert (has.original(first).mccmnc, has.original(first).name) == ("24803", "Tele2 via pdb")
    assert first.ported is False  # the pdb file covers Estonia: not in it, not ported
    assert (has.original(moved).mccmnc, has.ported(moved).mccmnc) == ("24803", "24802")

    operator_map = write(files, "operators.csv", "mnemo,mccmnc,name\nORAN,64700,Orange Réunion\n")
    majnum = write(
        files,
        "MAJNUM.csv",
        "EZABPQM;Tranche_Debut;Tranche_Fin;Mnémo;Territoire;Date_Attribution\r\n"
        "0692200;0692200000;0692209999;ORAN;La Réunion;03/03/2003\r\n".encode("iso-8859-1"),
    )
    run_cli(data_dir, "data", "import-ranges", str(majnum), "--format", "arcep", "--operator-map", str(operator_map))
    [reunion] = resolved(data_dir, "+262692200001")
    assert (has.original(reunion).mccmnc, has.original(reunion).name) == ("64700", "Orange Réunion")
    assert (has.country(reunion).alpha3, has.country(reunion).calling_code) == ("REU", "262")


def resolved(data_dir: Path, *numbers: str) -> list[Resolution]:
    """What the CLI's imports left in ``data_dir``, read by the resolver a server would build."""
    engine = make_engine(database_url(data_dir))
    try:
        return Resolver(operator=load_operator_data(engine, data_dir)).resolve(list(numbers))
    finally:
        engine.dispose()


def test_cli_bad_carrier_names_file_is_a_clean_error(tmp_path: Path) -> None:
    run_cli(tmp_path / "data", "db", "upgrade")
    files = tmp_path / "files"
    carrier_map = write(files, "map.csv", "1,24801\n")
    names = write(files, "names.txt", "D001 Telia\nnot a carrier line\n")
    run = run_cli(
        tmp_path / "data",
        "data",
        "import-ranges",
        str(write(files, "pdb.csv", "37251;1\n")),
        "--format",
        "kamailio",
        "--carrier-map",
        str(carrier_map),
        "--carrier-names",
        str(names),
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "line 2" in one_line(run.stderr)


def test_cli_import_of_a_non_utf8_file_is_a_clean_error(tmp_path: Path) -> None:
    path = write(tmp_path / "files", "latin1.csv", "37251,24801\n37256,24802,Élisa\n".encode("iso-8859-1"))
    run_cli(tmp_path / "data", "db", "upgrade")
    run = run_cli(tmp_path / "data", "data", "import-ranges", str(path), check=False)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "line 2" in one_line(run.stderr)
