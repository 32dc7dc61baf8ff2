from __future__ import annotations

import pytest

from numlookup.accounts.allowlist import AllowListError, is_allowed, parse_network


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        ("192.0.2.7", ["0.0.0.0/0"], True),
        ("2001:db8::1", ["0.0.0.0/0"], False),
        ("2001:db8::1", ["::/0"], True),
        ("192.0.2.7", ["192.0.2.0/24"], True),
        ("192.0.3.7", ["192.0.2.0/24"], False),
        ("::ffff:192.0.2.7", ["192.0.2.0/24"], True),
        ("192.0.2.7", [], False),
        (None, ["0.0.0.0/0"], False),
        ("not-an-ip", ["0.0.0.0/0"], False),
        ("::ffff:192.0.2.7", ["0.0.0.0/0"], True),  # everyone (a /0): still only its own version
        ("192.0.2.7", ["::/0"], False),
        ("2001:db8::1", ["0.0.0.0/0", "::/0"], True),
    ],
)
def test_is_allowed(address: str | None, networks: list[str], allowed: bool) -> None:
    assert is_allowed(address, networks) is allowed


def test_parse_network() -> None:
    assert str(parse_network("10.0.0.1")) == "10.0.0.1/32"
    assert str(parse_network("2001:DB8::/32")) == "2001:db8::/32"
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "example.org", ""):
        with pytest.raises(AllowListError):
            parse_network(bad)
