"""The key that signs console session cookies, shared by every node through the database.

Why stored: a session signed by one node must be good on the others behind the
same load balancer, and survive a restart; a key per process would log everyone
out at each deploy and on every other request. The first worker that needs the
key makes it; two making it at once both end up with the one that committed first.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from numlookup.store.engine import write_transaction
from numlookup.store.tables import console_keys
from numlookup.store.upsert import upsert

KEY_BYTES = 32
_ID = 1
_KEY = select(console_keys.c.key).where(console_keys.c.id == _ID)


def session_key(engine: Engine) -> bytes:
    """The console's signing key, made (and committed) by the first caller on any node."""
    with engine.connect() as conn:
        key = conn.execute(_KEY).scalar()
    if key is not None:
        return bytes(key)
    with write_transaction(engine) as conn:
        # ON CONFLICT DO NOTHING: on PostgreSQL a second maker waits for the first's commit, then keeps its key.
        conn.execute(
            upsert(engine.dialect.name, console_keys)
            .values(id=_ID, key=secrets.token_bytes(KEY_BYTES), created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return bytes(conn.execute(_KEY).scalar_one())
