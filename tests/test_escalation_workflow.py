"""BuildingCallWorkflow: strategies, rounds, fallback, first-answer-wins, cancel in each
phase (reference FAQ 1.5), what the Temporal UI shows, on the time-skipping server with
fake activities."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from ringflow.contracts.calls import (
    AnswerInput,
    AttemptOutcome,
    CallStatus,
    EscalationInput,
    EscalationResult,
    ForceHangUpInput,
    HangUpInput,
    Phase,
    RejectInput,
)
from ringflow.contracts.common import Party
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.search import CALL_ANSWERED_BY, CALL_END_REASON, CALL_PHASE, CALL_UNIT
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow as EscalationWorkflow

ALICE, BOB, CAROL, CONCIERGE = user("alice"), user("bob"), user("carol"), user("concierge")


async def _start(env, tq, **kw) -> WorkflowHandle:
    inp = EscalationInput(call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, **({"unit_id": "101"} | kw))
    return await env.client.start_workflow(EscalationWorkflow.run, inp, id=inp.call_id, task_queue=tq)


async def _ringing(handle: WorkflowHandle, *parties: Party) -> CallStatus:
    status: CallStatus | None = None

    async def check() -> bool:
        nonlocal status
        status = await handle.query(EscalationWorkflow.status)
        return all(p in status.ringing for p in parties)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await check():
        assert loop.time() < deadline, f"not ringing {parties}: {status}"
        await asyncio.sleep(0.02)
    assert status is not None
    return status


async def _update_error(coro) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await coro
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type or ""


def _outcomes(res: EscalationResult) -> list[tuple[str, AttemptOutcome | None]]:
    return [(a.listener.id, a.outcome) for a in res.attempts]


async def test_demo_sequential_timeout_busy_answer(ts_env, task_queue):
    """The demo: A does not answer (30 s) -> B busy (moves on at once) -> C answers, talks 25 s."""
    fake = FakeDirectory()
    fake.lines[BOB.key()] = "elsewhere.1"
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30))
        await _ringing(h, ALICE)
        await ts_env.sleep(31)
        status = await _ringing(h, CAROL)
        assert [a.outcome for a in status.attempts[:2]] == [AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY]
        # what ops see in the Temporal UI: the live state of every room
        meta = await h.query("__temporal_workflow_metadata")
        assert meta.current_details.splitlines() == [
            "Maple Court Lobby -> unit 101 (sequential): ringing stage 3/3, round 1",
            "- 1. Alice: timeout, keepTime 0 s",
            "- 2. Bob: busy, keepTime 0 s",
            "- 3. Carol: ringing Carol",
        ]
        r = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))
        assert (r.phase, r.room_id, r.event) == (Phase.TALK, f"{h.id}.3", "answered")
        again = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))  # a retry
        assert (again.phase, again.room_id, again.event) == (Phase.TALK, f"{h.id}.3", "answered")
        assert await _update_error(h.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))) == (
            "AnsweredByAnother"
        )
        await ts_env.sleep(25)
        r = await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        assert (r.event, r.room_id) == ("hangUpVoip", f"{h.id}.3")
        res = await h.result()
        desc = await h.describe()
    assert (res.answered_by, res.end_reason, res.keep_time_s) == (CAROL, "hangUpVoip", 25)
    assert _outcomes(res) == [
        ("alice", AttemptOutcome.NO_ANSWER),
        ("bob", AttemptOutcome.BUSY),
        ("carol", AttemptOutcome.ANSWERED),
    ]
    assert fake.names(call_id=h.id) == ["callStarted", "escalated", "escalated", "callEnded"]
    assert fake.names(f"{h.id}.2") == ["busy", "endVoip", "finishVoip"]
    assert fake.names(f"{h.id}.3")[-3:] == ["hangUpVoip", "endVoip", "finishVoip"]
    assert fake.lines == {BOB.key(): "elsewhere.1"}
    final = fake.records[-1].call
    assert final is not None and (final.phase, final.answered_by, final.keep_time_s) == (
        Phase.ENDED,
        CAROL,
        25,
    )
    history = await h.fetch_history()
    timers = [
        json.loads(e.user_metadata.summary.data)
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]  # Bob was busy: never rung, no timer
    assert timers == [
        "ringing Alice (30 s)",
        "ringing Carol (30 s)",
        "talking with Carol, timeLimit (3600 s)",
    ]
    sa = desc.typed_search_attributes
    assert (sa.get(CALL_PHASE), sa.get(CALL_END_REASON), sa.get(CALL_ANSWERED_BY), sa.get(CALL_UNIT)) == (
        "ended",
        "hangUpVoip",
        CAROL.key(),
        "101",
    )


async def test_simultaneous_first_answer_wins(ts_env, task_queue):
    """Ring-all: two answers back to back -> exactly one wins, the other AnsweredByAnother;
    the losers' rooms end with cancelVoip "answered by another"."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(strategy=RingStrategy.SIMULTANEOUS))
        await _ringing(h, ALICE, BOB, CAROL)
        first, second = await asyncio.gather(
            h.execute_update(EscalationWorkflow.answer, AnswerInput(party=BOB)),
            h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL)),
            return_exceptions=True,
        )
        results = [first, second]
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
        assert len(wins) == 1 and len(losses) == 1
        assert isinstance(losses[0].cause, ApplicationError) and losses[0].cause.type == "AnsweredByAnother"
        winner = BOB if first is wins[0] else CAROL
        await until(lambda: sum(fake.names(f"{h.id}.{i}").count("cancelVoip") for i in (1, 2, 3)) == 2)
        # a late answer from a cancelled room
        assert await _update_error(h.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))) == (
            "AnsweredByAnother"
        )
        await h.execute_update(EscalationWorkflow.force_hang_up, ForceHangUpInput())
        res = await h.result()
    assert res.answered_by == winner and res.end_reason == "hangUpVoip"
    losers = [a for a in res.attempts if a.listener != winner]
    assert all(a.outcome == AttemptOutcome.CANCELLED for a in losers)
    for a in losers:
        cancel = next(e for e in fake.events(a.room_id) if e.name == "cancelVoip")
        assert cancel.reason == "answered by another"
    assert fake.lines == {}


