"""Directory activities: who to ring and may they be rung (reference section 1 pre-call checks).

Owned by the directory work; SQL lives in ``store/directory.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ringflow import availability as rules
from ringflow.availability import PersonAvailability, RingContext
from ringflow.contracts.activities import (
    PrecallInput,
    PrecallResult,
    RememberAnswerInput,
    ResolvedPlan,
    ResolveInput,
    Target,
)
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import Device, Unit, User
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.tenancy import DEFAULT_SITE
from store import availability
from store import directory as store
from store.directory import Conn


class DirectoryReader(Protocol):
    """What the target resolution and the pre-call checks read, in one consistent view (one
    transaction): :class:`PgDirectory` over PostgreSQL for the activities,
    ``ringflow.simulation.memory.MemoryDirectory`` over a building file and a scenario for
    ``ringflow simulate``, so both run the very same decisions (:func:`resolve_with`,
    :func:`precall_with`). Ids are of tenant ``tenant``; None = no such row."""

    async def device(self, sn: str, tenant: str) -> Device | None:
        """The device ``sn``."""
        ...

    async def user(self, user_id: str, tenant: str) -> User | None:
        """The user ``user_id``."""
        ...

    async def unit(self, unit_id: str, tenant: str, site: str) -> Unit | None:
        """The unit ``unit_id`` of site ``site``, residents in hunt order."""
        ...

    async def last_answered(self, unit_id: str, tenant: str, site: str) -> str | None:
        """Round-robin memory (FAQ 1.5): who answered the unit's last call."""
        ...

    async def is_authorized(self, user_id: str, sn: str, tenant: str) -> bool:
        """The user authorized the device, directly or through its current group (1(1))."""
        ...

    async def person(self, user_id: str, tenant: str) -> PersonAvailability | None:
        """What is stored about the user's availability (issue 10), None: no such user."""
        ...

    async def call_unit(self, call_id: str) -> tuple[str | None, str | None] | None:
        """(unit_id, site_id) that ``start_call`` recorded for call ``call_id``; None: no call."""
        ...

    async def site_zone(self, tenant: str, site: str) -> str | None:
        """The IANA time zone of the site, None: no such site."""
        ...


class PgDirectory:
    """:class:`DirectoryReader` over one asyncpg connection (the caller's transaction), through
    the ``store`` functions."""

    __slots__ = ("conn",)

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def device(self, sn: str, tenant: str) -> Device | None:
        return await store.find_device(self.conn, sn, tenant=tenant)

    async def user(self, user_id: str, tenant: str) -> User | None:
        return await store.find_user(self.conn, user_id, tenant=tenant)

    async def unit(self, unit_id: str, tenant: str, site: str) -> Unit | None:
        return await store.find_unit(self.conn, unit_id, tenant=tenant, site=site)

    async def last_answered(self, unit_id: str, tenant: str, site: str) -> str | None:
        return await store.last_answered(self.conn, unit_id, tenant=tenant, site=site)

    async def is_authorized(self, user_id: str, sn: str, tenant: str) -> bool:
        return await store.is_authorized(self.conn, user_id, sn, tenant=tenant)

    async def person(self, user_id: str, tenant: str) -> PersonAvailability | None:
        return await availability.load_person(self.conn, user_id, tenant=tenant)

    async def call_unit(self, call_id: str) -> tuple[str | None, str | None] | None:
        return await availability.call_unit(self.conn, call_id)

    async def site_zone(self, tenant: str, site: str) -> str | None:
        return await availability.site_zone(self.conn, tenant, site)


def _unknown(party: Party) -> ApplicationError:
    kind = "UnknownDevice" if party.kind is PartyKind.DEVICE else "UnknownUser"
    return ApplicationError(f"no {party.kind.value} {party.id!r}", type=kind, non_retryable=True)


async def _lookup(reader: DirectoryReader, party: Party, tenant: str) -> Device | User | None:
    if party.kind is PartyKind.DEVICE:
        return await reader.device(party.id, tenant)
    return await reader.user(party.id, tenant)


async def _target(reader: DirectoryReader, party: Party, tenant: str) -> Target:
    found = await _lookup(reader, party, tenant)
    if found is None:
        raise _unknown(party)
    return Target(party=party, name=found.name, auto_answer=isinstance(found, Device) and found.auto_answer)


def rotate_after(user_ids: list[str], last: str | None) -> list[str]:
    """Round-robin with memory (reference FAQ 1.5): ``user_ids`` rotated to start
    right after ``last``; unchanged when ``last`` is None or not in the list."""
    if last not in user_ids:
        return list(user_ids)
    i = user_ids.index(last) + 1
    return user_ids[i:] + user_ids[:i]


