"""Directory queries: devices, device groups, users, units, authorizations, round-robin memory.

Every function takes ``conn``: an asyncpg connection (or pool connection);
callers that write several rows open the transaction (``store.db.transaction``).
No HTTP here: errors are the small exceptions below, which ``api/routers/directory.py``
maps to problems (404 / 409 / 422).

The authorization rule (reference troubleshooting guide 1(1)) has one definition:
the ``authorized_pairs`` view of migration ``0001.directory`` (a user authorized
the device itself or the device group the device is in now; per tenant since
``0007.tenant_scope``). ``user_devices``, ``device_contacts`` and ``is_authorized`` all read it.

Tenancy (issue 9): every function takes the keyword ``tenant`` (default
:data:`~ringflow.contracts.tenancy.DEFAULT_TENANT`) and reads and writes only that tenant's
rows; ids are unique per tenant, unit numbers per site (``site``, default the default site).
Another tenant's row is answered exactly as a missing one (NotFound / UnknownReference).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

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
from ringflow.contracts.tenancy import DEFAULT_SITE, DEFAULT_TENANT

Conn = Any
"""An asyncpg ``Connection`` or ``PoolConnectionProxy``."""


# ---------------------------------------------------------------- errors


class DirectoryError(Exception):
    """Base of the directory's errors."""


class NotFound(DirectoryError):
    """The addressed ``kind`` (device, group, user, unit, authorization, group member)
    ``ident`` does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class UnknownReference(DirectoryError):
    """A body's ``field`` names a ``kind`` ``ident`` that does not exist (e.g. a unit's
    resident that is not a user); nothing was written."""

    def __init__(self, kind: str, ident: str, field: str) -> None:
        super().__init__(f"{field}: no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident
        self.field = field


class Conflict(DirectoryError):
    """The write conflicts with the stored state; ``slug`` is the stable problem slug
    (``device-exists``, ``device-in-another-group``, ``user-in-use``, ...)."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail


class Invalid(DirectoryError):
    """The body is well-formed but not acceptable (e.g. a resident listed twice)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class Upsert(StrEnum):
    """What an upsert did: ``created``, ``updated`` or ``unchanged`` (nothing written)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def _upsert_status(row: Any) -> Upsert:
    # ``xmax = 0`` holds for a freshly inserted row; no row = the WHERE of DO UPDATE was false.
    if row is None:
        return Upsert.UNCHANGED
    return Upsert.CREATED if row["created"] else Upsert.UPDATED


_TABLES = {
    "device": ("devices", "sn"),
    "group": ("device_groups", "id"),
    "user": ("users", "id"),
    "unit": ("units", "id"),
}


async def _exists(conn: Conn, kind: str, ident: str, tenant: str) -> bool:
    table, key = _TABLES[kind]
    return bool(
        await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE tenant_id = $2 AND {key} = $1)", ident, tenant
        )
    )


async def _require(conn: Conn, kind: str, ident: str, tenant: str) -> None:
    if not await _exists(conn, kind, ident, tenant):
        raise NotFound(kind, ident)


async def _require_ref(conn: Conn, kind: str, ident: str, field: str, tenant: str) -> None:
    if not await _exists(conn, kind, ident, tenant):
        raise UnknownReference(kind, ident, field)


async def _require_site(conn: Conn, site: str, tenant: str) -> None:
    found = await conn.fetchval("SELECT 1 FROM sites WHERE tenant_id = $1 AND id = $2", tenant, site)
    if found is None:
        raise UnknownReference("site", site, "site_id")


# ---------------------------------------------------------------- sites


async def find_site(conn: Conn, site: str, *, tenant: str = DEFAULT_TENANT) -> SiteIn | None:
    """The tenant's site ``site``, or None."""
    row = await conn.fetchrow(
        "SELECT id, name, time_zone FROM sites WHERE tenant_id = $1 AND id = $2", tenant, site
    )
    return SiteIn.model_validate(dict(row)) if row else None


async def list_sites(conn: Conn, *, tenant: str = DEFAULT_TENANT) -> list[SiteIn]:
    """The tenant's sites, by id."""
    rows = await conn.fetch("SELECT id, name, time_zone FROM sites WHERE tenant_id = $1 ORDER BY id", tenant)
    return [SiteIn.model_validate(dict(r)) for r in rows]


