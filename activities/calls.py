"""Call activities: line claims (busy), the one-transaction ``record`` of a state change
(call row, attempts, events, push outbox, billing), and ``ring`` (pre-call checks + line
claim + ``record`` of the ringing, one transaction). SQL lives in ``store/calls.py`` and
``store/outbox.py``.

The control flow of ``ring``, ``start_call`` and ``replan`` is :func:`ring_with`,
:func:`start_call_with` and :func:`replan_with` over a :class:`CallStore` (one transaction's
writes and reads): :class:`PgCallStore` here, the in-memory one of ``ringflow simulate``
(``ringflow/simulation/memory.py``), so the simulator's ring is this ring.

Every method is idempotent (safe to retry): writes are keyed by ids the workflow made.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.directory import DirectoryReader, PgDirectory, precall_with, resolve_with
from ringflow.contracts.activities import (
    CallRecord,
    LineClaim,
    LineInput,
    PrecallInput,
    RecordInput,
    ResolveInput,
    RingInput,
    RingResult,
    RingStatus,
    StartCallInput,
    StartCallResult,
)
from ringflow.contracts.calls import Phase
from ringflow.contracts.common import Party
from ringflow.contracts.tenancy import tenant_of
from store import calls
from store.directory import Conn


class CallStore(Protocol):
    """One transaction's view for the call activities' control flow: its writes (``record``,
    the line claims) and its directory reads (``directory``)."""

    @property
    def directory(self) -> DirectoryReader:
        """The directory as this transaction reads it."""
        ...

    async def record(self, inp: RecordInput) -> None:
        """Write one state change (``store.calls.record``; idempotent by the ids in ``inp``)."""
        ...

    async def line_holder(self, party: Party, tenant: str) -> str | None:
        """The room that holds ``party``'s line in ``tenant``, or None."""
        ...

    async def claim_line(self, party: Party, call_id: str, room_id: str) -> str:
        """Claim ``party``'s line for ``room_id`` atomically; the room holding it afterwards."""
        ...


class PgCallStore:
    """:class:`CallStore` over one asyncpg connection inside a transaction."""

    __slots__ = ("conn", "directory")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.directory: DirectoryReader = PgDirectory(conn)

    async def record(self, inp: RecordInput) -> None:
        await calls.record(self.conn, inp)

    async def line_holder(self, party: Party, tenant: str) -> str | None:
        return await calls.line_holder(self.conn, party, tenant)

    async def claim_line(self, party: Party, call_id: str, room_id: str) -> str:
        return await calls.claim_line(self.conn, party, call_id, room_id)


async def ring_with(tx: CallStore, inp: RingInput) -> RingResult:
    """``ring``'s steps in ``tx`` (see :meth:`CallActivities.ring`): ``inp.before``, then, unless
    this room already holds the listener's line (a retry), the pre-call checks
    (:func:`~activities.directory.precall_with` at ``inp.at``) and the line claim, then
    ``inp.record``. ``skipped``/``busy``: nothing of the room is written."""
    tenant = tenant_of(inp.call_id)  # the call id carries its tenant (tenancy.qualify)
    await tx.record(inp.before)
    if await tx.line_holder(inp.listener, tenant) != inp.room_id:
        check = await precall_with(
            tx.directory,
            PrecallInput(
                caller=inp.caller,
                listener=inp.listener,
                tenant_id=tenant,
                at=inp.at,
                call_id=inp.call_id,
            ),
        )
        if not check.ok:
            return RingResult(status=RingStatus.SKIPPED, err_code=check.err_code, reason=check.reason)
        holder = await tx.claim_line(inp.listener, inp.call_id, inp.room_id)
        if holder != inp.room_id:
            return RingResult(status=RingStatus.BUSY, held_by=holder)
    await tx.record(inp.record)
    return RingResult(status=RingStatus.RANG)


