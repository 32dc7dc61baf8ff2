"""Which callback URLs numlookup will POST to: http(s) only, and never into the server's own networks.

A callback URL is the client's text, and the server sends requests to it from
inside the operator's network, so it is a server-side request forgery vector:
``http://169.254.169.254/`` (a cloud's metadata service), ``http://localhost:5432``,
``http://10.0.0.5/admin``. Unless ``webhook_allow_private`` is set, a host is
refused when any address it resolves to is not globally routable (loopback,
private, link-local, shared, reserved, documentation, unspecified) or is
multicast; IPv4 addresses embedded in IPv6 (mapped, 6to4, Teredo, NAT64) are
judged as the IPv4 address.

It is checked twice: when the URL is submitted (``check_url``, for a clear
error to the client) and at every delivery (``resolve``), because DNS answers
change. The delivery then connects to the very address it checked (see
``worker``), so a name that resolves to a public address for the check and to
a private one a moment later (DNS rebinding) cannot slip through; redirects are
never followed. Limits: only the first accepted address is tried, and the
check trusts the system resolver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """A callback URL numlookup will not call; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed callback URL: where to connect, and what the Host header and TLS name are."""

    url: str
    scheme: str
    host: str  # lower-case, no brackets (an IPv6 literal's address)
    port: int


def parse(url: str) -> Target:
    """The URL's parts, or ``UnsafeUrl`` for anything but an absolute http(s) URL with a host. No DNS."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("callback_url must be an http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeUrl("callback_url must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl(f"callback_url must be an http or https URL, not {scheme or 'a relative one'}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("callback_url must not carry credentials (user:password@); receivers verify the signature")
    if not parts.hostname:
        raise UnsafeUrl("callback_url has no host")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrl("callback_url has an invalid port") from None
    return Target(url=url, scheme=scheme, host=parts.hostname, port=port or (443 if scheme == "https" else 80))


def _judged(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries, if it carries one: that is where the packets go."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded
    return address


def refusal(address: IPAddress) -> str | None:
    """Why numlookup will not connect to ``address`` (a phrase), or None for a public unicast address."""
    judged = _judged(address)
    for test, what in (
        (judged.is_loopback, "a loopback address"),
        (judged.is_link_local, "a link-local address"),
        (judged.is_multicast, "a multicast address"),
        (judged.is_unspecified, "an unspecified address"),
        (judged.is_reserved, "a reserved address"),
        (judged.is_private, "a private address"),
        (not judged.is_global, "an address that is not globally routable"),
    ):
        if test:
            return what
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _addresses(host: str, infos: list[tuple[object, ...]]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # an IPv6 scope id is not part of it
        if address not in found:
            found.append(address)
    if not found:
        raise UnsafeUrl(f"callback_url host {host!r} does not resolve")
    return found


def _checked(target: Target, addresses: list[IPAddress], allow_private: bool) -> list[IPAddress]:
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                shown = " is" if _literal(target.host) is not None else f" resolves to {address}, which is"
                raise UnsafeUrl(
                    f"callback_url host {target.host!r}{shown} {why}; numlookup calls public addresses only "
                    "(the operator may set webhook_allow_private = true)"
                )
    return addresses


def _allow_private(allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    from numlookup.settings import get_settings

    return get_settings().webhook_allow_private


def check_url(url: str, *, allow_private: bool | None = None) -> None:
    """Raise ``UnsafeUrl`` unless numlookup may POST to ``url``; ``allow_private`` None: the setting.

    Resolves the host with the system resolver, so it blocks: from async code run
    it in a worker thread (``anyio.to_thread.run_sync``).
    """
    target = parse(url)
    literal = _literal(target.host)
    if literal is not None:
        _checked(target, [literal], _allow_private(allow_private))
        return
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"callback_url host {target.host!r} does not resolve") from None
    _checked(target, _addresses(target.host, list(infos)), _allow_private(allow_private))


async def resolve(url: str, *, allow_private: bool) -> tuple[Target, list[IPAddress]]:
    """The target and its addresses, each one checked: what a delivery connects to."""
    target = parse(url)
    literal = _literal(target.host)
    if literal is not None:
        return target, _checked(target, [literal], allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"callback_url host {target.host!r} does not resolve") from None
    return target, _checked(target, _addresses(target.host, list(infos)), allow_private)
