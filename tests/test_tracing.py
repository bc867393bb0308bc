"""OpenTelemetry traces (issue 12 item 3): one call through the API (real uvicorn server, real
worker with the committed workflows and activities, dev server, PostgreSQL) to the push
delivered on the WebSocket is ONE trace, with the spans in an in-memory exporter; and with no
OTLP endpoint, nothing is traced at all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
import uvicorn
import websockets
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from api import tokens
from api.app import create_app
from ringflow import tracing
from ringflow.contracts.activities import RecordInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.push import PushMessage, PushType
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from store import calls

ALICE = Party(kind=PartyKind.USER, id="alice")


@pytest_asyncio.fixture
async def settings(
    db_dsn: str, db_pool: asyncpg.Pool, dev_env: WorkflowEnvironment, task_queue: str
) -> Settings:
    future = datetime.now(UTC) + timedelta(days=1)
    await db_pool.execute(
        f"""
        INSERT INTO devices (sn, name, voip_token_expires_at) VALUES ('LOBBY-1', 'Lobby door', '{future}');
        INSERT INTO users (id, name) VALUES ('alice', 'Alice');
        INSERT INTO authorizations (user_id, target_kind, target_id) VALUES ('alice', 'device', 'LOBBY-1');
        """
    )
    return Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        worker_metrics_address="",
        api_port=free_port(),
    )


@pytest_asyncio.fixture
async def traced(settings: Settings) -> AsyncIterator[InMemorySpanExporter]:
    """The API on a real port and a worker, each with its own tracer provider (service
    ringflow-api / ringflow-worker) exporting to one in-memory exporter."""
    from ringflow.worker import run_worker

    spans = InMemorySpanExporter()
    api_provider = tracing.tracer_provider(settings, tracing.API, exporter=spans)
    worker_provider = tracing.tracer_provider(settings, tracing.WORKER, exporter=spans)
    assert api_provider is not None and worker_provider is not None
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop, tracer_provider=worker_provider))
    app = create_app(settings, tracer_provider=api_provider)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "API did not start"
        await asyncio.wait_for(app.state.hub.listening.wait(), 10)
        yield spans
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        stop.set()
        await asyncio.wait_for(worker, 30)
        api_provider.shutdown()
        worker_provider.shutdown()


async def test_one_call_is_one_trace_from_post_to_push(
    settings: Settings, traced: InMemorySpanExporter
) -> None:
    spans = traced
    base = f"http://127.0.0.1:{settings.api_port}"
    token, _ = tokens.issue(ALICE, settings.token_secret, 3600)
    call_id = f"tr-{uuid.uuid4().hex[:10]}"
    async with (
        websockets.connect(f"ws://127.0.0.1:{settings.api_port}/v1/push?token={token}") as ws,
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": settings.api_key}) as http,
    ):
        r = await http.post(
            "/v1/calls",
            json={
                "caller": {"kind": "device", "id": "LOBBY-1"},
                "callees": [ALICE.model_dump(mode="json")],
                "room_type": "voice",
                "policy": {"strategy": "sequential", "ring_timeout_s": 30},
            },
            headers={"Idempotency-Key": call_id},
        )
        assert r.status_code == 201, r.text
        frame: dict[str, Any] = {}
        while frame.get("type") != "incoming_call":
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert frame["call_id"] == call_id
        await ws.send(json.dumps({"ack": [frame["id"]]}))
        # the caller gives up: the call ends (more activities, more pushes, the same trace)
        h = await http.post(f"/v1/calls/{call_id}/force-hang-up", json={"reason": "test"})
        assert h.status_code == 200, h.text
        while frame.get("type") != "call_cancelled":
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))

    def of_call() -> list[Any]:
        return [
            s
            for s in spans.get_finished_spans()
            if call_id in (s.attributes.get("temporalWorkflowID"), s.attributes.get("ringflow.call_id"))  # type: ignore[union-attr]
            or (s.name == "POST /v1/calls")
        ]

    started = [s for s in of_call() if s.name == "StartWorkflow:BuildingCallWorkflow"]
    assert len(started) == 1
    trace_id = started[0].context.trace_id
    mine = [s for s in of_call() if s.context.trace_id == trace_id]
    names = {s.name for s in mine}
    for expected in (
        "POST /v1/calls",
        "StartWorkflow:BuildingCallWorkflow",
        "RunWorkflow:BuildingCallWorkflow",
        "StartActivity:start_call",
        "RunActivity:start_call",
        "StartActivity:ring",
        "RunActivity:ring",
        "push incoming_call",
    ):
        assert expected in names, (expected, sorted(names))
    services = {s.resource.attributes["service.name"] for s in mine}
    assert services == {"ringflow-api", "ringflow-worker"}
    # everything the workflow and its activities did is in that one trace
    of_workflow = [s for s in of_call() if s.attributes.get("temporalWorkflowID") == call_id]  # type: ignore[union-attr]
    runs = [s for s in of_workflow if s.name.startswith(("RunWorkflow", "StartActivity", "RunActivity"))]
    assert len(runs) >= 6 and {s.context.trace_id for s in runs} == {trace_id}
    pushes = [s for s in of_call() if s.name.startswith("push ")]
    assert {s.name for s in pushes} >= {"push incoming_call", "push call_cancelled"}
    assert {s.context.trace_id for s in pushes} == {trace_id}
    # the delivery is a child of the activity that wrote the push
    [push] = [s for s in mine if s.name == "push incoming_call"]
    [ring] = [s for s in mine if s.name == "RunActivity:ring"]
    assert push.parent is not None and push.parent.span_id == ring.context.span_id
    assert push.resource.attributes["service.name"] == "ringflow-api"
    assert push.attributes is not None and push.attributes["ringflow.call_id"] == call_id
    # the POST is the root; StartWorkflow its child
    [post] = [s for s in mine if s.name == "POST /v1/calls"]
    assert post.parent is None and started[0].parent is not None
    assert started[0].parent.span_id == post.context.span_id


async def test_no_endpoint_no_tracing(settings: Settings, db_pool: asyncpg.Pool) -> None:
    assert settings.otlp_endpoint is None
    assert tracing.tracer_provider(settings, tracing.API) is None
    app = create_app(settings)
    async with LifespanManager(app):
        assert app.state.tracer_provider is None
        assert app.state.hub.tracer is None
        assert app.state.temporal.config()["interceptors"] == []
    # no global provider was ever installed (this process's other tests pass theirs explicitly)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    # a push written outside any span carries no trace context
    assert tracing.current_traceparent() is None
    push = PushMessage(
        id="nt-1",
        recipient=ALICE,
        type=PushType.INCOMING_CALL,
        call_id="nt",
        at=datetime.now(UTC),
        payload={},
    )
    async with db_pool.acquire() as conn:
        await calls.record(conn, RecordInput(pushes=[push]))
    assert await db_pool.fetchval("SELECT traceparent FROM outbox WHERE id = 'nt-1'") is None


def test_traces_url() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    on = Settings(otlp_endpoint="http://127.0.0.1:4318")
    provider = tracing.tracer_provider(on, tracing.WORKER)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "ringflow-worker"
    provider.shutdown()  # nothing was recorded: nothing is sent
