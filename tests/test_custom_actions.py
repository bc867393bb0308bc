"""In-call actions ("open door", reference FAQ 1.2 ``setCustomBtnText``; docs/media.md) on
the EscalationWorkflow, time-skipping server with fake activities: the listener in talk
asks, the device acknowledges (done / failed) or does not (timeout), and every bad request
is refused with its own error type, writing nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from ringflow.contracts.calls import (
    AnswerInput,
    CustomActionAck,
    CustomActionInput,
    CustomActionOutcome,
    EscalationInput,
    HangUpInput,
    Phase,
)
from ringflow.contracts.push import PushType
from tests.fakes import LOBBY, FakeDirectory, running, until, user
from workflows.building_call import BuildingCallWorkflow as EscalationWorkflow

CAROL, BOB = user("carol"), user("bob")


async def _talking(env, tq, fake: FakeDirectory) -> WorkflowHandle:
    """A call from the lobby to carol, answered: in talk."""
    inp = EscalationInput(call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, callees=[CAROL, BOB])
    h = await env.client.start_workflow(EscalationWorkflow.run, inp, id=inp.call_id, task_queue=tq)
    await until(lambda: any(p.type == PushType.INCOMING_CALL for p in fake.pushes()))
    r = await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))
    assert r.phase == Phase.TALK
    return h


async def _error(coro) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await coro
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type or ""


def _action_pushes(fake: FakeDirectory) -> list:
    return [p for p in fake.pushes() if p.type in (PushType.CUSTOM_ACTION, PushType.CUSTOM_ACTION_RESULT)]


async def test_open_door_acknowledged(ts_env, task_queue):
    """Carol presses "Open door": customAction, the push to the lobby, its ack -> done,
    customActionResult and the result push to carol; the update answers with the result."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _talking(ts_env, task_queue, fake)
        asking = asyncio.create_task(
            h.execute_update(
                EscalationWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        )
        await until(lambda: any(p.type == PushType.CUSTOM_ACTION for p in fake.pushes()))
        push = next(p for p in fake.pushes() if p.type == PushType.CUSTOM_ACTION)
        assert push.recipient == LOBBY
        assert push.payload["action"] == "open_door" and push.payload["by"] == CAROL.key()
        action_id = push.payload["action_id"]
        acked = await h.execute_update(
            EscalationWorkflow.custom_action_ack,
            CustomActionAck(party=LOBBY, action_id=action_id, ok=True, detail="door opened"),
        )
        res = await asking
        assert (res.result, res.detail, res.by, res.action_id) == (
            CustomActionOutcome.DONE,
            "door opened",
            CAROL,
            action_id,
        )
        assert acked == res
        # a second ack of the same action is refused and writes nothing
        n = len(fake.records)
        assert (
            await _error(
                h.execute_update(
                    EscalationWorkflow.custom_action_ack, CustomActionAck(party=LOBBY, action_id=action_id)
                )
            )
            == "ActionSettled"
        )
        assert len(fake.records) == n
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=CAROL))
        await h.result()
    names = fake.names(call_id=h.id)
    assert names == ["callStarted", "customAction", "customActionResult", "callEnded"]
    ev = fake.events(call_id=h.id)
    assert ev[1].party == CAROL and ev[1].data["action"] == "open_door"
    assert ev[2].party == LOBBY and ev[2].data["result"] == "done" and ev[2].data["detail"] == "door opened"
    result_push = _action_pushes(fake)[-1]
    assert (result_push.type, result_push.recipient, result_push.payload["result"]) == (
        PushType.CUSTOM_ACTION_RESULT,
        CAROL,
        "done",
    )


