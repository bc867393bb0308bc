"""Inputs and results of the activities that the call workflows run (``activities/``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ringflow.contracts.calls import Attempt, Phase
from ringflow.contracts.common import Contract, Party, RoomType
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.events import CallEvent
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.push import PushMessage


class ResolveInput(Contract):
    """``resolve_targets``: who to ring for a building call."""

    caller: Party
    unit_id: str | None = None
    callees: list[Party] | None = None
    policy: EscalationPolicy | None = None


class Target(Contract):
    """One party to ring, with the display name used in pushes and history."""

    party: Party
    name: str


class ResolvedPlan(Contract):
    """``resolve_targets`` result: the ordered targets (unit order, or the
    round-robin rotation already applied), the effective policy, the fallback.
    Raises ApplicationError ``UnknownUnit``/``UnknownDevice`` (non-retryable)."""

    caller_name: str
    unit_name: str | None = None
    policy: EscalationPolicy
    targets: list[Target]
    fallback: Target | None = None


class PrecallInput(Contract):
    """``precall_check``: the reference's pre-call checks (section 1) for one caller-listener pair."""

    caller: Party
    listener: Party


class PrecallResult(Contract):
    """``ok`` or the first failing check's errCode: 13 VoIP token, 9 authorization,
    1001 quota, 1003 do-not-disturb; ``reason`` is a sentence for the history."""

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
    (idempotent by id, NOTIFY after commit) and billing (idempotent by room)."""

    call: CallRecord | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    events: list[CallEvent] = Field(default_factory=list)
    pushes: list[PushMessage] = Field(default_factory=list)
    billing: Billing | None = None


class RememberAnswerInput(Contract):
    """``remember_answer``: round-robin memory, ``user`` answered the last call to ``unit_id``."""

    unit_id: str
    party: Party
