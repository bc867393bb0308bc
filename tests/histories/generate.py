"""Regenerate the stored histories replayed by ``tests/test_replay.py``.

``python -m tests.histories.generate [--tag TAG] [--only SCENARIO ...]``: runs the demo
scenario (sequential: A no answer, B busy, C answers and talks 25 s), a ring-all race, a
media call (one media room: the door joins once, a previewing listener answers, opens the
door, hangs up), an availability call (issue 10: A away, B in do-not-disturb, both skipped at
the ring's instant, C answers) and a missed call (issue 10: A passes, the unit changes under
the ringing call, nobody answers, the follow-up window: a call back and a remote open) and a
media failover (issue 13: the bridge node holding the talking call dies, both parties join
again on another node) as
``BuildingCallWorkflow`` on a time-skipping server with the fake activities, and writes each
call's history as JSON here, named ``<scenario><TAG>.json`` (``--only``: those scenarios). Keep the histories
of older code and add new ones with a new TAG; regenerate old ones only on purpose
(docs/design.md#versioning). The legacy shape's histories (``EscalationWorkflow`` plus one
``CallWorkflow`` per attempt, ``<scenario>[-s2|-s3][.<attempt>].json``) were made by this
script before issue 8 and guard the calls still running on it after an upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ringflow.availability import PersonAvailability
from ringflow.contracts.calls import (
    AnswerInput,
    CustomActionAck,
    CustomActionInput,
    EscalationInput,
    FollowUpInput,
    ForceHangUpInput,
    HangUpInput,
    JoinInput,
    PassInput,
    PlanChangedInput,
)
from ringflow.contracts.media import BridgeLostInput, MediaPlacement
from ringflow.contracts.messages import Signal
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.stack.binaries import temporal_test_server
from ringflow.temporal import DATA_CONVERTER
from tests.fakes import LOBBY, FakeDirectory, running, user
from workflows.building_call import BuildingCallWorkflow

HERE = Path(__file__).parent


async def _wait_ringing(handle, party) -> None:
    for _ in range(500):  # polling a query: no event to wait on
        if party in (await handle.query(BuildingCallWorkflow.status)).ringing:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{party} not ringing")


async def main(tag: str, only: tuple[str, ...] | None = None) -> None:
    """Play ``only`` (default: every scenario of :data:`SCENARIOS`) and write their histories."""
    names = only or tuple(SCENARIOS)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=str(temporal_test_server())
    )
    async with env:
        fake = FakeDirectory()
        tq = f"tq-{uuid.uuid4()}"
        async with running(env, tq, fake):
            for name in names:
                fake.lines.clear()
                await SCENARIOS[name](env, tq, fake, f"{name}{tag}")
        await _write(env, [f"{name}{tag}" for name in names])


async def _demo_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """The demo: sequential, alice does not answer, bob is busy, carol answers and talks 25 s."""
    fake.lines[user("bob").key()] = "elsewhere.1"
    demo = await env.client.start_workflow(
        BuildingCallWorkflow.run,
        EscalationInput(
            call_id=call_id,
            caller=LOBBY,
            unit_id="101",
            policy=EscalationPolicy(ring_timeout_s=30),
        ),
        id=call_id,
        task_queue=tq,
    )
    await _wait_ringing(demo, user("alice"))
    await env.sleep(31)
    await _wait_ringing(demo, user("carol"))
    await demo.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=user("carol")))
    await env.sleep(25)
    await demo.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=LOBBY))
    await demo.result()


async def _race_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """A ring-all race: bob answers while all three ring, the backend forces the hang-up."""
    race = await env.client.start_workflow(
        BuildingCallWorkflow.run,
        EscalationInput(
            call_id=call_id,
            caller=LOBBY,
            unit_id="101",
            policy=EscalationPolicy(strategy=RingStrategy.SIMULTANEOUS),
        ),
        id=call_id,
        task_queue=tq,
    )
    await _wait_ringing(race, user("carol"))
    await race.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=user("bob")))
    await env.sleep(3)
    await race.execute_update(BuildingCallWorkflow.force_hang_up, ForceHangUpInput())
    await race.result()


async def _write(env: WorkflowEnvironment, ids: list[str]) -> None:
    for wf_id in ids:
        history = await env.client.get_workflow_handle(wf_id).fetch_history()
        (HERE / f"{wf_id}.json").write_text(history.to_json())


async def _missed_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """Issue 10: a media call to unit 101 (10 s rings, a 600 s follow-up window with remote
    open): bob moves out while alice rings (``planChanged``), alice passes, carol times out;
    the snapshot is stored, carol calls back and opens the door, the window closes."""
    alice, carol = user("alice"), user("carol")
    h = await env.client.start_workflow(
        BuildingCallWorkflow.run,
        EscalationInput(
            call_id=call_id,
            caller=LOBBY,
            unit_id="101",
            media_required=True,
            policy=EscalationPolicy(ring_timeout_s=10, follow_up_window_s=600, remote_open_after_miss=True),
        ),
        id=call_id,
        task_queue=tq,
    )
    await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=LOBBY))
    await _wait_ringing(h, alice)
    fake.units["101"].residents.remove("bob")
    await h.signal(Signal.PLAN_CHANGED, PlanChangedInput(what="unit 101 updated"))
    for _ in range(500):
        if any(e.name == "planChanged" for e in fake.events(call_id=call_id)):
            break
        await asyncio.sleep(0.02)
    await h.execute_update(BuildingCallWorkflow.pass_turn, PassInput(party=alice))
    await _wait_ringing(h, carol)
    await env.sleep(11)
    for _ in range(500):
        if (await h.query(BuildingCallWorkflow.status)).follow_up_until is not None:
            break
        await asyncio.sleep(0.02)
    await h.execute_update(BuildingCallWorkflow.call_back, FollowUpInput(party=carol))
    opening = asyncio.create_task(
        h.execute_update(BuildingCallWorkflow.open_door, FollowUpInput(party=carol))
    )
    await _door_acks(h, fake, call_id)
    await opening
    await h.result()
    fake.units["101"].residents.insert(1, "bob")


async def _door_acks(h: WorkflowHandle, fake: FakeDirectory, call_id: str) -> None:
    """The door acknowledges the call's first ``custom_action`` push ("door opened")."""
    for _ in range(500):
        pushed = [p for p in fake.pushes() if p.type == "custom_action" and p.call_id == call_id]
        if pushed:
            break
        await asyncio.sleep(0.02)
    await h.execute_update(
        BuildingCallWorkflow.custom_action_ack,
        CustomActionAck(party=LOBBY, action_id=pushed[0].payload["action_id"], detail="door opened"),
    )