def _fail(code: ErrCode, reason: str) -> PrecallResult:
    return PrecallResult(ok=False, err_code=code, reason=reason)


async def resolve_plan(conn: Conn, inp: ResolveInput) -> ResolvedPlan:
    """``resolve_targets`` reading through ``conn`` in the caller's transaction
    (``resolve_targets``, ``start_call``): :func:`resolve_with` over :class:`PgDirectory`."""
    return await resolve_with(PgDirectory(conn), inp)


async def resolve_with(reader: DirectoryReader, inp: ResolveInput) -> ResolvedPlan:
    """The targets of a building call (``resolve_targets``) read through ``reader``; raises as
    ``resolve_targets``. Everything is read in tenant ``inp.tenant_id``; the unit in site
    ``inp.site_id``, else the caller device's site, else the default site (issue 9)."""
    if (inp.unit_id is None) == (inp.callees is None):
        raise ApplicationError(
            "give exactly one of unit_id and callees", type="InvalidInput", non_retryable=True
        )
    tenant = inp.tenant_id
    caller = await _target(reader, inp.caller, tenant)
    device = await reader.device(inp.caller.id, tenant) if inp.caller.kind is PartyKind.DEVICE else None
    unit_name = None
    site_id = None
    if inp.unit_id is not None:
        site_id = inp.site_id or (device.site_id if device else DEFAULT_SITE)
        unit = await reader.unit(inp.unit_id, tenant, site_id)
        if unit is None:
            raise ApplicationError(f"no unit {inp.unit_id!r}", type="UnknownUnit", non_retryable=True)
        unit_name = unit.name
        policy = inp.policy or unit.policy
        residents = unit.residents
        if policy.strategy is RingStrategy.ROUND_ROBIN:
            residents = rotate_after(residents, await reader.last_answered(unit.id, tenant, site_id))
        parties = [Party(kind=PartyKind.USER, id=uid) for uid in residents]
    else:
        policy = inp.policy or EscalationPolicy()
        parties = list(inp.callees or [])
    targets = [await _target(reader, p, tenant) for p in parties]
    fallback = None
    if policy.fallback_user_id is not None:
        fallback = await _target(reader, Party(kind=PartyKind.USER, id=policy.fallback_user_id), tenant)
    return ResolvedPlan(
        caller_name=caller.name,
        unit_name=unit_name,
        policy=policy,
        targets=targets,
        fallback=fallback,
        caller_actions=list(device.actions) if device else [],
        site_id=site_id,
    )


async def precall_checks(conn: Conn, inp: PrecallInput) -> PrecallResult:
    """:func:`precall_with` over :class:`PgDirectory` (``conn``: the caller's transaction)."""
    return await precall_with(PgDirectory(conn), inp)


async def precall_with(reader: DirectoryReader, inp: PrecallInput) -> PrecallResult:
    """The reference's pre-call checks for one caller-listener pair, first failure wins:

    1. the caller device's VoIP token is registered and not expired (at ``inp.at``), else
       errCode 13 (reference 1(2));
    2. the user of the pair authorized the device of the pair, directly or through
       the device's current group, else errCode 9 (reference 1(1)); a device calling
       a device has no user and no authorization rule;
    3. the device of the pair (the caller, else the listener) has quota left
       (``talk_quota_s`` not 0), else errCode 1001 (reference section 1, licence/traffic);
    4. a listener user is available at ``inp.at`` (issue 10, :func:`ringflow.availability.check`
       over what the reader loads, :func:`ring_context`): not away (else errCode 1017, reason
       ``away: ...``), not in do-not-disturb (the manager's switch, their own switch, their
       quiet hours, the unit's quiet hours) unless the unit's ``ring_through_dnd`` names the
       caller (else errCode 1003, reason ``dnd: ...`` naming the rule).

    ``inp.at`` None (a ring from a history before issue 10): now, UTC. A party that no longer
    exists (deleted since ``resolve_targets``) fails with errCode 1008 (the target is skipped,
    the call goes on). Raises nothing else.

    Reads through ``reader`` (the caller's transaction: ``precall_check``, ``ring``), in tenant
    ``inp.tenant_id``.
    """
    at = inp.at or datetime.now(UTC)
    tenant = inp.tenant_id
    caller = await _lookup(reader, inp.caller, tenant)
    listener = await _lookup(reader, inp.listener, tenant)
    for party, found in ((inp.caller, caller), (inp.listener, listener)):
        if found is None:
            return _fail(ErrCode.UNKNOWN_RESOURCE, f"no {party.kind.value} {party.id!r}")
    if isinstance(caller, Device) and (problem := caller.voip_token_problem(at)):
        return _fail(ErrCode.VOIP_TOKEN_INVALID, problem)
    device = next((p for p in (caller, listener) if isinstance(p, Device)), None)
    user = next((p for p in (caller, listener) if isinstance(p, User)), None)
    if device is not None and user is not None and not await reader.is_authorized(user.id, device.sn, tenant):
        return _fail(
            ErrCode.DEVICE_NOT_AUTHORIZED,
            f"user {user.id!r} has not authorized device {device.sn!r} or its device group",
        )
    if device is not None and device.talk_quota_s == 0:
        return _fail(ErrCode.QUOTA_EXCEEDED, f"device {device.sn!r} has no talk quota left")
    if isinstance(listener, User):
        person = await reader.person(listener.id, tenant)
        if person is not None:
            ctx = await ring_context(
                reader,
                tenant=tenant,
                caller=inp.caller,
                caller_device=caller if isinstance(caller, Device) else None,
                listener_id=listener.id,
                call_id=inp.call_id,
                unit_id=inp.unit_id,
                site_id=inp.site_id,
            )
            if (skip := rules.check(person, ctx, at)) is not None:
                return _fail(skip.err_code, skip.reason)
    return PrecallResult(ok=True)


