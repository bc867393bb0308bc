"""Workflow-side helpers of the call workflows: deterministic event/push builders, activity
options, and the one ``record`` per state change (a local activity in ``BuildingCallWorkflow``,
a regular one in the legacy workflows, whose histories must keep replaying).

Deterministic: time from ``workflow.now()``, ids from counters (``"<room or call id>#<seq>"``
for events, ``"<event id>:<recipient key>"`` for pushes), so a retried ``record``
activity de-duplicates by id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.calls import CallActivities
    from ringflow.contracts.activities import RecordInput
    from ringflow.contracts.common import Party
    from ringflow.contracts.errors import ErrCode
    from ringflow.contracts.events import CallEvent, EventName
    from ringflow.contracts.push import PushMessage, PushType

ACTIVITY_TIMEOUT = timedelta(seconds=10)
"""start_to_close of the short directory/line activities."""
RECORD_TIMEOUT = timedelta(seconds=10)
"""start_to_close of ``record`` (one PostgreSQL transaction, milliseconds). Also how long a
call stalls when its worker dies mid-``record`` (kill -9): the attempt is only retried after
this timeout, so keep it short (tests/test_faults.py, the finish)."""
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))
"""Retry transient failures for ever; activities fail on purpose with non-retryable errors."""
MEDIA_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_attempts=3)
"""Media-bridge control is retried briefly: a bridge that stays down must not hold up the
call (the join timers and media signals decide what happens to the media)."""


class CallLog:
    """Builds the events and pushes of one caller-listener call (``room_id`` given) or of
    one building call (``room_id`` None): ids ``"<room_id or call_id>#<seq>"``, seq from 1."""

    __slots__ = ("call_id", "room_id", "seq")

    def __init__(self, call_id: str, room_id: str | None = None) -> None:
        self.call_id = call_id
        self.room_id = room_id
        self.seq = 0

    def event(
        self,
        name: EventName,
        *,
        party: Party | None = None,
        listener: Party | None = None,
        err_code: ErrCode | None = None,
        keep_time_s: int | None = None,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> CallEvent:
        """The next event, at ``workflow.now()``; ``keep_time_s`` is keepTime in whole seconds."""
        self.seq += 1
        return CallEvent(
            id=f"{self.room_id or self.call_id}#{self.seq}",
            call_id=self.call_id,
            room_id=self.room_id,
            seq=self.seq,
            name=name,
            at=workflow.now(),
            party=party,
            listener=listener,
            err_code=err_code,
            keep_time_s=keep_time_s,
            reason=reason,
            data=data or {},
        )

    def push(
        self, cause: CallEvent, recipient: Party, type_: PushType, payload: dict[str, Any]
    ) -> PushMessage:
        """A push caused by ``cause``; id ``"<cause.id>:<recipient key>"`` (one per recipient and event)."""
        return PushMessage(
            id=f"{cause.id}:{recipient.key()}",
            recipient=recipient,
            type=type_,
            call_id=self.call_id,
            room_id=self.room_id,
            at=cause.at,
            payload=payload,
        )


_RECORD_OPTIONS: dict[str, Any] = {"start_to_close_timeout": RECORD_TIMEOUT, "retry_policy": RETRY}
"""Options of ``record``, regular or local (the same activity, the same retries)."""


async def record(inp: RecordInput, summary: str) -> None:
    """Legacy workflows: write one state change with the ``record`` activity (one transaction,
    idempotent by ids)."""
    await workflow.execute_activity_method(CallActivities.record, inp, summary=summary, **_RECORD_OPTIONS)


async def record_local(inp: RecordInput, summary: str) -> None:
    """Write one state change with ``record`` as a LOCAL activity: one short PostgreSQL
    transaction on the hot path, run by this worker inside the workflow task (no task queue
    round trip). At-least-once, so idempotent by the ids the workflow made (events, pushes,
    billing by room, the line release by room)."""
    await workflow.execute_local_activity_method(
        CallActivities.record, inp, summary=summary, **_RECORD_OPTIONS
    )


def seconds(s: float) -> str:
    """``"30 s"``: a duration for summaries and details."""
    return f"{s:g} s"
