from __future__ import annotations

import hmac
import math

import pytest

from numlookup.accounts import credentials


def test_secrets_have_at_least_128_bits_and_are_stored_hashed() -> None:
    assert credentials.SECRET_LENGTH * math.log2(62) >= 128
    secret = credentials.new_secret()
    salt, digest = credentials.hash_secret(secret)
    assert secret.encode() not in digest and len(digest) == 32 and len(salt) == 16
    assert credentials.verify_secret(secret, salt, digest)
    assert not credentials.verify_secret(secret + "x", salt, digest)
    assert credentials.hash_secret(secret)[1] != digest  # a fresh salt each time
    assert len({credentials.new_secret() for _ in range(1000)}) == 1000


def test_a_secret_accepted_once_is_known_by_its_mark_and_nothing_else_passes_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``credentials._Accepted``: the second check of a right secret skips the HMAC; wrong ones never do."""
    secret = credentials.new_secret()
    salt, digest = credentials.hash_secret(secret)
    assert credentials.verify_secret(secret, salt, digest)
    mark = credentials._accepted.seen(digest)
    assert mark is not None and secret.encode() not in mark and mark != digest

    hmacs: list[bytes] = []
    real_digest = hmac.digest

    def counted(key: bytes, message: bytes, name: str) -> bytes:
        hmacs.append(message)
        return real_digest(key, message, name)

    monkeypatch.setattr(hmac, "digest", counted)
    assert credentials.verify_secret(secret, salt, digest)
    assert hmacs == []  # known by its mark
    for wrong in (secret + "x", secret[:-1], "", credentials.new_secret()):
        assert not credentials.verify_secret(wrong, salt, digest)
    assert len(hmacs) == 4  # each wrong one checked in full

    # A rotated secret: a new salt and digest. The old secret is not the account's any more.
    rotated = credentials.new_secret()
    new_salt, new_digest = credentials.hash_secret(rotated)
    assert not credentials.verify_secret(secret, new_salt, new_digest)
    assert credentials.verify_secret(rotated, new_salt, new_digest)


def test_the_marks_start_over_when_full() -> None:
    accepted = credentials._Accepted()
    for n in range(credentials._Accepted.MAX_ENTRIES + 1):
        accepted.remember(n.to_bytes(32, "big"), accepted.mark(b"secret"))
    assert accepted.seen((0).to_bytes(32, "big")) is None
    assert accepted.seen(credentials._Accepted.MAX_ENTRIES.to_bytes(32, "big")) == accepted.mark(b"secret")
