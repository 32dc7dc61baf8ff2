"""CSRF: every POST carries its session's token, or is refused before it changes anything.

Forms send it as the ``csrf_token`` field, htmx as the ``X-CSRF-Token`` header
(``base.html`` puts it in ``<body hx-headers>``). The login forms are covered
too, by the anonymous session a login page's GET sets. SameSite=Lax already keeps
the cookie off other sites' POSTs; the token also stops a same-site page (another
app on a sibling subdomain) and any browser that ignores SameSite.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import FormData
from starlette.requests import Request

from numlookup.api.console.pages import PageExit, refusal
from numlookup.api.console.session import ConsoleSession

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def _refused(request: Request) -> PageExit:
    return refusal(
        request,
        403,
        "Form expired",
        "This form's security token is missing or does not match your session; nothing was changed. "
        "Reload the page and try again.",
    )


def check_token(request: Request, session: ConsoleSession | None, presented: str | None) -> None:
    """Raise the 403 page unless ``presented`` is ``session``'s token (compared in constant time)."""
    if session is None or not presented or not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
        raise _refused(request)


async def checked_form(request: Request, session: ConsoleSession | None) -> FormData:
    """The POST's form, once its token checked out (the header's, else the field's)."""
    form = await request.form()
    presented = request.headers.get(HEADER)
    if presented is None:
        field = form.get(FIELD)
        presented = field if isinstance(field, str) else None
    check_token(request, session, presented)
    return form
