"""Request ids cut from pooled random bytes are still distinct version-4 UUIDs, in a forked worker too."""

from __future__ import annotations

import os
import uuid

from numlookup.api.request_id import IDS_PER_READ, new_request_id


def test_ids_are_distinct_version_4_uuids_across_refills() -> None:
    ids = [new_request_id() for _ in range(3 * IDS_PER_READ + 7)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_are_the_uuids_uuid_makes_of_the_same_bytes() -> None:
    random = os.urandom(16 * 64) + bytes(16) + b"\xff" * 16  # all bits clear and all set, too
    text = new_request_id.stamped(random)
    for n in range(len(random) // 16):
        h = text[32 * n : 32 * n + 32]
        ours = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        assert ours == str(uuid.UUID(bytes=random[16 * n : 16 * n + 16], version=4))


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
    assert uuid.UUID(child).version == 4
    assert child != new_request_id()
