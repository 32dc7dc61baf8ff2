"""Rendering console pages: one Jinja2 environment, the console's response headers, and page exits.

Every console response passes through :func:`finish`, which sets the headers
that make the pages safe to serve: a Content-Security-Policy that allows no
inline script or style (the templates have none; ``console.js`` reads its
configuration from ``data-`` attributes), no framing, no caching of pages that
hold an account's data, and no MIME sniffing. It also writes the session cookie
when the request changed the session (a login, a logout, a fresh CSRF token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from numlookup.api.console.session import ConsoleSession, clear_cookie, set_cookie

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
SESSION = "console_session"  # request.state: the session this request runs under (anonymous included)
NEW_COOKIE = "console_cookie"  # request.state: a session to write into the cookie (False: clear it)

environment = Environment(
    loader=PackageLoader("numlookup.api.console"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# The navigation of each kind of session: (path, label).
NAV: dict[str | None, tuple[tuple[str, str], ...]] = {
    None: (),
    "account": (
        ("/console/account", "Overview"),
        ("/console/account/ledger", "Ledger"),
        ("/console/account/jobs", "Jobs"),
        ("/console/account/lookup", "Lookup"),
        ("/console/account/security", "Security"),
    ),
    "operator": (
        ("/console/operator", "Traffic"),
        ("/console/operator/accounts", "Accounts"),
        ("/console/operator/sources", "Sources"),
        ("/console/operator/data", "Data"),
        ("/console/operator/nodes", "Nodes"),
    ),
}


class PageExit(Exception):  # not an error: a page answering early (a redirect, a 403, a 404)
    """Raised by guards and checks to answer with ``response`` instead of the page."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def session_of(request: Request) -> ConsoleSession | None:
    found: ConsoleSession | None = getattr(request.state, SESSION, None)
    return found


def use_session(request: Request, session: ConsoleSession | None) -> None:
    """Make ``session`` this request's, and write it into the cookie of the response (None: clear the cookie)."""
    setattr(request.state, SESSION, session)
    setattr(request.state, NEW_COOKIE, session if session is not None else False)


def finish(request: Request, response: Response) -> Response:
    """The console's headers, and the session cookie if this request changed the session."""
    response.headers.update(HEADERS)
    new = getattr(request.state, NEW_COOKIE, None)
    if new is False:
        clear_cookie(request, response)
    elif isinstance(new, ConsoleSession):
        set_cookie(request, response, request.app.state.console_codec, new)
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with the session, its CSRF token and the navigation of its kind."""
    session = session_of(request)
    kind = session.kind if session is not None else None
    page = environment.get_template(template).render(
        request=request,
        session=session,
        csrf_token=session.csrf_token if session is not None else "",
        nav=NAV[kind],
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    finish(request, response)
    return response


def redirect(request: Request, url: str) -> Response:
    """A 303 (a POST answered: the browser GETs ``url``), with the console's headers."""
    return finish(request, RedirectResponse(url, status_code=303))


def refusal(request: Request, status: int, title: str, message: str) -> PageExit:
    """A page that refuses (403, 404, 429): raise it."""
    return PageExit(render(request, "refused.html", status, title=title, message=message))


Endpoint = Callable[[Request], Awaitable[Response]]


def page(endpoint: Endpoint) -> Endpoint:
    """A console endpoint: a ``PageExit`` raised inside becomes its response."""

    @wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except PageExit as exit_:
            return exit_.response

    return run
