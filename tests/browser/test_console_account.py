"""The account holder's console in real Chromium: logins, charts drawn from the ledger, a rotated secret used by curl,
an uploaded job's download, and each refusal (a wrong password, an expired session, a forged CSRF token, another
account's URL). The ``page`` fixture fails a test on any JavaScript error and keeps a screenshot of each page.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.sync_api import Page, expect

from numlookup.accounts import NewCredentials, get_account
from numlookup.api.console.session import COOKIE, SALT
from numlookup.billing import format_amount, ledger_rows, parse_amount
from numlookup.store.console_key import session_key
from tests.browser.conftest import screenshot
from tests.e2e.conftest import Live, start_live

ENV = {
    "NUMLOOKUP_ADMIN_TOKEN": "browser-test-admin-token-0123456789",
    "NUMLOOKUP_OFFLINE_PRICE": "0.01",
    "NUMLOOKUP_JOB_CHUNK_NUMBERS": "2",
    "NUMLOOKUP_JOB_POLL_SECONDS": "0.05",
}
NUMBERS = ["+37251000001", "+37251000002", "+372 5100 0001", "12345", "+37251000003", "not a number"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("browser-account"), env=ENV)


def log_in(page: Page, live: Live, creds: NewCredentials, password: str | None = None) -> None:
    page.goto(live.url + "/console/login")
    page.fill("input[name=username]", creds.api_username)
    page.fill("input[name=password]", creds.api_password if password is None else password)
    page.click("form.card button[type=submit]")


def _sync(live: Live, creds: NewCredentials, numbers: list[str]) -> httpx.Response:
    return httpx.post(
        live.url + "/v1/hlr/sync", json={"numbers": numbers}, auth=(creds.api_username, creds.api_password), timeout=30
    )


def test_an_account_logs_in_and_its_charts_draw_what_the_ledger_holds(page: Page, live: Live) -> None:
    creds = live.account("5")
    assert _sync(live, creds, ["+37251000001", "+37251000002", "12345"]).status_code == 200
    assert _sync(live, creds, ["+37251000003"]).status_code == 200
    log_in(page, live, creds)
    expect(page).to_have_url(live.url + "/console/account")
    expect(page.locator("#balance")).to_have_text("4.97")
    for chart in ("#chart-lookups", "#chart-credits", "#chart-invalid"):
        expect(page.locator(f"{chart} canvas")).to_have_count(1)
    drawn = json.loads(page.evaluate("JSON.stringify(document.querySelector('#chart-lookups').chartData)"))
    charges = [
        row for row in ledger_rows(live.engine, get_account(live.engine, creds.name).id, None) if row.kind == "lookup"
    ]
    series = drawn["series"]
    assert sum(series["requests"]) == len(charges) == 2
    assert sum(series["offline"]) == sum(row.numbers for row in charges) == 3
    assert sum(series["invalid"]) == 1
    assert sum(Decimal(str(v)) for v in series["credits"]) == Decimal(format_amount(-sum(r.amount for r in charges)))
    screenshot(page, "console-account")

    page.click("a[href='/console/account?range=24h']")
    expect(page.locator("#chart-lookups canvas")).to_have_count(1)
    expect(page.locator("#chart-lookups")).to_have_attribute("data-drawn", "24")
    page.click("a[href='/console/account?range=90d']")
    expect(page.locator("#chart-credits")).to_have_attribute("data-drawn", "90")


def test_a_wrong_password_is_refused(refused_page: Page, live: Live) -> None:
    page = refused_page
    creds = live.account()
    log_in(page, live, creds, password="not-the-secret")
    expect(page.locator(".flash.error")).to_have_text("Wrong username or password.")
    page.goto(live.url + "/console/account")
    expect(page).to_have_url(live.url + "/console/login?next=/console/account")


def test_a_rotated_secret_works_with_curl_and_the_old_one_does_not(page: Page, live: Live) -> None:
    creds = live.account()
    log_in(page, live, creds)
    page.click("nav a[href='/console/account/security']")
    page.click("#rotate-secret")
    secret = page.locator("#new-secret").inner_text().strip()
    screenshot(page, "console-security")
    assert secret and secret != creds.api_password

    def curl(password: str) -> str:
        command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"{creds.api_username}:{password}"]
        command += ["-H", "Content-Type: application/json", "-d", '{"numbers": ["+37251000001"]}']
        done = subprocess.run(
            [*command, live.url + "/v1/hlr/sync"], capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout

    assert curl(secret) == "200"
    assert curl(creds.api_password) == "401"
    page.goto(live.url + "/console/account/security")  # not a reload: that would send the form again
    expect(page.locator("#new-secret")).to_have_count(0)  # shown once
    expect(page.locator("#api-username")).to_have_text(creds.api_username)  # the session went on


def test_a_job_uploaded_in_the_browser_runs_and_downloads_the_job_apis_results(
    page: Page, live: Live, tmp_path: Path
) -> None:
    creds = live.account("1")
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("\n".join(NUMBERS) + "\n")
    log_in(page, live, creds)
    page.click("nav a[href='/console/account/jobs']")
    page.set_input_files("#file", str(numbers))
    page.fill("#friendly_name", "browser upload")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#job-status")).to_have_text("COMPLETED", timeout=30_000)  # htmx polls the fragment
    expect(page.locator("#job-charged")).to_have_text("0.03")
    screenshot(page, "console-job")
    job_id = page.url.rsplit("/", 1)[1]
    with page.expect_download() as download:
        page.click("#results-csv")
    got = Path(download.value.path()).read_bytes()
    with live.client(creds) as api:
        assert got == api.get(f"/v1/hlr/jobs/{job_id}/results?format=csv").content
    page.click("a[href='/console/account/jobs']")
    expect(page.locator(f"#jobs a[href='/console/account/jobs/{job_id}']")).to_have_count(1)
    screenshot(page, "console-jobs")


def test_another_accounts_job_url_is_refused(refused_page: Page, live: Live) -> None:
    page = refused_page
    owner, intruder = live.account(), live.account()
    with live.client(owner) as api:
        job = api.post("/v1/hlr/jobs", json={"numbers": ["+37251000001"]}).json()
    log_in(page, live, intruder)
    expect(page).to_have_url(live.url + "/console/account")
    answer = page.goto(f"{live.url}/console/account/jobs/{job['id']}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("No such job")


def test_a_forged_csrf_token_is_refused_and_changes_nothing(refused_page: Page, live: Live) -> None:
    page = refused_page
    creds = live.account()
    log_in(page, live, creds)
    page.goto(live.url + "/console/account/security")
    before = page.locator("#webhook-secret").inner_text()
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(i => i.value = 'forged')")
    page.click("#rotate-webhook")
    expect(page.locator("h1")).to_have_text("Form expired")
    page.goto(live.url + "/console/account/security")
    expect(page.locator("#webhook-secret")).to_have_text(before)


class _OldSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time() - timedelta(hours=13).total_seconds())


def test_an_expired_session_is_sent_to_log_in_again(page: Page, live: Live) -> None:
    creds = live.account()
    log_in(page, live, creds)
    expect(page).to_have_url(live.url + "/console/account")
    [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE]
    key = session_key(live.engine)
    payload = URLSafeTimedSerializer(key, salt=SALT).loads(cookie["value"])
    old = URLSafeTimedSerializer(key, salt=SALT, signer=_OldSigner).dumps(payload)
    page.context.add_cookies([{"name": COOKIE, "value": old, "url": live.url + "/console", "httpOnly": True}])
    page.goto(live.url + "/console/account/ledger")
    expect(page).to_have_url(live.url + "/console/login?next=/console/account/ledger&m=expired")
    expect(page.locator(".flash")).to_have_text("Your session expired; log in again.")
    screenshot(page, "console-login")


def test_the_lookup_box_and_the_ledger_in_the_browser(page: Page, live: Live) -> None:
    creds = live.account("1")
    log_in(page, live, creds)
    page.click("nav a[href='/console/account/lookup']")
    page.fill("#numbers", "+37251000001\n12345")
    page.click("#lookup-form button[type=submit]")
    expect(page.locator("#results tbody tr")).to_have_count(2)
    expect(page.locator("#raw")).to_contain_text('"request_id"')
    screenshot(page, "console-lookup")
    assert get_account(live.engine, creds.name).balance == parse_amount("0.99")
    page.click("nav a[href='/console/account/ledger']")
    expect(page.locator("#ledger tbody tr")).to_have_count(2)  # the credit and the lookup
    screenshot(page, "console-ledger")


def test_the_overview_fits_a_phone(phone_page: Page, live: Live) -> None:
    creds = live.account()
    _sync(live, creds, ["+37251000001"])
    log_in(phone_page, live, creds)
    expect(phone_page.locator("#chart-lookups canvas")).to_have_count(1)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"
    screenshot(phone_page, "console-account-phone")
