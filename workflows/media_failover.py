"""``MediaFailover``: a room's media survives the death of the bridge that held it (issue 13
item 4; ``docs/events.md``, ``docs/media.md`` "A bridge that dies").

The building call hands every live room the signal ``media_bridge_lost`` (the node saw its
media process exit, or the worker's node monitor saw a node miss its heartbeats). The room's
failover then, in order:

1. records ``mediaInterruptVoip`` (reason: which bridge; data ``node``) with the push
   ``media_reoffer`` to the caller and, when it was rung, the listener (payload ``call_id``,
   ``room_id``, ``lost``: the dead bridge, which a client uses to de-duplicate the pushes of
   several rooms) in one ``record``: each party makes a new peer connection and offers it
   (``POST /v1/calls/{id}/media``), which the registry places on a live node;
2. when the listener had answered, makes it the talker at once (``media_connect``: the
   registry places the room on a live node, which places it on a live process), so that
   media flows as soon as the parties' new peers connect;
3. waits for the parties it needs (the caller; the listener too once it answered) to join
   again, at most ``spec.join_timeout_s`` (a party's join time, reference section 2(3));
4. when the listener had answered, makes it the talker again (``media_connect``, idempotent:
   in case no node took the room at the loss), then records ``mediaResumeVoip``
   with ``data.interruption_s`` (seconds from the loss to the last party's join) and
   ``data.node``. Talk, keepTime and billing run on meanwhile.

When the deadline passes first the room ends as a lost party does today: ``abortVoip``
(``Room`` owns that ending; deadline name :data:`RESUME_DEADLINE`). State is plain slotted
data, made on a room's first loss only (issue 8: cached calls stay small).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.activities import RecordInput
    from ringflow.contracts.common import Party
    from ringflow.contracts.events import EventName
    from ringflow.contracts.media import MEDIA_CONNECT, MediaConnectInput, MediaPlacement
    from ringflow.contracts.push import PushType
    from workflows.deadlines import Deadlines
    from workflows.events import ACTIVITY_TIMEOUT, MEDIA_RETRY, CallLog, record_local

RESUME_DEADLINE = "media_resume"
"""The deadline a room's parties have to join again after their bridge died."""


async def connect_media(
    call_id: str, listener: Party, record: bool, listener_name: str
) -> MediaPlacement | None:
    """``media_connect``: ``listener`` talks with the caller in the call's media room (placed
    on a live node); the node holding it (None: single bridge, or the bridge could not be
    reached or no node is live: logged, the join timers then decide)."""
    try:
        placement: MediaPlacement | None = await workflow.execute_activity(
            MEDIA_CONNECT,
            MediaConnectInput(call_id=call_id, listener=listener, record=record),
            result_type=MediaPlacement | None,  # type: ignore[arg-type]
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=MEDIA_RETRY,
            summary=f"media: connect {listener_name} with the caller",
        )
    except ActivityError as e:
        workflow.logger.warning("media connect for %s failed: %s", call_id, e)
        return None
    return placement


class MediaFailover:
    """One room's media interruptions (see the module docstring). ``since``: when the current
    interruption began (None: media is up); ``waiting``: the parties still to join again."""

    __slots__ = ("_deadlines", "_log", "lost_node", "since", "waiting")

    def __init__(self, log: CallLog, deadlines: Deadlines) -> None:
        self._log = log
        self._deadlines = deadlines
        self.since: datetime | None = None
        self.waiting: list[Party] = []
        self.lost_node: str | None = None

    @property
    def active(self) -> bool:
        """An interruption is under way."""
        return self.since is not None

    async def lost(
        self,
        node: str | None,
        caller: Party,
        listener: Party,
        rang: bool,
        answered: bool,
        join_timeout_s: float,
    ) -> None:
        """The bridge ``node`` died: record ``mediaInterruptVoip``, push ``media_reoffer`` to the
        caller (and to ``listener`` when ``rang``), wait for the caller (and the listener once
        ``answered``) for ``join_timeout_s`` seconds. A loss during an interruption restarts it
        (the new bridge died too)."""
        log = self._log
        self.since = self.since or workflow.now()
        self.lost_node = node
        self.waiting = [caller, listener] if answered else [caller]
        event = log.event(
            EventName.MEDIA_INTERRUPTED,
            listener=listener,
            reason=f"media bridge {node or 'unknown'} lost",
            data={"node": node},
        )
        payload = {"call_id": log.call_id, "room_id": log.room_id, "lost": node}
        pushes = [log.push(event, caller, PushType.MEDIA_REOFFER, payload)]
        if rang:
            pushes.append(log.push(event, listener, PushType.MEDIA_REOFFER, payload))
        await record_local(
            RecordInput(events=[event], pushes=pushes), f"record mediaInterruptVoip ({node}), re-offer"
        )
        self._deadlines.set(RESUME_DEADLINE, join_timeout_s, "media: parties joining another bridge")

    def joined(self, party: Party | None) -> bool:
        """``party`` joined again; True when every party it waited for is back."""
        if party in self.waiting:
            self.waiting.remove(party)
        return self.active and not self.waiting

    async def resumed(self, node: str | None, listener: Party) -> None:
        """Every party is back (on ``node``): record ``mediaResumeVoip`` with the interruption's
        length, ``data.interruption_s`` (seconds, ms precision)."""
        assert self.since is not None
        took = round((workflow.now() - self.since).total_seconds(), 3)
        event = self._log.event(
            EventName.MEDIA_RESUMED,
            listener=listener,
            reason=f"media back after {took:g} s",
            data={"interruption_s": took, "node": node, "lost": self.lost_node},
        )
        self.since = None
        self._deadlines.clear(RESUME_DEADLINE)
        await record_local(RecordInput(events=[event]), f"record mediaResumeVoip ({took:g} s)")
