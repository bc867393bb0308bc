"""Tenants and API keys (issue 9): ``/v1/tenants`` (platform administrator, scope
``tenants:admin``) and ``/v1/keys`` (a tenant's own keys, scope ``keys:admin``).

- ``POST /v1/tenants`` ``{id, name}`` creates a tenant and its default site (409
  ``tenant-exists``); ``GET /v1/tenants``, ``GET /v1/tenants/{id}``;
  ``POST /v1/tenants/{id}/disable`` / ``enable`` (a disabled tenant's keys and party tokens are
  refused with 401; its data stays).
- ``POST /v1/keys`` ``{name, scopes, expires_in_s}`` creates a key of the caller's tenant
  (``tenant_id``: another tenant's, platform administrator only) and answers the key ONCE
  (only its hash is stored); a key never grants a scope its creator lacks (403 ``forbidden``).
  ``GET /v1/keys`` lists them (never the secret); ``DELETE /v1/keys/{id}`` revokes one (requests
  with it are 401 from then on; other keys go on: rotation without downtime).

Another tenant's key is 404 ``not-found``, as an unknown one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from api.deps import PoolDep, Principal, check_scopes, require_scopes
from api.problems import Problem, not_found, problem_responses
from ringflow.contracts.common import Contract, Identifier
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import Scope, TenantId
from store import tenants as store

router = APIRouter(prefix="/v1", tags=["tenants"])

PlatformAdmin = Annotated[Principal, Depends(require_scopes(Scope.TENANTS_ADMIN))]
KeysAdmin = Annotated[Principal, Depends(require_scopes(Scope.KEYS_ADMIN))]


class TenantIn(Contract):
    """A new tenant: ``id`` (``[a-z0-9-]``, 1-64) and a display name."""

    id: TenantId
    name: str = Field(..., min_length=1, max_length=128)


class TenantView(Contract):
    """A tenant; ``disabled_at`` None while enabled."""

    id: str
    name: str
    disabled_at: datetime | None = None
    created_at: datetime


class KeyCreate(Contract):
    """A new API key: its ``scopes`` (at least one), a ``name`` to recognise it, an optional
    lifetime ``expires_in_s`` (seconds, up to 10 years; absent: no expiry) and, for a platform
    administrator, the ``tenant_id`` it belongs to (default: the caller's tenant)."""

    scopes: list[Scope] = Field(..., min_length=1, max_length=len(Scope))
    name: str = Field("", max_length=128)
    expires_in_s: int | None = Field(None, ge=1, le=10 * 366 * 86400)
    tenant_id: TenantId | None = None


class KeyView(Contract):
    """A stored key, never its secret. Times UTC."""

    id: str
    tenant_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class KeyCreated(KeyView):
    """``POST /v1/keys``: the key itself (``key``, shown this once) and its stored view."""

    key: str


def _tenant(t: store.Tenant) -> TenantView:
    return TenantView(id=t.id, name=t.name, disabled_at=t.disabled_at, created_at=t.created_at)


def _key(k: store.ApiKey) -> KeyView:
    return KeyView(
        id=k.id,
        tenant_id=k.tenant_id,
        name=k.name,
        scopes=list(k.scopes),
        created_at=k.created_at,
        expires_at=k.expires_at,
        last_used_at=k.last_used_at,
        revoked_at=k.revoked_at,
    )


# ---------------------------------------------------------------- tenants


@router.post(
    "/tenants",
    status_code=201,
    responses=problem_responses(descriptions={409: "``tenant-exists``: a tenant with this id exists"}),
)
async def create_tenant(body: TenantIn, who: PlatformAdmin, pool: PoolDep) -> TenantView:
    """Create a tenant and its default site (201); 409 ``tenant-exists``."""
    try:
        return _tenant(await store.create_tenant(pool, body.id, body.name))
    except store.TenantExists as e:
        raise Problem(409, "tenant-exists", "Tenant already exists", str(e)) from e


@router.get("/tenants")
async def list_tenants(who: PlatformAdmin, pool: PoolDep) -> list[TenantView]:
    """Every tenant, by id."""
    return [_tenant(t) for t in await store.list_tenants(pool)]


@router.get("/tenants/{tenant_id}", responses=problem_responses(404))
async def get_tenant(tenant_id: TenantId, who: PlatformAdmin, pool: PoolDep) -> TenantView:
    """One tenant; 404 if unknown."""
    try:
        return _tenant(await store.get_tenant(pool, tenant_id))
    except store.UnknownTenant as e:
        raise not_found("tenant", tenant_id) from e


async def _set_disabled(pool: PoolDep, tenant_id: str, disabled: bool) -> TenantView:
    try:
        return _tenant(await store.set_disabled(pool, tenant_id, disabled))
    except store.UnknownTenant as e:
        raise not_found("tenant", tenant_id) from e
    except store.TenantError as e:  # the default tenant
        raise Problem(422, "validation", "Invalid request", str(e), ErrCode.VALIDATION) from e


@router.post("/tenants/{tenant_id}/disable", responses=problem_responses(404))
async def disable_tenant(tenant_id: TenantId, who: PlatformAdmin, pool: PoolDep) -> TenantView:
    """Disable the tenant: its keys and party tokens are refused (401; party tokens within
    ``api.deps.TENANT_STATE_TTL_S`` seconds), its data stays. 404 if unknown; 422
    ``validation`` for the default tenant (the bootstrap key's, never disabled)."""
    return await _set_disabled(pool, tenant_id, True)


@router.post("/tenants/{tenant_id}/enable", responses=problem_responses(404))
async def enable_tenant(tenant_id: TenantId, who: PlatformAdmin, pool: PoolDep) -> TenantView:
    """Enable the tenant again. 404 if unknown."""
    return await _set_disabled(pool, tenant_id, False)


# ---------------------------------------------------------------- keys


def _target_tenant(who: Principal, tenant_id: str | None) -> str:
    """The tenant a key request is about: the caller's, or any for a platform administrator
    (another tenant's is 404 for everyone else: its existence is not leaked)."""
    if tenant_id is None or tenant_id == who.tenant_id:
        return who.tenant_id
    if not who.platform_admin:
        raise not_found("tenant", tenant_id)
    return tenant_id


@router.post("/keys", status_code=201, responses=problem_responses(403, 404))
async def create_key(body: KeyCreate, who: KeysAdmin, pool: PoolDep) -> KeyCreated:
    """Create an API key (201); the answer's ``key`` is shown this once. 403 ``forbidden``
    when a scope asked for is not the caller's own; 404 for an unknown tenant."""
    tenant = _target_tenant(who, body.tenant_id)
    check_scopes(who, body.scopes)
    expires = datetime.now(UTC) + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    try:
        key, secret = await store.create_key(pool, tenant, body.scopes, body.name, expires)
    except store.UnknownTenant as e:
        raise not_found("tenant", tenant) from e
    return KeyCreated(key=secret, **_key(key).model_dump())


@router.get("/keys")
async def list_keys(who: KeysAdmin, pool: PoolDep, tenant_id: TenantId | None = None) -> list[KeyView]:
    """The keys of the caller's tenant (a platform administrator: of ``tenant_id``), revoked
    ones included, oldest first."""
    return [_key(k) for k in await store.list_keys(pool, _target_tenant(who, tenant_id))]


@router.delete("/keys/{key_id}", responses=problem_responses(404))
async def revoke_key(key_id: Identifier, who: KeysAdmin, pool: PoolDep, response: Response) -> KeyView:
    """Revoke the key: requests with it are 401 from now on (other keys are unaffected).
    Revoking again changes nothing. 404 for an unknown key or another tenant's (a platform
    administrator may revoke any)."""
    try:
        key = await store.revoke_key(pool, key_id, None if who.platform_admin else who.tenant_id)
    except store.UnknownTenant as e:
        raise not_found("key", key_id) from e
    response.headers["Cache-Control"] = "no-store"
    return _key(key)
