"""The simulator's in-memory directory, call store and activities.

:class:`MemoryDirectory` is a :class:`~activities.directory.DirectoryReader` over a building
file (the ``Building`` contract) and the scenario's people; :class:`MemoryCalls` a
:class:`~activities.calls.CallStore` (records, line claims). :class:`SimActivities` registers
the workflow's activity names over them, and runs production's control flow
(``ring_with``, ``start_call_with``, ``replan_with``): the decisions of a simulated call are
the engine's. What differs is only where the data lives, and the media bridge (no media:
``media_required`` is off, so the workflow asks nothing of it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity

from activities.calls import replan_with, ring_with, start_call_with
from ringflow.availability import PersonAvailability
from ringflow.contracts.activities import (
    LineInput,
    RecordInput,
    RememberAnswerInput,
    ResolveInput,
    RingInput,
    RingResult,
    StartCallInput,
    StartCallResult,
)
from ringflow.contracts.calls import STORE_SNAPSHOT
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import AuthorizationTarget, Building, Device, Unit, User
from ringflow.contracts.events import CallEvent
from ringflow.contracts.media import (
    MEDIA_CLOSE_ROOM,
    MEDIA_CONNECT,
    MediaConnectInput,
    MediaPlacement,
    RoomStats,
)
from ringflow.contracts.push import PushMessage
from ringflow.contracts.tenancy import DEFAULT_TENANT

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # created_at/updated_at of the file's rows


class MemoryDirectory:
    """The directory of one building file in one tenant (``DirectoryReader``), mutable by the
    scenario's edits: ``units`` (by id), ``people`` (availability by user id; absent: only the
    manager's switch of the file), ``last`` (round-robin memory by unit id), ``calls`` (call id
    -> (unit, site), as ``start_call`` recorded them)."""

    def __init__(
        self, building: Building, site_id: str, time_zone: str, tenant: str = DEFAULT_TENANT
    ) -> None:
        self.tenant = tenant
        self.site_id = site_id
        self.time_zone = time_zone
        self.devices = {
            d.sn: Device(**(d.model_dump() | {"site_id": site_id}), created_at=_EPOCH, updated_at=_EPOCH)
            for d in building.devices
        }
        self.users = {u.id: User(**u.model_dump(), created_at=_EPOCH) for u in building.users}
        self.units = {
            u.id: Unit(**(u.model_dump() | {"site_id": site_id}), created_at=_EPOCH, updated_at=_EPOCH)
            for u in building.units
        }
        self.authorizations = [(a.user_id, a.target_kind, a.target_id) for a in building.authorizations]
        self.people: dict[str, PersonAvailability] = {}
        self.last: dict[str, str] = {}
        self.calls: dict[str, tuple[str | None, str | None]] = {}

    async def device(self, sn: str, tenant: str) -> Device | None:
        return self.devices.get(sn) if tenant == self.tenant else None

    async def user(self, user_id: str, tenant: str) -> User | None:
        return self.users.get(user_id) if tenant == self.tenant else None

    async def unit(self, unit_id: str, tenant: str, site: str) -> Unit | None:
        return self.units.get(unit_id) if (tenant, site) == (self.tenant, self.site_id) else None

    async def last_answered(self, unit_id: str, tenant: str, site: str) -> str | None:
        return self.last.get(unit_id)

    async def is_authorized(self, user_id: str, sn: str, tenant: str) -> bool:
        return self.authorized(user_id, sn)

    def authorized(self, user_id: str, sn: str) -> bool:
        """The user authorized device ``sn`` or its group (the ``authorized_pairs`` rule, 1(1))."""
        device = self.devices.get(sn)
        if device is None:
            return False
        return any(
            uid == user_id
            and (
                (kind is AuthorizationTarget.DEVICE and target == sn)
                or (kind is AuthorizationTarget.GROUP and target == device.group_id)
            )
            for uid, kind, target in self.authorizations
        )

    async def person(self, user_id: str, tenant: str) -> PersonAvailability | None:
        user = self.users.get(user_id)
        if user is None or tenant != self.tenant:
            return None
        return self.people.get(user_id, PersonAvailability(user_id, manager_dnd=user.do_not_disturb))

    async def call_unit(self, call_id: str) -> tuple[str | None, str | None] | None:
        return self.calls.get(call_id)

    async def site_zone(self, tenant: str, site: str) -> str | None:
        return self.time_zone if (tenant, site) == (self.tenant, self.site_id) else None


@dataclass
class MemoryCalls:
    """A :class:`~activities.calls.CallStore` in memory: every ``record`` in commit order
    (``records``), the line claims (``lines``: party key -> room id), the directory read."""

    directory: MemoryDirectory
    records: list[RecordInput] = field(default_factory=list)
    lines: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, inp: RecordInput) -> None:
        if inp == RecordInput():
            return
        self.records.append(inp)
        call = inp.call
        if call is not None and (call.unit_id is not None or call.site_id is not None):
            unit, site = self.directory.calls.get(call.call_id, (None, None))
            self.directory.calls[call.call_id] = (call.unit_id or unit, call.site_id or site)
        if inp.release is not None:
            self.release(inp.release.party, inp.release.room_id)
        self.changed.set()

    async def line_holder(self, party: Party, tenant: str) -> str | None:
        return self.lines.get(party.key())

    async def claim_line(self, party: Party, call_id: str, room_id: str) -> str:
        return self.lines.setdefault(party.key(), room_id)

    def release(self, party: Party, room_id: str) -> None:
        """Release ``party``'s line if ``room_id`` holds it."""
        if self.lines.get(party.key()) == room_id:
            del self.lines[party.key()]

    def events(self) -> list[CallEvent]:
        """Every recorded event once (a retried ``record`` writes the same ids), in the order
        ``ringflow calls show`` lists them: by time, then as committed."""
        seen: dict[str, CallEvent] = {}
        for r in self.records:
            for e in r.events:
                seen.setdefault(e.id, e)
        return sorted(seen.values(), key=lambda e: e.at)

    def pushes(self) -> list[PushMessage]:
        """Every push once, as committed."""
        seen: dict[str, PushMessage] = {}
        for r in self.records:
            for p in r.pushes:
                seen.setdefault(p.id, p)
        return list(seen.values())


