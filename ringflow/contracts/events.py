"""Call events: the reference's names, and the few ringflow adds for escalation.

The reference (troubleshooting guide sections 2-6) fixes which event each phase
and each party's action produces; ``docs/events.md`` is the table and
``workflows/call.py`` follows it. Every call ends with ``endVoip``, then
``finishVoip`` with the billed ``keepTime`` (FAQ 1.10).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from ringflow.contracts.common import Contract, Party
from ringflow.contracts.errors import ErrCode


class EventName(StrEnum):
    """Event names. The first block is the reference's, verbatim."""

    # reference (troubleshooting guide, FAQ 1.1 / 1.10)
    CALLING = "calling"  # talk phase running; carries keepTime
    JOINED_ROOM_BY_CALLER = "joinedRoomByCaller"
    JOIN_FAIL_CALLER = "joinFailCaller"
    JOIN_FAIL_LISTENER = "joinFailListener"
    CANCEL_VOIP = "cancelVoip"  # caller gave up (or forced hang-up before the listener joined)
    REJECT_VOIP = "rejectVoip"  # listener declined (or hung up/forced while waiting for the caller)
    BUSY = "busy"  # listener in another call
    TIMEOUT = "timeout"  # listener did not answer within the ring timeout
    HANG_UP_VOIP = "hangUpVoip"  # normal end of talk (either party, or forced)
    ABORT_VOIP = "abortVoip"  # a party vanished (network, crash, join timeout of the other side)
    END_VOIP = "endVoip"  # always the last event of a caller-listener call
    FINISH_VOIP = "finishVoip"  # after endVoip: billed keepTime

    # ringflow (escalation and delivery; not in the reference)
    RINGING = "ringing"  # the call reminder was pushed to the listener (reference section 1, last line)
    ANSWERED = "answered"  # the listener pressed answer (reference section 4) and joins the room
    TARGET_SKIPPED = "targetSkipped"  # a target was not rung: unauthorized, busy, do-not-disturb, quota
    ESCALATED = "escalated"  # the ring moves on to the next target / round / fallback
    CALL_STARTED = "callStarted"  # a building call was accepted
    CALL_ENDED = "callEnded"  # a building call is over (after its last attempt's finishVoip)
    CUSTOM_ACTION = "customAction"  # the listener in talk asked the device for an action (FAQ 1.2)
    CUSTOM_ACTION_RESULT = "customActionResult"  # the device acknowledged it, or the ack timed out
    MEDIA_INTERRUPTED = "mediaInterruptVoip"  # the bridge holding the room died; parties re-offered
    MEDIA_RESUMED = "mediaResumeVoip"  # both parties' media are back on another bridge (data: interruption_s)
    # issue 10 (re-planning, missed-call follow-up)
    PASS_VOIP = "passVoip"  # a rung listener passed: "skip me, move on now" (ends its room)
    PLAN_CHANGED = "planChanged"  # the targets not yet rung were re-resolved (directory/policy edit)
    CALL_BACK = "callBack"  # a rung resident calls the door back after a miss (data: the new call)


TERMINAL_EVENTS: frozenset[EventName] = frozenset(
    {
        EventName.JOIN_FAIL_CALLER,
        EventName.JOIN_FAIL_LISTENER,
        EventName.CANCEL_VOIP,
        EventName.REJECT_VOIP,
        EventName.BUSY,
        EventName.TIMEOUT,
        EventName.HANG_UP_VOIP,
        EventName.ABORT_VOIP,
        EventName.PASS_VOIP,
    }
)
"""Events that end a caller-listener call; ``endVoip`` follows each of them."""


class CallEvent(Contract):
    """One entry of a call's history.

    ``id`` is deterministic (made by the workflow: ``"<room or call id>#<seq>"``)
    so that a retried write is de-duplicated. ``at`` is workflow time (UTC).
    ``keep_time_s`` (the reference's keepTime, whole seconds) is set on
    ``calling``, ``hangUpVoip``, ``abortVoip``, ``endVoip`` and ``finishVoip``.
    """

    id: str
    call_id: str
    room_id: str | None = None
    seq: int = 0
    name: EventName
    at: datetime
    party: Party | None = None
    listener: Party | None = None
    err_code: ErrCode | None = None
    keep_time_s: int | None = Field(None, alias="keepTime")
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