async def get_site(conn: Conn, site: str, *, tenant: str = DEFAULT_TENANT) -> SiteIn:
    """The tenant's site ``site``. Raises NotFound("site")."""
    found = await find_site(conn, site, tenant=tenant)
    if found is None:
        raise NotFound("site", site)
    return found


async def put_site(conn: Conn, site: SiteIn, *, tenant: str = DEFAULT_TENANT) -> Upsert:
    """Create the tenant's site or change its name and time zone (unchanged: nothing written)."""
    row = await conn.fetchrow(
        """INSERT INTO sites AS t (tenant_id, id, name, time_zone) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone
           WHERE (t.name, t.time_zone) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.time_zone)
           RETURNING (xmax = 0) AS created""",
        tenant,
        site.id,
        site.name,
        site.time_zone,
    )
    return _upsert_status(row)


# ---------------------------------------------------------------- devices

_DEVICE_COLS = (
    "sn, site_id, model_id, name, group_id, voip_token_expires_at, talk_quota_s, auto_answer, actions, "
    "created_at, updated_at"
)


def _check_group_move(sn: str, current: str | None, new: str | None, force_add: bool) -> None:
    """Reference 1(1) (``addIotGroupDevice``): a device in group A joins group B only
    with ``force_add``, which moves it out of A."""
    if current is not None and new is not None and current != new and not force_add:
        raise Conflict(
            "device-in-another-group",
            f"device {sn!r} is in device group {current!r}; add it with force_add to move it",
        )


async def find_device(conn: Conn, sn: str, *, tenant: str = DEFAULT_TENANT) -> Device | None:
    """The device ``sn``, or None."""
    row = await conn.fetchrow(
        f"SELECT {_DEVICE_COLS} FROM devices WHERE tenant_id = $2 AND sn = $1", sn, tenant
    )
    return Device.model_validate(dict(row)) if row else None


async def get_device(conn: Conn, sn: str, *, tenant: str = DEFAULT_TENANT) -> Device:
    """The device ``sn``. Raises NotFound("device")."""
    device = await find_device(conn, sn, tenant=tenant)
    if device is None:
        raise NotFound("device", sn)
    return device


async def list_devices(
    conn: Conn, group_id: str | None = None, *, tenant: str = DEFAULT_TENANT
) -> list[Device]:
    """Every device (or those of device group ``group_id``), ordered by sn."""
    rows = await conn.fetch(
        f"""SELECT {_DEVICE_COLS} FROM devices WHERE tenant_id = $2 AND ($1::text IS NULL OR group_id = $1)
            ORDER BY sn""",
        group_id,
        tenant,
    )
    return [Device.model_validate(dict(r)) for r in rows]


async def create_device(conn: Conn, device: DeviceIn, *, tenant: str = DEFAULT_TENANT) -> Device:
    """Insert a new device. Raises Conflict("device-exists"), UnknownReference(group_id, site_id)."""
    await _require_site(conn, device.site_id, tenant)
    if device.group_id is not None:
        await _require_ref(conn, "group", device.group_id, "group_id", tenant)
    row = await conn.fetchrow(
        f"""INSERT INTO devices
                (sn, model_id, name, group_id, voip_token_expires_at, talk_quota_s, auto_answer, actions,
                 tenant_id, site_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, sn) DO NOTHING
            RETURNING {_DEVICE_COLS}""",
        *_device_values(device),
        tenant,
        device.site_id,
    )
    if row is None:
        raise Conflict("device-exists", f"device {device.sn!r} already exists")
    return Device.model_validate(dict(row))


def _device_values(d: DeviceIn) -> tuple[Any, ...]:
    return (
        d.sn,
        d.model_id,
        d.name,
        d.group_id,
        d.voip_token_expires_at,
        d.talk_quota_s,
        d.auto_answer,
        list(d.actions),
    )


