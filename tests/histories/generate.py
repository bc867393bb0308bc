"""Regenerate the stored histories replayed by ``tests/test_replay.py``.

``python -m tests.histories.generate``: runs the demo scenario (sequential: A no
answer, B busy, C answers and talks 25 s) and a ring-all race on a time-skipping
server with the fake activities, and writes each workflow's history as JSON here.
Regenerate only on purpose (a changed history means a non-replay-safe change: see
CONVENTIONS, versioning with ``workflow.patched``).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ringflow.contracts.calls import AnswerInput, EscalationInput, ForceHangUpInput, HangUpInput
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.stack.binaries import temporal_test_server
from ringflow.temporal import DATA_CONVERTER
from tests.fakes import LOBBY, FakeDirectory, running, user
from workflows.escalation import EscalationWorkflow

HERE = Path(__file__).parent


async def _wait_ringing(handle, party) -> None:
    for _ in range(500):  # polling a query: no event to wait on
        if party in (await handle.query(EscalationWorkflow.status)).ringing:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{party} not ringing")


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=str(temporal_test_server())
    )
    async with env:
        fake = FakeDirectory()
        fake.lines[user("bob").key()] = "elsewhere.1"
        tq = f"tq-{uuid.uuid4()}"
        async with running(env, tq, fake):
            demo = await env.client.start_workflow(
                EscalationWorkflow.run,
                EscalationInput(
                    call_id="demo", caller=LOBBY, unit_id="101", policy=EscalationPolicy(ring_timeout_s=30)
                ),
                id="demo",
                task_queue=tq,
            )
            await _wait_ringing(demo, user("alice"))
            await env.sleep(31)
            await _wait_ringing(demo, user("carol"))
            await demo.execute_update(EscalationWorkflow.answer, AnswerInput(party=user("carol")))
            await env.sleep(25)
            await demo.execute_update(EscalationWorkflow.hang_up, HangUpInput(party=LOBBY))
            await demo.result()
            fake.lines.clear()
            race = await env.client.start_workflow(
                EscalationWorkflow.run,
                EscalationInput(
                    call_id="race",
                    caller=LOBBY,
                    unit_id="101",
                    policy=EscalationPolicy(strategy=RingStrategy.SIMULTANEOUS),
                ),
                id="race",
                task_queue=tq,
            )
            await _wait_ringing(race, user("carol"))
            await race.execute_update(EscalationWorkflow.answer, AnswerInput(party=user("bob")))
            await env.sleep(3)
            await race.execute_update(EscalationWorkflow.force_hang_up, ForceHangUpInput())
            await race.result()
        for wf_id in ["demo", "demo.1", "demo.2", "demo.3", "race", "race.1", "race.2", "race.3"]:
            history = await env.client.get_workflow_handle(wf_id).fetch_history()
            (HERE / f"{wf_id}.json").write_text(history.to_json())


if __name__ == "__main__":
    asyncio.run(main())