async def test_open_door_failed_and_timeout(ts_env, task_queue):
    """ok=false -> failed with the device's reason; no ack within action_ack_timeout_s -> timeout
    (and a late ack is refused as settled)."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _talking(ts_env, task_queue, fake)
        asking = asyncio.create_task(
            h.execute_update(
                EscalationWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        )
        await until(lambda: len(_action_pushes(fake)) == 1)
        first = _action_pushes(fake)[0].payload["action_id"]
        await h.execute_update(
            EscalationWorkflow.custom_action_ack,
            CustomActionAck(party=LOBBY, action_id=first, ok=False, detail="lock jammed"),
        )
        failed = await asking
        assert (failed.result, failed.detail) == (CustomActionOutcome.FAILED, "lock jammed")

        asking = asyncio.create_task(
            h.execute_update(
                EscalationWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        )
        await until(lambda: len(_action_pushes(fake)) == 3)
        second = _action_pushes(fake)[2].payload["action_id"]
        assert second != first
        await ts_env.sleep(6)  # default action_ack_timeout_s = 5
        timed_out = await asking
        assert timed_out.result == CustomActionOutcome.TIMEOUT
        assert timed_out.detail == "no acknowledgement in 5 s"
        assert (
            await _error(
                h.execute_update(
                    EscalationWorkflow.custom_action_ack, CustomActionAck(party=LOBBY, action_id=second)
                )
            )
            == "ActionSettled"
        )
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        await h.result()
    results = [e.data["result"] for e in fake.events(call_id=h.id) if e.name == "customActionResult"]
    assert results == ["failed", "timeout"]


async def test_action_errors_write_nothing(ts_env, task_queue):
    """Outside talk -> CallNotActive; the caller or a stranger -> NotAParty; an action the
    device does not offer -> UnknownAction; an ack by the listener -> NotAParty; an unknown
    action id -> UnknownActionId. None of them records anything."""
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        inp = EscalationInput(call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, callees=[CAROL])
        h = await ts_env.client.start_workflow(
            EscalationWorkflow.run, inp, id=inp.call_id, task_queue=task_queue
        )
        await until(lambda: any(p.type == PushType.INCOMING_CALL for p in fake.pushes()))
        ask = EscalationWorkflow.custom_action
        n = len(fake.records)
        assert await _error(h.execute_update(ask, CustomActionInput(party=CAROL, action="open_door"))) == (
            "CallNotActive"
        )
        await h.execute_update(EscalationWorkflow.answer, AnswerInput(party=CAROL))
        n = len(fake.records)
        cases = [
            (ask, CustomActionInput(party=LOBBY, action="open_door"), "NotAParty"),
            (ask, CustomActionInput(party=user("mallory"), action="open_door"), "NotAParty"),
            (ask, CustomActionInput(party=CAROL, action="launch_rocket"), "UnknownAction"),
            (EscalationWorkflow.custom_action_ack, CustomActionAck(party=CAROL, action_id="x"), "NotAParty"),
            (
                EscalationWorkflow.custom_action_ack,
                CustomActionAck(party=LOBBY, action_id="x"),
                "UnknownActionId",
            ),
        ]
        for update, arg, expected in cases:
            assert await _error(h.execute_update(update, arg)) == expected, arg
        assert len(fake.records) == n
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=CAROL))
        await h.result()


async def test_device_without_actions_and_call_ending_first(ts_env, task_queue):
    """A device that offers no action refuses every one (UnknownAction); an action still
    waiting when the talk ends settles as timeout ("the call ended first")."""
    fake = FakeDirectory()
    fake.caller_actions = []
    async with running(ts_env, task_queue, fake):
        h = await _talking(ts_env, task_queue, fake)
        assert (
            await _error(
                h.execute_update(
                    EscalationWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
                )
            )
            == "UnknownAction"
        )
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=CAROL))
        await h.result()
    fake = FakeDirectory()
    async with running(ts_env, task_queue, fake):
        h = await _talking(ts_env, task_queue, fake)
        asking = asyncio.create_task(
            h.execute_update(
                EscalationWorkflow.custom_action, CustomActionInput(party=CAROL, action="open_door")
            )
        )
        await until(lambda: len(_action_pushes(fake)) == 1)
        await h.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
        res = await asking
        await h.result()
    assert (res.result, res.detail) == (CustomActionOutcome.TIMEOUT, "the call ended first")
    assert fake.names(call_id=h.id)[-2:] == ["customActionResult", "callEnded"]
