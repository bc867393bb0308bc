"""Room: every row of the phase x action table (docs/events.md; troubleshooting guide
sections 1-6), through a ``BuildingCallWorkflow`` that rings one callee (Bob), on the
time-skipping server with fake activities."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from ringflow.contracts.calls import (
    ActionResult,
    AnswerInput,
    AttemptOutcome,
    EscalationInput,
    EscalationResult,
    ForceHangUpInput,
    HangUpInput,
    JoinInput,
    RejectInput,
)
from ringflow.contracts.common import Contract
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.messages import Signal, Update
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow

BOB = user("bob")
END = ["endVoip", "finishVoip"]
RING = ["ringing", "joinedRoomByCaller"]


def _input(**kw) -> EscalationInput:
    call_id = f"c-{uuid.uuid4().hex[:8]}"
    base = dict(
        call_id=call_id,
        caller=LOBBY,
        callees=[BOB],
        default_ring_timeout_s=60,
        join_timeout_s=30,
        time_limit_s=600,
    )
    base.update(kw)
    return EscalationInput(**base)


class _Room:
    """The one room of the call: its id and what the tests read of it."""

    def __init__(self, inp: EscalationInput) -> None:
        self.call_id = inp.call_id
        self.room_id = f"{inp.call_id}.1"


async def _start(
    env: WorkflowEnvironment, tq: str, fake: FakeDirectory, **kw
) -> tuple[WorkflowHandle, _Room]:
    inp = _input(**kw)
    handle = await env.client.start_workflow(BuildingCallWorkflow.run, inp, id=inp.call_id, task_queue=tq)
    room = _Room(inp)
    if not fake.precall_fail and BOB.key() not in fake.lines:
        await until(lambda: "ringing" in fake.names(room.room_id))
    return handle, room


async def _update(handle: WorkflowHandle, update: str, arg: Contract) -> ActionResult:
    return await handle.execute_update(update, arg, result_type=ActionResult)


async def _talking(env, tq, fake, **kw) -> tuple[WorkflowHandle, _Room]:
    handle, inp = await _start(env, tq, fake, **kw)
    await _update(handle, Update.ANSWER, AnswerInput(party=BOB))
    await until(lambda: "calling" in fake.names(inp.room_id))
    return handle, inp


def _result(res: EscalationResult, outcome: AttemptOutcome, end: str, keep: int = 0) -> None:
    [att] = res.attempts
    assert (att.outcome, att.end_reason, att.keep_time_s) == (outcome, end, keep)
    assert res.keep_time_s == keep


async def test_timeout_in_wait(ts_env, task_queue):
    """Section 3: the listener does not answer in ring_timeout_s -> timeout, endVoip; CALL_CANCELLED."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake)
        res = await handle.result()
    _result(res, AttemptOutcome.NO_ANSWER, "timeout")
    assert fake.names(inp.room_id) == [*RING, "timeout", *END]
    ev = fake.events(inp.room_id)
    assert timedelta(seconds=60) <= ev[2].at - ev[0].at < timedelta(seconds=61)
    pushes = [(p.type, p.recipient) for p in fake.pushes(inp.room_id)]
    assert pushes == [
        (PushType.INCOMING_CALL, BOB),
        (PushType.CALL_ENDED, LOBBY),
        (PushType.CALL_CANCELLED, BOB),
    ]
    ring = fake.pushes(inp.room_id)[0]
    assert ring.payload == {
        "caller_name": "Maple Court Lobby",
        "caller": LOBBY.key(),
        "room_type": "video",
        "ring_timeout_s": 60,
        "call_id": inp.call_id,
        "room_id": inp.room_id,
        "auto_answer": False,
    }
    assert ring.id == f"{inp.room_id}#1:{BOB.key()}"
    assert [e.id for e in ev] == [f"{inp.room_id}#{i}" for i in range(1, 6)]
    assert fake.lines == {} and fake.billing() == []