async def start_call_with(tx: CallStore, inp: StartCallInput) -> StartCallResult:
    """``start_call``'s steps in ``tx`` (see :meth:`CallActivities.start_call`): ``inp.started``,
    the plan (:func:`~activities.directory.resolve_with`), the call row's plan with phase wait
    when someone may be rung. A non-retryable resolution failure is returned."""
    await tx.record(inp.started)
    try:
        plan = await resolve_with(tx.directory, inp.resolve)
    except ApplicationError as err:
        if not err.non_retryable:
            raise
        return StartCallResult(error_type=err.type, error_message=err.message)
    callees = plan.callees()
    if callees:
        await tx.record(
            RecordInput(
                call=CallRecord(
                    call_id=inp.call_id,
                    caller_name=plan.caller_name,
                    strategy=plan.policy.strategy,
                    phase=Phase.WAIT,
                    callees=callees,
                    site_id=plan.site_id,
                )
            )
        )
    return StartCallResult(plan=plan)


async def replan_with(reader: DirectoryReader, inp: ResolveInput) -> StartCallResult:
    """``replan``'s step (see :meth:`CallActivities.replan`): the targets re-resolved through
    ``reader``; a non-retryable failure is returned, nothing is written."""
    try:
        return StartCallResult(plan=await resolve_with(reader, inp))
    except ApplicationError as err:
        if not err.non_retryable:
            raise
        return StartCallResult(error_type=err.type, error_message=err.message)


class CallActivities:
    """The call workflows' write activities over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim_line(self, inp: LineInput) -> LineClaim:
        """Not an activity (``ring`` claims inside its transaction): claim ``inp.party``'s
        line for ``inp.room_id`` atomically: the busy check
        (reference section 4: a listener in another call is busy). Returns
        ``claimed=True`` also when this room already holds the line (retry), else
        ``held_by`` = the room that holds it."""
        holder = await calls.claim_line(self.pool, inp.party, inp.call_id, inp.room_id)
        if holder == inp.room_id:
            return LineClaim(claimed=True)
        return LineClaim(claimed=False, held_by=holder)

    @activity.defn(name="release_line")
    async def release_line(self, inp: LineInput) -> None:
        """Release ``inp.party``'s line if ``inp.room_id`` holds it (another room's claim stays)."""
        await calls.release_line(self.pool, inp.party, inp.room_id)

    @activity.defn(name="record")
    async def record(self, inp: RecordInput) -> None:
        """Write one state change in one transaction (see ``RecordInput`` and ``store.calls.record``)."""
        async with self.pool.acquire() as conn:
            await calls.record(conn, inp)

    @activity.defn(name="ring")
    async def ring(self, inp: RingInput) -> RingResult:
        """Set up one room in ONE transaction: ``inp.before`` (written whatever follows), the
        pre-call checks (``precall_checks``, at the ring's instant ``inp.at``: the availability
        rules of the call's unit), the
        atomic claim of the listener's line (``store.calls.claim_line``), then ``inp.record``
        (``store.calls.record``: the ringing events, the push, the attempt row; NOTIFY at
        commit). A failed check returns ``skipped`` and a line held by another room
        ``busy``; then nothing is claimed or written. Idempotent: when this room already
        holds the line (a retry after the commit), the checks are not run again and the
        idempotent ``record`` is rewritten."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await ring_with(PgCallStore(conn), inp)

    @activity.defn(name="start_call")
    async def start_call(self, inp: StartCallInput) -> StartCallResult:
        """Start a building call in ONE transaction: ``inp.started`` (``store.calls.record``:
        the call row, ``callStarted``), the plan (``resolve_plan``, as ``resolve_targets``),
        then, when the plan has someone to ring, the call row's plan with phase wait.
        A non-retryable ``resolve_targets`` failure is returned (``started`` still written).
        Idempotent (every write is)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await start_call_with(PgCallStore(conn), inp)

    @activity.defn(name="replan")
    async def replan(self, inp: ResolveInput) -> StartCallResult:
        """Re-resolve a ringing call's targets (issue 10 item 3: the directory or a policy
        changed; ``resolve_plan`` in one read-only transaction). A non-retryable failure (the
        unit, the caller deleted meanwhile) is returned as ``error_type``/``error_message``
        with ``plan`` None; nothing is written."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await replan_with(PgDirectory(conn), inp)

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.release_line, self.record, self.replan, self.ring, self.start_call]
