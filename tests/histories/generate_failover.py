"""Make the stored history of a media failover (issue 13 item 4) replayed by
``tests/test_replay.py``: ``python -m tests.histories.generate_failover [--tag TAG]`` runs a
media call on a time-skipping server with the fake activities (the door and carol talk, the
bridge holding the room dies, both join again on node-b, carol hangs up) and writes
``failover<TAG>.json`` here. Kept apart from ``generate.py``, whose scenarios are older."""

from __future__ import annotations

import argparse
import asyncio
import uuid

from temporalio.testing import WorkflowEnvironment

from ringflow.contracts.calls import AnswerInput, EscalationInput, HangUpInput, JoinInput
from ringflow.contracts.media import BridgeLostInput, MediaPlacement
from ringflow.stack.binaries import temporal_test_server
from ringflow.temporal import DATA_CONVERTER
from tests.fakes import LOBBY, FakeDirectory, running, user
from tests.histories.generate import HERE, _wait_ringing
from workflows.building_call import BuildingCallWorkflow


async def main(tag: str) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=str(temporal_test_server())
    )
    call_id, carol = f"failover{tag}", user("carol")
    async with env:
        fake = FakeDirectory()
        fake.media_placement = MediaPlacement(node_id="node-a")
        tq = f"tq-{uuid.uuid4()}"
        async with running(env, tq, fake):
            h = await env.client.start_workflow(
                BuildingCallWorkflow.run,
                EscalationInput(call_id=call_id, caller=LOBBY, callees=[carol], media_required=True),
                id=call_id,
                task_queue=tq,
            )
            await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=LOBBY))
            await _wait_ringing(h, carol)
            await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=carol))
            await env.sleep(1)
            await h.execute_update(BuildingCallWorkflow.answer, AnswerInput(party=carol))
            await env.sleep(5)
            fake.media_placement = MediaPlacement(node_id="node-b", moves=1)
            await h.signal(
                BuildingCallWorkflow.media_bridge_lost, BridgeLostInput(room_id=call_id, node="node-a/0")
            )
            await env.sleep(2)
            for party in (LOBBY, carol):
                await h.signal(BuildingCallWorkflow.joined, JoinInput(room_id=call_id, party=party))
            await env.sleep(10)
            await h.execute_update(BuildingCallWorkflow.hang_up, HangUpInput(party=carol))
            await h.result()
        history = await env.client.get_workflow_handle(call_id).fetch_history()
        (HERE / f"{call_id}.json").write_text(history.to_json())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="-bc1", help="suffix of the id and file name")
    asyncio.run(main(parser.parse_args().tag))
