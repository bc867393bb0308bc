"""Building files: ``ringflow directory load FILE`` reads one (YAML or JSON) and upserts it.

``read_building`` parses and validates (``Building`` contract); ``load_building``
writes it in ONE transaction through ``store/directory.py``, so a bad reference
writes nothing and loading the same file twice changes nothing.

Availability (issue 10): the site's ``time_zone`` and each unit's ``policy.quiet_hours`` /
``policy.ring_through_dnd`` are the manager's and load with the file; a person's own quiet
hours, do-not-disturb and away are theirs (``/v1/me/...``, ``/v1/users/{id}/...``) and a file
never touches them.

Tenancy (issue 9): a file is loaded into one tenant (``--tenant``, default the default tenant)
and describes one site (its ``site:``, else the tenant's default site); its units and devices
belong to that site. A file is refused, never merged (:class:`LoadRefused`, nothing written),
when its site belongs to another tenant, when one of its devices belongs to another site of
the tenant, or when a unit or device of the file names another site than the file's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import asyncpg
import yaml
from pydantic import BaseModel, ValidationError

from ringflow.contracts.directory import Building, SiteIn
from ringflow.contracts.tenancy import DEFAULT_SITE, DEFAULT_TENANT
from store import directory as store
from store.db import transaction

M = TypeVar("M", bound=BaseModel)


class BuildingFileError(ValueError):
    """A building file that cannot be read, parsed or validated. The message is ONE line
    (the CLI prints it as it is): the file, then the syntax error's line and column, or
    every bad field's path (``units.0.policy.ring_timeout_s``) with what is wrong with it."""


class LoadRefused(BuildingFileError):
    """The file would merge into another tenant's or another site's data; nothing was written.
    The message is one line and says what to do instead."""


def read_building(path: str | Path) -> Building:
    """The validated ``Building`` in ``path``: ``.json`` is JSON, anything else YAML
    (a JSON document is also valid YAML). Raises BuildingFileError."""
    return read_document(path, Building, "groups, devices, users, units, ...")


def read_document(path: str | Path, model: type[M], keys: str) -> M:
    """The validated ``model`` in the file ``path`` (a building file, a ``ringflow simulate``
    scenario): ``.json`` is JSON, anything else YAML. ``keys``: the top-level keys named when
    the top level is not a mapping. Raises BuildingFileError (one line: the file, then the
    syntax error's line and column, or every bad field's path with what is wrong)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BuildingFileError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise BuildingFileError(
            f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except yaml.YAMLError as e:
        raise BuildingFileError(f"{path}: not valid YAML{_yaml_where(e)}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildingFileError(f"{path}: the top level must be a mapping ({keys})")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BuildingFileError(f"{path}: {validation_summary(e)}") from e


def validation_summary(e: ValidationError) -> str:
    """``N invalid field(s): path.to.field: what is wrong; ...`` on one line."""
    fields = [f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()]
    n = e.error_count()
    return f"{n} invalid field{'s' if n > 1 else ''}: " + "; ".join(fields)


def _yaml_where(e: yaml.YAMLError) -> str:
    """`` at line L, column C: problem`` of a YAML error, on one line (PyYAML counts from 0)."""
    if not isinstance(e, yaml.MarkedYAMLError):
        return f": {' '.join(str(e).split())}"
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = (e.problem or "syntax error") + (f" ({e.context})" if e.context else "")
    return f"{where}: {problem}"


async def _refusal(conn: object, building: Building, site: str, tenant: str) -> str | None:
    """Why loading ``building`` (site ``site``) into ``tenant`` would merge into another site's
    or tenant's data, or None."""
    c: asyncpg.Connection = conn  # type: ignore[assignment]
    if await c.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant) is None:
        return f"no tenant {tenant!r} (create it first: ringflow tenants create {tenant})"
    if site != DEFAULT_SITE:
        owner = await c.fetchval(
            "SELECT tenant_id FROM sites WHERE id = $1 AND tenant_id <> $2 ORDER BY tenant_id LIMIT 1",
            site,
            tenant,
        )
        if owner is not None:
            return (
                f"site {site!r} belongs to another tenant ({owner!r}), not {tenant!r}: "
                f"refused, not merged (load it with --tenant {owner}, or name another site)"
            )
    for unit in building.units:
        if "site_id" in unit.model_fields_set and unit.site_id != site:
            return f"unit {unit.id!r} names site {unit.site_id!r} but the file is site {site!r}: refused"
    for device in building.devices:
        if "site_id" in device.model_fields_set and device.site_id != site:
            return (
                f"device {device.sn!r} names site {device.site_id!r} but the file is site {site!r}: refused"
            )
    sns = [d.sn for d in building.devices]
    row = await c.fetchrow(
        """SELECT sn, site_id FROM devices WHERE tenant_id = $1 AND sn = ANY($2::text[]) AND site_id <> $3
           ORDER BY sn LIMIT 1""",
        tenant,
        sns,
        site,
    )
    if row is not None:
        return (
            f"device {row['sn']!r} already belongs to site {row['site_id']!r} of tenant {tenant!r}, "
            f"not {site!r}: refused, not merged (move or delete it there first)"
        )
    return None


async def load_building(
    pool: asyncpg.Pool, building: Building, tenant: str = DEFAULT_TENANT
) -> dict[str, int]:
    """Upsert ``building`` into tenant ``tenant`` in one transaction; returns, per kind
    (``sites``, ``groups``, ``devices``, ``users``, ``units``, ``authorizations``), how many rows
    were created or changed (all 0 when the directory already matches the file).

    Order: groups, users, devices, units (residents replaced by the file's order),
    authorizations (added; none removed). The file is the declared state, so a
    device listed in another group than its current one is moved (``force_add``,
    reference 1(1)). Raises store.directory's UnknownReference / Invalid (then
    nothing is written). Raises :class:`LoadRefused` (nothing written) when the file would
    merge into another tenant's or site's data (module docstring).
    """
    site: SiteIn | None = building.site
    site_id = site.id if site is not None else DEFAULT_SITE
    counts = dict.fromkeys(("sites", "groups", "devices", "users", "units", "authorizations"), 0)
    async with transaction(pool) as conn:
        # one load at a time per tenant: two files racing for the same site or device never merge
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ringflow.load:' || $1))", tenant)
        refusal = await _refusal(conn, building, site_id, tenant)
        if refusal is not None:
            raise LoadRefused(refusal)
        if site is not None:
            counts["sites"] += await store.put_site(conn, site, tenant=tenant) is not store.Upsert.UNCHANGED
        t = tenant
        for group in building.groups:
            counts["groups"] += (await store.put_group(conn, group, tenant=t))[
                1
            ] is not store.Upsert.UNCHANGED
        for user in building.users:
            counts["users"] += (await store.put_user(conn, user, tenant=t))[1] is not store.Upsert.UNCHANGED
        for device in building.devices:
            device = device.model_copy(update={"site_id": site_id})
            _, status = await store.put_device(conn, device, force_add=True, tenant=t)
            counts["devices"] += status is not store.Upsert.UNCHANGED
        for unit in building.units:
            unit = unit.model_copy(update={"site_id": site_id})
            counts["units"] += (await store.put_unit(conn, unit, tenant=t))[1] is not store.Upsert.UNCHANGED
        for auth in building.authorizations:
            counts["authorizations"] += (await store.add_authorization(conn, auth, tenant=t))[1]
    if site is None:
        del counts["sites"]  # a file without a site prints as before
    return counts
