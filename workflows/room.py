"""``Room``: one caller-listener attempt of a building call, through the reference's phases,
held as state inside the building call's workflow (not a child workflow).

initiate (pre-call checks, busy check, ring) -> wait (the listener is rung) -> join (the
listener answered and joins) -> talk -> finish (``endVoip``, ``finishVoip``). Which event
each phase and each party's action produces follows the troubleshooting guide sections 1-6;
``docs/events.md`` is the table. Durations are seconds; every timer is a durable workflow
timer (FAQ 1.1), owned by the room's :class:`~workflows.deadlines.Deadlines`.

The building call runs ``Room.run()`` as a task and hands it messages with ``post`` (answer,
reject, hang-up, force, cancel, media facts): the room applies them in order, one at a time,
in its own loop, so that a message and a timer firing together are decided once. The room's
``state`` (an :class:`AttemptState`) is the building call's view of it (phase, outcome),
updated in place; ``attempt`` makes the ``Attempt`` of it. Each state change is ONE local
activity (``ring``, ``record``): a short PostgreSQL transaction, idempotent by the ids made
here (room id, event ids), since a local activity may run twice.

Memory: a worker keeps every ringing call cached (issue 8: <= 100 KiB each), so what a room
holds while it waits is plain data in slots (no instance ``__dict__``, no pydantic model:
one costs ~1 KiB with its ``__dict__`` and fields-set), and the ring's result is not kept.
``bench/workflow_memory.py --workload call`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.calls import CallActivities
    from ringflow.contracts.activities import (
        Billing,
        CallRecord,
        LineInput,
        RecordInput,
        RingInput,
        RingStatus,
    )
    from ringflow.contracts.calls import Attempt, AttemptOutcome, Phase
    from ringflow.contracts.common import Party, RoomType
    from ringflow.contracts.errors import ErrCode
    from ringflow.contracts.events import CallEvent, EventName
    from ringflow.contracts.media import MediaPlacement
    from ringflow.contracts.push import PushMessage, PushType
    from workflows.deadlines import Deadlines
    from workflows.events import (
        RECORD_TIMEOUT,
        RETRY,
        CallLog,
        record_local,
        seconds,
    )
    from workflows.media_failover import RESUME_DEADLINE, MediaFailover, connect_media
    from workflows.metrics import CallMetrics
    from workflows.visibility import CallVisibility


class RoomMessage(StrEnum):
    """What the building call hands a room (``Room.post``)."""

    ANSWER = "answer"  # the listener answered (section 4)
    REJECT = "reject"  # the listener declined (section 4)
    PASS = "pass"  # the listener passed: "skip me, move on now" (issue 10 item 3)
    HANG_UP = "hang_up"  # a party hung up (sections 3, 5, 6)
    FORCE_HANG_UP = "force_hang_up"  # forceHangUpVoip (sections 3, 5, 6)
    CANCEL = "cancel"  # the building call no longer needs this room (answered by another, ...)
    JOINED = "joined"  # a party's media joined the call's media room
    JOIN_FAILED = "join_failed"  # a party's media could not join
    MEDIA_LOST = "media_lost"  # a party's media vanished (abortVoip)
    BRIDGE_LOST = "bridge_lost"  # the bridge holding the media room died (reason: which; issue 13)


MEDIA_MESSAGES = (RoomMessage.JOINED, RoomMessage.JOIN_FAILED, RoomMessage.MEDIA_LOST)

_OUTCOMES = {
    EventName.TIMEOUT: AttemptOutcome.NO_ANSWER,
    EventName.REJECT_VOIP: AttemptOutcome.REJECTED,
    EventName.PASS_VOIP: AttemptOutcome.PASSED,
    EventName.BUSY: AttemptOutcome.BUSY,
    EventName.CANCEL_VOIP: AttemptOutcome.CANCELLED,
    EventName.JOIN_FAIL_CALLER: AttemptOutcome.FAILED,
    EventName.JOIN_FAIL_LISTENER: AttemptOutcome.FAILED,
}


@dataclass(frozen=True, slots=True)
class RoomSpec:
    """What a room is for: the parties, their names, its timers (seconds) and media."""

    call_id: str
    room_id: str
    caller: Party
    caller_name: str
    listener: Party
    listener_name: str
    room_type: RoomType
    ring_timeout_s: float
    join_timeout_s: float
    time_limit_s: float
    media_required: bool = False
    caller_joined: bool = False  # the caller's media already joined the call's media room
    listener_auto_answer: bool = False  # the listener device answers by itself (phone-calls-device)
    record_media: bool = False  # unit policy record_media: the bridge records the talk
    lead_in: tuple[CallEvent, ...] = ()  # the building call's events written with the ring (escalated)
    ringing_actions: tuple[str, ...] = ()  # in-call actions offered while ringing (open_while_ringing)
    more_targets: bool = False  # a unit's call would ring someone else after this listener (issue 10)


@dataclass(slots=True)
class AttemptState:
    """A room's attempt as plain data, the fields of ``Attempt``; updated in place by the room."""

    room_id: str
    seq: int
    round: int
    listener: Party
    listener_name: str | None
    fallback: bool
    phase: Phase = Phase.INITIATE
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    end_reason: EventName | None = None
    err_code: ErrCode | None = None
    reason: str | None = None
    keep_time_s: int | None = None

    def model(self, phase: Phase | None = None) -> Attempt:
        """The ``Attempt`` (``phase`` instead of the current one when given)."""
        return Attempt(
            room_id=self.room_id,
            seq=self.seq,
            round=self.round,
            listener=self.listener,
            listener_name=self.listener_name,
            fallback=self.fallback,
            phase=self.phase if phase is None else phase,
            started_at=self.started_at,
            ended_at=self.ended_at,
            outcome=self.outcome,
            end_reason=self.end_reason,
            err_code=self.err_code,
            reason=self.reason,
            keep_time_s=self.keep_time_s,
        )


