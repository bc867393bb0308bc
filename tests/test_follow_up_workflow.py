"""Issue 10 item 4: the missed-call follow-up of ``BuildingCallWorkflow`` on the time-skipping
server with the fake activities: the snapshot stored and the ``missed_call`` pushes at the
miss, the follow-up window (a durable timer: open, then closed), ``call_back``, the remote
``open_door`` audited as the call's in-call action, and the policy switched off."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowHandle

from ringflow.contracts.calls import (
    AnswerInput,
    CustomActionAck,
    CustomActionOutcome,
    EscalationInput,
    FollowUpInput,
    HangUpInput,
    Phase,
)
from ringflow.contracts.events import EventName
from ringflow.contracts.policies import EscalationPolicy
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from tests.test_escalation_workflow import _ringing, _update_error
from workflows.building_call import BuildingCallWorkflow as W

ALICE, BOB, CAROL = user("alice"), user("bob"), user("carol")
FOLLOW_UP = EscalationPolicy(ring_timeout_s=10, follow_up_window_s=600, remote_open_after_miss=True)


async def _start(env, tq, media: bool = True, **kw) -> WorkflowHandle:
    inp = EscalationInput(
        call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, unit_id="101", media_required=media, **kw
    )
    return await env.client.start_workflow(W.run, inp, id=inp.call_id, task_queue=tq)


async def _missed(env, h: WorkflowHandle) -> None:
    """Skip the three 10 s rings; the call is then in its follow-up window."""
    await _ringing(h, ALICE)
    await env.sleep(31)
    for _ in range(200):
        if (await h.query(W.status)).follow_up_until is not None:
            return
        await env.sleep(1)
    raise AssertionError("no follow-up window")


async def test_miss_stores_snapshot_pushes_missed_call_and_opens_the_window(ts_env, task_queue):
    """Nobody answers: the snapshot is stored before the media room closes, callEnded says so
    with the window's end, each rung resident gets ONE missed_call push with the snapshot link
    and the follow-up routes; the workflow stays open for the window, then completes."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=FOLLOW_UP)
        await _missed(ts_env, h)
        status = await h.query(W.status)
        assert status.phase == Phase.ENDED
        ended = next(e for e in fake.events(call_id=h.id) if e.name == EventName.CALL_ENDED)
        assert ended.data["end_reason"] == "timeout" and ended.data["snapshot"] is True
        assert ended.data["follow_up_until"] == status.follow_up_until.isoformat()
        assert fake.snapshots == [h.id] and fake.media_closed == [h.id]
        pushes = [p for p in fake.pushes() if p.type == PushType.MISSED_CALL]
        assert [p.recipient for p in pushes] == [ALICE, BOB, CAROL]
        base = f"/v1/me/calls/{h.id}"
        assert pushes[0].payload == {
            "call_id": h.id,
            "caller": LOBBY.key(),
            "caller_name": "Maple Court Lobby",
            "unit_id": "101",
            "snapshot_url": f"{base}/snapshot.jpg",
            "follow_up_until": status.follow_up_until.isoformat(),
            "call_back_url": f"{base}/call-back",
            "open_door_url": f"{base}/open-door",
        }
        final = fake.records[-1].call
        assert final is not None and final.follow_up_until == status.follow_up_until
        # the call's own updates are over; the follow-up ones are open
        assert await _update_error(h.execute_update(W.answer, AnswerInput(party=ALICE))) == "CallNotActive"
        res = await h.result()  # the window's timer: 600 s of skipped time
    assert res.end_reason == "timeout"
    history = await h.fetch_history()
    assert any(
        e.HasField("timer_started_event_attributes")
        and b"follow-up window (600 s)" in e.user_metadata.summary.data
        for e in history.events
    )


async def test_call_back_inside_the_window_and_rejections(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=FOLLOW_UP)
        await _missed(ts_env, h)
        r = await h.execute_update(W.call_back, FollowUpInput(party=BOB))
        assert (r.call_id, r.new_call_id, r.door) == (h.id, f"{h.id}-cb1", LOBBY)
        again = await h.execute_update(W.call_back, FollowUpInput(party=BOB))
        assert again.new_call_id == f"{h.id}-cb2"
        # only a resident who was rung; never the door itself
        assert (
            await _update_error(h.execute_update(W.call_back, FollowUpInput(party=user("dave"))))
            == "NotAParty"
        )
        assert await _update_error(h.execute_update(W.call_back, FollowUpInput(party=LOBBY))) == "NotAParty"
        await ts_env.sleep(601)
        await h.result()
    backs = [e for e in fake.events(call_id=h.id) if e.name == EventName.CALL_BACK]
    assert [(e.party, e.data["new_call_id"], e.data["door"]) for e in backs] == [
        (BOB, f"{h.id}-cb1", LOBBY.key()),
        (BOB, f"{h.id}-cb2", LOBBY.key()),
    ]
    assert backs[0].data["room_id"] == f"{h.id}.2"


