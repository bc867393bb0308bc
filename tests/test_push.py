"""The WebSocket push channel against a real uvicorn server, real PostgreSQL and the dev server:
delivery, acks, redelivery after an API restart, bad tokens and frames, actions,
and the LISTEN connection surviving a PostgreSQL restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
import websockets
from temporalio.testing import WorkflowEnvironment

from api import tokens
from api.app import create_app
from ringflow.contracts.activities import RecordInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.push import PushMessage, PushType
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from ringflow.stack.postgres import EmbeddedPostgres
from store import calls

ALICE = Party(kind=PartyKind.USER, id="alice")
BOB = Party(kind=PartyKind.USER, id="bob")
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str) -> Settings:
    return Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
    )


@asynccontextmanager
async def serve(settings: Settings, port: int) -> AsyncIterator[Any]:
    """The API on 127.0.0.1:``port`` until the block ends (then shut down like a restart)."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "API did not start"
    await asyncio.wait_for(app.state.hub.listening.wait(), 10)
    try:
        yield app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def serve_with_worker(
    db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[tuple[Settings, Any, httpx.AsyncClient]]:
    """The API on a free 127.0.0.1 port (:func:`serve`) and a real worker on ``task_queue``
    (30 s rings) until the block ends: (settings, the app, a client with the bootstrap key)."""
    from ringflow.worker import run_worker

    port = free_port()
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        api_port=port,
        ring_timeout_s=30,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            serve(settings, port) as app,
            httpx.AsyncClient(base_url=base, headers={"X-API-Key": settings.api_key}, timeout=30) as root,
        ):
            yield settings, app, root
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


def url(settings: Settings, port: int, party: Party = ALICE) -> str:
    token, _ = tokens.issue(party, settings.token_secret, 3600)
    return f"ws://127.0.0.1:{port}/v1/push?token={token}"


def push(n: int, to: Party = ALICE) -> RecordInput:
    return RecordInput(
        pushes=[
            PushMessage(
                id=f"m{n}",
                recipient=to,
                type=PushType.INCOMING_CALL,
                call_id=f"c{n}",
                at=AT,
                payload={"n": n},
            )
        ]
    )


async def record(pool: asyncpg.Pool, n: int, to: Party = ALICE) -> None:
    async with pool.acquire() as conn:
        await calls.record(conn, push(n, to))


async def frames(ws: Any, quiet_s: float = 0.4) -> list[dict[str, Any]]:
    """Every frame received until ``quiet_s`` seconds pass without one."""
    out = []
    while True:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), quiet_s)))
        except TimeoutError:
            return out


async def test_delivery_ack_and_redelivery_after_api_restart(
    settings: Settings, db_pool: asyncpg.Pool
) -> None:
    port = free_port()
    await record(db_pool, 1)  # pending before anyone connects
    async with serve(settings, port), websockets.connect(url(settings, port)) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first == {
            "id": "m1",
            "type": "incoming_call",
            "call_id": "c1",
            "room_id": None,
            "at": AT.isoformat(),
            "payload": {"n": 1},
        }
        await ws.send(json.dumps({"ack": ["m1"]}))
        await record(db_pool, 2)  # live: NOTIFY wakes the session
        await record(db_pool, 99, to=BOB)  # someone else's message is not sent here
        assert [f["id"] for f in await frames(ws)] == ["m2"]
        await record(db_pool, 2)  # a retried write is neither stored nor sent twice
        assert await frames(ws) == []
    # the API is down: messages keep arriving in the outbox
    await record(db_pool, 3)
    await record(db_pool, 4)
    async with serve(settings, port), websockets.connect(url(settings, port)) as ws:
        got = await frames(ws)
        assert [f["id"] for f in got] == ["m2", "m3", "m4"]  # m1 was acked; each once
        await ws.send(json.dumps({"ack": ["m2", "m3", "m4", "m99"]}))  # m99 is bob's: ignored
        await asyncio.sleep(0.2)
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 1
    async with serve(settings, port), websockets.connect(url(settings, port)) as ws:
        assert await frames(ws) == []


async def test_two_sessions_of_one_party_both_receive(settings: Settings, db_pool: asyncpg.Pool) -> None:
    port = free_port()
    async with (
        serve(settings, port),
        websockets.connect(url(settings, port)) as phone,
        websockets.connect(url(settings, port)) as tablet,
    ):
        await asyncio.sleep(0.2)
        await record(db_pool, 5)
        assert [f["id"] for f in await frames(phone)] == ["m5"]
        assert [f["id"] for f in await frames(tablet)] == ["m5"]


@pytest.mark.parametrize(
    ("token", "reason"), [("garbage", "invalid token"), (None, "invalid token"), ("expired", "token expired")]
)
async def test_bad_token_closes_4401(settings: Settings, token: str | None, reason: str) -> None:
    port = free_port()
    if token == "expired":
        token, _ = tokens.issue(ALICE, settings.token_secret, 1, now=datetime(2020, 1, 1, tzinfo=UTC))
    target = f"ws://127.0.0.1:{port}/v1/push" + (f"?token={token}" if token else "")
    async with serve(settings, port), websockets.connect(target) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4401 and info.value.rcvd.reason == reason


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        ("{not json", 1003, "malformed JSON"),
        (json.dumps({"ack": ["m6"], "pad": "x" * 17000}), 1009, "frame larger than 16384 bytes"),
        (json.dumps({"ack": ["m6"], "action": "answer", "call_id": "c6"}), 1003, "invalid frame"),
        (json.dumps({"action": "open_door", "call_id": "c6"}), 1003, "invalid frame: action"),
        (json.dumps([1, 2]), 1003, "invalid frame"),
    ],
)
async def test_bad_frames_close_and_change_nothing(
    settings: Settings, db_pool: asyncpg.Pool, frame: str, code: int, reason: str
) -> None:
    port = free_port()
    await record(db_pool, 6)
    async with serve(settings, port), websockets.connect(url(settings, port)) as ws:
        assert [f["id"] for f in await frames(ws)] == ["m6"]
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == code and info.value.rcvd.reason.startswith(reason)
    assert await db_pool.fetchval("SELECT acked_at FROM outbox WHERE id = 'm6'") is None


async def test_action_on_unknown_call_replies_with_the_rest_problem(settings: Settings) -> None:
    port = free_port()
    async with serve(settings, port), websockets.connect(url(settings, port)) as ws:
        await ws.send(json.dumps({"action": "answer", "call_id": "no-such-call"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["action"] == "answer" and reply["call_id"] == "no-such-call"
        assert reply["error"]["status"] == 404 and reply["error"]["errCode"] == 1008
        assert "id" not in reply  # not a message: nothing to ack


async def test_listen_survives_postgres_restart(
    settings: Settings, db_pool: asyncpg.Pool, postgres: EmbeddedPostgres
) -> None:
    port = free_port()
    async with serve(settings, port) as app, websockets.connect(url(settings, port)) as ws:
        await record(db_pool, 7)
        assert [f["id"] for f in await frames(ws)] == ["m7"]
        await ws.send(json.dumps({"ack": ["m7"]}))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        await asyncio.wait_for(app.state.hub.listening.wait(), 20)
        await record(db_pool, 8)
        assert [f["id"] for f in await frames(ws, quiet_s=2.0)] == ["m8"]
