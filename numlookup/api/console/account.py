"""The account holder's overview: balance, what jobs hold of it, prices per answer class, charts of usage.

Every figure is the session's account's, read for this request (the guard reads
the account afresh); the charts' data come from ``usage.json``, which is
``billing.rollup.account_usage``: the hourly rollup plus the charges not folded
yet, so a chart is exact to the last committed charge without scanning the ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.console.charts import chart_data
from numlookup.api.console.guards import require_account
from numlookup.api.console.pages import finish, refusal, render
from numlookup.api.state import AppState
from numlookup.billing import format_amount
from numlookup.billing.prices import CHARGE_CLASSES
from numlookup.billing.rollup import Bucket, UsageBucket, account_usage

# Each range: its buckets and how many of them, the last one holding now.
RANGES: dict[str, tuple[Bucket, int]] = {"24h": ("hour", 24), "30d": ("day", 30), "90d": ("day", 90)}
# Decimals as JSON numbers: credits exact to the micro-credit in the text (the chart draws floats of them).
_encoder = msgspec.json.Encoder(decimal_format="number")


def window(chosen: str, now: datetime) -> tuple[datetime, datetime, Bucket]:
    """The range's ``since``, ``until`` and bucket: whole buckets, the last one the current (partial) hour or day."""
    bucket, count = RANGES[chosen]
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    current = now.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        current = current.replace(hour=0)
    return current - step * (count - 1), current + step, bucket


async def overview(request: Request) -> Response:
    user = await require_account(request)
    state: AppState = request.app.state.numlookup
    account = user.account
    assert account is not None
    chosen = request.query_params.get("range", "30d")
    if chosen not in RANGES:
        raise refusal(request, 400, "No such range", "The range is one of 24h, 30d and 90d.")
    prices = [
        (charge_class, format_amount(state.prices.of(charge_class, account.price))) for charge_class in CHARGE_CLASSES
    ]
    return render(
        request,
        "account.html",
        title="Overview",
        account=account,
        balance=format_amount(account.balance),
        reserved=format_amount(account.reserved),
        spendable=format_amount(account.spendable),
        prices=prices,
        style=account.status_style or f"server default ({state.settings.status_style})",
        ranges=tuple(RANGES),
        chosen=chosen,
    )


async def usage_json(request: Request) -> Response:
    """``usage.json?range=24h|30d|90d``: the session's account's usage in the range's buckets, for the charts."""
    user = await require_account(request)
    state: AppState = request.app.state.numlookup
    chosen = request.query_params.get("range", "30d")
    if chosen not in RANGES:
        raise refusal(request, 400, "No such range", "The range is one of 24h, 30d and 90d.")
    since, until, bucket = window(chosen, datetime.now(UTC))

    def read() -> list[UsageBucket]:
        with state.engine.connect() as conn:
            return account_usage(conn, user.account_id, since, until, bucket)

    buckets = await anyio.to_thread.run_sync(read)
    body = {"range": chosen, "bucket": bucket, **chart_data(buckets)}
    return finish(request, Response(_encoder.encode(body), media_type="application/json"))
