"""A bridge that dies mid-call (issue 13 item 4), on the embedded stack with one registered
bridge node of two media processes, the real worker (its node monitor included), the API, and
a door and a resident as agents (``ringflow/agent.py``) with real audio on 127.0.0.1:

- kill -9 of the media process holding a talking call: the node sees the exit, the call
  records ``mediaInterruptVoip``, pushes ``media_reoffer``, both agents offer again, the room
  lands on the other process, ``mediaResumeVoip`` has the interruption's length, audio flows
  both ways again, and the call ends normally with its keepTime billed;
- kill -9 of the whole node (no other node): the monitor sees its heartbeats stop, the call
  is told, no node can take the room, and the call ends with ``abortVoip`` after the join
  timeout, billed as before.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from media.network import MediaNetwork
from ringflow.agent import CallSession, DeviceAgent, MediaSpec, ResidentAgent, ResidentScript
from ringflow.contracts.common import Party, PartyKind
from tests.integration_helpers import World, poll, running_world

LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")

JOIN_TIMEOUT_S = 6.0
TALK = ResidentScript(preview=False, answer_after_s=0.3, talk_s=None)


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    MediaNetwork().install()
    async with running_world(
        tmp_path_factory.mktemp("failover"),
        media_enabled=True,
        media_processes=2,
        media_register=True,
        media_node_id="node-a",
        media_node_expiry_s=2.0,
        join_timeout_s=JOIN_TIMEOUT_S,
    ) as w:
        yield w


async def start_talk(
    world: World, prefix: str
) -> tuple[DeviceAgent, ResidentAgent, CallSession, CallSession]:
    [who] = await world.residents(1, prefix)
    resident = ResidentAgent(world.api_url, who.id, await world.backend.token(who), TALK)
    door = DeviceAgent(
        world.api_url,
        LOBBY.id,
        await world.backend.token(LOBBY),
        MediaSpec(tone_hz=440, video=None),
    )
    await resident.start()
    await door.start()
    mine = await door.place_call(callees=[resident.party], room_type="voice", policy={"ring_timeout_s": 20})
    await asyncio.wait_for(mine.talking.wait(), 20)
    theirs = resident.sessions[mine.call_id]
    await poll_heard(mine, theirs)
    return door, resident, mine, theirs


async def poll_heard(*sessions: CallSession, frames: int = 25, timeout: float = 15.0) -> None:
    """Every session's current peer heard ``frames`` loud audio frames."""
    start = {id(s.peer): s.peer.heard() if s.peer else 0 for s in sessions}
    deadline = time.monotonic() + timeout
    while not all(
        s.peer is not None and s.peer.heard() - start.get(id(s.peer), 0) >= frames for s in sessions
    ):
        assert time.monotonic() < deadline, [s.peer.heard() if s.peer else None for s in sessions]
        await asyncio.sleep(0.05)


async def node_info(world: World) -> dict[str, Any]:
    s = world.stack.settings
    async with httpx.AsyncClient(base_url=s.media_url, headers={"X-API-Key": s.api_key}) as http:
        return (await http.get("/node")).raise_for_status().json()


def events(view: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in view["events"] if e["name"] == name]


