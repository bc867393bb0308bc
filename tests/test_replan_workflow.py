"""Issue 10 item 3: re-planning a ringing building call, on the time-skipping server with the
fake activities: ``pass`` (sequential, ring-all, last target, fallback, later rounds) and
``plan_changed`` (resident removed, order changed, ring timeout changed, a unit gone, and a
change landing in the same workflow task as a ring timeout)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from ringflow.contracts.calls import (
    AnswerInput,
    AttemptOutcome,
    EscalationInput,
    HangUpInput,
    PassInput,
    Phase,
    PlanChangedInput,
)
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.messages import Signal
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, FakeUnit, register_search_attributes, running, until, user
from tests.test_escalation_workflow import _outcomes, _ringing, _update_error
from workflows import WORKFLOWS
from workflows.building_call import BuildingCallWorkflow as W

ALICE, BOB, CAROL, CONCIERGE, DAVE = (
    user("alice"),
    user("bob"),
    user("carol"),
    user("concierge"),
    user("dave"),
)


async def _start(env, tq, **kw) -> WorkflowHandle:
    inp = EscalationInput(call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, **({"unit_id": "101"} | kw))
    return await env.client.start_workflow(W.run, inp, id=inp.call_id, task_queue=tq)


def _plan_changed(fake: FakeDirectory, call_id: str) -> list[CallEvent]:
    return [e for e in fake.events(call_id=call_id) if e.name == EventName.PLAN_CHANGED]


# ---------------------------------------------------------------- pass


async def test_pass_sequential_moves_on_at_once_and_is_its_own_event(ts_env, task_queue):
    """Alice passes 2 s into her 30 s ring: her room ends with passVoip (not rejectVoip), Bob
    rings at once (no time skipped), Alice gets CALL_ENDED (she acted), not CALL_CANCELLED."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30))
        await _ringing(h, ALICE)
        await ts_env.sleep(2)
        r = await h.execute_update(W.pass_turn, PassInput(party=ALICE))
        assert (r.event, r.room_id) == (EventName.PASS_VOIP, f"{h.id}.1")
        status = await _ringing(h, BOB)
        assert status.attempts[0].outcome == AttemptOutcome.PASSED
        # passing again, or a party that is not rung, is a typed rejection
        assert await _update_error(h.execute_update(W.pass_turn, PassInput(party=ALICE))) == "CallNotActive"
        assert await _update_error(h.execute_update(W.pass_turn, PassInput(party=DAVE))) == "NotAParty"
        await h.execute_update(W.answer, AnswerInput(party=BOB))
        await h.execute_update(W.hang_up, HangUpInput(party=BOB))
        res = await h.result()
    assert _outcomes(res) == [("alice", AttemptOutcome.PASSED), ("bob", AttemptOutcome.ANSWERED)]
    room1 = fake.events(f"{h.id}.1")
    assert [e.name.value for e in room1] == [
        "ringing",
        "joinedRoomByCaller",
        "passVoip",
        "endVoip",
        "finishVoip",
    ]
    passed = room1[2]
    assert (passed.party, passed.reason) == (ALICE, "listener passed")
    # Bob was rung at the time Alice passed (2 s in), not after her 30 s
    bob_ring = fake.events(f"{h.id}.2")[0]
    assert (bob_ring.at - room1[0].at).total_seconds() < 3
    alice_pushes = [p.type for p in fake.pushes(f"{h.id}.1") if p.recipient == ALICE]
    assert alice_pushes == [PushType.INCOMING_CALL, PushType.CALL_ENDED]


