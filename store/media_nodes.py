"""The media node registry in PostgreSQL (migration 0011, issue 13 items 3 and 4).

A media bridge node (``media/node.py``) registers itself and heartbeats its load every
``media_node_heartbeat_s`` (:func:`heartbeat`); it is **live** while its last heartbeat is
younger than ``expiry_s`` seconds (database clock). A building call's media room is placed
on a node once (:func:`place_room`: the least loaded live node, rooms per capacity first,
then CPU) and stays there (``media_rooms``) until that node dies: the next placement of the
room then moves it. The node monitor in the worker (``ringflow/media_monitor.py``) marks
the rooms of dead nodes lost (:func:`claim_lost_rooms`) under a lease (:func:`take_lease`)
and tells their calls.

No registry row at all means a single-bridge deployment: :func:`place_room` and
:func:`room_node` return None and callers use ``settings.media_url`` (docs/media.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

Conn = Any  # asyncpg.Connection or Pool

KEEP_DEAD_S = 86400.0
"""How long a dead node's row stays (seconds): long enough for every call it held to end."""


class NoMediaNode(Exception):
    """Nodes are registered but none is live with room to spare (API 503 ``media-unavailable``;
    the media activities fail with ``NoMediaNode``)."""


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """What a node reports at each heartbeat. ``capacity``: rooms it accepts in all;
    ``rooms``/``peers``: open now; ``cpu_percent``: percent of one core, summed over its
    media processes; ``media_address``: the address announced in its SDP answers."""

    node_id: str
    control_url: str
    media_address: str | None
    capacity: int
    processes: int = 1
    rooms: int = 0
    peers: int = 0
    cpu_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Room ``call_id`` is on node ``node_id`` (control API ``control_url``); ``moves``: how
    many times it moved to another node."""

    call_id: str
    node_id: str
    control_url: str
    moves: int = 0


async def heartbeat(conn: Conn, load: NodeLoad) -> None:
    """Register or refresh ``load.node_id`` (heartbeat now, not lost)."""
    await conn.execute(
        """INSERT INTO media_nodes AS n (node_id, control_url, media_address, capacity, processes,
                                         rooms, peers, cpu_percent)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (node_id) DO UPDATE SET
               control_url = EXCLUDED.control_url, media_address = EXCLUDED.media_address,
               capacity = EXCLUDED.capacity, processes = EXCLUDED.processes,
               rooms = EXCLUDED.rooms, peers = EXCLUDED.peers, cpu_percent = EXCLUDED.cpu_percent,
               heartbeat_at = now(), lost_at = NULL,
               started_at = CASE WHEN n.lost_at IS NULL THEN n.started_at ELSE now() END""",
        load.node_id,
        load.control_url,
        load.media_address,
        load.capacity,
        load.processes,
        load.rooms,
        load.peers,
        load.cpu_percent,
    )


async def deregister(conn: Conn, node_id: str) -> None:
    """A node stopping: it is dead at once (its open rooms are moved by the monitor, as after
    a crash, so a rolling restart keeps the calls); the row stays so that the registry is
    still known to exist."""
    await conn.execute("UPDATE media_nodes SET heartbeat_at = '-infinity' WHERE node_id = $1", node_id)


async def any_node(conn: Conn) -> bool:
    """A node was ever registered (the registry is in use)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM media_nodes)"))


_LIVE = "n.heartbeat_at > now() - make_interval(secs => $1)"


async def live_nodes(conn: Conn, expiry_s: float) -> list[NodeLoad] | None:
    """The live nodes, least loaded first; None when no node was ever registered."""
    rows = await conn.fetch(
        f"""SELECT n.*, {_LIVE} AS live FROM media_nodes n
             ORDER BY n.rooms::float / n.capacity, n.cpu_percent""",
        expiry_s,
    )
    if not rows:
        return None
    return [
        NodeLoad(
            r["node_id"],
            r["control_url"],
            r["media_address"],
            r["capacity"],
            r["processes"],
            r["rooms"],
            r["peers"],
            r["cpu_percent"],
        )
        for r in rows
        if r["live"]
    ]


_PLACED = f"""SELECT r.node_id, r.moves, n.control_url, {_LIVE} AS live
                FROM media_rooms r JOIN media_nodes n USING (node_id) WHERE r.call_id = $2"""
"""Where room $2 is placed and whether that node is live ($1: the expiry, seconds)."""