async def put_device(
    conn: Conn, device: DeviceIn, force_add: bool = False, *, tenant: str = DEFAULT_TENANT
) -> tuple[Device, Upsert]:
    """Create or replace the device ``device.sn`` with exactly these fields.

    ``group_id`` None takes the device out of its group; a different group than
    the current one needs ``force_add`` (reference 1(1)). Unchanged fields write
    nothing (``updated_at`` kept). Raises UnknownReference(group_id, site_id),
    Conflict("device-in-another-group").
    """
    await _require_site(conn, device.site_id, tenant)
    if device.group_id is not None:
        await _require_ref(conn, "group", device.group_id, "group_id", tenant)
    current = await conn.fetchval(
        "SELECT group_id FROM devices WHERE tenant_id = $2 AND sn = $1 FOR UPDATE", device.sn, tenant
    )
    _check_group_move(device.sn, current, device.group_id, force_add)
    row = await conn.fetchrow(
        """INSERT INTO devices AS t
               (sn, model_id, name, group_id, voip_token_expires_at, talk_quota_s, auto_answer, actions,
                tenant_id, site_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (tenant_id, sn) DO UPDATE SET
               model_id = EXCLUDED.model_id, name = EXCLUDED.name, group_id = EXCLUDED.group_id,
               voip_token_expires_at = EXCLUDED.voip_token_expires_at,
               talk_quota_s = EXCLUDED.talk_quota_s, auto_answer = EXCLUDED.auto_answer,
               actions = EXCLUDED.actions, site_id = EXCLUDED.site_id, updated_at = now()
           WHERE (t.model_id, t.name, t.group_id, t.voip_token_expires_at, t.talk_quota_s, t.auto_answer,
                  t.actions, t.site_id)
               IS DISTINCT FROM (EXCLUDED.model_id, EXCLUDED.name, EXCLUDED.group_id,
                   EXCLUDED.voip_token_expires_at, EXCLUDED.talk_quota_s, EXCLUDED.auto_answer,
                   EXCLUDED.actions, EXCLUDED.site_id)
           RETURNING (xmax = 0) AS created""",
        *_device_values(device),
        tenant,
        device.site_id,
    )
    return await get_device(conn, device.sn, tenant=tenant), _upsert_status(row)


_DEVICE_NULLABLE = {"voip_token_expires_at", "talk_quota_s"}


async def patch_device(conn: Conn, sn: str, patch: DevicePatch, *, tenant: str = DEFAULT_TENANT) -> Device:
    """Change the fields set in ``patch``. An explicit null clears
    ``voip_token_expires_at`` (no VoIP token) and ``talk_quota_s`` (unlimited); for
    the other fields null means unchanged. Raises NotFound("device")."""
    current = await get_device(conn, sn, tenant=tenant)
    changes = {
        k: v
        for k, v in patch.model_dump(exclude_unset=True).items()
        if v is not None or k in _DEVICE_NULLABLE
    }
    fields = current.model_dump(include=set(DeviceIn.model_fields)) | changes
    await put_device(conn, DeviceIn.model_validate(fields), tenant=tenant)
    return await get_device(conn, sn, tenant=tenant)


async def delete_device(conn: Conn, sn: str, *, tenant: str = DEFAULT_TENANT) -> None:
    """Delete the device and the authorizations of it. Raises NotFound("device")."""
    if (
        await conn.fetchval("DELETE FROM devices WHERE tenant_id = $2 AND sn = $1 RETURNING sn", sn, tenant)
        is None
    ):
        raise NotFound("device", sn)
    await conn.execute(
        "DELETE FROM authorizations WHERE tenant_id = $2 AND target_kind = 'device' AND target_id = $1",
        sn,
        tenant,
    )


# ---------------------------------------------------------------- device groups

_GROUP_SELECT = """
    SELECT g.id, g.name,
           coalesce(array_agg(d.sn ORDER BY d.sn) FILTER (WHERE d.sn IS NOT NULL), '{}') AS devices
    FROM device_groups g LEFT JOIN devices d ON d.tenant_id = g.tenant_id AND d.group_id = g.id
"""


async def get_group(conn: Conn, group_id: str, *, tenant: str = DEFAULT_TENANT) -> DeviceGroup:
    """The device group with its member sns. Raises NotFound("group")."""
    row = await conn.fetchrow(
        _GROUP_SELECT + " WHERE g.tenant_id = $2 AND g.id = $1 GROUP BY g.tenant_id, g.id", group_id, tenant
    )
    if row is None:
        raise NotFound("group", group_id)
    return DeviceGroup.model_validate(dict(row))


