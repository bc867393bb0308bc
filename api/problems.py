"""RFC 9457 ``application/problem+json`` errors with stable types and errCodes.

Every error the API returns goes through :class:`Problem`; FastAPI's
validation errors become 422 ``validation`` problems, unknown exceptions a 500
``internal`` problem (a bug: tests assert there are none).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringflow.contracts.errors import ErrCode, problem_type

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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