@pytest.mark.parametrize(
    ("update", "arg", "event", "outcome"),
    [
        (Update.HANG_UP, HangUpInput(party=LOBBY), "cancelVoip", AttemptOutcome.CANCELLED),
        (Update.REJECT, RejectInput(party=BOB), "rejectVoip", AttemptOutcome.REJECTED),
        (Update.HANG_UP, HangUpInput(party=BOB), "rejectVoip", AttemptOutcome.REJECTED),
        (Update.FORCE_HANG_UP, ForceHangUpInput(reason="admin"), "cancelVoip", AttemptOutcome.CANCELLED),
    ],
)
async def test_actions_in_wait(ts_env, task_queue, update, arg, event, outcome):
    """Sections 3-4: caller hang-up / force -> cancelVoip; listener reject -> rejectVoip.
    (The building call stopping a room, "answered by another": test_escalation_workflow.)"""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake)
        await _update(handle, update, arg)
        res = await handle.result()
    _result(res, outcome, event)
    assert fake.names(inp.room_id) == [*RING, event, *END]
    assert fake.lines == {}
    last = fake.pushes(inp.room_id)[-1]
    assert last.type == (PushType.CALL_ENDED if event == "rejectVoip" else PushType.CALL_CANCELLED)
    if update == Update.FORCE_HANG_UP:
        assert fake.events(inp.room_id)[2].reason == "admin"


async def test_busy(ts_env, task_queue):
    """Section 4: the listener holds a line in another room -> busy, endVoip; nobody rung."""
    fake = FakeDirectory()
    fake.lines[BOB.key()] = "other.1"
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake)
        res = await handle.result()
    _result(res, AttemptOutcome.BUSY, "busy")
    assert fake.names(inp.room_id) == ["busy", *END]
    assert fake.lines == {BOB.key(): "other.1"}  # the other room's line is untouched
    assert [p.type for p in fake.pushes(inp.room_id)] == [PushType.CALL_ENDED]


@pytest.mark.parametrize("code", [ErrCode.DEVICE_NOT_AUTHORIZED, ErrCode.VOIP_TOKEN_INVALID])
async def test_precall_skip(ts_env, task_queue, code):
    """Section 1: errCode 9/13 -> no room, only targetSkipped; no line claimed."""
    fake = FakeDirectory()
    fake.precall_fail[BOB.key()] = code
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake)
        res = await handle.result()
    assert (res.attempts[0].outcome, res.err_code, res.end_reason) == (
        AttemptOutcome.SKIPPED,
        code,
        "initiateFailed",
    )
    assert fake.names(inp.room_id) == ["targetSkipped"]
    assert fake.events(inp.room_id)[0].err_code == code
    assert fake.claims == [] and fake.pushes(inp.room_id) == []  # the caller gets only call_finished


async def test_talk_hang_up_by_each_party_keeps_talk_time(ts_env, task_queue):
    """Section 6: hang-up in talk -> hangUpVoip; keepTime counts talk only (not the 20 s ring)."""
    for party in (LOBBY, BOB):
        fake = FakeDirectory()
        async with running(ts_env, task_queue, fake):
            handle, inp = await _start(ts_env, task_queue, fake)
            await ts_env.sleep(20)
            await _update(handle, Update.ANSWER, AnswerInput(party=BOB))
            await until(lambda inp=inp, fake=fake: "calling" in fake.names(inp.room_id))
            await ts_env.sleep(42)
            await _update(handle, Update.HANG_UP, HangUpInput(party=party))
            res = await handle.result()
        _result(res, AttemptOutcome.ANSWERED, "hangUpVoip", 42)
        assert fake.names(inp.room_id) == [*RING, "answered", "calling", "hangUpVoip", *END]
        ev = {e.name.value: e for e in fake.events(inp.room_id)}
        assert ev["calling"].keep_time_s == 0
        assert ev["hangUpVoip"].party == party
        assert ev["endVoip"].keep_time_s == ev["finishVoip"].keep_time_s == 42
        [bill] = fake.billing()
        assert (bill.room_id, bill.keep_time_s, bill.listener) == (inp.room_id, 42, BOB)
        # finishVoip comes after endVoip, in the same record as the billing
        rec = next(r for r in fake.records if r.billing is not None)
        assert [e.name.value for e in rec.events] == ["hangUpVoip", *END]
        types = [(p.type, p.recipient) for p in fake.pushes(inp.room_id)]
        assert (PushType.CALL_ANSWERED, LOBBY) in types
        assert types[-2:] == [(PushType.CALL_ENDED, LOBBY), (PushType.CALL_ENDED, BOB)]
        assert fake.pushes(inp.room_id)[-1].payload["keepTime"] == 42
        assert fake.lines == {}


