"""Directory REST API under ``/v1`` (backend only, ``X-API-Key``): devices, device groups,
users, units, authorizations. Reads need the key's scope ``directory:read``, writes
``directory:write``; everything is the key's tenant's (another tenant's resource is 404, as an
unknown one). Units are per site: ``?site_id=`` (default ``default``) names the site of a unit
in the path.

Each request runs in one transaction (``store.db.transaction``): a request that
fails writes nothing. Errors are problems (api/problems.py): 404 ``not-found``
for an unknown resource in the path, 422 ``unknown-reference`` when the body
names one that does not exist (a resident that is not a user, a missing group),
422 ``validation`` for a malformed body, 409 with a stable slug for a conflict
(``device-exists``, ``group-exists``, ``user-exists``, ``unit-exists``,
``device-in-another-group``, ``user-in-use``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Response

from api.deps import PoolDep, Principal, TemporalDep, require_scopes
from api.problems import Problem, not_found, problem_responses
from api.replan import notify_plan_changed
from ringflow.contracts.common import Identifier
from ringflow.contracts.directory import (
    Authorization,
    AuthorizationIn,
    AuthorizationTarget,
    Device,
    DeviceGroup,
    DeviceGroupIn,
    DeviceIn,
    DevicePatch,
    GroupMembership,
    SiteIn,
    Unit,
    UnitIn,
    User,
    UserIn,
    UserPatch,
)
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import DEFAULT_SITE, Scope
from store import directory as store
from store.db import transaction

_CONFLICT_TITLES = {
    "device-exists": "Device already exists",
    "group-exists": "Device group already exists",
    "user-exists": "User already exists",
    "unit-exists": "Unit already exists",
    "device-in-another-group": "Device is in another device group",
    "user-in-use": "User is still referenced",
}


DirRead = Annotated[Principal, Depends(require_scopes(Scope.DIRECTORY_READ))]
"""A key with ``directory:read``: its tenant's directory (issue 9)."""
DirWrite = Annotated[Principal, Depends(require_scopes(Scope.DIRECTORY_WRITE))]
"""A key with ``directory:write``: writes to its tenant's directory (issue 9)."""

_NOT_FOUND = problem_responses(404)
"""A route that looks up the resource in its path."""
_CONFLICT = problem_responses(
    descriptions={
        409: "Conflict with a stored resource (``device-exists``, ``group-exists``, ``user-exists``, "
        "``unit-exists``, ``device-in-another-group``, ``user-in-use``) or with a concurrent write of "
        "the same row (``conflict``)"
    }
)
"""A route that writes a resource: its own conflicts, or a concurrent write of the same row."""


def _problem(e: store.DirectoryError) -> Problem:
    """The problem for a store error (see the module docstring)."""
    if isinstance(e, store.NotFound):
        return not_found(e.kind, e.ident)
    if isinstance(e, store.UnknownReference):
        return Problem(
            422,
            "unknown-reference",
            f"Unknown {e.kind}",
            str(e),
            ErrCode.UNKNOWN_RESOURCE,
            kind=e.kind,
            id=e.ident,
            field=e.field,
        )
    if isinstance(e, store.Conflict):
        return Problem(409, e.slug, _CONFLICT_TITLES.get(e.slug, "Conflict"), e.detail)
    if isinstance(e, store.Invalid):
        return Problem(422, "validation", "Invalid request", str(e), ErrCode.VALIDATION, field=e.field)
    raise TypeError(f"unmapped directory error {e!r}")


