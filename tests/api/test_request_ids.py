"""Request ids are distinct version-7 UUIDs in time order, cut from pooled random bytes, in a forked worker too."""

from __future__ import annotations

import os
import time
import uuid

from numlookup.api.request_id import IDS_PER_READ, RANDOM_BYTES, new_request_id


def test_ids_are_distinct_version_7_uuids_across_refills() -> None:
    ids = [new_request_id() for _ in range(3 * IDS_PER_READ + 7)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_an_id_carries_the_millisecond_it_was_made_in_and_sorts_by_it() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_request_id() for _ in range(2 * IDS_PER_READ)]
    after = time.time_ns() // 1_000_000
    stamps = [uuid.UUID(text).int >> 80 for text in ids]  # unix_ts_ms: the first 48 bits
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)
    assert [text[:13] for text in ids] == sorted(text[:13] for text in ids)  # as text too: the index sorts that


def test_the_random_part_is_the_bytes_read_with_only_version_and_variant_set() -> None:
    random = os.urandom(RANDOM_BYTES * 64) + bytes(RANDOM_BYTES) + b"\xff" * RANDOM_BYTES  # all clear, all set
    text = new_request_id.stamped(random)
    ours = ~((0xF << 76) | (0x3 << 62))  # every bit but the version's and the variant's
    for n in range(len(random) // RANDOM_BYTES):
        block = random[RANDOM_BYTES * n : RANDOM_BYTES * (n + 1)]
        made = uuid.UUID(hex="0" * 12 + text[2 * RANDOM_BYTES * n : 2 * RANDOM_BYTES * (n + 1)])
        assert made.version == 7
        assert made.variant == uuid.RFC_4122
        assert made.int & ours == int.from_bytes(block, "big") & ours


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    new_request_id()  # the pool holds bytes the child must not reuse
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent, then out without running pytest's exit
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 7
    assert child[14:] != new_request_id()[14:]
