"""Push messages: what the WebSocket push channel delivers to devices and residents.

Written to the PostgreSQL outbox in the same transaction as the event that
caused them; delivered in ``seq`` order per recipient; a client acknowledges by
``id`` and gets every unacknowledged message again after a reconnect, so
clients de-duplicate by ``id``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from ringflow.contracts.common import Contract, Party


class PushType(StrEnum):
    """Kinds of push message."""

    INCOMING_CALL = "incoming_call"  # ring: caller name, room type, ring timeout (s)
    CALL_ANSWERED = "call_answered"  # to the caller: a listener answered
    CALL_CANCELLED = (
        "call_cancelled"  # to a rung listener: ringing stopped (cancel, timeout, another answered)
    )
    CALL_ENDED = "call_ended"  # to both parties: endVoip, with end reason and keepTime
    CALL_EVENT = "call_event"  # any other call event a party may want to show
    TALK_STARTED = "talk_started"  # to both parties: `calling`, keepTime runs from `at`
    CALL_FINISHED = "call_finished"  # to the caller: the building call is over (callEnded)
    CUSTOM_ACTION = "custom_action"  # to the caller device: perform an in-call action (open door)
    CUSTOM_ACTION_RESULT = "custom_action_result"  # to the listener: the action's outcome
    PRESENCE = "presence"  # to a person: their presence changed (away/available; no call: call_id "")
    MEDIA_REOFFER = "media_reoffer"  # to both parties: the bridge died, offer again (issue 13)
    MISSED_CALL = "missed_call"  # to each rung resident: nobody answered (snapshot link, follow-up)


class PushMessage(Contract):
    """One message to one recipient. ``id`` is made by the workflow (deterministic) so
    that a retried outbox write does not duplicate it."""

    id: str
    recipient: Party
    type: PushType
    call_id: str
    room_id: str | None = None
    at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)
