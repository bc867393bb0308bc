"""``ringflow simulate`` against the real engine (issue 10 item 5): the same scenario played by
the simulator (time-skipping test server, in-memory directory) and by the real stack
(PostgreSQL, the Temporal dev server, the API over HTTP, a real worker) gives the same events,
in the same order, at the same times within the ring timeout's resolution.

The building is ``examples/building.yaml`` with unit 101's ring timeout shortened to 2 s (for
both). The scenario: alice in do-not-disturb (the backend's ``PUT /v1/users/alice/do-not-disturb``),
bob passes 1 s after his push, 0.5 s into the call the manager sets the ring timeout to 1.5 s
(``PUT /v1/units/101``), carol lets it ring, the concierge (fallback) answers 0.5 s after the
push and hangs up 1 s later. Reactions are sent through the API when the push arrives.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from ringflow.client import Backend, PartyClient, Received
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import Building
from ringflow.directory_load import load_building, read_building
from ringflow.simulation.runner import simulate
from ringflow.simulation.scenario import Scenario
from store.db import create_pool
from tests.integration_helpers import BUILDING, poll
from tests.test_push import serve_with_worker

TOLERANCE_S = 0.5
"""The ring timeout's resolution here (rings of 1.5-2 s): real pushes, HTTP and the worker's
latency against the simulator's exact skips."""

REACTIONS: dict[str, tuple[str, float, float]] = {  # user -> (action, after the push s, talk s)
    "bob": ("pass", 1.0, 0.0),
    "concierge": ("answer", 0.5, 1.0),
}
EDIT_AT_S = 0.5


def short_building() -> Building:
    doc = read_building(BUILDING).model_dump()
    for unit in doc["units"]:
        if unit["id"] == "101":
            unit["policy"]["ring_timeout_s"] = 2
    return Building.model_validate(doc)


def scenario(at: datetime) -> Scenario:
    return Scenario.model_validate(
        {
            "unit": "101",
            "caller": "LOBBY-1",
            "at": at.isoformat(),
            "people": {"alice": {"dnd": True}},
            "reactions": {
                "bob": {"passes_after_s": REACTIONS["bob"][1]},
                "concierge": {
                    "answers_after_s": REACTIONS["concierge"][1],
                    "talks_s": REACTIONS["concierge"][2],
                },
            },
            "edits": [{"at_s": EDIT_AT_S, "policy": {"ring_timeout_s": 1.5}}],
        }
    )


def timeline(events: list[dict[str, Any]], started_at: datetime) -> list[tuple[str, str, float]]:
    return [
        (
            e["name"],
            (e.get("listener") or {}).get("id", "") if isinstance(e.get("listener"), dict) else "",
            (datetime.fromisoformat(e["at"]) - started_at).total_seconds(),
        )
        for e in events
    ]


async def play_on_the_stack(db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str) -> dict[str, Any]:
    """The scenario through the real API; the call's view once it ended."""
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        await load_building(pool, short_building())
    finally:
        await pool.close()
    async with serve_with_worker(db_dsn, dev_env, task_queue) as (settings, _, root):
        base = str(root.base_url)
        backend = Backend(base, settings.api_key)
        r = await root.put("/v1/users/alice/do-not-disturb", json={})
        assert r.status_code == 200, r.text
        tasks: list[asyncio.Task[None]] = []

        async def react(client: PartyClient, call_id: str, action: str, after: float, talk: float) -> None:
            await asyncio.sleep(after)
            r = await client.action(call_id, action)
            assert r.status_code == 200, r.text
            if action == "answer":
                await asyncio.sleep(talk)
                r = await client.action(call_id, "hang-up")
                assert r.status_code == 200, r.text

        async def on_push(client: PartyClient, msg: Received) -> None:
            if msg.type == "incoming_call" and msg.call_id:
                action, after, talk = REACTIONS[client.party.id]
                tasks.append(asyncio.create_task(react(client, msg.call_id, action, after, talk)))

        clients = []
        for uid in REACTIONS:
            party = Party(kind=PartyKind.USER, id=uid)
            client = PartyClient(base, party, await backend.token(party), on_message=on_push, retry_s=0.1)
            await client.start()
            clients.append(client)
        try:
            key = f"cmp-{uuid.uuid4().hex[:8]}"
            body = {"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101", "room_type": "voice"}
            r = await backend.place_call(body, key)
            assert r.status_code == 201, r.text
            call_id = r.json()["call_id"]
            started = datetime.now(UTC)
            unit = (await root.get("/v1/units/101")).json()
            await asyncio.sleep(max(0.0, EDIT_AT_S - (datetime.now(UTC) - started).total_seconds()))
            unit["policy"]["ring_timeout_s"] = 1.5
            put = {k: unit[k] for k in ("id", "site_id", "name", "residents", "policy")}
            r = await root.put("/v1/units/101", json=put)
            assert r.status_code == 200, r.text
            view = await poll(
                lambda: backend.call(call_id),
                lambda v: v["phase"] == "ended" and any(e["name"] == "callEnded" for e in v["events"]),
                20.0,
                f"call {call_id} did not end",
            )
            await asyncio.gather(*tasks)
            return view
        finally:
            for client in clients:
                await client.close()
            await backend.aclose()


async def test_the_simulator_matches_the_real_engine(
    db_dsn: str, dev_env: WorkflowEnvironment, ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    sim = await simulate(
        short_building(), scenario(await ts_env.get_current_time() + timedelta(seconds=1)), env=ts_env
    )
    simulated = [
        (e.name.value, e.listener.id if e.listener else "", (e.at - sim.started_at).total_seconds())
        for e in sim.events
    ]
    view = await play_on_the_stack(db_dsn, dev_env, task_queue)
    real = timeline(view["events"], datetime.fromisoformat(view["started_at"]))
    # the same events in the same order ...
    assert [(n, who) for n, who, _ in real] == [(n, who) for n, who, _ in simulated]
    # ... at the same times, within the ring timeout's resolution
    for (name, who, t_real), (_, _, t_sim) in zip(real, simulated, strict=True):
        assert abs(t_real - t_sim) <= TOLERANCE_S, (name, who, t_real, t_sim)
    # and the scenario did what it says: alice skipped (dnd), bob passed, carol timed out after
    # the edited 1.5 s, the concierge answered
    names = [n for n, _, _ in simulated]
    for expected in ("targetSkipped", "planChanged", "passVoip", "timeout", "answered", "hangUpVoip"):
        assert expected in names
    assert view["answered_by"] == {"kind": "user", "id": "concierge"}
    assert sim.result.answered_by is not None and sim.result.answered_by.id == "concierge"