async def test_late_answer_after_ring_timeout(ts_env, task_queue):
    """An answer that arrives after the room stopped ringing -> CallNotActive; NotAParty for strangers."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, callees=[ALICE], unit_id=None)
        await _ringing(h, ALICE)
        stranger = user("mallory")
        assert await _update_error(
            h.execute_update(EscalationWorkflow.answer, AnswerInput(party=stranger))
        ) == ("NotAParty")
        res = await h.result()
    assert res.end_reason == "timeout" and res.answered_by is None
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30))
        await _ringing(h, ALICE)
        await ts_env.sleep(31)
        await _ringing(h, BOB)
        late = h.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))
        assert await _update_error(late) == "CallNotActive"
        assert await _update_error(h.execute_update(EscalationWorkflow.reject, RejectInput(party=CAROL))) == (
            "CallNotActive"
        )
        await h.execute_update(EscalationWorkflow.force_hang_up, ForceHangUpInput())
        assert (await h.result()).end_reason == "cancelVoip"
    assert fake.names(f"{h.id}.1") == ["ringing", "joinedRoomByCaller", "timeout", "endVoip", "finishVoip"]


async def test_round_robin_memory_across_two_calls(ts_env, task_queue):
    """Round-robin: bob answers call 1 -> call 2 starts with carol (remember_answer)."""
    fake = FakeDirectory()
    policy = EscalationPolicy(strategy=RingStrategy.ROUND_ROBIN, ring_timeout_s=20)
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=policy)
        await _ringing(h, ALICE)
        await h.execute_update(EscalationWorkflow.reject, RejectInput(party=ALICE))
        await _ringing(h, BOB)
        await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=BOB))
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=BOB))
        await h.result()
        assert fake.last_answer == {"101": "bob"}
        h2 = await _start(ts_env, task_queue, policy=policy)
        status = await _ringing(h2, CAROL)
        assert [a.listener for a in status.attempts] == [CAROL]
        await h2.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        res = await h2.result()
    assert res.end_reason == "cancelVoip"
    assert fake.names(f"{h2.id}.1")[-3:] == ["cancelVoip", "endVoip", "finishVoip"]


async def test_rounds_and_fallback(ts_env, task_queue):
    """Two rounds of (alice, bob) with 10 s each, then the concierge once (15 s); nobody answers."""
    fake = FakeDirectory()
    fake.units["101"].residents = ["alice", "bob"]
    policy = EscalationPolicy(
        ring_timeout_s=10, rounds=2, fallback_user_id="concierge", fallback_ring_timeout_s=15
    )
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=policy)
        res = await h.result()
    assert [(a.listener.id, a.round, a.fallback) for a in res.attempts] == [
        ("alice", 1, False),
        ("bob", 1, False),
        ("alice", 2, False),
        ("bob", 2, False),
        ("concierge", 1, True),
    ]
    assert res.end_reason == "timeout" and res.answered_by is None
    reasons = [e.reason for e in fake.events(call_id=h.id) if e.name == "escalated"]
    assert reasons == ["next target", "round 2", "next target", "fallback"]
    fallback_ring = fake.pushes(f"{h.id}.5")[0]
    assert fallback_ring.payload["ring_timeout_s"] == 15
    assert fake.lines == {}


async def test_fallback_answers_simultaneous_round(ts_env, task_queue):
    """Ring-all times out, the concierge answers."""
    fake = FakeDirectory()
    policy = EscalationPolicy(
        strategy=RingStrategy.SIMULTANEOUS, ring_timeout_s=30, fallback_user_id="concierge"
    )
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=policy)
        await _ringing(h, ALICE, BOB, CAROL)
        await ts_env.sleep(31)
        await _ringing(h, CONCIERGE)
        await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CONCIERGE))
        await ts_env.sleep(3)
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=CONCIERGE))
        res = await h.result()
    assert (res.answered_by, res.keep_time_s) == (CONCIERGE, 3)
    assert [a.outcome for a in res.attempts] == [AttemptOutcome.NO_ANSWER] * 3 + [AttemptOutcome.ANSWERED]


async def test_every_target_skipped(ts_env, task_queue):
    """Section 1: everybody fails a pre-call check -> initiateFailed with the errCode, nobody rung."""
    fake = FakeDirectory()
    for u in ("alice", "bob", "carol"):
        fake.precall_fail[user(u).key()] = ErrCode.DEVICE_NOT_AUTHORIZED
    async with running(ts_env, task_queue, fake):
        res = await (await _start(ts_env, task_queue)).result()
    assert (res.end_reason, res.err_code) == ("initiateFailed", ErrCode.DEVICE_NOT_AUTHORIZED)
    assert all(a.outcome == AttemptOutcome.SKIPPED for a in res.attempts)
    assert fake.claims == []
    # nobody was rung; only the caller hears that the call is over, with the reason
    [finished] = fake.pushes()
    assert (
        finished.type,
        finished.recipient,
        finished.payload["end_reason"],
        finished.payload["err_code"],
    ) == (
        "call_finished",
        LOBBY,
        "initiateFailed",
        9,
    )


async def test_unknown_unit(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, unit_id="999")
        res = await h.result()
    assert (res.end_reason, res.err_code, res.attempts) == ("initiateFailed", ErrCode.UNKNOWN_RESOURCE, [])
    assert fake.names(call_id=h.id) == ["callStarted", "callEnded"]


async def test_cancel_in_each_phase(ts_env, task_queue):
    """Caller hang-up while ringing, force while ringing, force in talk, workflow cancel
    while ringing and in talk: the right events in the room, lines always released."""
    cases = ["caller_wait", "force_wait", "force_talk", "cancel_wait", "cancel_talk", "listener_hangup_wait"]
    for case in cases:
        fake = FakeDirectory()
        async with running(ts_env, task_queue, fake):
            h = await _start(ts_env, task_queue)
            await _ringing(h, ALICE)
            if case.endswith("talk"):
                await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=ALICE))
                await ts_env.sleep(4)
            if case == "caller_wait":
                r = await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
                assert r.event == "cancelVoip"
            elif case == "listener_hangup_wait":
                r = await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=ALICE))
                assert r.event == "rejectVoip"
                await _ringing(h, BOB)  # a decline moves on
                await h.execute_update(EscalationWorkflow.force_hang_up, ForceHangUpInput())
            elif case.startswith("force"):
                await h.execute_update(EscalationWorkflow.force_hang_up, ForceHangUpInput(reason="admin"))
            else:
                await h.cancel()
            if case.startswith("cancel"):
                with pytest.raises(WorkflowFailureError) as err:
                    await h.result()
                assert isinstance(err.value.cause, CancelledError)
                res = None
            else:
                res = await h.result()
        first = fake.names(f"{h.id}.1")
        expected = {
            "caller_wait": "cancelVoip",
            "force_wait": "cancelVoip",
            "force_talk": "hangUpVoip",
            "cancel_wait": "cancelVoip",
            "cancel_talk": "hangUpVoip",
            "listener_hangup_wait": "rejectVoip",
        }[case]
        assert first[-3:] == [expected, "endVoip", "finishVoip"], (case, first)
        if case.endswith("talk"):
            assert fake.events(f"{h.id}.1")[-1].keep_time_s == 4
        assert fake.names(call_id=h.id)[-1] == "callEnded", case
        assert fake.lines == {}, case
        if res is not None and case != "force_talk":
            assert res.end_reason == "cancelVoip", case
