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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

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
from store import tenants as tenant_store

TOUCH_EVERY_S = 60.0
"""A stored key's ``last_used_at`` is written at most once per this many seconds per API process."""

TENANT_STATE_TTL_S = 5.0
"""How long an API process trusts what it read about a tenant being enabled (party tokens of a
tenant disabled meanwhile are refused at most this many seconds later)."""


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


@dataclass(frozen=True, slots=True)
class PartyIdentity:
    """Who presents a party token: ``party`` of tenant ``tenant_id`` (issue 9: the token
    carries its tenant; every query of the request is filtered by it)."""

    tenant_id: str
    party: Party


def party_from_token(token: str, settings: Settings) -> Party:
    """The party of a bearer token; 401 problem when invalid (errCode 13 when expired).
    See :func:`identity_from_token` for its tenant."""
    return identity_from_token(token, settings).party


def identity_from_token(token: str, settings: Settings) -> PartyIdentity:
    """The :class:`PartyIdentity` of a bearer token (signature and expiry checked, not the
    tenant's state: :func:`party_identity` does that); 401 problem when invalid (errCode 13 when
    expired)."""
    try:
        tenant_id, party = tokens.verify_identity(token, settings.token_secret)
    except tokens.InvalidToken as e:
        raise unauthenticated(
            str(e), ErrCode.VOIP_TOKEN_INVALID if e.expired else ErrCode.UNAUTHENTICATED
        ) from e
    return PartyIdentity(tenant_id, party)


async def tenant_enabled(state: Any, tenant_id: str) -> bool:
    """True when tenant ``tenant_id`` exists and is not disabled, read through ``state.pool``
    (an app's ``app.state``) at most every :data:`TENANT_STATE_TTL_S` seconds per tenant. The
    default tenant (the embedded stack's, the bootstrap key's) is always enabled: no read."""
    if tenant_id == DEFAULT_TENANT:
        return True
    cache: dict[str, tuple[float, bool]] | None = getattr(state, "tenant_enabled", None)
    if cache is None:
        cache = state.tenant_enabled = {}
    now = time.monotonic()
    hit = cache.get(tenant_id)
    if hit is not None and now - hit[0] < TENANT_STATE_TTL_S:
        return hit[1]
    enabled = await tenant_store.tenant_enabled(state.pool, tenant_id)
    cache[tenant_id] = (now, enabled)
    return enabled


async def checked_identity(state: Any, token: str) -> PartyIdentity:
    """:func:`identity_from_token`, then 401 when the token's tenant is disabled or gone."""
    ident = identity_from_token(token, state.settings)
    if not await tenant_enabled(state, ident.tenant_id):
        raise unauthenticated("the token's tenant is disabled")
    return ident


@raises(401)
async def party_identity(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(party_bearer)]
) -> PartyIdentity:
    """The bearer token's :class:`PartyIdentity`; 401 when missing, invalid, expired (errCode 13)
    or of a disabled tenant."""
    if creds is None:
        raise unauthenticated("missing bearer token")
    return await checked_identity(request.app.state, creds.credentials)


PartyIdentityDep = Annotated[PartyIdentity, Depends(party_identity)]
"""The calling device or user and its tenant, from its bearer token."""


def _party(ident: PartyIdentityDep) -> Party:
    return ident.party


BackendAuth = Depends(require_api_key)
"""The media bridge's control API (``media/server.py``): only the bootstrap key. API routes
use :func:`require_scopes` (any tenant's key with the scopes)."""

PartyDep = Annotated[Party, Depends(_party)]
"""The calling device or user, from its bearer token (its tenant: :data:`PartyIdentityDep`)."""


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


