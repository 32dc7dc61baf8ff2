"""The web console under ``/console/``: the account holder's pages and the operator's, in the API's own server.

Server-rendered pages (Jinja2, ``pages``), enhanced with htmx and drawn with
uPlot (vendored under ``static/vendor/``, see its ``VENDOR.md``). It is part of
the ``api`` layer: its routes pass through the same edge as the API's (request
id, request log, metrics, abuse guard), and its pages call the API's own code
(the sync lookup, the job intake), never copies of it. ``console = false`` leaves
the routes out, so ``/console/...`` is the API's 404.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numlookup.api.console import account, jobs, ledger, logins, lookup, security
from numlookup.api.console.operator import OPERATOR_ROUTES
from numlookup.api.console.pages import HEADERS, page
from numlookup.settings import Settings

# The static files get the pages' headers but may be cached (they change with the package only).
STATIC_HEADERS = {name: value for name, value in HEADERS.items() if name != "Cache-Control"}


class _StaticHeaders:
    """The console's headers on ``StaticFiles``' answers too: every console response carries the policy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in STATIC_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes, one ``Mount`` (none with ``console = false``)."""
    if not settings.console:
        return []
    routes: list[BaseRoute] = [
        Route("/", page(logins.home), methods=["GET"]),
        Route("/login", page(logins.login_form), methods=["GET"]),
        Route("/login", page(logins.login), methods=["POST"]),
        Route("/operator/login", page(logins.operator_login_form), methods=["GET"]),
        Route("/operator/login", page(logins.operator_login), methods=["POST"]),
        Route("/logout", page(logins.logout), methods=["POST"]),
        # The account holder's pages.
        Route("/account", page(account.overview), methods=["GET"]),
        Route("/account/usage.json", page(account.usage_json), methods=["GET"]),
        Route("/account/ledger", page(ledger.ledger_page), methods=["GET"]),
        Route("/account/ledger.csv", page(ledger.ledger_csv), methods=["GET"]),
        Route("/account/security", page(security.security), methods=["GET"]),
        Route("/account/security/secret", page(security.rotate_api_secret), methods=["POST"]),
        Route("/account/security/networks", page(security.save_networks), methods=["POST"]),
        Route("/account/security/webhook", page(security.rotate_webhook_secret), methods=["POST"]),
        Route("/account/lookup", page(lookup.lookup_page), methods=["GET"]),
        Route("/account/lookup", page(lookup.run_lookup), methods=["POST"]),
        Route("/account/jobs", page(jobs.jobs_page), methods=["GET"]),
        Route("/account/jobs", page(jobs.upload), methods=["POST"]),
        Route("/account/jobs/{job_id}", page(jobs.job_page), methods=["GET"]),
        Route("/account/jobs/{job_id}/progress", page(jobs.job_progress), methods=["GET"]),
        Route("/account/jobs/{job_id}/results", page(jobs.job_results), methods=["GET"]),
        Route("/account/jobs/{job_id}/stop", page(jobs.stop_job), methods=["POST"]),
        # The operator's pages (console-ops) go here.
        *OPERATOR_ROUTES,
        Mount(
            "/static", app=_StaticHeaders(StaticFiles(packages=[("numlookup.api.console", "static")])), name="static"
        ),
    ]
    return [Mount("/console", routes=routes)]
