"""Calls: REST requests and views, workflow inputs/results, workflow messages.

One workflow per building call (docs/design.md): ``BuildingCallWorkflow`` (id = ``call_id`` =
the request's Idempotency-Key), each attempt a room inside it (``room_id`` =
``"<call_id>.<attempt>"``). Message names: ``ringflow.contracts.messages``. ``CallInput``,
``CallResult`` and ``AttemptUpdate`` belong to the legacy pair (``workflows.legacy``) and stay
only so that its running calls finish. Durations are seconds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, model_validator

from ringflow.contracts.common import ActionName, Contract, Identifier, Party, RoomType
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.tenancy import DEFAULT_TENANT


class Phase(StrEnum):
    """Phases of a call (troubleshooting guide sections 1-6), then ``ended``.

    For a building call, ``wait`` means: ringing someone.
    """

    INITIATE = "initiate"
    JOIN = "join"
    WAIT = "wait"
    TALK = "talk"
    FINISH = "finish"
    ENDED = "ended"


class AttemptOutcome(StrEnum):
    """How one target's attempt ended."""

    ANSWERED = "answered"  # talked (the attempt then ends with hangUpVoip/abortVoip)
    NO_ANSWER = "no_answer"  # timeout
    REJECTED = "rejected"  # rejectVoip
    BUSY = "busy"
    SKIPPED = "skipped"  # failed a pre-call check (errCode 9, 13, 1001, 1003)
    CANCELLED = "cancelled"  # the building call was cancelled / answered elsewhere / forced
    FAILED = "failed"  # joinFail*/abortVoip before talk
    PASSED = "passed"  # passVoip: the listener said "skip me, move on now" (issue 10)


# ---------------------------------------------------------------- REST


class CallCreate(Contract):
    """``POST /v1/calls`` body: ring ``unit_id``'s residents, or ``callees``, from ``caller``.
    ``site_id``: the site of ``unit_id`` (unit numbers are unique per site); by default the
    calling device's site, else the tenant's default site.

    Exactly one of ``unit_id`` and ``callees``. ``policy`` overrides the unit's
    policy (or is the policy for explicit callees). ``time_limit_s`` is the
    reference's timeLimit (maximum talk duration; FAQ 1.1).
    """

    caller: Party
    unit_id: Identifier | None = None
    site_id: Identifier | None = None
    callees: list[Party] | None = Field(None, min_length=1, max_length=50)
    room_type: RoomType = RoomType.VIDEO
    policy: EscalationPolicy | None = None
    time_limit_s: float | None = Field(None, gt=0, le=86400)

    @model_validator(mode="after")
    def _one_target(self) -> CallCreate:
        if (self.unit_id is None) == (self.callees is None):
            raise ValueError("give exactly one of unit_id and callees")
        return self


class Attempt(Contract):
    """One target's attempt (one caller-listener call, one room)."""

    room_id: str
    seq: int
    round: int = 1
    listener: Party
    listener_name: str | None = None
    fallback: bool = False
    phase: Phase = Phase.INITIATE
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    end_reason: EventName | None = None
    err_code: ErrCode | None = None
    reason: str | None = None
    keep_time_s: int | None = None


class CallView(Contract):
    """``GET /v1/calls/{call_id}``: a building call, its attempts and its events."""

    call_id: str
    caller: Party
    caller_name: str | None = None
    unit_id: str | None = None
    room_type: RoomType
    strategy: RingStrategy
    phase: Phase
    started_at: datetime
    talk_started_at: datetime | None = None
    ended_at: datetime | None = None
    answered_by: Party | None = None
    end_reason: str | None = None
    err_code: ErrCode | None = None
    keep_time_s: int | None = None
    follow_up_until: datetime | None = None  # a missed call's follow-up window closes then (issue 10)
    has_snapshot: bool = False  # the visitor's snapshot is stored with the call (issue 10)
    attempts: list[Attempt] = Field(default_factory=list)
    events: list[CallEvent] = Field(default_factory=list)
    temporal_ui_url: str | None = None


# ---------------------------------------------------------------- workflows