async def test_pass_leaves_the_listener_out_of_later_rounds(ts_env, task_queue):
    """Two rounds: Alice passes in round 1 -> round 2 rings Bob and Carol only (a reject would
    ring her again)."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=10, rounds=2))
        await _ringing(h, ALICE)
        await h.execute_update(W.pass_turn, PassInput(party=ALICE))
        res = await h.result()
    assert _outcomes(res) == [
        ("alice", AttemptOutcome.PASSED),
        ("bob", AttemptOutcome.NO_ANSWER),
        ("carol", AttemptOutcome.NO_ANSWER),
        ("bob", AttemptOutcome.NO_ANSWER),
        ("carol", AttemptOutcome.NO_ANSWER),
    ]
    assert res.end_reason == "timeout"


async def test_pass_simultaneous_others_keep_ringing_last_one_moves_on(ts_env, task_queue):
    """Ring-all with a fallback: Alice passes -> Bob and Carol still ring; Bob passes -> Carol
    still rings; Carol passes (the last one ringing) -> the concierge is rung at once."""
    fake = FakeDirectory()
    policy = EscalationPolicy(
        strategy=RingStrategy.SIMULTANEOUS, ring_timeout_s=30, fallback_user_id="concierge"
    )
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=policy)
        await _ringing(h, ALICE, BOB, CAROL)
        await h.execute_update(W.pass_turn, PassInput(party=ALICE))
        status = await h.query(W.status)
        assert status.ringing == [BOB, CAROL]
        await h.execute_update(W.pass_turn, PassInput(party=BOB))
        assert (await h.query(W.status)).ringing == [CAROL]
        await h.execute_update(W.pass_turn, PassInput(party=CAROL))
        await _ringing(h, CONCIERGE)
        # the fallback passes too: nobody is left, the call ends at once with passVoip
        await h.execute_update(W.pass_turn, PassInput(party=CONCIERGE))
        res = await h.result()
    assert [o for _, o in _outcomes(res)] == [AttemptOutcome.PASSED] * 4
    assert res.end_reason == EventName.PASS_VOIP.value
    escalated = [e for e in fake.events(call_id=h.id) if e.name == EventName.ESCALATED]
    assert [e.reason for e in escalated] == ["fallback"]


async def test_pass_of_the_last_sequential_target_goes_to_the_fallback(ts_env, task_queue):
    fake = FakeDirectory()
    fake.units["101"] = FakeUnit("Unit 101", ["alice"])
    async with running(ts_env, task_queue, fake):
        h = await _start(
            ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30, fallback_user_id="concierge")
        )
        await _ringing(h, ALICE)
        await h.execute_update(W.pass_turn, PassInput(party=ALICE))
        await _ringing(h, CONCIERGE)
        await h.execute_update(W.answer, AnswerInput(party=CONCIERGE))
        status = await h.query(W.status)
        assert status.phase == Phase.TALK
        await h.execute_update(W.hang_up, HangUpInput(party=CONCIERGE))
        res = await h.result()
    assert [a.listener for a in status.attempts] == [ALICE, CONCIERGE]
    assert res.answered_by == CONCIERGE


# ---------------------------------------------------------------- plan_changed


async def test_resident_removed_is_not_rung(ts_env, task_queue):
    """Bob moves out while Alice rings: the change reaches the call, Alice keeps ringing (her
    timer unchanged), then Carol is rung, not Bob; planChanged says Bob was removed."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30))
        await _ringing(h, ALICE)
        fake.units["101"].residents.remove("bob")
        await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 updated"))
        await until(lambda: _plan_changed(fake, h.id))
        assert (await h.query(W.status)).ringing == [ALICE]
        res = await h.result()
    assert [a.listener.id for a in res.attempts] == ["alice", "carol"]
    ev = _plan_changed(fake, h.id)[0]
    assert ev.reason == "unit 101 updated"
    assert ev.data == {
        "what": ["unit 101 updated"],
        "added": [],
        "removed": [BOB.key()],
        "ring_timeout_s": 30,
        "remaining": [CAROL.key()],
    }
    alice = fake.events(f"{h.id}.1")
    timeout = next(e for e in alice if e.name == EventName.TIMEOUT)
    assert (timeout.at - alice[0].at).total_seconds() == pytest.approx(30, abs=1)