async def test_media_process_killed_mid_talk_the_call_resumes(world: World) -> None:
    door, resident, mine, theirs = await start_talk(world, "fo")
    try:
        call_id = mine.call_id
        old_peers = (mine.peer, theirs.peer)
        holder = next(p for p in (await node_info(world))["processes"] if p["rooms"])
        os.kill(holder["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        # both parties re-offered (new peers) and hear each other again, on the other process
        deadline = time.monotonic() + 15
        while not all(s.peer is not None and s.peer not in old_peers for s in (mine, theirs)):
            assert time.monotonic() < deadline, "no re-offer"
            await asyncio.sleep(0.05)
        await poll_heard(mine, theirs)
        resumed_after = time.monotonic() - killed_at
        info = await node_info(world)
        assert info["processes"][holder["index"]]["restarts"] == 1
        assert [p["index"] for p in info["processes"] if p["rooms"]] == [1 - holder["index"]]  # moved
        view = await poll(
            lambda: world.backend.call(call_id), lambda v: events(v, "mediaResumeVoip"), 10, "resumed"
        )
        [lost] = events(view, "mediaInterruptVoip")
        [back] = events(view, "mediaResumeVoip")
        assert lost["data"]["node"] == f"node-a/{holder['index']}"
        assert 0 < back["data"]["interruption_s"] <= resumed_after + 1.0
        assert back["data"]["node"] == "node-a"
        [answered] = events(view, "answered")
        assert answered["data"]["media_node"] == "node-a"  # the workflow knows where the room is
        assert view["phase"] == "talk"
        await asyncio.sleep(1.0)
        assert await door.hang_up(call_id) == 200
        ended = await door.wait_ended(call_id, 20)
        assert ended.end_reason == "hangUpVoip"
        view = await world.wait_ended(call_id, 20)
        names = [e["name"] for e in view["events"]]
        assert names.index("calling") < names.index("mediaInterruptVoip") < names.index("mediaResumeVoip")
        assert names.index("mediaResumeVoip") < names.index("hangUpVoip") < names.index("finishVoip")
        keep = view["keep_time_s"]
        assert keep >= 1 and (await world.rows(call_id))["billing"] == 1
        billed = await world.pool.fetchval("SELECT keep_time_s FROM billing WHERE call_id = $1", call_id)
        assert billed == keep  # the interruption is part of the talk, billed
        pushes = await world.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE call_id = $1 AND type = 'media_reoffer'", call_id
        )
        assert pushes == 2  # the door and the resident
    finally:
        await door.close()
        await resident.close()


async def test_a_talking_listener_offers_again_without_asking_the_workflow(world: World) -> None:
    """The API authorises a listener's offer from the attempts the call recorded (one read),
    not with a workflow query: with the worker stopped (SIGSTOP: no query could be answered)
    the talking resident's new offer (a reconnect on a live bridge) is answered at once; the
    agent closes its old peer only after that (make before break), so the call goes on and
    the new peer hears the door."""
    door, resident, mine, theirs = await start_talk(world, "rq")
    worker = world.stack.worker.pid
    try:
        old = theirs.peer
        os.kill(worker, signal.SIGSTOP)
        try:
            async with asyncio.timeout(5):  # a workflow query would wait for the worker
                await resident.join(theirs)
        finally:
            os.kill(worker, signal.SIGCONT)
        assert theirs.peer is not None and theirs.peer is not old
        await poll_heard(mine, theirs)
        assert await door.hang_up(mine.call_id) == 200
        assert (await door.wait_ended(mine.call_id, 20)).end_reason == "hangUpVoip"
    finally:
        await door.close()
        await resident.close()


async def test_node_killed_with_no_other_node_aborts(world: World) -> None:
    door, resident, mine, _ = await start_talk(world, "fn")
    try:
        call_id = mine.call_id
        await asyncio.to_thread(world.stack.media.kill)  # the node and, with it, its processes
        view = await world.wait_ended(call_id, JOIN_TIMEOUT_S + 20)
        assert view["end_reason"] == "abortVoip"
        names = [e["name"] for e in view["events"]]
        assert names.index("mediaInterruptVoip") < names.index("abortVoip") < names.index("finishVoip")
        assert "mediaResumeVoip" not in names
        [lost] = events(view, "mediaInterruptVoip")
        assert lost["data"]["node"] == "node-a"
        [abort] = events(view, "abortVoip")
        assert "media bridge lost" in abort["reason"]
        assert (await world.rows(call_id))["billing"] == 1  # the talk before the loss is billed
    finally:
        await door.close()
        await resident.close()
