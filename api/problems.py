"""RFC 9457 ``application/problem+json`` errors with stable types and errCodes.

Every error the API returns goes through :class:`Problem`; FastAPI's
validation errors become 422 ``validation`` problems, unknown exceptions a 500
``internal`` problem (a bug: tests assert there are none).

The OpenAPI side: :class:`ProblemDocument` is the one schema of every error response
(``#/components/schemas/Problem``), :func:`problem_responses` declares a route's error
statuses, and :func:`raises` declares those of a dependency once (``api/deps.py``), so
``api/docs.py`` adds them to every route that depends on it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringflow.contracts.errors import ErrCode, problem_type

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
"""Where the OpenAPI document keeps :class:`ProblemDocument` (``api/docs.py`` puts it there)."""


class ValidationIssue(BaseModel):
    """One failed check of a 422 ``validation`` problem (FastAPI's request validation)."""

    loc: list[str | int] = Field(
        description="where: ``body``/``query``/``path``/``header``, then the field path"
    )
    msg: str = Field(description="what is wrong, for people")
    type: str = Field(description="pydantic's error type, e.g. ``missing``, ``string_too_long``")


class ProblemDocument(BaseModel):
    """An error response body, ``application/problem+json`` (RFC 9457): ``type`` names the
    problem (``/problems/<slug>``, a page of docs/errcodes.md on this API), ``errCode`` is
    the reference's where one applies (docs/errcodes.md), and a problem may carry more
    members (``kind``, ``field``, ``errors``, ...). Only used to document the schema: the
    API builds the body with :meth:`Problem.body`."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str = Field(
        description="``/problems/<slug>``, resolved against this response's URL: "
        "GET it for the problem's documentation"
    )
    title: str = Field(description="short summary, the same for every occurrence of the type")
    status: int = Field(description="the HTTP status code", ge=400, le=599)
    detail: str | None = Field(None, description="what went wrong in this occurrence")
    instance: str | None = Field(None, description="the request path that failed")
    errCode: int | None = Field(
        None, description="errCode (docs/errcodes.md), the reference's where it has one"
    )
    errors: list[ValidationIssue] | None = Field(None, description="422 ``validation``: every failed check")


_DESCRIPTIONS: dict[int, str] = {
    401: "Not authenticated (``unauthenticated``, errCode 1011; 13 for an expired party token)",
    403: "Forbidden: not a party of the call (``not-a-party``, 1007) or the caller's VoIP token is "
    "invalid (``voip-token-invalid``, 13)",
    404: "Unknown resource (``not-found``, errCode 1008)",
    409: "Conflict with the call's state (``call-not-active``, errCode 1006; ``answered-by-another``, "
    "1005; ``action-settled``, 1015; ``action-rejected``)",
    413: "Request body over ``RINGFLOW_MAX_BODY_BYTES`` (``payload-too-large``, errCode 1013)",
    422: "Invalid request (``validation``, errCode 1010, with ``errors``; ``unknown-reference``, "
    "``unknown-action``, ``invalid-sdp``)",
    429: "Too many new calls (``overloaded``, errCode 1012): retry after ``Retry-After`` seconds",
    503: "A service the request needs did not answer (``unavailable``, ``media-unavailable``, "
    "``temporal-unavailable``): retry later",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the authentication scheme (``Bearer``)",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds to wait before a new call is admitted (RFC 9110 section 10.2.3)",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds to wait before retrying (when the call did not answer)",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _example(
    slug: str, status: int, title: str, detail: str, instance: str | None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
    if instance:
        doc["instance"] = instance
    return doc | extra


_EXAMPLES: dict[str, dict[str, Any]] = {
    "unauthenticated": _example(
        "unauthenticated", 401, "Not authenticated", "missing or wrong X-API-Key", "/v1/devices", errCode=1011
    ),
    "not-a-party": _example(
        "not-a-party",
        403,
        "Not a party of this call",
        "user:dave is not in call 'press-0001'",
        "/v1/calls/press-0001/answer",
        errCode=1007,
    ),
    "not-found": _example(
        "not-found",
        404,
        "Unknown call",
        "no call 'press-0001'",
        "/v1/calls/press-0001",
        errCode=1008,
        kind="call",
    ),
    "call-not-active": _example(
        "call-not-active",
        409,
        "The call is not in a phase for this action",
        "call 'press-0001' has ended",
        "/v1/calls/press-0001/answer",
        errCode=1006,
    ),
    "idempotency-conflict": _example(
        "idempotency-conflict",
        409,
        "Idempotency-Key already used",
        "call 'press-0001' was placed with another request body",
        "/v1/calls",
        errCode=1009,
    ),
    "device-exists": _example(
        "device-exists", 409, "Device already exists", "device 'LOBBY-1' already exists", "/v1/devices"
    ),
    "payload-too-large": _example(
        "payload-too-large", 413, "Request body too large", "at most 65536 bytes", None, errCode=1013
    ),
    "validation": _example(
        "validation",
        422,
        "Invalid request",
        "the request does not match the schema",
        "/v1/calls",
        errCode=1010,
        errors=[{"loc": ["body", "caller", "id"], "msg": "Field required", "type": "missing"}],
    ),
    "overloaded": _example(
        "overloaded",
        429,
        "Too many new calls",
        "more new calls than this API admits; retry in 1 s",
        "/v1/calls",
        errCode=1012,
    ),
    "unavailable": _example(
        "unavailable",
        503,
        "The call did not respond",
        "no answer from call 'press-0001' within 30 s",
        "/v1/calls/press-0001/answer",
        errCode=1012,
    ),
    "not-ready": _example(
        "not-ready",
        503,
        "Not ready",
        "postgres: ConnectionRefusedError: [Errno 111] Connection refused",
        "/readyz",
        checks={
            "postgres": {"ok": False, "seconds": 0.001, "error": "ConnectionRefusedError: ..."},
            "temporal": {"ok": True, "seconds": 0.004},
        },
    ),
}
"""An example problem document per slug, shown by Swagger UI and ReDoc."""

_SLUG_IN_TEXT = re.compile(r"``([a-z][a-z-]*)``")


def openapi_problem(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of an error ``status`` (400-599): the shared problem
    schema under ``application/problem+json``, a description (``description`` or the
    status's usual one), an example (of the first slug in the description that has one in
    :data:`_EXAMPLES` and this status) and the headers the API sends with it
    (``WWW-Authenticate`` on 401, ``Retry-After`` on 429/503)."""
    text = description or _DESCRIPTIONS.get(status, "Error")
    media: dict[str, Any] = {"schema": {"$ref": PROBLEM_SCHEMA_REF}}
    for slug in _SLUG_IN_TEXT.findall(text):
        if slug in _EXAMPLES and _EXAMPLES[slug]["status"] == status:
            media["example"] = _EXAMPLES[slug]
            break
    doc: dict[str, Any] = {"description": text, "content": {PROBLEM_JSON: media}}
    if status in _HEADERS:
        doc["headers"] = _HEADERS[status]
    return doc


def problem_responses(
    *statuses: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: :func:`openapi_problem` for each of ``statuses`` and of
    ``descriptions`` (status -> the route's own description of it). 401, 413 and 422 need
    not be listed: ``api/docs.py`` derives them from the route's dependencies and body."""
    described = descriptions or {}
    return {s: openapi_problem(s, described.get(s)) for s in sorted({*statuses, *described})}


DEPENDENCY_PROBLEMS: dict[Callable[..., Any], tuple[int, ...]] = {}
"""Error statuses each registered dependency can answer with (see :func:`raises`)."""

F = TypeVar("F", bound=Callable[..., Any])


def raises(*statuses: int) -> Callable[[F], F]:
    """Decorator: dependency ``fn`` can answer with problems of ``statuses``; every route
    that depends on it (directly or through another dependency) documents them
    (``api/docs.py``). Returns ``fn`` unchanged."""

    def register(fn: F) -> F:
        DEPENDENCY_PROBLEMS[fn] = statuses
        return fn

    return register


class Problem(Exception):
    """An error response: ``status`` (HTTP), ``slug`` (stable type suffix), ``title``,
    ``detail``, the reference's ``err_code`` where one applies, extra members."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        err_code: ErrCode | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.err_code = err_code
        self.headers = headers
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {"type": problem_type(self.slug), "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        if self.err_code is not None:
            doc["errCode"] = int(self.err_code)
        doc.update(self.extra)
        return doc


def not_found(kind: str, ident: str) -> Problem:
    """404 ``not-found`` for an unknown ``kind`` (device, unit, user, group, call)."""
    return Problem(
        404, "not-found", f"Unknown {kind}", f"no {kind} {ident!r}", ErrCode.UNKNOWN_RESOURCE, kind=kind
    )


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    """Render ``problem`` as a ``application/problem+json`` response."""
    return JSONResponse(
        problem.body(str(request.url.path) if request else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return problem_response(
            Problem(
                422,
                "validation",
                "Invalid request",
                "the request does not match the schema",
                ErrCode.VALIDATION,
                errors=errors,
            ),
            request,
        )

    @app.exception_handler(asyncpg.DataError)
    async def _data(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # SQLSTATE class 22: a value PostgreSQL cannot store (a NUL character in text or
        # jsonb, a number out of range) that the request models let through. The
        # transaction rolled back, so nothing was written: the client's error, not ours.
        return problem_response(
            Problem(422, "validation", "Invalid request", f"value not accepted: {exc}", ErrCode.VALIDATION),
            request,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated"}.get(
            exc.status_code, "http"
        )
        return problem_response(Problem(exc.status_code, slug, str(exc.detail)), request)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(Problem(500, "internal", "Internal error"), request)
