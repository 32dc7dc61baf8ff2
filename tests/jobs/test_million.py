"""A 1,000,000-number offline job end to end: streamed up, resolved in chunks, charged exactly, downloaded whole.

The issue's own size, with the default chunk size, on a real server: a platform
cleaning a contact list sends the file as it is, with repeats and rubbish in it.
The results must be what ``numlookup lookup --input`` writes for the same file,
byte for byte, and the ledger must hold exactly one offline price per distinct
valid number. How fast it goes is ``bench/jobs.py``'s business, not this test's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from numlookup.accounts import get_account
from numlookup.billing import parse_amount
from tests.e2e.conftest import Live, start_live
from tests.jobs.local import job_charges, pieces
from tests.support import run_cli

PRICE = parse_amount("0.01")
VALID, REPEATED, INVALID = 950_000, 30_000, 20_000


def contact_list() -> bytes:
    """Estonian mobiles +37251000000… once each, 30,000 of them again in national spelling, 20,000 non-numbers."""
    valid = [f"+37251{i:06d}" for i in range(VALID)]
    repeated = [f"+372 51{i:06d}" for i in range(0, REPEATED * 31, 31)]
    invalid = [f"12{i:05d}" for i in range(INVALID)]
    lines = valid[:400_000] + invalid[:10_000] + repeated + valid[400_000:] + invalid[10_000:]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(
        tmp_path_factory.mktemp("million"),
        env={"NUMLOOKUP_OFFLINE_PRICE": "0.01", "NUMLOOKUP_JOB_POLL_SECONDS": "0.1"},
    )


def test_a_million_number_job_streams_in_charges_exactly_and_matches_the_bulk_cli(server: Live, tmp_path: Path) -> None:
    body = contact_list()
    creds = server.account("20000")
    with server.client(creds, timeout=300) as client:
        accepted = client.post("/v1/hlr/jobs", content=pieces(body, 1 << 20), headers={"Content-Type": "text/plain"})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert (job["total_count"], job["valid_count"], job["invalid_count"], job["duplicate_count"]) == (
            VALID + REPEATED + INVALID,
            VALID,  # distinct valid numbers; a repeat is counted as a duplicate, not again as valid
            INVALID,
            REPEATED,
        )
        assert job["reserved"] == "9500"  # the dearest outcome (offline here) of each distinct valid number
        status = job
        for _ in range(6000):  # a bound on waiting (10 min), not a measured time
            status = client.get(f"/v1/hlr/jobs/{job['id']}").json()
            if status["status"] not in ("QUEUED", "IN_PROGRESS"):
                break
            time.sleep(0.1)
        assert status["status"] == "COMPLETED", status
        assert (status["processed_count"], status["charged"], status["reserved"]) == (
            len(body.splitlines()),
            "9500",
            "0",
        )
        with client.stream("GET", f"/v1/hlr/jobs/{job['id']}/results", params={"format": "csv"}) as results:
            assert results.status_code == 200
            downloaded = b"".join(results.iter_bytes())

    source, expected = tmp_path / "contacts.txt", tmp_path / "cli.csv"
    source.write_bytes(body)
    run_cli(server.server.data_dir, "lookup", "--input", str(source), "--output", str(expected))
    assert downloaded == expected.read_bytes(), "the job's results are the bulk CLI's, line for line"

    account = get_account(server.engine, creds.name)
    charges = job_charges(server.engine, creds.name)
    assert sum(charges) == VALID * PRICE and len(charges) >= 2  # settled chunk by chunk
    assert (account.balance, account.reserved) == (parse_amount("20000") - VALID * PRICE, 0)