class SimActivities:
    """The building call's activities over :class:`MemoryCalls` (production's control flow)."""

    def __init__(self, calls: MemoryCalls) -> None:
        self.calls = calls

    @activity.defn(name="record")
    async def record(self, inp: RecordInput) -> None:
        await self.calls.record(inp)

    @activity.defn(name="ring")
    async def ring(self, inp: RingInput) -> RingResult:
        return await ring_with(self.calls, inp)

    @activity.defn(name="start_call")
    async def start_call(self, inp: StartCallInput) -> StartCallResult:
        return await start_call_with(self.calls, inp)

    @activity.defn(name="replan")
    async def replan(self, inp: ResolveInput) -> StartCallResult:
        return await replan_with(self.calls.directory, inp)

    @activity.defn(name="release_line")
    async def release_line(self, inp: LineInput) -> None:
        self.calls.release(inp.party, inp.room_id)

    @activity.defn(name="remember_answer")
    async def remember_answer(self, inp: RememberAnswerInput) -> None:
        if inp.party.kind is PartyKind.USER:
            self.calls.directory.last[inp.unit_id] = inp.party.id

    @activity.defn(name=STORE_SNAPSHOT)
    async def store_snapshot(self, call_id: str) -> bool:
        return False  # no media in a simulation: no visitor picture

    @activity.defn(name=MEDIA_CONNECT)
    async def media_connect(self, inp: MediaConnectInput) -> MediaPlacement | None:
        return None

    @activity.defn(name=MEDIA_CLOSE_ROOM)
    async def media_close_room(self, call_id: str) -> RoomStats | None:
        return None

    def all(self) -> list:
        """Every activity, for ``Worker(activities=...)``."""
        return [
            self.record,
            self.ring,
            self.start_call,
            self.replan,
            self.release_line,
            self.remember_answer,
            self.store_snapshot,
            self.media_connect,
            self.media_close_room,
        ]
