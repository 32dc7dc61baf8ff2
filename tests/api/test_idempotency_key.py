"""Reading the Idempotency-Key header: an RFC 8941 sf-string, or a bare value as Stripe's clients send it."""

from __future__ import annotations

import pytest

from numlookup.api.errors import ApiError
from numlookup.api.idempotency import MAX_KEY_LENGTH, fingerprint, parse_key


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),  # bare, Stripe-style
        ('  "with spaces inside"  ', "with spaces inside"),
        (r'"a \"quoted\" \\ key"', 'a "quoted" \\ key'),
        ("stripe-node-retry-1f2e", "stripe-node-retry-1f2e"),
        ('"' + "k" * MAX_KEY_LENGTH + '"', "k" * MAX_KEY_LENGTH),
    ],
)
def test_keys_are_read(header: str, key: str) -> None:
    assert parse_key([header]) == key


def test_no_header_is_no_key() -> None:
    assert parse_key([]) is None


@pytest.mark.parametrize(
    "header",
    ['""', "", '"unterminated', 'a"b', "two words", '"bad \\x escape"', "caf\u00e9", '"tab\tinside"', "k" * 256],
)
def test_malformed_keys_are_400_with_code_102(header: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_key([header])
    assert (refused.value.http_status, refused.value.code) == (400, 102)
    assert "Idempotency-Key" in refused.value.description


def test_one_header_only() -> None:
    with pytest.raises(ApiError, match="one Idempotency-Key"):
        parse_key(['"a"', '"a"'])


def test_the_fingerprint_covers_route_and_body() -> None:
    assert fingerprint("POST /v1/hlr/sync", b"{}") == fingerprint("POST /v1/hlr/sync", b"{}")
    assert fingerprint("POST /v1/hlr/sync", b"{}") != fingerprint("POST /v1/hlr/jobs", b"{}")
    assert fingerprint("POST /v1/hlr/sync", b"{}") != fingerprint("POST /v1/hlr/sync", b"{ }")
