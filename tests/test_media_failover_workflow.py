"""Media failover, workflow side (issue 13 item 4, ``workflows/media_failover.py``), on the
time-skipping server with fake activities: the signal ``media_bridge_lost`` in talk records
``mediaInterruptVoip`` and pushes ``media_reoffer`` to both parties; once both joined again
the talker is set again and ``mediaResumeVoip`` has the interruption's length; keepTime runs
on. Nobody back within the join timeout: ``abortVoip``. While ringing, only the caller is
waited for, and the listener still answers afterwards."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowHandle

from ringflow.contracts.calls import AnswerInput, EscalationInput, HangUpInput, JoinInput, Phase
from ringflow.contracts.common import Party
from ringflow.contracts.media import BridgeLostInput, MediaConnectInput, MediaPlacement
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow

BOB = user("bob")


async def _start(env, tq) -> WorkflowHandle:
    inp = EscalationInput(
        call_id=f"call-{uuid.uuid4().hex[:8]}",
        caller=LOBBY,
        media_required=True,
        join_timeout_s=10,
        callees=[BOB],
    )
    return await env.client.start_workflow(BuildingCallWorkflow.run, inp, id=inp.call_id, task_queue=tq)


async def _joined(h: WorkflowHandle, party: Party) -> None:
    await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=h.id, party=party))


async def _talking(env, h: WorkflowHandle, fake: FakeDirectory) -> str:
    await until(lambda: "ringing" in fake.names(f"{h.id}.1"))
    await _joined(h, LOBBY)
    await _joined(h, BOB)  # preview
    await env.sleep(1)
    r = await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=BOB))
    assert r.phase == Phase.TALK
    return f"{h.id}.1"


def _reoffers(fake: FakeDirectory, room: str) -> list[tuple[str, dict]]:
    return [(p.recipient.key(), p.payload) for p in fake.pushes(room) if p.type == PushType.MEDIA_REOFFER]


async def test_bridge_lost_in_talk_reoffers_and_resumes(ts_env, task_queue):
    fake = FakeDirectory()
    fake.media_placement = MediaPlacement(node_id="node-a")
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        room = await _talking(ts_env, h, fake)
        [answered] = [e for e in fake.events(room) if e.name == "answered"]
        assert answered.data == {"media_node": "node-a"}  # where the room is
        await ts_env.sleep(5)
        fake.media_placement = MediaPlacement(node_id="node-b", moves=1)
        await h.signal(BuildingCallWorkflow.media_bridge_lost, BridgeLostInput(room_id=h.id, node="node-a"))
        await until(lambda: "mediaInterruptVoip" in fake.names(room))
        assert _reoffers(fake, room) == [
            (LOBBY.key(), {"call_id": h.id, "room_id": room, "lost": "node-a"}),
            (BOB.key(), {"call_id": h.id, "room_id": room, "lost": "node-a"}),
        ]
        await ts_env.sleep(2)
        await _joined(h, LOBBY)
        await ts_env.sleep(1)
        assert "mediaResumeVoip" not in fake.names(room)  # bob is not back yet
        await _joined(h, BOB)
        await until(lambda: "mediaResumeVoip" in fake.names(room))
        [back] = [e for e in fake.events(room) if e.name == "mediaResumeVoip"]
        assert (back.data["node"], back.data["lost"]) == ("node-b", "node-a")
        assert 3.0 <= back.data["interruption_s"] < 3.5  # workflow time: the 3 s skipped + a little
        assert len(fake.media_connects) == 3  # the answer; the loss (the room on a live node); the resume
        assert fake.media_connects[-1] == MediaConnectInput(call_id=h.id, listener=BOB)
        await ts_env.sleep(10)  # longer than the join timeout: the resume cleared it
        await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=LOBBY))
        res = await h.result()
    assert res.end_reason == "hangUpVoip" and res.keep_time_s == 18  # the interruption is talk
    assert fake.names(room)[-6:] == [
        "calling",
        "mediaInterruptVoip",
        "mediaResumeVoip",
        "hangUpVoip",
        "endVoip",
        "finishVoip",
    ]


async def test_bridge_lost_nobody_back_aborts_after_the_join_timeout(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        room = await _talking(ts_env, h, fake)
        await ts_env.sleep(4)
        await h.signal(BuildingCallWorkflow.media_bridge_lost, BridgeLostInput(room_id=h.id, node="node-a"))
        await until(lambda: "mediaInterruptVoip" in fake.names(room))
        await _joined(h, LOBBY)  # the door came back, the resident never did
        res = await h.result()
    assert res.end_reason == "abortVoip" and res.keep_time_s == 14  # 4 s talk + the 10 s waited
    [abort] = [e for e in fake.events(room) if e.name == "abortVoip"]
    assert abort.reason == "media bridge lost, not back in 10 s" and abort.keep_time_s == 14
    assert fake.names(room)[-4:] == ["mediaInterruptVoip", "abortVoip", "endVoip", "finishVoip"]


async def test_bridge_lost_while_ringing_waits_for_the_caller_only(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        room = f"{h.id}.1"
        await until(lambda: "ringing" in fake.names(room))
        await _joined(h, LOBBY)
        await until(lambda: "joinedRoomByCaller" in fake.names(room))
        await h.signal(BuildingCallWorkflow.media_bridge_lost, BridgeLostInput(room_id=h.id, node="node-a/1"))
        await until(lambda: "mediaInterruptVoip" in fake.names(room))
        assert [who for who, _ in _reoffers(fake, room)] == [LOBBY.key(), BOB.key()]  # bob previews again
        await ts_env.sleep(1)
        await _joined(h, LOBBY)
        await until(lambda: "mediaResumeVoip" in fake.names(room))
        assert fake.media_connects == []  # nobody talks yet: no talker to set
        await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=BOB))
        await _joined(h, BOB)
        await ts_env.sleep(2)
        await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=BOB))
        res = await h.result()
    assert res.end_reason == "hangUpVoip" and res.keep_time_s == 2
