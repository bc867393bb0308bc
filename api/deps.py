"""Dependencies as ``Annotated`` aliases (one module, as in the full-stack FastAPI template).

Authentication is declared with FastAPI's security classes, so the OpenAPI document lists
two schemes and each route the one(s) it accepts (Swagger UI's "Authorize" offers both):
``BackendApiKey`` (:data:`api_key_header`, header ``X-API-Key``, the property-management
backend) and ``PartyToken`` (:data:`party_bearer`, ``Authorization: Bearer``, a device or
resident app). Both are read with ``auto_error=False``: a missing or wrong credential is our
own 401 ``unauthenticated`` problem, never FastAPI's 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api import tokens
from api.problems import Problem, raises
from ringflow.contracts.common import Party
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import ALL_SCOPES, DEFAULT_TENANT, Scope
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

api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="BackendApiKey",
    description="The backend's API key (setting ``RINGFLOW_API_KEY``): directory, tokens, any call.",
    auto_error=False,
)
"""Security scheme ``BackendApiKey``: the ``X-API-Key`` header, or None when absent or empty."""

party_bearer = HTTPBearer(
    scheme_name="PartyToken",
    bearerFormat="JWT",
    description="A party token (device or user) from ``POST /v1/tokens``: that party's own calls.",
    auto_error=False,
)
"""Security scheme ``PartyToken``: ``Authorization: Bearer <token>``, or None when absent."""


def unauthenticated(detail: str, err_code: ErrCode = ErrCode.UNAUTHENTICATED) -> Problem:
    """401 ``unauthenticated`` problem with a ``WWW-Authenticate`` header."""
    return Problem(
        401, "unauthenticated", "Not authenticated", detail, err_code, headers={"WWW-Authenticate": "Bearer"}
    )


@raises(401)
def require_api_key(
    settings: SettingsDep, x_api_key: Annotated[str | None, Depends(api_key_header)] = None
) -> None:
    """Backend endpoints: ``X-API-Key`` must equal settings ``api_key`` (constant-time compare),
    else 401 ``unauthenticated`` (errCode 1011)."""
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


@raises(401)
def _party(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(party_bearer)]
) -> Party:
    if creds is None:
        raise unauthenticated("missing bearer token")
    return party_from_token(creds.credentials, settings)


@raises(401)
def backend_or_party(
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(party_bearer)],
    x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> Party | None:
    """The party of the bearer token when one is given, else None for the backend
    (``X-API-Key``); 401 ``unauthenticated`` when neither is valid."""
    if creds is not None:
        return party_from_token(creds.credentials, settings)
    if x_api_key is not None:
        require_api_key(settings, x_api_key)
        return None
    raise unauthenticated("missing X-API-Key or bearer token")


BackendAuth = Depends(require_api_key)
"""Use as ``dependencies=[BackendAuth]`` on backend-only routes."""

PartyDep = Annotated[Party, Depends(_party)]
"""The calling device or user, from its bearer token."""

BackendOrParty = Annotated[Party | None, Depends(backend_or_party)]
"""Routes open to the backend (None) and to a party (its :class:`Party`): either scheme."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls a backend route: the API key's tenant and scopes (issue 9).

    ``tenant_id``: every query of the request is filtered by it; ``scopes``: what the key may
    do; ``key_id``: the stored key's id, None for the bootstrap key ``RINGFLOW_API_KEY``
    (tenant :data:`~ringflow.contracts.tenancy.DEFAULT_TENANT`, every scope).
    """

    tenant_id: str
    scopes: frozenset[Scope]
    key_id: str | None = None

    @property
    def platform_admin(self) -> bool:
        """May manage tenants (scope ``tenants:admin``)."""
        return Scope.TENANTS_ADMIN in self.scopes


@raises(401)
def principal(
    settings: SettingsDep, x_api_key: Annotated[str | None, Depends(api_key_header)] = None
) -> Principal:
    """The :class:`Principal` of ``X-API-Key``; 401 ``unauthenticated`` (errCode 1011) when the
    key is missing or unknown. Today only the bootstrap key exists."""
    require_api_key(settings, x_api_key)
    return Principal(tenant_id=DEFAULT_TENANT, scopes=ALL_SCOPES)


PrincipalDep = Annotated[Principal, Depends(principal)]
"""The backend's :class:`Principal`, from its ``X-API-Key``."""


def require_scopes(*scopes: Scope) -> Callable[..., Principal]:
    """A dependency: the :class:`Principal`, or 403 ``forbidden`` (errCode 1016) when its key lacks one of
    ``scopes``. Use as ``who: Annotated[Principal, Depends(require_scopes(Scope.CALLS_WRITE))]``."""

    @raises(401, 403)
    def dependency(who: PrincipalDep) -> Principal:
        missing = [s.value for s in scopes if s not in who.scopes]
        if missing:
            raise Problem(
                403,
                "forbidden",
                "Missing scope",
                f"this API key lacks the scope(s) {', '.join(missing)}",
                ErrCode.FORBIDDEN,
                missing_scopes=missing,
            )
        return who

    return dependency
