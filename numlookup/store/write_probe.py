"""Whether the database takes writes: one committed update of one row, as a charge commits.

Why: a database that still answers reads but refuses writes (a full disk, a
database file made read-only, a replica promoted by mistake) fails every lookup,
because every lookup's charge is a write. Only a commit tells: SQLite, for one,
reports a full disk when the WAL must grow, not before. Readiness probes
(``GET /readyz``) call this so a load balancer stops routing to such a node.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, update

from numlookup.store.engine import write_transaction
from numlookup.store.tables import write_probe


def probe_write(engine: Engine) -> None:
    """Rewrite the probe row in a transaction of its own; raises what a failing charge would raise."""
    with write_transaction(engine) as conn:
        conn.execute(update(write_probe).where(write_probe.c.id == 1).values(written_at=datetime.now(UTC)))
