"""Fake activities for workflow tests: the real activity names over an in-memory
directory, line table and list of recorded state changes, so tests assert the exact
events, pushes and billing that the workflows write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ringflow import availability as rules
from ringflow.availability import PersonAvailability, RingContext
from ringflow.contracts.activities import (
    Billing,
    CallRecord,
    LineClaim,
    LineInput,
    PrecallInput,
    PrecallResult,
    RecordInput,
    RememberAnswerInput,
    ResolvedPlan,
    ResolveInput,
    RingInput,
    RingResult,
    RingStatus,
    StartCallInput,
    StartCallResult,
    Target,
)
from ringflow.contracts.calls import STORE_SNAPSHOT, Phase
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.events import CallEvent
from ringflow.contracts.media import (
    MEDIA_CLOSE_ROOM,
    MEDIA_CONNECT,
    MediaConnectInput,
    MediaPlacement,
    RoomStats,
)
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.push import PushMessage
from ringflow.simulation.runner import register_search_attributes
from workflows import WORKFLOWS

LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")


def user(uid: str) -> Party:
    """``Party(user, uid)``."""
    return Party(kind=PartyKind.USER, id=uid)


@dataclass
class FakeUnit:
    name: str
    residents: list[str]
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)


class FakeDirectory:
    """In-memory directory + line table + recorded state changes; ``activities()`` for a Worker."""

    def __init__(self) -> None:
        self.units: dict[str, FakeUnit] = {
            "101": FakeUnit("Unit 101", ["alice", "bob", "carol"]),
        }
        self.user_names: dict[str, str] = {
            "alice": "Alice",
            "bob": "Bob",
            "carol": "Carol",
            "concierge": "Concierge",
        }
        self.caller_name = "Maple Court Lobby"
        self.precall_fail: dict[str, ErrCode] = {}  # party key -> errCode
        self.lines: dict[str, str] = {}  # party key -> room_id holding the line
        self.records: list[RecordInput] = []
        self.last_answer: dict[str, str] = {}  # unit -> user id
        self.claims: list[str] = []
        self.releases: list[str] = []
        self.caller_actions: list[str] = ["open_door"]
        self.media_connects: list[MediaConnectInput] = []  # media_connect calls, in order
        self.media_closed: list[str] = []  # media_close_room calls (call ids)
        self.room_stats: RoomStats | None = None  # what media_close_room answers
        # availability (issue 10), evaluated by the real rules (ringflow.availability) at the
        # ring's instant: what is stored per person, the site's zone, the caller devices' groups
        self.people: dict[str, PersonAvailability] = {}  # user id -> availability (none: available)
        self.time_zone = "UTC"
        self.device_groups: dict[str, str] = {}  # device sn -> device group id
        self.call_units: dict[str, str] = {}  # call id -> the unit it called (start_call)
        self.ring_instants: dict[str, datetime | None] = {}  # room id -> RingInput.at
        self.media_placement: MediaPlacement | None = None  # what media_connect answers (issue 13)
        # issue 10: re-planning and the missed-call follow-up
        self.replans: list[ResolveInput] = []  # replan calls, in order
        self.snapshot_present = True  # what store_snapshot answers (the bridge had a picture)
        self.snapshots: list[str] = []  # store_snapshot calls (call ids)

    # ------------------------- activities (resolve_targets, precall_check, claim_line: helpers)

    async def resolve_targets(self, inp: ResolveInput) -> ResolvedPlan:
        if inp.unit_id is not None:
            unit = self.units.get(inp.unit_id)
            if unit is None:
                raise ApplicationError(
                    f"unit {inp.unit_id} not found", type="UnknownUnit", non_retryable=True
                )
            policy = inp.policy or unit.policy
            ids = list(unit.residents)
            last = self.last_answer.get(inp.unit_id)
            if policy.strategy == RingStrategy.ROUND_ROBIN and last in ids:
                i = ids.index(last) + 1
                ids = ids[i:] + ids[:i]
            targets = [Target(party=user(u), name=self.user_names[u]) for u in ids]
            unit_name = unit.name
        else:
            policy = inp.policy or EscalationPolicy()
            targets = [Target(party=p, name=self.user_names.get(p.id, p.id)) for p in inp.callees or []]
            unit_name = None
        fallback = None
        if policy.fallback_user_id:
            fid = policy.fallback_user_id
            fallback = Target(party=user(fid), name=self.user_names[fid])
        return ResolvedPlan(
            caller_name=self.caller_name,
            unit_name=unit_name,
            policy=policy,
            targets=targets,
            fallback=fallback,
            caller_actions=list(self.caller_actions),
        )

    async def precall_check(self, inp: PrecallInput) -> PrecallResult:
        """``precall_fail`` first (a scripted errCode), then the availability rules of a user
        listener (:func:`ringflow.availability.check` over :attr:`people` and the unit's policy,
        at ``inp.at``)."""
        code = self.precall_fail.get(inp.listener.key())
        if code is not None:
            return PrecallResult(ok=False, err_code=code, reason=f"errCode {int(code)}")
        if inp.listener.kind is PartyKind.USER:
            uid = inp.listener.id
            unit_id = inp.unit_id or self.call_units.get(inp.call_id or "")
            unit = self.units.get(unit_id) if unit_id is not None else None
            ctx = RingContext.of(
                inp.caller,
                self.device_groups.get(inp.caller.id) if inp.caller.kind is PartyKind.DEVICE else None,
                uid,
                self.time_zone,
                unit_id=unit_id,
                residents=unit.residents if unit is not None else None,
                policy=unit.policy if unit is not None else None,
            )
            skip = rules.check(
                self.people.get(uid, PersonAvailability(uid)), ctx, inp.at or datetime.now(UTC)
            )
            if skip is not None:
                return PrecallResult(ok=False, err_code=skip.err_code, reason=skip.reason)
        return PrecallResult(ok=True)

    @activity.defn(name="remember_answer")
    async def remember_answer(self, inp: RememberAnswerInput) -> None:
        self.last_answer[inp.unit_id] = inp.party.id

    async def claim_line(self, inp: LineInput) -> LineClaim:
        key = inp.party.key()
        held = self.lines.get(key)
        if held is not None and held != inp.room_id:
            return LineClaim(claimed=False, held_by=held)
        self.lines[key] = inp.room_id
        self.claims.append(inp.room_id)
        return LineClaim(claimed=True)

    @activity.defn(name="release_line")
    async def release_line(self, inp: LineInput) -> None:
        if self.lines.get(inp.party.key()) == inp.room_id:
            del self.lines[inp.party.key()]
        self.releases.append(inp.room_id)

    @activity.defn(name="record")
    async def record(self, inp: RecordInput) -> None:
        self.records.append(inp)
        if inp.release is not None:
            await self.release_line(inp.release)

    @activity.defn(name="start_call")
    async def start_call(self, inp: StartCallInput) -> StartCallResult:
        """``record`` started + ``resolve_targets`` + ``record`` of the plan (phase wait) as one step."""
        await self.record(inp.started)
        if inp.resolve.unit_id is not None:
            self.call_units[inp.call_id] = inp.resolve.unit_id
        try:
            plan = await self.resolve_targets(inp.resolve)
        except ApplicationError as err:
            return StartCallResult(error_type=err.type, error_message=err.message)
        callees = plan.callees()
        if callees:
            await self.record(
                RecordInput(
                    call=CallRecord(
                        call_id=inp.call_id,
                        caller_name=plan.caller_name,
                        strategy=plan.policy.strategy,
                        phase=Phase.WAIT,
                        callees=callees,
                    )
                )
            )
        return StartCallResult(plan=plan)

    @activity.defn(name="ring")
    async def ring(self, inp: RingInput) -> RingResult:
        """``before`` + ``precall_check`` + ``claim_line`` + ``record`` as one step (nothing of
        the room written unless rang)."""
        line = LineInput(party=inp.listener, call_id=inp.call_id, room_id=inp.room_id)
        self.ring_instants[inp.room_id] = inp.at
        if inp.before != RecordInput():
            await self.record(inp.before)
        if self.lines.get(inp.listener.key()) != inp.room_id:
            check = await self.precall_check(
                PrecallInput(caller=inp.caller, listener=inp.listener, at=inp.at, call_id=inp.call_id)
            )
            if not check.ok:
                return RingResult(status=RingStatus.SKIPPED, err_code=check.err_code, reason=check.reason)
            claim = await self.claim_line(line)
            if not claim.claimed:
                return RingResult(status=RingStatus.BUSY, held_by=claim.held_by)
        await self.record(inp.record)
        return RingResult(status=RingStatus.RANG)

    @activity.defn(name="replan")
    async def replan(self, inp: ResolveInput) -> StartCallResult:
        """``resolve_targets`` over the directory as it is now (issue 10 item 3)."""
        self.replans.append(inp)
        try:
            return StartCallResult(plan=await self.resolve_targets(inp))
        except ApplicationError as err:
            return StartCallResult(error_type=err.type, error_message=err.message)

    @activity.defn(name=STORE_SNAPSHOT)
    async def store_snapshot(self, call_id: str) -> bool:
        """The bridge's snapshot stored with the call (issue 10 item 4): ``snapshot_present``."""
        self.snapshots.append(call_id)
        return self.snapshot_present

    @activity.defn(name=MEDIA_CONNECT)
    async def media_connect(self, inp: MediaConnectInput) -> MediaPlacement | None:
        self.media_connects.append(inp)
        return self.media_placement

    @activity.defn(name=MEDIA_CLOSE_ROOM)
    async def media_close_room(self, call_id: str) -> RoomStats | None:
        self.media_closed.append(call_id)
        return self.room_stats

    def activities(self) -> list:
        return [
            self.media_connect,
            self.media_close_room,
            self.remember_answer,
            self.release_line,
            self.record,
            self.ring,
            self.start_call,
            self.replan,
            self.store_snapshot,
        ]

    # -------------------------------------------------------------- assertions

    def events(self, room_id: str | None = None, call_id: str | None = None) -> list[CallEvent]:
        """Recorded events of one room (``room_id``) or the building call's own (``call_id``)."""
        out = [e for r in self.records for e in r.events]
        if room_id is not None:
            return [e for e in out if e.room_id == room_id]
        return [e for e in out if e.room_id is None and (call_id is None or e.call_id == call_id)]

    def names(self, room_id: str | None = None, call_id: str | None = None) -> list[str]:
        """Event names, in order."""
        return [e.name.value for e in self.events(room_id, call_id)]

    def pushes(self, room_id: str | None = None) -> list[PushMessage]:
        out = [p for r in self.records for p in r.pushes]
        return [p for p in out if room_id is None or p.room_id == room_id]

    def billing(self) -> list[Billing]:
        return [r.billing for r in self.records if r.billing is not None]


@asynccontextmanager
async def running(env: WorkflowEnvironment, task_queue: str, fake: FakeDirectory) -> AsyncIterator[Worker]:
    """A worker with both workflows and the fake activities on ``task_queue``."""
    await register_search_attributes(env)
    async with Worker(
        env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=fake.activities()
    ) as w:
        yield w


async def until(pred: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``pred`` (real time; the test server does not skip time meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
