"""One media room per building call (docs/media.md), workflow side, on the time-skipping
server with fake activities: media facts routed by party, the caller joining once for
every attempt, early-media previews, the talker set on answer, traffic in callEnded."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowHandle

from ringflow.contracts.calls import (
    AnswerInput,
    AttemptOutcome,
    CallStatus,
    EscalationInput,
    HangUpInput,
    JoinInput,
    Phase,
)
from ringflow.contracts.common import Party
from ringflow.contracts.media import MediaConnectInput, PartyTraffic, RoomStats
from ringflow.contracts.policies import EscalationPolicy
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow as EscalationWorkflow

ALICE, BOB, CAROL = user("alice"), user("bob"), user("carol")


async def _start(env, tq, **kw) -> WorkflowHandle:
    inp = EscalationInput(
        call_id=f"call-{uuid.uuid4().hex[:8]}",
        caller=LOBBY,
        media_required=True,
        join_timeout_s=10,
        **({"unit_id": "101", "policy": EscalationPolicy(ring_timeout_s=30)} | kw),
    )
    return await env.client.start_workflow(EscalationWorkflow.run, inp, id=inp.call_id, task_queue=tq)


async def _status(h: WorkflowHandle) -> CallStatus:
    return await h.query(EscalationWorkflow.status)


async def _ringing(h: WorkflowHandle, party: Party) -> None:
    async def check() -> bool:
        return party in (await _status(h)).ringing

    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{party.key()} is not rung")


def _join(h: WorkflowHandle, party: Party, error: str | None = None) -> JoinInput:
    return JoinInput(room_id=h.id, party=party, error=error)


async def test_caller_joins_once_listener_previews_then_answers(ts_env, task_queue):
    """The door joins the call's room once: alice's room and bob's (after alice's timeout)
    both record joinedRoomByCaller. Bob's preview peer joins while it rings, so his answer
    starts the talk at once; the talker is set through media_connect; the traffic the
    bridge reports is in callEnded."""
    fake = FakeDirectory()
    fake.room_stats = RoomStats(
        call_id="x",
        parties=[
            PartyTraffic(party=LOBBY, role="caller", bytes_received=1200, bytes_sent=900),
            PartyTraffic(party=BOB, role="listener", bytes_received=800, bytes_sent=1100),
        ],
    )
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        await _ringing(h, ALICE)
        await h.signal(EscalationWorkflow.joined, _join(h, LOBBY))
        await until(lambda: "joinedRoomByCaller" in fake.names(f"{h.id}.1"))
        await ts_env.sleep(31)
        await _ringing(h, BOB)
        assert fake.names(f"{h.id}.2")[:2] == ["ringing", "joinedRoomByCaller"]
        await h.signal(EscalationWorkflow.joined, _join(h, BOB))  # bob's preview
        await ts_env.sleep(1)
        r = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=BOB))
        assert r.phase == Phase.TALK
        assert fake.media_connects == [MediaConnectInput(call_id=h.id, listener=BOB, record=False)]
        await ts_env.sleep(12)
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=BOB))
        res = await h.result()
    assert res.end_reason == "hangUpVoip" and res.keep_time_s == 12
    assert fake.names(f"{h.id}.1") == ["ringing", "joinedRoomByCaller", "timeout", "endVoip", "finishVoip"]
    assert fake.names(f"{h.id}.2") == [
        "ringing",
        "joinedRoomByCaller",
        "answered",
        "calling",
        "hangUpVoip",
        "endVoip",
        "finishVoip",
    ]
    assert fake.media_closed == [h.id]
    ended = fake.events(call_id=h.id)[-1]
    assert ended.name == "callEnded"
    assert [t["party"] for t in ended.data["traffic"]] == [
        LOBBY.model_dump(mode="json"),
        BOB.model_dump(mode="json"),
    ]
    assert ended.data["traffic"][0]["bytes_received"] == 1200


async def test_preview_lost_does_not_end_ring_but_join_timeout_after_answer(ts_env, task_queue):
    """A rung listener's preview peer that goes away does not end the ring; after the answer
    without media the listener join timer ends the room with joinFailListener."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, unit_id=None, policy=None, callees=[CAROL])
        await _ringing(h, CAROL)
        await h.signal(EscalationWorkflow.joined, _join(h, LOBBY))
        await h.signal(EscalationWorkflow.joined, _join(h, CAROL))
        await h.signal(EscalationWorkflow.media_lost, _join(h, CAROL, "no media for 5 s"))
        await ts_env.sleep(2)
        assert CAROL in (await _status(h)).ringing
        r = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))
        assert r.phase == Phase.JOIN  # carol's media is not in the room any more
        await ts_env.sleep(11)
        res = await h.result()
    assert fake.names(f"{h.id}.1")[-3:] == ["joinFailListener", "endVoip", "finishVoip"]
    assert res.attempts[0].outcome == AttemptOutcome.FAILED


async def test_caller_media_failure_stops_the_plan(ts_env, task_queue):
    """The door's peer never connects: every live room ends with joinFailCaller and nobody
    else is rung; the building call ends joinFailCaller."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        await _ringing(h, ALICE)
        await h.signal(EscalationWorkflow.join_failed, _join(h, LOBBY, "no media connection in 10 s"))
        res = await h.result()
    assert [a.listener for a in res.attempts] == [ALICE]
    assert fake.names(f"{h.id}.1")[-3:] == ["joinFailCaller", "endVoip", "finishVoip"]
    assert res.end_reason == "joinFailCaller"


async def test_record_policy_reaches_the_bridge(ts_env, task_queue):
    """Unit policy record_media -> media_connect(record=True); a caller who already joined
    makes the answer start the talk once the listener's media joins."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(
            ts_env, task_queue, unit_id=None, policy=EscalationPolicy(record_media=True), callees=[CAROL]
        )
        await h.signal(EscalationWorkflow.joined, _join(h, LOBBY))
        await _ringing(h, CAROL)
        r = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))
        assert r.phase == Phase.JOIN
        await h.signal(EscalationWorkflow.joined, _join(h, CAROL))
        await until(lambda: "calling" in fake.names(f"{h.id}.1"))
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        await h.result()
    assert fake.media_connects == [MediaConnectInput(call_id=h.id, listener=CAROL, record=True)]
