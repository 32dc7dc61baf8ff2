"""The console's foundation against a real server: logins of both audiences, sessions, CSRF, headers, the edge.

Each test drives the console as a browser does (cookies, form posts with the
page's CSRF token) over a real socket, and checks what a refusal changed: nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from numlookup.accounts import rotate_secret, set_enabled
from tests.console.conftest import ADMIN_TOKEN, Console
from tests.e2e.conftest import Live, start_live

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _logged_in(console: Console) -> bool:
    """Whether the console's cookie holds an account session: the overview answers instead of sending to login."""
    return console.get("/console/account").status_code == 200


def test_without_a_session_every_page_sends_to_its_login(console: Console) -> None:
    assert console.get("/console/").headers["location"] == "/console/login"
    answer = console.get("/console/account")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/account"


def test_an_account_logs_in_with_its_api_credentials_and_sees_its_balance(live: Live, console: Console) -> None:
    creds = live.account("12.5")
    assert console.login(creds).headers["location"] == "/console/account"
    assert console.get("/console/").headers["location"] == "/console/account"
    page = console.get("/console/account")
    assert page.status_code == 200
    assert creds.name in page.text and 'id="balance">12.5<' in page.text
    assert creds.api_password not in page.text


def test_login_goes_back_to_next_but_only_within_the_console(live: Live, console: Console) -> None:
    creds = live.account()
    fields = {"username": creds.api_username, "password": creds.api_password}
    form = console.get("/console/login?next=/console/account")
    assert 'name="next" value="/console/account"' in form.text
    for unsafe in ("//evil.example/", "https://evil.example/", "/console/\\evil", "/elsewhere"):
        answer = console.post("/console/login", {**fields, "next": unsafe})
        assert answer.headers["location"] == "/console/account", unsafe


def test_a_wrong_password_is_refused_and_starts_no_session(live: Live, console: Console) -> None:
    creds = live.account()
    for username, password in ((creds.api_username, "not-the-secret"), ("nobody-at-all", creds.api_password), ("", "")):
        answer = console.post("/console/login", {"username": username, "password": password})
        assert answer.status_code == 401
        assert "Wrong username or password." in answer.text
        assert not _logged_in(console)


def test_a_login_without_its_csrf_token_changes_nothing(live: Live, console: Console) -> None:
    creds = live.account()
    other = Console(live.url)
    try:
        stolen = other.token("/console/login")  # another session's token
        fields = {"username": creds.api_username, "password": creds.api_password}
        console.token("/console/login")  # this browser has its own anonymous session
        for token in ("", "forged-token", stolen):
            answer = console.post("/console/login", fields, token=token)
            assert answer.status_code == 403, token
            assert "nothing was changed" in answer.text
            assert "set-cookie" not in answer.headers
            assert not _logged_in(console)
        bare = console.http.post("/console/login", data=fields)  # no field at all
        assert bare.status_code == 403 and not _logged_in(console)
    finally:
        other.close()


def test_logout_needs_the_token_and_then_clears_the_cookie(live: Live, console: Console) -> None:
    console.login(live.account())
    refused = console.post("/console/logout", {}, token="forged")
    assert refused.status_code == 403 and _logged_in(console)
    token = console.token("/console/account")
    answer = console.post("/console/logout", {}, token=token)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login?m=out"
    assert 'numlookup_console=""' in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]
    assert not _logged_in(console)
    assert "You are logged out." in console.get("/console/login?m=out").text