class EscalationInput(Contract):
    """Input of ``BuildingCallWorkflow`` (and the legacy ``EscalationWorkflow``). Defaults
    (seconds) come from settings at the API."""

    call_id: str
    caller: Party
    unit_id: str | None = None
    callees: list[Party] | None = None
    room_type: RoomType = RoomType.VIDEO
    policy: EscalationPolicy | None = None
    time_limit_s: float = 3600.0
    default_ring_timeout_s: float = 60.0
    join_timeout_s: float = 30.0
    media_required: bool = False  # True once the media bridge drives join (issue 3)
    action_ack_timeout_s: float = 5.0  # in-call actions wait this long for the device's ack
    # issue 9: the call's tenant (``call_id`` is the workflow id, tenant-qualified by
    # ``tenancy.qualify``) and the site of ``unit_id`` (None: the caller device's site)
    tenant_id: str = DEFAULT_TENANT
    site_id: str | None = None


class EscalationResult(Contract):
    """Result of ``BuildingCallWorkflow`` (and the legacy ``EscalationWorkflow``)."""

    call_id: str
    answered_by: Party | None = None
    end_reason: str
    err_code: ErrCode | None = None
    keep_time_s: int = 0
    attempts: list[Attempt] = Field(default_factory=list)


class CallInput(Contract):
    """Input of ``CallWorkflow``: one caller-listener call in room ``room_id``."""

    call_id: str
    room_id: str
    seq: int
    round: int = 1
    fallback: bool = False
    caller: Party
    caller_name: str
    listener: Party
    listener_name: str
    room_type: RoomType = RoomType.VIDEO
    ring_timeout_s: float = 60.0
    join_timeout_s: float = 30.0
    time_limit_s: float = 3600.0
    media_required: bool = False
    parent_workflow_id: str | None = None  # gets AttemptUpdate signals
    caller_joined: bool = False  # the caller's media already joined the building call's room
    listener_auto_answer: bool = False  # the listener device answers by itself (phone-calls-device)
    record_media: bool = False  # unit policy record_media: the bridge records the talk


class CallResult(Contract):
    """Result of ``CallWorkflow``."""

    room_id: str
    outcome: AttemptOutcome
    end_reason: EventName | None = None
    err_code: ErrCode | None = None
    reason: str | None = None
    keep_time_s: int = 0
    talk_started_at: datetime | None = None
    ended_at: datetime | None = None


class AttemptUpdate(Contract):
    """Signal from a CallWorkflow to its EscalationWorkflow: the attempt's new phase."""

    room_id: str
    phase: Phase
    at: datetime
    outcome: AttemptOutcome | None = None
    end_reason: EventName | None = None


# ---------------------------------------------------------------- messages (updates)


class AnswerInput(Contract):
    """Update ``answer``: ``party`` (a rung listener) answers. Errors:
    ``AnsweredByAnother`` (errCode 1005), ``CallNotActive`` (1006), ``NotAParty`` (1007)."""

    party: Party


class RejectInput(Contract):
    """Update ``reject``: a rung listener declines (``rejectVoip``)."""

    party: Party


class HangUpInput(Contract):
    """Update ``hang_up``: a party hangs up. The caller before talk = cancel
    (``cancelVoip``); the listener before talk = reject (``rejectVoip``); either
    in talk = ``hangUpVoip`` (troubleshooting guide 3, 5, 6)."""

    party: Party


class ForceHangUpInput(Contract):
    """Update ``force_hang_up``: the backend ends the call (reference ``forceHangUpVoip``):
    ``cancelVoip`` before the listener joined, ``rejectVoip`` while the listener
    waits for the caller, ``hangUpVoip`` in talk."""

    reason: str = Field("forced by backend", max_length=200)


class PassInput(Contract):
    """Update ``pass``: a rung listener says "skip me, move on now" (issue 10 item 3): its
    room ends with ``passVoip`` and the plan moves on at once; the listener is not rung
    again in this call (later rounds leave them out). Errors: ``CallNotActive`` (1006, not
    ringing you), ``NotAParty`` (1007)."""

    party: Party


