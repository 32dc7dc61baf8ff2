"""The Standard Webhooks v1 headers of one attempt, signed by the ``standardwebhooks`` reference library.

The signature covers ``webhook-id.webhook-timestamp.body`` over the exact bytes
sent (receivers must verify the raw body: re-serialised JSON breaks it). The id
is the same on every retry, so receivers deduplicate on it; the timestamp is the
attempt's own, so a replayed old request fails the receivers' tolerance check
(5 minutes in the reference library). Several secrets (a rotation's grace) give
several space-separated signatures, any of which verifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

CONTENT_TYPE = "application/json"


def signature(webhook_id: str, timestamp: int, payload: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per secret, space-separated."""
    when = datetime.fromtimestamp(timestamp, UTC)
    data = payload.decode()
    return " ".join(Webhook(secret).sign(webhook_id, when, data) for secret in secrets)


def headers(webhook_id: str, timestamp: int, payload: bytes, secrets: Sequence[str]) -> dict[str, str]:
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(webhook_id, timestamp, payload, secrets),
    }
