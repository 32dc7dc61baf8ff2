"""Who the client is: the socket peer, or what trusted proxies say in ``X-Forwarded-For``.

The client address decides the allow-list and keys the rate limits, so a client
must not be able to choose it. ``X-Forwarded-For`` is only believed when the
socket peer is one of the operator's ``trusted_proxies``; then the header is read
from the right (each proxy appends the address it saw) and the first address that
is not itself a trusted proxy is the client. Everything to the left of that
address was written by the client or by proxies we do not know, so it is ignored.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from numlookup.accounts.allowlist import PARSED_ADDRESSES, Address, Network, parse_address, parse_network


class TrustedProxies:
    """The operator's proxy networks and the right-most-untrusted rule."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(cidr) for cidr in cidrs)

    def trusts(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The client's address as text (IPv4-mapped IPv6 unwrapped), or None if there is no usable peer.

        ``forwarded_for`` holds the raw ``X-Forwarded-For`` header values in the
        order received; several headers count as one comma-separated list.
        """
        if not self.networks:  # no proxy is trusted: the peer's own text, whatever the header says
            return peer_text(peer) if peer else peer
        current = parse_address(peer) if peer else None
        if current is None:
            return peer
        if not self.trusts(current):
            return address_text(current)
        hops = [part.strip() for value in forwarded_for for part in value.split(",")]
        for hop in reversed(hops):
            address = _hop_address(hop)
            if address is None:
                # A trusted proxy handed us something that is not an address: it is
                # the last hop we can vouch for, so the request is its own.
                return str(current)
            current = address
            if not self.trusts(address):
                return str(address)
        return str(current)  # every hop is a proxy of ours: the left-most one is the client


def _hop_address(hop: str) -> Address | None:
    """One ``X-Forwarded-For`` entry; tolerates ``[v6]``, ``[v6]:port`` and ``v4:port`` as some proxies write them."""
    text = hop.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    return parse_address(text)


@functools.lru_cache(maxsize=PARSED_ADDRESSES)  # every request asks, for the same few addresses
def limit_key(address: str | None) -> str:
    """The rate-limit and auth-failure key of a client address.

    IPv6 clients are keyed by their /64: one subscriber usually holds a whole /64,
    so per-address limits would be no limit at all.
    """
    parsed = parse_address(address) if address else None
    if parsed is None:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@functools.lru_cache(maxsize=PARSED_ADDRESSES)  # a connection's every request asks for its peer's
def peer_text(peer: str) -> str:
    """A socket peer's address as :meth:`TrustedProxies.client_address` writes it; the peer itself if it is none.

    Why: one look-up by the peer's text, where parsing it (also cached) and then
    looking up its text by the parsed address (an ``ipaddress`` object's hash, in
    Python) was 1 % of a loaded loop's py-spy samples (bench/server_cpu.py --profile).
    """
    current = parse_address(peer)
    return peer if current is None else address_text(current)


@functools.lru_cache(maxsize=PARSED_ADDRESSES)
def address_text(address: Address) -> str:
    """``str(address)``, kept for the addresses seen lately: ``ipaddress`` builds the text in Python each time."""
    return str(address)
