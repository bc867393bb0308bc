"""A media bridge node with two media processes on the embedded stack (issue 13 items 2 and 3):
rooms go to the least loaded process, every control route reaches the room's process through
the node's one control API, a killed process is restarted (and its room placed again on the
next offer), and the node registers itself in PostgreSQL and heartbeats its load there.
Real processes, real Temporal and PostgreSQL, aiortc peers with real audio on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from media.network import MediaNetwork
from media.peer import ClientPeer, ToneTrack
from ringflow.contracts.common import Party, PartyKind
from ringflow.stack.embedded import EmbeddedStack, isolated_settings


async def node_info(http: httpx.AsyncClient) -> dict[str, Any]:
    return (await http.get("/node")).raise_for_status().json()


async def offer(http: httpx.AsyncClient, room: str, party: Party, peer: ClientPeer) -> None:
    body = {"party": party.model_dump(mode="json"), "role": "caller", "sdp": await peer.offer()}
    r = await http.post(f"/rooms/{room}/peers", json=body)
    assert r.status_code == 200, r.text
    await peer.accept(r.json()["sdp"])


async def test_node_places_routes_restarts_and_registers(tmp_path: Path) -> None:
    MediaNetwork().install()
    settings = isolated_settings(
        tmp_path / "data",
        media_enabled=True,
        media_processes=2,
        media_register=True,
        media_node_id="node-a",
        media_recordings_dir=tmp_path / "recordings",
    )
    async with EmbeddedStack(settings, ui=False, worker=False, api=False) as stack:
        s = stack.settings
        door = Party(kind=PartyKind.DEVICE, id="DOOR")
        rooms = [f"room-{uuid.uuid4().hex[:6]}" for _ in range(2)]
        peers = [ClientPeer([ToneTrack(440)]) for _ in range(3)]
        db = await asyncpg.connect(s.database_url)
        try:
            async with httpx.AsyncClient(base_url=s.media_url, headers={"X-API-Key": s.api_key}) as http:
                assert (await http.get("/node", headers={"X-API-Key": "wrong"})).status_code == 401
                # placement: two rooms, one on each process (least loaded first)
                for room, peer in zip(rooms, peers, strict=False):
                    await offer(http, room, door, peer)
                info = await node_info(http)
                assert [p["rooms"] for p in info["processes"]] == [1, 1]
                assert all(p["ready"] and p["pid"] for p in info["processes"])
                await peers[0].connected()
                # every control route through the node's URL
                r = await http.put(f"/rooms/{rooms[0]}/talker", json={"party": None, "record": False})
                assert r.status_code == 200 and r.json()["call_id"] == rooms[0]
                assert [p["rooms"] for p in (await node_info(http))["processes"]] == [1, 1]  # followed
                stats = (await http.get(f"/rooms/{rooms[0]}/stats")).raise_for_status().json()
                assert stats["call_id"] == rooms[0] and stats["parties"][0]["party"]["id"] == "DOOR"
                r = await http.get(f"/rooms/{rooms[0]}/snapshot")  # a voice room has no picture
                assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
                assert sorted(x["call_id"] for x in (await http.get("/rooms")).json()) == sorted(rooms)
                metrics = (await http.get("/metrics")).text
                assert 'ringflow_media_rooms{process="0"} 1.0' in metrics
                assert 'ringflow_media_rooms{process="1"} 1.0' in metrics
                assert (await http.get("/readyz")).status_code == 200
                closed = (await http.delete(f"/rooms/{rooms[0]}")).raise_for_status().json()
                assert closed["call_id"] == rooms[0]
                again = await http.delete(f"/rooms/{rooms[0]}")  # kept final stats, found by asking all
                assert again.status_code == 200 and again.json()["call_id"] == rooms[0]
                assert (await http.get(f"/rooms/{rooms[0]}/stats")).status_code == 200
                assert (await http.get("/rooms/nothing-here/stats")).status_code == 404

                # the registry: one row, capacity of two processes, load and a fresh heartbeat
                async def row() -> Any:
                    return await db.fetchrow("SELECT *, now() - heartbeat_at AS age FROM media_nodes")

                await asyncio.sleep(1.2)  # a heartbeat after the offers
                first = await row()
                assert first["node_id"] == "node-a" and first["control_url"] == s.media_url
                assert first["processes"] == 2 and first["capacity"] == 2 * s.media_process_capacity
                assert first["media_address"] == "127.0.0.1"
                await asyncio.sleep(1.5)
                later = await row()
                assert later["heartbeat_at"] > first["heartbeat_at"] and later["age"].total_seconds() < 2
                assert later["rooms"] == 1 and later["peers"] == 1

                # kill -9 the process holding room 1: restarted on its port, the room placed again
                holder = next(p for p in (await node_info(http))["processes"] if p["rooms"])
                os.kill(holder["pid"], signal.SIGKILL)

                async def restarted() -> bool:
                    p = (await node_info(http))["processes"][holder["index"]]
                    return p["restarts"] == 1 and p["ready"] and p["pid"] not in (None, holder["pid"])

                for _ in range(300):
                    if await restarted():
                        break
                    await asyncio.sleep(0.1)
                assert await restarted()
                await offer(http, rooms[1], door, peers[2])
                await peers[2].connected()
                assert sum(p["rooms"] for p in (await node_info(http))["processes"]) == 1
        finally:
            await db.close()
            for peer in peers:
                await peer.close()