async def test_window_closed_rejects_follow_up(ts_env, task_queue):
    """After the window the workflow is closed (the API answers call-not-active); the status
    no longer shows a window, the call row keeps when it closed."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(
            ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=10, follow_up_window_s=60)
        )
        await _missed(ts_env, h)
        await h.result()  # the 60 s window passed
        status = await h.query(W.status)
    assert status.follow_up_until is None
    assert fake.records[-1].call is not None and fake.records[-1].call.follow_up_until is not None


async def test_remote_open_is_audited_as_the_calls_action(ts_env, task_queue):
    """Carol opens the door after the miss: customAction (after_miss, her room) + push to the
    door, the door acks, customActionResult done + push to Carol, all in THIS call."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=FOLLOW_UP)
        await _missed(ts_env, h)
        opening = asyncio.create_task(h.execute_update(W.open_door, FollowUpInput(party=CAROL)))
        await until(lambda: any(p.type == PushType.CUSTOM_ACTION for p in fake.pushes()))
        push = next(p for p in fake.pushes() if p.type == PushType.CUSTOM_ACTION)
        assert push.recipient == LOBBY and push.payload["after_miss"] is True
        action_id = push.payload["action_id"]
        await h.execute_update(W.custom_action_ack, CustomActionAck(party=LOBBY, action_id=action_id))
        res = await opening
        assert (res.action, res.result, res.by, res.room_id) == (
            "open_door",
            CustomActionOutcome.DONE,
            CAROL,
            f"{h.id}.3",
        )
    names = fake.names(call_id=h.id)
    assert names[-2:] == ["customAction", "customActionResult"]
    action = fake.events(call_id=h.id)[-2]
    assert action.data == {
        "action_id": action_id,
        "action": "open_door",
        "room_id": f"{h.id}.3",
        "after_miss": True,
    }
    result_push = [p for p in fake.pushes() if p.type == PushType.CUSTOM_ACTION_RESULT]
    assert [p.recipient for p in result_push] == [CAROL]


async def test_policy_off_no_window_and_no_remote_open(ts_env, task_queue):
    """No window in the policy: the miss still stores the snapshot and pushes missed_call (no
    follow-up routes), and the workflow completes at once. A window without remote open:
    open_door is FollowUpNotAllowed while call_back works."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=10))
        await _ringing(h, ALICE)
        res = await h.result()
        assert res.end_reason == "timeout"
        pushes = [p for p in fake.pushes() if p.type == PushType.MISSED_CALL and p.call_id == h.id]
        assert len(pushes) == 3 and "call_back_url" not in pushes[0].payload
        assert pushes[0].payload["follow_up_until"] is None

        h2 = await _start(
            ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=10, follow_up_window_s=600)
        )
        await _missed(ts_env, h2)
        assert await _update_error(h2.execute_update(W.open_door, FollowUpInput(party=ALICE))) == (
            "FollowUpNotAllowed"
        )
        assert (
            await h2.execute_update(W.call_back, FollowUpInput(party=ALICE))
        ).new_call_id == f"{h2.id}-cb1"
        await h2.cancel()  # a cancellation closes the window early; the call completes
        await h2.result()


async def test_answered_or_cancelled_calls_have_no_follow_up(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, media=False, policy=FOLLOW_UP)
        await _ringing(h, ALICE)
        await h.execute_update(W.answer, AnswerInput(party=ALICE))
        await h.execute_update(W.hang_up, HangUpInput(party=ALICE))
        await h.result()
        h2 = await _start(ts_env, task_queue, media=False, policy=FOLLOW_UP)
        await _ringing(h2, ALICE)
        await h2.execute_update(W.hang_up, HangUpInput(party=LOBBY))  # the visitor gave up
        res2 = await h2.result()
    assert res2.end_reason == "cancelVoip"
    assert not [p for p in fake.pushes() if p.type == PushType.MISSED_CALL]
    assert fake.snapshots == []
