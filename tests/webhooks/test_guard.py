"""Callback URLs: only http(s), no credentials, and no host in the server's own networks unless allowed.

Nothing here connects anywhere: the guard refuses before any connection, and
the hosts resolved are IP literals or ``localhost``.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from numlookup.webhooks.guard import UnsafeUrl, check_url, parse, refusal, resolve

REFUSED = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fc00::1]/hook", "private"),
    ("http://100.64.0.1/hook", "not globally routable"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),  # IPv4-mapped
    ("http://[2002:a00:1::]/hook", "private"),  # 6to4 of 10.0.0.1
    ("http://[64:ff9b::a00:1]/hook", "private"),  # NAT64 of 10.0.0.1
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_private_destinations_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why) as refused:
        check_url(url, allow_private=False)
    assert "webhook_allow_private" in str(refused.value)


def test_a_name_is_refused_for_the_address_it_resolves_to() -> None:
    with pytest.raises(UnsafeUrl, match=r"'localhost' resolves to .*loopback"):
        check_url("http://localhost:9/x", allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/"])
def test_the_setting_allows_them(url: str) -> None:
    check_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["https://8.8.8.8/hook", "http://[2606:4700:4700::1111]:8443/x?y=1"])
def test_public_addresses_pass(url: str) -> None:
    check_url(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("/relative", "http or https"),
        ("", "http or https"),
        ("http:///nohost", "no host"),
        ("http://user:pw@8.8.8.8/", "credentials"),
        ("http://8.8.8.8:99999/", "port"),
        ("http://8.8.8.8/a b", "spaces"),
        ("http://8.8.8.8/" + "a" * 3000, "longer"),
    ],
)
def test_urls_that_are_not_http_are_refused_clearly(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        check_url(url, allow_private=True)


def test_without_an_argument_the_setting_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    from numlookup.settings import get_settings

    monkeypatch.setenv("NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    try:
        with pytest.raises(UnsafeUrl):
            check_url("http://127.0.0.1/")
        monkeypatch.setenv("NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE", "true")
        get_settings.cache_clear()
        check_url("http://127.0.0.1/")
    finally:
        get_settings.cache_clear()


def test_delivery_time_resolution_checks_every_address() -> None:
    target, addresses = asyncio.run(resolve("https://127.0.0.1:8443/x", allow_private=True))
    assert (target.scheme, target.host, target.port) == ("https", "127.0.0.1", 8443)
    assert addresses == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(UnsafeUrl, match="loopback"):
        asyncio.run(resolve("http://localhost/x", allow_private=False))


def test_parse_fills_default_ports_and_lowercases() -> None:
    assert parse("HTTPS://Example.COM/x").port == 443
    assert parse("http://example.com/x").host == "example.com"
    assert refusal(ipaddress.ip_address("8.8.8.8")) is None
