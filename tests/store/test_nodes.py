"""Node heartbeats on a real database: a beat writes this worker's row, rows age into stale, then out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from numlookup.store.nodes import FORGET_AFTER, STALE_AFTER, Identity, beat, recent_nodes


def test_beats_update_one_row_per_worker_and_old_ones_go(engine: Engine) -> None:
    now = datetime.now(UTC)
    me, other, gone = (Identity.this_process("1.2.3") for _ in range(3))
    assert len({me.node_id, other.node_id, gone.node_id}) == 3  # a new id at every start, even in one process
    beat(engine, gone, ready=True, requests=5, now=now - FORGET_AFTER + timedelta(minutes=1))
    beat(engine, other, ready=False, requests=0, now=now - 2 * STALE_AFTER)
    beat(engine, me, ready=True, requests=1, now=now - timedelta(seconds=10))
    beat(engine, me, ready=True, requests=7, now=now)
    with engine.connect() as conn:
        lately = recent_nodes(conn, now - timedelta(minutes=5))
        everyone = recent_nodes(conn, now - FORGET_AFTER * 2)
    assert {(n.node_id, n.requests, n.ready, n.version) for n in lately} == {
        (me.node_id, 7, True, "1.2.3"),
        (other.node_id, 0, False, "1.2.3"),
    }  # one row per worker, the newest beat's
    assert {n.node_id: n.stale(now) for n in lately} == {me.node_id: False, other.node_id: True}
    assert gone.node_id in {n.node_id for n in everyone}
    [mine] = [n for n in lately if n.node_id == me.node_id]
    assert (mine.host, mine.pid, mine.last_seen) == (me.host, me.pid, now)
    # Two minutes on, the oldest row has not been seen for a day: the next beat deletes it.
    beat(engine, me, ready=True, requests=8, now=now + timedelta(minutes=2))
    with engine.connect() as conn:
        assert gone.node_id not in {n.node_id for n in recent_nodes(conn, now - FORGET_AFTER * 2)}
