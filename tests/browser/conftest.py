"""Real Chromium for the console's tests: Debian's browser, driven by Playwright.

Why Debian's Chromium and not Playwright's own: the machines that run the suite reach
the package registries only, and Playwright's browser download comes from a CDN.
``make test`` installs the package (scripts/ensure-chromium.sh); without it these
tests are skipped, like the osmo-hlr tests without osmo-hlr.

Every test's page fails the test on any JavaScript error (an exception, a
``console.error``, a resource that did not load, a Content-Security-Policy refusal),
and leaves a full-page screenshot in ``tests/browser/artefacts/`` named after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Response, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = Path(__file__).parent / "artefacts"
# The flags a closed network needs: without the background ones Chromium keeps trying to
# reach Google's hosts, and every refused connection is logged.
FLAGS = [
    "--no-sandbox",  # the suite runs as root in CI; Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


# Per module, not per session: Playwright's sync API keeps an asyncio loop running in the test
# process while it lives, and a later file in the same xdist process that calls asyncio.run
# (tests/api/test_coalescer.py) would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/ensure-chromium.sh installs it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
    yield chromium
    chromium.close()


@dataclass
class Watched:
    """What a page said went wrong; the fixture fails the test if anything did."""

    errors: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text} ({message.location.get('url', '')})")

    def exception(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


def artefact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])


def screenshot(page: Page, name: str) -> Path:
    """A named full-page screenshot in the artefacts folder (the README shows two of them)."""
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _watched_page(
    browser: Browser, request: pytest.FixtureRequest, viewport: dict[str, int], *, refusals: bool = False
) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]  # ViewportSize is a TypedDict of these two keys
    page = context.new_page()
    watched = Watched()
    refused: set[str] = set()

    def document(response: Response) -> None:
        if response.request.resource_type == "document" and response.status >= 400:
            refused.add(response.url)

    def console(message: ConsoleMessage) -> None:
        # Chromium reports a document answered 4xx as "Failed to load resource": for a refusal
        # the test navigated to, that is the answer it checks, not an error of the page.
        if refusals and message.text.startswith("Failed to load resource") and message.location.get("url") in refused:
            return
        watched.console(message)

    page.on("response", document)
    page.on("console", console)
    page.on("pageerror", watched.exception)
    try:
        yield page
        if page.url not in ("", "about:blank"):
            screenshot(page, artefact_name(request.node.nodeid))
    finally:
        context.close()
    assert not watched.errors, "JavaScript errors on the page:\n" + "\n".join(watched.errors)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page at a desktop size."""
    yield from _watched_page(browser, request, DESKTOP)


@pytest.fixture
def phone_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The same at a phone's size, for the pages that must work on one."""
    yield from _watched_page(browser, request, PHONE)


@pytest.fixture
def refused_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """``page``, for tests whose pages are refusals: a document answered 401, 403 or 404 is what they check.

    Only Chromium's report of such a document, for a document the test navigated
    to, is let through; any other error (a script's, a resource's, the CSP's)
    still fails the test.
    """
    yield from _watched_page(browser, request, DESKTOP, refusals=True)
