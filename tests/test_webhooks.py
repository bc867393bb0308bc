"""Signed webhooks and the event feed (issue 9 items 3 and 4; docs/webhooks.md), on real
PostgreSQL, with real HTTP receivers on 127.0.0.1 (``ringflow/webhook_receiver.py``) that
verify signatures with ``standardwebhooks`` and de-duplicate by ``webhook-id``, and the API
under uvicorn (no lifespan: the pool is the test's, no Temporal needed).

- domain events are written with the call records, once (idempotent), with a per-tenant seq;
- every event is delivered, none twice after de-duplication, signatures valid, per-call order;
- a hanging endpoint does not delay another's deliveries; 500s, timeouts and refused
  connections are retried until the receiver comes back; a restart of the dispatcher
  during retries loses nothing; an endpoint failing persistently is disabled with a reason;
- backoff schedule (fake clock); redeliver; the API's CRUD, deliveries, secrets, rotation;
- the feed: cursor paging, SSE resume with Last-Event-ID; tenant scoping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from ringflow import webhook_urls
from ringflow.contracts.activities import CallRecord, RecordInput
from ringflow.contracts.calls import Attempt, AttemptOutcome, Phase
from ringflow.contracts.common import Party, PartyKind, RoomType
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.policies import RingStrategy
from ringflow.contracts.webhooks import EventType, WebhookCreate
from ringflow.settings import Settings
from ringflow.webhook_dispatcher import Dispatcher, DispatcherConfig, RetryPolicy, running
from ringflow.webhook_receiver import Receiver
from store import calls, feed
from store import webhooks as wh_store

KEY = "test-webhooks-key"
T0 = datetime.now(UTC).replace(microsecond=0)
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
ALICE = Party(kind=PartyKind.USER, id="alice")
BOB = Party(kind=PartyKind.USER, id="bob")

FAST = DispatcherConfig(
    timeout_s=3,  # generous: the machine may be loaded; hanging tests use HANG
    max_in_flight=4,
    poll_s=0.05,
    retry=RetryPolicy(base_s=0.05, max_s=0.2, window_s=60),
    disable_after_s=3600,
    disable_min_failures=1000,
)
HANG = dataclasses.replace(FAST, timeout_s=1)


def call_records(call_id: str, answered: bool = True) -> list[RecordInput]:
    """The records a building call writes: start, ring Alice (and Bob), answer, action, end."""
    r1, r2 = f"{call_id}.1", f"{call_id}.2"
    at = T0

    def ev(ident: str, name: EventName, room: str | None = None, **kw: Any) -> CallEvent:
        return CallEvent(id=ident, call_id=call_id, room_id=room, name=name, at=at, **kw)

    def attempt(room: str, seq: int, who: Party, name: str, outcome: AttemptOutcome | None) -> Attempt:
        return Attempt(
            room_id=room,
            seq=seq,
            listener=who,
            listener_name=name,
            phase=Phase.ENDED if outcome else Phase.WAIT,
            started_at=at,
            outcome=outcome,
            keep_time_s=12 if outcome is AttemptOutcome.ANSWERED else None,
        )

    out = [
        RecordInput(
            call=CallRecord(
                call_id=call_id,
                caller=LOBBY,
                caller_name="Lobby door",
                unit_id="101",
                room_type=RoomType.VIDEO,
                strategy=RingStrategy.SEQUENTIAL,
                phase=Phase.INITIATE,
                started_at=at,
            ),
            events=[ev(f"{call_id}#1", EventName.CALL_STARTED, party=LOBBY)],
        ),
        RecordInput(
            attempts=[attempt(r1, 1, ALICE, "Alice", None)],
            events=[ev(f"{r1}#1", EventName.RINGING, r1, party=LOBBY, listener=ALICE)],
        ),
    ]
    if answered:
        out += [
            RecordInput(events=[ev(f"{r1}#2", EventName.ANSWERED, r1, party=ALICE, listener=ALICE)]),
            RecordInput(
                events=[
                    ev(
                        f"{call_id}#2",
                        EventName.CUSTOM_ACTION_RESULT,
                        party=LOBBY,
                        data={"action_id": "a1", "action": "open_door", "result": "done", "detail": "opened"},
                    )
                ]
            ),
            RecordInput(
                attempts=[attempt(r1, 1, ALICE, "Alice", AttemptOutcome.ANSWERED)],
                events=[ev(f"{r1}#3", EventName.HANG_UP_VOIP, r1, party=ALICE, keepTime=12)],
            ),
        ]
        end = ev(
            f"{call_id}#3", EventName.CALL_ENDED, party=ALICE, keepTime=12, data={"end_reason": "hangUpVoip"}
        )
    else:
        out += [
            RecordInput(
                attempts=[
                    attempt(r1, 1, ALICE, "Alice", AttemptOutcome.NO_ANSWER),
                    attempt(r2, 2, BOB, "Bob", AttemptOutcome.NO_ANSWER),
                ],
                events=[ev(f"{r2}#1", EventName.RINGING, r2, party=LOBBY, listener=BOB)],
            )
        ]
        end = ev(f"{call_id}#3", EventName.CALL_ENDED, keepTime=0, data={"end_reason": "timeout"})
    out.append(
        RecordInput(
            call=CallRecord(
                call_id=call_id,
                phase=Phase.ENDED,
                ended_at=at,
                end_reason=end.data["end_reason"],
                keep_time_s=end.keep_time_s,
                answered_by=ALICE if answered else None,
            ),
            events=[end],
        )
    )
    return out


ANSWERED_TYPES = ["call.created", "call.ringing", "call.answered", "call.action", "call.ended"]
MISSED_TYPES = ["call.created", "call.ringing", "call.ringing", "call.missed", "call.ended"]


async def place(pool: asyncpg.Pool, call_id: str, answered: bool = True) -> None:
    """Record a whole call, each state change in its own transaction (as the workflow does)."""
    for inp in call_records(call_id, answered):
        async with pool.acquire() as conn:
            await calls.record(conn, inp)


async def endpoint(
    pool: asyncpg.Pool, receiver: Receiver, tenant: str = "default", **kw: Any
) -> tuple[str, str]:
    view = await wh_store.create(pool, tenant, WebhookCreate(url=receiver.url, **kw))  # type: ignore[arg-type]
    assert view.secret is not None
    receiver.secret = view.secret
    return view.id, view.secret


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def api(db_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The API under uvicorn on 127.0.0.1 with the test's pool (no lifespan, no Temporal)."""
    app = create_app(Settings(api_key=KEY, webhook_secret_overlap_s=60))
    app.state.pool = db_pool
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10, trust_env=False
        ) as client:
            yield client
    finally:
        server.should_exit = True
        await task


