"""Dependencies as ``Annotated`` aliases (one module, as in the full-stack FastAPI template)."""

from __future__ import annotations

import hmac
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api import tokens
from api.problems import Problem
from ringflow.contracts.common import Party
from ringflow.contracts.errors import ErrCode
from ringflow.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def _temporal(request: Request) -> Client:
    return request.app.state.temporal


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
TemporalDep = Annotated[Client, Depends(_temporal)]

_bearer = HTTPBearer(auto_error=False)


def unauthenticated(detail: str, err_code: ErrCode = ErrCode.UNAUTHENTICATED) -> Problem:
    """401 ``unauthenticated`` problem with a ``WWW-Authenticate`` header."""
    return Problem(
        401, "unauthenticated", "Not authenticated", detail, err_code, headers={"WWW-Authenticate": "Bearer"}
    )


def require_api_key(settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Backend endpoints: ``X-API-Key`` must equal settings ``api_key`` (constant-time compare)."""
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
        raise unauthenticated("missing or wrong X-API-Key")


def party_from_token(token: str, settings: Settings) -> Party:
    """The party of a bearer token; 401 problem when invalid (errCode 13 when expired)."""
    try:
        return tokens.verify(token, settings.token_secret)
    except tokens.InvalidToken as e:
        raise unauthenticated(
            str(e), ErrCode.VOIP_TOKEN_INVALID if e.expired else ErrCode.UNAUTHENTICATED
        ) from e


def _party(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Party:
    if creds is None:
        raise unauthenticated("missing bearer token")
    return party_from_token(creds.credentials, settings)


BackendAuth = Depends(require_api_key)
"""Use as ``dependencies=[BackendAuth]`` on backend-only routes."""

PartyDep = Annotated[Party, Depends(_party)]
"""The calling device or user, from its bearer token."""
