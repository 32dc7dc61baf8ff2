from __future__ import annotations

import math

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