# ---------------------------------------------------------------- domain events


async def test_events_are_written_with_the_records_once(db_pool: asyncpg.Pool) -> None:
    await place(db_pool, "c1")
    await place(db_pool, "c2", answered=False)
    await place(db_pool, "c1")  # every record retried: nothing new
    rows = await db_pool.fetch("SELECT id, seq, type, call_id, data::text AS data FROM events ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert [r["type"] for r in rows if r["call_id"] == "c1"] == ANSWERED_TYPES
    assert [r["type"] for r in rows if r["call_id"] == "c2"] == MISSED_TYPES
    by_type = {(r["call_id"], r["type"]): json.loads(r["data"]) for r in rows}
    created = by_type[("c1", "call.created")]
    assert (
        created["caller"] == "device:LOBBY-1"
        and created["unit_id"] == "101"
        and created["room_type"] == "video"
    )
    assert by_type[("c1", "call.answered")]["answered_by"] == "user:alice"
    assert by_type[("c1", "call.answered")]["answered_by_name"] == "Alice"
    action = by_type[("c1", "call.action")]
    assert (action["action"], action["result"], action["detail"]) == ("open_door", "done", "opened")
    ended = by_type[("c1", "call.ended")]
    assert (
        ended["end_reason"] == "hangUpVoip"
        and ended["keepTime"] == 12
        and ended["answered_by"] == "user:alice"
    )
    assert [a["outcome"] for a in ended["attempts"]] == ["answered"]
    missed = by_type[("c2", "call.missed")]
    assert missed["end_reason"] == "timeout" and missed["keepTime"] == 0
    assert [(a["listener"], a["outcome"]) for a in missed["attempts"]] == [
        ("user:alice", "no_answer"),
        ("user:bob", "no_answer"),
    ]
    assert rows[0]["id"] == "c1#1/call.created"


async def test_a_cancelled_call_is_not_missed(db_pool: asyncpg.Pool) -> None:
    records = call_records("c3", answered=False)
    end = records[-1]
    end.events[0].data["end_reason"] = "cancelVoip"
    for inp in records:
        async with db_pool.acquire() as conn:
            await calls.record(conn, inp)
    types = [r["type"] for r in await db_pool.fetch("SELECT type FROM events ORDER BY seq")]
    assert "call.missed" not in types and types[-1] == "call.ended"


async def test_concurrent_writers_get_distinct_increasing_seqs(db_pool: asyncpg.Pool) -> None:
    await asyncio.gather(*(place(db_pool, f"k{i}") for i in range(8)))
    seqs = [r["seq"] for r in await db_pool.fetch("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, 41))


# ---------------------------------------------------------------- delivery


def assert_in_order(receiver: Receiver) -> None:
    """Per call, the receiver got its events in seq order (each first arrival)."""
    seen: dict[str, list[int]] = {}
    for r in receiver.unique().values():
        assert r.body is not None
        seen.setdefault(r.body["call_id"], []).append(r.body["seq"])
    for call_id, seqs in seen.items():
        assert seqs == sorted(seqs), call_id


async def test_every_event_delivered_signed_in_order_once(db_pool: asyncpg.Pool, receiver: Receiver) -> None:
    other = await Receiver().start()
    try:
        await endpoint(db_pool, receiver)
        await endpoint(db_pool, other, event_types=[EventType.CALL_ANSWERED, EventType.CALL_ENDED])
        async with running(db_pool, FAST):
            await asyncio.gather(*(place(db_pool, f"c{i}", answered=i % 2 == 0) for i in range(6)))
            await receiver.wait_for(lambda r: len(r.unique()) == 30)
            await other.wait_for(lambda r: len(r.unique()) == 9)  # 3 answered + 6 ended
        assert all(r.verified for r in receiver.received + other.received)
        assert len(receiver.received) == 30  # nothing sent twice on a healthy endpoint
        ids = set(receiver.unique())
        stored = {r["id"] for r in await db_pool.fetch("SELECT id FROM events")}
        assert ids == stored
        assert {r.type for r in other.unique().values()} == {"call.answered", "call.ended"}
        assert_in_order(receiver)
        assert_in_order(other)
        assert await wh_store.backlog(db_pool) == 0
    finally:
        await other.stop()


async def test_a_hanging_endpoint_does_not_delay_another(db_pool: asyncpg.Pool, receiver: Receiver) -> None:
    hanging = await Receiver(mode="hang").start()
    try:
        await endpoint(db_pool, hanging)
        await endpoint(db_pool, receiver)
        config = DispatcherConfig(
            timeout_s=5, max_in_flight=2, poll_s=0.05, retry=RetryPolicy(base_s=10, max_s=10, window_s=60)
        )
        async with running(db_pool, config):
            start = asyncio.get_running_loop().time()
            await asyncio.gather(*(place(db_pool, f"h{i}") for i in range(4)))
            await receiver.wait_for(lambda r: len(r.unique()) == 20, timeout=4)
            elapsed = asyncio.get_running_loop().time() - start
        # 20 deliveries while the other endpoint holds its 2 slots for 5 s each
        assert elapsed < 4
        assert_in_order(receiver)
    finally:
        await hanging.stop()


async def test_failures_are_retried_until_the_endpoint_comes_back(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await endpoint(db_pool, receiver)
    receiver.mode = "fail"
    async with running(db_pool, HANG):
        await place(db_pool, "r1")
        await receiver.wait_for(lambda r: len(r.received) >= 3)  # 500, 500, 500 ...
        receiver.mode = "hang"  # ... timeouts ...
        await receiver.wait_for(lambda r: len(r._hanging) >= 1)
        await asyncio.sleep(HANG.timeout_s * 2)
        await receiver.refuse()  # ... refused connections ...
        await asyncio.sleep(0.5)
        await receiver.resume("ok")  # ... and back
        await receiver.wait_for(lambda r: len(r.unique()) == 5, timeout=20)
    assert_in_order(receiver)
    errors = {r["last_error"] for r in await db_pool.fetch("SELECT last_error FROM webhook_deliveries")}
    assert errors == {None}
    history = [r["error"] for r in await db_pool.fetch("SELECT error FROM webhook_attempts ORDER BY at")]
    assert "HTTP 500" in history
    assert any(e and e.startswith("timeout") for e in history)
    assert any(e and e.startswith("connection failed") for e in history)


async def test_restart_of_the_dispatcher_during_retries_loses_nothing(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    await endpoint(db_pool, receiver)
    receiver.mode = "fail"
    async with running(db_pool, FAST) as first:
        await asyncio.gather(place(db_pool, "s1"), place(db_pool, "s2", answered=False))
        await receiver.wait_for(lambda r: len(r.received) >= 4)
    assert first.attempts["failed"] >= 4
    receiver.mode = "hang"  # the next dispatcher is stopped mid-request
    async with running(db_pool, HANG):
        await receiver.wait_for(lambda r: len(r._hanging) >= 1)
    receiver.mode = "ok"
    async with running(db_pool, FAST):
        await receiver.wait_for(lambda r: len(r.unique()) == 10, timeout=20)
    assert_in_order(receiver)
    assert await wh_store.backlog(db_pool) == 0


async def test_an_endpoint_failing_persistently_is_disabled(
    db_pool: asyncpg.Pool, receiver: Receiver, api: httpx.AsyncClient
) -> None:
    ident, _ = await endpoint(db_pool, receiver)
    receiver.mode = "fail"
    config = DispatcherConfig(
        timeout_s=3,
        poll_s=0.05,
        retry=RetryPolicy(0.02, 0.05, 60),
        disable_after_s=0,
        disable_min_failures=3,
    )
    async with running(db_pool, config):
        await place(db_pool, "d1")
        for _ in range(100):
            view = (await api.get(f"/v1/webhooks/{ident}")).json()
            if not view["enabled"]:
                break
            await asyncio.sleep(0.05)
    assert view["enabled"] is False
    assert (
        "3 consecutive failed deliveries" in view["disabled_reason"] and "HTTP 500" in view["disabled_reason"]
    )
    assert len(receiver.received) == 3  # nothing more once disabled
    receiver.mode = "ok"
    r = await api.patch(f"/v1/webhooks/{ident}", json={"enabled": True})
    assert (
        r.status_code == 200 and r.json()["disabled_reason"] is None and r.json()["consecutive_failures"] == 0
    )
    async with running(db_pool, FAST):
        await receiver.wait_for(lambda r: len(r.unique()) == 5)
    assert_in_order(receiver)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_backoff_schedule() -> None:
    policy = RetryPolicy(base_s=5, max_s=3600, window_s=86400)
    assert [policy.delay_s(n, lambda: 1.0) for n in (1, 2, 3, 4, 10, 11, 30)] == [
        5,
        10,
        20,
        40,
        2560,
        3600,
        3600,
    ]
    assert [policy.delay_s(n, lambda: 0.0) for n in (1, 2, 3)] == [2.5, 5, 10]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # the whole schedule with the longest delays: every attempt within 24 h of the first
    now, attempt, times = start, 1, []
    while (at := policy.next_attempt(attempt, start, now, lambda: 1.0)) is not None:
        times.append(at)
        now, attempt = at, attempt + 1
    assert times[-1] <= start + timedelta(days=1) < times[-1] + timedelta(seconds=3600)
    assert len(times) == 32  # 5 s ... 2560 s (10), then hourly: 1 h of jitter-free retries each


async def test_backoff_with_a_fake_clock(db_pool: asyncpg.Pool, receiver: Receiver) -> None:
    await endpoint(db_pool, receiver)
    receiver.mode = "fail"
    async with db_pool.acquire() as conn:
        await calls.record(conn, call_records("b1")[0])  # call.created only
    clock = FakeClock(datetime.now(UTC) + timedelta(seconds=1))
    config = DispatcherConfig(timeout_s=1, retry=RetryPolicy(base_s=60, max_s=600, window_s=3600))
    dispatcher = Dispatcher(db_pool, config, clock=clock)
    expected = [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
    for n, ceiling in enumerate(expected, 1):
        assert await dispatcher.step() == 1
        await receiver.wait_for(lambda r, n=n: len(r.received) == n)
        await dispatcher.idle()
        due = await db_pool.fetchval("SELECT next_attempt_at FROM webhook_deliveries")
        wait = (due - clock.now).total_seconds()
        assert ceiling / 2 <= wait <= ceiling, (n, wait)
        clock.now += timedelta(seconds=wait - 1)
        assert await dispatcher.step() == 0  # not due yet
        clock.now += timedelta(seconds=1)
    # the next retry would fall after the 1 h window: the delivery fails for good
    clock.now += timedelta(seconds=3600)
    assert await dispatcher.step() == 1
    await dispatcher.idle()
    row = await db_pool.fetchrow("SELECT state, attempts FROM webhook_deliveries")
    assert (row["state"], row["attempts"]) == ("failed", 7)
    dispatcher.stop()
    await dispatcher._shutdown()


async def test_secret_rotation_signs_with_both(
    db_pool: asyncpg.Pool, receiver: Receiver, api: httpx.AsyncClient
) -> None:
    ident, old = await endpoint(db_pool, receiver)
    r = await api.patch(f"/v1/webhooks/{ident}", json={"rotate_secret": True})
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert (await api.get(f"/v1/webhooks/{ident}")).json()["secret"] is None
    async with running(db_pool, FAST):
        await place(db_pool, "z1")
        await receiver.wait_for(lambda r: len(r.unique()) == 5)  # verified with the old secret
    first = receiver.received[0]
    assert first.body is not None
    body = json.dumps(first.body, separators=(",", ":"))
    stored = await db_pool.fetchrow("SELECT * FROM webhook_endpoints")
    assert stored["secret"] == new and stored["previous_secret"] == old
    assert Webhook(new).sign("x", T0, body) != Webhook(old).sign("x", T0, body)


# ---------------------------------------------------------------- the API


async def delivered(api: httpx.AsyncClient, ident: str) -> list[dict[str, Any]]:
    """The endpoint's deliveries once none is pending (the receiver answers before the
    dispatcher records the attempt)."""
    for _ in range(100):
        items: list[dict[str, Any]] = (await api.get(f"/v1/webhooks/{ident}/deliveries")).json()["items"]
        if all(d["state"] != "pending" for d in items):
            break
        await asyncio.sleep(0.05)
    return items


async def test_webhook_api(db_pool: asyncpg.Pool, receiver: Receiver, api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/webhooks", json={"url": receiver.url, "event_types": ["call.ended"], "description": "crm"}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    receiver.secret = created["secret"]
    ident = created["id"]
    listed = (await api.get("/v1/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [ident] and listed[0]["secret"] is None
    for bad in ("ftp://127.0.0.1/x", "not a url", "http://", "http://10.0.0.1/x", "https://example.com/x"):
        r = await api.post("/v1/webhooks", json={"url": bad})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad
    r = await api.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["call.nope"]})
    assert r.status_code == 422
    assert (await api.get("/v1/webhooks/wh_nope")).status_code == 404
    assert (await api.get("/v1/webhooks", headers={"X-API-Key": "wrong-key-123"})).status_code == 401

    async with running(db_pool, FAST):
        await place(db_pool, "a1")
        await receiver.wait_for(lambda r: len(r.unique()) == 1)
        [delivery] = await delivered(api, ident)
        assert delivery["state"] == "delivered" and delivery["event_type"] == "call.ended"
        assert delivery["history"][0]["status_code"] == 204 and delivery["history"][0]["latency_ms"] >= 0
        r = await api.post(f"/v1/webhooks/{ident}/deliveries/{delivery['id']}/redeliver")
        assert r.status_code == 202 and r.json()["state"] == "pending"
        await receiver.wait_for(lambda r: len(r.received) == 2)
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id == delivery["event_id"]
    assert len(receiver.unique()) == 1  # de-duplicated by the receiver
    [again] = await delivered(api, ident)
    assert again["attempts"] >= 2 and again["state"] == "delivered", again
    r = await api.post(f"/v1/webhooks/{ident}/deliveries/dlv_nope/redeliver")
    assert r.status_code == 404

    r = await api.patch(f"/v1/webhooks/{ident}", json={"url": None})  # null: unchanged
    assert r.status_code == 200 and r.json()["url"] == receiver.url
    assert (await api.patch("/v1/webhooks/wh_nope", json={"url": None})).status_code == 404
    r = await api.patch(f"/v1/webhooks/{ident}", json={"enabled": False, "description": "off"})
    assert r.json()["enabled"] is False and r.json()["description"] == "off"
    assert (await api.delete(f"/v1/webhooks/{ident}")).status_code == 204
    assert (await api.delete(f"/v1/webhooks/{ident}")).status_code == 404


async def test_another_tenants_webhooks_are_not_found(
    db_pool: asyncpg.Pool, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await db_pool.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    ident, _ = await endpoint(db_pool, receiver, tenant="acme")
    assert (await api.get(f"/v1/webhooks/{ident}")).status_code == 404
    assert (await api.get(f"/v1/webhooks/{ident}/deliveries")).status_code == 404
    assert (await api.get("/v1/webhooks")).json()["items"] == []
    # acme's events are not in the default tenant's feed, and go to acme's endpoint only
    async with db_pool.acquire() as conn, conn.transaction():
        await feed.write(conn, call_records("t1")[0], tenant_id="acme")
    assert (await api.get("/v1/events")).json()["items"] == []
    assert (
        await db_pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", ident) == 1
    )


async def test_feed_pages_with_a_cursor(db_pool: asyncpg.Pool, api: httpx.AsyncClient) -> None:
    await place(db_pool, "f1")
    await place(db_pool, "f2", answered=False)
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        r = await api.get("/v1/events", params={"limit": 3} | ({"after": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not page["items"]:
            break
    assert [e["seq"] for e in seen] == list(range(1, 11))
    assert [e["type"] for e in seen if e["call_id"] == "f1"] == ANSWERED_TYPES
    await place(db_pool, "f3")
    later = (await api.get("/v1/events", params={"after": cursor})).json()
    assert [e["call_id"] for e in later["items"]] == ["f3"] * 5
    assert (await api.get("/v1/events", params={"after": "garbage"})).status_code == 422


async def sse(
    client: httpx.AsyncClient, n: int, headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The first ``n`` messages of the stream (``id``, ``event``, ``data``)."""
    out: list[dict[str, str]] = []
    live = {"Accept": "text/event-stream"} | (headers or {})
    async with client.stream("GET", "/v1/events/stream", headers=live) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        msg: dict[str, str] = {}
        async for line in r.aiter_lines():
            if not line:
                if "data" in msg:
                    out.append(msg)
                    if len(out) == n:
                        return out
                msg = {}
                continue
            key, _, value = line.partition(": ")
            msg[key] = value
    return out


async def test_sse_stream_resumes_with_last_event_id(db_pool: asyncpg.Pool, api: httpx.AsyncClient) -> None:
    await place(db_pool, "e1")
    first = await asyncio.wait_for(sse(api, 3), 10)
    assert [m["event"] for m in first] == ANSWERED_TYPES[:3]
    assert json.loads(first[0]["data"])["type"] == "call.created"
    # reconnect after the third: the rest, then a call that happens while we listen
    rest = asyncio.create_task(sse(api, 7, {"Last-Event-ID": first[-1]["id"]}))
    await asyncio.sleep(0.3)
    await place(db_pool, "e2")
    got = await asyncio.wait_for(rest, 10)
    assert [json.loads(m["data"])["seq"] for m in got] == list(range(4, 11))
    r = await api.get("/v1/events/stream", headers={"Last-Event-ID": "nope"})
    assert r.status_code == 422
    # a client that does not ask for text/event-stream gets what is stored, then the end
    r = await api.get("/v1/events/stream", headers={"Last-Event-ID": got[-2]["id"]})
    assert r.status_code == 200 and r.text.count("\nevent: ") == 1 and '"seq":10' in r.text


async def test_addresses_outside_the_allowed_networks_are_never_posted_to(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, secret) VALUES ('wh_x', 'default', $1, $2)",
        "http://192.0.2.1:9/x",
        wh_store.new_secret(),
    )
    async with running(db_pool, FAST) as dispatcher:
        await place(db_pool, "n1")
        for _ in range(100):
            if dispatcher.attempts["failed"]:
                break
            await asyncio.sleep(0.05)
    error = await db_pool.fetchval("SELECT error FROM webhook_attempts LIMIT 1")
    assert error == "address 192.0.2.1 is not in RINGFLOW_WEBHOOK_ALLOWED_NETWORKS"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/webhooks"])
async def test_feed_and_webhooks_need_a_key(api: httpx.AsyncClient, path: str) -> None:
    r = await api.get(path, headers={"X-API-Key": ""})
    assert r.status_code == 401


def test_allowed_networks() -> None:
    loopback = webhook_urls.networks(["127.0.0.0/8", "::1/128"])
    assert webhook_urls.registration_problem("http://127.0.0.1:9/x", loopback) is None
    assert webhook_urls.registration_problem("http://[::1]:9/x", loopback) is None
    assert webhook_urls.registration_problem("http://localhost:9/x", loopback) is None
    assert "not in" in (webhook_urls.registration_problem("http://8.8.8.8/x", loopback) or "")
    assert "only IP addresses" in (webhook_urls.registration_problem("https://example.com/", loopback) or "")
    public = webhook_urls.networks(["public"])
    assert webhook_urls.registration_problem("https://example.com/x", public) is None  # resolved on delivery
    assert webhook_urls.registration_problem("https://8.8.8.8/x", public) is None
    for private in ("10.1.2.3", "192.168.1.1", "172.17.0.2", "169.254.169.254", "127.0.0.1", "[fd00::1]"):
        assert webhook_urls.registration_problem(f"http://{private}/x", public) is not None, private