async def test_time_limit(ts_env, task_queue):
    """FAQ 1.1: a durable timeLimit timer ends the talk with hangUpVoip, reason timeLimit."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _talking(ts_env, task_queue, fake, time_limit_s=90)
        res = await handle.result()
    _result(res, AttemptOutcome.ANSWERED, "hangUpVoip", 90)
    assert fake.events(inp.room_id)[-3].reason == "timeLimit"
    assert fake.lines == {}


async def test_force_and_media_lost_in_talk(ts_env, task_queue):
    """Section 6: force in talk -> hangUpVoip; a party's media lost -> abortVoip."""
    for message, arg, event in [
        (Update.FORCE_HANG_UP, ForceHangUpInput(reason="admin"), "hangUpVoip"),
        (Signal.MEDIA_LOST, JoinInput(room_id="x", party=LOBBY, error="ice failed"), "abortVoip"),
    ]:
        fake = FakeDirectory()
        async with running(ts_env, task_queue, fake):
            handle, inp = await _talking(ts_env, task_queue, fake)
            await ts_env.sleep(5)
            if message == Update.FORCE_HANG_UP:
                await _update(handle, message, arg)
            else:
                await handle.signal(message, arg)
            res = await handle.result()
        _result(res, AttemptOutcome.ANSWERED, event, 5)
        assert fake.names(inp.room_id)[-3:] == [event, *END]


async def test_media_required_join_phases(ts_env, task_queue):
    """Sections 2, 4, 5 with media: joinedRoomByCaller on the caller's join; talk starts
    when both joined; a listener waiting for the caller who hangs up -> rejectVoip."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake, media_required=True)
        assert fake.names(inp.room_id) == ["ringing"]
        await _update(handle, Update.ANSWER, AnswerInput(party=BOB))
        await handle.signal(Signal.JOINED, JoinInput(room_id=inp.room_id, party=BOB))
        await until(lambda: "answered" in fake.names(inp.room_id))
        # section 5: the listener waits for the caller; force -> rejectVoip
        await _update(handle, Update.FORCE_HANG_UP, ForceHangUpInput())
        res = await handle.result()
    _result(res, AttemptOutcome.REJECTED, "rejectVoip")
    assert fake.names(inp.room_id) == ["ringing", "answered", "rejectVoip", *END]

    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake, media_required=True)
        await handle.signal(Signal.JOINED, JoinInput(room_id=inp.room_id, party=LOBBY))
        await _update(handle, Update.ANSWER, AnswerInput(party=BOB))
        await handle.signal(Signal.JOINED, JoinInput(room_id=inp.room_id, party=BOB))
        await until(lambda: "calling" in fake.names(inp.room_id))
        await _update(handle, Update.HANG_UP, HangUpInput(party=BOB))
        res = await handle.result()
    assert fake.names(inp.room_id) == [
        "ringing",
        "joinedRoomByCaller",
        "answered",
        "calling",
        "hangUpVoip",
        *END,
    ]


@pytest.mark.parametrize(
    ("steps", "events"),
    [
        # section 2(3): the caller never joins -> joinFailCaller
        ([], ["ringing", "joinFailCaller"]),
        # section 5(1): the listener answered and joined, the caller never does -> abortVoip
        (["answer", "listener_joined"], ["ringing", "answered", "abortVoip"]),
        # section 4(1): the listener answered but its media never joins -> joinFailListener
        (["caller_joined", "answer"], ["ringing", "joinedRoomByCaller", "answered", "joinFailListener"]),
    ],
)
async def test_join_timeouts(ts_env, task_queue, steps, events):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        handle, inp = await _start(ts_env, task_queue, fake, media_required=True, join_timeout_s=10)
        for step in steps:
            if step == "answer":
                await _update(handle, Update.ANSWER, AnswerInput(party=BOB))
            else:
                party = LOBBY if step == "caller_joined" else BOB
                await handle.signal(Signal.JOINED, JoinInput(room_id=inp.room_id, party=party))
        res = await handle.result()
    assert fake.names(inp.room_id) == [*events, *END]
    assert res.attempts[0].outcome == AttemptOutcome.FAILED and res.keep_time_s == 0
    assert fake.lines == {}


async def test_cancel_request_still_finishes(ts_env, task_queue):
    """A cancelled room (parent gone) still records cancelVoip/hangUpVoip, endVoip and
    releases the line, then ends cancelled."""
    for talk, event in [(False, "cancelVoip"), (True, "hangUpVoip")]:
        fake = FakeDirectory()
        async with running(ts_env, task_queue, fake):
            if talk:
                handle, inp = await _talking(ts_env, task_queue, fake)
                await ts_env.sleep(7)
            else:
                handle, inp = await _start(ts_env, task_queue, fake)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
        assert isinstance(err.value.cause, CancelledError)
        assert fake.names(inp.room_id)[-3:] == [event, *END]
        assert fake.events(inp.room_id)[-1].keep_time_s == (7 if talk else 0)
        assert fake.lines == {}
