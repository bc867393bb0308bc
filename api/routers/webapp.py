"""``GET /app``: the resident web app (plain HTML/JS/CSS from ``api/static/app/``, no build step).

The page signs in with a resident's party token, listens on the push WebSocket, rings
(sound, and a system notification through its service worker ``sw.js`` while in the
background), shows the door's early-media preview, answers, talks, opens the door, switches
do-not-disturb and lists the resident's calls, in English or Simplified Chinese
(``i18n.js``), all through the public API (``docs/media.md``); it holds no secret of its
own, so serving it needs no authentication. ``manifest.webmanifest`` makes it installable.

Files are served from a fixed table (name -> media type), never from a path taken from
the URL, with a strict Content-Security-Policy: scripts, styles and fetches from this
origin only (plus its own ``ws:``/``wss:`` origin for the push channel), no inline code,
no frames, no plugins. ``Cache-Control: no-cache`` makes a browser revalidate after an
upgrade (ETag = SHA-256 of the file).

Errors: 404 ``not-found`` (problem document) for a name not in the table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from api.problems import not_found

router = APIRouter(tags=["webapp"])

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "app"
"""Where the page's files are (package data of ``api``)."""

FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "sw.js": "text/javascript; charset=utf-8",
    "manifest.webmanifest": "application/manifest+json",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""Every file the app serves, by name, with its media type."""

SERVICE_WORKER = "sw.js"
"""The service worker (issue 11 item 1: installable, notifications while in the background);
registered with scope ``/app``, allowed by its ``Service-Worker-Allowed`` header."""

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's CSP. ``host``: the request's ``Host`` header (``127.0.0.1:8080``); when it
    is a plain host[:port] the push channel's ``ws://``/``wss://`` origin is named
    explicitly (older browsers do not let ``'self'`` match WebSocket URLs), otherwise
    only ``'self'`` is allowed."""
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",  # blob: the visitor snapshots, fetched with the token
            "media-src 'self' blob: mediastream:",
            "manifest-src 'self'",
            "worker-src 'self'",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _asset(name: str) -> _Asset:
    body = (STATIC_DIR / name).read_bytes()
    return _Asset(body, FILES[name], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _serve(name: str, request: Request) -> Response:
    if name not in FILES:
        raise not_found("file", name)
    asset = _asset(name)
    headers = {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(self), microphone=(self), autoplay=(self)",
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
    }
    if name == SERVICE_WORKER:
        headers["Service-Worker-Allowed"] = "/app"  # its scope is the page /app, above /app/
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/app", include_in_schema=False)
async def app_page(request: Request) -> Response:
    """The app's page (``?token=`` signs in; the page moves the token to sessionStorage)."""
    return _serve("index.html", request)


@router.get("/app/", include_in_schema=False)
async def app_slash(request: Request) -> Response:
    """``/app/`` -> ``/app`` (query kept), so relative asset URLs resolve one way only."""
    query = request.url.query
    return RedirectResponse("/app" + (f"?{query}" if query else ""), status_code=308)


@router.get("/app/{name}", include_in_schema=False)
async def app_file(name: str, request: Request) -> Response:
    """One of :data:`FILES`; 404 problem for any other name."""
    return _serve(name, request)