class PlanChangedInput(Contract):
    """Signal ``plan_changed`` (issue 10 item 3): the directory or a policy changed under a
    ringing call (``what``: a short sentence for the ``planChanged`` event, e.g. ``"unit 101
    updated"``). The call re-resolves its targets not yet rung at its next recorded point."""

    what: str = Field("directory changed", max_length=200)


class FollowUpInput(Contract):
    """Updates ``call_back`` / ``open_door`` (issue 10 item 4): ``party``, a resident rung by
    this missed call, acts inside the call's follow-up window. Errors: ``NotAParty`` (1007, not
    rung by this call), ``FollowUpClosed`` (1006, no window or it closed),
    ``FollowUpNotAllowed`` (1016, ``open_door`` when the policy's ``remote_open_after_miss`` is
    off), ``UnknownAction`` (1014, the door does not offer ``open_door``)."""

    party: Party


class CallBackResult(Contract):
    """Answer of ``call_back``: the id of the new call (``party`` -> the door device
    ``door``) that the API starts; ``door`` answers by itself where its directory entry says
    ``auto_answer`` (reference phone-calls-device)."""

    call_id: str
    new_call_id: str
    door: Party


STORE_SNAPSHOT = "store_snapshot"
"""Activity: fetch the visitor snapshot of a missed call from the media bridge and store it
with the call (``activities/snapshots.py``; input the call id, result: stored or not)."""


class JoinInput(Contract):
    """Signals ``joined`` / ``join_failed`` / ``media_lost`` from the media bridge: ``party``'s
    media joined the building call's media room ``room_id`` (= ``call_id``, docs/media.md),
    could not join, or vanished. The building call routes them by party."""

    room_id: str
    party: Party
    error: str | None = None


class ActionResult(Contract):
    """Answer of every update: the call's phase after the action, the room it concerns."""

    call_id: str
    room_id: str | None = None
    phase: Phase
    event: EventName | None = None


class CallStatus(Contract):
    """Query ``status`` of a building call: the live call."""

    call_id: str
    phase: Phase
    strategy: RingStrategy
    ringing: list[Party] = Field(default_factory=list)
    answered_by: Party | None = None
    talk_room_id: str | None = None
    talk_started_at: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    follow_up_until: datetime | None = None  # a missed call's open follow-up window (issue 10)


# ---------------------------------------------------------------- in-call actions


class CustomActionOutcome(StrEnum):
    """How an in-call action ended: the device acknowledged ``ok`` (done) or not (failed),
    or no acknowledgement came within ``action_ack_timeout_s`` (timeout)."""

    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"


class CustomActionRequest(Contract):
    """``POST /v1/calls/{call_id}/actions`` body: the listener in talk asks the calling
    device for ``action`` (reference FAQ 1.2, ``setCustomBtnText``: "open door")."""

    action: ActionName


class CustomActionAckRequest(Contract):
    """``POST /v1/calls/{call_id}/actions/{action_id}/ack`` body: the device did it (``ok``)
    or could not (``detail`` says why, at most 200 chars)."""

    ok: bool = True
    detail: str | None = Field(None, max_length=200)


class CustomActionInput(Contract):
    """Update ``custom_action``: ``party`` (the listener in talk) asks for ``action``. Errors:
    ``NotAParty`` (1007), ``CallNotActive`` (1006, not in talk), ``UnknownAction`` (1014)."""

    party: Party
    action: ActionName


class CustomActionAck(Contract):
    """Update ``custom_action_ack``: the caller device acknowledges ``action_id``. Errors:
    ``NotAParty`` (1007), ``UnknownActionId`` (1008), ``ActionSettled`` (1015)."""

    party: Party
    action_id: str
    ok: bool = True
    detail: str | None = Field(None, max_length=200)


class CustomActionResult(Contract):
    """An in-call action and, once settled, its outcome (``result`` None = waiting for the ack).
    Times are workflow time (UTC)."""

    call_id: str
    action_id: str
    action: str
    room_id: str
    by: Party
    result: CustomActionOutcome | None = None
    detail: str | None = None
    requested_at: datetime
    settled_at: datetime | None = None