def test_htmx_posts_carry_the_token_in_a_header(live: Live, console: Console) -> None:
    console.login(live.account())
    page = console.get("/console/account").text
    assert 'hx-headers=\'{"X-CSRF-Token": "' in page
    token = page.split('X-CSRF-Token": "', 1)[1].split('"', 1)[0]
    assert console.http.post("/console/logout", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert _logged_in(console)
    assert console.http.post("/console/logout", headers={"X-CSRF-Token": token}).status_code == 303
    assert not _logged_in(console)


def test_rotating_the_secret_or_disabling_the_account_ends_its_sessions(live: Live, console: Console) -> None:
    creds = live.account()
    console.login(creds)
    rotate_secret(live.engine, creds.name)  # by the CLI, say: not through this session
    answer = console.get("/console/account")
    assert answer.headers["location"] == "/console/login?next=/console/account&m=ended"
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert "Your session ended" in console.get(answer.headers["location"]).text

    second = live.account()
    console.login(second)
    set_enabled(live.engine, second.name, False)
    assert console.get("/console/account").headers["location"].endswith("&m=ended")


def test_the_operator_logs_in_with_the_admin_token(live: Live, console: Console) -> None:
    wrong = console.post("/console/operator/login", {"token": ADMIN_TOKEN + "x"})
    assert wrong.status_code == 401 and "Wrong token." in wrong.text
    assert console.operator_login().headers["location"] == "/console/operator"
    assert console.get("/console/").headers["location"] == "/console/operator"
    refused = console.get("/console/account")  # the operator is not an account holder
    assert refused.status_code == 403 and "not part of the operator" in refused.text


def test_every_console_response_carries_the_security_headers(live: Live, console: Console) -> None:
    creds = live.account()
    answers = [
        console.get("/console/"),
        console.get("/console/login"),
        console.get("/console/operator/login"),
        console.get("/console/account"),
        console.get("/console/static/console.css"),
        console.get("/console/static/console.js"),
        console.post("/console/login", {"username": creds.api_username, "password": "wrong"}),
        console.post("/console/login", {"username": creds.api_username, "password": "wrong"}, token="forged"),
        console.login(creds),
        console.get("/console/account"),
    ]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path} {answer.status_code}"
        assert answer.headers["content-security-policy"] == CSP, where
        assert answer.headers["x-frame-options"] == "DENY", where
        assert answer.headers["referrer-policy"] == "same-origin", where
        assert answer.headers["x-content-type-options"] == "nosniff", where
        assert "x-request-id" in answer.headers, where
        if "/static/" not in answer.request.url.path:
            assert answer.headers["cache-control"] == "no-store", where
    page = answers[-1].text
    assert "<script>" not in page and "style=" not in page and " on" + "click" not in page  # the CSP allows none


