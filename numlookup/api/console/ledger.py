"""The account's ledger: a page of 50 rows at a time (newest first, keyset on the row id), and all of it as CSV.

Amounts are printed exactly as ``numlookup credits show`` prints them
(``billing.format_amount``: decimal credits, never a float). The CSV is streamed
a thousand rows at a time, each read in a worker thread, so a long ledger is
never held in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from numlookup.api.console.guards import require_account
from numlookup.api.console.pages import finish, refusal, render
from numlookup.api.state import AppState
from numlookup.billing import format_amount
from numlookup.billing.ledger import LedgerRow, ledger_rows

PAGE_ROWS = 50
CSV_ROWS = 1000  # rows read per query while streaming the CSV
CSV_COLUMNS = ("id", "created_at", "kind", "amount", "numbers", "balance_after", "request_id", "note")


def _fields(row: LedgerRow) -> tuple[str, ...]:
    return (
        str(row.id),
        row.created_at.isoformat(),
        row.kind,
        format_amount(row.amount),
        str(row.numbers),
        format_amount(row.balance_after),
        row.request_id or "",
        row.note or "",
    )


async def ledger_page(request: Request) -> Response:
    user = await require_account(request)
    state: AppState = request.app.state.numlookup
    text = request.query_params.get("before")
    before = None
    if text is not None:
        if not text.isdigit():
            raise refusal(request, 400, "Not a ledger row", f"before must be a ledger row id (got {text[:40]!r}).")
        before = int(text)
    rows = await anyio.to_thread.run_sync(ledger_rows, state.engine, user.account_id, PAGE_ROWS + 1, before)
    shown = rows[:PAGE_ROWS]
    return render(
        request,
        "ledger.html",
        title="Ledger",
        rows=[_fields(row) for row in shown],
        next_before=shown[-1].id if len(rows) > PAGE_ROWS else None,
        first=before is None,
    )


async def ledger_csv(request: Request) -> Response:
    user = await require_account(request)
    state: AppState = request.app.state.numlookup
    account_id = user.account_id

    async def lines() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        before: int | None = None
        while True:
            rows = await anyio.to_thread.run_sync(ledger_rows, state.engine, account_id, CSV_ROWS, before)
            writer.writerows(_fields(row) for row in rows)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(rows) < CSV_ROWS:
                return
            before = rows[-1].id

    assert user.account is not None
    headers = {"Content-Disposition": f'attachment; filename="ledger-{user.account.api_username}.csv"'}
    return finish(request, StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers))
