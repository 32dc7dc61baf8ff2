"""The account's credentials: rotate the API secret, edit the IP allow-list, see and rotate the webhook secret.

Each change goes through the function the CLI and the admin API call
(``accounts.service``, ``webhooks.keys``), with their validation. A rotated API
secret is refused by this worker at once (its account cache is refreshed before
the answer) and by every other within ``account_refresh_seconds``; the session
that rotated it is re-issued under the new secret, every other one ends. The new
secret is shown once, on the answer page, which is never cached.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import AccountError
from numlookup.accounts.allowlist import in_networks, parse_network
from numlookup.accounts.service import StoredAccount, load_account_by_id, replace_networks, rotate_secret
from numlookup.api.auth import client_ip
from numlookup.api.console.csrf import checked_form
from numlookup.api.console.guards import ConsoleUser, require_account
from numlookup.api.console.pages import redirect, render, use_session
from numlookup.api.console.session import ConsoleSession, codec
from numlookup.api.state import AppState
from numlookup.webhooks import keys

MESSAGES = {
    "networks": "The allow-list is saved.",
    "webhook": "A new webhook secret is in use; the old one signs too until the time shown.",
}


async def _page(request: Request, user: ConsoleUser, status: int = 200, **context: object) -> Response:
    state: AppState = request.app.state.numlookup
    assert user.account is not None
    webhook = await anyio.to_thread.run_sync(keys.show, state.engine, user.account_id, datetime.now(UTC))
    now = datetime.now(UTC)
    previous_until = webhook.previous_until
    if previous_until is not None and previous_until.tzinfo is None:
        previous_until = previous_until.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    grace = previous_until if webhook.previous_secret and previous_until and previous_until > now else None
    context.setdefault("networks", "\n".join(user.account.allowed_networks))
    context.setdefault("message", MESSAGES.get(request.query_params.get("m", "")))
    return render(
        request,
        "security.html",
        status,
        title="Security",
        account=user.account,
        webhook_secret=webhook.secret,
        webhook_previous_until=grace.isoformat(timespec="seconds") if grace else None,
        webhook_disabled=webhook.disabled_reason if webhook.disabled else None,
        client=client_ip(request) or "unknown",
        **context,
    )


async def security(request: Request) -> Response:
    return await _page(request, await require_account(request))


async def rotate_api_secret(request: Request) -> Response:
    user = await require_account(request)
    await checked_form(request, user.session)
    state: AppState = request.app.state.numlookup
    assert user.account is not None
    new = await anyio.to_thread.run_sync(rotate_secret, state.engine, user.account.name)
    await state.accounts.refresh()  # this worker refuses the old secret from now on, not after its next poll

    def load() -> StoredAccount | None:
        with state.engine.connect() as conn:
            return load_account_by_id(conn, user.account_id)

    stored = await anyio.to_thread.run_sync(load)
    assert stored is not None
    sessions = await codec(request)
    # This session goes on under the new secret; every other one ends.
    use_session(
        request,
        ConsoleSession(
            "account",
            user.account_id,
            user.session.csrf_token,
            user.session.issued_at,  # still as old as its login: console_session_hours counts from there
            sessions.fingerprint(stored.secret_hash),
        ),
    )
    return await _page(request, user, new_secret=new.api_password)


async def save_networks(request: Request) -> Response:
    user = await require_account(request)
    form = await checked_form(request, user.session)
    state: AppState = request.app.state.numlookup
    assert user.account is not None
    text = str(form.get("networks", ""))
    lines = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    try:
        parsed = [parse_network(line) for line in lines]  # the CLI's check: a typo is named, nothing is saved
    except AccountError as exc:
        return await _page(request, user, 400, error=f"Nothing was saved: {exc}.", networks=text)
    here = client_ip(request)
    if not in_networks(here, parsed) and form.get("lock_out") != "yes":
        return await _page(
            request,
            user,
            400,
            error=(
                f"Nothing was saved: this list does not admit your own address ({here}), so it would end this "
                "session and refuse your next login. Tick the box to save it anyway."
            ),
            networks=text,
            confirm_lock_out=True,
        )
    await anyio.to_thread.run_sync(replace_networks, state.engine, user.account.name, lines)
    await state.accounts.refresh()
    return redirect(request, "/console/account/security?m=networks")


async def rotate_webhook_secret(request: Request) -> Response:
    user = await require_account(request)
    await checked_form(request, user.session)
    state: AppState = request.app.state.numlookup
    grace = timedelta(hours=state.settings.webhook_rotation_grace_hours)
    await anyio.to_thread.run_sync(keys.rotate, state.engine, user.account_id, datetime.now(UTC), grace)
    return redirect(request, "/console/account/security?m=webhook")
