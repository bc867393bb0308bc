"""A resident's own availability in PostgreSQL (``user_availability``, migration 0009):
do-not-disturb with an optional expiry (issue 11 item 5). Times are timestamptz (UTC); an
expired do-not-disturb is off (compared with the database's ``now()``), whether or not its
row was cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

Conn = Any  # asyncpg.Connection or Pool (both have fetchrow/execute)


@dataclass(frozen=True)
class OwnDnd:
    """The resident's own do-not-disturb: ``active`` now; ``since``/``until`` as set
    (``until`` None = no expiry)."""

    active: bool
    since: datetime | None
    until: datetime | None


async def own_dnd(conn: Conn, user_id: str) -> OwnDnd:
    """The user's own do-not-disturb (off when no row). Raises asyncpg errors only."""
    row = await conn.fetchrow(
        """SELECT dnd AND (dnd_until IS NULL OR dnd_until > now()) AS active, dnd_since, dnd_until
             FROM user_availability WHERE user_id = $1""",
        user_id,
    )
    if row is None or not row["active"]:
        return OwnDnd(False, None, None)
    return OwnDnd(True, row["dnd_since"], row["dnd_until"])


async def set_dnd(conn: Conn, user_id: str, until: datetime | None) -> OwnDnd:
    """Switch the user's do-not-disturb on until ``until`` (None = until switched off);
    ``since`` stays when it was already on. Returns the new state."""
    row = await conn.fetchrow(
        """INSERT INTO user_availability AS a (user_id, dnd, dnd_since, dnd_until, updated_at)
           VALUES ($1, true, now(), $2, now())
           ON CONFLICT (user_id) DO UPDATE SET
               dnd = true,
               dnd_since = CASE WHEN a.dnd AND (a.dnd_until IS NULL OR a.dnd_until > now())
                                THEN a.dnd_since ELSE now() END,
               dnd_until = EXCLUDED.dnd_until,
               updated_at = now()
           RETURNING dnd_since, dnd_until""",
        user_id,
        until,
    )
    return OwnDnd(True, row["dnd_since"], row["dnd_until"])


async def clear_dnd(conn: Conn, user_id: str) -> None:
    """Switch the user's do-not-disturb off (nothing when it was off)."""
    await conn.execute(
        """UPDATE user_availability SET dnd = false, dnd_since = NULL, dnd_until = NULL, updated_at = now()
            WHERE user_id = $1""",
        user_id,
    )
