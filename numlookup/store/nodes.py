"""Which server workers are alive: each writes its row of ``nodes`` every few seconds (a lifespan task).

Why in the database: the operator's console may be served by any node of many,
and the database is the one thing they all share. A worker's id is new at every
start (host, pid and a random part), so a restarted worker is a new row and the
old one goes stale; rows not seen for a day are deleted by the beats of the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import anyio.to_thread
from sqlalchemy import Connection, Engine, delete, select

from numlookup.store.engine import write_transaction
from numlookup.store.tables import nodes
from numlookup.store.upsert import upsert

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(minutes=1)  # a worker not seen for this long is gone (or cannot reach the database)
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Node:
    node_id: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    ready: bool  # as the worker last saw itself: it could write here and resolve numbers
    version: str
    requests: int  # requests the worker served since it started

    def stale(self, now: datetime) -> bool:
        return now - self.last_seen > STALE_AFTER


@dataclass(frozen=True, slots=True)
class Identity:
    """This worker: fixed from its start."""

    node_id: str
    host: str
    pid: int
    started_at: datetime
    version: str

    @classmethod
    def this_process(cls, version: str) -> Identity:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(4)}", host, pid, datetime.now(UTC), version)


def beat(engine: Engine, me: Identity, *, ready: bool, requests: int, now: datetime | None = None) -> None:
    """Write this worker's row (one short transaction), and delete the rows of workers long gone."""
    now = now or datetime.now(UTC)
    insert = upsert(engine.dialect.name, nodes)
    with write_transaction(engine) as conn:
        conn.execute(
            insert.values(
                node_id=me.node_id,
                host=me.host[:255],
                pid=me.pid,
                started_at=me.started_at,
                last_seen=now,
                ready=ready,
                version=me.version[:40],
                requests=requests,
            ).on_conflict_do_update(
                index_elements=["node_id"],
                set_={"last_seen": insert.excluded.last_seen, "ready": ready, "requests": requests},
            )
        )
        conn.execute(delete(nodes).where(nodes.c.last_seen < now - FORGET_AFTER))


def recent_nodes(conn: Connection, since: datetime) -> list[Node]:
    """The workers seen at or after ``since``, by host, then start (oldest first)."""
    query = select(nodes).where(nodes.c.last_seen >= since).order_by(nodes.c.host, nodes.c.started_at, nodes.c.node_id)
    return [
        Node(r.node_id, r.host, r.pid, r.started_at, r.last_seen, bool(r.ready), r.version, int(r.requests))
        for r in conn.execute(query)
    ]


async def heartbeat(
    engine: Engine,
    me: Identity,
    status: Callable[[], tuple[bool, int]],
    interval: float = HEARTBEAT_SECONDS,
) -> None:
    """Beat every ``interval`` seconds while the worker runs (a lifespan task); ``status``: (ready, requests served).

    A beat that fails (the database is away) is logged and skipped: the row goes
    stale, which is what the operator should see.
    """
    while True:
        ready, requests = status()
        try:
            await anyio.to_thread.run_sync(partial(beat, engine, me, ready=ready, requests=requests))
        except Exception as exc:
            log.warning("node heartbeat not written: %s", exc)
        await asyncio.sleep(interval)
