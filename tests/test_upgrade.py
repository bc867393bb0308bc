"""Upgrade without dropping calls (issue 8): calls started by the old shape (a parent
``EscalationWorkflow`` and one child ``CallWorkflow`` per attempt) on a worker of the old
release finish on the new worker, with the right events; new calls start the new shape.

On the dev server (real time, short timers) with the fake activities: the "old worker"
registers only the legacy types, as the previous release did; it is stopped with calls
ringing and in talk, and the new worker (every type, ``workflows.WORKFLOWS``) takes them
over from their histories (a fresh cache: every call replays on the new code first).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ringflow.contracts.calls import (
    ActionResult,
    AnswerInput,
    CallStatus,
    EscalationInput,
    EscalationResult,
    HangUpInput,
)
from ringflow.contracts.common import Party
from ringflow.contracts.messages import Query, Update, WorkflowType
from ringflow.contracts.policies import EscalationPolicy
from tests.fakes import LOBBY, FakeDirectory, register_search_attributes, running, until, user
from workflows.legacy.call import CallWorkflow
from workflows.legacy.escalation import EscalationWorkflow

ALICE, BOB, CAROL = user("alice"), user("bob"), user("carol")
ROOM = ["ringing", "joinedRoomByCaller"]
END = ["endVoip", "finishVoip"]


async def _start(
    env: WorkflowEnvironment, tq: str, workflow_type: str, ring_s: float, callee: Party | None = None
) -> WorkflowHandle:
    """A call from the lobby to unit 101 (alice, bob, carol in turn), or to ``callee`` alone."""
    call_id = f"up-{uuid.uuid4().hex[:8]}"
    target: dict[str, Any] = {"callees": [callee]} if callee else {"unit_id": "101"}
    inp = EscalationInput(
        call_id=call_id, caller=LOBBY, policy=EscalationPolicy(ring_timeout_s=ring_s), **target
    )
    return await env.client.start_workflow(
        workflow_type, inp, id=call_id, task_queue=tq, result_type=EscalationResult
    )


async def _status(handle: WorkflowHandle) -> CallStatus:
    return await handle.query(Query.STATUS, result_type=CallStatus)


async def test_old_shape_calls_finish_on_the_new_worker(dev_env: WorkflowEnvironment, task_queue: str):
    fake = FakeDirectory()
    await register_search_attributes(dev_env)
    # The previous release: only the legacy pair on the task queue.
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[EscalationWorkflow, CallWorkflow],
        activities=fake.activities(),
    ):
        # each listener rings 6 s: alice times out across the deploy, and bob's ring must outlast
        # the legacy parent hearing of it (a signal, on a dev server busy with the whole suite)
        ringing = await _start(dev_env, task_queue, WorkflowType.LEGACY_ESCALATION, ring_s=6)
        talking = await _start(dev_env, task_queue, WorkflowType.LEGACY_ESCALATION, ring_s=600, callee=CAROL)
        await until(lambda: "ringing" in fake.names(f"{ringing.id}.1"))
        await until(lambda: "ringing" in fake.names(f"{talking.id}.1"))
        # carol answers the second call and talks: a parent and its child room live on
        await talking.execute_update(Update.ANSWER, AnswerInput(party=CAROL), result_type=ActionResult)
        await until(lambda: "calling" in fake.names(f"{talking.id}.1"))
    # Old worker gone (a deploy). The first call's ring timer fires with no worker.
    async with running(dev_env, task_queue, fake):
        # the old call escalates on the new worker: alice timed out, bob rings (a new child)
        await until(lambda: "ringing" in fake.names(f"{ringing.id}.2"), timeout=20)
        # The legacy parent hears of its child's ring by a signal; its next task may first wait
        # out the old worker's sticky queue (the SDK's 10 s schedule-to-start timeout).
        for _ in range(400):
            status = await _status(ringing)
            if status.ringing == [BOB]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"bob is not ringing in the old-shape call: {status}")
        await ringing.execute_update(Update.ANSWER, AnswerInput(party=BOB), result_type=ActionResult)
        await ringing.execute_update(Update.HANG_UP, HangUpInput(party=LOBBY), result_type=ActionResult)
        first: EscalationResult = await ringing.result()
        await talking.execute_update(Update.HANG_UP, HangUpInput(party=CAROL), result_type=ActionResult)
        second: EscalationResult = await talking.result()
        # a new call placed now is the new shape: one workflow, no child rooms
        new = await _start(dev_env, task_queue, WorkflowType.BUILDING_CALL, ring_s=600, callee=ALICE)
        await until(lambda: "ringing" in fake.names(f"{new.id}.1"))
        await new.execute_update(Update.HANG_UP, HangUpInput(party=LOBBY), result_type=ActionResult)
        third: EscalationResult = await new.result()

    assert (first.end_reason, first.answered_by) == ("hangUpVoip", BOB)
    assert fake.names(f"{ringing.id}.1") == [*ROOM, "timeout", *END]
    assert fake.names(f"{ringing.id}.2") == [*ROOM, "answered", "calling", "hangUpVoip", *END]
    assert fake.names(call_id=ringing.id) == ["callStarted", "escalated", "callEnded"]
    assert (second.end_reason, second.answered_by) == ("hangUpVoip", CAROL)
    assert fake.names(f"{talking.id}.1") == [*ROOM, "answered", "calling", "hangUpVoip", *END]
    assert third.end_reason == "cancelVoip"
    assert fake.names(f"{new.id}.1") == [*ROOM, "cancelVoip", *END]
    assert fake.lines == {}  # every line claimed by either shape was released

    old_type = (await ringing.describe()).workflow_type
    new_type = (await new.describe()).workflow_type
    assert (old_type, new_type) == (WorkflowType.LEGACY_ESCALATION, WorkflowType.BUILDING_CALL)
    # the new shape started no child workflow
    history = await new.fetch_history()
    assert not [
        e for e in history.events if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
