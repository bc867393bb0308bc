"""Media drives the building call: the REST signaling endpoint, the bridge process's control
API (uvicorn on 127.0.0.1), the real EscalationWorkflow/CallWorkflow on the dev server with
the real ``MediaActivities`` (the other activities fake), and real aiortc peers sending a
tone and a generated video. One media room per building call (``docs/media.md``).

The door joins once; the first resident does not answer; the second previews the door
(video, no audio) while it rings, answers, and talks; ``callEnded`` carries the traffic.
The door's media that never connects is joinFailCaller. Who may post an offer, and the
problems of ``/media``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.media import MediaActivities
from api import tokens
from api.app import create_app
from media.bridge import Bridge
from media.peer import ClientPeer, ToneTrack
from media.server import create_bridge_app
from media.signals import TemporalReporter
from ringflow.contracts.calls import AnswerInput, CallStatus, EscalationInput, EscalationResult, HangUpInput
from ringflow.contracts.common import Party
from ringflow.contracts.policies import EscalationPolicy
from ringflow.contracts.tenancy import DEFAULT_TENANT, qualify, unqualified
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from tests.fakes import LOBBY, FakeDirectory, register_search_attributes, until, user
from tests.media_helpers import door_camera, serve
from workflows import WORKFLOWS
from workflows.building_call import BuildingCallWorkflow as EscalationWorkflow

ALICE, BOB, MALLORY = user("alice"), user("bob"), user("mallory")


def frames(peer: ClientPeer, kind: str) -> int:
    """Every frame ``peer`` received on its ``kind`` tracks."""
    return sum(r.frames for r in peer.received if r.kind == kind)


@dataclass
class Stack:
    api: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    bridge: Bridge
    fake: FakeDirectory
    env: WorkflowEnvironment

    def auth(self, party: Party, tenant: str = DEFAULT_TENANT) -> dict[str, str]:
        token, _ = tokens.issue(party, self.settings.token_secret, 3600, tenant_id=tenant)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, ring_timeout_s: float = 60.0, tenant: str = DEFAULT_TENANT
    ) -> WorkflowHandle[Any, Any]:
        """Start a media-required call of ``tenant`` to unit 101 (alice, bob, carol in turn), as
        the API starts it (workflow id = the tenant-qualified call id); returns once alice's
        phone rings."""
        inp = EscalationInput(
            call_id=qualify(tenant, f"call-{uuid.uuid4().hex[:8]}"),
            tenant_id=tenant,
            caller=LOBBY,
            unit_id="101",
            media_required=True,
            policy=EscalationPolicy(ring_timeout_s=ring_timeout_s),
        )
        handle = await self.env.client.start_workflow(
            EscalationWorkflow.run, inp, id=inp.call_id, task_queue=self.settings.task_queue
        )
        await self.ringing(handle, ALICE)
        return handle

    @staticmethod
    async def ringing(handle: WorkflowHandle[Any, Any], party: Party, timeout: float = 15.0) -> CallStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status: CallStatus = await handle.query(EscalationWorkflow.status)
            if party in status.ringing:
                return status
            assert loop.time() < deadline, status
            await asyncio.sleep(0.05)

    async def join(self, call_id: str, party: Party, peer: ClientPeer, tenant: str = DEFAULT_TENANT) -> None:
        r = await self.offer(call_id, party, await peer.offer(), tenant)
        assert r.status_code == 200, r.text
        await peer.accept(r.json()["sdp"])

    async def offer(
        self, call_id: str, party: Party, sdp: str, tenant: str = DEFAULT_TENANT
    ) -> httpx.Response:
        """``POST /v1/calls/{call_id}/media`` as ``party`` of ``tenant`` (``call_id`` as the
        tenant knows it, unqualified)."""
        return await self.api.post(
            f"/v1/calls/{unqualified(call_id)}/media",
            json={"sdp": sdp, "type": "offer"},
            headers=self.auth(party, tenant),
        )


@pytest_asyncio.fixture
async def stack(
    db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Any
) -> AsyncIterator[Stack]:
    port = free_port()
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        media_enabled=True,
        media_url=f"http://127.0.0.1:{port}",
        media_port=port,
        media_connect_timeout_s=2.0,
        media_disconnect_grace_s=1.0,
        media_recordings_dir=tmp_path / "recordings",
    )
    fake = FakeDirectory()
    media = MediaActivities(settings)
    fakes = [a for a in fake.activities() if a not in (fake.media_connect, fake.media_close_room)]
    bridge_app = create_bridge_app(settings, TemporalReporter(dev_env.client, retry_s=0.2))
    app = create_app(settings)
    await register_search_attributes(dev_env)
    try:
        async with (
            Worker(
                dev_env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=[*fakes, *media.all()]
            ),
            LifespanManager(app),
        ):
            async for _ in serve(bridge_app, port):
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://ringflow"
                ) as api:
                    yield Stack(api, app, settings, bridge_app.state.bridge, fake, dev_env)
    finally:
        await media.aclose()


async def test_door_joins_once_first_resident_times_out_second_previews_and_talks(stack: Stack) -> None:
    handle = await stack.call(ring_timeout_s=3.0)
    call_id = handle.id
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880), door_camera()])
    try:
        await stack.join(call_id, LOBBY, door)
        room_a = (await handle.query(EscalationWorkflow.status)).attempts[0].room_id
        await until(lambda: "joinedRoomByCaller" in stack.fake.names(room_id=room_a))
        # alice does not answer; bob rings, and the door is in his room at once
        status = await stack.ringing(handle, BOB)
        room_b = next(a.room_id for a in status.attempts if a.listener == BOB)
        await until(lambda: "joinedRoomByCaller" in stack.fake.names(room_id=room_b))
        assert "timeout" in stack.fake.names(room_id=room_a)
        # bob's app previews the door while ringing: video only, and the door hears nothing
        await stack.join(call_id, BOB, bob)
        await until(lambda: frames(bob, "video") >= 5)
        assert frames(bob, "audio") == 0 and frames(door, "audio") == 0
        # bob answers: the workflow makes him the talker; his preview peer is his talk peer
        await handle.execute_update(EscalationWorkflow.answer, AnswerInput(party=BOB))
        await until(lambda: "calling" in stack.fake.names(room_id=room_b))
        await until(lambda: door.heard() >= 10 and bob.heard() >= 10 and frames(door, "video") >= 3)
        [room] = stack.bridge.info()
        assert room.call_id == call_id and room.talker == BOB
        await handle.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        result: EscalationResult = await asyncio.wait_for(handle.result(), 20)
        assert result.end_reason == "hangUpVoip" and result.answered_by == BOB
        names = stack.fake.names(room_id=room_b)
        assert names.index("joinedRoomByCaller") < names.index("answered") < names.index("calling")
        # the workflow closed the room and recorded its traffic in callEnded
        assert stack.bridge.rooms == {}
        [ended] = [e for e in stack.fake.events(call_id=call_id) if e.name == "callEnded"]
        traffic = {t["party"]["id"]: t for t in ended.data["traffic"]}
        assert set(traffic) == {LOBBY.id, BOB.id}
        assert traffic[LOBBY.id]["bytes_sent"] > 0 and traffic[BOB.id]["bytes_sent"] > 0
        assert traffic[LOBBY.id]["packets_received"] > 0 and traffic[BOB.id]["packets_received"] > 0
    finally:
        await door.close()
        await bob.close()


async def test_a_tenants_call_has_its_media_room_under_the_qualified_id(
    stack: Stack, db_pool: asyncpg.Pool
) -> None:
    """Issue 9 with media: another tenant's parties offer media for the call id they know; the
    bridge's room is the tenant-qualified workflow id, and talk flows as in the default tenant."""
    await db_pool.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme') ON CONFLICT DO NOTHING")
    handle = await stack.call(tenant="acme")
    assert handle.id.startswith("acme~")
    door, alice, stray = (
        ClientPeer([ToneTrack(440)]),
        ClientPeer([ToneTrack(880)]),
        ClientPeer([ToneTrack(440)]),
    )
    try:
        # the default tenant's door knows no such call: 404, nothing opened
        r = await stack.offer(handle.id, LOBBY, await stray.offer())
        assert r.status_code == 404, r.text
        assert stack.bridge.rooms == {}
        await stack.join(handle.id, LOBBY, door, tenant="acme")
        await stack.join(handle.id, ALICE, alice, tenant="acme")
        await handle.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))
        await until(lambda: door.heard() >= 10 and alice.heard() >= 10)
        [room] = stack.bridge.info()
        assert room.call_id == handle.id and room.talker == ALICE
        await handle.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        result: EscalationResult = await asyncio.wait_for(handle.result(), 20)
        assert result.end_reason == "hangUpVoip" and stack.bridge.rooms == {}
    finally:
        for peer in (door, alice, stray):
            await peer.close()