@asynccontextmanager
async def _tx(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """One connection in one transaction; store errors become problems (after rollback)."""
    try:
        async with transaction(pool) as conn:
            yield conn
    except store.DirectoryError as e:
        raise _problem(e) from e
    except asyncpg.ForeignKeyViolationError as e:
        # a referenced row was deleted by a concurrent request between check and write
        raise Problem(
            422, "unknown-reference", "Unknown reference", e.detail or str(e), ErrCode.UNKNOWN_RESOURCE
        ) from e
    except asyncpg.UniqueViolationError as e:
        raise Problem(409, "conflict", "Conflict", "a concurrent request wrote the same row") from e


def _same_id(path_id: str, body_id: str, field: str) -> None:
    if path_id != body_id:
        raise Problem(
            422,
            "validation",
            "Invalid request",
            f"body {field} {body_id!r} differs from the path's {path_id!r}",
            ErrCode.VALIDATION,
            field=field,
        )


def _put_status(response: Response, status: store.Upsert) -> None:
    response.status_code = 201 if status is store.Upsert.CREATED else 200


# ---------------------------------------------------------------- devices

devices = APIRouter(prefix="/devices", tags=["devices"])


@devices.post("", status_code=201, responses=_CONFLICT)
async def create_device(who: DirWrite, body: DeviceIn, pool: PoolDep) -> Device:
    """Register a device (201). 409 ``device-exists``; 422 ``unknown-reference`` for a missing group."""
    async with _tx(pool) as conn:
        return await store.create_device(conn, body, tenant=who.tenant_id)


@devices.get("")
async def list_devices(who: DirRead, pool: PoolDep, group_id: Identifier | None = None) -> list[Device]:
    """Every device, or those of device group ``group_id``, ordered by sn."""
    async with _tx(pool) as conn:
        return await store.list_devices(conn, group_id, tenant=who.tenant_id)


@devices.get("/{sn}", responses=_NOT_FOUND)
async def get_device(who: DirRead, sn: Identifier, pool: PoolDep) -> Device:
    """One device; 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.get_device(conn, sn, tenant=who.tenant_id)


@devices.put("/{sn}", responses={201: {"description": "Created"}, **_CONFLICT})
async def put_device(
    who: DirWrite, sn: Identifier, body: DeviceIn, pool: PoolDep, response: Response, force_add: bool = False
) -> Device:
    """Create (201) or replace (200) the device. Moving it to another group than its
    current one needs ``?force_add=true`` (reference 1(1)), else 409
    ``device-in-another-group``; ``group_id: null`` takes it out of its group."""
    _same_id(sn, body.sn, "sn")
    async with _tx(pool) as conn:
        device, status = await store.put_device(conn, body, force_add=force_add, tenant=who.tenant_id)
    _put_status(response, status)
    return device


@devices.patch("/{sn}", responses=_NOT_FOUND)
async def patch_device(who: DirWrite, sn: Identifier, body: DevicePatch, pool: PoolDep) -> Device:
    """Change some fields. An explicit null clears ``voip_token_expires_at`` (calls then
    fail with errCode 13) and ``talk_quota_s`` (unlimited). 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.patch_device(conn, sn, body, tenant=who.tenant_id)


@devices.delete("/{sn}", status_code=204, responses=_NOT_FOUND)
async def delete_device(who: DirWrite, sn: Identifier, pool: PoolDep) -> None:
    """Delete the device and the authorizations of it; 404 if unknown."""
    async with _tx(pool) as conn:
        await store.delete_device(conn, sn, tenant=who.tenant_id)


@devices.get("/{sn}/contacts", tags=["authorizations"], responses=_NOT_FOUND)
async def device_contacts(who: DirRead, sn: Identifier, pool: PoolDep) -> list[User]:
    """Users who may be called from the device: they authorized it or its current
    device group (reference ``getIotBindContactList``, 1(1)). 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.device_contacts(conn, sn, tenant=who.tenant_id)


# ---------------------------------------------------------------- device groups

groups = APIRouter(prefix="/device-groups", tags=["device-groups"])


@groups.post("", status_code=201, responses=_CONFLICT)
async def create_group(who: DirWrite, body: DeviceGroupIn, pool: PoolDep) -> DeviceGroup:
    """Create an empty device group (201); 409 ``group-exists``."""
    async with _tx(pool) as conn:
        return await store.create_group(conn, body, tenant=who.tenant_id)


@groups.get("")
async def list_groups(who: DirRead, pool: PoolDep) -> list[DeviceGroup]:
    """Every device group with its members, ordered by id."""
    async with _tx(pool) as conn:
        return await store.list_groups(conn, tenant=who.tenant_id)


@groups.get("/{group_id}", responses=_NOT_FOUND)
async def get_group(who: DirRead, group_id: Identifier, pool: PoolDep) -> DeviceGroup:
    """One device group with its members (reference ``getIotGroupInfo``); 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.get_group(conn, group_id, tenant=who.tenant_id)


@groups.put("/{group_id}", responses={201: {"description": "Created"}, **_CONFLICT})
async def put_group(
    who: DirWrite, group_id: Identifier, body: DeviceGroupIn, pool: PoolDep, response: Response
) -> DeviceGroup:
    """Create (201) or rename (200) the device group; members are kept."""
    _same_id(group_id, body.id, "id")
    async with _tx(pool) as conn:
        group, status = await store.put_group(conn, body, tenant=who.tenant_id)
    _put_status(response, status)
    return group


@groups.delete("/{group_id}", status_code=204, responses=_NOT_FOUND)
async def delete_group(who: DirWrite, group_id: Identifier, pool: PoolDep) -> None:
    """Delete the group: its devices stay (without a group), authorizations of the
    group are deleted. 404 if unknown."""
    async with _tx(pool) as conn:
        await store.delete_group(conn, group_id, tenant=who.tenant_id)


@groups.post("/{group_id}/devices", responses={**_NOT_FOUND, **_CONFLICT})
async def add_group_device(
    who: DirWrite, group_id: Identifier, body: GroupMembership, pool: PoolDep
) -> DeviceGroup:
    """Add a device (reference ``addIotGroupDevice``). A device in another group: 409
    ``device-in-another-group`` unless ``force_add``, which moves it (reference 1(1)).
    404 unknown group; 422 ``unknown-reference`` unknown device."""
    async with _tx(pool) as conn:
        return await store.add_group_device(conn, group_id, body, tenant=who.tenant_id)


@groups.delete("/{group_id}/devices/{sn}", status_code=204, responses=_NOT_FOUND)
async def remove_group_device(who: DirWrite, group_id: Identifier, sn: Identifier, pool: PoolDep) -> None:
    """Take the device out of the group (reference ``removeIotGroupDevice``); 404 when
    the group is unknown or the device is not in it."""
    async with _tx(pool) as conn:
        await store.remove_group_device(conn, group_id, sn, tenant=who.tenant_id)


# ---------------------------------------------------------------- users

users = APIRouter(prefix="/users", tags=["users"])


@users.post("", status_code=201, responses=_CONFLICT)
async def create_user(who: DirWrite, body: UserIn, pool: PoolDep) -> User:
    """Create a user (201); 409 ``user-exists``."""
    async with _tx(pool) as conn:
        return await store.create_user(conn, body, tenant=who.tenant_id)


@users.get("")
async def list_users(who: DirRead, pool: PoolDep) -> list[User]:
    """Every user, ordered by id."""
    async with _tx(pool) as conn:
        return await store.list_users(conn, tenant=who.tenant_id)


@users.get("/{user_id}", responses=_NOT_FOUND)
async def get_user(who: DirRead, user_id: Identifier, pool: PoolDep) -> User:
    """One user; 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.get_user(conn, user_id, tenant=who.tenant_id)


@users.put("/{user_id}", responses={201: {"description": "Created"}, **_CONFLICT})
async def put_user(
    who: DirWrite,
    user_id: Identifier,
    body: UserIn,
    pool: PoolDep,
    response: Response,
    client: TemporalDep,
) -> User:
    """Create (201) or replace (200) the user. The calls still ringing them re-plan (issue 10)."""
    _same_id(user_id, body.id, "id")
    async with _tx(pool) as conn:
        user, status = await store.put_user(conn, body, tenant=who.tenant_id)
    _put_status(response, status)
    await notify_plan_changed(client, pool, who.tenant_id, f"user {user_id} updated", user_id=user_id)
    return user


@users.patch("/{user_id}", responses=_NOT_FOUND)
async def patch_user(
    who: DirWrite, user_id: Identifier, body: UserPatch, pool: PoolDep, client: TemporalDep
) -> User:
    """Change the name or do-not-disturb (errCode 1003 while set); 404 if unknown. The calls
    still ringing the user re-plan (issue 10: ``planChanged``)."""
    async with _tx(pool) as conn:
        user = await store.patch_user(conn, user_id, body, tenant=who.tenant_id)
    await notify_plan_changed(client, pool, who.tenant_id, f"user {user_id} updated", user_id=user_id)
    return user


@users.delete("/{user_id}", status_code=204, responses={**_NOT_FOUND, **_CONFLICT})
async def delete_user(who: DirWrite, user_id: Identifier, pool: PoolDep, client: TemporalDep) -> None:
    """Delete the user, their authorizations and residencies. 404 if unknown; 409
    ``user-in-use`` while the user is a unit's fallback. The calls still ringing the user
    re-plan without them (issue 10)."""
    async with _tx(pool) as conn:
        await store.delete_user(conn, user_id, tenant=who.tenant_id)
    await notify_plan_changed(client, pool, who.tenant_id, f"user {user_id} deleted", user_id=user_id)


@users.get("/{user_id}/devices", tags=["authorizations"], responses=_NOT_FOUND)
async def user_devices(who: DirRead, user_id: Identifier, pool: PoolDep) -> list[Device]:
    """Devices that may call the user: authorized directly or through their current
    device group (reference ``wx.getDeviceVoIPList``, 1(1)). 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.user_devices(conn, user_id, tenant=who.tenant_id)


# ---------------------------------------------------------------- units

units = APIRouter(prefix="/units", tags=["units"])


@units.post("", status_code=201, responses=_CONFLICT)
async def create_unit(who: DirWrite, body: UnitIn, pool: PoolDep) -> Unit:
    """Create a unit (201). 409 ``unit-exists``; 422 ``unknown-reference`` when a
    resident or the fallback is not a user; 422 ``validation`` for a resident listed twice."""
    async with _tx(pool) as conn:
        return await store.create_unit(conn, body, tenant=who.tenant_id)


@units.get("")
async def list_units(who: DirRead, pool: PoolDep, site_id: Identifier | None = None) -> list[Unit]:
    """Every unit (of site ``site_id`` when given) with residents in hunt order, ordered by site
    then id."""
    async with _tx(pool) as conn:
        return await store.list_units(conn, tenant=who.tenant_id, site=site_id)


SiteQuery = Annotated[Identifier, Query(description="The unit's site (unit numbers are unique per site)")]


@units.get("/{unit_id}", responses=_NOT_FOUND)
async def get_unit(
    who: DirRead, unit_id: Identifier, pool: PoolDep, site_id: SiteQuery = DEFAULT_SITE
) -> Unit:
    """One unit of site ``site_id``; 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.get_unit(conn, unit_id, tenant=who.tenant_id, site=site_id)


@units.put("/{unit_id}", responses={201: {"description": "Created"}, **_CONFLICT})
async def put_unit(
    who: DirWrite,
    unit_id: Identifier,
    body: UnitIn,
    pool: PoolDep,
    response: Response,
    client: TemporalDep,
) -> Unit:
    """Create (201) or replace (200) the unit; residents are replaced by the body's order.
    422 as for POST. The unit's calls still ringing apply the new residents, order and policy
    to the targets not yet rung (issue 10: ``planChanged``)."""
    _same_id(unit_id, body.id, "id")
    async with _tx(pool) as conn:
        unit, status = await store.put_unit(conn, body, tenant=who.tenant_id)
    _put_status(response, status)
    await notify_plan_changed(
        client, pool, who.tenant_id, f"unit {unit_id} updated", unit_id=unit_id, site_id=body.site_id
    )
    return unit


@units.delete("/{unit_id}", status_code=204, responses=_NOT_FOUND)
async def delete_unit(
    who: DirWrite,
    unit_id: Identifier,
    pool: PoolDep,
    client: TemporalDep,
    site_id: SiteQuery = DEFAULT_SITE,
) -> None:
    """Delete the unit of site ``site_id`` (its users stay); 404 if unknown. Its calls still
    ringing ring nobody more after the current stage (issue 10: ``planChanged``)."""
    async with _tx(pool) as conn:
        await store.delete_unit(conn, unit_id, tenant=who.tenant_id, site=site_id)
    await notify_plan_changed(
        client, pool, who.tenant_id, f"unit {unit_id} deleted", unit_id=unit_id, site_id=site_id
    )


# ---------------------------------------------------------------- authorizations

authorizations = APIRouter(prefix="/authorizations", tags=["authorizations"])


@authorizations.post("", status_code=201, responses={200: {"description": "Already authorized"}})
async def add_authorization(
    who: DirWrite, body: AuthorizationIn, pool: PoolDep, response: Response
) -> Authorization:
    """The user authorizes a device or a device group (reference 1(1)): 201 when new,
    200 when it already existed. 422 ``unknown-reference`` for a missing user or target."""
    async with _tx(pool) as conn:
        auth, created = await store.add_authorization(conn, body, tenant=who.tenant_id)
    response.status_code = 201 if created else 200
    return auth


@authorizations.get("")
async def list_authorizations(
    who: DirRead,
    pool: PoolDep,
    user_id: Identifier | None = None,
    target_kind: AuthorizationTarget | None = None,
    target_id: Identifier | None = None,
) -> list[Authorization]:
    """Stored authorizations, filtered by the query parameters given."""
    async with _tx(pool) as conn:
        return await store.list_authorizations(conn, user_id, target_kind, target_id, tenant=who.tenant_id)


@authorizations.delete("/{user_id}/{target_kind}/{target_id}", status_code=204, responses=_NOT_FOUND)
async def revoke_authorization(
    who: DirWrite, user_id: Identifier, target_kind: AuthorizationTarget, target_id: Identifier, pool: PoolDep
) -> None:
    """The user revokes it (later calls from the device fail with errCode 9); 404 if absent."""
    async with _tx(pool) as conn:
        await store.revoke_authorization(conn, user_id, target_kind, target_id, tenant=who.tenant_id)


# ---------------------------------------------------------------- sites

sites = APIRouter(prefix="/sites", tags=["sites"])


@sites.get("")
async def list_sites(who: DirRead, pool: PoolDep) -> list[SiteIn]:
    """The tenant's sites (buildings, campuses), by id; every tenant has ``default``."""
    async with _tx(pool) as conn:
        return await store.list_sites(conn, tenant=who.tenant_id)


@sites.get("/{site_id}", responses=_NOT_FOUND)
async def get_site(who: DirRead, site_id: Identifier, pool: PoolDep) -> SiteIn:
    """One site; 404 if unknown."""
    async with _tx(pool) as conn:
        return await store.get_site(conn, site_id, tenant=who.tenant_id)


@sites.put("/{site_id}", responses={201: {"description": "Created"}})
async def put_site(
    who: DirWrite, site_id: Identifier, body: SiteIn, pool: PoolDep, response: Response
) -> SiteIn:
    """Create (201) or rename (200) the site (its name and IANA time zone); its units and
    devices name it in ``site_id``."""
    _same_id(site_id, body.id, "id")
    async with _tx(pool) as conn:
        status = await store.put_site(conn, body, tenant=who.tenant_id)
        site = await store.get_site(conn, site_id, tenant=who.tenant_id)
    _put_status(response, status)
    return site


router = APIRouter(prefix="/v1")
"""The directory API; ``api/app.py`` includes it."""
for _sub in (sites, devices, groups, users, units, authorizations):
    router.include_router(_sub)
