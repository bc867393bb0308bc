"""The media node registry (``store/media_nodes.py``, migration 0011) on a real PostgreSQL:
no row -> fallback to ``media_url``; placement on the least loaded live node, kept while the
node lives, moved when it dies; the rooms of a dead node are claimed once; the monitor's
lease has one holder at a time; concurrent placements of one room agree."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from api.routers.health import check_bridge
from ringflow.stack.ports import free_port
from store import media_nodes as reg
from store.media_nodes import NodeLoad

EXPIRY_S = 1.0


def node(node_id: str, rooms: int = 0, capacity: int = 10, cpu: float = 0.0) -> NodeLoad:
    return NodeLoad(node_id, f"http://{node_id}:8090", "198.51.100.1", capacity, 2, rooms, 2 * rooms, cpu)


async def test_no_registry_falls_back(db_pool: asyncpg.Pool) -> None:
    assert await reg.place_room(db_pool, "c1", EXPIRY_S) is None
    assert await reg.room_url(db_pool, "c1", "http://fallback", EXPIRY_S, place=True) == (
        "http://fallback",
        None,
    )
    assert await reg.room_url(None, "c1", "http://fallback", EXPIRY_S, place=True) == (
        "http://fallback",
        None,
    )
    assert await reg.live_nodes(db_pool, EXPIRY_S) is None


async def test_placement_least_loaded_kept_moved_and_claimed_once(db_pool: asyncpg.Pool) -> None:
    await reg.heartbeat(db_pool, node("a", rooms=5))
    await reg.heartbeat(db_pool, node("b", rooms=1))
    await reg.heartbeat(db_pool, node("c", rooms=1, cpu=80.0))  # as few rooms as b, busier CPU
    await reg.heartbeat(db_pool, node("full", rooms=10))  # at capacity: never chosen
    first = await reg.place_room(db_pool, "c1", EXPIRY_S)
    assert first is not None and (first.node_id, first.control_url, first.moves) == ("b", "http://b:8090", 0)
    # rooms placed since b's last heartbeat count: the next room goes to c, then b and c alternate
    assert (await reg.place_room(db_pool, "c2", EXPIRY_S)).node_id == "c"  # type: ignore[union-attr]
    assert (await reg.place_room(db_pool, "c1", EXPIRY_S)).node_id == "b"  # type: ignore[union-attr]
    assert [n.node_id for n in await reg.live_nodes(db_pool, EXPIRY_S) or []][:2] == ["b", "c"]
    # b dies (no heartbeat for EXPIRY_S); a, c and full go on
    await asyncio.sleep(EXPIRY_S + 0.2)
    for alive in (node("a", rooms=5), node("c", rooms=2, cpu=80.0), node("full", rooms=10)):
        await reg.heartbeat(db_pool, alive)
    lost = await reg.claim_lost_rooms(db_pool, EXPIRY_S)
    assert [(p.call_id, p.node_id) for p in lost] == [("c1", "b")]
    assert await reg.claim_lost_rooms(db_pool, EXPIRY_S) == []  # told once
    moved = await reg.place_room(db_pool, "c1", EXPIRY_S)
    assert moved is not None and moved.node_id == "c" and moved.moves == 1
    assert (await reg.room_node(db_pool, "c1")).node_id == "c"  # type: ignore[union-attr]
    # a closed room is not claimed when its node dies later
    await reg.close_room(db_pool, "c2")
    await reg.deregister(db_pool, "c")  # a node stopping is dead at once
    assert [p.call_id for p in await reg.claim_lost_rooms(db_pool, EXPIRY_S)] == ["c1"]
    assert await db_pool.fetchval("SELECT lost_at IS NOT NULL FROM media_nodes WHERE node_id = 'c'")
    # every live node full or gone: no node can take a room
    await reg.deregister(db_pool, "a")
    with pytest.raises(reg.NoMediaNode):
        await reg.place_room(db_pool, "c3", EXPIRY_S)
    # a node that comes back heartbeats itself live again
    await reg.heartbeat(db_pool, node("b"))
    assert (await reg.place_room(db_pool, "c3", EXPIRY_S)).node_id == "b"  # type: ignore[union-attr]


async def test_concurrent_placements_of_one_room_agree(db_pool: asyncpg.Pool) -> None:
    for name in "abcd":
        await reg.heartbeat(db_pool, node(name))
    placed = await asyncio.gather(*(reg.place_room(db_pool, "race", EXPIRY_S) for _ in range(8)))
    assert len({p.node_id for p in placed if p is not None}) == 1
    assert await db_pool.fetchval("SELECT count(*) FROM media_rooms") == 1


async def test_monitor_lease_has_one_holder(db_pool: asyncpg.Pool) -> None:
    assert await reg.take_lease(db_pool, "w1", 0.5)
    assert not await reg.take_lease(db_pool, "w2", 0.5)
    assert await reg.take_lease(db_pool, "w1", 0.5)  # renewed by its holder
    await asyncio.sleep(0.6)
    assert await reg.take_lease(db_pool, "w2", 0.5)  # expired: another worker takes over
    assert not await reg.take_lease(db_pool, "w1", 0.5)


async def test_readyz_bridge_check_follows_the_registry(db_pool: asyncpg.Pool) -> None:
    """API ``/readyz`` ``bridge``: no node registered -> the bridge at media_url must answer (here
    nothing listens: refused); a live node -> ready without asking media_url; every node dead
    -> not ready."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(httpx.HTTPError):
        await check_bridge(db_pool, unreachable, EXPIRY_S)
    await reg.heartbeat(db_pool, node("a"))
    await check_bridge(db_pool, unreachable, EXPIRY_S)
    await reg.deregister(db_pool, "a")
    with pytest.raises(RuntimeError, match="no registered media bridge node is live"):
        await check_bridge(db_pool, unreachable, EXPIRY_S)
