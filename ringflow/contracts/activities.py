"""Inputs and results of the activities that the call workflows run (``activities/``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from ringflow.contracts.calls import Attempt, Phase
from ringflow.contracts.common import Contract, Party, RoomType
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.events import CallEvent
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.push import PushMessage
from ringflow.contracts.tenancy import DEFAULT_SITE, DEFAULT_TENANT


class ResolveInput(Contract):
    """``resolve_targets``: who to ring for a building call, in tenant ``tenant_id``; the unit
    ``unit_id`` is that of site ``site_id`` (None: the caller device's site, else the default
    site; issue 9)."""

    caller: Party
    unit_id: str | None = None
    callees: list[Party] | None = None
    policy: EscalationPolicy | None = None
    tenant_id: str = DEFAULT_TENANT
    site_id: str | None = None


class Target(Contract):
    """One party to ring, with the display name used in pushes and history."""

    party: Party
    name: str
    auto_answer: bool = False  # a device listener that answers by itself (phone-calls-device)


class ResolvedPlan(Contract):
    """``resolve_targets`` result: the ordered targets (unit order, or the
    round-robin rotation already applied), the effective policy, the fallback.
    Raises ApplicationError ``UnknownUnit``/``UnknownDevice`` (non-retryable)."""

    caller_name: str
    unit_name: str | None = None
    policy: EscalationPolicy
    targets: list[Target]
    fallback: Target | None = None
    caller_actions: list[str] = Field(default_factory=list)  # the caller device's in-call actions
    site_id: str | None = None  # the site of the unit called (None: explicit callees)

    def callees(self) -> list[Party]:
        """Every party the plan may ring: the targets, then the fallback."""
        return [t.party for t in self.targets] + ([self.fallback.party] if self.fallback else [])


class PrecallInput(Contract):
    """``precall_check``: the reference's pre-call checks (section 1) for one caller-listener pair
    of tenant ``tenant_id``, at instant ``at`` (None: the activity's clock). The availability
    rules (issue 10) apply the unit ``unit_id`` of site ``site_id`` (else the unit of call
    ``call_id``'s row; neither: no unit)."""

    caller: Party
    listener: Party
    tenant_id: str = DEFAULT_TENANT
    at: datetime | None = None
    call_id: str | None = None
    unit_id: str | None = None
    site_id: str | None = None


class PrecallResult(Contract):
    """``ok`` or the first failing check's errCode: 13 VoIP token, 9 authorization,
    1001 quota, 1017 away, 1003 do-not-disturb; ``reason`` is a sentence for the history."""

    ok: bool
    err_code: ErrCode = ErrCode.OK
    reason: str | None = None


class LineInput(Contract):
    """``claim_line`` / ``release_line``: a party's line, held by one room at a time."""

    party: Party
    call_id: str
    room_id: str


class LineClaim(Contract):
    """``claim_line`` result: ``claimed`` (also when this room already held it),
    else ``held_by`` is the room that holds the line."""

    claimed: bool
    held_by: str | None = None


class CallRecord(Contract):
    """The building call's row, upserted by ``record``; None fields are left unchanged."""

    call_id: str
    caller: Party | None = None
    caller_name: str | None = None
    unit_id: str | None = None
    room_type: RoomType | None = None
    strategy: RingStrategy | None = None
    phase: Phase | None = None
    started_at: datetime | None = None
    talk_started_at: datetime | None = None
    ended_at: datetime | None = None
    answered_by: Party | None = None
    end_reason: str | None = None
    err_code: ErrCode | None = None
    keep_time_s: int | None = None
    callees: list[Party] | None = None
    site_id: str | None = None  # the site of the unit called (issue 9)
    follow_up_until: datetime | None = None  # a missed call's follow-up window closes (issue 10)


class Billing(Contract):
    """A finished caller-listener call's billed talk time (reference section 6: talk only)."""

    room_id: str
    call_id: str
    caller: Party
    listener: Party
    keep_time_s: int


class RecordInput(Contract):
    """``record``: one state change, written in ONE transaction: the call row,
    attempt rows, events (idempotent by id), push messages into the outbox
    (idempotent by id, NOTIFY after commit), billing (idempotent by room) and the
    release of the listener's line held by ``release.room_id`` (a room's finish)."""

    call: CallRecord | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    events: list[CallEvent] = Field(default_factory=list)
    pushes: list[PushMessage] = Field(default_factory=list)
    billing: Billing | None = None
    release: LineInput | None = None


class RingInput(Contract):
    """``ring``: one room's set-up in ONE transaction: ``before`` (the building call's own
    events that lead to this ring, e.g. ``escalated``: written whatever the ring's outcome),
    the pre-call checks of ``caller`` -> ``listener`` (as ``precall_check``), the claim of
    the listener's line for ``room_id`` (as ``claim_line``), then, only when both pass,
    ``record`` (the ringing events, the INCOMING_CALL push, the attempt row). ``at``: the ring's
    instant (the workflow's ``workflow.now()``), at which the availability rules are evaluated
    (issue 10: replay and ``ringflow simulate`` agree); None in histories from before it: the
    activity's clock."""

    caller: Party
    listener: Party
    call_id: str
    room_id: str
    record: RecordInput = Field(default_factory=RecordInput)
    before: RecordInput = Field(default_factory=RecordInput)
    at: datetime | None = None


class RingStatus(StrEnum):
    """What ``ring`` did."""

    RANG = "rang"  # checks passed, line claimed, ``record`` written
    SKIPPED = "skipped"  # a pre-call check failed (``err_code``, ``reason``); nothing written
    BUSY = "busy"  # the listener's line is held by room ``held_by``; nothing written


class RingResult(Contract):
    """``ring`` result; nothing was claimed or written unless ``status`` is ``rang``."""

    status: RingStatus = RingStatus.RANG
    err_code: ErrCode = ErrCode.OK
    reason: str | None = None
    held_by: str | None = None


class StartCallInput(Contract):
    """``start_call``: a building call's start in ONE transaction: ``record`` of ``started``
    (the call row, ``callStarted``), ``resolve_targets`` of ``resolve``, then, when the plan
    has someone to ring, the call row's plan (caller name, strategy, phase wait, callees)."""

    call_id: str
    resolve: ResolveInput
    started: RecordInput = Field(default_factory=RecordInput)


class StartCallResult(Contract):
    """``start_call`` result: the ``plan``, or (``plan`` None) the non-retryable
    ``resolve_targets`` failure's ``error_type`` (``UnknownUnit``, ...) and ``error_message``;
    ``started`` is written either way."""

    plan: ResolvedPlan | None = None
    error_type: str | None = None
    error_message: str | None = None


class RememberAnswerInput(Contract):
    """``remember_answer``: round-robin memory, ``user`` answered the last call to ``unit_id``
    (of site ``site_id`` of tenant ``tenant_id``)."""

    unit_id: str
    party: Party
    tenant_id: str = DEFAULT_TENANT
    site_id: str = DEFAULT_SITE
