"""Webhooks on the embedded stack (issue 9 item 3): a backend registers a receiver through the
API, calls happen (one missed, one answered), the receiver fails (500, then refused), the
worker (which runs the dispatcher) and the API are SIGKILLed and restarted in the middle of the
retries, the receiver comes back: every event arrives, signed, in order per call, once after
de-duplication by ``webhook-id``; the feed lists the same events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from ringflow.webhook_receiver import Receiver
from tests.integration_helpers import LOBBY, World, running_world

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(
        tmp_path_factory.mktemp("webhooks"),
        webhook_retry_base_s=0.2,
        webhook_retry_max_s=0.5,
        webhook_poll_s=0.1,
        webhook_timeout_s=3,
    ) as w:
        yield w


async def test_deliveries_survive_receiver_failures_and_restarts(world: World) -> None:
    receiver = await Receiver(mode="fail").start()
    try:
        r = await world.backend.http.post("/v1/webhooks", json={"url": receiver.url, "description": "crm"})
        assert r.status_code == 201, r.text
        receiver.secret = r.json()["secret"]
        hook = r.json()["id"]
        [alice, bob] = await world.residents(2, "wh")
        missed = await world.place(LOBBY, [alice], ring_timeout_s=1)
        answered = await world.place(LOBBY, [bob], ring_timeout_s=30)
        await world.wait_phase(answered, "wait", 10)
        token = {"Authorization": f"Bearer {await world.backend.token(bob)}"}
        async with httpx.AsyncClient(base_url=world.api_url, headers=token, timeout=10) as bob_http:
            assert (await bob_http.post(f"/v1/calls/{answered}/answer")).status_code == 200
            await world.wait_phase(answered, "talk", 10)
            assert (await bob_http.post(f"/v1/calls/{answered}/hang-up")).status_code == 200
        await world.wait_ended(missed, 20)
        await world.wait_ended(answered, 20)
        await receiver.wait_for(lambda r: len(r.received) >= 3)  # 500s, being retried

        await receiver.refuse()
        await world.stack.restart_worker(kill=True)  # the dispatcher dies mid-retries
        await world.stack.restart_api(kill=True)
        await receiver.resume("ok")
        await receiver.wait_for(lambda r: len(r.unique()) == 8, timeout=60)
    finally:
        await receiver.stop()

    assert all(x.verified for x in receiver.received)
    got = {
        call: [x.type for x in receiver.unique().values() if x.call_id == call] for call in (missed, answered)
    }
    assert got[missed] == ["call.created", "call.ringing", "call.missed", "call.ended"]
    assert got[answered] == ["call.created", "call.ringing", "call.answered", "call.ended"]
    ended = next(x for x in receiver.unique().values() if x.call_id == answered and x.type == "call.ended")
    assert ended.body is not None and ended.body["data"]["end_reason"] == "hangUpVoip"
    assert [a["listener"] for a in ended.body["data"]["attempts"]] == [f"user:{bob.id}"]

    page = (await world.backend.http.get(f"/v1/webhooks/{hook}/deliveries", params={"limit": 50})).json()
    assert {d["state"] for d in page["items"]} == {"delivered"}
    assert any(d["attempts"] > 1 and d["history"][0]["status_code"] == 500 for d in page["items"])
    feed = (await world.backend.http.get("/v1/events", params={"limit": 500})).json()["items"]
    assert {e["id"] for e in feed if e["call_id"] in (missed, answered)} == set(receiver.unique())