async def _answered_media_call(env: WorkflowEnvironment, tq: str, call_id: str, listener) -> WorkflowHandle:
    """A media call from the lobby door to ``listener``: the door joins the room, the listener
    is rung, joins (preview) and answers after 1 s; the call's handle."""
    h = await env.client.start_workflow(
        BuildingCallWorkflow.run,
        EscalationInput(call_id=call_id, caller=LOBBY, callees=[listener], media_required=True),
        id=call_id,
        task_queue=tq,
    )
    await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=LOBBY))
    await _wait_ringing(h, listener)
    await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=listener))
    await env.sleep(1)
    await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=listener))
    return h


async def _media_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """docs/media.md: the door joins the room, carol previews, answers, opens the door, hangs up."""
    carol = user("carol")
    h = await _answered_media_call(env, tq, call_id, carol)
    asking = asyncio.create_task(
        h.execute_update(
            BuildingCallWorkflow.custom_action, CustomActionInput(party=carol, action="open_door")
        )
    )
    await _door_acks(h, fake, call_id)
    await asking
    await env.sleep(10)
    await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=carol))
    await h.result()


async def _availability_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """Issue 10: alice away, bob in do-not-disturb (both skipped, 1017 and 1003), carol answers."""
    fake.people["alice"] = PersonAvailability("alice", away=True)
    fake.people["bob"] = PersonAvailability("bob", manager_dnd=True)
    h = await env.client.start_workflow(
        BuildingCallWorkflow.run,
        EscalationInput(
            call_id=call_id, caller=LOBBY, unit_id="101", policy=EscalationPolicy(ring_timeout_s=30)
        ),
        id=call_id,
        task_queue=tq,
    )
    await _wait_ringing(h, user("carol"))
    await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=user("carol")))
    await env.sleep(5)
    await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=user("carol")))
    await h.result()
    fake.people.clear()


async def _failover_call(env: WorkflowEnvironment, tq: str, fake: FakeDirectory, call_id: str) -> None:
    """Issue 13 item 4: a media call (the door and carol talk), the bridge node holding the room
    dies, both join again on node-b, carol hangs up."""
    carol = user("carol")
    fake.media_placement = MediaPlacement(node_id="node-a")
    h = await _answered_media_call(env, tq, call_id, carol)
    await env.sleep(5)
    fake.media_placement = MediaPlacement(node_id="node-b", moves=1)
    await h.signal(BuildingCallWorkflow.media_bridge_lost, BridgeLostInput(room_id=call_id, node="node-a/0"))
    await env.sleep(2)
    for party in (LOBBY, carol):
        await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=party))
    await env.sleep(10)
    await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=carol))
    await h.result()
    fake.media_placement = None


SCENARIOS = {
    "demo": _demo_call,
    "race": _race_call,
    "media": _media_call,
    "dnd": _availability_call,
    "missed": _missed_call,
    "failover": _failover_call,
}
"""Every scenario by name (``--only``): each plays one call with id ``<name><TAG>``."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="suffix of the scenario ids and file names, e.g. -bc2")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="only these scenarios")
    args = parser.parse_args()
    asyncio.run(main(args.tag, tuple(args.only) if args.only else None))
