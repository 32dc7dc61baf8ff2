"""Fixtures shared by the whole suite: a data folder with a migrated SQLite database, and accounts in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from tests.support import BACKEND, database_url, stop_cluster

# Test files the database cannot change the outcome of: they run on SQLite only, and the
# PostgreSQL pass (make test's second run) leaves them out. Each one either never opens a
# database (numbering, parsing, peers' protocols, the layer table, the wheel), or reaches it
# only through the same ledger, cache and usage paths other files run on both databases
# (a provider's answers mapped through /v1/hlr/sync, the official clients' vocabularies,
# a bulk file's shape, a CLI error's wording, TLS in nginx, refusals before any charge,
# a columnar file read, the console in a browser: tests/console runs its pages on both).
# A new file runs on both unless it is named here; an entry with ``::`` names one test of
# a file (output formats: the PostgreSQL pass keeps one lookup).
ONE_BACKEND = frozenset(
    {
        "tests/billing/test_money.py",
        "tests/browser/test_chromium.py",
        "tests/browser/test_console_account.py",
        "tests/browser/test_operator.py",
        "tests/cli/test_commands.py::test_lookup_numbers_honour_region",
        "tests/cli/test_commands.py::test_lookup_numbers_in_every_output_format",
        "tests/cli/test_commands.py::test_lookup_refuses_options_that_would_do_nothing",
        "tests/cli/test_commands.py::test_python_dash_m_and_help",
        "tests/cli/test_errors.py",
        "tests/console/test_operator_views.py::test_the_coverage_table_is_the_shipped_datas",
        "tests/datasets/test_columnar.py",
        "tests/datasets/test_formats.py",
        "tests/deploy/test_wheel.py",
        "tests/e2e/test_abuse.py",
        "tests/e2e/test_enum.py",
        "tests/e2e/test_hlr_lookups.py",
        "tests/e2e/test_infobip.py",
        "tests/e2e/test_nginx_tls.py",
        "tests/e2e/test_official_client.py",
        "tests/e2e/test_shipped_networks.py",
        "tests/e2e/test_twilio.py",
        "tests/e2e/test_tyntec.py",
        "tests/fuzz/test_numbers.py",
        "tests/fuzz/test_request_decoding.py",
        "tests/live/test_dispatcher_batches.py",
        "tests/live/test_enum.py",
        "tests/live/test_hlr_lookups.py",
        "tests/live/test_http.py",
        "tests/live/test_infobip.py",
        "tests/live/test_messente.py",
        "tests/live/test_naptr.py",
        "tests/live/test_osmo_hlr.py",
        "tests/live/test_twilio.py",
        "tests/live/test_tyntec.py",
        "tests/numbering/test_coverage.py",
        "tests/numbering/test_plan.py",
        "tests/numbering/test_resolver.py",
        "tests/numbering/test_shipped_data.py",
        "tests/test_bulk.py",
        "tests/test_layers.py",
        "tests/test_status.py",
        "tests/webhooks/test_guard.py",
        "tests/webhooks/test_schedule.py",
    }
)


# The files that take longest, run first: the parallel processes (make test's -n) take files
# in collection order, so a long file collected last would leave the others idle at the end.
SLOWEST_FIRST = (
    "tests/cli/test_commands.py",
    "tests/cli/test_errors.py",
    "tests/e2e/test_schemathesis.py",
    "tests/test_bulk.py",
    "tests/e2e/test_webhooks.py",
    "tests/e2e/test_operator_data.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slowest files first; on PostgreSQL, leave out the files whose outcome the database cannot change."""
    root = Path(__file__).resolve().parent.parent
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))  # stable: else as found
    if BACKEND == "sqlite":
        return
    one = {id(item) for item in items if _file_and_test(item, root) & ONE_BACKEND}
    if one:
        config.hook.pytest_deselected(items=[item for item in items if id(item) in one])
        items[:] = [item for item in items if id(item) not in one]


def _file_and_test(item: pytest.Item, root: Path) -> set[str]:
    """``tests/x.py`` and ``tests/x.py::test_name`` (without parameters) of an item, as ONE_BACKEND names them."""
    path = item.path.relative_to(root).as_posix()
    return {path, f"{path}::{getattr(item, 'originalname', item.name)}"}


@pytest.fixture(scope="session", autouse=True)
def database_backend() -> Iterator[str]:
    """Which database the suite runs on; a PostgreSQL cluster lives as long as the session."""
    yield BACKEND
    stop_cluster()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    """The engine on ``data_dir``'s database, the same file a server started on ``data_dir`` uses."""
    db = make_engine(database_url(data_dir))
    upgrade(db)
    yield db
    db.dispose()


class AccountFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, credits: str = "100", **options: object) -> NewCredentials:
        self.count += 1
        return create_account(self.engine, f"account-{self.count}", credits=parse_amount(credits), **options)  # type: ignore[arg-type]  # the keywords pass through to their owner


@pytest.fixture
def make_account(engine: Engine) -> AccountFactory:
    return AccountFactory(engine)
