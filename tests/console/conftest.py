"""A console server per test module (with an admin token, so both audiences can log in), and browser-like clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from numlookup.accounts import NewCredentials
from tests.e2e.conftest import Live, start_live

ADMIN_TOKEN = "console-test-admin-token-0123456789"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, f"no csrf_token field in:\n{html[:2000]}"
    return found.group(1)


class Console:
    """One browser's worth of cookies against a console, with the steps a person takes."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)

    def get(self, path: str, **options: object) -> httpx.Response:
        return self.http.get(path, **options)  # type: ignore[arg-type]  # httpx's own keywords

    def token(self, path: str) -> str:
        """The CSRF token of the form on ``path``."""
        page = self.http.get(path)
        assert page.status_code == 200, page.text
        return csrf_token(page.text)

    def post(self, path: str, data: dict[str, str], token: str | None = None, **options: object) -> httpx.Response:
        """A form POST carrying ``token`` (None: the token of the page the form is on, ``path``'s GET)."""
        fields = {**data, "csrf_token": self.token(path) if token is None else token}
        return self.http.post(path, data=fields, **options)  # type: ignore[arg-type]  # httpx's own keywords

    def login(self, creds: NewCredentials) -> httpx.Response:
        answer = self.post("/console/login", {"username": creds.api_username, "password": creds.api_password})
        assert answer.status_code == 303, answer.text
        return answer

    def operator_login(self, token: str = ADMIN_TOKEN) -> httpx.Response:
        answer = self.post("/console/operator/login", {"token": token})
        assert answer.status_code == 303, answer.text
        return answer

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("console"), env={"NUMLOOKUP_ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.fixture
def console(live: Live) -> Iterator[Console]:
    browser = Console(live.url)
    yield browser
    browser.close()
