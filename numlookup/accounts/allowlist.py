"""IP allow-lists: an account answers only to clients inside one of its networks.

The list is exactly what is allowed: ``0.0.0.0/0`` and ``::/0`` open an account to
everyone (as Messente does), and an empty list lets nobody in.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from numlookup.accounts.errors import AccountError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

EVERYONE = ("0.0.0.0/0", "::/0")


class AllowListError(AccountError):
    """A network that is not a CIDR: an account error like any other, so the CLI prints one line, not a traceback."""


def parse_network(text: str) -> Network:
    """A CIDR or a bare address (a /32 or /128); host bits must be zero."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise AllowListError(f"{text!r} is not a network in CIDR notation: {exc}") from None


# Every request parses its peer's address three times (the client, its rate-limit key, the
# allow-list), and a server sees the same few addresses over and over: parsing was a tenth
# of a loaded worker's time. Addresses are immutable, so the answers can be shared.
PARSED_ADDRESSES = 4096


@functools.lru_cache(maxsize=PARSED_ADDRESSES)
def parse_address(text: str) -> Address | None:
    """The client address, with IPv4-mapped IPv6 (``::ffff:1.2.3.4``) unwrapped."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_allowed(address: str | None, networks: Iterable[str]) -> bool:
    return in_networks(address, [ipaddress.ip_network(cidr) for cidr in networks])


def in_networks(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in one of ``networks``, parsed once by the caller (the account cache)."""
    parsed = parse_address(address) if address else None
    if parsed is None:
        return False
    # A /0 holds every address of its version: no containment test (ipaddress's is Python, per request).
    return any(
        network.version == parsed.version and (network.prefixlen == 0 or parsed in network) for network in networks
    )
