"""The package's layers, pinned: no import runs back up a layer, and each library stays at its edge.

Why a test: ``docs/architecture.md`` draws the layers, and the code followed it by
hand until two imports ran back up (billing → accounts, metrics → live). This
reads every import of every module (inside functions too, where a loop would
hide) and fails on one the table below does not allow. Change the table only
with the picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "numlookup"

# Each unit (a sub-package, or a top-level module) and the units it may import.
# Read bottom-up: numbering and store know nothing of the others.
ALLOWED: dict[str, set[str]] = {
    "numbering": set(),
    "store": set(),
    "status": set(),
    "metrics": set(),
    "logs": set(),
    "listen_queue": set(),
    "loops": set(),
    "source_settings": set(),
    "settings": {"source_settings", "status"},
    "billing": {"loops", "settings", "store"},
    "accounts": {"billing", "status", "store"},
    "datasets": {"numbering", "store"},
    "live": {"billing", "metrics", "numbering", "settings", "source_settings", "status", "store"},
    "webhooks": {"settings", "store"},
    "results": {"live", "numbering", "settings", "status"},
    "bulk_input": set(),
    "bulk": {"bulk_input", "numbering", "results", "status"},
    "jobs": {
        "billing",
        "bulk",
        "datasets",
        "live",
        "metrics",
        "numbering",
        "results",
        "settings",
        "status",
        "store",
        "webhooks",
    },
    "api": {
        "accounts",
        "billing",
        "datasets",
        "jobs",
        "live",
        "logs",
        "loops",
        "metrics",
        "numbering",
        "results",
        "settings",
        "status",
        "store",
        "webhooks",
    },
    "serving": {"listen_queue", "logs", "settings"},
    "cli": {
        "accounts",
        "billing",
        "bulk",
        "bulk_input",
        "datasets",
        "jobs",
        "logs",
        "live",
        "numbering",
        "results",
        "serving",
        "settings",
        "status",
        "store",
        "webhooks",
    },
    "__main__": {"cli"},
}
# Libraries that belong to one edge: HTTP serving, the command line, metrics, outgoing HTTP and DNS.
EDGE_LIBRARIES: dict[str, set[str]] = {
    "starlette": {"api"},
    "uvicorn": {"serving"},
    "typer": {"cli"},
    "rich": {"cli"},
    "prometheus_client": {"metrics"},
    "httpx": {"live", "webhooks"},  # upstream lookups; webhook deliveries
    "httptools": {"live"},  # upstream lookups' answers parsed on live/connections.py's asyncio protocols
    "dns": {"live"},  # dnspython: the ENUM source's NAPTR queries
    "pyarrow": {"datasets"},  # the columnar reader of ported-number files
}


def _unit(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _modules() -> list[Path]:
    """Every module but the migrations (Alembic's scripts import only Alembic and SQLAlchemy) and the root."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts and p != PACKAGE / "__init__.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    unit = _unit(path)
    assert unit in ALLOWED, f"{unit} is not in the layer table: add it, and to docs/architecture.md"
    wrong = []
    for line, name in _imports(path):
        top, _, rest = name.partition(".")
        if top == "numlookup":
            target = rest.split(".")[0]
            if target and target != unit and target not in ALLOWED[unit]:
                wrong.append(f"line {line}: {unit} imports {name}")
        elif top in EDGE_LIBRARIES and unit not in EDGE_LIBRARIES[top]:
            wrong.append(
                f"line {line}: {unit} imports {top}, which belongs to {', '.join(sorted(EDGE_LIBRARIES[top]))}"
            )
    assert not wrong, "\n".join(wrong)


def test_the_table_has_no_cycle() -> None:
    """A cycle in the table would let two layers lean on each other; the order must be a partial order."""
    done: set[str] = set()

    def visit(unit: str, path: tuple[str, ...]) -> None:
        assert unit not in path, f"cycle: {' -> '.join((*path, unit))}"
        if unit not in done:
            for below in ALLOWED[unit]:
                visit(below, (*path, unit))
            done.add(unit)

    for unit in ALLOWED:
        visit(unit, ())
