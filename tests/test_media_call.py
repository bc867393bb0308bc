"""Media drives the call: the REST signaling endpoint, the bridge process's control API
(uvicorn on 127.0.0.1) and the real EscalationWorkflow/CallWorkflow (fake activities)
on the dev server, with real aiortc peers sending a tone.

joinedRoomByCaller when the door's media connects, talk (``calling``) when the
answering resident's connects, abortVoip when the resident's media vanishes, and
joinFailCaller when the door's never connects; the problems of ``/media``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api import tokens
from api.app import create_app
from media.bridge import Bridge
from media.models import Role
from media.peer import ClientPeer, ToneTrack
from media.server import create_bridge_app
from media.signals import TemporalReporter
from ringflow.contracts.calls import AnswerInput, CallStatus, EscalationInput, EscalationResult, Phase
from ringflow.contracts.common import Party
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.escalation import EscalationWorkflow

ALICE, MALLORY = user("alice"), user("mallory")


@dataclass
class Stack:
    api: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    bridge: Bridge
    fake: FakeDirectory
    env: WorkflowEnvironment

    def auth(self, party: Party) -> dict[str, str]:
        token, _ = tokens.issue(party, self.settings.token_secret, 3600)
        return {"Authorization": f"Bearer {token}"}

    async def call(self, **kw: Any) -> tuple[WorkflowHandle[Any, Any], str]:
        """Start a media-required call to unit 101 (alice first); (handle, alice's room_id)."""
        inp = EscalationInput(
            call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, unit_id="101", media_required=True, **kw
        )
        handle = await self.env.client.start_workflow(
            EscalationWorkflow.run, inp, id=inp.call_id, task_queue=self.settings.task_queue
        )
        status: CallStatus | None = None

        async def ringing() -> bool:
            nonlocal status
            status = await handle.query(EscalationWorkflow.status)
            return ALICE in status.ringing

        for _ in range(200):
            if await ringing():
                break
            await asyncio.sleep(0.05)
        assert status is not None and ALICE in status.ringing, status
        return handle, status.attempts[0].room_id

    async def join(self, call_id: str, room_id: str, party: Party, peer: ClientPeer) -> None:
        r = await self.offer(call_id, room_id, party, await peer.offer())
        assert r.status_code == 200, r.text
        await peer.accept(r.json()["sdp"])

    async def offer(self, call_id: str, room_id: str, party: Party, sdp: str) -> httpx.Response:
        return await self.api.post(
            f"/v1/calls/{call_id}/media",
            json={"room_id": room_id, "sdp": sdp, "type": "offer"},
            headers=self.auth(party),
        )


async def serve(app: FastAPI, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())
        yield
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def stack(db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Stack]:
    port = free_port()
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        media_url=f"http://127.0.0.1:{port}",
        media_port=port,
        media_connect_timeout_s=2.0,
        media_disconnect_grace_s=1.0,
    )
    fake = FakeDirectory()
    bridge_app = create_bridge_app(settings, TemporalReporter(dev_env.client, retry_s=0.2))
    app = create_app(settings)
    async with running(dev_env, task_queue, fake), LifespanManager(app):
        async for _ in serve(bridge_app, port):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ringflow"
            ) as api:
                yield Stack(api, app, settings, bridge_app.state.bridge, fake, dev_env)


async def test_media_joins_talks_and_aborts_the_call(stack: Stack) -> None:
    handle, room = await stack.call()
    door, alice = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
    try:
        await stack.join(handle.id, room, LOBBY, door)
        await until(lambda: "joinedRoomByCaller" in stack.fake.names(room_id=room))
        assert (await handle.query(EscalationWorkflow.status)).phase == Phase.WAIT  # still ringing
        await handle.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))
        assert "calling" not in stack.fake.names(room_id=room)  # answered is not talk: media is
        await stack.join(handle.id, room, ALICE, alice)
        await until(lambda: "calling" in stack.fake.names(room_id=room))
        await until(lambda: door.heard() >= 10 and alice.heard() >= 10)
        status = await handle.query(EscalationWorkflow.status)
        assert status.phase == Phase.TALK and status.answered_by == ALICE
        await alice.close()  # the resident's app is killed
        result: EscalationResult = await asyncio.wait_for(handle.result(), 20)
        assert result.end_reason == "abortVoip" and result.answered_by == ALICE
        names = stack.fake.names(room_id=room)
        assert names.index("joinedRoomByCaller") < names.index("answered") < names.index("calling")
        assert names.index("calling") < names.index("abortVoip") < names.index("endVoip")
        # the room's workflow ended: the bridge closes the room and the door's peer
        pc = stack.bridge.rooms[room].peers[Role.CALLER].pc if stack.bridge.rooms else None
        await until(lambda: not stack.bridge.rooms and (pc is None or pc.connectionState == "closed"))
    finally:
        await door.close()
        await alice.close()


async def test_door_media_that_never_connects_is_join_fail_caller(stack: Stack) -> None:
    handle, room = await stack.call()
    door = ClientPeer([ToneTrack()])
    try:
        r = await stack.offer(handle.id, room, LOBBY, await door.offer())
        assert r.status_code == 200, r.text  # the answer is never applied: no ICE
        await until(lambda: "joinFailCaller" in stack.fake.names(room_id=room), timeout=15)
        [event] = [e for e in stack.fake.events(room_id=room) if e.name == "joinFailCaller"]
        assert event.reason == "no media connection in 2 s"
    finally:
        await door.close()
        await handle.terminate()


def assert_problem(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"urn:ringflow:problem:{slug}"


async def test_media_problems(stack: Stack) -> None:
    handle, room = await stack.call()
    door = ClientPeer([ToneTrack()])
    try:
        sdp = await door.offer()
        assert_problem(await stack.offer(handle.id, room, LOBBY, "v=0\r\ngarbage\r\n"), 422, "invalid-sdp")
        assert_problem(await stack.offer(handle.id, room, MALLORY, sdp), 403, "not-a-party")
        assert_problem(await stack.offer(handle.id, f"{handle.id}.9", LOBBY, sdp), 404, "not-found")
        assert_problem(await stack.offer("call-nope", room, LOBBY, sdp), 404, "not-found")
        r = await stack.api.post(
            f"/v1/calls/{handle.id}/media", json={"room_id": room, "sdp": sdp, "type": "answer"}
        )
        assert_problem(r, 401, "unauthenticated")
        r = await stack.api.post(
            f"/v1/calls/{handle.id}/media",
            json={"room_id": room, "sdp": sdp, "type": "answer"},
            headers=stack.auth(LOBBY),
        )
        assert_problem(r, 422, "validation")
        assert stack.bridge.rooms == {}  # nothing half-made on the bridge
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the bridge is down
        stack.app.state.settings = stack.settings.model_copy(update={"media_url": down})
        assert_problem(await stack.offer(handle.id, room, LOBBY, sdp), 503, "media-unavailable")
        await handle.terminate()
        assert_problem(await stack.offer(handle.id, room, LOBBY, sdp), 409, "call-not-active")
    finally:
        await door.close()
