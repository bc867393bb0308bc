"""Open the door from the incoming-call screen (issue 11 item 3): with the unit policy's
``open_while_ringing`` a listener being rung may ask for the calling device's in-call
action before answering, audited as the in-call action (``customAction`` with
``while_ringing``); without it (the default) the request is refused as before. Time-skipping
server, fake activities (``tests/fakes.py``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ringflow.contracts.calls import (
    AnswerInput,
    CustomActionAck,
    CustomActionInput,
    CustomActionOutcome,
    EscalationInput,
    HangUpInput,
)
from ringflow.contracts.policies import EscalationPolicy
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow

CAROL, BOB = user("carol"), user("bob")


def _start_input(open_while_ringing: bool) -> EscalationInput:
    return EscalationInput(
        call_id=f"call-{uuid.uuid4().hex[:8]}",
        caller=LOBBY,
        callees=[CAROL, BOB],
        policy=EscalationPolicy(open_while_ringing=open_while_ringing),
    )


async def test_open_door_while_ringing_allowed(ts_env, task_queue):
    """Carol, rung, presses "Open door" before answering: the incoming_call push offers it
    (``ringing_actions``), customAction (while_ringing) goes to the lobby, its ack settles
    it as done; carol may then still answer and hang up."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        inp = _start_input(True)
        h = await ts_env.client.start_workflow(
            BuildingCallWorkflow.run, inp, id=inp.call_id, task_queue=task_queue
        )
        await until(lambda: any(p.type == PushType.INCOMING_CALL for p in fake.pushes()))
        ring = next(p for p in fake.pushes() if p.type == PushType.INCOMING_CALL)
        assert ring.recipient == CAROL and ring.payload["ringing_actions"] == ["open_door"]
        asking = asyncio.create_task(
            h.execute_update(
                BuildingCallWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        )
        await until(lambda: any(p.type == PushType.CUSTOM_ACTION for p in fake.pushes()))
        push = next(p for p in fake.pushes() if p.type == PushType.CUSTOM_ACTION)
        assert push.recipient == LOBBY and push.payload["while_ringing"] is True
        await h.execute_update(
            BuildingCallWorkflow.custom_action_ack,
            CustomActionAck(party=LOBBY, action_id=push.payload["action_id"], ok=True, detail="door opened"),
        )
        res = await asking
        assert (res.result, res.by) == (CustomActionOutcome.DONE, CAROL)
        # bob is not rung (sequential: carol first), so he may not open
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(
                BuildingCallWorkflow.custom_action, CustomActionInput(party=BOB, action="open_door")
            )
        assert isinstance(err.value.cause, ApplicationError) and err.value.cause.type == "CallNotActive"
        await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=CAROL))
        await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=CAROL))
        await h.result()
    ev = fake.events(call_id=h.id)
    names = [e.name for e in ev]
    assert names[:3] == ["callStarted", "customAction", "customActionResult"], names
    assert ev[1].party == CAROL and ev[1].data["while_ringing"] is True
    assert ev[2].party == LOBBY and ev[2].data["result"] == "done"


async def test_open_door_while_ringing_refused_by_default(ts_env, task_queue):
    """Without ``open_while_ringing`` the ringing listener's request is CallNotActive, writes
    nothing, and the incoming_call push offers no action (its payload as before)."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        inp = _start_input(False)
        h = await ts_env.client.start_workflow(
            BuildingCallWorkflow.run, inp, id=inp.call_id, task_queue=task_queue
        )
        await until(lambda: any(p.type == PushType.INCOMING_CALL for p in fake.pushes()))
        ring = next(p for p in fake.pushes() if p.type == PushType.INCOMING_CALL)
        assert "ringing_actions" not in ring.payload
        n = len(fake.records)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(
                BuildingCallWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        assert isinstance(err.value.cause, ApplicationError) and err.value.cause.type == "CallNotActive"
        assert len(fake.records) == n
        await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=LOBBY))
        await h.result()