async def test_door_media_that_never_connects_is_join_fail_caller(stack: Stack) -> None:
    handle = await stack.call()
    door = ClientPeer([ToneTrack()])
    try:
        r = await stack.offer(handle.id, LOBBY, await door.offer())
        assert r.status_code == 200, r.text  # the answer is never applied: no ICE
        room = (await handle.query(EscalationWorkflow.status)).attempts[0].room_id
        await until(lambda: "joinFailCaller" in stack.fake.names(room_id=room), timeout=15)
        [event] = [e for e in stack.fake.events(room_id=room) if e.name == "joinFailCaller"]
        assert event.reason == "no media connection in 2 s"
    finally:
        await door.close()
        await handle.terminate()


def assert_problem(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{slug}"


async def test_who_may_offer_media(stack: Stack) -> None:
    handle = await stack.call(ring_timeout_s=2.0)
    door, alice, probe = ClientPeer([ToneTrack()]), ClientPeer([ToneTrack()]), ClientPeer()
    try:
        sdp = await probe.offer()  # a valid offer whose answer is never applied
        assert_problem(await stack.offer(handle.id, LOBBY, "v=0\r\ngarbage\r\n"), 422, "invalid-sdp")
        assert_problem(await stack.offer(handle.id, MALLORY, sdp), 403, "not-a-party")
        assert_problem(await stack.offer(handle.id, BOB, sdp), 403, "not-a-party")  # not rung yet
        assert_problem(await stack.offer("call-nope", LOBBY, sdp), 404, "not-found")
        assert stack.bridge.rooms == {}  # nothing half-made on the bridge
        r = await stack.api.post(f"/v1/calls/{handle.id}/media", json={"sdp": sdp, "type": "offer"})
        assert_problem(r, 401, "unauthenticated")
        for body in (
            {"sdp": sdp, "type": "answer"},
            {"room_id": f"{handle.id}.1", "sdp": sdp, "type": "offer"},
        ):
            r = await stack.api.post(f"/v1/calls/{handle.id}/media", json=body, headers=stack.auth(LOBBY))
            assert_problem(r, 422, "validation")
        # the caller, and the listener being rung (early media), may
        await stack.join(handle.id, LOBBY, door)
        await stack.join(handle.id, ALICE, alice)
        [room] = stack.bridge.info()
        assert {p.party.key() for p in room.peers} == {LOBBY.key(), ALICE.key()}
        # alice's ring times out: her attempt is over, bob's is live
        await stack.ringing(handle, BOB)
        assert_problem(await stack.offer(handle.id, ALICE, sdp), 409, "call-not-active")
        r = await stack.offer(handle.id, BOB, sdp)
        assert r.status_code == 200, r.text
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the bridge is down
        stack.app.state.settings = stack.settings.model_copy(update={"media_url": down})
        assert_problem(await stack.offer(handle.id, LOBBY, sdp), 503, "media-unavailable")
        await handle.terminate()
        assert_problem(await stack.offer(handle.id, LOBBY, sdp), 409, "call-not-active")
    finally:
        await door.close()
        await alice.close()
        await probe.close()
