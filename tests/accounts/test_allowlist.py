from __future__ import annotations

from datetime import UTC, datetime

import pytest

from numlookup.accounts import Account, service
from numlookup.accounts.allowlist import AllowListError, in_networks, is_allowed, parse_network
from numlookup.accounts.service import StoredAccount


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


ADDRESSES = ["192.0.2.7", "192.0.3.7", "::ffff:192.0.2.7", "2001:db8::1", "not-an-ip", "", None]


@pytest.mark.parametrize("networks", [["0.0.0.0/0"], ["192.0.2.0/24"], ["::/0", "10.0.0.0/8"], []])
def test_an_entrys_remembered_verdicts_are_the_allow_lists(networks: list[str]) -> None:
    """``StoredAccount.allows`` judges each address once: asked again (and again), it says what ``in_networks`` says."""
    parsed = tuple(parse_network(c) for c in networks)
    stored = StoredAccount(_ACCOUNT, b"salt", b"digest", parsed)
    for _ in range(3):
        assert [stored.allows(a) for a in ADDRESSES] == [in_networks(a, parsed) for a in ADDRESSES]
    assert set(stored.allowed) == {a for a in ADDRESSES if a is not None}  # remembered, each once


def test_an_entrys_verdicts_start_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "ALLOWED_VERDICTS", 4)
    stored = StoredAccount(_ACCOUNT, b"salt", b"digest", (parse_network("192.0.2.0/24"),))
    verdicts = [stored.allows(f"192.0.{i % 4}.1") for i in range(10)]
    assert verdicts == [i % 4 == 2 for i in range(10)]
    assert 0 < len(stored.allowed) <= 4


_ACCOUNT = Account(
    id=1,
    name="n",
    api_username="u",
    enabled=True,
    balance=0,
    price=None,
    status_style=None,
    allowed_networks=(),
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
