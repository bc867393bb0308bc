"""Documentation that works offline: the OpenAPI document's error responses, and the pages
that problem ``type``s resolve to.

- Swagger UI (``/docs``, with its OAuth2 redirect page) and ReDoc (``/redoc``): FastAPI's
  own pages, with the JavaScript and CSS files of the ``fastapi-offline`` package served
  under :data:`ASSETS_URL`, and a Content-Security-Policy that lets them load nothing from
  another origin (ReDoc's menu shows Redocly's logo from a CDN: the browser never asks;
  Swagger UI's online validator badge is off). The package's own ``FastAPIOffline()``
  serves the same files, but its pages cannot carry that header: hence these three small
  routes.
- :func:`install` replaces ``app.openapi`` so that every operation documents its error
  responses with the one problem schema (``#/components/schemas/Problem``,
  :class:`api.problems.ProblemDocument`) under ``application/problem+json``: 401 for every
  dependency registered with :func:`api.problems.raises` (``api/deps.py``: the API key, the
  party token), 413 and 422 for a request body, 422 for any parameter (FastAPI's own 422
  schema is replaced: the API answers validation errors with a problem), and what a route
  declares with :func:`api.problems.problem_responses` (404, 409, 429, ...). The security
  schemes come from FastAPI's security dependencies (``BackendApiKey``, ``PartyToken``).
- ``GET /problems`` renders ``docs/errcodes.md`` as HTML and ``GET /problems/{slug}`` the
  section ``### <slug>`` of it: a problem ``type`` ``/problems/<slug>`` (RFC 9457 section
  3.1.1: resolved against the response's URL) leads a person to its documentation.
  Unknown slug: 404 problem.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt
from starlette.routing import BaseRoute

from api.problems import DEPENDENCY_PROBLEMS, ProblemDocument, not_found, openapi_problem
from ringflow.contracts.errors import PROBLEM_BASE

ASSETS_URL = "/docs/assets"
"""Where the Swagger UI and ReDoc files of ``fastapi-offline`` are served."""

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
"""``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png``."""

ERRCODES_NAME = "errcodes.md"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
"""Swagger UI options beside FastAPI's defaults: no badge from the online validator."""

DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # FastAPI's pages start the UI with an inline script
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index
        "connect-src 'self'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
)
"""Content-Security-Policy of the documentation pages: this origin only."""


def docs_app(**kwargs: Any) -> FastAPI:
    """``FastAPI(**kwargs)`` without FastAPI's CDN-based documentation pages;
    :func:`install` adds the offline ones."""
    return FastAPI(docs_url=None, redoc_url=None, **kwargs)


def _html(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _add_doc_pages(app: FastAPI) -> None:
    """``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and the assets under :data:`ASSETS_URL`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _html(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                oauth2_redirect_url=root + redirect_url,
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return _html(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _html(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(redirect_url, swagger_ui_redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)


# ---------------------------------------------------------------- OpenAPI


_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every callable ``dependant`` depends on, at any depth."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependency_calls(sub)


def api_routes(routes: list[BaseRoute]) -> Iterator[Any]:
    """The API routes of ``routes`` as the OpenAPI generator sees them: from FastAPI 0.16x on,
    included routers are expanded lazily (``fastapi.routing.iter_route_contexts``) into
    route contexts that carry the prefix and the router's dependencies; before it, the
    ``APIRoute``s themselves. Each has ``path_format``, ``methods``, ``dependant`` and
    ``include_in_schema``."""
    iter_contexts = getattr(routing, "iter_route_contexts", None)
    if iter_contexts is None:
        yield from (route for route in routes if isinstance(route, APIRoute))
        return
    for context in iter_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def derived_statuses(route: Any, operation: dict[str, Any]) -> set[int]:
    """The error statuses ``route`` can answer with that follow from its shape: those of its
    registered dependencies (:data:`api.problems.DEPENDENCY_PROBLEMS`), 413 + 422 with a
    request body, 422 with any parameter (``operation``: its OpenAPI operation object)."""
    statuses: set[int] = set()
    for call in _dependency_calls(route.dependant):
        try:
            statuses.update(DEPENDENCY_PROBLEMS.get(call, ()))
        except TypeError:  # an unhashable callable (a dependency object): registers nothing
            continue
    if "requestBody" in operation:
        statuses.update((413, 422))
    if operation.get("parameters"):
        statuses.add(422)
    return statuses


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def document_problems(schema: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Add the problem schema and every operation's problem responses (see the module
    docstring) to the OpenAPI ``schema`` of ``routes``, in place; returns ``schema``.
    Responses a route declares itself are kept, FastAPI's default 422 is replaced, and
    FastAPI's validation error schemas are dropped once nothing refers to them."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    problem["description"] = (
        "Every error response (RFC 9457, `application/problem+json`). `type` is "
        "`/problems/<slug>`: GET it on this API for the problem's documentation "
        "(docs/errcodes.md); `errCode` as in docs/errcodes.md. Problems may carry more members "
        "(`errors` of a 422 `validation`, `kind`, `field`, `checks`, ...)."
    )
    components["Problem"] = problem
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        path_item = schema.get("paths", {}).get(route.path_format, {})
        for method in sorted(route.methods):
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in derived_statuses(route, operation):
                key = str(status)
                if key not in responses or _is_fastapi_validation(responses[key]):
                    responses[key] = openapi_problem(status)
            operation["responses"] = dict(sorted(responses.items()))
    for name in _FASTAPI_VALIDATION_SCHEMAS:  # HTTPValidationError first: it refers to the other
        definition = components.pop(name, None)
        if definition is not None and f'"#/components/schemas/{name}"' in json.dumps(schema):
            components[name] = definition
    return schema


def install(app: FastAPI) -> None:
    """Wrap ``app.openapi`` with :func:`document_problems` (once per document FastAPI
    generates: it regenerates after a route change), add the documentation pages (``app``
    made by :func:`docs_app`) and the ``/problems`` pages. Call
    before or after the routers are included: the document is built on first request."""
    generate = app.openapi
    done: list[dict[str, Any]] = []  # the last document completed (FastAPI makes a new one per route change)

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not done or done[0] is not schema:
            document_problems(schema, app.routes)
            done[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    _add_doc_pages(app)
    app.include_router(router)


# ---------------------------------------------------------------- /problems pages


def errcodes_path() -> Path | None:
    """``docs/errcodes.md`` of the source tree (a clone, an editable install), else of the
    working directory (the image: ``WORKDIR /app`` holds the repository); None if neither."""
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        path = base / "docs" / ERRCODES_NAME
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class ErrcodesDoc:
    """``docs/errcodes.md`` read once: the whole text and the markdown of each problem
    slug's section (``### <slug>`` up to the next heading of level 1-3)."""

    text: str
    sections: dict[str, str]


def parse_sections(text: str) -> dict[str, str]:
    """Slug -> markdown of its section, for every ``### <slug>`` heading of ``text``
    (backticks around the slug allowed); a section ends at the next ``#``/``##``/``###``."""
    sections: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "# end"]:
        level = len(line) - len(line.lstrip("#"))
        if 1 <= level <= 3 and line[level : level + 1] == " ":
            if current is not None:
                sections[current] = "\n".join(lines).strip() + "\n"
            current = line[4:].strip().strip("`") if level == 3 else None
            lines = [line] if current is not None else []
        elif current is not None:
            lines.append(line)
    return sections