async def list_groups(conn: Conn, *, tenant: str = DEFAULT_TENANT) -> list[DeviceGroup]:
    """Every device group with its member sns, ordered by id."""
    rows = await conn.fetch(
        _GROUP_SELECT + " WHERE g.tenant_id = $1 GROUP BY g.tenant_id, g.id ORDER BY g.id", tenant
    )
    return [DeviceGroup.model_validate(dict(r)) for r in rows]


async def create_group(conn: Conn, group: DeviceGroupIn, *, tenant: str = DEFAULT_TENANT) -> DeviceGroup:
    """Insert a new, empty device group. Raises Conflict("group-exists")."""
    created = await conn.fetchval(
        """INSERT INTO device_groups (tenant_id, id, name) VALUES ($3, $1, $2)
           ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id""",
        group.id,
        group.name,
        tenant,
    )
    if created is None:
        raise Conflict("group-exists", f"device group {group.id!r} already exists")
    return await get_group(conn, group.id, tenant=tenant)


async def put_group(
    conn: Conn, group: DeviceGroupIn, *, tenant: str = DEFAULT_TENANT
) -> tuple[DeviceGroup, Upsert]:
    """Create the device group or rename it; members are not touched."""
    row = await conn.fetchrow(
        """INSERT INTO device_groups AS t (tenant_id, id, name) VALUES ($3, $1, $2)
           ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
           WHERE t.name IS DISTINCT FROM EXCLUDED.name
           RETURNING (xmax = 0) AS created""",
        group.id,
        group.name,
        tenant,
    )
    return await get_group(conn, group.id, tenant=tenant), _upsert_status(row)


