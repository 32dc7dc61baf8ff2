"""The browser the console's tests drive, and the vendored scripts the console serves, work together.

Independent of the console's pages: if this fails, the console's browser tests
say nothing about the console.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import Watched

VENDOR = Path(__file__).resolve().parents[2] / "numlookup" / "api" / "console" / "static" / "vendor"


def test_vendored_uplot_draws_and_htmx_loads(page: Page) -> None:
    page.set_content("<html><body><div id='chart'></div></body></html>")
    page.add_style_tag(path=str(VENDOR / "uPlot.min.css"))
    page.add_script_tag(path=str(VENDOR / "uPlot.iife.min.js"))
    page.add_script_tag(path=str(VENDOR / "htmx.min.js"))
    assert page.evaluate("htmx.version").startswith("2.")
    drawn = page.evaluate(
        """() => {
            const plot = new uPlot({width: 400, height: 200, series: [{}, {label: "lookups", stroke: "blue"}]},
                                   [[1, 2, 3], [5, 7, 6]], document.getElementById("chart"));
            return {canvases: document.querySelectorAll("#chart canvas").length, points: plot.data[1].length};
        }"""
    )
    assert drawn == {"canvases": 1, "points": 3}


def test_the_watcher_sees_errors_and_refused_scripts(browser: Browser) -> None:
    # What fails a console page: an uncaught exception, console.error, and a script the CSP refuses.
    context = browser.new_context()
    page = context.new_page()
    watched = Watched()
    page.on("console", watched.console)
    page.on("pageerror", watched.exception)
    page.route(
        "http://console.test/",
        lambda route: route.fulfill(
            body="<script>console.error('said'); throw new Error('thrown')</script>",
            headers={"Content-Type": "text/html", "Content-Security-Policy": "script-src 'self'"},
        ),
    )
    page.goto("http://console.test/")
    assert len(watched.errors) == 1 and "Content Security Policy" in watched.errors[0], watched.errors
    other = context.new_page()
    other.on("console", watched.console)
    other.on("pageerror", watched.exception)
    other.set_content("<script>console.error('said'); throw new Error('thrown')</script>")
    context.close()
    assert any("said" in e for e in watched.errors) and any("thrown" in e for e in watched.errors), watched.errors


@pytest.mark.parametrize("name", ["htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"])
def test_vendored_files_match_their_record(name: str) -> None:
    record = (VENDOR / "VENDOR.md").read_text()
    digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
    assert f"| `{name}` |" in record and f"`{digest}`" in record, (
        f"{name} differs from VENDOR.md: rerun scripts/vendor-js.py"
    )