async def place_room(pool: asyncpg.Pool, call_id: str, expiry_s: float) -> Placement | None:
    """The node of room ``call_id``: where it is, if that node is live; else the least loaded
    live node with room to spare (its last reported rooms plus the rooms placed on it since,
    per capacity; then CPU), recorded (a room that moves counts ``moves``). None when no node
    was ever registered (use ``media_url``). Raises :class:`NoMediaNode` when none is live
    with capacity. Safe under concurrent calls for the same room (one placement wins).

    A room already on a live node costs one read (every offer after a room's first, e.g. the
    re-offers of a failover inside a node); only a placement takes the transaction and the
    room's lock."""
    row = await pool.fetchrow(_PLACED, expiry_s, call_id)
    if row is not None and row["live"]:
        return Placement(call_id, row["node_id"], row["control_url"], row["moves"])
    async with pool.acquire() as c, c.transaction():
        if not await any_node(c):
            return None
        await c.execute("SELECT pg_advisory_xact_lock(hashtext('media_rooms:' || $1))", call_id)
        row = await c.fetchrow(_PLACED, expiry_s, call_id)
        if row is not None and row["live"]:
            return Placement(call_id, row["node_id"], row["control_url"], row["moves"])
        best = await c.fetchrow(
            f"""SELECT node_id, control_url FROM (
                  SELECT n.node_id, n.control_url, n.capacity, n.cpu_percent,
                         n.rooms + (SELECT count(*) FROM media_rooms r
                                     WHERE r.node_id = n.node_id AND r.closed_at IS NULL
                                       AND r.placed_at > n.heartbeat_at - interval '1 second') AS load
                    FROM media_nodes n WHERE {_LIVE}) s
                 WHERE load < capacity
                 ORDER BY load::float / capacity, cpu_percent, node_id LIMIT 1""",
            expiry_s,
        )
        if best is None:
            raise NoMediaNode("no live media node")
        moves = 0 if row is None else row["moves"] + 1
        await c.execute(
            """INSERT INTO media_rooms (call_id, node_id) VALUES ($1, $2)
               ON CONFLICT (call_id) DO UPDATE SET node_id = $2, placed_at = now(),
                   moves = media_rooms.moves + 1, lost_at = NULL, closed_at = NULL""",
            call_id,
            best["node_id"],
        )
        return Placement(call_id, best["node_id"], best["control_url"], moves)


async def room_node(conn: Conn, call_id: str) -> Placement | None:
    """Where room ``call_id`` is or was last (live or not, open or closed); None when it was
    never placed through the registry."""
    row = await conn.fetchrow(
        """SELECT r.node_id, r.moves, n.control_url FROM media_rooms r JOIN media_nodes n USING (node_id)
            WHERE r.call_id = $1""",
        call_id,
    )
    return None if row is None else Placement(call_id, row["node_id"], row["control_url"], row["moves"])


async def close_room(conn: Conn, call_id: str) -> None:
    """Room ``call_id`` was closed by its call (the monitor no longer watches it)."""
    await conn.execute("UPDATE media_rooms SET closed_at = now() WHERE call_id = $1", call_id)


async def claim_lost_rooms(pool: asyncpg.Pool, expiry_s: float) -> list[Placement]:
    """The open rooms of nodes that missed their heartbeats for ``expiry_s`` seconds, marked
    lost (each is returned once: the caller tells its call), and those nodes marked lost."""
    async with pool.acquire() as c, c.transaction():
        await c.execute(
            f"UPDATE media_nodes n SET lost_at = now() WHERE lost_at IS NULL AND NOT ({_LIVE})", expiry_s
        )
        rows = await c.fetch(
            f"""UPDATE media_rooms r SET lost_at = now()
                  FROM media_nodes n
                 WHERE n.node_id = r.node_id AND r.closed_at IS NULL AND r.lost_at IS NULL
                   AND NOT ({_LIVE})
             RETURNING r.call_id, r.node_id, n.control_url, r.moves""",
            expiry_s,
        )
        await c.execute(
            "DELETE FROM media_nodes WHERE lost_at < now() - make_interval(secs => $1)", KEEP_DEAD_S
        )
        await c.execute(
            "DELETE FROM media_rooms WHERE placed_at < now() - make_interval(secs => $1)", KEEP_DEAD_S
        )
    return [Placement(r["call_id"], r["node_id"], r["control_url"], r["moves"]) for r in rows]


async def take_lease(conn: Conn, holder: str, lease_s: float) -> bool:
    """Take or renew the node monitor's lease for ``lease_s`` seconds; True when ``holder``
    holds it now (it was free, expired, or already ``holder``'s)."""
    got = await conn.fetchval(
        """INSERT INTO media_monitor_lease AS l (id, holder, until)
           VALUES (1, $1, now() + make_interval(secs => $2))
           ON CONFLICT (id) DO UPDATE SET holder = $1, until = EXCLUDED.until
             WHERE l.holder = $1 OR l.until < now()
           RETURNING holder""",
        holder,
        lease_s,
    )
    return got == holder


async def room_url(
    pool: asyncpg.Pool | None, call_id: str, default_url: str, expiry_s: float, place: bool
) -> tuple[str, Placement | None]:
    """The control URL for room ``call_id`` and its placement: with ``place``, where
    :func:`place_room` puts it (raises :class:`NoMediaNode`); else where it is or was
    (:func:`room_node`). ``default_url`` (``settings.media_url``) and None without a
    ``pool`` or without a registered node / a placement."""
    if pool is None:
        return default_url, None
    found = await (place_room(pool, call_id, expiry_s) if place else room_node(pool, call_id))
    return (found.control_url, found) if found is not None else (default_url, None)
