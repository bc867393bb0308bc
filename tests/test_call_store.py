"""Call store on real PostgreSQL: ``record`` idempotency, line claims under concurrency,
billing taken off the device quota once, history queries, the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from activities.calls import CallActivities
from ringflow.contracts.activities import Billing, CallRecord, LineInput, RecordInput
from ringflow.contracts.calls import Attempt, AttemptOutcome, Phase
from ringflow.contracts.common import Party, PartyKind, RoomType
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.policies import RingStrategy
from ringflow.contracts.push import PushMessage, PushType
from store import calls, outbox

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
ALICE = Party(kind=PartyKind.USER, id="alice")
BOB = Party(kind=PartyKind.USER, id="bob")


def started(call_id: str, at: datetime = T0, unit: str = "101") -> RecordInput:
    return RecordInput(
        call=CallRecord(
            call_id=call_id,
            caller=LOBBY,
            caller_name="Lobby door",
            unit_id=unit,
            room_type=RoomType.VIDEO,
            strategy=RingStrategy.SEQUENTIAL,
            phase=Phase.INITIATE,
            started_at=at,
            callees=[ALICE, BOB],
        ),
        events=[
            CallEvent(id=f"{call_id}#1", call_id=call_id, seq=1, name=EventName.CALL_STARTED, at=at),
        ],
    )


def finished(call_id: str, keep: int = 42) -> RecordInput:
    room = f"{call_id}.1"
    end = T0 + timedelta(seconds=60 + keep)
    return RecordInput(
        call=CallRecord(
            call_id=call_id,
            phase=Phase.ENDED,
            answered_by=ALICE,
            talk_started_at=T0 + timedelta(seconds=60),
            ended_at=end,
            end_reason="hangUpVoip",
            keep_time_s=keep,
        ),
        attempts=[
            Attempt(
                room_id=room,
                seq=1,
                listener=ALICE,
                listener_name="Alice",
                phase=Phase.ENDED,
                started_at=T0,
                ended_at=end,
                outcome=AttemptOutcome.ANSWERED,
                end_reason=EventName.HANG_UP_VOIP,
                keep_time_s=keep,
            )
        ],
        events=[
            CallEvent(
                id=f"{room}#{i}",
                call_id=call_id,
                room_id=room,
                seq=i,
                name=name,
                at=end,
                party=ALICE,
                keepTime=keep,
                data={"why": "test"},
            )
            for i, name in enumerate([EventName.HANG_UP_VOIP, EventName.END_VOIP, EventName.FINISH_VOIP], 2)
        ],
        pushes=[
            PushMessage(
                id=f"{room}#end:{p.key()}",
                recipient=p,
                type=PushType.CALL_ENDED,
                call_id=call_id,
                room_id=room,
                at=end,
                payload={"keepTime": keep},
            )
            for p in (LOBBY, ALICE)
        ],
        billing=Billing(room_id=room, call_id=call_id, caller=LOBBY, listener=ALICE, keep_time_s=keep),
    )


async def add_device(pool: asyncpg.Pool, sn: str, quota: int | None) -> None:
    await pool.execute("INSERT INTO devices (sn, name, talk_quota_s) VALUES ($1, $1, $2)", sn, quota)


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple]]:
    out = {}
    for table, order in [
        ("calls", "call_id"),
        ("attempts", "room_id"),
        ("call_events", "id"),
        ("outbox", "id"),
        ("billing", "room_id"),
        ("devices", "sn"),
    ]:
        out[table] = [tuple(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
    return out


async def test_record_twice_changes_nothing_and_bills_once(db_pool: asyncpg.Pool) -> None:
    await add_device(db_pool, "LOBBY-1", 100)
    acts = CallActivities(db_pool)
    await acts.record(started("c1"))
    await acts.record(finished("c1", keep=42))
    first = await snapshot(db_pool)
    await acts.record(started("c1"))  # a retried start must not undo the end (None = unchanged)
    await acts.record(finished("c1", keep=42))
    assert await snapshot(db_pool) == first
    assert await db_pool.fetchval("SELECT talk_quota_s FROM devices WHERE sn = 'LOBBY-1'") == 58
    assert await db_pool.fetchval("SELECT count(*) FROM billing") == 1

    view = await calls.get_call(db_pool, "c1")
    assert view is not None
    assert view.phase is Phase.ENDED and view.caller == LOBBY and view.answered_by == ALICE
    assert view.keep_time_s == 42 and view.end_reason == "hangUpVoip"
    assert [a.room_id for a in view.attempts] == ["c1.1"]
    assert view.attempts[0].outcome is AttemptOutcome.ANSWERED
    assert [e.name for e in view.events] == [
        EventName.CALL_STARTED,
        EventName.HANG_UP_VOIP,
        EventName.END_VOIP,
        EventName.FINISH_VOIP,
    ]
    assert view.events[-1].keep_time_s == 42 and view.events[-1].data == {"why": "test"}


async def test_quota_never_negative_and_unlimited_untouched(db_pool: asyncpg.Pool) -> None:
    await add_device(db_pool, "LOBBY-1", 10)
    await add_device(db_pool, "GATE", None)
    async with db_pool.acquire() as conn:
        await calls.record(conn, finished("c1", keep=42))
        gate = finished("c2", keep=30)
        assert gate.billing is not None
        gate.billing.caller = Party(kind=PartyKind.DEVICE, id="GATE")
        await calls.record(conn, gate)
    assert await db_pool.fetchval("SELECT talk_quota_s FROM devices WHERE sn = 'LOBBY-1'") == 0
    assert await db_pool.fetchval("SELECT talk_quota_s FROM devices WHERE sn = 'GATE'") is None


async def test_record_is_one_transaction(db_pool: asyncpg.Pool) -> None:
    bad = finished("c1")
    bad.events.append(bad.events[0].model_copy(update={"id": "x", "call_id": None}))  # NOT NULL violation
    with pytest.raises(asyncpg.NotNullViolationError):
        async with db_pool.acquire() as conn:
            await calls.record(conn, bad)
    for table in ("calls", "attempts", "call_events", "outbox", "billing"):
        assert await db_pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_concurrent_claims_exactly_one_wins(db_pool: asyncpg.Pool) -> None:
    acts = CallActivities(db_pool)
    rooms = [f"c{i}.1" for i in range(20)]
    results = await asyncio.gather(
        *(acts.claim_line(LineInput(party=ALICE, call_id=r.split(".")[0], room_id=r)) for r in rooms)
    )
    winners = [r for r, res in zip(rooms, results, strict=True) if res.claimed]
    assert len(winners) == 1
    holder = winners[0]
    assert all(res.held_by == holder for res in results if not res.claimed)
    # re-claim by the holder is claimed (retried activity); others still busy
    again = await acts.claim_line(LineInput(party=ALICE, call_id="x", room_id=holder))
    assert again.claimed
    # release by another room does nothing; by the holder frees the line
    other = next(r for r in rooms if r != holder)
    await acts.release_line(LineInput(party=ALICE, call_id="x", room_id=other))
    assert not (await acts.claim_line(LineInput(party=ALICE, call_id="y", room_id=other))).claimed
    await acts.release_line(LineInput(party=ALICE, call_id="x", room_id=holder))
    await acts.release_line(LineInput(party=ALICE, call_id="x", room_id=holder))  # idempotent
    assert (await acts.claim_line(LineInput(party=ALICE, call_id="y", room_id=other))).claimed


async def test_list_calls_filters_and_cursor(db_pool: asyncpg.Pool) -> None:
    acts = CallActivities(db_pool)
    for i in range(5):
        await acts.record(started(f"c{i}", at=T0 + timedelta(minutes=i), unit="101" if i % 2 else "102"))
    await acts.record(finished("c3"))
    # an incomplete row (only a phase) is not listed
    await acts.record(RecordInput(call=CallRecord(call_id="partial", phase=Phase.WAIT)))

    async def ids(**kw) -> list[str]:
        views, _ = await calls.list_calls(db_pool, calls.CallFilter(**kw))
        return [v.call_id for v in views]

    assert await ids() == ["c4", "c3", "c2", "c1", "c0"]
    assert await ids(unit_id="101") == ["c3", "c1"]
    assert await ids(device="LOBBY-1") == ["c4", "c3", "c2", "c1", "c0"]
    assert await ids(device="OTHER") == []
    assert await ids(user="alice") == ["c3"]
    assert await ids(end_reason="hangUpVoip") == ["c3"]
    assert await ids(phase="initiate") == ["c4", "c2", "c1", "c0"]
    assert await ids(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == ["c2", "c1"]

    page, cursor = await calls.list_calls(db_pool, calls.CallFilter(limit=2))
    seen = [v.call_id for v in page]
    while cursor:
        page, cursor = await calls.list_calls(db_pool, calls.CallFilter(limit=2, cursor=cursor))
        seen += [v.call_id for v in page]
    assert seen == ["c4", "c3", "c2", "c1", "c0"]
    with pytest.raises(ValueError):
        await calls.list_calls(db_pool, calls.CallFilter(cursor="garbage!"))
    assert await calls.get_call(db_pool, "partial") is None
    assert await calls.get_call(db_pool, "nope") is None


async def test_outbox_pending_ack_and_notify(db_pool: asyncpg.Pool, db_dsn: str) -> None:
    listener = await asyncpg.connect(db_dsn)
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(outbox.CHANNEL, lambda *args: got.put_nowait(args[3]))
    try:
        await CallActivities(db_pool).record(finished("c1"))
        keys = {await asyncio.wait_for(got.get(), 5), await asyncio.wait_for(got.get(), 5)}
        assert keys == {"device:LOBBY-1", "user:alice"}
        msgs = await outbox.pending(db_pool, "user:alice")
        assert [m.id for m in msgs] == ["c1.1#end:user:alice"]
        frame = msgs[0].frame()
        assert frame["type"] == "call_ended" and frame["payload"] == {"keepTime": 42}
        assert await outbox.pending(db_pool, "user:alice", after_seq=msgs[0].seq) == []
        # only the recipient's own messages can be acked
        assert await outbox.ack(db_pool, "user:alice", ["c1.1#end:device:LOBBY-1"]) == 0
        assert await outbox.ack(db_pool, "user:alice", [msgs[0].id]) == 1
        assert await outbox.pending(db_pool, "user:alice") == []
        assert len(await outbox.pending(db_pool, "device:LOBBY-1")) == 1
        # a retried record neither re-inserts nor re-notifies
        await CallActivities(db_pool).record(finished("c1"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(got.get(), 0.3)
        assert await outbox.pending(db_pool, "user:alice") == []
    finally:
        await listener.close()