def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_console(live: Live, console: Console) -> None:
    cookie = console.login(live.account()).headers["set-cookie"]
    assert cookie.startswith("numlookup_console=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Max-Age=43200" in cookie  # console_session_hours = 12
    assert "Secure" not in cookie  # plain http, and the peer is no trusted proxy: its X-Forwarded-Proto is ignored
    untrusted = console.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in untrusted.headers.get("set-cookie", "")


def test_console_routes_are_metered_by_their_templates(live: Live, console: Console) -> None:
    console.get("/console/static/console.css")
    console.get("/console/login")
    metrics = httpx.get(live.url + "/metrics").text
    assert 'route="/console/login"' in metrics and 'route="/console/static"' in metrics
    assert "console.css" not in metrics


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server that blocks an address after three failed authentications, behind a trusted proxy, no admin token."""
    env = {
        "NUMLOOKUP_AUTH_FAILURE_LIMIT": "3",
        "NUMLOOKUP_AUTH_FAILURE_PENALTY_SECONDS": "600",
        "NUMLOOKUP_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    }
    yield from start_live(tmp_path_factory.mktemp("guarded"), env=env)


def _log_records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_failed_console_logins_count_with_the_apis_failed_authentications(guarded: Live) -> None:
    creds = guarded.account()
    client = "198.51.100.7"  # as the trusted proxy names it
    via = {"X-Forwarded-For": client}
    console = Console(guarded.url)
    try:
        token = console.token("/console/login")
        wrong = {"username": creds.api_username, "password": "guess-1", "csrf_token": token}
        assert console.http.post("/console/login", data=wrong, headers=via).status_code == 401
        assert console.http.post("/console/login", data=wrong, headers=via).status_code == 401
        api = httpx.post(
            guarded.url + "/v1/hlr/sync",
            json={"numbers": ["+37251000001"]},
            auth=(creds.api_username, "x"),
            headers=via,
        )
        assert api.status_code == 401  # the third failure, by the API: the address is now blocked
        right = {**wrong, "password": creds.api_password}
        blocked = console.http.post("/console/login", data=right, headers=via)
        assert blocked.status_code == 429 and "retry-after" in blocked.headers
        assert console.get("/console/account", headers=via).status_code == 303  # no session was started
        other = Console(guarded.url)  # another address is not affected
        assert other.login(creds).status_code == 303
        other.close()
    finally:
        console.close()
    records = _log_records(guarded.server.log_path)
    refused = [r for r in records if r.get("path") == "/console/login" and r.get("status") == 401]
    assert len(refused) == 2
    assert all(r["auth_failure"] == "wrong_secret" and r["username"] == creds.api_username for r in refused)
    assert all(r["client"] == client for r in refused)
    text = guarded.server.log_path.read_text()
    assert creds.api_password not in text and "guess-1" not in text and "numlookup_console=" not in text


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(guarded: Live) -> None:
    console = Console(guarded.url)
    try:
        assert "Secure" in console.get("/console/login", headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
        console.http.cookies.clear()
        assert (
            "Secure" not in console.get("/console/login", headers={"X-Forwarded-Proto": "http"}).headers["set-cookie"]
        )
    finally:
        console.close()


def test_without_an_admin_token_the_operator_login_says_the_console_is_off(guarded: Live) -> None:
    console = Console(guarded.url)
    try:
        page = console.get("/console/operator/login")
        assert (
            page.status_code == 200 and "The operator console is off" in page.text and 'name="token"' not in page.text
        )
        answer = console.post("/console/operator/login", {"token": "any"}, token=console.token("/console/login"))
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
    finally:
        console.close()


def test_console_false_leaves_the_apis_404(tmp_path: Path) -> None:
    for live in start_live(tmp_path / "off", env={"NUMLOOKUP_CONSOLE": "false"}):
        for path in ("/console/", "/console/login", "/console/static/console.css"):
            answer = httpx.get(live.url + path)
            assert answer.status_code == 404, path
            assert (
                answer.headers["content-type"] == "application/json" and "content-security-policy" not in answer.headers
            )
        assert httpx.post(live.url + "/console/login", data={"username": "u", "password": "p"}).status_code == 404


ACCOUNT_PAGES = (
    "/console/account",
    "/console/account/usage.json?range=24h",
    "/console/account/ledger",
    "/console/account/ledger.csv",
    "/console/account/security",
    "/console/account/lookup",
    "/console/account/jobs",
)
ACCOUNT_POSTS = (
    "/console/account/security/secret",
    "/console/account/security/networks",
    "/console/account/security/webhook",
    "/console/account/lookup",
    "/console/account/jobs",
    "/console/account/jobs/J1/stop",
)


def test_every_account_page_answers_by_audience(live: Live, console: Console) -> None:
    """Anonymous: to the login page and back; the operator: 403; the account: the page, with the console's headers."""
    for path in ACCOUNT_PAGES:
        anonymous = console.get(path)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"] == f"/console/login?next={path.split('?', 1)[0]}", path
    for path in ACCOUNT_POSTS:
        assert console.http.post(path, data={"csrf_token": "x"}).status_code == 303, path
    console.operator_login()
    token = console.token("/console/login")
    for path in ACCOUNT_PAGES:
        assert console.get(path).status_code == 403, path
    for path in ACCOUNT_POSTS:
        assert console.http.post(path, data={"csrf_token": token}).status_code == 403, path
    console.login(live.account())
    for path in ACCOUNT_PAGES:
        answer = console.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == CSP and answer.headers["cache-control"] == "no-store", path