async def delete_group(conn: Conn, group_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
    """Delete the device group: its devices leave it (they stay), authorizations of
    the group are deleted. Raises NotFound("group")."""
    gone = await conn.fetchval(
        "DELETE FROM device_groups WHERE tenant_id = $2 AND id = $1 RETURNING id", group_id, tenant
    )
    if gone is None:
        raise NotFound("group", group_id)
    await conn.execute(
        "DELETE FROM authorizations WHERE tenant_id = $2 AND target_kind = 'group' AND target_id = $1",
        group_id,
        tenant,
    )


async def add_group_device(
    conn: Conn, group_id: str, membership: GroupMembership, *, tenant: str = DEFAULT_TENANT
) -> DeviceGroup:
    """Add device ``membership.sn`` to the group (reference ``addIotGroupDevice``).

    Already a member: nothing changes. In another group: Conflict
    ("device-in-another-group") unless ``force_add``, which moves it (users who
    authorized only the old group can no longer be called from it; reference 1(1)).
    Raises NotFound("group"), UnknownReference("device", field "sn").
    """
    await _require(conn, "group", group_id, tenant)
    sn = membership.sn
    row = await conn.fetchrow(
        "SELECT group_id FROM devices WHERE tenant_id = $2 AND sn = $1 FOR UPDATE", sn, tenant
    )
    if row is None:
        raise UnknownReference("device", sn, "sn")
    if row["group_id"] != group_id:
        _check_group_move(sn, row["group_id"], group_id, membership.force_add)
        await conn.execute(
            "UPDATE devices SET group_id = $2, updated_at = now() WHERE tenant_id = $3 AND sn = $1",
            sn,
            group_id,
            tenant,
        )
    return await get_group(conn, group_id, tenant=tenant)


async def remove_group_device(conn: Conn, group_id: str, sn: str, *, tenant: str = DEFAULT_TENANT) -> None:
    """Take device ``sn`` out of the group (reference ``removeIotGroupDevice``).
    Raises NotFound("group"), NotFound("group member") when ``sn`` is not in it."""
    await _require(conn, "group", group_id, tenant)
    removed = await conn.fetchval(
        """UPDATE devices SET group_id = NULL, updated_at = now()
           WHERE tenant_id = $3 AND sn = $1 AND group_id = $2 RETURNING sn""",
        sn,
        group_id,
        tenant,
    )
    if removed is None:
        raise NotFound("group member", sn)


# ---------------------------------------------------------------- users

_USER_COLS = "id, name, do_not_disturb, created_at"


async def find_user(conn: Conn, user_id: str, *, tenant: str = DEFAULT_TENANT) -> User | None:
    """The user, or None."""
    row = await conn.fetchrow(
        f"SELECT {_USER_COLS} FROM users WHERE tenant_id = $2 AND id = $1", user_id, tenant
    )
    return User.model_validate(dict(row)) if row else None


async def get_user(conn: Conn, user_id: str, *, tenant: str = DEFAULT_TENANT) -> User:
    """The user. Raises NotFound("user")."""
    user = await find_user(conn, user_id, tenant=tenant)
    if user is None:
        raise NotFound("user", user_id)
    return user


async def list_users(conn: Conn, *, tenant: str = DEFAULT_TENANT) -> list[User]:
    """Every user, ordered by id."""
    rows = await conn.fetch(f"SELECT {_USER_COLS} FROM users WHERE tenant_id = $1 ORDER BY id", tenant)
    return [User.model_validate(dict(r)) for r in rows]


async def create_user(conn: Conn, user: UserIn, *, tenant: str = DEFAULT_TENANT) -> User:
    """Insert a new user. Raises Conflict("user-exists")."""
    row = await conn.fetchrow(
        f"""INSERT INTO users (tenant_id, id, name, do_not_disturb) VALUES ($4, $1, $2, $3)
            ON CONFLICT (tenant_id, id) DO NOTHING RETURNING {_USER_COLS}""",
        user.id,
        user.name,
        user.do_not_disturb,
        tenant,
    )
    if row is None:
        raise Conflict("user-exists", f"user {user.id!r} already exists")
    return User.model_validate(dict(row))


async def put_user(conn: Conn, user: UserIn, *, tenant: str = DEFAULT_TENANT) -> tuple[User, Upsert]:
    """Create or replace the user (unchanged fields write nothing)."""
    row = await conn.fetchrow(
        """INSERT INTO users AS t (tenant_id, id, name, do_not_disturb) VALUES ($4, $1, $2, $3)
           ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name,
               do_not_disturb = EXCLUDED.do_not_disturb
           WHERE (t.name, t.do_not_disturb) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.do_not_disturb)
           RETURNING (xmax = 0) AS created""",
        user.id,
        user.name,
        user.do_not_disturb,
        tenant,
    )
    return await get_user(conn, user.id, tenant=tenant), _upsert_status(row)


async def patch_user(conn: Conn, user_id: str, patch: UserPatch, *, tenant: str = DEFAULT_TENANT) -> User:
    """Change the fields set (and not null) in ``patch``. Raises NotFound("user")."""
    current = await get_user(conn, user_id, tenant=tenant)
    changes = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    await put_user(
        conn,
        UserIn.model_validate(current.model_dump(include=set(UserIn.model_fields)) | changes),
        tenant=tenant,
    )
    return await get_user(conn, user_id, tenant=tenant)


async def delete_user(conn: Conn, user_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
    """Delete the user, their authorizations and unit residencies.

    Raises NotFound("user"), Conflict("user-in-use") when the user is a unit's
    fallback (``policy.fallback_user_id``): change those units first.
    """
    await _require(conn, "user", user_id, tenant)
    units = await conn.fetch(
        "SELECT id FROM units WHERE tenant_id = $2 AND policy->>'fallback_user_id' = $1 ORDER BY id",
        user_id,
        tenant,
    )
    if units:
        names = ", ".join(repr(r["id"]) for r in units)
        raise Conflict("user-in-use", f"user {user_id!r} is the fallback of unit(s) {names}")
    await conn.execute("DELETE FROM users WHERE tenant_id = $2 AND id = $1", user_id, tenant)


# ---------------------------------------------------------------- units

_UNIT_SELECT = """
    SELECT u.id, u.site_id, u.name, u.policy, u.created_at, u.updated_at,
           coalesce(array_agg(r.user_id ORDER BY r.position) FILTER (WHERE r.user_id IS NOT NULL), '{}')
               AS residents
    FROM units u LEFT JOIN unit_residents r
        ON r.tenant_id = u.tenant_id AND r.site_id = u.site_id AND r.unit_id = u.id
"""
_UNIT_GROUP = " GROUP BY u.tenant_id, u.site_id, u.id"


async def find_unit(
    conn: Conn, unit_id: str, *, tenant: str = DEFAULT_TENANT, site: str = DEFAULT_SITE
) -> Unit | None:
    """The unit ``unit_id`` of the tenant's site ``site`` with its residents in hunt order, or None."""
    row = await conn.fetchrow(
        _UNIT_SELECT + " WHERE u.tenant_id = $2 AND u.site_id = $3 AND u.id = $1" + _UNIT_GROUP,
        unit_id,
        tenant,
        site,
    )
    return Unit.model_validate(dict(row)) if row else None


async def get_unit(
    conn: Conn, unit_id: str, *, tenant: str = DEFAULT_TENANT, site: str = DEFAULT_SITE
) -> Unit:
    """The unit with its residents in hunt order. Raises NotFound("unit")."""
    unit = await find_unit(conn, unit_id, tenant=tenant, site=site)
    if unit is None:
        raise NotFound("unit", unit_id)
    return unit


async def list_units(conn: Conn, *, tenant: str = DEFAULT_TENANT, site: str | None = None) -> list[Unit]:
    """Every unit of the tenant (or of its site ``site``), ordered by site then id."""
    rows = await conn.fetch(
        _UNIT_SELECT
        + " WHERE u.tenant_id = $1 AND ($2::text IS NULL OR u.site_id = $2)"
        + _UNIT_GROUP
        + " ORDER BY u.site_id, u.id",
        tenant,
        site,
    )
    return [Unit.model_validate(dict(r)) for r in rows]


async def _check_unit_refs(conn: Conn, unit: UnitIn, tenant: str) -> None:
    seen: set[str] = set()
    for user_id in unit.residents:
        if user_id in seen:
            raise Invalid("residents", f"user {user_id!r} is listed twice")
        seen.add(user_id)
    await _require_site(conn, unit.site_id, tenant)
    wanted = [*unit.residents]
    if unit.policy.fallback_user_id is not None:
        wanted.append(unit.policy.fallback_user_id)
    known = {
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM users WHERE tenant_id = $2 AND id = ANY($1::text[])", wanted, tenant
        )
    }
    for user_id in unit.residents:
        if user_id not in known:
            raise UnknownReference("user", user_id, "residents")
    if unit.policy.fallback_user_id is not None and unit.policy.fallback_user_id not in known:
        raise UnknownReference("user", unit.policy.fallback_user_id, "policy.fallback_user_id")


async def _replace_residents(conn: Conn, unit: UnitIn, tenant: str) -> bool:
    """Set the unit's residents to ``unit.residents`` in that order; True when they changed."""
    key = (tenant, unit.site_id, unit.id)
    current = await conn.fetchval(
        """SELECT coalesce(array_agg(user_id ORDER BY position), '{}') FROM unit_residents
           WHERE tenant_id = $1 AND site_id = $2 AND unit_id = $3""",
        *key,
    )
    if list(current) == unit.residents:
        return False
    await conn.execute(
        "DELETE FROM unit_residents WHERE tenant_id = $1 AND site_id = $2 AND unit_id = $3", *key
    )
    await conn.execute(
        """INSERT INTO unit_residents (tenant_id, site_id, unit_id, user_id, position)
           SELECT $1, $2, $3, r.user_id, r.ord - 1
           FROM unnest($4::text[]) WITH ORDINALITY AS r(user_id, ord)""",
        *key,
        unit.residents,
    )
    return True


async def create_unit(conn: Conn, unit: UnitIn, *, tenant: str = DEFAULT_TENANT) -> Unit:
    """Insert a new unit (in site ``unit.site_id``) with its residents. Raises Conflict("unit-exists"),
    UnknownReference("user": residents / policy.fallback_user_id; "site"), Invalid (resident twice)."""
    await _check_unit_refs(conn, unit, tenant)
    created = await conn.fetchval(
        """INSERT INTO units (tenant_id, site_id, id, name, policy) VALUES ($4, $5, $1, $2, $3)
           ON CONFLICT (tenant_id, site_id, id) DO NOTHING RETURNING id""",
        unit.id,
        unit.name,
        unit.policy.model_dump(mode="json"),
        tenant,
        unit.site_id,
    )
    if created is None:
        raise Conflict("unit-exists", f"unit {unit.id!r} already exists in site {unit.site_id!r}")
    await _replace_residents(conn, unit, tenant)
    return await get_unit(conn, unit.id, tenant=tenant, site=unit.site_id)


async def put_unit(conn: Conn, unit: UnitIn, *, tenant: str = DEFAULT_TENANT) -> tuple[Unit, Upsert]:
    """Create or replace the unit: name, policy and residents (replaced by this order).
    Unchanged units write nothing. Raises like :func:`create_unit` (but never Conflict)."""
    await _check_unit_refs(conn, unit, tenant)
    row = await conn.fetchrow(
        """INSERT INTO units AS t (tenant_id, site_id, id, name, policy) VALUES ($4, $5, $1, $2, $3)
           ON CONFLICT (tenant_id, site_id, id) DO UPDATE SET name = EXCLUDED.name, policy = EXCLUDED.policy,
               updated_at = now()
           WHERE (t.name, t.policy) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.policy)
           RETURNING (xmax = 0) AS created""",
        unit.id,
        unit.name,
        unit.policy.model_dump(mode="json"),
        tenant,
        unit.site_id,
    )
    status = _upsert_status(row)
    if await _replace_residents(conn, unit, tenant) and status is Upsert.UNCHANGED:
        await conn.execute(
            "UPDATE units SET updated_at = now() WHERE tenant_id = $1 AND site_id = $2 AND id = $3",
            tenant,
            unit.site_id,
            unit.id,
        )
        status = Upsert.UPDATED
    return await get_unit(conn, unit.id, tenant=tenant, site=unit.site_id), status


async def delete_unit(
    conn: Conn, unit_id: str, *, tenant: str = DEFAULT_TENANT, site: str = DEFAULT_SITE
) -> None:
    """Delete the unit (its residents list and round-robin memory go with it;
    the users stay). Raises NotFound("unit")."""
    gone = await conn.fetchval(
        "DELETE FROM units WHERE tenant_id = $2 AND site_id = $3 AND id = $1 RETURNING id",
        unit_id,
        tenant,
        site,
    )
    if gone is None:
        raise NotFound("unit", unit_id)


# ---------------------------------------------------------------- authorizations

_AUTH_COLS = "user_id, target_kind, target_id, created_at"
_TARGET_KIND = {AuthorizationTarget.DEVICE: "device", AuthorizationTarget.GROUP: "group"}


async def add_authorization(
    conn: Conn, auth: AuthorizationIn, *, tenant: str = DEFAULT_TENANT
) -> tuple[Authorization, bool]:
    """``auth.user_id`` authorizes the device or device group (reference 1(1)).
    Returns (the authorization, True when new); adding it again changes nothing.
    Raises UnknownReference("user": user_id, "device"/"group": target_id)."""
    await _require_ref(conn, "user", auth.user_id, "user_id", tenant)
    await _require_ref(conn, _TARGET_KIND[auth.target_kind], auth.target_id, "target_id", tenant)
    key = (auth.user_id, auth.target_kind.value, auth.target_id, tenant)
    row = await conn.fetchrow(
        f"""INSERT INTO authorizations (user_id, target_kind, target_id, tenant_id) VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING RETURNING {_AUTH_COLS}""",
        *key,
    )
    if row is not None:
        return Authorization.model_validate(dict(row)), True
    row = await conn.fetchrow(
        f"""SELECT {_AUTH_COLS} FROM authorizations
            WHERE user_id = $1 AND target_kind = $2 AND target_id = $3 AND tenant_id = $4""",
        *key,
    )
    return Authorization.model_validate(dict(row)), False


async def revoke_authorization(
    conn: Conn,
    user_id: str,
    target_kind: AuthorizationTarget,
    target_id: str,
    *,
    tenant: str = DEFAULT_TENANT,
) -> None:
    """The user revokes the authorization (reference 1(1): later calls fail with errCode 9).
    Raises NotFound("authorization")."""
    gone = await conn.fetchval(
        """DELETE FROM authorizations WHERE user_id = $1 AND target_kind = $2 AND target_id = $3
               AND tenant_id = $4
           RETURNING user_id""",
        user_id,
        target_kind.value,
        target_id,
        tenant,
    )
    if gone is None:
        raise NotFound("authorization", f"{user_id}/{target_kind.value}/{target_id}")


async def list_authorizations(
    conn: Conn,
    user_id: str | None = None,
    target_kind: AuthorizationTarget | None = None,
    target_id: str | None = None,
    *,
    tenant: str = DEFAULT_TENANT,
) -> list[Authorization]:
    """Stored authorizations of the tenant, filtered by whichever arguments are given."""
    rows = await conn.fetch(
        f"""SELECT {_AUTH_COLS} FROM authorizations
            WHERE tenant_id = $4 AND ($1::text IS NULL OR user_id = $1)
              AND ($2::text IS NULL OR target_kind = $2)
              AND ($3::text IS NULL OR target_id = $3)
            ORDER BY user_id, target_kind, target_id""",
        user_id,
        target_kind.value if target_kind else None,
        target_id,
        tenant,
    )
    return [Authorization.model_validate(dict(r)) for r in rows]


async def user_devices(conn: Conn, user_id: str, *, tenant: str = DEFAULT_TENANT) -> list[Device]:
    """Devices that may call the user: authorized directly or through their current
    device group (reference ``wx.getDeviceVoIPList``), ordered by sn. Raises NotFound("user")."""
    await _require(conn, "user", user_id, tenant)
    cols = ", ".join(f"d.{c.strip()}" for c in _DEVICE_COLS.split(","))
    rows = await conn.fetch(
        f"""SELECT {cols} FROM authorized_pairs p JOIN devices d ON d.tenant_id = p.tenant_id AND d.sn = p.sn
            WHERE p.tenant_id = $2 AND p.user_id = $1 ORDER BY d.sn""",
        user_id,
        tenant,
    )
    return [Device.model_validate(dict(r)) for r in rows]


async def device_contacts(conn: Conn, sn: str, *, tenant: str = DEFAULT_TENANT) -> list[User]:
    """Users who may be called from the device (reference ``getIotBindContactList``),
    ordered by id. Raises NotFound("device")."""
    await _require(conn, "device", sn, tenant)
    cols = ", ".join(f"u.{c.strip()}" for c in _USER_COLS.split(","))
    rows = await conn.fetch(
        f"SELECT {cols} FROM authorized_pairs p "
        "JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id "
        "WHERE p.tenant_id = $2 AND p.sn = $1 ORDER BY u.id",
        sn,
        tenant,
    )
    return [User.model_validate(dict(r)) for r in rows]


async def is_authorized(conn: Conn, user_id: str, sn: str, *, tenant: str = DEFAULT_TENANT) -> bool:
    """True when the user may be called from device ``sn`` (and device ``sn`` may be
    called by the user): reference 1(1), else errCode 9."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM authorized_pairs
                              WHERE tenant_id = $3 AND user_id = $1 AND sn = $2)""",
            user_id,
            sn,
            tenant,
        )
    )