async def ring_context(
    reader: DirectoryReader,
    *,
    tenant: str,
    caller: Party,
    caller_device: Device | None,
    listener_id: str,
    call_id: str | None = None,
    unit_id: str | None = None,
    site_id: str | None = None,
) -> RingContext:
    """The call's side of an availability check of listener ``listener_id``: the unit called
    (``unit_id``/``site_id``, else what ``start_call`` recorded for ``call_id``: the unit and its
    site), its stored policy's ``quiet_hours`` and ``ring_through_dnd``, whether the listener is
    one of its residents, and the time zone of the unit's site (the caller device's site for
    explicit callees, else the default site; "UTC" for an unknown site). A unit deleted since
    the call started has no quiet hours and no bypass."""
    if unit_id is None and call_id is not None:
        recorded = await reader.call_unit(call_id)
        if recorded is not None:
            unit_id, site_id = recorded
    site = site_id or (caller_device.site_id if caller_device is not None else DEFAULT_SITE)
    zone = await reader.site_zone(tenant, site)
    unit = await reader.unit(unit_id, tenant, site) if unit_id else None
    return RingContext.of(
        caller,
        caller_device.group_id if caller_device is not None else None,
        listener_id,
        zone or "UTC",
        unit_id=unit.id if unit is not None else None,
        residents=unit.residents if unit is not None else None,
        policy=unit.policy if unit is not None else None,
    )


class DirectoryActivities:
    """Directory reads for the call workflows, over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def resolve_targets(self, inp: ResolveInput) -> ResolvedPlan:
        """Targets of a building call (see ``ResolvedPlan``) in one read-only transaction.
        Not an activity: ``start_call`` resolves inside its own transaction.

        ``unit_id``: the unit's residents in hunt order as user targets, policy =
        ``inp.policy`` or the unit's; for ``round_robin`` the list starts after the
        user who answered the unit's last call (FAQ 1.5). ``callees``: those parties
        in the given order, policy = ``inp.policy`` or ``EscalationPolicy()``.
        ``fallback`` is ``policy.fallback_user_id``'s target. ``caller_name`` is the
        caller device's display name (FAQ 1.6: the name residents authorized) or the
        user's name. Targets are not filtered here: ``precall_check`` skips them with
        a reason. Raises non-retryable ApplicationError ``UnknownUnit``,
        ``UnknownDevice``, ``UnknownUser``; ``InvalidInput`` unless exactly one of
        ``unit_id`` and ``callees`` is given.
        """
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await resolve_plan(conn, inp)

    async def precall_check(self, inp: PrecallInput) -> PrecallResult:
        """The reference's pre-call checks (``precall_checks``) in one read-only transaction.
        Not an activity: ``ring`` checks inside its own transaction."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await precall_checks(conn, inp)

    @activity.defn(name="remember_answer")
    async def remember_answer(self, inp: RememberAnswerInput) -> None:
        """Round-robin memory (FAQ 1.5): ``inp.party`` answered the unit's last call.
        Only users are remembered (a device answering is ignored), and nothing is
        written when the unit or the user was deleted meanwhile. Raises nothing."""
        if inp.party.kind is not PartyKind.USER:
            return
        async with self.pool.acquire() as conn:
            await store.remember_answer(
                conn, inp.unit_id, inp.party.id, tenant=inp.tenant_id, site=inp.site_id
            )

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.remember_answer]
