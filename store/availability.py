"""A person's availability in PostgreSQL (``user_availability``, migrations 0009 and 0010):
manual do-not-disturb, away and weekly quiet hours, one row per person keyed by the
tenant-qualified user id (``tenancy.qualify``); and what a ring needs of its call (the unit
``start_call`` recorded, the site's time zone).

Only loading and storing: whether a person may be rung, or what their presence is, is decided
at a given instant by the pure rules of :mod:`ringflow.availability` (an expired switch is off
whether or not its row was cleared). Times are timestamptz (UTC).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ringflow.availability import PersonAvailability
from ringflow.contracts.availability import QuietHours
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.tenancy import party_key, qualify

Conn = Any  # asyncpg.Connection or Pool (both have fetchrow/execute)

_RULES = TypeAdapter(list[QuietHours])
log = logging.getLogger(__name__)


def _rules(raw: str | None) -> tuple[QuietHours, ...]:
    """The stored rules; a rule this machine cannot read any more (its time zone unknown to this
    machine's tz database) is left out and logged: a ring must not fail for it."""
    if not raw:
        return ()
    try:
        return tuple(_RULES.validate_json(raw))
    except ValidationError:
        kept = []
        for item in json.loads(raw):
            try:
                kept.append(QuietHours.model_validate(item))
            except ValidationError as e:
                log.warning("quiet-hours rule %s left out: %s", item, e.errors()[0]["msg"])
        return tuple(kept)


async def load_person(conn: Conn, user_id: str, *, tenant: str) -> PersonAvailability | None:
    """Everything stored about user ``user_id`` of ``tenant``'s availability (the manager's
    ``do_not_disturb`` and the ``user_availability`` row), or None when there is no such user."""
    row = await conn.fetchrow(
        """SELECT u.do_not_disturb, a.dnd, a.dnd_since, a.dnd_until, a.away, a.away_since,
                  a.away_until, a.quiet_hours::text AS quiet_hours
             FROM users u LEFT JOIN user_availability a ON a.user_id = $3
            WHERE u.tenant_id = $1 AND u.id = $2""",
        tenant,
        user_id,
        qualify(tenant, user_id),
    )
    if row is None:
        return None
    return PersonAvailability(
        user_id=user_id,
        manager_dnd=row["do_not_disturb"],
        dnd=bool(row["dnd"]),
        dnd_since=row["dnd_since"],
        dnd_until=row["dnd_until"],
        away=bool(row["away"]),
        away_since=row["away_since"],
        away_until=row["away_until"],
        quiet_hours=_rules(row["quiet_hours"]),
    )


# a switch with a start and an optional expiry: its column, since and until columns
_SWITCHES = {"dnd": ("dnd", "dnd_since", "dnd_until"), "away": ("away", "away_since", "away_until")}


async def _switch_on(conn: Conn, switch: str, key: str, until: datetime | None) -> None:
    """Switch ``switch`` (``dnd`` or ``away``) of the person ``key`` (tenant-qualified user id)
    on until ``until`` (None = until switched off); its ``since`` stays when it was already on
    (and not expired)."""
    on, since, end = _SWITCHES[switch]
    await conn.execute(
        f"""INSERT INTO user_availability AS a (user_id, {on}, {since}, {end}, updated_at)
            VALUES ($1, true, now(), $2, now())
            ON CONFLICT (user_id) DO UPDATE SET
                {on} = true,
                {since} = CASE WHEN a.{on} AND (a.{end} IS NULL OR a.{end} > now())
                               THEN a.{since} ELSE now() END,
                {end} = EXCLUDED.{end},
                updated_at = now()""",
        key,
        until,
    )


async def _switch_off(conn: Conn, switch: str, key: str) -> None:
    on, since, end = _SWITCHES[switch]
    await conn.execute(
        f"""UPDATE user_availability SET {on} = false, {since} = NULL, {end} = NULL, updated_at = now()
             WHERE user_id = $1""",
        key,
    )


async def set_dnd(conn: Conn, key: str, until: datetime | None) -> None:
    """Switch the manual do-not-disturb of the person ``key`` (tenant-qualified user id) on
    until ``until`` (None = until switched off); ``since`` stays when it was already on."""
    await _switch_on(conn, "dnd", key, until)


async def clear_dnd(conn: Conn, key: str) -> None:
    """Switch the person's manual do-not-disturb off (nothing when it was off)."""
    await _switch_off(conn, "dnd", key)


async def set_away(conn: Conn, key: str, until: datetime | None) -> None:
    """Set the person ``key`` away until ``until`` (None = until set back); ``since`` stays when
    they were already away."""
    await _switch_on(conn, "away", key, until)


async def clear_away(conn: Conn, key: str) -> None:
    """Set the person ``key`` available (nothing when they were not away)."""
    await _switch_off(conn, "away", key)


async def put_quiet_hours(conn: Conn, key: str, rules: list[QuietHours]) -> None:
    """Replace the weekly quiet-hours rules of the person ``key`` (an empty list: none)."""
    await conn.execute(
        """INSERT INTO user_availability AS a (user_id, quiet_hours, updated_at)
           VALUES ($1, $2::text::jsonb, now())
           ON CONFLICT (user_id) DO UPDATE SET quiet_hours = EXCLUDED.quiet_hours, updated_at = now()""",
        key,
        json.dumps([r.model_dump(mode="json") for r in rules]),
    )


async def call_unit(conn: Conn, call_id: str) -> tuple[str | None, str | None] | None:
    """(unit_id, site_id) of the ``calls`` row of ``call_id`` (as ``start_call`` recorded them),
    or None when there is no such call."""
    row = await conn.fetchrow("SELECT unit_id, site_id FROM calls WHERE call_id = $1", call_id)
    return None if row is None else (row["unit_id"], row["site_id"])


async def site_zone(conn: Conn, tenant: str, site: str) -> str | None:
    """The IANA time zone of ``tenant``'s site ``site``, or None when there is no such site."""
    zone: str | None = await conn.fetchval(
        "SELECT time_zone FROM sites WHERE tenant_id = $1 AND id = $2", tenant, site
    )
    return zone


async def line_call(conn: Conn, user_id: str, *, tenant: str) -> str | None:
    """The call (tenant-qualified id) whose room holds user ``user_id``'s line in ``tenant``
    (one line per person across the tenant's sites: ``store/calls.py`` line claims), or None."""
    key = party_key(tenant, Party(kind=PartyKind.USER, id=user_id))
    held = await conn.fetchval("SELECT call_id FROM line_claims WHERE party_key = $1", key)
    return None if held is None else str(held)
