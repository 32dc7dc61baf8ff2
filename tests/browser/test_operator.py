"""The operator's console in real Chromium: log in, see every page drawn, change accounts, be refused.

The server is the one ``tests/console/test_operator.py`` runs (an admin token, a
live source for Estonian numbers). The charts' data are read back from the page
(``console.js`` keeps the JSON it drew on the element) and compared with sums
over the ledger; a created account's password is read off its page and used
with curl. Every page fails its test on any JavaScript error or CSP refusal (the
``page`` fixture), and each leaves a screenshot in ``tests/browser/artefacts/``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from numlookup.accounts import NewCredentials, get_account
from tests.browser.conftest import screenshot
from tests.console.conftest import ADMIN_TOKEN
from tests.console.test_operator import (
    INVALID,
    LIVE_NUMBER,
    OFFLINE_NUMBER,
    Site,
    everything,
    ledger_sums,
    lookup,
    operator_site,
)
from tests.e2e.conftest import Live

COVERAGE_WAIT_MS = 300_000  # the coverage table is computed once per worker, seconds of CPU on a busy machine


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from operator_site(tmp_path_factory.mktemp("operator-browser"))


@pytest.fixture
def live(site: Site) -> Live:
    return site.live


def log_in(page: Page, live: Live, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{live.url}/console/operator/login")
    page.fill("input[name=token]", token)
    page.click("form.card button[type=submit]")


def curl_lookup(live: Live, username: str, password: str) -> int:
    """``curl`` a sync lookup as a client would; the HTTP status it got."""
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            f"{username}:{password}",
            "-H",
            "Content-Type: application/json",
            "-d",
            f'{{"numbers": ["{OFFLINE_NUMBER}"]}}',
            f"{live.url}/v1/hlr/sync",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def test_the_operator_logs_in_and_sees_every_page(refused_page: Page, live: Live) -> None:
    page = refused_page  # the wrong token's 401 is checked on the way
    creds = live.account("10")
    assert lookup(live, creds, [LIVE_NUMBER, OFFLINE_NUMBER, INVALID], max_age=0).status_code == 200
    assert lookup(live, creds, [LIVE_NUMBER]).status_code == 200

    page.goto(f"{live.url}/console/operator")
    expect(page).to_have_url(f"{live.url}/console/operator/login?next=/console/operator")
    log_in(page, live, "not-the-token")
    expect(page.locator(".flash.error")).to_have_text("Wrong token.")
    log_in(page, live)
    expect(page).to_have_url(f"{live.url}/console/operator")

    for chart in ("#chart-lookups", "#chart-requests", "#chart-credits"):
        expect(page.locator(f"{chart} canvas").first).to_be_attached()
        expect(page.locator(chart)).to_have_attribute("data-drawn", "30")
    drawn: dict[str, Any] = page.evaluate("document.querySelector('#chart-lookups').chartData")
    series = drawn["series"]
    sums = {k: sum(series[k]) for k in ("requests", "offline", "cached", "live", "invalid")}
    sums["credits"] = sum(series["credits_micros"])
    assert sums == ledger_sums(live, datetime.fromtimestamp(drawn["x"][0], UTC))
    assert sum(Decimal(str(c)) for c in series["credits"]) * 1_000_000 == sums["credits"]
    expect(page.locator(f'#top-accounts tr[data-account="{creds.name}"]')).to_be_visible()
    screenshot(page, "operator-traffic")

    page.click("text=24h")
    expect(page.locator("#chart-lookups")).to_have_attribute("data-drawn", "24")

    page.click("header nav >> text=Sources")
    expect(page.locator('#sources-now tr[data-source="upstream:peer"] td').nth(2)).to_have_text("closed")
    expect(page.locator('#sources-totals tr[data-source="upstream:peer"]')).to_be_visible()
    screenshot(page, "operator-sources")

    page.click("header nav >> text=Data")
    expect(page.locator('#coverage-table tr[data-region="EE"]')).to_be_visible(timeout=COVERAGE_WAIT_MS)  # htmx
    screenshot(page, "operator-data")

    page.click("header nav >> text=Nodes")
    expect(page.locator("#nodes tbody tr").first).to_contain_text("ready")
    screenshot(page, "operator-nodes")

    page.click("header nav >> text=Accounts")
    expect(page.locator(f'#accounts tr[data-account="{creds.name}"]')).to_be_visible()
    screenshot(page, "operator-accounts")

    page.click("header form.logout button")
    expect(page.locator(".flash")).to_have_text("You are logged out.")
    page.goto(f"{live.url}/console/operator/accounts")
    expect(page).to_have_url(f"{live.url}/console/operator/login?next=/console/operator/accounts")


def test_the_operator_creates_tops_up_and_disables_an_account(refused_page: Page, live: Live) -> None:
    page = refused_page  # the refused top-up's 400 is checked at the end
    log_in(page, live)
    page.goto(f"{live.url}/console/operator/accounts")
    page.fill("#create-account input[name=name]", "browser made")
    page.fill("#create-account input[name=credits]", "1.5")
    page.click("#create-account button")
    username = page.locator("#api-username").inner_text()
    password = page.locator("#api-password").inner_text()
    screenshot(page, "operator-account-created")
    creds = NewCredentials("browser made", username, password)
    assert curl_lookup(live, creds.api_username, creds.api_password) == 200

    page.goto(f"{live.url}/console/operator/accounts")
    row = page.locator('#accounts tr[data-account="browser made"]')
    expect(row.locator("td").nth(1)).to_have_text("1.49")  # 1.5 less one offline lookup at 0.01
    row.locator("input[name=amount]").fill("0.000001")
    row.locator("input[name=note]").fill("from the browser")
    row.locator("form[action$='top-up'] button").click()
    expect(page.locator(".flash")).to_have_text("Credits added.")
    expect(row.locator("td").nth(1)).to_have_text("1.490001")
    assert get_account(live.engine, "browser made").balance == 1_490_001

    row.locator("button", has_text="Disable").click()
    expect(row.locator("td").nth(4)).to_have_text("no")
    assert curl_lookup(live, creds.api_username, creds.api_password) == 401
    row.locator("button", has_text="Enable").click()
    expect(row.locator("td").nth(4)).to_have_text("yes")
    assert curl_lookup(live, creds.api_username, creds.api_password) == 200

    row.locator("input[name=amount]").fill("1.0000001")
    row.locator("form[action$='top-up'] button").click()
    expect(page.locator(".flash.error")).to_have_text("1.0000001 has more than 6 decimal places.")
    assert get_account(live.engine, "browser made").balance == 1_480_001  # the lookup above, nothing else


def test_a_forged_csrf_token_is_refused_and_changes_nothing(refused_page: Page, live: Live) -> None:
    page = refused_page
    creds = live.account("3")
    log_in(page, live)
    page.goto(f"{live.url}/console/operator/accounts")
    before = everything(live)
    row = page.locator(f'#accounts tr[data-account="{creds.name}"]')
    row.locator("form[action$='disable'] input[name=csrf_token]").evaluate("field => field.value = 'forged-token'")
    row.locator("button", has_text="Disable").click()
    expect(page.locator("h1")).to_have_text("Form expired")
    expect(page.locator("main")).to_contain_text("nothing was changed")
    assert everything(live) == before


def test_an_account_holder_is_refused_the_operator_pages(refused_page: Page, live: Live) -> None:
    page = refused_page
    creds = live.account("3")
    page.goto(f"{live.url}/console/login")
    page.fill("input[name=username]", creds.api_username)
    page.fill("input[name=password]", creds.api_password)
    page.click("form.card button[type=submit]")
    expect(page).to_have_url(f"{live.url}/console/account")
    page.goto(f"{live.url}/console/operator/accounts")
    expect(page.locator("main")).to_contain_text("This page is not part of an account holder's console.")


def test_the_traffic_and_accounts_pages_work_on_a_phone(phone_page: Page, live: Live) -> None:
    live.account("1")
    log_in(phone_page, live)
    for chart in ("#chart-lookups", "#chart-requests", "#chart-credits"):
        expect(phone_page.locator(f"{chart} canvas").first).to_be_attached()
    assert phone_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(phone_page, "operator-traffic-phone")
    phone_page.goto(f"{live.url}/console/operator/accounts")
    expect(phone_page.locator("#accounts")).to_be_visible()
    widths = phone_page.evaluate(
        """() => ({page: document.documentElement.scrollWidth, view: window.innerWidth,
                  table: document.querySelector('#accounts').scrollWidth,
                  box: document.querySelector('#accounts').parentElement.clientWidth})"""
    )
    assert widths["page"] <= widths["view"], widths  # nothing but the table's own box scrolls sideways
    assert widths["table"] > widths["box"], widths  # the wide table scrolls inside it
    screenshot(phone_page, "operator-accounts-phone")
