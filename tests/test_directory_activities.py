"""activities/directory.py: resolve_targets, pre-call checks (reference section 1) and round-robin
memory; and ``ring`` (activities/calls.py), which runs the pre-call checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError

from activities.calls import CallActivities
from activities.directory import DirectoryActivities, rotate_after
from ringflow.contracts.activities import (
    CallRecord,
    PrecallInput,
    RecordInput,
    RememberAnswerInput,
    ResolveInput,
    RingInput,
    RingStatus,
    StartCallInput,
)
from ringflow.contracts.calls import Phase
from ringflow.contracts.common import Party, PartyKind, RoomType
from ringflow.contracts.directory import AuthorizationIn, DeviceIn, DevicePatch, UserPatch
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.push import PushMessage, PushType
from ringflow.directory_load import load_building, read_building
from store import calls, outbox
from store import directory as d

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "building.yaml"
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")


def user(uid: str) -> Party:
    return Party(kind=PartyKind.USER, id=uid)


def device(sn: str) -> Party:
    return Party(kind=PartyKind.DEVICE, id=sn)


@pytest.fixture
async def acts(db_pool: asyncpg.Pool) -> DirectoryActivities:
    await load_building(db_pool, read_building(EXAMPLE))
    return DirectoryActivities(db_pool)


async def test_resolve_unit_sequential(acts: DirectoryActivities) -> None:
    plan = await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="101"))
    assert plan.caller_name == "Maple Court Lobby"  # FAQ 1.6: the authorized device name
    assert plan.unit_name == "Unit 101"
    assert [(t.party.id, t.name) for t in plan.targets] == [
        ("alice", "Alice Moreau"),
        ("bob", "Bob Moreau"),
        ("carol", "Carol Moreau"),
    ]
    assert plan.policy.ring_timeout_s == 30
    assert plan.fallback is not None and (plan.fallback.party, plan.fallback.name) == (
        user("concierge"),
        "Maple Court Concierge",
    )
    override = EscalationPolicy(strategy=RingStrategy.SIMULTANEOUS)
    plan = await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="101", policy=override))
    assert plan.policy == override and plan.fallback is None


async def test_resolve_round_robin_rotates_after_last_answer(acts: DirectoryActivities) -> None:
    async def order() -> list[str]:
        plan = await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="201"))
        return [t.party.id for t in plan.targets]

    assert await order() == ["farid", "grace", "hugo"]
    await acts.remember_answer(RememberAnswerInput(unit_id="201", party=user("grace")))
    assert await order() == ["hugo", "farid", "grace"]
    await acts.remember_answer(RememberAnswerInput(unit_id="201", party=user("hugo")))
    assert await order() == ["farid", "grace", "hugo"]
    # a device answering is not remembered; sequential units ignore the memory
    await acts.remember_answer(RememberAnswerInput(unit_id="201", party=LOBBY))
    assert await order() == ["farid", "grace", "hugo"]
    await acts.remember_answer(RememberAnswerInput(unit_id="101", party=user("alice")))
    plan = await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="101"))
    assert [t.party.id for t in plan.targets] == ["alice", "bob", "carol"]
    assert rotate_after(["a", "b"], "zz") == ["a", "b"]


async def test_resolve_callees_and_unknowns(acts: DirectoryActivities) -> None:
    plan = await acts.resolve_targets(
        ResolveInput(caller=user("concierge"), callees=[device("GARAGE-1"), user("dan")])
    )
    assert plan.caller_name == "Maple Court Concierge"
    assert [(t.party, t.name) for t in plan.targets] == [
        (device("GARAGE-1"), "Maple Court Garage"),
        (user("dan"), "Dan Okafor"),
    ]
    assert plan.policy == EscalationPolicy() and plan.unit_name is None
    assert [t.auto_answer for t in plan.targets] == [True, False]  # phone-calls-device
    assert plan.caller_actions == []  # a resident offers no in-call action
    assert (await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="101"))).caller_actions == [
        "open_door"
    ]

    cases = [
        (ResolveInput(caller=LOBBY, unit_id="999"), "UnknownUnit"),
        (ResolveInput(caller=device("NOPE"), unit_id="101"), "UnknownDevice"),
        (ResolveInput(caller=LOBBY, callees=[user("ghost")]), "UnknownUser"),
        (ResolveInput(caller=LOBBY), "InvalidInput"),
    ]
    for inp, kind in cases:
        with pytest.raises(ApplicationError) as exc:
            await acts.resolve_targets(inp)
        assert exc.value.type == kind and exc.value.non_retryable


async def test_precall_checks_each_errcode(acts: DirectoryActivities, db_pool: asyncpg.Pool) -> None:
    async def check(caller: Party, listener: Party) -> ErrCode:
        return (await acts.precall_check(PrecallInput(caller=caller, listener=listener))).err_code

    assert await check(LOBBY, user("alice")) == ErrCode.OK
    result = await acts.precall_check(PrecallInput(caller=LOBBY, listener=user("alice")))
    assert result.ok and result.reason is None

    now = datetime.now(UTC)
    async with db_pool.acquire() as conn:
        # 13 (reference 1(2)): no VoIP token, or an expired one; checked before authorization
        await d.put_device(conn, DeviceIn(sn="NOTOKEN", name="No token"))
        await d.put_device(conn, DeviceIn(sn="EXPIRED", name="Old", voip_token_expires_at=now - timedelta(1)))
        assert await check(device("NOTOKEN"), user("alice")) == ErrCode.VOIP_TOKEN_INVALID
        failed = await acts.precall_check(PrecallInput(caller=device("EXPIRED"), listener=user("alice")))
        assert (failed.ok, failed.err_code) == (
            False,
            ErrCode.VOIP_TOKEN_INVALID,
        ) and "expired" in failed.reason

        # 9 (reference 1(1)): not authorized directly nor through the device's group
        await d.put_device(conn, DeviceIn(sn="SIDE-1", name="Side", voip_token_expires_at=now + timedelta(1)))
        assert await check(device("SIDE-1"), user("alice")) == ErrCode.DEVICE_NOT_AUTHORIZED
        await d.add_authorization(
            conn, AuthorizationIn(user_id="alice", target_kind="device", target_id="SIDE-1")
        )
        assert await check(device("SIDE-1"), user("alice")) == ErrCode.OK
        # a user calling a device: the user must have authorized that device
        assert await check(user("alice"), device("SIDE-1")) == ErrCode.OK
        assert await check(user("bob"), device("SIDE-1")) == ErrCode.DEVICE_NOT_AUTHORIZED
        # removed from its group: residents who authorized only the group lose it
        await d.remove_group_device(conn, "main-entrance", "GARAGE-1")
        assert await check(device("GARAGE-1"), user("bob")) == ErrCode.DEVICE_NOT_AUTHORIZED

        # 1001: no talk quota left (0), None = unlimited
        await d.patch_device(conn, "LOBBY-1", DevicePatch(talk_quota_s=0))
        assert await check(LOBBY, user("alice")) == ErrCode.QUOTA_EXCEEDED
        await d.patch_device(conn, "LOBBY-1", DevicePatch(talk_quota_s=120))
        assert await check(LOBBY, user("alice")) == ErrCode.OK

        # 1003: the listener is on do-not-disturb
        await d.patch_user(conn, "bob", UserPatch(do_not_disturb=True))
        assert await check(LOBBY, user("bob")) == ErrCode.DO_NOT_DISTURB

        # a party deleted since resolve_targets: skipped with 1008, not an activity failure
        await d.delete_device(conn, "SIDE-1")
        assert await check(device("SIDE-1"), user("alice")) == ErrCode.UNKNOWN_RESOURCE


async def test_ring_checks_claims_and_records_in_one_transaction(
    acts: DirectoryActivities, db_pool: asyncpg.Pool
) -> None:
    """``ring`` = ``precall_check`` + ``claim_line`` + ``record``: nothing is claimed or written
    unless all pass; a retry after the commit rings again without re-checking."""
    calls_acts = CallActivities(db_pool)
    at = datetime.now(UTC)

    def ring(room: str, listener: Party) -> RingInput:
        ev = CallEvent(
            id=f"{room}#1",
            call_id="c1",
            room_id=room,
            seq=1,
            name=EventName.RINGING,
            at=at,
            listener=listener,
        )
        push = PushMessage(
            id=f"{ev.id}:{listener.key()}",
            recipient=listener,
            type=PushType.INCOMING_CALL,
            call_id="c1",
            room_id=room,
            at=at,
            payload={},
        )
        return RingInput(
            caller=LOBBY,
            listener=listener,
            call_id="c1",
            room_id=room,
            record=RecordInput(events=[ev], pushes=[push]),
        )

    async with db_pool.acquire() as conn:
        await d.patch_user(conn, "bob", UserPatch(do_not_disturb=True))
    skipped = await calls_acts.ring(ring("c1.1", user("bob")))
    assert (skipped.status, skipped.err_code) == (RingStatus.SKIPPED, ErrCode.DO_NOT_DISTURB)
    assert await calls.line_holder(db_pool, user("bob")) is None

    assert (await calls_acts.ring(ring("c1.2", user("alice")))).status == RingStatus.RANG
    assert await calls.line_holder(db_pool, user("alice")) == "c1.2"
    busy = await calls_acts.ring(ring("c1.3", user("alice")))
    assert (busy.status, busy.held_by) == (RingStatus.BUSY, "c1.2")

    # a retry of the committed ring: still rang, even if a check would now fail; written once
    async with db_pool.acquire() as conn:
        await d.patch_user(conn, "alice", UserPatch(do_not_disturb=True))
    assert (await calls_acts.ring(ring("c1.2", user("alice")))).status == RingStatus.RANG
    rooms = await db_pool.fetch("SELECT room_id FROM call_events WHERE call_id = 'c1' ORDER BY room_id")
    assert [r["room_id"] for r in rooms] == ["c1.2"]
    pushed = await outbox.pending(db_pool, "user:alice")
    assert [p.room_id for p in pushed] == ["c1.2"]


async def test_ring_writes_its_lead_in_whatever_the_outcome(
    acts: DirectoryActivities, db_pool: asyncpg.Pool
) -> None:
    """``RingInput.before`` (the building call's ``escalated``) is written in the ring's
    transaction also when the ring is skipped or busy, and once on a retry."""
    calls_acts = CallActivities(db_pool)
    at = datetime.now(UTC)

    def escalated(seq: int) -> RecordInput:
        ev = CallEvent(id=f"c2#{seq}", call_id="c2", seq=seq, name=EventName.ESCALATED, at=at)
        return RecordInput(events=[ev])

    async with db_pool.acquire() as conn:
        await d.patch_user(conn, "bob", UserPatch(do_not_disturb=True))
        await calls.claim_line(conn, user("alice"), "other", "other.1")
    skipped = RingInput(caller=LOBBY, listener=user("bob"), call_id="c2", room_id="c2.1", before=escalated(2))
    busy = RingInput(caller=LOBBY, listener=user("alice"), call_id="c2", room_id="c2.2", before=escalated(3))
    assert (await calls_acts.ring(skipped)).status == RingStatus.SKIPPED
    assert (await calls_acts.ring(busy)).status == RingStatus.BUSY
    assert (await calls_acts.ring(busy)).status == RingStatus.BUSY  # a retry writes nothing twice
    rows = await db_pool.fetch("SELECT id, name FROM call_events WHERE call_id = 'c2' ORDER BY id")
    assert [(r["id"], r["name"]) for r in rows] == [("c2#2", "escalated"), ("c2#3", "escalated")]


async def test_start_call_records_resolves_and_records_the_plan(
    acts: DirectoryActivities, db_pool: asyncpg.Pool
) -> None:
    """``start_call`` = ``record`` callStarted + ``resolve_targets`` + ``record`` of the plan, one
    transaction; a non-retryable resolve failure is returned with callStarted still written."""
    calls_acts = CallActivities(db_pool)
    at = datetime.now(UTC)

    def start(call_id: str, unit_id: str) -> StartCallInput:
        return StartCallInput(
            call_id=call_id,
            resolve=ResolveInput(caller=LOBBY, unit_id=unit_id),
            started=RecordInput(
                call=CallRecord(
                    call_id=call_id,
                    caller=LOBBY,
                    unit_id=unit_id,
                    room_type=RoomType.VIDEO,
                    phase=Phase.INITIATE,
                    started_at=at,
                ),
                events=[
                    CallEvent(id=f"{call_id}#1", call_id=call_id, seq=1, name=EventName.CALL_STARTED, at=at)
                ],
            ),
        )

    res = await calls_acts.start_call(start("s1", "101"))
    assert res.plan == await acts.resolve_targets(ResolveInput(caller=LOBBY, unit_id="101"))
    view = await calls.get_call(db_pool, "s1")
    assert view is not None and view.phase == Phase.WAIT and view.caller_name == res.plan.caller_name
    assert [e.name for e in view.events] == [EventName.CALL_STARTED]
    stored = await db_pool.fetchval("SELECT callees FROM calls WHERE call_id = 's1'")
    assert len(stored) == len(res.plan.callees()) == 4  # residents + the fallback

    failed = await calls_acts.start_call(start("s2", "nope"))
    assert (failed.plan, failed.error_type) == (None, "UnknownUnit") and "nope" in (
        failed.error_message or ""
    )
    row = await db_pool.fetchrow("SELECT phase FROM calls WHERE call_id = 's2'")
    events = await db_pool.fetch("SELECT name FROM call_events WHERE call_id = 's2'")
    assert row["phase"] == "initiate" and [e["name"] for e in events] == ["callStarted"]