# ---------------------------------------------------------------- round-robin memory


async def last_answered(
    conn: Conn, unit_id: str, *, tenant: str = DEFAULT_TENANT, site: str = DEFAULT_SITE
) -> str | None:
    """The user who answered the unit's last call (round-robin memory, FAQ 1.5), or None."""
    return await conn.fetchval(
        """SELECT last_answered_user_id FROM unit_rr_memory
           WHERE tenant_id = $2 AND site_id = $3 AND unit_id = $1""",
        unit_id,
        tenant,
        site,
    )


async def remember_answer(
    conn: Conn, unit_id: str, user_id: str, *, tenant: str = DEFAULT_TENANT, site: str = DEFAULT_SITE
) -> bool:
    """Record that ``user_id`` answered the unit's last call; False (nothing written)
    when the unit or the user no longer exists."""
    written = await conn.fetchval(
        """INSERT INTO unit_rr_memory (tenant_id, site_id, unit_id, last_answered_user_id, at)
           SELECT $3, $4, $1, $2, now()
           WHERE EXISTS (SELECT 1 FROM units WHERE tenant_id = $3 AND site_id = $4 AND id = $1)
             AND EXISTS (SELECT 1 FROM users WHERE tenant_id = $3 AND id = $2)
           ON CONFLICT (tenant_id, site_id, unit_id) DO UPDATE
               SET last_answered_user_id = EXCLUDED.last_answered_user_id, at = EXCLUDED.at
           RETURNING unit_id""",
        unit_id,
        user_id,
        tenant,
        site,
    )
    return written is not None
