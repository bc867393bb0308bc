"""Calls REST API against the dev server and real PostgreSQL: problems (401/403/404/409/413/422)
with nothing started, the Idempotency-Key contract (one workflow), the call view, history
and the mapping of the workflow's update rejections.

Most tests use a small stand-in registered as ``BuildingCallWorkflow``: they are about the
API's side of the contract (names, inputs, error types), which the stand-in drives
deterministically. ``test_real_workflows_end_to_end`` runs the committed workflows and
activities (``ringflow.worker``) through the same API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api import tokens
from api.app import create_app
from ringflow.contracts.activities import CallRecord, RecordInput
from ringflow.contracts.calls import (
    ActionResult,
    AnswerInput,
    EscalationInput,
    ForceHangUpInput,
    HangUpInput,
    Phase,
    RejectInput,
)
from ringflow.contracts.common import Party, PartyKind, RoomType
from ringflow.contracts.events import EventName
from ringflow.contracts.messages import Rejection, Update, WorkflowType, rejection
from ringflow.contracts.policies import RingStrategy
from ringflow.settings import Settings
from store import calls
from tests.integration_helpers import visible_workflows

LOBBY = {"kind": "device", "id": "LOBBY-1"}
ALICE = Party(kind=PartyKind.USER, id="alice")
BOB = Party(kind=PartyKind.USER, id="bob")
MALLORY = Party(kind=PartyKind.USER, id="mallory")


@workflow.defn(name=WorkflowType.BUILDING_CALL)
class StandInEscalation:
    """Rings alice and bob at once; answer/reject/hang_up/force_hang_up like the real one."""

    def __init__(self) -> None:
        self.call_id = ""
        self.answered_by: Party | None = None
        self.ended = False

    @workflow.run
    async def run(self, inp: EscalationInput) -> None:
        self.call_id = inp.call_id
        await workflow.wait_condition(lambda: self.ended and workflow.all_handlers_finished())

    def _check(self, party: Party) -> None:
        if party not in (ALICE, BOB, Party(kind=PartyKind.DEVICE, id="LOBBY-1")):
            raise rejection(Rejection.NOT_A_PARTY, f"{party.key()} is not in this call")
        if self.ended:
            raise rejection(Rejection.CALL_NOT_ACTIVE, "the call has ended")

    @workflow.update(name=Update.ANSWER)
    async def answer(self, inp: AnswerInput) -> ActionResult:
        self._check(inp.party)
        if self.answered_by is not None and self.answered_by != inp.party:
            raise rejection(Rejection.ANSWERED_BY_ANOTHER, f"answered by {self.answered_by.key()}")
        self.answered_by = inp.party
        return ActionResult(call_id=self.call_id, phase=Phase.TALK, event=EventName.ANSWERED)

    @workflow.update(name=Update.REJECT)
    async def reject(self, inp: RejectInput) -> ActionResult:
        self._check(inp.party)
        if self.answered_by is not None:
            raise rejection(Rejection.CALL_NOT_ACTIVE, "not ringing you")
        return ActionResult(call_id=self.call_id, phase=Phase.WAIT, event=EventName.REJECT_VOIP)

    @workflow.update(name=Update.HANG_UP)
    async def hang_up(self, inp: HangUpInput) -> ActionResult:
        self._check(inp.party)
        self.ended = True
        return ActionResult(call_id=self.call_id, phase=Phase.ENDED, event=EventName.HANG_UP_VOIP)

    @workflow.update(name=Update.FORCE_HANG_UP)
    async def force_hang_up(self, inp: ForceHangUpInput) -> ActionResult:
        self.ended = True
        return ActionResult(call_id=self.call_id, phase=Phase.ENDED, event=EventName.CANCEL_VOIP)


@pytest_asyncio.fixture
async def api(
    db_dsn: str, db_pool: asyncpg.Pool, dev_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    future = datetime.now(UTC) + timedelta(days=1)
    await db_pool.execute(
        """
        INSERT INTO devices (sn, name, voip_token_expires_at) VALUES
            ('LOBBY-1', 'Lobby door', $1), ('OLD-GATE', 'Old gate', $2), ('NO-TOKEN', 'No token', NULL);
        UPDATE devices SET actions = '{open_door}' WHERE sn = 'LOBBY-1';
        INSERT INTO users (id, name) VALUES ('alice', 'Alice'), ('bob', 'Bob'), ('mallory', 'Mallory');
        INSERT INTO units (id, name, policy) VALUES ('101', 'Flat 101', '{"strategy": "simultaneous"}');
        INSERT INTO unit_residents (unit_id, user_id, position) VALUES ('101', 'alice', 0), ('101', 'bob', 1);
        """.replace("$1", f"'{future.isoformat()}'").replace("$2", "'2020-01-01T00:00:00+00:00'")
    )
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
    )
    app = create_app(settings)
    async with (
        Worker(
            dev_env.client,
            task_queue=task_queue,
            workflows=[StandInEscalation],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        LifespanManager(app),
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ringflow", headers={"X-API-Key": settings.api_key}
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def bearer(client: httpx.AsyncClient, party: Party) -> dict[str, str]:
    token, _ = tokens.issue(party, client.app.state.settings.token_secret, 3600)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}", "X-API-Key": ""}


def key() -> str:
    return f"call-{uuid.uuid4().hex[:12]}"


async def workflow_count(client: Client, call_id: str) -> int:
    """Executions of ``call_id`` (eventually consistent visibility: waits for the first)."""
    return await visible_workflows(client, call_id)


async def started(client: Client, call_id: str) -> bool:
    try:
        await client.get_workflow_handle(call_id).describe()
        return True
    except Exception:
        return False


def assert_problem(r: httpx.Response, status: int, slug: str, err_code: int | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["type"] == f"/problems/{slug}" and doc["status"] == status
    assert doc.get("errCode") == err_code
    return dict(doc)


async def test_place_call_idempotent(api: httpx.AsyncClient, dev_env: WorkflowEnvironment) -> None:
    call_id = key()
    body = {"caller": LOBBY, "unit_id": "101"}
    first = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": call_id})
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/calls/{call_id}"
    assert first.json()["call_id"] == call_id and first.json()["phase"] == "initiate"
    assert first.json()["links"]["temporal_ui"].endswith(f"/namespaces/default/workflows/{call_id}")
    # same key, same content (spelled differently: explicit default) -> the same call
    again = await api.post(
        "/v1/calls", json={**body, "room_type": "video"}, headers={"Idempotency-Key": call_id}
    )
    assert again.status_code == 200 and again.json()["call_id"] == call_id
    assert await workflow_count(dev_env.client, call_id) == 1
    # same key, other content -> 409
    other = await api.post(
        "/v1/calls", json={**body, "room_type": "voice"}, headers={"Idempotency-Key": call_id}
    )
    assert_problem(other, 409, "idempotency-conflict", 1009)

    handle = dev_env.client.get_workflow_handle(call_id)
    desc = await handle.describe()
    history = await handle.fetch_history()
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [inp] = await dev_env.client.data_converter.decode(payloads, [EscalationInput])
    assert inp.call_id == call_id and inp.unit_id == "101" and inp.time_limit_s == 3600.0
    assert inp.default_ring_timeout_s == 60.0 and inp.join_timeout_s == 30.0
    assert await desc.static_summary() == "LOBBY-1 -> unit 101"
    assert (await desc.memo_value("call"))["strategy"] == "simultaneous"


async def test_place_call_problems_start_nothing(
    api: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    cases: list[tuple[dict[str, Any], dict[str, str], int, str, int | None]] = [
        ({"caller": LOBBY, "unit_id": "101"}, {"X-API-Key": "wrong-key-123"}, 401, "unauthenticated", 1011),
        ({"caller": LOBBY, "unit_id": "999"}, {}, 404, "not-found", 1008),
        ({"caller": {"kind": "device", "id": "NOPE"}, "unit_id": "101"}, {}, 404, "not-found", 1008),
        ({"caller": LOBBY, "callees": [{"kind": "user", "id": "zed"}]}, {}, 404, "not-found", 1008),
        (
            {"caller": {"kind": "device", "id": "OLD-GATE"}, "unit_id": "101"},
            {},
            403,
            "voip-token-invalid",
            13,
        ),
        (
            {"caller": {"kind": "device", "id": "NO-TOKEN"}, "unit_id": "101"},
            {},
            403,
            "voip-token-invalid",
            13,
        ),
        ({"caller": LOBBY, "unit_id": "101", "callees": [ALICE.model_dump()]}, {}, 422, "validation", 1010),
        ({"caller": LOBBY, "unit_id": "101", "colour": "red"}, {}, 422, "validation", 1010),
        ({"caller": LOBBY, "unit_id": "101", "pad": "x" * 70000}, {}, 413, "payload-too-large", 1013),
    ]
    for body, headers, status, slug, code in cases:
        call_id = key()
        r = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": call_id, **headers})
        assert_problem(r, status, slug, code)
        assert not await started(dev_env.client, call_id), body
    for bad_key in [None, "", "has space", "x" * 129]:
        headers = {} if bad_key is None else {"Idempotency-Key": bad_key}
        r = await api.post("/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers=headers)
        assert_problem(r, 422, "validation", 1010)


async def test_device_places_its_own_call_only(api: httpx.AsyncClient) -> None:
    lobby = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
    r = await api.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "OLD-GATE"}, "unit_id": "101"},
        headers={"Idempotency-Key": key(), **bearer(api, lobby)},
    )
    assert_problem(r, 403, "not-a-party", 1007)
    r = await api.post(
        "/v1/calls",
        json={"caller": LOBBY, "unit_id": "101"},
        headers={"Idempotency-Key": key(), **bearer(api, lobby)},
    )
    assert r.status_code == 201, r.text


async def test_call_view_from_workflow_then_db(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    call_id = key()
    r = await api.post(
        "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
    )
    assert r.status_code == 201
    view = (await api.get(f"/v1/calls/{call_id}")).json()
    assert view["phase"] == "initiate" and view["caller"] == LOBBY and view["strategy"] == "simultaneous"
    assert view["temporal_ui_url"].endswith(f"/workflows/{call_id}")

    async with db_pool.acquire() as conn:
        await calls.record(
            conn,
            RecordInput(
                call=CallRecord(
                    call_id=call_id,
                    caller=Party(kind=PartyKind.DEVICE, id="LOBBY-1"),
                    unit_id="101",
                    room_type=RoomType.VIDEO,
                    strategy=RingStrategy.SIMULTANEOUS,
                    phase=Phase.WAIT,
                    started_at=datetime.now(UTC),
                )
            ),
        )
    view = (await api.get(f"/v1/calls/{call_id}")).json()
    assert view["phase"] == "wait" and view["temporal_ui_url"].endswith(f"/workflows/{call_id}")
    # a party that is not in the call may not read it; the caller may
    assert_problem(
        await api.get(f"/v1/calls/{call_id}", headers=bearer(api, MALLORY)), 403, "not-a-party", 1007
    )
    lobby = bearer(api, Party(kind=PartyKind.DEVICE, id="LOBBY-1"))
    assert (await api.get(f"/v1/calls/{call_id}", headers=lobby)).status_code == 200
    assert_problem(await api.get("/v1/calls/unknown-call"), 404, "not-found", 1008)

    listed = (await api.get("/v1/calls", params={"unit_id": "101", "phase": "wait"})).json()
    assert [c["call_id"] for c in listed["items"]] == [call_id] and listed["next_cursor"] is None
    assert (await api.get("/v1/calls", params={"device": "OLD-GATE"})).json()["items"] == []
    assert_problem(await api.get("/v1/calls", params={"cursor": "bogus"}), 422, "validation", 1010)
    assert_problem(
        await api.get("/v1/calls", params={"since": "2026-01-01T00:00:00"}), 422, "validation", 1010
    )
    assert_problem(await api.get("/v1/calls", params={"limit": 0}), 422, "validation", 1010)
    assert_problem(
        await api.get("/v1/calls", headers={"X-API-Key": "wrong-key-123"}), 401, "unauthenticated", 1011
    )


async def test_actions_map_workflow_rejections(api: httpx.AsyncClient) -> None:
    call_id = key()
    r = await api.post(
        "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
    )
    assert r.status_code == 201
    answered = await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, ALICE))
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"call_id": call_id, "room_id": None, "phase": "talk", "event": "answered"}
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, BOB)),
        409,
        "answered-by-another",
        1005,
    )
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/reject", headers=bearer(api, BOB)), 409, "call-not-active", 1006
    )
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, MALLORY)), 403, "not-a-party", 1007
    )
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/answer", headers={"X-API-Key": ""}), 401, "unauthenticated", 1011
    )
    hung = await api.post(f"/v1/calls/{call_id}/hang-up", headers=bearer(api, ALICE))
    assert hung.status_code == 200 and hung.json()["phase"] == "ended"
    # the workflow has completed: any action is now 409 call-not-active
    await api.app.state.temporal.get_workflow_handle(call_id).result()  # type: ignore[attr-defined]
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/cancel", headers=bearer(api, ALICE)),
        409,
        "call-not-active",
        1006,
    )
    assert_problem(
        await api.post("/v1/calls/no-such-call/answer", headers=bearer(api, ALICE)), 404, "not-found", 1008
    )
    assert_problem(
        await api.post("/v1/calls/bad call/answer", headers=bearer(api, ALICE)), 422, "validation", 1010
    )


async def test_force_hang_up_is_backend_only(api: httpx.AsyncClient) -> None:
    call_id = key()
    r = await api.post(
        "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
    )
    assert r.status_code == 201
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/force-hang-up", json={}, headers=bearer(api, ALICE)),
        401,
        "unauthenticated",
        1011,
    )
    assert_problem(
        await api.post(f"/v1/calls/{call_id}/force-hang-up", json={"reason": "x" * 300}),
        422,
        "validation",
        1010,
    )
    r = await api.post(f"/v1/calls/{call_id}/force-hang-up", json={"reason": "fire alarm"})
    assert r.status_code == 200 and r.json()["event"] == "cancelVoip"
    # the idempotent retry of the POST still answers with the (now ended) call
    again = await api.post(
        "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
    )
    assert again.status_code == 200 and again.json()["call_id"] == call_id


@pytest.mark.parametrize("action", ["answer", "reject", "hang-up", "cancel"])
async def test_actions_need_a_party_token(api: httpx.AsyncClient, action: str) -> None:
    r = await api.post(
        f"/v1/calls/some-call/{action}", headers={"Authorization": "Bearer nope", "X-API-Key": ""}
    )
    assert_problem(r, 401, "unauthenticated", 1011)


async def test_real_workflows_end_to_end(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    """The committed BuildingCallWorkflow with the real activities (ringflow.worker)."""
    import asyncio

    from ringflow.worker import run_worker

    await db_pool.execute(
        "INSERT INTO authorizations (user_id, target_kind, target_id) VALUES"
        " ('alice', 'device', 'LOBBY-1'), ('bob', 'device', 'LOBBY-1')"
    )
    settings = api.app.state.settings.model_copy(update={"task_queue": f"real-{uuid.uuid4()}"})  # type: ignore[attr-defined]
    api.app.state.settings = settings  # type: ignore[attr-defined]
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        call_id = key()
        r = await api.post(
            "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
        )
        assert r.status_code == 201, r.text
        for _ in range(200):
            view = (await api.get(f"/v1/calls/{call_id}")).json()
            if view["phase"] == "wait" and len(view["attempts"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert view["phase"] == "wait", view
        answered = await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, ALICE))
        assert answered.status_code == 200, answered.text
        assert_problem(
            await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, BOB)),
            409,
            "answered-by-another",
            1005,
        )
        assert (await api.post(f"/v1/calls/{call_id}/hang-up", headers=bearer(api, ALICE))).status_code == 200
        for _ in range(200):
            view = (await api.get(f"/v1/calls/{call_id}")).json()
            if view["phase"] == "ended":
                break
            await asyncio.sleep(0.05)
        assert view["phase"] == "ended" and view["answered_by"] == ALICE.model_dump(mode="json")
        names = [e["name"] for e in view["events"]]
        assert "endVoip" in names and "finishVoip" in names
    finally:
        stop.set()
        await asyncio.wait_for(worker, 20)


async def test_open_door_and_my_calls_real_workflows(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    """docs/media.md through REST with the committed workflows: alice in talk opens the door,
    the lobby acknowledges by the action id it was pushed, the history holds customAction and
    customActionResult; every bad request gets its problem; /v1/me/calls lists the call for
    its parties only."""
    import asyncio

    from ringflow.worker import run_worker

    await db_pool.execute(
        "INSERT INTO authorizations (user_id, target_kind, target_id) VALUES"
        " ('alice', 'device', 'LOBBY-1'), ('bob', 'device', 'LOBBY-1')"
    )
    settings = api.app.state.settings.model_copy(update={"task_queue": f"real-{uuid.uuid4()}"})  # type: ignore[attr-defined]
    api.app.state.settings = settings  # type: ignore[attr-defined]
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    lobby = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
    try:
        call_id = key()
        r = await api.post(
            "/v1/calls", json={"caller": LOBBY, "unit_id": "101"}, headers={"Idempotency-Key": call_id}
        )
        assert r.status_code == 201, r.text
        actions = f"/v1/calls/{call_id}/actions"
        for _ in range(200):
            answered = await api.post(f"/v1/calls/{call_id}/answer", headers=bearer(api, ALICE))
            if answered.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert answered.status_code == 200, answered.text
        assert_problem(
            await api.post(actions, json={"action": "open_door"}, headers=bearer(api, MALLORY)),
            403,
            "not-a-party",
            1007,
        )
        assert_problem(
            await api.post(actions, json={"action": "open_door"}, headers=bearer(api, BOB)),
            409,
            "call-not-active",
            1006,
        )
        assert_problem(
            await api.post(actions, json={"action": "launch_rocket"}, headers=bearer(api, ALICE)),
            422,
            "unknown-action",
            1014,
        )
        assert_problem(
            await api.post(actions, json={"action": "Open Door!"}, headers=bearer(api, ALICE)),
            422,
            "validation",
            1010,
        )
        asking = asyncio.create_task(
            api.post(actions, json={"action": "open_door"}, headers=bearer(api, ALICE))
        )
        action_id = None
        for _ in range(200):
            view = (await api.get(f"/v1/calls/{call_id}")).json()
            asked = [e for e in view["events"] if e["name"] == "customAction"]
            if asked:
                action_id = asked[0]["data"]["action_id"]
                break
            await asyncio.sleep(0.05)
        assert action_id is not None
        ack = f"{actions}/{action_id}/ack"
        assert_problem(
            await api.post(ack, json={"ok": True}, headers=bearer(api, ALICE)), 403, "not-a-party", 1007
        )
        assert_problem(
            await api.post(f"{actions}/nope/ack", json={"ok": True}, headers=bearer(api, lobby)),
            404,
            "not-found",
            1008,
        )
        acked = await api.post(ack, json={"ok": True, "detail": "door opened"}, headers=bearer(api, lobby))
        assert acked.status_code == 200, acked.text
        done = await asking
        assert done.status_code == 200, done.text
        assert (done.json()["result"], done.json()["detail"], done.json()["action_id"]) == (
            "done",
            "door opened",
            action_id,
        )
        assert_problem(
            await api.post(ack, json={"ok": True}, headers=bearer(api, lobby)), 409, "action-settled", 1015
        )
        assert (await api.post(f"/v1/calls/{call_id}/hang-up", headers=bearer(api, ALICE))).status_code == 200
        for _ in range(200):
            view = (await api.get(f"/v1/calls/{call_id}")).json()
            if view["phase"] == "ended":
                break
            await asyncio.sleep(0.05)
        names = [e["name"] for e in view["events"]]
        assert names.index("customAction") < names.index("customActionResult") < names.index("callEnded")
        outbox = await db_pool.fetch(
            "SELECT recipient, type FROM outbox"
            " WHERE call_id = $1 AND type LIKE 'custom_action%' ORDER BY seq",
            call_id,
        )
        assert [(r["recipient"], r["type"]) for r in outbox] == [
            ("device:LOBBY-1", "custom_action"),
            ("user:alice", "custom_action_result"),
        ]
        mine = await api.get("/v1/me/calls", headers=bearer(api, ALICE))
        assert mine.status_code == 200 and call_id in [c["call_id"] for c in mine.json()["items"]]
        theirs = await api.get("/v1/me/calls", headers=bearer(api, MALLORY))
        assert theirs.status_code == 200 and call_id not in [c["call_id"] for c in theirs.json()["items"]]
        assert_problem(await api.get("/v1/me/calls", headers={"X-API-Key": ""}), 401, "unauthenticated", 1011)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 20)
