"""The web pages (sign-in, password reset, account with the Support PIN dialog and its own
security settings, "This wasn't me", agent console, staff set-up, administration) and the
offline API docs, served by the service itself on top of the public v1 API.

Pages are static HTML; their text comes from per-language message files and their behaviour
from JavaScript modules under `api/static/`. Every answer here sets its own security headers,
since the API middleware only fills in headers a response has not set."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGES_DIR = Path(__file__).parent / "pages"
STATIC_DIR = Path(__file__).parent / "static"

# The app's own pages: scripts, styles, images and fetches from this origin only.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# Swagger UI runs from local files like the pages; its icons are data: SVGs.
SWAGGER_CSP = PAGE_CSP
# ReDoc (styled-components) injects <style> elements and runs its search index in a blob:
# worker; scripts themselves still come only from this origin.
REDOC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# A static file has nothing to run; its own CSP only matters if it is opened directly.
STATIC_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

_COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

router = APIRouter(include_in_schema=False)


@cache
def _read_page(name: str) -> str:
    return (PAGES_DIR / name).read_text(encoding="utf-8")


def _page(name: str, csp: str = PAGE_CSP) -> HTMLResponse:
    # no-cache: the browser revalidates, so a deploy is seen at once; pages hold no secrets.
    headers = {**_COMMON_HEADERS, "content-security-policy": csp, "cache-control": "no-cache"}
    return HTMLResponse(_read_page(name), headers=headers)


@router.get("/", response_class=HTMLResponse)
async def sign_in_page() -> HTMLResponse:
    return _page("signin.html")


@router.get("/signup", response_class=HTMLResponse)
async def sign_up_page() -> HTMLResponse:
    return _page("signup.html")


@router.get("/account", response_class=HTMLResponse)
async def account_page() -> HTMLResponse:
    return _page("account.html")


@router.get("/reset", response_class=HTMLResponse)
async def password_reset_page() -> HTMLResponse:
    """ "Forgot password?": ask for a reset link by email."""
    return _page("reset.html")


@router.get("/reset/confirm", response_class=HTMLResponse)
async def password_reset_confirm_page() -> HTMLResponse:
    """The page of a reset email's link (its token is in the fragment, which never reaches the
    server)."""
    return _page("reset-confirm.html")


@router.get("/report", response_class=HTMLResponse)
async def report_page() -> HTMLResponse:
    """ "This wasn't me": the page of the link in a notice email (its token is in the fragment,
    which never reaches the server)."""
    return _page("report.html")


@router.get("/agent", response_class=HTMLResponse)
async def agent_page() -> HTMLResponse:
    return _page("agent.html")


@router.get("/staff/setup", response_class=HTMLResponse)
async def staff_setup_page() -> HTMLResponse:
    return _page("staff-setup.html")


@router.get("/admin", response_class=HTMLResponse)
async def admin_page() -> HTMLResponse:
    return _page("admin.html")


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui_page() -> HTMLResponse:
    return _page("swagger.html", SWAGGER_CSP)


@router.get("/docs/oauth2-redirect", response_class=HTMLResponse)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return _page("oauth2-redirect.html", SWAGGER_CSP)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc_page() -> HTMLResponse:
    return _page("redoc.html", REDOC_CSP)


class StaticAssets(StaticFiles):
    """Static files with their own caching and security headers (ETag revalidation: there is
    no build step that would give files content-hashed names)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_COMMON_HEADERS)
        response.headers["content-security-policy"] = STATIC_CSP
        response.headers["cache-control"] = "no-cache"
        if path.endswith(".json"):
            response.headers["content-type"] = "application/json; charset=utf-8"
        return response


def install_web(app: FastAPI) -> None:
    """Adds the pages, the offline docs and /static to `app`."""
    app.include_router(router)
    app.mount("/static", StaticAssets(directory=STATIC_DIR), name="static")