@cache
def errcodes() -> ErrcodesDoc:
    """The parsed ``docs/errcodes.md`` (read on first use). Raises ``FileNotFoundError``
    when :func:`errcodes_path` finds none."""
    path = errcodes_path()
    if path is None:
        raise FileNotFoundError(f"docs/{ERRCODES_NAME} not found")
    text = path.read_text(encoding="utf-8")
    return ErrcodesDoc(text, parse_sections(text))


_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(text: str) -> str:
    """``text`` (CommonMark + tables, raw HTML escaped) as HTML; level-3 headings get the
    ``id`` of their text (a slug), so ``/problems#not-found`` finds its section, level-2
    ones their text in lower case with ``-`` between words (``#problem-types``)."""
    tokens = _md.parse(text)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in ("h2", "h3") and i + 1 < len(tokens):
            heading = tokens[i + 1].content.strip("`")
            token.attrSet("id", heading if token.tag == "h3" else re.sub(r"[^a-z0-9]+", "-", heading.lower()))
    return str(_md.renderer.render(tokens, _md.options, {}))


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 58rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d2430; }
code { background: #eef1f5; padding: 0 .25em; border-radius: 3px; }
table { border-collapse: collapse; font-size: 14px; } th, td { border: 1px solid #ccd3dc;
padding: .3em .5em; vertical-align: top; } nav { margin-bottom: 1.5rem; }
"""

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, body_html: str) -> HTMLResponse:
    nav = (
        f'<nav><a href="{PROBLEM_BASE.rstrip("/")}">All problem types and errCodes</a> · '
        '<a href="/docs">API (Swagger UI)</a> · <a href="/redoc">API (ReDoc)</a></nav>'
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style>'
        f"</head><body>{nav}<main>{body_html}</main></body></html>"
    )
    return HTMLResponse(page, headers=_HEADERS)


router = APIRouter(tags=["problems"], include_in_schema=False)


@router.get(PROBLEM_BASE.rstrip("/"), response_class=HTMLResponse)
async def problems_index() -> HTMLResponse:
    """``docs/errcodes.md`` as a page: the errCode table and every problem type's section."""
    try:
        doc = errcodes()
    except FileNotFoundError as e:
        raise not_found("document", ERRCODES_NAME) from e
    return _page("ringflow errCodes and problem types", render_markdown(doc.text))


@router.get(PROBLEM_BASE + "{slug}", response_class=HTMLResponse)
async def problem_page(slug: str) -> HTMLResponse:
    """The documentation of problem type ``/problems/<slug>``: its section of
    ``docs/errcodes.md``. 404 ``not-found`` problem for a slug without one."""
    try:
        section = errcodes().sections.get(slug)
    except FileNotFoundError as e:
        raise not_found("document", ERRCODES_NAME) from e
    if section is None:
        raise not_found("problem type", slug)
    return _page(f"ringflow problem: {slug}", render_markdown(section))