async def principal_of_key(state: Any, x_api_key: str | None) -> Principal:
    """The :class:`Principal` of an ``X-API-Key`` value, with ``state`` an app's ``app.state``
    (settings, pool). The bootstrap key (settings ``api_key``, constant-time compare) is the
    default tenant's with every scope; any other key is looked up by its id and its hash
    (``store/tenants.py``). 401 ``unauthenticated`` (errCode 1011) when the key is missing,
    unknown, revoked, expired or of a disabled tenant. A stored key's ``last_used_at`` is
    written at most every :data:`TOUCH_EVERY_S` seconds per process (not a write per request)."""
    if x_api_key is None:
        raise unauthenticated("missing X-API-Key")
    settings: Settings = state.settings
    if hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
        return Principal(tenant_id=DEFAULT_TENANT, scopes=ALL_SCOPES)
    if tenant_store.parse_key(x_api_key) is None:  # not one of ours: no database read
        raise unauthenticated("missing or wrong X-API-Key")
    match = await tenant_store.authenticate(state.pool, x_api_key)
    if match is None:
        raise unauthenticated("missing or wrong X-API-Key")
    if match.expired:
        raise unauthenticated("this API key has expired")
    if match.tenant_disabled:
        raise unauthenticated("this API key's tenant is disabled")
    key = match.key
    touched: dict[str, float] | None = getattr(state, "key_touched", None)
    if touched is None:
        touched = state.key_touched = {}
    now = time.monotonic()
    if now - touched.get(key.id, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
        touched[key.id] = now
        await tenant_store.touch_key(state.pool, key.id)
    scopes = frozenset(Scope(s) for s in key.scopes if s in Scope._value2member_map_)
    return Principal(tenant_id=key.tenant_id, scopes=scopes, key_id=key.id)


@raises(401)
async def principal(
    request: Request, x_api_key: Annotated[str | None, Depends(api_key_header)] = None
) -> Principal:
    """The :class:`Principal` of ``X-API-Key`` (:func:`principal_of_key`); 401
    ``unauthenticated`` (errCode 1011) when the key is missing, unknown, revoked, expired or of
    a disabled tenant."""
    return await principal_of_key(request.app.state, x_api_key)


PrincipalDep = Annotated[Principal, Depends(principal)]
"""The backend's :class:`Principal`, from its ``X-API-Key``."""


def require_scopes(*scopes: Scope) -> Callable[..., Principal]:
    """A dependency: the :class:`Principal`, or 403 ``forbidden`` (errCode 1016) when its key lacks one of
    ``scopes``. Use as ``who: Annotated[Principal, Depends(require_scopes(Scope.CALLS_WRITE))]``."""

    @raises(401, 403)
    def dependency(who: PrincipalDep) -> Principal:
        check_scopes(who, scopes)
        return who

    return dependency


def check_scopes(who: Principal, scopes: tuple[Scope, ...] | list[Scope]) -> None:
    """403 ``forbidden`` (errCode 1016) unless ``who`` has every one of ``scopes``."""
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


@dataclass(frozen=True, slots=True)
class Access:
    """Who calls a route open to the backend and to parties: ``tenant_id`` filters every query;
    ``party`` is the token's party, None for the backend (an API key with the route's scopes)."""

    tenant_id: str
    party: Party | None


def backend_or_party(*scopes: Scope) -> Callable[..., Any]:
    """A dependency for routes open to both schemes: the bearer token's party when one is
    given, else the backend's ``X-API-Key`` with ``scopes`` (403 ``forbidden`` without them);
    returns an :class:`Access`. 401 ``unauthenticated`` when neither is valid."""

    @raises(401, 403)
    async def dependency(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(party_bearer)],
        x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
    ) -> Access:
        state = request.app.state
        if creds is not None:
            ident = await checked_identity(state, creds.credentials)
            return Access(ident.tenant_id, ident.party)
        if x_api_key is not None:
            who = await principal_of_key(state, x_api_key)
            check_scopes(who, scopes)
            return Access(who.tenant_id, None)
        raise unauthenticated("missing X-API-Key or bearer token")

    return dependency
