"""Call activities: line claims (busy), the one-transaction ``record`` of a state change
(call row, attempts, events, push outbox, billing), and ``ring`` (pre-call checks + line
claim + ``record`` of the ringing, one transaction). SQL lives in ``store/calls.py`` and
``store/outbox.py``.

Every method is idempotent (safe to retry): writes are keyed by ids the workflow made.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.directory import precall_checks, resolve_plan
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
from ringflow.contracts.tenancy import tenant_of
from store import calls


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
        tenant = tenant_of(inp.call_id)  # the call id carries its tenant (tenancy.qualify)
        async with self.pool.acquire() as conn, conn.transaction():
            await calls.record(conn, inp.before)
            if await calls.line_holder(conn, inp.listener, tenant) != inp.room_id:
                check = await precall_checks(
                    conn,
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
                holder = await calls.claim_line(conn, inp.listener, inp.call_id, inp.room_id)
                if holder != inp.room_id:
                    return RingResult(status=RingStatus.BUSY, held_by=holder)
            await calls.record(conn, inp.record)
        return RingResult(status=RingStatus.RANG)

    @activity.defn(name="start_call")
    async def start_call(self, inp: StartCallInput) -> StartCallResult:
        """Start a building call in ONE transaction: ``inp.started`` (``store.calls.record``:
        the call row, ``callStarted``), the plan (``resolve_plan``, as ``resolve_targets``),
        then, when the plan has someone to ring, the call row's plan with phase wait.
        A non-retryable ``resolve_targets`` failure is returned (``started`` still written).
        Idempotent (every write is)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            await calls.record(conn, inp.started)
            try:
                plan = await resolve_plan(conn, inp.resolve)
            except ApplicationError as err:
                if not err.non_retryable:
                    raise
                return StartCallResult(error_type=err.type, error_message=err.message)
            callees = plan.callees()
            if callees:
                await calls.record(
                    conn,
                    RecordInput(
                        call=CallRecord(
                            call_id=inp.call_id,
                            caller_name=plan.caller_name,
                            strategy=plan.policy.strategy,
                            phase=Phase.WAIT,
                            callees=callees,
                            site_id=plan.site_id,
                        )
                    ),
                )
        return StartCallResult(plan=plan)

    @activity.defn(name="replan")
    async def replan(self, inp: ResolveInput) -> StartCallResult:
        """Re-resolve a ringing call's targets (issue 10 item 3: the directory or a policy
        changed; ``resolve_plan`` in one read-only transaction). A non-retryable failure (the
        unit, the caller deleted meanwhile) is returned as ``error_type``/``error_message``
        with ``plan`` None; nothing is written."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            try:
                return StartCallResult(plan=await resolve_plan(conn, inp))
            except ApplicationError as err:
                if not err.non_retryable:
                    raise
                return StartCallResult(error_type=err.type, error_message=err.message)

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.release_line, self.record, self.replan, self.ring, self.start_call]