async def test_order_changed_and_timeout_changed_apply_to_targets_not_yet_rung(ts_env, task_queue):
    """While Alice rings (30 s), the unit's order becomes carol, dave, alice, bob and its ring
    timeout 10 s: after Alice, Carol then Dave (added) then Bob ring, 10 s each; Alice is not
    rung twice in the round."""
    fake = FakeDirectory()
    fake.user_names["dave"] = "Dave"
    fake.units["101"].policy = EscalationPolicy(ring_timeout_s=30)
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        await _ringing(h, ALICE)
        fake.units["101"].residents = ["carol", "dave", "alice", "bob"]
        fake.units["101"].policy = EscalationPolicy(ring_timeout_s=10)
        await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 updated"))
        await until(lambda: _plan_changed(fake, h.id))
        res = await h.result()
    assert [a.listener.id for a in res.attempts] == ["alice", "carol", "dave", "bob"]
    ev = _plan_changed(fake, h.id)[0]
    assert (ev.data["added"], ev.data["removed"], ev.data["ring_timeout_s"]) == ([DAVE.key()], [], 10)
    assert ev.data["remaining"] == [CAROL.key(), DAVE.key(), BOB.key()]
    rings = [fake.events(f"{h.id}.{n}") for n in range(1, 5)]
    spans = [(r[2].at - r[0].at).total_seconds() for r in rings]  # ringing -> timeout
    assert spans == pytest.approx([30, 10, 10, 10], abs=1)


async def test_unit_gone_rings_nobody_more(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=30))
        await _ringing(h, ALICE)
        del fake.units["101"]
        await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 deleted"))
        res = await h.result()
    assert [a.listener.id for a in res.attempts] == ["alice"]
    ev = _plan_changed(fake, h.id)[0]
    assert ev.data["removed"] == [BOB.key(), CAROL.key()] and ev.data["error"].startswith("UnknownUnit")


async def test_change_after_the_answer_is_ignored(ts_env, task_queue):
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _start(ts_env, task_queue)
        await _ringing(h, ALICE)
        await h.execute_update(W.answer, AnswerInput(party=ALICE))
        await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 updated"))
        assert (await h.query(W.status)).phase == Phase.TALK
        await h.cancel()
    assert fake.replans == [] and _plan_changed(fake, h.id) == []


async def test_change_in_the_same_task_as_the_ring_timeout(ts_env, task_queue):
    """The rule: a change that lands in the same workflow task as a ring timeout is applied
    before the next stage is chosen. Alice's 30 s ring times out while the worker is away and
    the change (Bob moved out) is signalled meanwhile: both reach the workflow in ONE task
    (checked in the history); the next one rung is Carol, never Bob."""
    fake = FakeDirectory()
    await register_search_attributes(ts_env)
    async with Worker(  # no cache: no sticky queue, the next task goes to the task queue
        ts_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=fake.activities(),
        max_cached_workflows=0,
    ):
        h = await _start(ts_env, task_queue, policy=EscalationPolicy(ring_timeout_s=2))
        await _ringing(h, ALICE)
    # the worker is gone: Alice's 2 s ring times out (the test server's clock runs in real
    # time while no client waits on it), then the change is signalled: both wait for the
    # next workflow task
    await asyncio.sleep(2.5)
    fake.units["101"].residents.remove("bob")
    await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 updated"))
    async with running(ts_env, task_queue, fake):
        res = await h.result()
    assert [a.listener.id for a in res.attempts] == ["alice", "carol"]
    assert _outcomes(res)[0] == ("alice", AttemptOutcome.NO_ANSWER)
    history = await h.fetch_history()
    kinds = [e.event_type for e in history.events]
    fired = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
    signalled = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    started = [i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]
    completed = [i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    # no workflow task completed between the signal and the timer: one task saw both
    first, last = sorted((fired, signalled))
    assert not [i for i in completed if first < i < last]
    assert any(i > last for i in started)
    summaries = [
        json.loads(e.user_metadata.summary.data)
        for e in history.events
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
    ]
    assert "ringing Bob (2 s)" not in summaries and "ringing Carol (2 s)" in summaries
    ev = _plan_changed(fake, h.id)[0]
    assert ev.data["removed"] == [BOB.key()]
