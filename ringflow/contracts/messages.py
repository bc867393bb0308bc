"""Every name that crosses the API/workflow boundary, defined once: workflow types, updates,
signals, queries and the typed rejections of update validators.

The API starts :attr:`WorkflowType.BUILDING_CALL` and sends it updates and signals by these
names; the media bridge signals it; the workflows register their handlers under them. The
legacy types (a parent ``EscalationWorkflow`` and one child ``CallWorkflow`` per attempt) are
still registered on the worker so that calls they started finish after an upgrade; they
accept the same updates, signals and query under the same names.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.exceptions import ApplicationError

from ringflow.contracts.errors import ErrCode


class WorkflowType(StrEnum):
    """Temporal workflow type names."""

    BUILDING_CALL = "BuildingCallWorkflow"
    """One building call (workflow id = ``call_id``), every attempt a room inside it."""
    LEGACY_ESCALATION = "EscalationWorkflow"
    """Before issue 8: the building call as a parent workflow (same id, same messages)."""
    LEGACY_CALL = "CallWorkflow"
    """Before issue 8: one child workflow per attempt (id = ``room_id``)."""


class Update(StrEnum):
    """Updates of a building call (inputs and results in ``ringflow.contracts.calls``)."""

    ANSWER = "answer"  # AnswerInput -> ActionResult
    REJECT = "reject"  # RejectInput -> ActionResult
    HANG_UP = "hang_up"  # HangUpInput -> ActionResult
    FORCE_HANG_UP = "force_hang_up"  # ForceHangUpInput -> ActionResult
    CUSTOM_ACTION = "custom_action"  # CustomActionInput -> CustomActionResult
    CUSTOM_ACTION_ACK = "custom_action_ack"  # CustomActionAck -> CustomActionResult
    PASS = "pass"  # PassInput -> ActionResult (issue 10 item 3: "skip me, move on now")
    CALL_BACK = "call_back"  # FollowUpInput -> CallBackResult (issue 10 item 4, follow-up window)
    OPEN_DOOR = "open_door"  # FollowUpInput -> CustomActionResult (issue 10 item 4, follow-up window)


class Signal(StrEnum):
    """Signals of a building call: media facts from the bridge (``JoinInput``, docs/media.md),
    and ``plan_changed`` (``PlanChangedInput``) from the API when the directory or a policy
    changed under a ringing call (issue 10 item 3, ``api/replan.py``)."""

    JOINED = "joined"
    JOIN_FAILED = "join_failed"
    MEDIA_LOST = "media_lost"
    MEDIA_BRIDGE_LOST = "media_bridge_lost"  # the bridge process/node holding the room died (issue 13)
    PLAN_CHANGED = "plan_changed"


class Query(StrEnum):
    """Queries of a building call."""

    STATUS = "status"  # -> CallStatus


class Rejection(StrEnum):
    """``ApplicationError.type`` of an update the call refuses (validator or handler); the
    API maps each to a problem (``api/routers/calls.py``), :data:`REJECTION_ERR_CODES` to its
    errCode (``docs/errcodes.md``)."""

    NOT_A_PARTY = "NotAParty"
    ANSWERED_BY_ANOTHER = "AnsweredByAnother"
    CALL_NOT_ACTIVE = "CallNotActive"
    UNKNOWN_ACTION = "UnknownAction"
    UNKNOWN_ACTION_ID = "UnknownActionId"
    ACTION_SETTLED = "ActionSettled"
    FOLLOW_UP_CLOSED = "FollowUpClosed"
    """``call_back``/``open_door`` outside the missed call's follow-up window (issue 10)."""
    FOLLOW_UP_NOT_ALLOWED = "FollowUpNotAllowed"
    """``open_door`` after a miss when the policy's ``remote_open_after_miss`` is off."""


REJECTION_ERR_CODES: dict[Rejection, ErrCode] = {
    Rejection.NOT_A_PARTY: ErrCode.NOT_A_PARTY,
    Rejection.ANSWERED_BY_ANOTHER: ErrCode.ANSWERED_BY_ANOTHER,
    Rejection.CALL_NOT_ACTIVE: ErrCode.CALL_NOT_ACTIVE,
    Rejection.UNKNOWN_ACTION: ErrCode.UNKNOWN_ACTION,
    Rejection.UNKNOWN_ACTION_ID: ErrCode.UNKNOWN_RESOURCE,
    Rejection.ACTION_SETTLED: ErrCode.ACTION_SETTLED,
    Rejection.FOLLOW_UP_CLOSED: ErrCode.CALL_NOT_ACTIVE,
    Rejection.FOLLOW_UP_NOT_ALLOWED: ErrCode.FORBIDDEN,
}
"""errCode of each rejection (reference codes where one applies, else ringflow's)."""


def rejection(kind: Rejection, message: str) -> ApplicationError:
    """A deliberate, non-retryable update rejection of type ``kind``; ``details[0]`` is
    ``{"err_code": n}`` (:data:`REJECTION_ERR_CODES`)."""
    err_code = int(REJECTION_ERR_CODES[kind])
    return ApplicationError(message, {"err_code": err_code}, type=kind.value, non_retryable=True)