class FailureSink(Protocol):
    """Where a room's task puts the exception that ended it (a bug): the building call's state."""

    failure: Exception | None


@dataclass(slots=True)
class _Message:
    kind: RoomMessage
    party: Party | None = None
    reason: str | None = None


@dataclass(slots=True)
class _End:
    """The terminal event chosen for the room."""

    event: EventName
    party: Party | None = None
    reason: str | None = None


class Room:
    """One attempt (``spec.room_id``); ``run()`` returns when it ended (``state.phase`` ended).

    Never fails on purpose: every ending is an outcome (``AttemptOutcome``) with the
    reference's terminal event; the listener's line is released in every path. An exception
    that ends ``run()`` all the same (a bug) is put in ``sink.failure`` first.
    """

    __slots__ = (
        "_answered",
        "_caller_joined",
        "_claimed",
        "_deadlines",
        "_end",
        "_failover",
        "_inbox",
        "_listener_joined",
        "_listener_media",
        "_log",
        "_media_node",
        "_metrics",
        "_rang",
        "_rang_at",
        "_sink",
        "_visibility",
        "confirmed",
        "spec",
        "state",
        "talk_started_at",
    )

    def __init__(
        self,
        spec: RoomSpec,
        state: AttemptState,
        visibility: CallVisibility,
        sink: FailureSink,
        metrics: CallMetrics,
    ) -> None:
        self.spec = spec
        self.state = state
        self._visibility = visibility
        self._metrics = metrics
        self._sink = sink
        self._log = CallLog(spec.call_id, spec.room_id)
        self._inbox: list[_Message] = []
        self._deadlines = Deadlines()
        self._end: _End | None = None
        self._rang = False  # the INCOMING_CALL push went out
        self._rang_at: datetime | None = None  # when (workflow time after the ring committed)
        self._claimed = False  # this room holds the listener's line
        self._answered = False
        self._caller_joined = False
        self._listener_joined = False
        self._listener_media = False  # the listener's preview peer is in (early media)
        self._failover: MediaFailover | None = None  # made by the first bridge loss (issue 13)
        self._media_node: str | None = None  # the bridge node holding the media room, when known
        self.confirmed = False  # the answer is recorded: the room is in join or talk
        self.talk_started_at: datetime | None = None

    # ------------------------------------------------------------------ the building call's view

    @property
    def attempt(self) -> Attempt:
        """The attempt as the contracts have it (made on each call from ``state``)."""
        return self.state.model()

    @property
    def phase(self) -> Phase:
        """The attempt's phase."""
        return self.state.phase

    @property
    def ended(self) -> bool:
        """The room is over (its terminal event, endVoip and finishVoip are written)."""
        return self.state.phase == Phase.ENDED

    @property
    def listener(self) -> Party:
        """The rung party."""
        return self.spec.listener

    @property
    def rang(self) -> bool:
        """The listener was rung (the INCOMING_CALL push went out)."""
        return self._rang

    def post(self, kind: RoomMessage, party: Party | None = None, reason: str | None = None) -> None:
        """Hand the room a message; applied in order by ``run()``. Ignored once it ended."""
        if not self.ended:
            self._inbox.append(_Message(kind, party, reason))

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        """Ring, then apply messages and deadlines until a terminal event, then finish. (The
        loop is here, not in a coroutine of its own: one frame less per ringing call.)"""
        try:
            self.state.started_at = workflow.now()
            status = await self._ring()
            while status == RingStatus.RANG and self._end is None:
                fired = await self._deadlines.wait(self._has_mail)
                if fired is not None:
                    self._on_deadline(fired)
                while self._inbox and self._end is None:
                    await self._on_message(self._inbox.pop(0))
            if status != RingStatus.SKIPPED:
                await self._finish()
        except Exception as e:  # a bug in the room: fail the workflow task, not the call
            self._sink.failure = e
            raise

    async def _ring(self) -> RingStatus:
        """Pre-call checks, busy check and the ring in ONE local activity (``ring``, one
        transaction, with ``spec.lead_in``: the ``escalated`` that led here): the call
        reminder push (section 1, last line); the caller joins at once unless the media
        decides (section 2). A failed pre-call check is recorded here (``targetSkipped``), a
        busy listener chosen as the terminal event; the ring's result is not kept."""
        spec = self.spec
        now = workflow.now()
        seq = self._log.seq
        ringing = self._log.event(EventName.RINGING, party=spec.caller, listener=spec.listener)
        events = [ringing]
        pushes = [
            self._log.push(
                ringing,
                spec.listener,
                PushType.INCOMING_CALL,
                {
                    "caller_name": spec.caller_name,
                    "caller": spec.caller.key(),
                    "room_type": spec.room_type.value,
                    "ring_timeout_s": spec.ring_timeout_s,
                    "call_id": spec.call_id,
                    "room_id": spec.room_id,
                    "auto_answer": spec.listener_auto_answer,
                    # only when offered: older calls' pushes (stored histories) stay as they were
                    **({"ringing_actions": list(spec.ringing_actions)} if spec.ringing_actions else {}),
                    # issue 10: the app offers "pass" (only then: stored histories' pushes unchanged)
                    **({"more_targets": True} if spec.more_targets else {}),
                },
            )
        ]
        if not spec.media_required or spec.caller_joined:
            events.append(self._log.event(EventName.JOINED_ROOM_BY_CALLER, party=spec.caller))
        self._line_state(f"pre-call checks, ringing {spec.listener_name}")
        res = await workflow.execute_local_activity_method(
            CallActivities.ring,
            RingInput(
                caller=spec.caller,
                listener=spec.listener,
                call_id=spec.call_id,
                room_id=spec.room_id,
                at=now,  # the availability rules are evaluated at the ring's instant (issue 10)
                before=RecordInput(events=list(spec.lead_in)),
                record=RecordInput(
                    attempts=[self.state.model(phase=Phase.WAIT)],
                    events=events,
                    pushes=pushes,
                ),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
            summary=("record escalated, " if spec.lead_in else "")
            + f"pre-call checks, claim line, ring {spec.listener_name}",
        )
        if res.status != RingStatus.RANG:
            self._log.seq = seq  # nothing of the ringing was written: its events never happened
            if res.status == RingStatus.SKIPPED:
                await self._skip(res.err_code, res.reason)
            else:  # section 4: the listener is in another call
                self._end = _End(EventName.BUSY, self.spec.listener, f"in room {res.held_by}")
            return res.status
        self._rang = self._claimed = True
        self._rang_at = workflow.now()
        self._metrics.rang()
        # The ring window counts from the ring (the push went out in the activity that just
        # completed): a slow ring activity must not eat into the time to answer.
        self._deadlines.set("ring", spec.ring_timeout_s, f"ringing {spec.listener_name}")
        if spec.media_required and not spec.caller_joined:
            self._deadlines.set("caller_join", spec.join_timeout_s, "caller joining", start=now)
        else:
            self._caller_joined = True
        self._set_phase(Phase.WAIT)
        return res.status

    async def _skip(self, err_code: ErrCode, reason: str | None) -> None:
        """A failed pre-call check (section 1): no room, only ``targetSkipped``."""
        ev = self._log.event(
            EventName.TARGET_SKIPPED, listener=self.spec.listener, err_code=err_code, reason=reason
        )
        att = self.state
        att.ended_at = workflow.now()
        att.outcome = AttemptOutcome.SKIPPED
        att.end_reason = EventName.TARGET_SKIPPED
        att.err_code = err_code
        att.reason = reason
        done = att.model(phase=Phase.ENDED)
        await record_local(
            RecordInput(attempts=[done], events=[ev]),
            f"record targetSkipped {self.spec.listener_name} (errCode {int(err_code)})",
        )
        self._set_phase(Phase.ENDED, f"skipped (errCode {int(err_code)})")

    def _has_mail(self) -> bool:
        return bool(self._inbox)

    def _on_deadline(self, name: str) -> None:
        """A durable timer fired (sections 2, 3, 5 and FAQ 1.1)."""
        spec = self.spec
        if name == "ring":
            self._end = _End(EventName.TIMEOUT, spec.listener, f"no answer in {seconds(spec.ring_timeout_s)}")
        elif name == "caller_join":
            if self._answered:  # section 5(1): the listener waits, the caller never joins
                self._end = _End(EventName.ABORT_VOIP, spec.caller, "caller did not join in time")
            else:  # section 2(3)
                self._end = _End(EventName.JOIN_FAIL_CALLER, spec.caller, "join timeout")
        elif name == "listener_join":
            self._end = _End(EventName.JOIN_FAIL_LISTENER, spec.listener, "join timeout")
        elif name == RESUME_DEADLINE:  # issue 13: no bridge took the room back in time
            reason = f"media bridge lost, not back in {seconds(spec.join_timeout_s)}"
            self._end = _End(EventName.ABORT_VOIP, None, reason)
        else:  # time_limit
            self._end = _End(EventName.HANG_UP_VOIP, None, "timeLimit")

    async def _on_message(self, msg: _Message) -> None:
        """Apply one message in the current phase (the table in ``docs/events.md``)."""
        spec = self.spec
        is_caller = msg.party == spec.caller
        is_listener = msg.party == spec.listener
        phase = self.phase
        kind = msg.kind
        bridge = kind == RoomMessage.BRIDGE_LOST or (
            kind == RoomMessage.JOINED and self._failover is not None
        )
        if bridge and await self._on_bridge(msg):
            return  # a bridge loss; a join goes on to the table below as well
        if kind in (RoomMessage.FORCE_HANG_UP, RoomMessage.CANCEL):
            self._end = self._forced(msg.reason)
        elif is_listener and not self._answered and kind in MEDIA_MESSAGES:
            # docs/media.md: a rung listener's preview peer; losing it does not end the ring
            # (the listener may offer again), joining it makes the answer's join immediate.
            self._listener_media = kind == RoomMessage.JOINED
        elif kind == RoomMessage.MEDIA_LOST and (is_caller or is_listener):
            self._end = _End(EventName.ABORT_VOIP, msg.party, msg.reason or "media lost")
        elif kind == RoomMessage.JOIN_FAILED and (is_caller or is_listener) and phase != Phase.TALK:
            name = EventName.JOIN_FAIL_CALLER if is_caller else EventName.JOIN_FAIL_LISTENER
            self._end = _End(name, msg.party, msg.reason or "join failed")
        elif kind == RoomMessage.HANG_UP and phase == Phase.TALK and (is_caller or is_listener):
            self._end = _End(EventName.HANG_UP_VOIP, msg.party, "hung up")
        elif kind == RoomMessage.HANG_UP and is_caller:  # sections 3, 4(1): the caller gives up
            self._end = _End(EventName.CANCEL_VOIP, msg.party, "caller hung up")
        elif kind in (RoomMessage.HANG_UP, RoomMessage.REJECT) and is_listener and phase != Phase.TALK:
            # sections 4, 5: the listener declines, or hangs up while waiting for the caller
            self._end = _End(EventName.REJECT_VOIP, msg.party, "listener declined")
        elif kind == RoomMessage.PASS and is_listener and phase == Phase.WAIT:
            # issue 10 item 3: like a decline for this room, recorded as its own event
            self._end = _End(EventName.PASS_VOIP, msg.party, "listener passed")
        elif kind == RoomMessage.ANSWER and is_listener and phase == Phase.WAIT:
            await self._on_answer()
        elif kind == RoomMessage.JOINED and is_caller and not self._caller_joined:
            self._caller_joined = True
            self._deadlines.clear("caller_join")
            await self._joined([self._log.event(EventName.JOINED_ROOM_BY_CALLER, party=spec.caller)])
        elif kind == RoomMessage.JOINED and is_listener and self._answered and not self._listener_joined:
            self._listener_joined = True
            self._deadlines.clear("listener_join")
            await self._joined([])
        # anything else does not fit the phase and is ignored (the building call validated it)

    async def _on_bridge(self, msg: _Message) -> bool:
        """Issue 13 (``workflows/media_failover.py``): the bridge holding the media room died
        (``BRIDGE_LOST``, reason = the bridge), or a party joined again after that; True when
        the message is used up (a party's join during an interruption also counts as a join)."""
        spec = self.spec
        if self._failover is None:
            self._failover = MediaFailover(self._log, self._deadlines)
        failover = self._failover
        if msg.kind == RoomMessage.BRIDGE_LOST:
            await failover.lost(
                msg.reason, spec.caller, spec.listener, self._rang, self._answered, spec.join_timeout_s
            )
            if self._answered:  # the room and its talker on a live bridge before the offers come
                await self._connect_media()
            return True
        if not failover.joined(msg.party):
            return False
        if self._answered:  # the talk again, on the room's new node (idempotent)
            await self._connect_media()
        await failover.resumed(self._media_node, spec.listener)
        return False

    def _forced(self, reason: str | None) -> _End:
        """forceHangUpVoip by phase (sections 3, 5, 6): cancelVoip before the listener
        joined, rejectVoip while the listener waits for the caller, hangUpVoip in talk."""
        if self.phase == Phase.TALK:
            return _End(EventName.HANG_UP_VOIP, None, reason)
        if self._listener_joined:
            return _End(EventName.REJECT_VOIP, None, reason)
        return _End(EventName.CANCEL_VOIP, None, reason)

    async def _on_answer(self) -> None:
        """Section 4: the listener answered; it joins (implicitly unless the media decides)."""
        spec = self.spec
        self._answered = True
        self._deadlines.clear("ring")
        self._metrics.answered(self._rang_at or self.state.started_at or workflow.now())
        answered = self._log.event(EventName.ANSWERED, party=spec.listener, listener=spec.listener)
        pushes = [
            self._log.push(
                answered,
                spec.caller,
                PushType.CALL_ANSWERED,
                {
                    "listener": spec.listener.key(),
                    "listener_name": spec.listener_name,
                    "room_id": spec.room_id,
                },
            )
        ]
        if spec.media_required and await self._connect_media() is not None and self._media_node:
            answered.data["media_node"] = self._media_node  # issue 13: the node holding the room
        if spec.media_required and not self._listener_media:
            self._deadlines.set("listener_join", spec.join_timeout_s, f"{spec.listener_name} joining")
        else:
            self._listener_joined = True
        self._set_phase(Phase.JOIN)
        await self._joined([answered], pushes)

    async def _connect_media(self) -> MediaPlacement | None:
        """docs/media.md: the answering listener becomes the media room's talker, recorded when
        the unit's policy says so. A regular activity (the bridge is another service); a bridge
        that cannot be reached is logged, the join timers then end the call. The node holding
        the room is kept (``_media_node``; None with a single bridge)."""
        spec = self.spec
        placement = await connect_media(spec.call_id, spec.listener, spec.record_media, spec.listener_name)
        if placement is not None:
            self._media_node = placement.node_id
        return placement

    async def _joined(self, events: list[CallEvent], pushes: list[PushMessage] | None = None) -> None:
        """Record a join-phase change; when both parties are in, the talk starts (section 6)."""
        spec = self.spec
        call = None
        if self._answered and self._caller_joined and self._listener_joined:
            now = workflow.now()
            self.talk_started_at = now
            self._deadlines.clear()
            self._deadlines.set(
                "time_limit", spec.time_limit_s, f"talking with {spec.listener_name}, timeLimit"
            )
            calling = self._log.event(EventName.CALLING, keep_time_s=0, listener=spec.listener)
            events.append(calling)
            talk = {
                "room_id": spec.room_id,
                "talk_started_at": now.isoformat(),
                "listener": spec.listener.key(),
            }
            pushes = [
                *(pushes or []),
                self._log.push(calling, spec.caller, PushType.TALK_STARTED, talk),
                self._log.push(calling, spec.listener, PushType.TALK_STARTED, talk),
            ]
            self._set_phase(Phase.TALK)
            call = CallRecord(
                call_id=spec.call_id, phase=Phase.TALK, talk_started_at=now, answered_by=spec.listener
            )
        elif self._answered:
            call = CallRecord(call_id=spec.call_id, phase=Phase.JOIN, answered_by=spec.listener)
        if not events:
            return  # the listener's media joined before the caller's: no event to record
        await record_local(
            RecordInput(call=call, attempts=[self.state.model()], events=events, pushes=pushes or []),
            f"record {self.phase.value} {' '.join(e.name.value for e in events)}".strip(),
        )
        if self._answered:
            self.confirmed = True

    async def _finish(self) -> None:
        """Finish (sections 2-6, FAQ 1.10): the terminal event, ``endVoip`` (keepTime), then
        ``finishVoip`` (billed keepTime), billing, pushes and the release of the listener's
        line, in ONE local activity."""
        spec, end, att = self.spec, self._end, self.state
        assert end is not None
        now = workflow.now()
        talked = self.talk_started_at is not None
        keep = int((now - self.talk_started_at).total_seconds()) if self.talk_started_at else 0
        keep_on_terminal = keep if end.event in (EventName.HANG_UP_VOIP, EventName.ABORT_VOIP) else None
        self._set_phase(Phase.FINISH)
        terminal = self._log.event(
            end.event,
            party=end.party,
            listener=spec.listener,
            reason=end.reason,
            keep_time_s=keep_on_terminal,
        )
        end_voip = self._log.event(EventName.END_VOIP, keep_time_s=keep, reason=end.event.value)
        finish = self._log.event(EventName.FINISH_VOIP, keep_time_s=keep)
        payload = {"end_reason": end.event.value, "keepTime": keep, "room_id": spec.room_id}
        pushes = [self._log.push(end_voip, spec.caller, PushType.CALL_ENDED, payload)]
        if (
            self._rang
            and not self._answered
            and end.event not in (EventName.REJECT_VOIP, EventName.PASS_VOIP)
        ):
            pushes.append(self._log.push(end_voip, spec.listener, PushType.CALL_CANCELLED, payload))
        elif self._rang:
            pushes.append(self._log.push(end_voip, spec.listener, PushType.CALL_ENDED, payload))
        att.ended_at = now
        att.outcome = AttemptOutcome.ANSWERED if talked else _OUTCOMES.get(end.event, AttemptOutcome.FAILED)
        att.end_reason = end.event
        att.reason = end.reason
        att.keep_time_s = keep
        billing = (
            Billing(
                room_id=spec.room_id,
                call_id=spec.call_id,
                caller=spec.caller,
                listener=spec.listener,
                keep_time_s=keep,
            )
            if talked
            else None
        )
        release = (
            LineInput(party=spec.listener, call_id=spec.call_id, room_id=spec.room_id)
            if self._claimed
            else None
        )
        await record_local(
            RecordInput(
                attempts=[att.model(phase=Phase.ENDED)],
                events=[terminal, end_voip, finish],
                pushes=pushes,
                billing=billing,
                release=release,
            ),
            f"record {end.event.value} endVoip finishVoip (keepTime {keep} s)"
            + (f", release line of {spec.listener_name}" if release else ""),
        )
        self._set_phase(Phase.ENDED, f"{end.event.value}, keepTime {keep} s")

    # ------------------------------------------------------------------ helpers

    def _set_phase(self, phase: Phase, state: str | None = None) -> None:
        """Phase change: the attempt (the building call's view) and the room's live line."""
        self.state.phase = phase
        name = self.spec.listener_name
        default = {
            Phase.WAIT: f"ringing {name}",
            Phase.JOIN: f"{name} answered, joining",
            Phase.TALK: f"talking with {name}",
            Phase.FINISH: "finishing",
        }.get(phase, phase.value)
        self._line_state(state or default)

    def _line_state(self, state: str) -> None:
        self._visibility.room(self.spec.room_id, f"{self.state.seq}. {self.spec.listener_name}: {state}")
